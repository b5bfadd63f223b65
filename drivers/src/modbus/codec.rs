//! Register decoding, pure: data types, word orders, strings, bits and scaling.
//!
//! Every Modbus register is a big-endian 16-bit word. Values wider than one register are spread
//! over consecutive registers in a vendor-specific order, named after the bytes of the value
//! `0xAABBCCDD` as they appear on the wire (domain.md §4.1):
//!
//! | `word_order` | registers of 123.45f32 = `0x42F6E666` | meaning |
//! |---|---|---|
//! | `ABCD` | `42F6 E666` | big-endian (Modicon, Siemens, most PLCs); the default |
//! | `CDAB` | `E666 42F6` | low word first ("word swap"; Schneider, many meters) |
//! | `BADC` | `F642 66E6` | bytes swapped inside each word |
//! | `DCBA` | `66E6 F642` | little-endian |
//!
//! For 64-bit values the same rule extends to four registers: `CDAB` reverses the register
//! order, `BADC` swaps the bytes of each register, `DCBA` does both. For one-register values
//! (`u16`, `i16`), `BADC` and `DCBA` swap the two bytes and `CDAB` changes nothing.
//!
//! Strings pack two characters per register, high byte first (`byte_order = "high_first"`,
//! the default) or low byte first (`"low_first"`, some Modicon-style devices). A string ends at
//! its first NUL byte or after its last register.

use std::fmt;

use serde::Deserialize;

/// A tag's type as configured (`type = "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// Characters, two per register; the tag says how many registers.
    String,
}

impl DataType {
    /// Registers a numeric type occupies; `None` for `bool` and `string`, whose size the tag
    /// decides.
    pub fn fixed_registers(self) -> Option<u16> {
        match self {
            DataType::U16 | DataType::I16 => Some(1),
            DataType::U32 | DataType::I32 | DataType::F32 => Some(2),
            DataType::U64 | DataType::I64 | DataType::F64 => Some(4),
            DataType::Bool | DataType::String => None,
        }
    }

    /// True for the integer types (a sequence counter must be one).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::U16
                | DataType::I16
                | DataType::U32
                | DataType::I32
                | DataType::U64
                | DataType::I64
        )
    }

    /// True for the types `scale` and `offset` apply to.
    pub fn is_numeric(self) -> bool {
        self.is_integer() || matches!(self, DataType::F32 | DataType::F64)
    }

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::U16 => "u16",
            DataType::I16 => "i16",
            DataType::U32 => "u32",
            DataType::I32 => "i32",
            DataType::U64 => "u64",
            DataType::I64 => "i64",
            DataType::F32 => "f32",
            DataType::F64 => "f64",
            DataType::String => "string",
        }
    }
}

/// The order of the bytes of a multi-register value; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum WordOrder {
    #[default]
    #[serde(alias = "abcd")]
    ABCD,
    #[serde(alias = "cdab")]
    CDAB,
    #[serde(alias = "badc")]
    BADC,
    #[serde(alias = "dcba")]
    DCBA,
}

impl WordOrder {
    fn swaps_words(self) -> bool {
        matches!(self, WordOrder::CDAB | WordOrder::DCBA)
    }

    fn swaps_bytes(self) -> bool {
        matches!(self, WordOrder::BADC | WordOrder::DCBA)
    }
}

/// The order of the two characters inside each register of a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByteOrder {
    /// The first character is the register's high byte (the Modbus norm).
    #[default]
    HighFirst,
    /// The first character is the low byte.
    LowFirst,
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    /// A string's bytes, up to its first NUL.
    Text(Vec<u8>),
}

impl Value {
    /// True for a set bit or a non-zero number; used by rising-edge triggers.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Unsigned(v) => *v != 0,
            Value::Signed(v) => *v != 0,
            Value::Float(v) => *v != 0.0,
            Value::Text(t) => !t.is_empty(),
        }
    }

    /// The value as a wide signed integer, for counters.
    pub fn as_integer(&self) -> Option<i128> {
        match self {
            Value::Unsigned(v) => Some(i128::from(*v)),
            Value::Signed(v) => Some(i128::from(*v)),
            Value::Bool(b) => Some(i128::from(*b)),
            Value::Float(_) | Value::Text(_) => None,
        }
    }
}

/// As attached to events: `true`/`false`, decimal integers, floats in Rust's shortest
/// round-trip form (`12.5`, `0.1`), strings as UTF-8 (invalid bytes replaced).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Unsigned(v) => write!(f, "{v}"),
            Value::Signed(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Text(t) => f.write_str(&String::from_utf8_lossy(t)),
        }
    }
}

