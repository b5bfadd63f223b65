//! Modbus register decoding and address parsing.
//!
//! Invariants checked:
//! - no panic, for every type, word order, byte order, bit, scale and offset, and any number of
//!   registers (a tag's block may be short or long when a device misbehaves);
//! - with exactly the registers a numeric type occupies and no scaling, the value equals an
//!   independent reading of the module's table: the registers' bytes on the wire, put in ABCD
//!   order (CDAB reverses the registers, BADC swaps the bytes in each, DCBA does both), read
//!   big-endian;
//! - a bit of a register is that bit; `string` stops at the first NUL and round-trips through
//!   `string_registers`; `bytes` has two bytes per register;
//! - an address that parses displays as `<Modicon> (<prefix>:<offset>)`, and both forms parse
//!   back to the same address.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tracegate_drivers::modbus::address::Address;
use tracegate_drivers::modbus::codec::{
    ByteOrder, DataType, Decoding, Value, WordOrder, bytes, string, string_registers,
};

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Type {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    String,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Decode {
        data_type: Type,
        word_order: u8,
        low_first: bool,
        bit: Option<u8>,
        scale: Option<f64>,
        offset: Option<f64>,
        regs: Vec<u16>,
    },
    Text {
        text: Vec<u8>,
        registers: u8,
        low_first: bool,
    },
    Address(String),
}

fn data_type(t: Type) -> DataType {
    match t {
        Type::Bool => DataType::Bool,
        Type::U16 => DataType::U16,
        Type::I16 => DataType::I16,
        Type::U32 => DataType::U32,
        Type::I32 => DataType::I32,
        Type::U64 => DataType::U64,
        Type::I64 => DataType::I64,
        Type::F32 => DataType::F32,
        Type::F64 => DataType::F64,
        Type::String => DataType::String,
    }
}

/// The registers' wire bytes in ABCD order, as the module documentation describes each order.
fn abcd(regs: &[u16], order: WordOrder) -> Vec<u8> {
    let mut wire: Vec<u8> = regs.iter().flat_map(|r| r.to_be_bytes()).collect();
    match order {
        WordOrder::ABCD => {}
        WordOrder::DCBA => wire.reverse(),
        WordOrder::CDAB => {
            let mut words: Vec<[u8; 2]> = wire.chunks(2).map(|c| [c[0], c[1]]).collect();
            words.reverse();
            wire = words.concat();
        }
        WordOrder::BADC => wire.chunks_mut(2).for_each(|c| c.swap(0, 1)),
    }
    wire
}

fn same_float(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fuzz_target!(|input: Input| match input {
    Input::Decode {
        data_type: t,
        word_order,
        low_first,
        bit,
        scale,
        offset,
        regs,
    } => {
        let word_order = [
            WordOrder::ABCD,
            WordOrder::CDAB,
            WordOrder::BADC,
            WordOrder::DCBA,
        ][usize::from(word_order % 4)];
        let byte_order = if low_first {
            ByteOrder::LowFirst
        } else {
            ByteOrder::HighFirst
        };
        let dt = data_type(t);
        let d = Decoding {
            data_type: dt,
            word_order,
            byte_order,
            bit,
            scale,
            offset,
        };
        let value = d.registers(&regs);
        let _ = value.to_string();
        let _ = value.is_true();
        let _ = value.as_integer();
        if scale.is_some() || offset.is_some() {
            if dt.is_numeric() {
                assert!(
                    matches!(value, Value::Float(_)),
                    "scaled {dt:?} gave {value:?}"
                );
            }
            return;
        }
        let plain = Decoding {
            bit,
            ..Decoding::plain(dt)
        };
        match dt {
            DataType::Bool => {
                let expected = match (bit, regs.first()) {
                    (Some(b), Some(r)) => (r >> b.min(15)) & 1 == 1,
                    (None, Some(r)) => *r != 0,
                    (_, None) => false,
                };
                assert_eq!(plain.registers(&regs), Value::Bool(expected));
            }
            DataType::String => {
                let Value::Text(text) = &value else {
                    panic!("string gave {value:?}")
                };
                assert!(!text.contains(&0));
                let all = bytes(&regs, byte_order);
                assert_eq!(all.len(), regs.len() * 2);
                assert!(all.starts_with(text));
                assert!(text.len() == all.len() || all[text.len()] == 0);
            }
            _ => {
                let n = usize::from(dt.fixed_registers().unwrap());
                if regs.len() != n {
                    return;
                }
                let w = abcd(&regs, word_order);
                let expected = match dt {
                    DataType::U16 => Value::Unsigned(u64::from(u16::from_be_bytes([w[0], w[1]]))),
                    DataType::I16 => Value::Signed(i64::from(i16::from_be_bytes([w[0], w[1]]))),
                    DataType::U32 => {
                        Value::Unsigned(u64::from(u32::from_be_bytes(w[..4].try_into().unwrap())))
                    }
                    DataType::I32 => {
                        Value::Signed(i64::from(i32::from_be_bytes(w[..4].try_into().unwrap())))
                    }
                    DataType::U64 => {
                        Value::Unsigned(u64::from_be_bytes(w[..8].try_into().unwrap()))
                    }
                    DataType::I64 => Value::Signed(i64::from_be_bytes(w[..8].try_into().unwrap())),
                    DataType::F32 => {
                        let x = f32::from_be_bytes(w[..4].try_into().unwrap());
                        let Value::Float(got) = value else {
                            panic!("f32 gave {value:?}")
                        };
                        // Widened through its shortest decimal form: the same f32 again.
                        assert!(
                            same_float(f64::from(got as f32), f64::from(x)),
                            "{got} vs {x}"
                        );
                        return;
                    }
                    DataType::F64 => {
                        let x = f64::from_be_bytes(w[..8].try_into().unwrap());
                        let Value::Float(got) = value else {
                            panic!("f64 gave {value:?}")
                        };
                        assert!(same_float(got, x), "{got} vs {x}");
                        return;
                    }
                    DataType::Bool | DataType::String => unreachable!(),
                };
                assert_eq!(value, expected, "{dt:?} {word_order:?} {regs:04X?}");
            }
        }
    }
    Input::Text {
        text,
        registers,
        low_first,
    } => {
        let order = if low_first {
            ByteOrder::LowFirst
        } else {
            ByteOrder::HighFirst
        };
        let registers = usize::from(registers);
        let regs = string_registers(&text, registers, order);
        assert_eq!(regs.len(), registers);
        let mut expected = text.clone();
        expected.truncate(registers * 2);
        if let Some(nul) = expected.iter().position(|&b| b == 0) {
            expected.truncate(nul);
        }
        assert_eq!(string(&regs, order), expected);
    }
    Input::Address(text) => {
        let Ok(address) = text.parse::<Address>() else {
            return;
        };
        let shown = address.to_string();
        let (modicon, rest) = shown.split_once(" (").expect("display form");
        let zero_based = rest.strip_suffix(')').expect("display form");
        assert_eq!(
            modicon.parse::<Address>().as_ref(),
            Ok(&address),
            "{text:?} → {shown:?}"
        );
        assert_eq!(
            zero_based.parse::<Address>().as_ref(),
            Ok(&address),
            "{text:?} → {shown:?}"
        );
        assert_eq!(address.plus(0), address);
    }
});
