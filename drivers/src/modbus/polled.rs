//! Sources without a handshake: every poll reads all tags (in as few requests as the plan
//! allows) and each tag's trigger decides whether this poll is an event.
//!
//! The event's code is `code_tag`'s value, or the value of the tag whose trigger fired; every
//! other tag, read in the same poll, is attached as context. A counter that skipped counts
//! reports an alarm first. There is nothing to acknowledge, so the driver does not wait for
//! verdicts; back-pressure still holds polling while the agent's queue is full (a counter then
//! reports what was skipped meanwhile).

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::client::Link;
use super::codec::Value;
use super::read::Reads;
use super::session::{End, Source, ticker};
use super::trigger::{Detector, Fired};
use crate::reading::{Reading, ReadingKind};

/// One session of a polled source.
pub(crate) async fn run(src: &mut Source<'_>, link: &mut Link) -> End {
    let c = src.config;
    let reads = Reads::new(c.tags.iter().map(|t| t.item()).collect(), c.limits);
    let code_tag = c
        .code_tag
        .as_ref()
        .and_then(|name| c.tags.iter().position(|t| &t.name == name));
    // A new session is a new baseline: nothing is reported for changes made while away.
    let mut detectors: Vec<Option<Detector>> = c
        .tags
        .iter()
        .map(|t| t.trigger.map(Detector::new))
        .collect();
    let mut ticks = ticker(c.poll_interval);
    loop {
        ticks.tick().await;
        if let Err(e) = src.sync_context(link, false).await {
            return e.into();
        }
        let snapshot = match reads.read(link).await {
            Ok(s) => s,
            Err(e) => return e.into(),
        };
        src.health.ok();
        let captured_at = SystemTime::now();
        let values: Vec<Value> = c
            .tags
            .iter()
            .enumerate()
            .map(|(i, tag)| snapshot.value(tag, i))
            .collect();
        let mut readings = Vec::new();
        for (i, detector) in detectors.iter_mut().enumerate() {
            let Some(detector) = detector else { continue };
            let fired = detector.observe(&values[i]);
            if let Fired::Skipped { missed, from, to } = fired {
                let mut alarm = Reading::now(ReadingKind::Alarm {
                    code: "counter_skipped".into(),
                    message: format!(
                        "tag `{}` counted from {from} to {to}: {missed} item(s) were not seen",
                        c.tags[i].name
                    ),
                });
                alarm.captured_at = captured_at;
                alarm.attributes = BTreeMap::from([
                    ("tag".to_string(), c.tags[i].name.clone()),
                    ("skipped".to_string(), missed.to_string()),
                ]);
                readings.push(alarm);
            }
            if fired != Fired::No {
                let code = code_tag.unwrap_or(i);
                let kind = match &values[code] {
                    Value::Text(t) if t.is_empty() => ReadingKind::NoRead,
                    Value::Text(t) => ReadingKind::Code(t.clone()),
                    other => ReadingKind::Code(other.to_string().into_bytes()),
                };
                let attributes = c
                    .tags
                    .iter()
                    .zip(&values)
                    .enumerate()
                    .filter(|(k, _)| Some(*k) != code_tag)
                    .map(|(_, (tag, value))| (tag.name.clone(), value.to_string()))
                    .collect();
                readings.push(Reading {
                    captured_at,
                    kind,
                    attributes,
                    handover: None,
                });
            }
        }
        for reading in readings {
            // No acknowledgement to write: the ticket is not awaited.
            if src.sink.submit(reading).await.is_err() {
                return End::SinkClosed;
            }
        }
    }
}