/// How to turn a tag's registers (or bits) into a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    pub data_type: DataType,
    pub word_order: WordOrder,
    pub byte_order: ByteOrder,
    /// For `bool` from a register: the bit (0 = least significant); `None` = "register ≠ 0".
    pub bit: Option<u8>,
    /// `value * scale + offset`; either set turns a number into a float.
    pub scale: Option<f64>,
    pub offset: Option<f64>,
}

impl Decoding {
    /// Plain decoding of `data_type`: ABCD, high byte first, no bit, no scaling.
    pub fn plain(data_type: DataType) -> Decoding {
        Decoding {
            data_type,
            word_order: WordOrder::ABCD,
            byte_order: ByteOrder::HighFirst,
            bit: None,
            scale: None,
            offset: None,
        }
    }

    /// Decodes registers (the tag's own, exactly as many as it occupies).
    pub fn registers(&self, regs: &[u16]) -> Value {
        let value = match self.data_type {
            DataType::Bool => Value::Bool(match (self.bit, regs.first()) {
                (Some(bit), Some(r)) => (r >> bit.min(15)) & 1 == 1,
                (None, Some(r)) => *r != 0,
                (_, None) => false,
            }),
            DataType::String => Value::Text(string(regs, self.byte_order)),
            DataType::U16 => Value::Unsigned(self.wide(regs) as u16 as u64),
            DataType::I16 => Value::Signed(self.wide(regs) as u16 as i16 as i64),
            DataType::U32 => Value::Unsigned(self.wide(regs) as u32 as u64),
            DataType::I32 => Value::Signed(self.wide(regs) as u32 as i32 as i64),
            DataType::U64 => Value::Unsigned(self.wide(regs)),
            DataType::I64 => Value::Signed(self.wide(regs) as i64),
            DataType::F32 => Value::Float(widen(f32::from_bits(self.wide(regs) as u32))),
            DataType::F64 => Value::Float(f64::from_bits(self.wide(regs))),
        };
        self.scaled(value)
    }

    /// The registers put in ABCD order and joined into one big-endian number.
    fn wide(&self, regs: &[u16]) -> u64 {
        let mut words: Vec<u16> = regs.to_vec();
        if self.word_order.swaps_words() {
            words.reverse();
        }
        words.iter().fold(0u64, |acc, &w| {
            let w = if self.word_order.swaps_bytes() {
                w.swap_bytes()
            } else {
                w
            };
            (acc << 16) | u64::from(w)
        })
    }

    fn scaled(&self, value: Value) -> Value {
        if self.scale.is_none() && self.offset.is_none() {
            return value;
        }
        let x = match value {
            Value::Unsigned(v) => v as f64,
            Value::Signed(v) => v as f64,
            Value::Float(v) => v,
            other => return other,
        };
        Value::Float(x * self.scale.unwrap_or(1.0) + self.offset.unwrap_or(0.0))
    }
}

/// An `f32` as the `f64` with the same shortest decimal form, so that 0.1f32 is reported as
/// `0.1`, not `0.10000000149011612`.
fn widen(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// A string's bytes from its registers, up to the first NUL.
pub fn string(regs: &[u16], order: ByteOrder) -> Vec<u8> {
    let mut out = bytes(regs, order);
    if let Some(nul) = out.iter().position(|&b| b == 0) {
        out.truncate(nul);
    }
    out
}

/// Every byte of `regs`, two per register in `order` (for a string whose length is given
/// separately).
pub fn bytes(regs: &[u16], order: ByteOrder) -> Vec<u8> {
    regs.iter()
        .flat_map(|r| {
            let [hi, lo] = r.to_be_bytes();
            match order {
                ByteOrder::HighFirst => [hi, lo],
                ByteOrder::LowFirst => [lo, hi],
            }
        })
        .collect()
}

/// The registers that hold `text` (NUL-padded to `registers`); the inverse of [`string`], used
/// by tests and the simulated PLC.
pub fn string_registers(text: &[u8], registers: usize, order: ByteOrder) -> Vec<u16> {
    let mut bytes = text.to_vec();
    bytes.resize(registers * 2, 0);
    bytes
        .chunks(2)
        .map(|pair| match order {
            ByteOrder::HighFirst => u16::from_be_bytes([pair[0], pair[1]]),
            ByteOrder::LowFirst => u16::from_le_bytes([pair[0], pair[1]]),
        })
        .collect()
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
