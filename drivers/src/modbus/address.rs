//! Modbus addresses as users write them, parsed into the table and the on-wire offset.
//!
//! # The scheme
//!
//! Two forms are accepted; both name a table and a position in it:
//!
//! | Form | Example | Numbering | Meaning |
//! |---|---|---|---|
//! | 5- or 6-digit Modicon number | `40001`, `400001`, `30010`, `10001`, `00001` | **1-based** | first digit = table (`0` coil, `1` discrete input, `3` input register, `4` holding register), the rest is the 1-based number |
//! | table prefix and offset | `hr:0`, `ir:9`, `coil:0`, `di:0`, `hr:0x10` | **0-based** | the offset sent on the wire (what Modbus tools call the "PDU address") |
//!
//! So `40001` = `hr:0`, `40010` = `hr:9`, `400001` = `hr:0`, `465536` = `hr:65535`. The 5-digit
//! form reaches number 9999 (`49999` = `hr:9998`); beyond that use the 6-digit form or a prefix.
//! A bare small number (`1`, `100`) is refused: it is the classic off-by-one, and which table
//! it means is unclear. Written as a TOML integer, `40001` is accepted too; coil addresses
//! (`00001`) must be strings, since an integer loses the leading zeros.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Read/write bits (FC 1 read, FC 5/15 write); `0xxxx`, `coil:`.
    Coil,
    /// Read-only bits (FC 2); `1xxxx`, `di:`.
    DiscreteInput,
    /// Read-only 16-bit registers (FC 4); `3xxxx`, `ir:`.
    InputRegister,
    /// Read/write 16-bit registers (FC 3 read, FC 6/16 write); `4xxxx`, `hr:`.
    HoldingRegister,
}

impl Table {
    /// True for the two bit tables (coils, discrete inputs).
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::DiscreteInput)
    }

    /// The leading digit of the Modicon form.
    fn digit(self) -> char {
        match self {
            Table::Coil => '0',
            Table::DiscreteInput => '1',
            Table::InputRegister => '3',
            Table::HoldingRegister => '4',
        }
    }

    /// The prefix of the 0-based form.
    pub fn prefix(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "di",
            Table::InputRegister => "ir",
            Table::HoldingRegister => "hr",
        }
    }

    /// The noun with its article, for messages ("an input register").
    pub fn a_noun(self) -> &'static str {
        match self {
            Table::Coil => "a coil",
            Table::DiscreteInput => "a discrete input",
            Table::InputRegister => "an input register",
            Table::HoldingRegister => "a holding register",
        }
    }

    /// A phrase for messages ("holding register").
    pub fn noun(self) -> &'static str {
        match self {
            Table::Coil => "coil",
            Table::DiscreteInput => "discrete input",
            Table::InputRegister => "input register",
            Table::HoldingRegister => "holding register",
        }
    }
}

/// One position in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub table: Table,
    /// The 0-based offset sent on the wire.
    pub offset: u16,
}

impl Address {
    /// A holding register by its 0-based offset.
    pub const fn hr(offset: u16) -> Address {
        Address {
            table: Table::HoldingRegister,
            offset,
        }
    }

    /// The address `n` positions further on (saturating at 65535).
    pub fn plus(self, n: u16) -> Address {
        Address {
            table: self.table,
            offset: self.offset.saturating_add(n),
        }
    }
}

/// Why an address text was refused; the message says how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddressError(String);

const HOW: &str = "write a Modicon number such as 40001 (1-based; 4 = holding, 3 = input \
                   register, 1 = discrete input, 0 = coil) or a 0-based offset such as hr:0, \
                   ir:0, di:0, coil:0";

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        let bad = |why: &str| AddressError(format!("address {text:?} {why}; {HOW}"));
        if let Some((prefix, offset)) = t.split_once(':') {
            let table = match prefix.trim().to_ascii_lowercase().as_str() {
                "hr" | "holding" => Table::HoldingRegister,
                "ir" | "input" => Table::InputRegister,
                "di" | "discrete" => Table::DiscreteInput,
                "coil" | "co" => Table::Coil,
                _ => return Err(bad("has an unknown table prefix")),
            };
            let offset = offset.trim();
            let parsed = match offset
                .strip_prefix("0x")
                .or_else(|| offset.strip_prefix("0X"))
            {
                Some(hex) => u16::from_str_radix(hex, 16),
                None => offset.parse::<u16>(),
            };
            let offset = parsed.map_err(|_| bad("has an offset that is not 0..=65535"))?;
            return Ok(Address { table, offset });
        }
        if !t.bytes().all(|b| b.is_ascii_digit()) || t.is_empty() {
            return Err(bad("is not an address"));
        }
        if !(5..=6).contains(&t.len()) {
            return Err(bad("is ambiguous: a Modicon number has 5 or 6 digits"));
        }
        let table = match t.as_bytes()[0] {
            b'0' => Table::Coil,
            b'1' => Table::DiscreteInput,
            b'3' => Table::InputRegister,
            b'4' => Table::HoldingRegister,
            _ => {
                return Err(bad(
                    "starts with a digit that names no table (0, 1, 3 or 4)",
                ));
            }
        };
        let number: u32 = t[1..].parse().map_err(|_| bad("is not an address"))?;
        if number == 0 || number > 65536 {
            return Err(bad(
                "is out of range: numbers start at 1 (x0001) and end at x65536",
            ));
        }
        Ok(Address {
            table,
            offset: (number - 1) as u16,
        })
    }
}

