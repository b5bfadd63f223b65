//! Processing: a driver's reading becomes an event (id, capture time, identity, code, AIM
//! symbology, GS1 data, validation verdict, dedup), which goes to the queue with the driver's
//! reply channel. One task per source keeps each source's order.

mod classify;
mod dedup;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tracegate_drivers::reading::Submission;
use tracegate_drivers::{Reading, Verdict};
use uuid::Uuid;
use uuid::timestamp::Timestamp;
use uuid::timestamp::context::ContextV7;

pub use self::classify::{Classified, Rules};
pub use self::dedup::Dedup;
use crate::config::{AgentSection, DedupMode, SourceConfig, Validation};
use crate::context::{ContextBook, ContextState, Values};
use crate::event::{Event, Kind, epoch_ms, rfc3339};
use crate::ops::metrics::{Metrics, SourceKind, SourceLabel};
use crate::queue::{NewEvent, Queue};

/// Everything a source's processing task needs.
pub struct Processor {
    /// The agent's id, site and line, shared by every event.
    agent: Arc<str>,
    site: Arc<str>,
    line: Arc<str>,
    source: Arc<str>,
    station: Arc<str>,
    validation: Validation,
    /// The topic of each kind, `<prefix>/<station>/<source>/<kind>`, by [`Kind`] order.
    topics: [Arc<str>; 4],
    rules: Rules,
    dedup: Option<(Dedup, DedupMode)>,
    metrics: Arc<Metrics>,
    /// `events_captured` of this source, by [`Kind`] order, once the kind was seen.
    captured: [Option<Counter>; 4],
    /// Capture time of the last event (ms since the epoch), for `status`.
    last_event_ms: Arc<AtomicI64>,
    /// The line context to stamp on events.
    context: Arc<ContextBook>,
    /// The last context revision stamped and its values for this station: events share
    /// them until the revision changes.
    stamped: Option<(Arc<ContextState>, Arc<Values>)>,
    /// Makes the source's event ids: UUIDv7s whose time is the capture time, ordered within
    /// a millisecond by a counter ([`event_id`]).
    ids: ContextV7,
    /// The capacity a payload starts from ([`NewEvent::new`]).
    size_hint: usize,
}

impl Processor {
    /// A processor for one configured source.
    pub fn new(
        agent: &AgentSection,
        prefix: &str,
        source: &SourceConfig,
        metrics: Arc<Metrics>,
        last_event_ms: Arc<AtomicI64>,
        context: Arc<ContextBook>,
    ) -> Processor {
        let c = &source.common;
        let pattern = c.pattern.as_deref().and_then(|p| regex::Regex::new(p).ok());
        let topic = |kind: Kind| -> Arc<str> {
            format!(
                "{prefix}/{}/{}/{}",
                source.station(),
                c.id,
                kind.topic_level()
            )
            .into()
        };
        Processor {
            agent: agent.id.as_str().into(),
            site: agent.site.as_str().into(),
            line: agent.line.as_str().into(),
            source: c.id.as_str().into(),
            station: source.station().into(),
            validation: c.validation,
            topics: Kind::ALL.map(topic),
            rules: Rules {
                aim: c.aim,
                validation: c.validation,
                pattern,
            },
            dedup: c.dedup_window.map(|w| (Dedup::new(w), c.dedup)),
            metrics,
            captured: Default::default(),
            last_event_ms,
            context,
            stamped: None,
            ids: ContextV7::new(),
            size_hint: 512,
        }
    }

    /// Builds the event for a reading. `None` when it is a double read to drop.
    pub fn event(&mut self, mut reading: Reading, now: Instant) -> Option<NewEvent> {
        let captured_at = rfc3339(reading.captured_at);
        let captured_ms = epoch_ms(reading.captured_at);
        let year = year_of(&captured_at);
        let handover = reading.handover.take();
        let c: Classified = self.rules.classify(&reading, year);
        let mut duplicate = false;
        if let (Some((dedup, mode)), tracegate_drivers::ReadingKind::Code(bytes)) =
            (&mut self.dedup, &reading.kind)
        {
            if dedup.is_double_read(bytes, now) {
                self.metrics
                    .duplicates
                    .get_or_create(&SourceLabel {
                        source: self.source.clone().into(),
                    })
                    .inc();
                match mode {
                    DedupMode::Drop => {
                        tracing::debug!(source = %self.source, "double read dropped");
                        return None;
                    }
                    DedupMode::Mark => duplicate = true,
                }
            }
        }
        self.count_captured(c.kind);
        self.last_event_ms.store(captured_ms, Ordering::Relaxed);
        match c.kind {
            Kind::Invalid => {
                tracing::info!(source = %self.source, reason = c.reason.as_deref().unwrap_or(""), "invalid scan");
            }
            Kind::Noread => {}
            Kind::Alarm => {
                let a = c.alarm.as_ref();
                tracing::warn!(
                    source = %self.source,
                    alarm = a.map_or("", |a| a.code.as_str()),
                    "{}",
                    a.map_or("", |a| a.message.as_str())
                );
            }
            Kind::Scan => {}
        }
        let (context_rev, context) = self.context_at(captured_ms);
        let event = Event {
            schema: crate::event::SCHEMA,
            id: event_id(&self.ids, reading.captured_at),
            seq: 0,
            kind: c.kind,
            captured_at,
            captured_ms,
            agent: self.agent.clone(),
            site: self.site.clone(),
            line: self.line.clone(),
            station: self.station.clone(),
            source: self.source.clone(),
            code: c.code,
            symbology: c.symbology,
            gs1: c.gs1,
            validation: self.validation.name(),
            reason: c.reason,
            alarm: c.alarm,
            duplicate,
            attributes: reading.attributes,
            context,
            context_rev,
        };
        Some(NewEvent::new(
            event,
            self.topics[c.kind as usize].clone(),
            handover,
            reading.captured_at,
            &mut self.size_hint,
        ))
    }

