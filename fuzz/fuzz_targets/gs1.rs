//! GS1 parsing: element strings (with and without an AIM identifier) and Digital Link URIs from
//! arbitrary input, and a round trip of `encode` over structured-arbitrary well-formed elements.
//!
//! Invariants checked:
//! - no panic, for any bytes and any reference year;
//! - at most `MAX_ELEMENTS` elements; every element's AI is a known AI of its entry's length and
//!   its title is the entry's; `is_valid()` agrees with the error lists; an invalid element
//!   carries no date or decimal;
//! - round trip: elements whose AI comes from the table and whose value has the AI's character
//!   set and a length its format allows, encoded with `encode`, parse back to the same AIs and
//!   values in the same order, with no structural error (check digits, dates and pairing rules
//!   may still be wrong, and are then reported, not mis-split).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tracegate_gs1::ai_table::{AI_TABLE, Cset, Lint};
use tracegate_gs1::{
    Gs1Data, MAX_ELEMENTS, check_digit, encode, lookup, parse_digital_link, parse_element_string,
    split_aim,
};

/// GS1 CSET 82, the characters of an `X` part.
const CSET82: &[u8] =
    b"!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

#[derive(Arbitrary, Debug)]
struct Spec {
    /// Which table entry (modulo the table's length).
    entry: u16,
    /// Which AI of the entry's range.
    ai: u16,
    /// Include an optional last part.
    optional: bool,
    /// Length choices and characters, consumed part by part.
    seed: Vec<u8>,
}

/// The input is a mode byte and the rest, so that seed files are plain scans and URIs.
#[derive(Debug)]
enum Input {
    /// `0`: an element string, reference year 2026.
    Element(Vec<u8>),
    /// `1`: a scan that may start with an AIM identifier, reference year 2026.
    Aim(Vec<u8>),
    /// `2`: a Digital Link URI (lossily decoded), reference year 2026.
    Link(String),
    /// `3`: a Digital Link built from arbitrary host, path pairs and query pairs.
    LinkPath {
        host: String,
        pairs: Vec<(String, String)>,
        query: Vec<(String, String)>,
    },
    /// `4`: round trip of structured-arbitrary elements.
    RoundTrip { specs: Vec<Spec>, year: i16 },
    /// `5`: an element string with any reference year (first four bytes).
    AnyYear { year: i32, data: Vec<u8> },
}

fn input(data: &[u8]) -> Option<Input> {
    let (&mode, rest) = data.split_first()?;
    let mut u = Unstructured::new(rest);
    Some(match mode % 6 {
        0 => Input::Element(rest.to_vec()),
        1 => Input::Aim(rest.to_vec()),
        2 => Input::Link(String::from_utf8_lossy(rest).into_owned()),
        3 => Input::LinkPath {
            host: u.arbitrary().ok()?,
            pairs: u.arbitrary().ok()?,
            query: u.arbitrary().ok()?,
        },
        4 => Input::RoundTrip {
            year: u.arbitrary().ok()?,
            specs: Arbitrary::arbitrary_take_rest(u).ok()?,
        },
        _ => Input::AnyYear {
            year: u.arbitrary().ok()?,
            data: u.take_rest().to_vec(),
        },
    })
}

fn check(data: &Gs1Data) {
    assert!(
        data.elements.len() <= MAX_ELEMENTS,
        "{} elements",
        data.elements.len()
    );
    for e in &data.elements {
        let entry = lookup(&e.ai).unwrap_or_else(|| panic!("element with unknown AI {:?}", e.ai));
        assert_eq!(entry.title, e.title);
        if e.error.is_some() {
            assert!(
                e.date.is_none() && e.decimal.is_none(),
                "invalid element with data: {e:?}"
            );
        }
    }
    let valid = data.errors.is_empty() && data.elements.iter().all(|e| e.error.is_none());
    assert_eq!(valid, data.is_valid());
    assert_eq!(data.all_errors().is_empty(), valid);
}

/// Takes the next byte of `seed`, cycling (0 when empty).
fn next(seed: &[u8], i: &mut usize) -> u8 {
    let b = if seed.is_empty() {
        0
    } else {
        seed[*i % seed.len()]
    };
    *i += 1;
    b
}

