//! GS1 Digital Link URIs (uncompressed): `https://<any host>[/prefix…]/<key AI>/<key>[/<qualifier
//! AI>/<value>…][?<AI>=<value>&…]`, turned into the same [`Gs1Data`] as an element string.
//!
//! - The primary key (01, 00, 414, 8018, … — see [`crate::ai_table::AiEntry::dl_key`]) is the first
//!   path segment, within the trailing run of AI/value pairs, whose AI is a Digital Link key; any
//!   segments before that run are a path prefix and ignored.
//! - Qualifiers follow the key in the order GS1 fixes (for 01: 22, 10, 21, or else 235).
//! - Query parameters with an all-digit name are AIs (attributes such as `17=261231`); others
//!   (`linkType`, tracking parameters…) are ignored. The fragment is ignored.
//! - Values are percent-decoded; `+` stays `+`. A GTIN-8/12/13 key is zero-padded to 14 digits.
//! - Compressed Digital Link URIs and the deprecated short names (`/gtin/…`) are not supported.

use crate::ai_table::{AiEntry, lookup};
use crate::data::{Element, Gs1Data};
use crate::element_string::MAX_ELEMENTS;
use crate::{rules, value};

/// A Digital Link syntax problem. Its `Display` text goes into [`Gs1Data::errors`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding in {0:?}")]
    PercentEncoding(String),
    /// Qualifiers after the primary key that it does not take, or in the wrong order.
    #[error(
        "qualifiers {found} are not allowed after primary key {key} (allowed, in order: {allowed})"
    )]
    Qualifiers {
        /// The primary key's AI.
        key: String,
        /// The qualifier AIs found, `/`-separated.
        found: String,
        /// The sequences the key accepts.
        allowed: String,
    },
    /// An all-digit query parameter that is not a known AI.
    #[error("unknown application identifier {0:?} in the query")]
    UnknownQueryAi(String),
    /// More than [`MAX_ELEMENTS`] AIs.
    #[error("more than {MAX_ELEMENTS} elements; the rest is ignored")]
    TooManyElements,
}

/// Parses a GS1 Digital Link URI (any domain) into its elements, validating each and the whole.
///
/// Returns `None` when the text is not a Digital Link at all: not `http(s)://`, or no primary-key
/// AI followed by a value in the path. Never panics.
///
/// ```
/// let uri = "https://id.gs1.org/01/09506000134352/10/ABC123/21/SN0001?17=261231";
/// let d = tracegate_gs1::parse_digital_link(uri, 2026).unwrap();
/// assert!(d.is_valid());
/// assert_eq!(d.value("10"), Some("ABC123"));
/// assert_eq!(d.get("17").unwrap().date.as_deref(), Some("2026-12-31"));
/// ```
pub fn parse_digital_link(uri: &str, reference_year: i32) -> Option<Gs1Data> {
    let (scheme, rest) = uri.trim().split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/')?;
    if authority.is_empty() {
        return None;
    }
    let mut segments: Vec<&str> = path.split('/').collect();
    if segments.last() == Some(&"") {
        segments.pop();
    }
    let (key_at, key_entry) = find_primary_key(&segments)?;

    let mut out = Collector {
        data: Gs1Data::default(),
        reference_year,
    };
    let pairs = segments[key_at..].chunks_exact(2);
    for pair in pairs.clone() {
        out.add(pair[0], lookup(pair[0]), pair[1]);
    }
    let qualifiers: Vec<&str> = pairs.skip(1).map(|p| p[0]).collect();
    if let Some(error) = check_qualifiers(segments[key_at], key_entry, &qualifiers) {
        out.data.errors.push(error.to_string());
    }
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let name = String::from_utf8_lossy(&percent_decode(name).unwrap_or_default()).into_owned();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue; // not an AI: linkType, context, tracking parameters…
        }
        match lookup(&name) {
            Some(entry) => out.add(&name, Some(entry), value),
            None => out
                .data
                .errors
                .push(LinkError::UnknownQueryAi(name).to_string()),
        }
    }
    let mut data = out.data;
    data.errors
        .extend(rules::check(&data.elements).iter().map(ToString::to_string));
    Some(data)
}