/// The Modicon form when it exists (`40001`, `465536`), with the 0-based form beside it:
/// `40010 (hr:9)`. Messages show both, since users think in one and tools in the other.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = u32::from(self.offset) + 1;
        let digit = self.table.digit();
        if number <= 9999 {
            write!(f, "{digit}{number:04}")?;
        } else {
            write!(f, "{digit}{number:05}")?;
        }
        write!(f, " ({}:{})", self.table.prefix(), self.offset)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AddressVisitor;

        impl Visitor<'_> for AddressVisitor {
            type Value = Address;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Modbus address such as \"40001\" or \"hr:0\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Address, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Address, E> {
                if v < 10_000 {
                    return Err(E::custom(format!(
                        "address {v} is ambiguous as a number; write coils as a string \
                         (\"00001\" or \"coil:0\") and other tables with their digit (40001)"
                    )));
                }
                self.visit_str(&v.to_string())
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Address, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }

        deserializer.deserialize_any(AddressVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Address {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn modicon_numbers_are_one_based() {
        for (text, table, offset) in [
            ("40001", Table::HoldingRegister, 0),
            ("40010", Table::HoldingRegister, 9),
            ("49999", Table::HoldingRegister, 9998),
            ("400001", Table::HoldingRegister, 0),
            ("465536", Table::HoldingRegister, 65535),
            ("30001", Table::InputRegister, 0),
            ("10001", Table::DiscreteInput, 0),
            ("00001", Table::Coil, 0),
            ("000017", Table::Coil, 16),
        ] {
            assert_eq!(parse(text), Address { table, offset }, "{text}");
        }
    }

    #[test]
    fn prefixed_offsets_are_zero_based() {
        assert_eq!(parse("hr:0"), Address::hr(0));
        assert_eq!(parse("HR:9"), Address::hr(9));
        assert_eq!(parse("hr:0x10"), Address::hr(16));
        assert_eq!(parse(" ir:65535 ").table, Table::InputRegister);
        assert_eq!(parse("coil:3").table, Table::Coil);
        assert_eq!(parse("di:3").table, Table::DiscreteInput);
        assert_eq!(parse("40001"), parse("hr:0"));
    }

    #[test]
    fn refused_addresses_say_why() {
        for (text, why) in [
            ("1", "ambiguous"),
            ("4001", "ambiguous"),
            ("4000001", "ambiguous"),
            ("40000", "out of range"),
            ("465537", "out of range"),
            ("20001", "names no table"),
            ("x:1", "unknown table prefix"),
            ("hr:65536", "0..=65535"),
            ("hr:-1", "0..=65535"),
            ("", "is not an address"),
            ("4000a", "is not an address"),
        ] {
            let e = text.parse::<Address>().unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains("hr:0"), "{text}: the message shows how: {e}");
        }
    }

    #[test]
    fn display_shows_both_forms() {
        assert_eq!(parse("40010").to_string(), "40010 (hr:9)");
        assert_eq!(parse("hr:9999").to_string(), "410000 (hr:9999)");
        assert_eq!(parse("00001").to_string(), "00001 (coil:0)");
    }

    #[test]
    fn toml_strings_and_integers() {
        #[derive(serde::Deserialize)]
        struct T {
            a: Address,
        }
        let t: T = toml::from_str("a = 40002").unwrap();
        assert_eq!(t.a, Address::hr(1));
        let t: T = toml::from_str("a = \"ir:4\"").unwrap();
        assert_eq!(t.a.table, Table::InputRegister);
        let e = toml::from_str::<T>("a = 1").err().unwrap().to_string();
        assert!(e.contains("ambiguous"), "{e}");
    }
}
