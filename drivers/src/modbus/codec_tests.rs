//! Table tests of register decoding: every type in every word order, strings, bits, scaling.

use super::*;

fn decode(data_type: DataType, order: WordOrder, regs: &[u16]) -> Value {
    Decoding {
        word_order: order,
        ..Decoding::plain(data_type)
    }
    .registers(regs)
}

#[test]
fn f32_in_the_four_word_orders_of_the_domain_table() {
    // 123.45 = 0x42F6E666 (domain.md §4.1).
    for (order, regs) in [
        (WordOrder::ABCD, [0x42F6, 0xE666]),
        (WordOrder::CDAB, [0xE666, 0x42F6]),
        (WordOrder::BADC, [0xF642, 0x66E6]),
        (WordOrder::DCBA, [0x66E6, 0xF642]),
    ] {
        assert_eq!(
            decode(DataType::F32, order, &regs),
            Value::Float(123.45),
            "{order:?}"
        );
    }
}

#[test]
fn every_integer_type_in_every_word_order() {
    use WordOrder::*;
    // (type, order, registers, expected)
    let cases: &[(DataType, WordOrder, &[u16], Value)] = &[
        (DataType::U16, ABCD, &[0x1234], Value::Unsigned(0x1234)),
        (DataType::U16, CDAB, &[0x1234], Value::Unsigned(0x1234)),
        (DataType::U16, BADC, &[0x1234], Value::Unsigned(0x3412)),
        (DataType::U16, DCBA, &[0x1234], Value::Unsigned(0x3412)),
        (DataType::I16, ABCD, &[0xFFFE], Value::Signed(-2)),
        (DataType::I16, BADC, &[0xFEFF], Value::Signed(-2)),
        (DataType::I16, ABCD, &[0x7FFF], Value::Signed(32767)),
        (
            DataType::U32,
            ABCD,
            &[0x0001, 0x0002],
            Value::Unsigned(0x0001_0002),
        ),
        (
            DataType::U32,
            CDAB,
            &[0x0002, 0x0001],
            Value::Unsigned(0x0001_0002),
        ),
        (
            DataType::U32,
            BADC,
            &[0x0100, 0x0200],
            Value::Unsigned(0x0001_0002),
        ),
        (
            DataType::U32,
            DCBA,
            &[0x0200, 0x0100],
            Value::Unsigned(0x0001_0002),
        ),
        (DataType::I32, ABCD, &[0xFFFF, 0xFFFF], Value::Signed(-1)),
        (DataType::I32, CDAB, &[0xFFFE, 0xFFFF], Value::Signed(-2)),
        (
            DataType::I32,
            ABCD,
            &[0x8000, 0x0000],
            Value::Signed(i64::from(i32::MIN)),
        ),
        (
            DataType::U64,
            ABCD,
            &[0x0102, 0x0304, 0x0506, 0x0708],
            Value::Unsigned(0x0102_0304_0506_0708),
        ),
        (
            DataType::U64,
            CDAB,
            &[0x0708, 0x0506, 0x0304, 0x0102],
            Value::Unsigned(0x0102_0304_0506_0708),
        ),
        (
            DataType::U64,
            BADC,
            &[0x0201, 0x0403, 0x0605, 0x0807],
            Value::Unsigned(0x0102_0304_0506_0708),
        ),
        (
            DataType::U64,
            DCBA,
            &[0x0807, 0x0605, 0x0403, 0x0201],
            Value::Unsigned(0x0102_0304_0506_0708),
        ),
        (
            DataType::I64,
            ABCD,
            &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFF6],
            Value::Signed(-10),
        ),
        (
            DataType::I64,
            CDAB,
            &[0xFFF6, 0xFFFF, 0xFFFF, 0xFFFF],
            Value::Signed(-10),
        ),
    ];
    for (t, order, regs, expected) in cases {
        assert_eq!(
            &decode(*t, *order, regs),
            expected,
            "{t:?} {order:?} {regs:04X?}"
        );
    }
}

#[test]
fn f64_in_every_word_order() {
    // -2.5 = 0xC004_0000_0000_0000; 1e300 exercises every word.
    for value in [-2.5f64, 1e300, f64::MIN_POSITIVE] {
        let bits = value.to_bits();
        let words = [
            (bits >> 48) as u16,
            (bits >> 32) as u16,
            (bits >> 16) as u16,
            bits as u16,
        ];
        let swapped = words.map(u16::swap_bytes);
        let mut reversed = words;
        reversed.reverse();
        let mut both = swapped;
        both.reverse();
        for (order, regs) in [
            (WordOrder::ABCD, words),
            (WordOrder::CDAB, reversed),
            (WordOrder::BADC, swapped),
            (WordOrder::DCBA, both),
        ] {
            assert_eq!(
                decode(DataType::F64, order, &regs),
                Value::Float(value),
                "{value} {order:?}"
            );
        }
    }
}

