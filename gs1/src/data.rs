//! The parse result: [`Gs1Data`] made of [`Element`]s, shared by element strings and Digital Links.

use serde::Serialize;

/// The result of parsing one GS1 element string or Digital Link.
///
/// Parsing never fails as a whole: what could be read is in `elements`, and everything wrong is
/// described in words, either for the whole string (`errors`) or per element ([`Element::error`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Gs1Data {
    /// The elements in the order they were found.
    pub elements: Vec<Element>,
    /// Problems with the string as a whole: unknown AI, truncated field, unexpected GS, an
    /// attribute without its key (10 without 01/02…), the same AI twice with different values,
    /// AIs that must not appear together, too many elements, Digital Link syntax.
    pub errors: Vec<String>,
}

impl Gs1Data {
    /// True when there are no whole-string errors and every element is valid.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty() && self.elements.iter().all(Element::is_valid)
    }

    /// The first element with AI `ai`, if any.
    pub fn get(&self, ai: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.ai == ai)
    }

    /// The value of the first element with AI `ai`, if any.
    pub fn value(&self, ai: &str) -> Option<&str> {
        self.get(ai).map(|e| e.value.as_str())
    }

    /// Every problem, whole-string errors first, then element errors prefixed with their AI
    /// (`"AI 01: check digit is 3, expected 2"`). Handy for logs and rejection reasons.
    pub fn all_errors(&self) -> Vec<String> {
        let per_element = self
            .elements
            .iter()
            .filter_map(|e| e.error.as_ref().map(|err| format!("AI {}: {err}", e.ai)));
        self.errors.iter().cloned().chain(per_element).collect()
    }
}

/// One AI and its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Element {
    /// The AI digits as found, e.g. `"01"`, `"3103"`.
    pub ai: String,
    /// GS1 data title of the AI, e.g. `"GTIN"`, `"BATCH/LOT"`, `"EXPIRY"`.
    pub title: &'static str,
    /// The raw value as found (lossily decoded if the bytes were not UTF-8).
    pub value: String,
    /// For date AIs (11–17, 7006…): the ISO date, e.g. `"2026-02-28"` (DD = 00 resolved to the last
    /// day of the month). For date-time AIs, ISO date and time: 7003 `"2026-12-31T14:30"`, 8008
    /// `"2026-12-31T14"`, `"…T14:30"` or `"…T14:30:15"`. Absent when the element is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// For AIs with an implied decimal point (31nn–36nn, 390n–393n): the value with the point
    /// applied and leading zeros removed, e.g. `"1.250"` for 3103 `001250`. For 391n/393n this is
    /// the amount after the three-digit ISO 4217 currency code. Absent when the element is invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decimal: Option<String>,
    /// Why this element is invalid, e.g. `"check digit is 3, expected 2"`; `None` when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Element {
    /// True when the value passed every check for its AI.
    pub fn is_valid(&self) -> bool {
        self.error.is_none()
    }
}
