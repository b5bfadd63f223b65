//! The line context on the PLC: MES's work order, batch… written into String nodes so the
//! line's HMI shows what the agent stamps on every event (`[[sources.context_tags]]`).
//!
//! [`writes`] is pure: the context values in, the node values out. The session writes them at
//! the start of every session and after every reconnect (a PLC that restarted lost them), and
//! whenever MES changes the context.

use serde::Deserialize;

use super::nodeid::NodeRef;
use crate::reading::LineContext;

/// `[[sources.context_tags]]`: the node one context key is written to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextTagConfig {
    /// The context key (as allowed in the agent's `[context]`), e.g. `work_order`. Required.
    pub key: String,
    /// The node the value is written to, a writable String node (an S7 `String[20]`, a
    /// CODESYS `STRING`), as in [`super::nodeid`]; `nsu=` is resolved at every connect.
    /// Required.
    pub node: String,
    /// Longest value the node takes, in characters; a longer value is cut (and logged). Set it
    /// to an S7 `String[n]`'s `n`: the PLC refuses a longer string instead of cutting it.
    /// Default: no limit.
    #[serde(default)]
    pub max_chars: Option<usize>,
}

/// The value for one context tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextWrite {
    /// The context key.
    pub key: String,
    /// What to write: the value, cut to `max_chars`; empty when the context does not hold
    /// the key (so a cleared value disappears from the HMI too).
    pub value: String,
    /// The value was longer than `max_chars`.
    pub cut: bool,
}

/// The values that put `context` on the PLC, one per tag, in the order of `tags`.
pub fn writes(tags: &[ContextTagConfig], context: &LineContext) -> Vec<ContextWrite> {
    tags.iter()
        .map(|t| {
            let value = context.get(&t.key).map(String::as_str).unwrap_or_default();
            let (value, cut) = match t.max_chars {
                Some(max) if value.chars().count() > max => {
                    (value.chars().take(max).collect(), true)
                }
                _ => (value.to_string(), false),
            };
            ContextWrite {
                key: t.key.clone(),
                value,
                cut,
            }
        })
        .collect()
}

/// Checks the context tags; problems as (key, sentence).
pub fn validate(tags: &[ContextTagConfig], problems: &mut Vec<(String, String)>) {
    let mut keys = std::collections::HashSet::new();
    for (i, t) in tags.iter().enumerate() {
        let at = |k: &str| format!("context_tags[{i}].{k}");
        if let Err(e) = t.node.parse::<NodeRef>() {
            problems.push((at("node"), format!("context key `{}`: {e}", t.key)));
        }
        if t.key.trim().is_empty() || !keys.insert(t.key.as_str()) {
            problems.push((
                at("key"),
                format!("context key {:?} is empty or written twice", t.key),
            ));
        }
        if t.max_chars == Some(0) {
            problems.push((
                at("max_chars"),
                format!(
                    "context key `{}`: max_chars 0 would always write an empty string",
                    t.key
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, max_chars: Option<usize>) -> ContextTagConfig {
        ContextTagConfig {
            key: key.into(),
            node: format!("ns=3;s=\"DB_Hmi\".\"{key}\""),
            max_chars,
        }
    }

    #[test]
    fn values_are_written_as_is_and_missing_keys_clear_the_node() {
        let ctx = LineContext::from([("work_order".to_string(), "WO-4711".to_string())]);
        let w = writes(&[tag("work_order", None), tag("batch", Some(8))], &ctx);
        assert_eq!(
            w,
            [
                ContextWrite {
                    key: "work_order".into(),
                    value: "WO-4711".into(),
                    cut: false
                },
                ContextWrite {
                    key: "batch".into(),
                    value: String::new(),
                    cut: false
                }
            ]
        );
    }

    #[test]
    fn a_value_longer_than_max_chars_is_cut_on_a_character_boundary_and_said_so() {
        let ctx = LineContext::from([("batch".to_string(), "Lös-0815".to_string())]);
        let w = writes(&[tag("batch", Some(3))], &ctx);
        assert_eq!((w[0].value.as_str(), w[0].cut), ("Lös", true));
        let w = writes(&[tag("batch", Some(8))], &ctx);
        assert_eq!((w[0].value.as_str(), w[0].cut), ("Lös-0815", false));
    }

    #[test]
    fn node_ids_must_parse_keys_be_unique_and_max_chars_above_zero() {
        let mut bad = tag("a", Some(0));
        bad.node = "DB_Hmi.a".into();
        let mut p = Vec::new();
        validate(&[bad, tag("a", None), tag(" ", None)], &mut p);
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "context_tags[0].node",
                "context_tags[0].max_chars",
                "context_tags[1].key",
                "context_tags[2].key"
            ]
        );
        assert!(
            p[0].1.contains("context key `a`") && p[0].1.contains("write it like"),
            "{}",
            p[0].1
        );
    }
}
