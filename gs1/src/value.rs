//! Checking one value against its AI's format: length, character set, check digit, dates and
//! times, and the implied decimal point. Pure; shared by element strings and Digital Links.

use crate::ai_table::{AiEntry, Cset, Lint};
use crate::check::check_digit_mismatch;
use crate::data::Element;
use crate::date::{self, DateError};

/// Why one value is invalid for its AI. Its `Display` text becomes [`Element::error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Nothing after the AI.
    #[error("value is empty")]
    Empty,
    /// A fixed-length value of the wrong length.
    #[error("value has {got} characters, expected {expected} ({format})")]
    WrongLength {
        /// Length found.
        got: usize,
        /// The fixed length.
        expected: usize,
        /// The AI's format, e.g. `N14`.
        format: String,
    },
    /// A variable-length value below its minimum.
    #[error("value has {got} characters, expected at least {min} ({format})")]
    TooShort {
        /// Length found.
        got: usize,
        /// Minimum length.
        min: usize,
        /// The AI's format.
        format: String,
    },
    /// A variable-length value beyond its maximum.
    #[error("value has {got} characters, at most {max} allowed ({format})")]
    TooLong {
        /// Length found.
        got: usize,
        /// Maximum length.
        max: usize,
        /// The AI's format.
        format: String,
    },
    /// A non-digit in a numeric part.
    #[error("character {shown} at position {pos} is not a digit")]
    NotDigit {
        /// 1-based position in the value.
        pos: usize,
        /// The character, quoted, or its byte value.
        shown: String,
    },
    /// A character outside GS1 CSET 82 in an alphanumeric part.
    #[error("character {shown} at position {pos} is not allowed (GS1 CSET 82)")]
    NotCset82 {
        /// 1-based position in the value.
        pos: usize,
        /// The character, quoted, or its byte value.
        shown: String,
    },
    /// Wrong mod-10 check digit.
    #[error("check digit is {found}, expected {expected}")]
    CheckDigit {
        /// The check digit in the value.
        found: u8,
        /// The correct one.
        expected: u8,
    },
    /// A digit that must be zero is not.
    #[error("digit at position {0} must be 0")]
    NotZero(usize),
    /// A date or time that does not exist.
    #[error(transparent)]
    Date(#[from] DateError),
    /// PPTT with PP = 0, TT = 0 or PP > TT.
    #[error("piece {piece} of total {total} is not possible")]
    PieceOfTotal {
        /// PP.
        piece: String,
        /// TT.
        total: String,
    },
}

/// Date and decimal renderings of a valid value.
#[derive(Default)]
struct Extras {
    date: Option<String>,
    decimal: Option<String>,
}

/// Builds the [`Element`] for `ai` (which belongs to `entry`) with the raw value bytes, checking
/// everything that can be checked on the value alone.
pub(crate) fn build(ai: &str, entry: &'static AiEntry, raw: &[u8], reference_year: i32) -> Element {
    let mut element = Element {
        ai: ai.to_owned(),
        title: entry.title,
        value: String::from_utf8_lossy(raw).into_owned(),
        date: None,
        decimal: None,
        error: None,
    };
    match check(ai, entry, raw, reference_year) {
        Ok(extras) => {
            element.date = extras.date;
            element.decimal = extras.decimal;
        }
        Err(e) => element.error = Some(e.to_string()),
    }
    element
}

fn check(ai: &str, entry: &AiEntry, raw: &[u8], reference_year: i32) -> Result<Extras, ValueError> {
    let (got, min, max) = (raw.len(), entry.min_len(), entry.max_len());
    let format = || entry.format();
    if got == 0 {
        return Err(ValueError::Empty);
    }
    if min == max && got != min {
        return Err(ValueError::WrongLength {
            got,
            expected: min,
            format: format(),
        });
    }
    if got < min {
        return Err(ValueError::TooShort {
            got,
            min,
            format: format(),
        });
    }
    if got > max {
        return Err(ValueError::TooLong {
            got,
            max,
            format: format(),
        });
    }
    let mut extras = Extras::default();
    let mut pos = 0;
    let mut last_part = "";
    for part in entry.parts {
        let rest = got - pos;
        if rest == 0 && part.optional {
            break;
        }
        let take = rest.min(usize::from(part.max));
        if take < usize::from(part.min) {
            return Err(ValueError::TooShort {
                got,
                min,
                format: format(),
            });
        }
        let bytes = &raw[pos..pos + take];
        check_cset(part.cset, bytes, pos)?;
        // Both character sets are ASCII, so this cannot fail after `check_cset`.
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        apply_lint(part.lint, text, pos, reference_year, &mut extras)?;
        last_part = text;
        pos += take;
    }
    if pos < got {
        return Err(ValueError::TooLong {
            got,
            max,
            format: format(),
        });
    }
    if entry.decimal {
        let places = ai
            .bytes()
            .last()
            .map_or(0, |b| usize::from(b.saturating_sub(b'0')));
        extras.decimal = Some(apply_decimal(last_part, places));
    }
    Ok(extras)
}