    /// Counts an event of `kind` in `events_captured`.
    fn count_captured(&mut self, kind: Kind) {
        let (metrics, source) = (&self.metrics, &self.source);
        self.captured[kind as usize]
            .get_or_insert_with(|| {
                metrics
                    .captured
                    .get_or_create(&SourceKind {
                        source: source.clone().into(),
                        kind: kind.topic_level(),
                    })
                    .clone()
            })
            .inc();
    }

    /// The context revision in effect at `captured_ms` and its values for this station.
    fn context_at(&mut self, captured_ms: i64) -> (u64, Arc<Values>) {
        let state = self.context.at(captured_ms);
        let values = match &self.stamped {
            Some((s, v)) if Arc::ptr_eq(s, &state) => v.clone(),
            _ => {
                let v = Arc::new(state.for_station(&self.station));
                self.stamped = Some((state.clone(), v.clone()));
                v
            }
        };
        (state.revision, values)
    }

    /// Takes the source's submissions until its driver stops, sending events to the queue.
    pub async fn run(mut self, mut submissions: mpsc::Receiver<Submission>, queue: Queue) {
        while let Some(Submission { reading, reply }) = submissions.recv().await {
            match self.event(reading, Instant::now()) {
                None => {
                    let _ = reply.send(Verdict::Duplicate);
                }
                Some(event) => {
                    if queue.append(event, reply).await.is_err() {
                        // The reply sender was dropped with the append: the driver hears
                        // NotCommitted.
                        return;
                    }
                }
            }
        }
    }
}

/// The year of an RFC 3339 time (for the GS1 century window).
fn year_of(rfc3339: &str) -> i32 {
    rfc3339
        .get(..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(2000)
}

/// An event id: a UUIDv7 whose 48-bit time is `captured_at` in ms (the event's
/// `captured_ms`), so that the queue stores only the id's other 10 bytes (`queue::ids`), and
/// whose counter orders a source's ids within a millisecond. When the capture times of a
/// source go backwards (its clock was set back), the ids keep counting from the latest
/// time instead, and are stored whole. A capture time before 1970 takes the current time.
fn event_id(ids: &ContextV7, captured_at: std::time::SystemTime) -> Uuid {
    match captured_at.duration_since(std::time::SystemTime::UNIX_EPOCH) {
        Ok(d) => Uuid::new_v7(Timestamp::from_unix(ids, d.as_secs(), d.subsec_nanos())),
        Err(_) => Uuid::now_v7(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    /// The first 6 bytes of a UUIDv7: its time in ms.
    fn id_ms(id: &Uuid) -> i64 {
        id.as_bytes()[..6]
            .iter()
            .fold(0, |ms, b| ms << 8 | i64::from(*b))
    }

    #[test]
    fn an_event_id_carries_the_capture_time_and_orders_a_source_within_a_millisecond() {
        let ids = ContextV7::new();
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_796_618_317_047_900_000);
        let a = event_id(&ids, at);
        let b = event_id(&ids, at);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(
            (id_ms(&a), id_ms(&b)),
            (1_796_618_317_047, 1_796_618_317_047)
        );
        assert_eq!(id_ms(&a), epoch_ms(at));
        assert!(a < b, "{a} then {b}");
        let later = event_id(&ids, at + Duration::from_millis(3));
        assert_eq!(id_ms(&later), epoch_ms(at) + 3);
        // A capture time that went backwards: the ids stay in order, at the latest time.
        let back = event_id(&ids, at);
        assert!(
            later < back && id_ms(&back) == id_ms(&later),
            "{later} then {back}"
        );
    }
}
