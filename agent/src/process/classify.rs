//! Turns a reading into an event: AIM identifier, GS1 parsing, validation. Pure code.

use tracegate_drivers::{Reading, ReadingKind};
use tracegate_gs1::{Gs1Data, Symbology, parse_digital_link, parse_element_string, split_aim};

use crate::config::Validation;
use crate::event::{Alarm, Code, Kind};

/// What classification found out about one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub kind: Kind,
    pub code: Option<Code>,
    pub symbology: Option<Symbology>,
    pub gs1: Option<Gs1Data>,
    pub reason: Option<String>,
    pub alarm: Option<Alarm>,
}

/// How a source's readings are classified.
#[derive(Debug, Clone)]
pub struct Rules {
    pub aim: bool,
    pub validation: Validation,
    pub pattern: Option<regex::Regex>,
}

impl Rules {
    /// Classifies a reading. `year` is the capture year for the GS1 date window.
    pub fn classify(&self, reading: &Reading, year: i32) -> Classified {
        match &reading.kind {
            ReadingKind::NoRead => Classified {
                kind: Kind::Noread,
                code: None,
                symbology: None,
                gs1: None,
                reason: None,
                alarm: None,
            },
            ReadingKind::Malformed { bytes, reason } => Classified {
                kind: Kind::Invalid,
                code: Some(Code::from_bytes(bytes)),
                symbology: None,
                gs1: None,
                reason: Some(reason.clone()),
                alarm: None,
            },
            ReadingKind::Alarm { code, message } => Classified {
                kind: Kind::Alarm,
                code: None,
                symbology: None,
                gs1: None,
                reason: None,
                alarm: Some(Alarm {
                    code: code.clone(),
                    message: message.clone(),
                }),
            },
            ReadingKind::Code(bytes) => self.classify_code(bytes, year),
        }
    }

    fn classify_code(&self, bytes: &[u8], year: i32) -> Classified {
        let (symbology, data) = if self.aim {
            split_aim(bytes)
        } else {
            (None, bytes)
        };
        let code = Code::from_bytes(data);
        let gs1 = self.gs1_data(symbology.as_ref(), data, &code.text, year);
        let reason = self.verdict(symbology.as_ref(), data, &code.text, gs1.as_ref());
        Classified {
            kind: if reason.is_some() {
                Kind::Invalid
            } else {
                Kind::Scan
            },
            code: Some(code),
            symbology,
            gs1,
            reason,
            alarm: None,
        }
    }

    /// GS1 data is parsed when the AIM identifier announces it, when the text is a Digital
    /// Link, or (without AIM identifiers) when the source requires GS1.
    fn gs1_data(
        &self,
        sym: Option<&Symbology>,
        data: &[u8],
        text: &str,
        year: i32,
    ) -> Option<Gs1Data> {
        if let Some(dl) = parse_digital_link(text, year) {
            if sym.is_none_or(|s| !s.gs1) {
                return Some(dl);
            }
        }
        match sym {
            Some(s) if s.gs1 => Some(parse_element_string(data, year)),
            None if self.validation == Validation::Gs1 => Some(parse_element_string(data, year)),
            _ => None,
        }
    }

    /// None when the code passes the source's validation, else the reason it fails.
    fn verdict(
        &self,
        sym: Option<&Symbology>,
        data: &[u8],
        text: &str,
        gs1: Option<&Gs1Data>,
    ) -> Option<String> {
        if data.is_empty() {
            return Some("empty code".into());
        }
        match self.validation {
            Validation::None => None,
            Validation::Regex => {
                let re = self.pattern.as_ref()?;
                let whole = re
                    .find(text)
                    .is_some_and(|m| m.start() == 0 && m.end() == text.len());
                (!whole).then(|| format!("code does not match the pattern {}", re.as_str()))
            }
            Validation::Gs1 => match gs1 {
                Some(g) if g.is_valid() => None,
                Some(g) => Some(gs1_reason(g)),
                None => Some(match sym {
                    Some(s) => format!("symbology {} ({}) carries no GS1 data", s.aim, s.name),
                    None => "not GS1 data".into(),
                }),
            },
        }
    }
}