/// Accumulates elements, enforcing the element bound.
struct Collector {
    data: Gs1Data,
    reference_year: i32,
}

impl Collector {
    fn add(&mut self, ai: &str, entry: Option<&'static AiEntry>, encoded: &str) {
        let Some(entry) = entry else { return };
        if self.data.elements.len() == MAX_ELEMENTS {
            let error = LinkError::TooManyElements.to_string();
            if !self.data.errors.contains(&error) {
                self.data.errors.push(error);
            }
            return;
        }
        let mut raw = percent_decode(encoded).unwrap_or_else(|| {
            self.data
                .errors
                .push(LinkError::PercentEncoding(encoded.to_owned()).to_string());
            encoded.as_bytes().to_vec()
        });
        if ai == "01" && matches!(raw.len(), 8 | 12 | 13) && raw.iter().all(u8::is_ascii_digit) {
            let mut padded = vec![b'0'; 14 - raw.len()];
            padded.append(&mut raw);
            raw = padded;
        }
        let element: Element = value::build(ai, entry, &raw, self.reference_year);
        self.data.elements.push(element);
    }
}

/// Finds the primary key: within the longest trailing run of (known AI, value) segment pairs, the
/// first pair whose AI is a Digital Link primary key.
fn find_primary_key(segments: &[&str]) -> Option<(usize, &'static AiEntry)> {
    let mut start = segments.len();
    while start >= 2 && lookup(segments[start - 2]).is_some() {
        start -= 2;
    }
    (start..segments.len()).step_by(2).find_map(|i| {
        let entry = lookup(segments[i])?;
        entry.dl_key.map(|_| (i, entry))
    })
}

/// Whether `found` is allowed after the key: empty, or an in-order subsequence of one of the
/// key's qualifier sequences.
fn check_qualifiers(key: &str, entry: &AiEntry, found: &[&str]) -> Option<LinkError> {
    let sequences = entry.dl_key.unwrap_or_default();
    let fits = |seq: &[&str]| {
        let mut rest = seq.iter();
        found.iter().all(|q| rest.any(|s| s == q))
    };
    if found.is_empty() || sequences.iter().any(|seq| fits(seq)) {
        return None;
    }
    let allowed: Vec<String> = sequences.iter().map(|s| s.join(", ")).collect();
    Some(LinkError::Qualifiers {
        key: key.to_owned(),
        found: found.join("/"),
        allowed: if allowed.is_empty() {
            "none".to_owned()
        } else {
            allowed.join(" or ")
        },
    })
}

