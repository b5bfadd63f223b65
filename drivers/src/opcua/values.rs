//! Conversions between OPC UA values and what the handshake and the events need, pure.

use opcua::types::{DataValue, Variant};

/// The bytes of a code node's value: a String, a ByteString, or an array of Byte/SByte (an S7
/// `Array[..] of Byte`/`Char`), cut at the first NUL. `None` for an empty, null or non-code
/// value (nothing handed over).
pub fn code_bytes(value: &Variant) -> Option<Vec<u8>> {
    let mut bytes = match value {
        Variant::String(s) => s.value().as_ref()?.as_bytes().to_vec(),
        Variant::ByteString(b) => b.value.clone()?,
        Variant::Array(a) => a
            .values
            .iter()
            .map(|v| match v {
                Variant::Byte(b) => Some(*b),
                Variant::SByte(b) => Some(*b as u8),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()?,
        Variant::Empty => return None,
        other => text(other).into_bytes(),
    };
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(nul);
    }
    Some(bytes)
}

/// An integer node's value as a counter (negative values and non-integers are `None`).
pub fn counter(value: &Variant) -> Option<u64> {
    match value {
        Variant::Byte(v) => Some(u64::from(*v)),
        Variant::SByte(v) => u64::try_from(*v).ok(),
        Variant::UInt16(v) => Some(u64::from(*v)),
        Variant::Int16(v) => u64::try_from(*v).ok(),
        Variant::UInt32(v) => Some(u64::from(*v)),
        Variant::Int32(v) => u64::try_from(*v).ok(),
        Variant::UInt64(v) => Some(*v),
        Variant::Int64(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

/// `value` as a Variant of the same integer type as `like` (servers refuse a Write whose type
/// differs from the node's: an Int32 to a UInt16 node is BadTypeMismatch). `None` when `value`
/// does not fit; Int32 when `like` is not an integer (empty, for example).
pub fn integer_like(like: &Variant, value: i64) -> Option<Variant> {
    Some(match like {
        Variant::Byte(_) => Variant::Byte(u8::try_from(value).ok()?),
        Variant::SByte(_) => Variant::SByte(i8::try_from(value).ok()?),
        Variant::UInt16(_) => Variant::UInt16(u16::try_from(value).ok()?),
        Variant::Int16(_) => Variant::Int16(i16::try_from(value).ok()?),
        Variant::UInt32(_) => Variant::UInt32(u32::try_from(value).ok()?),
        Variant::UInt64(_) => Variant::UInt64(u64::try_from(value).ok()?),
        Variant::Int64(_) => Variant::Int64(value),
        _ => Variant::Int32(i32::try_from(value).ok()?),
    })
}

/// A context node's value as an attribute string.
pub fn text(value: &Variant) -> String {
    match value {
        Variant::Empty => String::new(),
        Variant::String(s) => s.value().clone().unwrap_or_default(),
        Variant::ByteString(_) | Variant::Array(_) => code_bytes(value)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        Variant::LocalizedText(t) => t.text.to_string(),
        other => other.to_string(),
    }
}

/// The value of a DataValue whose status is good (or absent), else `None`.
pub fn good(dv: &DataValue) -> Option<&Variant> {
    match dv.status {
        Some(s) if !s.is_good() => None,
        _ => dv.value.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opcua::types::{ByteString, StatusCode};

    #[test]
    fn codes_come_from_strings_byte_strings_and_byte_arrays() {
        assert_eq!(code_bytes(&Variant::from("ABC")), Some(b"ABC".to_vec()));
        assert_eq!(
            code_bytes(&Variant::ByteString(ByteString::from(b"]d2X\0\0".to_vec()))),
            Some(b"]d2X".to_vec())
        );
        assert_eq!(
            code_bytes(&Variant::from(vec![b'A', b'B', 0u8, b'C'])),
            Some(b"AB".to_vec())
        );
        assert_eq!(code_bytes(&Variant::Empty), None);
        assert_eq!(
            code_bytes(&Variant::from(opcua::types::UAString::null())),
            None
        );
        assert_eq!(code_bytes(&Variant::from(42u32)), Some(b"42".to_vec()));
    }

    #[test]
    fn counters_and_acks_keep_the_node_type() {
        assert_eq!(counter(&Variant::UInt16(7)), Some(7));
        assert_eq!(counter(&Variant::Int32(-1)), None);
        assert_eq!(counter(&Variant::from("7")), None);
        assert_eq!(
            integer_like(&Variant::UInt16(0), 9),
            Some(Variant::UInt16(9))
        );
        assert_eq!(integer_like(&Variant::Int16(0), 70_000), None);
        assert_eq!(integer_like(&Variant::Empty, 3), Some(Variant::Int32(3)));
        assert_eq!(
            integer_like(&Variant::UInt64(1), 3),
            Some(Variant::UInt64(3))
        );
    }

    #[test]
    fn context_values_become_text_and_bad_values_are_none() {
        assert_eq!(text(&Variant::from("WO-1")), "WO-1");
        assert_eq!(text(&Variant::from(3.5f64)), "3.5");
        assert_eq!(text(&Variant::Empty), "");
        let bad = DataValue {
            value: Some(Variant::from(1)),
            status: Some(StatusCode::BadNodeIdUnknown),
            ..Default::default()
        };
        assert_eq!(good(&bad), None);
        assert_eq!(good(&DataValue::value_only(1)), Some(&Variant::Int32(1)));
    }
}
