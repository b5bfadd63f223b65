//! What a consumer can prove from what it received: every payload matches
//! docs/schema/event.schema.json, copies of an event are byte-identical, seqs are complete and
//! each source's events come in seq order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::ops::RangeInclusive;
use std::sync::OnceLock;

use serde_json::Value;

use crate::subscriber::Message;

/// docs/schema/event.schema.json, compiled once.
fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/schema/event.schema.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{path} is not a valid schema: {e}"))
    })
}

/// Panics, listing every violation, when `event` does not match the event schema.
pub fn assert_schema_valid(event: &Value) {
    let errors: Vec<String> = validator()
        .iter_errors(event)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "event does not match event.schema.json:\n{}\n{event:#}",
        errors.join("\n")
    );
}

/// Panics, listing every violation, when `doc` does not match docs/schema/`schema_file`
/// (context-reply, status, heartbeat… schemas).
pub fn assert_valid_against(doc: &Value, schema_file: &str) {
    let path = format!(
        "{}/../docs/schema/{schema_file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{path}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "does not match {schema_file}:\n{}\n{doc:#}",
        errors.join("\n")
    );
}

/// One event as first received, and how many copies arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub seq: u64,
    pub topic: String,
    pub event: Value,
    pub copies: usize,
    /// The subscriber connection that brought the first copy.
    pub connection: u32,
}

/// The events a subscriber received, checked and indexed by seq.
#[derive(Debug, Default)]
pub struct Delivery {
    /// First copies in arrival order.
    pub arrivals: Vec<Received>,
    /// Index into `arrivals` by seq.
    by_seq: BTreeMap<u64, usize>,
    /// Exact bytes of the first copy, by seq.
    bytes: BTreeMap<u64, Vec<u8>>,
}

impl Delivery {
    /// Checks every event message (status messages are skipped): schema-valid, and every copy
    /// of a seq byte-identical to the first (same id, same topic). Panics otherwise.
    pub fn analyze(messages: &[Message]) -> Delivery {
        let mut d = Delivery::default();
        for m in messages.iter().filter(|m| m.is_event()) {
            let event = m.json();
            assert_schema_valid(&event);
            let seq = event["seq"].as_u64().expect("seq");
            match d.by_seq.get(&seq) {
                Some(&i) => {
                    let first = &d.bytes[&seq];
                    assert!(
                        *first == m.payload && d.arrivals[i].topic == m.topic,
                        "seq {seq} arrived twice with different content:\n  first  on {}: {}\n  \
                         second on {}: {}",
                        d.arrivals[i].topic,
                        String::from_utf8_lossy(first),
                        m.topic,
                        String::from_utf8_lossy(&m.payload)
                    );
                    d.arrivals[i].copies += 1;
                }
                None => {
                    d.by_seq.insert(seq, d.arrivals.len());
                    d.bytes.insert(seq, m.payload.clone());
                    d.arrivals.push(Received {
                        seq,
                        topic: m.topic.clone(),
                        event,
                        copies: 1,
                        connection: m.connection,
                    });
                }
            }
        }
        d
    }

    /// The distinct seqs received.
    pub fn seqs(&self) -> BTreeSet<u64> {
        self.by_seq.keys().copied().collect()
    }

    /// The event with `seq`, if it arrived.
    pub fn get(&self, seq: u64) -> Option<&Received> {
        self.by_seq.get(&seq).map(|&i| &self.arrivals[i])
    }

    /// Seqs of `range` that did not arrive.
    pub fn missing(&self, range: RangeInclusive<u64>) -> Vec<u64> {
        range.filter(|s| !self.by_seq.contains_key(s)).collect()
    }

    /// Events that arrived more than once (allowed: consumers deduplicate by id).
    pub fn duplicated(&self) -> usize {
        self.arrivals.iter().filter(|r| r.copies > 1).count()
    }

    /// Panics unless exactly the seqs of `range` arrived: none missing, none extra.
    pub fn assert_complete(&self, range: RangeInclusive<u64>) {
        let missing = self.missing(range.clone());
        let extra: Vec<u64> = self
            .by_seq
            .keys()
            .copied()
            .filter(|s| !range.contains(s))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "expected exactly seqs {range:?}; missing {} ({}), unexpected {} ({})",
            missing.len(),
            compress(&missing),
            extra.len(),
            compress(&extra)
        );
    }

    /// Panics unless, for every source, first copies arrived in increasing seq order (a
    /// republished copy of an earlier seq is a duplicate and does not count).
    pub fn assert_ordered_per_source(&self) {
        let mut last: BTreeMap<(String, String), u64> = BTreeMap::new();
        for r in &self.arrivals {
            let key = (
                r.event["station"].as_str().unwrap_or_default().to_string(),
                r.event["source"].as_str().unwrap_or_default().to_string(),
            );
            if let Some(&prev) = last.get(&key) {
                assert!(
                    r.seq > prev,
                    "source {}/{}: seq {} arrived after seq {prev} (order by seq is broken)",
                    key.0,
                    key.1,
                    r.seq
                );
            }
            last.insert(key, r.seq);
        }
    }

    /// The code texts of the received events in seq order (no-reads have none).
    pub fn code_texts(&self) -> Vec<String> {
        self.by_seq
            .values()
            .filter_map(|&i| {
                self.arrivals[i].event["code"]["text"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }
}

impl Delivery {
    /// Panics unless every one of `codes` arrived as some event's code text (the reader was
    /// told "OK" for each, so each must have been delivered).
    pub fn assert_codes_arrived(&self, codes: &[String]) {
        let received: BTreeSet<String> = self.code_texts().into_iter().collect();
        let lost: Vec<&String> = codes.iter().filter(|c| !received.contains(*c)).collect();
        assert!(
            lost.is_empty(),
            "{} codes got \"OK\" but never arrived, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
    }
}

/// `[1, 2, 3, 7, 9, 10]` → `"1..=3, 7, 9..=10"` (first 20 runs).
pub fn compress(seqs: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &s in seqs {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => runs.push((s, s)),
        }
    }
    let mut out = String::new();
    for (i, (a, b)) in runs.iter().enumerate().take(20) {
        if i > 0 {
            out.push_str(", ");
        }
        if a == b {
            let _ = write!(out, "{a}");
        } else {
            let _ = write!(out, "{a}..={b}");
        }
    }
    if runs.len() > 20 {
        let _ = write!(out, ", … ({} runs)", runs.len());
    }
    out
}