/// Percent-decodes `s`; `None` if a `%` is not followed by two hex digits.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None; // also rules out the sign `from_str_radix` would accept
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dl(uri: &str) -> Gs1Data {
        parse_digital_link(uri, 2026).unwrap_or_else(|| panic!("{uri} should be a Digital Link"))
    }

    fn pairs(d: &Gs1Data) -> Vec<(&str, &str)> {
        d.elements
            .iter()
            .map(|e| (e.ai.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn domain_example() {
        let d = dl("https://id.gs1.org/01/09506000134352/10/ABC123/21/SN0001?17=261231");
        assert!(d.is_valid(), "{:?}", d.all_errors());
        assert_eq!(
            pairs(&d),
            [
                ("01", "09506000134352"),
                ("10", "ABC123"),
                ("21", "SN0001"),
                ("17", "261231")
            ]
        );
        assert_eq!(d.get("17").unwrap().date.as_deref(), Some("2026-12-31"));
        assert_eq!(d.get("01").unwrap().title, "GTIN");
    }

    #[test]
    fn any_domain_path_prefix_and_scheme_case() {
        let d = dl("HTTP://example.com/some/prefix/01/09506000134352/21/1?linkType=gs1:pip#frag");
        assert!(d.is_valid(), "{:?}", d.all_errors());
        assert_eq!(pairs(&d), [("01", "09506000134352"), ("21", "1")]);
        let d = dl("https://brand.example:8443/01/09506000134352/");
        assert_eq!(pairs(&d), [("01", "09506000134352")]);
    }

    #[test]
    fn percent_encoded_values() {
        let d = dl(
            "https://id.gs1.org/01/09506000134352/10/L-7%2FB/21/A%25%26B?3103=001250&91=QA%2DPASS",
        );
        assert!(d.is_valid(), "{:?}", d.all_errors());
        assert_eq!(d.value("10"), Some("L-7/B"));
        assert_eq!(d.value("21"), Some("A%&B"));
        assert_eq!(d.value("91"), Some("QA-PASS"));
        assert_eq!(d.get("3103").unwrap().decimal.as_deref(), Some("1.250"));
        // Decoded to a character outside CSET 82: invalid element.
        let d = dl("https://id.gs1.org/01/09506000134352/21/A%20B");
        assert_eq!(d.value("21"), Some("A B"));
        assert!(!d.is_valid());
        let d = dl("https://id.gs1.org/01/09506000134352/21/A%2G");
        assert_eq!(d.errors, ["invalid percent-encoding in \"A%2G\""]);
        assert!(!dl("https://id.gs1.org/01/09506000134352/21/A%+1").is_valid());
    }

    #[test]
    fn non_ai_query_parameters_are_ignored() {
        let d = dl(
            "https://id.gs1.org/01/09506000134352?linkType=all&utm_source=x&context=&&17=261231",
        );
        assert!(d.is_valid(), "{:?}", d.all_errors());
        assert_eq!(pairs(&d), [("01", "09506000134352"), ("17", "261231")]);
        let d = dl("https://id.gs1.org/01/09506000134352?4444=1");
        assert_eq!(
            d.errors,
            ["unknown application identifier \"4444\" in the query"]
        );
    }

    #[test]
    fn not_a_digital_link() {
        for uri in [
            "",
            "hello",
            "https://example.com/",
            "https://example.com",
            "https://example.com/products/123?01=09506000134352",
            "https://example.com/10/ABC123",
            "https://example.com/01",
            "ftp://id.gs1.org/01/09506000134352",
            "id.gs1.org/01/09506000134352",
            "https:///01/09506000134352",
            "0109506000134352",
        ] {
            assert_eq!(parse_digital_link(uri, 2026), None, "{uri}");
        }
    }

    #[test]
    fn other_primary_keys_and_short_gtins() {
        let d = dl("https://example.org/00/106141411234567897");
        assert!(d.is_valid(), "{:?}", d.all_errors());
        assert_eq!(d.get("00").unwrap().title, "SSCC");
        let d = dl("https://example.org/414/9520123456788/254/DOCK-3");
        assert!(d.is_valid(), "{:?}", d.all_errors());
        let d = dl("https://example.org/01/4006381333931");
        assert_eq!(d.value("01"), Some("04006381333931"));
        assert!(d.is_valid());
    }

    #[test]
    fn qualifier_order_and_validity() {
        let d = dl("https://id.gs1.org/01/09506000134352/21/SN0001/10/ABC123");
        assert_eq!(
            d.errors,
            [
                "qualifiers 21/10 are not allowed after primary key 01 (allowed, in order: 22, 10, 21 or 235)"
            ]
        );
        let d = dl("https://id.gs1.org/00/106141411234567897/10/ABC");
        assert_eq!(
            d.errors[0],
            "qualifiers 10 are not allowed after primary key 00 (allowed, in order: none)"
        );
        let d = dl("https://id.gs1.org/01/09506000134353/10/ABC123");
        assert_eq!(
            d.get("01").unwrap().error.as_deref(),
            Some("check digit is 3, expected 2")
        );
        let d = dl("https://id.gs1.org/01/09506000134352?17=261232");
        assert_eq!(
            d.get("17").unwrap().error.as_deref(),
            Some("day 32 does not exist in 2026-12")
        );
    }

    #[test]
    fn element_count_is_bounded() {
        let query: Vec<String> = (0..100).map(|i| format!("91=X{i}")).collect();
        let d = dl(&format!(
            "https://id.gs1.org/01/09506000134352?{}",
            query.join("&")
        ));
        assert_eq!(d.elements.len(), MAX_ELEMENTS);
        assert!(
            d.errors
                .contains(&"more than 64 elements; the rest is ignored".to_owned())
        );
    }
}
