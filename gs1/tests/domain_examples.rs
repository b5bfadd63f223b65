//! The example scans V1–V4 and I1–I5 of docs/domain.md §2.3, end to end through the public API:
//! split the AIM identifier, and parse the element string only when the symbology is GS1.

use tracegate_gs1::{Gs1Data, parse_element_string, split_aim};

const REFERENCE_YEAR: i32 = 2026;

/// What a station does with a scan: `None` when the symbology does not announce GS1 data.
fn scan(received: &str) -> (String, Option<Gs1Data>) {
    let raw = received.replace("<GS>", "\u{1d}");
    let (sym, data) = split_aim(raw.as_bytes());
    let sym = sym.expect("every example starts with an AIM identifier");
    let parsed = sym.gs1.then(|| parse_element_string(data, REFERENCE_YEAR));
    (sym.aim, parsed)
}

fn gs1(received: &str) -> Gs1Data {
    scan(received).1.expect("a GS1 symbology")
}

/// (ai, title, value, date) of every element.
fn summary(d: &Gs1Data) -> Vec<(&str, &str, &str, Option<&str>)> {
    d.elements
        .iter()
        .map(|e| (e.ai.as_str(), e.title, e.value.as_str(), e.date.as_deref()))
        .collect()
}

#[test]
fn v1_gs1_datamatrix_gtin_expiry_batch_serial() {
    let (aim, d) = scan(concat!(
        "]d2010950600013435217261231",
        "10ABC123<GS>21SN0001"
    ));
    let d = d.unwrap();
    assert_eq!(aim, "]d2");
    assert!(d.is_valid(), "{:?}", d.all_errors());
    assert_eq!(
        summary(&d),
        [
            ("01", "GTIN", "09506000134352", None),
            ("17", "EXPIRY", "261231", Some("2026-12-31")),
            ("10", "BATCH/LOT", "ABC123", None),
            ("21", "SERIAL", "SN0001", None),
        ]
    );
}

#[test]
fn v2_gs1_128_sscc() {
    let (aim, d) = scan("]C100106141411234567897");
    let d = d.unwrap();
    assert_eq!(aim, "]C1");
    assert!(d.is_valid(), "{:?}", d.all_errors());
    assert_eq!(summary(&d), [("00", "SSCC", "106141411234567897", None)]);
}

#[test]
fn v3_day_zero_is_the_last_day_of_february() {
    let d = gs1("]d201095060001343521726020010L-7/B<GS>240PART-42<GS>91QA-PASS");
    assert!(d.is_valid(), "{:?}", d.all_errors());
    assert_eq!(
        summary(&d),
        [
            ("01", "GTIN", "09506000134352", None),
            ("17", "EXPIRY", "260200", Some("2026-02-28")),
            ("10", "BATCH/LOT", "L-7/B", None),
            ("240", "ADDITIONAL ID", "PART-42", None),
            ("91", "INTERNAL", "QA-PASS", None),
        ]
    );
}

#[test]
fn v4_gs1_qr_gs_ends_the_variable_field() {
    let (aim, d) = scan("]Q3010950600013435210ABC123<GS>17261231");
    let d = d.unwrap();
    assert_eq!(aim, "]Q3");
    assert!(d.is_valid(), "{:?}", d.all_errors());
    assert_eq!(
        summary(&d),
        [
            ("01", "GTIN", "09506000134352", None),
            ("10", "BATCH/LOT", "ABC123", None),
            ("17", "EXPIRY", "261231", Some("2026-12-31")),
        ]
    );
}

#[test]
fn i1_bad_gtin_check_digit() {
    let d = gs1(concat!(
        "]d2010950600013435317261231",
        "10ABC123<GS>21SN0001"
    ));
    assert!(!d.is_valid());
    assert!(
        d.errors.is_empty(),
        "only the GTIN is wrong: {:?}",
        d.errors
    );
    let gtin = d.get("01").unwrap();
    assert_eq!(gtin.error.as_deref(), Some("check digit is 3, expected 2"));
    assert_eq!(gtin.value, "09506000134353");
    // The rest is still read.
    assert_eq!(d.value("10"), Some("ABC123"));
    assert_eq!(d.value("21"), Some("SN0001"));
    assert_eq!(d.all_errors(), ["AI 01: check digit is 3, expected 2"]);
}

#[test]
fn i2_invalid_day() {
    let d = gs1(concat!(
        "]d2010950600013435217261232",
        "10ABC123<GS>21SN0001"
    ));
    assert!(!d.is_valid());
    let expiry = d.get("17").unwrap();
    assert_eq!(
        expiry.error.as_deref(),
        Some("day 32 does not exist in 2026-12")
    );
    assert_eq!(expiry.date, None);
}

/// A keyboard wedge dropped the GS after the batch: the serial's AI and value merge into the
/// batch, which is still a valid X..20. Nothing in the data can reveal this; only a policy
/// outside the parser (e.g. "this line always prints a serial") can.
#[test]
fn i3_lost_gs_is_undetectable() {
    let d = gs1("]d2010950600013435210ABC12321SN0001");
    assert!(d.is_valid(), "{:?}", d.all_errors());
    assert_eq!(
        summary(&d),
        [
            ("01", "GTIN", "09506000134352", None),
            ("10", "BATCH/LOT", "ABC12321SN0001", None)
        ]
    );
    assert_eq!(d.get("21"), None);
}

#[test]
fn i4_plain_datamatrix_is_not_parsed() {
    let (sym, data) = split_aim(b"]d1010950600013435217261231");
    let sym = sym.unwrap();
    assert_eq!(
        (sym.aim.as_str(), sym.name, sym.gs1),
        ("]d1", "Data Matrix", false)
    );
    assert_eq!(data, b"010950600013435217261231");
    let (_, parsed) = scan("]d1010950600013435217261231");
    assert_eq!(
        parsed, None,
        "the caller must not extract AIs from ]d1 data"
    );
}

#[test]
fn i5_bad_sscc_check_digit() {
    let d = gs1("]C100106141411234567890");
    assert!(!d.is_valid());
    assert_eq!(
        d.get("00").unwrap().error.as_deref(),
        Some("check digit is 0, expected 7")
    );
}

#[test]
fn century_window_follows_the_reference_year() {
    let data = b"0109506000134352\x1d17761231";
    let date = |year| {
        parse_element_string(data, year)
            .get("17")
            .unwrap()
            .date
            .clone()
    };
    assert_eq!(date(2026).as_deref(), Some("2076-12-31"));
    assert_eq!(date(2025).as_deref(), Some("1976-12-31"));
}

#[test]
fn json_omits_absent_fields() {
    let d = gs1("]d2010950600013435231030012501726020010L-7/B");
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "elements": [
                {"ai": "01", "title": "GTIN", "value": "09506000134352"},
                {"ai": "3103", "title": "NET WEIGHT (kg)", "value": "001250", "decimal": "1.250"},
                {"ai": "17", "title": "EXPIRY", "value": "260200", "date": "2026-02-28"},
                {"ai": "10", "title": "BATCH/LOT", "value": "L-7/B"},
            ],
            "errors": [],
        })
    );
    let bad = gs1("]C100106141411234567890");
    let json = serde_json::to_value(&bad.elements[0]).unwrap();
    assert_eq!(json["error"], "check digit is 0, expected 7");
}