/// An AI of the entry chosen by `spec` and a value its format allows (character set and
/// lengths), with check digits, dates and the like filled in where cheap so that the valid
/// paths are reached too.
fn build(spec: &Spec) -> (String, String) {
    let entry = &AI_TABLE[usize::from(spec.entry) % AI_TABLE.len()];
    let first: u32 = entry.first.parse().unwrap();
    let last: u32 = entry.last.parse().unwrap();
    let n = first + u32::from(spec.ai) % (last - first + 1);
    let ai = format!("{n:0width$}", width = entry.first.len());
    let mut value = String::new();
    let mut i = 0;
    for part in entry.parts {
        if part.optional && !spec.optional {
            break;
        }
        let span = part.max - part.min;
        let len = part.min
            + if span == 0 {
                0
            } else {
                next(&spec.seed, &mut i) % (span + 1)
            };
        let mut text: Vec<u8> = (0..len)
            .map(|_| {
                let b = next(&spec.seed, &mut i);
                match part.cset {
                    Cset::Numeric => b'0' + b % 10,
                    Cset::Cset82 => CSET82[usize::from(b) % CSET82.len()],
                }
            })
            .collect();
        // Two digits at `at`: `base` + (the byte there % `modulo`).
        let digits = |t: &mut Vec<u8>, at: usize, base: u32, modulo: u32| {
            if at + 2 <= t.len() {
                let v = base + u32::from(t[at]) % modulo;
                t[at] = b'0' + (v / 10 % 10) as u8;
                t[at + 1] = b'0' + (v % 10) as u8;
            }
        };
        match part.lint {
            Lint::CheckDigit if !text.is_empty() && part.cset == Cset::Numeric => {
                let body = std::str::from_utf8(&text[..text.len() - 1]).unwrap();
                let c = check_digit(body);
                *text.last_mut().unwrap() = b'0' + c;
            }
            Lint::Zero if !text.is_empty() => text[0] = b'0',
            Lint::YyMmD0 | Lint::YyMmDd | Lint::YyMmDdHh => {
                digits(&mut text, 2, 1, 12);
                digits(&mut text, 4, 1, 28);
                digits(&mut text, 6, 0, 24);
            }
            Lint::HhMm => {
                digits(&mut text, 0, 0, 24);
                digits(&mut text, 2, 0, 60);
            }
            Lint::PieceOfTotal => {
                digits(&mut text, 0, 1, 1);
                digits(&mut text, 2, 1, 99);
            }
            _ => {}
        }
        value.push_str(std::str::from_utf8(&text).unwrap());
    }
    (ai, value)
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = input(data) else {
        return;
    };
    match input {
        Input::Element(data) => {
            check(&parse_element_string(&data, 2026));
        }
        Input::AnyYear { year, data } => {
            check(&parse_element_string(&data, year));
        }
        Input::Aim(data) => {
            let (sym, rest) = split_aim(&data);
            assert!(rest.len() <= data.len());
            if sym.is_some() {
                assert!(data.starts_with(b"]"));
            }
            check(&parse_element_string(rest, 2026));
        }
        Input::Link(uri) => {
            if let Some(d) = parse_digital_link(&uri, 2026) {
                check(&d);
            }
        }
        Input::LinkPath { host, pairs, query } => {
            let mut uri = format!("https://{}", percent(&host));
            for (ai, v) in &pairs {
                uri.push_str(&format!("/{}/{}", percent(ai), percent(v)));
            }
            for (i, (k, v)) in query.iter().enumerate() {
                let sep = if i == 0 { '?' } else { '&' };
                uri.push_str(&format!("{sep}{}={}", percent(k), percent(v)));
            }
            if let Some(d) = parse_digital_link(&uri, 2026) {
                check(&d);
            }
        }
        Input::RoundTrip { specs, year } => {
            let elements: Vec<(String, String)> =
                specs.iter().take(MAX_ELEMENTS).map(build).collect();
            let pairs: Vec<(&str, &str)> = elements
                .iter()
                .map(|(a, v)| (a.as_str(), v.as_str()))
                .collect();
            let encoded = encode(&pairs);
            let parsed = parse_element_string(&encoded, i32::from(year));
            check(&parsed);
            let got: Vec<(&str, &str)> = parsed
                .elements
                .iter()
                .map(|e| (e.ai.as_str(), e.value.as_str()))
                .collect();
            assert_eq!(
                got,
                pairs,
                "round trip of {:?} ({:?}) lost structure: errors {:?}",
                pairs,
                String::from_utf8_lossy(&encoded),
                parsed.all_errors()
            );
        }
    }
});
