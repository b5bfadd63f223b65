//! Property tests: generated valid element strings and Digital Links parse back to exactly what
//! was encoded, and no input whatsoever makes the parsers panic.

use proptest::prelude::*;
use proptest::sample::select;
use tracegate_gs1::{MAX_ELEMENTS, encode, parse_digital_link, parse_element_string, split_aim};

const REFERENCE_YEAR: i32 = 2026;

/// GS1 CSET 82 as a regex character class.
const CSET82: &str = r#"[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]"#;

/// Independent mod-10 check digit (weights 3,1,… from the right), so the test does not trust the
/// crate's own routine.
fn reference_check_digit(payload: &str) -> char {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// Digits of length `len` with a correct check digit at the end.
fn keyed(len: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[0-9]{{{}}}", len - 1))
        .unwrap()
        .prop_map(|p| format!("{p}{}", reference_check_digit(&p)))
}

fn cset82(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{CSET82}{{1,{max}}}")).unwrap()
}

/// A valid YYMMDD (DD = 00 allowed when `day_zero`) and its ISO date under the 2026 window.
fn date(day_zero: bool) -> impl Strategy<Value = (String, String)> {
    (0u8..100, 1u8..=12).prop_flat_map(move |(yy, mm)| {
        let year = if yy >= 77 {
            1900 + i32::from(yy)
        } else {
            2000 + i32::from(yy)
        };
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let last = match mm {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        (if day_zero { 0u8 } else { 1 }..=last).prop_map(move |dd| {
            let iso_day = if dd == 0 { last } else { dd };
            (
                format!("{yy:02}{mm:02}{dd:02}"),
                format!("{year:04}-{mm:02}-{iso_day:02}"),
            )
        })
    })
}

/// One generated element: AI, value, expected ISO date.
type Gen = (&'static str, String, Option<String>);

/// A valid set of elements (always with a GTIN as key), in random order.
fn valid_elements() -> impl Strategy<Value = Vec<Gen>> {
    let plain = |ai: &'static str, s: BoxedStrategy<String>| s.prop_map(move |v| (ai, v, None));
    let dated =
        |ai: &'static str, zero: bool| date(zero).prop_map(move |(v, iso)| (ai, v, Some(iso)));
    (
        plain("01", keyed(14).boxed()),
        proptest::option::of(plain("10", cset82(20).boxed())),
        proptest::option::of(plain("21", cset82(20).boxed())),
        proptest::option::of(dated("17", true)),
        proptest::option::of(dated("11", true)),
        proptest::option::of(plain("3103", "[0-9]{6}".boxed())),
        proptest::option::of(plain("240", cset82(30).boxed())),
        proptest::option::of(plain("91", cset82(90).boxed())),
        proptest::option::of(plain("00", keyed(18).boxed())),
        proptest::option::of(plain("410", keyed(13).boxed())),
        proptest::option::of(
            (date(false), 0u8..24, 0u8..60).prop_map(|((d, iso), h, m)| {
                (
                    "7003",
                    format!("{d}{h:02}{m:02}"),
                    Some(format!("{iso}T{h:02}:{m:02}")),
                )
            }),
        ),
    )
        .prop_map(|(gtin, a, b, c, d, e, f, g, h, i, j)| {
            std::iter::once(gtin)
                .chain([a, b, c, d, e, f, g, h, i, j].into_iter().flatten())
                .collect()
        })
        .prop_flat_map(|v: Vec<Gen>| Just(v).prop_shuffle())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bytes that exercise the parser: digits and GS most of all, plus anything.
fn scan_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        6 => select(b"0123456789".to_vec()),
        2 => Just(0x1Du8),
        1 => select(b"]CdQe123ABCxyz%/?=&:".to_vec()),
        1 => any::<u8>(),
    ];
    prop_oneof![
        proptest::collection::vec(byte, 0..400),
        proptest::collection::vec(any::<u8>(), 0..400)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encoded_valid_elements_parse_back_exactly(elements in valid_elements()) {
        let pairs: Vec<(&str, &str)> = elements.iter().map(|(ai, v, _)| (*ai, v.as_str())).collect();
        let parsed = parse_element_string(&encode(&pairs), REFERENCE_YEAR);
        prop_assert!(parsed.is_valid(), "{:?} from {:?}", parsed.all_errors(), pairs);
        let got: Vec<(&str, &str)> = parsed.elements.iter().map(|e| (e.ai.as_str(), e.value.as_str())).collect();
        prop_assert_eq!(&got, &pairs);
        for ((_, _, iso), element) in elements.iter().zip(&parsed.elements) {
            prop_assert_eq!(iso.as_deref(), element.date.as_deref());
        }
        // The same with a symbology identifier in front, as a scanner sends it.
        let mut scan = b"]d2".to_vec();
        scan.extend(encode(&pairs));
        let (sym, rest) = split_aim(&scan);
        prop_assert!(sym.unwrap().gs1);
        prop_assert_eq!(parse_element_string(rest, REFERENCE_YEAR), parsed);
    }

    #[test]
    fn digital_links_parse_back_exactly(elements in valid_elements()) {
        // GTIN and its qualifiers 10, 21 in the path in GS1 order; everything else in the query.
        let get = |ai: &str| elements.iter().find(|(a, _, _)| *a == ai).map(|(_, v, _)| v.clone());
        let mut uri = format!("https://example.com/prefix/01/{}", get("01").unwrap());
        let mut expected = vec![("01", get("01").unwrap())];
        for ai in ["10", "21"] {
            if let Some(v) = get(ai) {
                uri.push_str(&format!("/{ai}/{}", pct(&v)));
                expected.push((ai, v));
            }
        }
        let query: Vec<(&str, String)> = elements.iter()
            .filter(|(ai, _, _)| !["01", "10", "21"].contains(ai))
            .map(|(ai, v, _)| (*ai, v.clone()))
            .collect();
        let params: Vec<String> = query.iter().map(|(ai, v)| format!("{ai}={}", pct(v))).collect();
        uri.push_str(&format!("?linkType=all&{}", params.join("&")));
        expected.extend(query);

        let parsed = parse_digital_link(&uri, REFERENCE_YEAR).expect("a Digital Link");
        prop_assert!(parsed.is_valid(), "{:?} from {}", parsed.all_errors(), uri);
        let got: Vec<(&str, &str)> = parsed.elements.iter().map(|e| (e.ai.as_str(), e.value.as_str())).collect();
        let expected: Vec<(&str, &str)> = expected.iter().map(|(a, v)| (*a, v.as_str())).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in scan_bytes(), year in any::<i32>()) {
        let parsed = parse_element_string(&bytes, year);
        prop_assert!(parsed.elements.len() <= MAX_ELEMENTS);
        prop_assert_eq!(
            parsed.is_valid(),
            parsed.errors.is_empty() && parsed.elements.iter().all(|e| e.error.is_none())
        );
        let (_, rest) = split_aim(&bytes);
        let _ = parse_element_string(rest, year);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_digital_link(&text, year);
        let _ = parse_digital_link(&format!("https://id.gs1.org/01/09506000134352/{text}"), year);
        let _ = parse_digital_link(&format!("https://x/01/{text}?{text}"), year);
    }

    #[test]
    fn arbitrary_strings_never_panic_the_digital_link_parser(s in "\\PC{0,200}", year in any::<i32>()) {
        let _ = parse_digital_link(&s, year);
        let _ = parse_digital_link(&format!("http://h/{s}"), year);
    }
}
