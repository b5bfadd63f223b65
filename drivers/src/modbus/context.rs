//! The line context on the PLC: MES's work order, batch… written into holding registers so
//! the line's HMI shows what the agent stamps on every event (`[[sources.context_tags]]`).
//!
//! [`writes`] is pure: the context values in, the register writes out. The session calls it
//! when the context changed and at the start of every session (a PLC that restarted lost it).

use serde::Deserialize;

use super::address::{Address, Table};
use super::codec::{ByteOrder, string_registers};
use crate::reading::LineContext;

/// `[[sources.context_tags]]`: where one context key is written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextTagConfig {
    /// The context key (as allowed in the agent's `[context]`), e.g. `work_order`. Required.
    pub key: String,
    /// The first holding register of the string (`40100`, `hr:99`). Required.
    pub address: Address,
    /// Registers reserved for the value, 2 characters each, NUL-padded; a longer value is cut
    /// (and logged). Required, 1–123.
    pub registers: u16,
    /// `high_first` (default) or `low_first`: which byte of a register holds the first
    /// character.
    #[serde(default)]
    pub byte_order: ByteOrder,
}

/// One register write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextWrite {
    pub start: u16,
    pub values: Vec<u16>,
    /// The value was longer than the registers hold.
    pub cut: bool,
}

/// The writes that put `context` on the PLC. A key the context does not hold is written
/// empty (all NUL), so a cleared value disappears from the HMI too.
pub fn writes(tags: &[ContextTagConfig], context: &LineContext) -> Vec<ContextWrite> {
    tags.iter()
        .map(|t| {
            let value = context
                .get(&t.key)
                .map(String::as_bytes)
                .unwrap_or_default();
            let room = usize::from(t.registers) * 2;
            ContextWrite {
                start: t.address.offset,
                values: string_registers(
                    &value[..value.len().min(room)],
                    usize::from(t.registers),
                    t.byte_order,
                ),
                cut: value.len() > room,
            }
        })
        .collect()
}

/// Checks the context tags; problems as (key, sentence).
pub fn validate(tags: &[ContextTagConfig], problems: &mut Vec<(String, String)>) {
    let mut keys = std::collections::HashSet::new();
    for (i, t) in tags.iter().enumerate() {
        let at = |k: &str| format!("context_tags[{i}].{k}");
        if t.address.table != Table::HoldingRegister {
            problems.push((at("address"), format!("context key `{}`: {} is not a holding register; context is written with FC 16 into 4xxxx registers", t.key, t.address)));
        }
        if !(1..=123).contains(&t.registers) {
            problems.push((
                at("registers"),
                format!(
                    "context key `{}`: registers {} is out of range 1..=123 (one write request)",
                    t.key, t.registers
                ),
            ));
        }
        if u32::from(t.address.offset) + u32::from(t.registers) > 65_536 {
            problems.push((
                at("registers"),
                format!(
                    "context key `{}`: the registers run past the end of the table",
                    t.key
                ),
            ));
        }
        if t.key.is_empty() || !keys.insert(t.key.as_str()) {
            problems.push((
                at("key"),
                format!("context key {:?} is empty or written twice", t.key),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, offset: u16, registers: u16) -> ContextTagConfig {
        ContextTagConfig {
            key: key.into(),
            address: Address::hr(offset),
            registers,
            byte_order: ByteOrder::HighFirst,
        }
    }

    #[test]
    fn values_become_nul_padded_registers_and_missing_keys_clear_them() {
        let ctx = LineContext::from([("work_order".to_string(), "WO-4711".to_string())]);
        let w = writes(&[tag("work_order", 99, 5), tag("batch", 120, 2)], &ctx);
        assert_eq!(w[0].start, 99);
        assert_eq!(w[0].values, [0x574F, 0x2D34, 0x3731, 0x3100, 0x0000]);
        assert!(!w[0].cut);
        assert_eq!(w[1].values, [0, 0]);
    }

    #[test]
    fn a_value_longer_than_its_registers_is_cut_and_said_so() {
        let ctx = LineContext::from([("batch".to_string(), "ABCDEFG".to_string())]);
        let w = writes(&[tag("batch", 0, 2)], &ctx);
        assert_eq!(w[0].values, [0x4142, 0x4344]);
        assert!(w[0].cut);
    }

    #[test]
    fn only_holding_registers_in_range_and_unique_keys() {
        let mut bad = tag("a", 0, 200);
        bad.address = Address {
            table: Table::InputRegister,
            offset: 0,
        };
        let mut p = Vec::new();
        validate(&[bad, tag("a", 10, 1)], &mut p);
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "context_tags[0].address",
                "context_tags[0].registers",
                "context_tags[1].key"
            ]
        );
    }
}
