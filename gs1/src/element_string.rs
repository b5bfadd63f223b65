//! Parsing a GS1 element string (the data of a `]C1`, `]d2`, `]Q3` or `]e0` symbol).
//!
//! An element string is a sequence of AI + value. A predefined-length AI (01, 17, 3103…) may be
//! followed directly by the next AI; every other value runs up to the next GS (0x1D, the FNC1
//! separator) or the end. A missing GS after a variable value is only detectable when the merged
//! value breaks its AI's format (too long, illegal character); otherwise it is invisible: see the
//! `i3_lost_gs_is_undetectable` test.

use crate::ai_table::match_prefix;
use crate::data::{Element, Gs1Data};
use crate::{rules, value};

/// The GS1 separator (FNC1 as transmitted), ASCII group separator.
pub const GS: u8 = 0x1D;

/// Most elements one string may hold; more are an error (bounds the work on hostile input).
pub const MAX_ELEMENTS: usize = 64;

/// A structural problem of an element string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StructureError {
    /// Nothing to parse.
    #[error("the element string is empty")]
    Empty,
    /// A GS where an AI should start (two separators in a row, or a leading one beyond the first).
    #[error("unexpected GS separator at byte {0}")]
    UnexpectedGs(usize),
    /// No known AI at this position; parsing resumes after the next GS.
    #[error("unknown application identifier at byte {pos}: {found:?}")]
    UnknownAi {
        /// Byte offset in the input.
        pos: usize,
        /// The first few bytes there.
        found: String,
    },
    /// A predefined-length value cut short by a GS or by the end of the data.
    #[error("AI {ai} is truncated: {got} of {expected} characters")]
    Truncated {
        /// The AI.
        ai: String,
        /// Characters present.
        got: usize,
        /// Characters needed.
        expected: usize,
    },
    /// More than [`MAX_ELEMENTS`] elements.
    #[error("more than {MAX_ELEMENTS} elements; the rest is ignored")]
    TooManyElements,
}

/// Parses a GS1 element string into its elements, validating each and the whole.
///
/// `data` is what follows the symbology identifier; a single leading GS is tolerated, and so is a
/// single trailing GS. `reference_year` is the current year, for the YY century window. Never
/// panics: every problem becomes an error string in the result.
pub fn parse_element_string(data: &[u8], reference_year: i32) -> Gs1Data {
    let mut out = Gs1Data::default();
    let start = usize::from(data.first() == Some(&GS));
    if start >= data.len() {
        out.errors.push(StructureError::Empty.to_string());
        return out;
    }
    let mut pos = start;
    while pos < data.len() {
        if data[pos] == GS {
            out.errors
                .push(StructureError::UnexpectedGs(pos).to_string());
            pos += 1;
            continue;
        }
        if out.elements.len() == MAX_ELEMENTS {
            out.errors.push(StructureError::TooManyElements.to_string());
            break;
        }
        match next_element(data, pos, reference_year) {
            Ok((element, next)) => {
                out.elements.push(element);
                pos = next;
            }
            Err((error, next)) => {
                out.errors.push(error.to_string());
                pos = next;
            }
        }
    }
    out.errors
        .extend(rules::check(&out.elements).iter().map(ToString::to_string));
    out
}

/// Offset just past the next GS at or after `from`, or the end of `data`.
fn after_next_gs(data: &[u8], from: usize) -> usize {
    data[from..]
        .iter()
        .position(|&b| b == GS)
        .map_or(data.len(), |i| from + i + 1)
}

