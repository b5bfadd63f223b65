//! GS1 data on the shop floor: AIM symbology identifiers, GS1 element strings (GS1-128, GS1
//! DataMatrix, GS1 QR, GS1 DataBar) and GS1 Digital Link URIs, parsed and validated without I/O.
//!
//! # Layout
//!
//! - [`aim`]: [`split_aim`] takes the `]d2`-style identifier off a scan and says whether the data
//!   is a GS1 element string ([`Symbology::gs1`]).
//! - [`element_string`]: [`parse_element_string`] splits AI + value pairs at predefined lengths and
//!   GS (0x1D) separators.
//! - [`digital_link`]: [`parse_digital_link`] reads `https://…/01/…/10/…?17=…` into the same result.
//! - [`ai_table`] (types, lookup) and `ai_list` (the data): every supported AI with its title,
//!   format, check-digit and date rules, predefined-length flag and pairing rules.
//! - [`value`]: one value against its AI's format; [`date`]: YYMMDD, DD = 00 and the century
//!   window; [`check`]: [`check_digit`]; [`rules`]: whole-string pairing and repetition rules.
//! - [`data`]: the result types [`Gs1Data`] and [`Element`]; [`encode`](mod@encode): [`encode()`],
//!   the inverse of parsing, for simulators and tests.
//!
//! Parsing never fails or panics: whatever can be read becomes an [`Element`], and every problem
//! is a sentence, either for the whole string ([`Gs1Data::errors`]) or for one element
//! ([`Element::error`]). [`Gs1Data::is_valid`] says whether there is none.
//!
//! ```
//! use tracegate_gs1::{parse_element_string, split_aim};
//!
//! let (sym, data) = split_aim(b"]d2010950600013435217261231\x1d10ABC123");
//! assert!(sym.unwrap().gs1);
//! let parsed = parse_element_string(data, 2026);
//! assert!(parsed.is_valid());
//! assert_eq!(parsed.get("17").unwrap().date.as_deref(), Some("2026-12-31"));
//! assert_eq!(parsed.value("10"), Some("ABC123"));
//! ```

#![warn(missing_docs)]

pub mod ai_table;
pub mod aim;
pub mod check;
pub mod data;
pub mod date;
pub mod digital_link;
pub mod element_string;
pub mod encode;
pub mod rules;
pub mod value;

mod ai_list;

pub use ai_table::{AiEntry, lookup};
pub use aim::{Symbology, split_aim};
pub use check::{check_digit, has_valid_check_digit};
pub use data::{Element, Gs1Data};
pub use digital_link::parse_digital_link;
pub use element_string::{GS, MAX_ELEMENTS, parse_element_string};
pub use encode::encode;
pub use value::is_cset82;
