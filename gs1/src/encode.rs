//! Building element strings: the inverse of [`crate::parse_element_string`].

use crate::ai_table::is_predefined_length;
use crate::element_string::GS;

/// Builds an element string from `(ai, value)` pairs, inserting GS (0x1D) after every value of a
/// non-predefined-length AI that is not last. An AI missing from the table is treated as
/// non-predefined (a superfluous GS is harmless). Values are copied as given, unchecked.
///
/// ```
/// let s = tracegate_gs1::encode(&[("01", "09506000134352"), ("10", "ABC123"), ("21", "SN0001")]);
/// assert_eq!(s, b"010950600013435210ABC123\x1d21SN0001");
/// ```
pub fn encode(elements: &[(&str, &str)]) -> Vec<u8> {
    let capacity = elements.iter().map(|(ai, v)| ai.len() + v.len() + 1).sum();
    let mut out = Vec::with_capacity(capacity);
    for (i, (ai, value)) in elements.iter().enumerate() {
        out.extend_from_slice(ai.as_bytes());
        out.extend_from_slice(value.as_bytes());
        if i + 1 < elements.len() && !is_predefined_length(ai) {
            out.push(GS);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gs_only_after_variable_fields_that_are_not_last() {
        let s = encode(&[
            ("01", "09506000134352"),
            ("17", "261231"),
            ("10", "ABC123"),
            ("7003", "2612311430"),
            ("3103", "001250"),
            ("21", "SN0001"),
        ]);
        assert_eq!(
            s,
            b"01095060001343521726123110ABC123\x1d70032612311430\x1d310300125021SN0001"
        );
        assert_eq!(encode(&[]), b"");
        assert_eq!(encode(&[("4444", "X"), ("10", "A")]), b"4444X\x1d10A");
    }
}