/// Reads the element starting at `pos`. Returns it with the offset where the next one starts, or
/// the structural error with the offset where parsing resumes.
fn next_element(
    data: &[u8],
    pos: usize,
    reference_year: i32,
) -> Result<(Element, usize), (StructureError, usize)> {
    let Some((entry, ai_len)) = match_prefix(&data[pos..]) else {
        let found = String::from_utf8_lossy(&data[pos..data.len().min(pos + 4)]).into_owned();
        return Err((
            StructureError::UnknownAi { pos, found },
            after_next_gs(data, pos),
        ));
    };
    // `match_prefix` only accepts ASCII digits, so this is the AI as text.
    let ai = String::from_utf8_lossy(&data[pos..pos + ai_len]).into_owned();
    let value_start = pos + ai_len;
    let rest = &data[value_start..];
    if entry.predefined {
        let expected = entry.max_len();
        let got = rest.iter().take(expected).take_while(|&&b| b != GS).count();
        if got < expected {
            let error = StructureError::Truncated { ai, got, expected };
            return Err((error, after_next_gs(data, value_start)));
        }
        let element = value::build(&ai, entry, &rest[..expected], reference_year);
        // A GS after a predefined-length value is superfluous but harmless.
        let mut next = value_start + expected;
        if data.get(next) == Some(&GS) {
            next += 1;
        }
        return Ok((element, next));
    }
    let len = rest.iter().position(|&b| b == GS).unwrap_or(rest.len());
    let mut element = value::build(&ai, entry, &rest[..len], reference_year);
    if len > entry.max_len() {
        if let Some(e) = element.error.as_mut() {
            e.push_str("; a GS separator may be missing");
        }
    }
    Ok((element, (value_start + len + 1).min(data.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Gs1Data {
        parse_element_string(s.replace("<GS>", "\u{1d}").as_bytes(), 2026)
    }

    fn pairs(d: &Gs1Data) -> Vec<(&str, &str)> {
        d.elements
            .iter()
            .map(|e| (e.ai.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn predefined_fields_run_into_the_next_ai() {
        let d = parse("0109506000134352172612311012");
        assert!(d.is_valid(), "{:?}", d.all_errors());
        assert_eq!(
            pairs(&d),
            [("01", "09506000134352"), ("17", "261231"), ("10", "12")]
        );
    }

    #[test]
    fn leading_and_trailing_gs_are_tolerated() {
        let d = parse("<GS>0109506000134352<GS>10ABC<GS>");
        assert!(d.is_valid(), "{:?}", d.all_errors());
        assert_eq!(pairs(&d), [("01", "09506000134352"), ("10", "ABC")]);
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(parse("").errors, ["the element string is empty"]);
        assert_eq!(parse("<GS>").errors, ["the element string is empty"]);
        let d = parse("<GS><GS>");
        assert_eq!(d.errors, ["unexpected GS separator at byte 1"]);
        assert!(!d.is_valid());
    }

    #[test]
    fn double_gs_is_reported() {
        let d = parse("0109506000134352<GS>10A<GS><GS>21B");
        assert_eq!(d.errors, ["unexpected GS separator at byte 21"]);
        assert_eq!(
            pairs(&d),
            [("01", "09506000134352"), ("10", "A"), ("21", "B")]
        );
    }

    #[test]
    fn truncated_predefined_field() {
        let d = parse("01095060001");
        assert_eq!(d.errors, ["AI 01 is truncated: 9 of 14 characters"]);
        assert!(d.elements.is_empty());
        let d = parse("0109506<GS>10ABC");
        assert_eq!(d.errors[0], "AI 01 is truncated: 5 of 14 characters");
        assert_eq!(pairs(&d), [("10", "ABC")]);
        assert_eq!(
            parse("17").errors[0],
            "AI 17 is truncated: 0 of 6 characters"
        );
    }

    #[test]
    fn unknown_ai_resumes_after_the_next_gs() {
        let d = parse("0109506000134352<GS>9999X<GS>10ABC");
        assert!(d.is_valid(), "99 is a known AI: {:?}", d.all_errors());
        let d = parse("0109506000134352<GS>4444X<GS>10ABC");
        assert_eq!(
            d.errors,
            ["unknown application identifier at byte 17: \"4444\""]
        );
        assert_eq!(pairs(&d), [("01", "09506000134352"), ("10", "ABC")]);
        assert_eq!(
            parse("]C1").errors[0],
            "unknown application identifier at byte 0: \"]C1\""
        );
        assert_eq!(
            parse("3106001250").errors[0],
            "unknown application identifier at byte 0: \"3106\""
        );
    }

    #[test]
    fn over_long_variable_value_hints_at_a_lost_gs() {
        let d = parse("0109506000134352101234567890123456789012");
        assert_eq!(
            d.elements[1].error.as_deref(),
            Some(
                "value has 22 characters, at most 20 allowed (X..20); a GS separator may be missing"
            )
        );
        // 7003 is fixed-length but not predefined: without a GS the next AI is swallowed.
        let d = parse("0109506000134352700326123114301012");
        assert_eq!(
            d.elements[1].error.as_deref(),
            Some("value has 14 characters, expected 10 (N6 N4); a GS separator may be missing")
        );
    }

    #[test]
    fn element_count_is_bounded() {
        let many = "0109506000134352".repeat(MAX_ELEMENTS + 5);
        let d = parse(&many);
        assert_eq!(d.elements.len(), MAX_ELEMENTS);
        assert_eq!(d.errors, ["more than 64 elements; the rest is ignored"]);
    }

    #[test]
    fn non_utf8_bytes_become_errors() {
        let d = parse_element_string(b"0109506000134352\x1d10AB\xC3\x28", 2026);
        assert_eq!(d.elements[1].value, "AB\u{fffd}(");
        assert_eq!(
            d.elements[1].error.as_deref(),
            Some("character 0xC3 at position 3 is not allowed (GS1 CSET 82)")
        );
        let d = parse_element_string(b"\xff\xfe", 2026);
        assert_eq!(
            d.errors,
            ["unknown application identifier at byte 0: \"\u{fffd}\u{fffd}\""]
        );
    }
}