/// One sentence from a GS1 result's problems.
fn gs1_reason(g: &Gs1Data) -> String {
    let mut parts: Vec<String> = g.errors.clone();
    for e in &g.elements {
        if let Some(err) = &e.error {
            parts.push(format!("AI ({}): {err}", e.ai));
        }
    }
    if parts.is_empty() {
        parts.push("invalid GS1 data".into());
    }
    format!("invalid GS1: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GS: &str = "\u{1d}";

    fn rules(aim: bool, validation: Validation, pattern: Option<&str>) -> Rules {
        Rules {
            aim,
            validation,
            pattern: pattern.map(|p| regex::Regex::new(p).unwrap()),
        }
    }

    fn code(text: &str) -> Reading {
        Reading::now(ReadingKind::Code(text.as_bytes().to_vec()))
    }

    #[test]
    fn a_gs1_datamatrix_with_aim_is_parsed_and_valid() {
        let r = rules(true, Validation::Gs1, None);
        let c = r.classify(
            &code(&format!("]d201095060001343521726123110ABC123{GS}21SN0001")),
            2026,
        );
        assert_eq!(c.kind, Kind::Scan, "{c:?}");
        assert_eq!(c.symbology.as_ref().unwrap().aim, "]d2");
        let code = c.code.unwrap();
        assert!(
            code.text.starts_with("0109506000134352"),
            "the AIM id is split off"
        );
        let gs1 = c.gs1.unwrap();
        let ais: Vec<(&str, &str)> = gs1
            .elements
            .iter()
            .map(|e| (e.ai.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            ais,
            [
                ("01", "09506000134352"),
                ("17", "261231"),
                ("10", "ABC123"),
                ("21", "SN0001")
            ]
        );
    }

    #[test]
    fn a_bad_check_digit_is_an_invalid_event_with_the_reason() {
        let r = rules(true, Validation::Gs1, None);
        let c = r.classify(&code("]d2010950600013435317261231"), 2026);
        assert_eq!(c.kind, Kind::Invalid);
        assert!(c.reason.unwrap().contains("check digit"));
    }

    #[test]
    fn a_non_gs1_symbology_fails_gs1_validation_and_is_not_parsed() {
        let r = rules(true, Validation::Gs1, None);
        let c = r.classify(&code("]d1010950600013435217261231"), 2026);
        assert_eq!(c.kind, Kind::Invalid);
        assert!(c.gs1.is_none(), "never extract AIs from ]d1 data");
        assert!(c.reason.unwrap().contains("]d1"));
    }

    #[test]
    fn without_validation_gs1_is_still_attached_when_announced() {
        let r = rules(true, Validation::None, None);
        let c = r.classify(&code("]C100106141411234567897"), 2026);
        assert_eq!(c.kind, Kind::Scan);
        assert_eq!(c.gs1.unwrap().elements[0].ai, "00");
        let plain = r.classify(&code("]A0HELLO"), 2026);
        assert_eq!(plain.kind, Kind::Scan);
        assert!(plain.gs1.is_none());
    }

    #[test]
    fn a_digital_link_qr_is_parsed() {
        let r = rules(false, Validation::Gs1, None);
        let c = r.classify(
            &code("https://id.gs1.org/01/09506000134352/10/ABC123/21/SN0001?17=261231"),
            2026,
        );
        assert_eq!(c.kind, Kind::Scan, "{c:?}");
        assert_eq!(c.gs1.unwrap().elements.len(), 4);
    }

    #[test]
    fn regex_must_match_the_whole_code() {
        let r = rules(false, Validation::Regex, Some("[A-Z]{2}[0-9]{4}"));
        assert_eq!(r.classify(&code("AB1234"), 2026).kind, Kind::Scan);
        assert_eq!(r.classify(&code("xAB1234"), 2026).kind, Kind::Invalid);
        assert_eq!(r.classify(&code("AB12345"), 2026).kind, Kind::Invalid);
    }

    #[test]
    fn noreads_malformed_frames_and_empty_codes_are_their_own_kinds() {
        let r = rules(false, Validation::None, None);
        assert_eq!(
            r.classify(&Reading::now(ReadingKind::NoRead), 2026).kind,
            Kind::Noread
        );
        let m = r.classify(
            &Reading::now(ReadingKind::Malformed {
                bytes: b"XXXX".to_vec(),
                reason: "frame longer than 4 bytes".into(),
            }),
            2026,
        );
        assert_eq!(
            (m.kind, m.reason.as_deref()),
            (Kind::Invalid, Some("frame longer than 4 bytes"))
        );
        assert_eq!(r.classify(&code(""), 2026).kind, Kind::Invalid);
    }

    #[test]
    fn non_utf8_bytes_survive_as_an_event() {
        let r = rules(false, Validation::None, None);
        let c = r.classify(
            &Reading::now(ReadingKind::Code(vec![b'A', 0xFF, b'B'])),
            2026,
        );
        assert_eq!(c.kind, Kind::Scan);
        let code = c.code.unwrap();
        assert!(!code.utf8);
        assert_eq!(code.text, "A\\xFFB");
    }
}
