//! Whole-string rules over the elements found: repeated AIs, mandatory pairings (an attribute
//! needs its key) and exclusive pairings. Pure; shared by element strings and Digital Links.
//!
//! GS1 evaluates pairings over everything printed on an item, possibly across several symbols;
//! here they are evaluated per scan, which is what a station receives.

use crate::ai_table::{lookup, matches_pattern};
use crate::data::Element;

/// A whole-string rule broken. Its `Display` text goes into [`crate::Gs1Data::errors`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The same AI twice with different values.
    #[error("AI {ai} appears more than once with different values ({first:?} and {second:?})")]
    Conflict {
        /// The AI.
        ai: String,
        /// Its first value.
        first: String,
        /// A different later value.
        second: String,
    },
    /// An attribute without any of the AIs it must travel with.
    #[error("AI {ai} ({title}) requires AI {}", .alternatives.join(" or "))]
    Missing {
        /// The attribute's AI.
        ai: String,
        /// Its title.
        title: &'static str,
        /// AIs of which one must be present (`n` = any digit).
        alternatives: Vec<&'static str>,
    },
    /// Two AIs that must not appear together.
    #[error("AI {ai} must not appear together with AI {other}")]
    Exclusive {
        /// The first AI, in string order.
        ai: String,
        /// The second.
        other: String,
    },
}

/// Checks every whole-string rule and returns the broken ones, each reported once.
pub(crate) fn check(elements: &[Element]) -> Vec<RuleError> {
    let mut errors = Vec::new();
    conflicts(elements, &mut errors);
    requirements(elements, &mut errors);
    exclusions(elements, &mut errors);
    errors
}

fn conflicts(elements: &[Element], errors: &mut Vec<RuleError>) {
    for (i, a) in elements.iter().enumerate() {
        if elements[..i].iter().any(|e| e.ai == a.ai) {
            continue; // reported from its first occurrence
        }
        if let Some(b) = elements[i + 1..]
            .iter()
            .find(|b| b.ai == a.ai && b.value != a.value)
        {
            errors.push(RuleError::Conflict {
                ai: a.ai.clone(),
                first: a.value.clone(),
                second: b.value.clone(),
            });
        }
    }
}

fn requirements(elements: &[Element], errors: &mut Vec<RuleError>) {
    let present = |pattern: &str| elements.iter().any(|e| matches_pattern(&e.ai, pattern));
    for (i, el) in elements.iter().enumerate() {
        if elements[..i].iter().any(|e| e.ai == el.ai) {
            continue;
        }
        let Some(entry) = lookup(&el.ai) else {
            continue;
        };
        for alternatives in entry.req {
            if !alternatives.iter().any(|p| present(p)) {
                errors.push(RuleError::Missing {
                    ai: el.ai.clone(),
                    title: entry.title,
                    alternatives: alternatives.to_vec(),
                });
            }
        }
    }
}

fn exclusions(elements: &[Element], errors: &mut Vec<RuleError>) {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for a in elements {
        let Some(entry) = lookup(&a.ai) else { continue };
        for b in elements.iter().filter(|b| b.ai != a.ai) {
            let excluded = entry.ex.iter().any(|p| matches_pattern(&b.ai, p))
                || (entry.single && entry.contains(&b.ai));
            let key = if a.ai < b.ai {
                (&*a.ai, &*b.ai)
            } else {
                (&*b.ai, &*a.ai)
            };
            if excluded && !seen.contains(&key) {
                seen.push(key);
                errors.push(RuleError::Exclusive {
                    ai: a.ai.clone(),
                    other: b.ai.clone(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::build;

    fn msgs(pairs: &[(&str, &str)]) -> Vec<String> {
        let elements: Vec<Element> = pairs
            .iter()
            .map(|(ai, v)| build(ai, lookup(ai).unwrap(), v.as_bytes(), 2026))
            .collect();
        check(&elements).iter().map(ToString::to_string).collect()
    }

    const GTIN: (&str, &str) = ("01", "09506000134352");

    #[test]
    fn attributes_need_their_key() {
        assert!(msgs(&[GTIN, ("10", "A"), ("17", "261231"), ("21", "S")]).is_empty());
        assert_eq!(
            msgs(&[("10", "A"), ("17", "261231")]),
            [
                "AI 10 (BATCH/LOT) requires AI 01 or 02 or 8006 or 8026",
                "AI 17 (EXPIRY) requires AI 01 or 02 or 255 or 8006 or 8026",
            ]
        );
        assert_eq!(
            msgs(&[("21", "S")]),
            ["AI 21 (SERIAL) requires AI 01 or 8006"]
        );
        // A 3103 needs 01 or 02; 3303 accepts 00.
        assert_eq!(
            msgs(&[("00", "106141411234567897"), ("3103", "001250")]).len(),
            1
        );
        assert!(msgs(&[("00", "106141411234567897"), ("3303", "001250")]).is_empty());
    }

    #[test]
    fn repeated_ais() {
        assert!(msgs(&[GTIN, ("10", "A"), ("10", "A")]).is_empty());
        assert_eq!(
            msgs(&[GTIN, ("10", "A"), ("10", "B"), ("10", "C")]),
            ["AI 10 appears more than once with different values (\"A\" and \"B\")"]
        );
    }

    #[test]
    fn exclusive_pairs_reported_once() {
        assert_eq!(
            msgs(&[GTIN, ("02", "09506000134352"), ("37", "10")]),
            [
                "AI 01 must not appear together with AI 02",
                "AI 01 must not appear together with AI 37"
            ]
        );
        assert_eq!(
            msgs(&[GTIN, ("3102", "001250"), ("3103", "001250")]),
            ["AI 3102 must not appear together with AI 3103"]
        );
        // Different measure families may be combined; 91–99 are independent.
        assert!(
            msgs(&[
                GTIN,
                ("3102", "001250"),
                ("3302", "001300"),
                ("91", "A"),
                ("92", "B")
            ])
            .is_empty()
        );
    }
}