#[test]
fn strings_high_or_low_byte_first_end_at_the_first_nul() {
    let regs = [0x4142, 0x4344, 0x4500, 0x4647]; // "ABCDE\0FG"
    assert_eq!(string(&regs, ByteOrder::HighFirst), b"ABCDE");
    assert_eq!(string(&regs, ByteOrder::LowFirst), b"BADC");
    // Odd length, low byte first: "BADCE" is stored as 0x4142 0x4344 0x0045.
    assert_eq!(
        string(&[0x4142, 0x4344, 0x0045], ByteOrder::LowFirst),
        b"BADCE"
    );
    // No NUL: every byte counts, including trailing spaces.
    assert_eq!(string(&[0x4120, 0x2020], ByteOrder::HighFirst), b"A   ");
    assert_eq!(string(&[0x0041], ByteOrder::HighFirst), b"");
    assert_eq!(string(&[], ByteOrder::HighFirst), b"");
    // Non-UTF-8 bytes and GS (0x1D) survive.
    assert_eq!(
        string(&[0x1DFF, 0x3100], ByteOrder::HighFirst),
        [0x1D, 0xFF, b'1']
    );
}

#[test]
fn string_registers_round_trip() {
    for order in [ByteOrder::HighFirst, ByteOrder::LowFirst] {
        for text in [&b""[..], b"A", b"AB", b"]d2010950600013435217261231"] {
            let regs = string_registers(text, 20, order);
            assert_eq!(regs.len(), 20);
            assert_eq!(string(&regs, order), text, "{order:?}");
        }
    }
    assert_eq!(
        string_registers(b"ABC", 2, ByteOrder::HighFirst),
        [0x4142, 0x4300]
    );
    assert_eq!(
        string_registers(b"ABC", 2, ByteOrder::LowFirst),
        [0x4241, 0x0043]
    );
}

#[test]
fn string_tags_decode_with_their_byte_order() {
    let d = Decoding {
        byte_order: ByteOrder::LowFirst,
        ..Decoding::plain(DataType::String)
    };
    assert_eq!(
        d.registers(&[0x5257, 0x2D4F, 0x3731]),
        Value::Text(b"WRO-17".to_vec())
    );
    assert_eq!(Value::Text(b"WO-17".to_vec()).to_string(), "WO-17");
}

#[test]
fn bools_from_registers_by_bit_or_non_zero() {
    let bit = |b| Decoding {
        bit: Some(b),
        ..Decoding::plain(DataType::Bool)
    };
    assert_eq!(bit(0).registers(&[0b1010]), Value::Bool(false));
    assert_eq!(bit(1).registers(&[0b1010]), Value::Bool(true));
    assert_eq!(bit(15).registers(&[0x8000]), Value::Bool(true));
    let plain = Decoding::plain(DataType::Bool);
    assert_eq!(plain.registers(&[0]), Value::Bool(false));
    assert_eq!(plain.registers(&[0x0100]), Value::Bool(true));
}

#[test]
fn scaling_turns_numbers_into_floats() {
    let scaled = |t, scale, offset, regs: &[u16]| {
        Decoding {
            scale,
            offset,
            ..Decoding::plain(t)
        }
        .registers(regs)
    };
    // 2345 tenths of a degree → 234.5.
    assert_eq!(
        scaled(DataType::U16, Some(0.1), None, &[2345]),
        Value::Float(2345.0 * 0.1)
    );
    // i16 -40 with scale 0.5 and offset 100 → 80.
    assert_eq!(
        scaled(DataType::I16, Some(0.5), Some(100.0), &[(-40i16) as u16]),
        Value::Float(80.0)
    );
    // Offset alone.
    assert_eq!(
        scaled(DataType::U32, None, Some(-1.0), &[0, 10]),
        Value::Float(9.0)
    );
    // Floats scale too; strings and bools are left alone.
    assert_eq!(
        scaled(DataType::F32, Some(2.0), None, &[0x3F80, 0x0000]),
        Value::Float(2.0)
    );
    assert_eq!(
        scaled(DataType::Bool, Some(2.0), None, &[1]),
        Value::Bool(true)
    );
    // No scaling keeps integers exact.
    assert_eq!(
        scaled(DataType::U64, None, None, &[0xFFFF; 4]),
        Value::Unsigned(u64::MAX)
    );
}

#[test]
fn attribute_text_of_each_value() {
    assert_eq!(Value::Bool(true).to_string(), "true");
    assert_eq!(Value::Unsigned(42).to_string(), "42");
    assert_eq!(Value::Signed(-7).to_string(), "-7");
    assert_eq!(Value::Float(234.5).to_string(), "234.5");
    // An f32 register pair holding 0.1 reads as 0.1, not as its f64 widening.
    let tenth = Decoding::plain(DataType::F32).registers(&[0x3DCC, 0xCCCD]);
    assert_eq!(tenth.to_string(), "0.1");
    assert_eq!(Value::Text(vec![b'A', 0xFF]).to_string(), "A\u{FFFD}");
}

#[test]
fn sizes_and_kinds_of_types() {
    assert_eq!(DataType::U16.fixed_registers(), Some(1));
    assert_eq!(DataType::F32.fixed_registers(), Some(2));
    assert_eq!(DataType::I64.fixed_registers(), Some(4));
    assert_eq!(DataType::String.fixed_registers(), None);
    assert!(DataType::I32.is_integer() && !DataType::F32.is_integer());
    assert!(DataType::F64.is_numeric() && !DataType::Bool.is_numeric());
}
