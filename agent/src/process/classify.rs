//! Turns a reading into an event: AIM identifier, GS1 parsing, validation. Pure code.

use tracegate_drivers::{Reading, ReadingKind};
use tracegate_gs1::{Gs1Data, Symbology, parse_digital_link, parse_element_string, split_aim};

use crate::config::Validation;
use crate::event::{Code, Kind};

/// What classification found out about one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub kind: Kind,
    pub code: Option<Code>,
    pub symbology: Option<Symbology>,
    pub gs1: Option<Gs1Data>,
    pub reason: Option<String>,
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
            },
            ReadingKind::Malformed { bytes, reason } => Classified {
                kind: Kind::Invalid,
                code: Some(Code::from_bytes(bytes)),
                symbology: None,
                gs1: None,
                reason: Some(reason.clone()),
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
