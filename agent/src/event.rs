//! The event: what one reading becomes, and the JSON payload consumers receive
//! (schema: `docs/schema/event.schema.json`, version [`SCHEMA`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tracegate_gs1::{Gs1Data, Symbology};
use uuid::Uuid;

/// Schema name and version carried by every payload.
pub const SCHEMA: &str = "tracegate.event/1";

/// The kind of an event; each kind has its own topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A code that passed the source's validation.
    Scan,
    /// The reader reported that it read nothing.
    Noread,
    /// Something was read but failed validation or framing; `reason` says why.
    Invalid,
    /// A driver reports a condition the operator must hear about (`alarm` says which).
    Alarm,
}

impl Kind {
    /// Every kind, in declaration order (`kind as usize` indexes it).
    pub const ALL: [Kind; 4] = [Kind::Scan, Kind::Noread, Kind::Invalid, Kind::Alarm];

    /// The last topic level.
    pub fn topic_level(self) -> &'static str {
        match self {
            Kind::Scan => "scan",
            Kind::Noread => "noread",
            Kind::Invalid => "invalid",
            Kind::Alarm => "alarm",
        }
    }
}

/// The raw code as received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Code {
    /// The code as text, AIM identifier removed. Bytes that are not UTF-8 appear as `\xNN`
    /// (then `utf8` is false and `base64` holds the exact bytes).
    pub text: String,
    /// False when the bytes were not valid UTF-8.
    pub utf8: bool,
    /// The exact bytes (AIM identifier removed), only when they are not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Length in bytes.
    pub len: usize,
}

/// A driver's alarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    /// Short stable identifier, e.g. `counter_skipped`.
    pub code: String,
    /// What happened, as a sentence.
    pub message: String,
}

/// One event, as published. `seq` is assigned when the queue commits it: the source's
/// processor serializes the event with a 0 there, and the commit writes the seq into the
/// payload (`queue::NewEvent`).
///
/// The names and the line context are shared with the source's processor (`Arc`): they are
/// the same for every event of a source.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub schema: &'static str,
    /// UUIDv7; the idempotency key consumers deduplicate on. Its time is the capture time
    /// (`process::event_id`).
    pub id: Uuid,
    /// Gap-free per agent; consumers order and check completeness by it.
    pub seq: u64,
    pub kind: Kind,
    /// Capture time, RFC 3339 UTC with milliseconds.
    pub captured_at: String,
    pub agent: Arc<str>,
    pub site: Arc<str>,
    pub line: Arc<str>,
    pub station: Arc<str>,
    pub source: Arc<str>,
    /// The code; absent for no-reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
    /// The AIM symbology identifier, when the reader sends one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbology: Option<Symbology>,
    /// Parsed GS1 data, when the code carries GS1 element strings or a Digital Link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gs1: Option<Gs1Data>,
    /// The source's validation rule (`none`, `gs1`, `regex`).
    pub validation: &'static str,
    /// Why the event is invalid; only on `invalid` events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The alarm, on `alarm` events only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm: Option<Alarm>,
    /// True when this is a double read inside the dedup window (dedup = "mark").
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// Values the driver read with the code (PLC context tags, read-cycle id…).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The line context (work order, batch…) in effect at capture time, for this station.
    #[serde(skip_serializing_if = "is_empty")]
    pub context: Arc<BTreeMap<String, String>>,
    /// The revision of that context; 0 before MES ever sent one.
    #[serde(skip_serializing_if = "is_zero")]
    pub context_rev: u64,
    /// Not serialized: capture time in ms since the epoch, stored beside the payload for
    /// `queue stats` (oldest age).
    #[serde(skip)]
    pub captured_ms: i64,
}

fn is_empty(m: &Arc<BTreeMap<String, String>>) -> bool {
    m.is_empty()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    rfc3339_display(t).to_string()
}

/// [`rfc3339`] without a string of its own, for writing into a buffer.
pub fn rfc3339_display(t: SystemTime) -> impl std::fmt::Display {
    humantime::format_rfc3339_millis(t)
}

/// Milliseconds since the Unix epoch (negative before it: a gateway with a wrong clock).
pub fn epoch_ms(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

impl Code {
    /// The code from raw bytes, escaping what is not UTF-8.
    pub fn from_bytes(bytes: &[u8]) -> Code {
        use base64::Engine;
        match std::str::from_utf8(bytes) {
            Ok(text) => Code {
                text: text.to_string(),
                utf8: true,
                base64: None,
                len: bytes.len(),
            },
            Err(_) => Code {
                text: escape_non_utf8(bytes),
                utf8: false,
                base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                len: bytes.len(),
            },
        }
    }
}

/// Valid UTF-8 runs kept, every invalid byte written as `\xNN`.
fn escape_non_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len()).max(1);
                for b in &rest[..bad] {
                    out.push_str(&format!("\\x{b:02X}"));
                }
                bytes = &rest[bad..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_bytes_are_escaped_and_kept_exactly() {
        let c = Code::from_bytes(b"AB\xFF\xFEC\x1D");
        assert_eq!(c.text, "AB\\xFF\\xFEC\u{1d}");
        assert!(!c.utf8);
        assert_eq!(c.base64.as_deref(), Some("QUL//kMd"));
        assert_eq!(c.len, 6);
        let ok = Code::from_bytes("Grüße".as_bytes());
        assert!(ok.utf8 && ok.base64.is_none());
    }

    #[test]
    fn a_kind_indexes_its_place_in_all() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
    }

    #[test]
    fn times_are_utc_with_millis() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_780_000_000_123);
        assert_eq!(rfc3339(t), "2026-05-28T20:26:40.123Z");
        assert_eq!(epoch_ms(t), 1_780_000_000_123);
    }
}
