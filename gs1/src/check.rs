//! GS1 mod-10 check digits: GTIN-8/12/13/14, SSCC, GLN, GSRN, GDTI, GRAI, GSIN, …
//!
//! Working from the rightmost payload digit leftwards, the digits are weighted 3, 1, 3, 1, …;
//! the check digit is what brings the weighted sum up to the next multiple of ten.

/// GS1 mod-10 check digit of the digits given (the payload, without the check digit).
///
/// Characters that are not ASCII digits are skipped rather than rejected, so the function is total;
/// validate the character set first where that matters.
///
/// ```
/// assert_eq!(tracegate_gs1::check_digit("0950600013435"), 2);
/// ```
pub fn check_digit(digits: &str) -> u8 {
    let sum = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .rev()
        .enumerate()
        .fold(0u8, |acc, (i, b)| {
            let weight = if i % 2 == 0 { 3 } else { 1 };
            (acc + (b - b'0') * weight) % 10
        });
    (10 - sum) % 10
}

/// Whether the last digit of `digits` is the correct GS1 check digit for the digits before it.
///
/// False for an empty string or one whose last character is not a digit.
pub fn has_valid_check_digit(digits: &str) -> bool {
    check_digit_mismatch(digits).is_none()
}

/// `Some((found, expected))` when the last digit of `digits` is not the GS1 check digit of the
/// rest. An empty string or a non-digit last character counts as found = 10 (never equal).
pub(crate) fn check_digit_mismatch(digits: &str) -> Option<(u8, u8)> {
    let (payload, last) = match digits.as_bytes().split_last() {
        Some((last, _)) if last.is_ascii_digit() => (&digits[..digits.len() - 1], last - b'0'),
        _ => return Some((10, check_digit(digits))),
    };
    let expected = check_digit(payload);
    (last != expected).then_some((last, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_from_the_domain_examples() {
        assert_eq!(check_digit("0950600013435"), 2);
        assert!(has_valid_check_digit("09506000134352"));
        assert!(!has_valid_check_digit("09506000134353"));
        assert_eq!(check_digit_mismatch("09506000134353"), Some((3, 2)));
    }

    #[test]
    fn sscc_from_the_domain_examples() {
        assert!(has_valid_check_digit("106141411234567897"));
        assert_eq!(check_digit_mismatch("106141411234567890"), Some((0, 7)));
    }

    #[test]
    fn short_gtins_and_gln() {
        // GTIN-8, GTIN-12 (UPC-A), GTIN-13, GLN.
        assert!(has_valid_check_digit("96385074"));
        assert!(has_valid_check_digit("036000291452"));
        assert!(has_valid_check_digit("4006381333931"));
        assert!(has_valid_check_digit("9520123456788"));
        // Leading zeros never change the check digit.
        assert_eq!(check_digit("0003600029145"), check_digit("3600029145"));
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        assert_eq!(check_digit(""), 0);
        assert_eq!(check_digit("a1b"), check_digit("1"));
        assert!(!has_valid_check_digit(""));
        assert!(!has_valid_check_digit("123x"));
        assert!(!has_valid_check_digit("é"));
    }
}