/// Whether `b` is in GS1 CSET 82, the character set of alphanumeric ("X") AI values:
/// `! " % & ' ( ) * + , - . / 0-9 : ; < = > ? A-Z _ a-z`.
pub fn is_cset82(b: u8) -> bool {
    matches!(b, b'!' | b'"' | b'%'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

/// How a byte is shown in an error: `'#'`, `space`, or `0x1D`.
fn show(b: u8) -> String {
    match b {
        b' ' => "space".to_owned(),
        0x21..=0x7E => format!("'{}'", char::from(b)),
        _ => format!("0x{b:02X}"),
    }
}

fn check_cset(cset: Cset, bytes: &[u8], offset: usize) -> Result<(), ValueError> {
    let ok = |b: u8| match cset {
        Cset::Numeric => b.is_ascii_digit(),
        Cset::Cset82 => is_cset82(b),
    };
    match bytes.iter().position(|&b| !ok(b)) {
        None => Ok(()),
        Some(i) => {
            let (pos, shown) = (offset + i + 1, show(bytes[i]));
            Err(match cset {
                Cset::Numeric => ValueError::NotDigit { pos, shown },
                Cset::Cset82 => ValueError::NotCset82 { pos, shown },
            })
        }
    }
}

fn apply_lint(
    lint: Lint,
    text: &str,
    offset: usize,
    reference_year: i32,
    extras: &mut Extras,
) -> Result<(), ValueError> {
    match lint {
        Lint::None => {}
        Lint::CheckDigit => {
            if let Some((found, expected)) = check_digit_mismatch(text) {
                return Err(ValueError::CheckDigit { found, expected });
            }
        }
        Lint::Zero => {
            if text != "0" {
                return Err(ValueError::NotZero(offset + 1));
            }
        }
        Lint::YyMmD0 | Lint::YyMmDd => {
            let day_zero_ok = lint == Lint::YyMmD0;
            let ymd = date::parse_yymmdd(text, reference_year, day_zero_ok)?;
            extras.date = Some(ymd.to_string());
        }
        Lint::HhMm => {
            let time = date::parse_hhmm(text)?;
            if let Some(d) = extras.date.as_mut() {
                d.push('T');
                d.push_str(&time);
            }
        }
        Lint::YyMmDdHh => {
            let (ymd, hh) = text.split_at(text.len().min(6));
            let ymd = date::parse_yymmdd(ymd, reference_year, false)?;
            extras.date = Some(format!("{ymd}T{}", date::parse_hh(hh)?));
        }
        Lint::MmOptSs => {
            let tail = date::parse_mm_opt_ss(text)?;
            if let Some(d) = extras.date.as_mut() {
                d.push_str(&tail);
            }
        }
        Lint::PieceOfTotal => {
            let (piece, total) = text.split_at(text.len().min(2));
            let (p, t) = (
                piece.parse::<u32>().unwrap_or(0),
                total.parse::<u32>().unwrap_or(0),
            );
            if p == 0 || t == 0 || p > t {
                let (piece, total) = (piece.to_owned(), total.to_owned());
                return Err(ValueError::PieceOfTotal { piece, total });
            }
        }
    }
    Ok(())
}

/// Applies `places` implied decimals to a digit string: (`"001250"`, 3) → `"1.250"`.
pub(crate) fn apply_decimal(digits: &str, places: usize) -> String {
    let width = digits.len().max(places + 1);
    let padded = format!("{digits:0>width$}");
    let (int, frac) = padded.split_at(width - places);
    let int = match int.trim_start_matches('0') {
        "" => "0",
        s => s,
    };
    match places {
        0 => int.to_owned(),
        _ => format!("{int}.{frac}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai_table::lookup;

    fn el(ai: &str, value: &str) -> Element {
        build(ai, lookup(ai).unwrap(), value.as_bytes(), 2026)
    }

    fn err(ai: &str, value: &str) -> String {
        el(ai, value)
            .error
            .unwrap_or_else(|| panic!("{ai} {value:?} should be invalid"))
    }

    #[test]
    fn gtin_checks() {
        let e = el("01", "09506000134352");
        assert_eq!((e.title, e.error), ("GTIN", None));
        assert_eq!(err("01", "09506000134353"), "check digit is 3, expected 2");
        assert_eq!(
            err("01", "0950600013435"),
            "value has 13 characters, expected 14 (N14)"
        );
        assert_eq!(
            err("01", "0950600013435A"),
            "character 'A' at position 14 is not a digit"
        );
        assert_eq!(err("01", ""), "value is empty");
    }

    #[test]
    fn cset82() {
        assert!(el("91", "!\"%&'()*+,-./09:;<=>?AZ_az").is_valid());
        assert_eq!(
            err("10", "AB#1"),
            "character '#' at position 3 is not allowed (GS1 CSET 82)"
        );
        assert_eq!(
            err("21", "A B"),
            "character space at position 2 is not allowed (GS1 CSET 82)"
        );
        assert_eq!(
            err("21", "A\u{1d}"),
            "character 0x1D at position 2 is not allowed (GS1 CSET 82)"
        );
        let e = build("21", lookup("21").unwrap(), b"A\xff", 2026);
        assert_eq!(e.value, "A\u{fffd}");
        assert_eq!(
            e.error.unwrap(),
            "character 0xFF at position 2 is not allowed (GS1 CSET 82)"
        );
        assert_eq!(
            err("10", "123456789012345678901"),
            "value has 21 characters, at most 20 allowed (X..20)"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(el("17", "260200").date.as_deref(), Some("2026-02-28"));
        assert_eq!(el("11", "280200").date.as_deref(), Some("2028-02-29"));
        assert_eq!(err("17", "261232"), "day 32 does not exist in 2026-12");
        assert_eq!(
            err("7006", "260200"),
            "day 00 is not allowed here; this AI needs a real day"
        );
        assert_eq!(
            el("7003", "2612311430").date.as_deref(),
            Some("2026-12-31T14:30")
        );
        assert_eq!(err("7003", "2612312430"), "hour 24 does not exist");
        assert_eq!(
            el("8008", "26123114").date.as_deref(),
            Some("2026-12-31T14")
        );
        assert_eq!(
            el("8008", "261231143015").date.as_deref(),
            Some("2026-12-31T14:30:15")
        );
        assert_eq!(
            err("8008", "261231143"),
            "minutes and seconds must be 2 or 4 digits, got 1"
        );
    }

    #[test]
    fn decimals() {
        assert_eq!(el("3103", "001250").decimal.as_deref(), Some("1.250"));
        assert_eq!(el("3100", "001250").decimal.as_deref(), Some("1250"));
        assert_eq!(el("3105", "000005").decimal.as_deref(), Some("0.00005"));
        assert_eq!(el("3922", "5").decimal.as_deref(), Some("0.05"));
        assert_eq!(el("3932", "9781999").decimal.as_deref(), Some("19.99"));
        assert_eq!(apply_decimal("000000", 2), "0.00");
        assert_eq!(el("01", "09506000134352").decimal, None);
    }

    #[test]
    fn compound_values() {
        assert!(el("253", "9520123456788").is_valid());
        assert!(el("253", "9520123456788ABC-1").is_valid());
        assert_eq!(err("253", "9520123456789"), "check digit is 9, expected 8");
        assert!(el("8003", "09520123456788SER").is_valid());
        assert_eq!(
            err("8003", "19520123456788"),
            "digit at position 1 must be 0"
        );
        assert!(el("8006", "095060001343520102").is_valid());
        assert_eq!(
            err("8006", "095060001343520302"),
            "piece 03 of total 02 is not possible"
        );
        assert!(el("421", "276D-12345").is_valid());
        assert_eq!(err("422", "27"), "value has 2 characters, expected 3 (N3)");
        assert_eq!(
            err("8008", "2612"),
            "value has 4 characters, expected at least 8 (N8 [N..4])"
        );
    }
}
