//! Processing: a driver's reading becomes an event (id, capture time, identity, code, AIM
//! symbology, GS1 data, validation verdict, dedup), which goes to the queue with the driver's
//! reply channel. One task per source keeps each source's order.

mod classify;
mod dedup;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;
use tracegate_drivers::reading::Submission;
use tracegate_drivers::{Reading, Verdict};
use uuid::Uuid;

pub use self::classify::{Classified, Rules};
pub use self::dedup::Dedup;
use crate::config::{AgentSection, DedupMode, SourceConfig, Validation};
use crate::context::ContextBook;
use crate::event::{Event, Kind, epoch_ms, rfc3339};
use crate::ops::metrics::{Metrics, SourceKind, SourceLabel};
use crate::queue::{NewEvent, Queue};

/// Everything a source's processing task needs.
pub struct Processor {
    agent: AgentSection,
    source: String,
    station: String,
    validation: Validation,
    /// `<prefix>/<station>/<source>`; the kind is the last level.
    topic_base: String,
    rules: Rules,
    dedup: Option<(Dedup, DedupMode)>,
    metrics: Arc<Metrics>,
    /// Capture time of the last event (ms since the epoch), for `status`.
    last_event_ms: Arc<AtomicI64>,
    /// The line context to stamp on events.
    context: Arc<ContextBook>,
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
        Processor {
            agent: agent.clone(),
            source: c.id.clone(),
            station: source.station().to_string(),
            validation: c.validation,
            topic_base: format!("{prefix}/{}/{}", source.station(), c.id),
            rules: Rules {
                aim: c.aim,
                validation: c.validation,
                pattern,
            },
            dedup: c.dedup_window.map(|w| (Dedup::new(w), c.dedup)),
            metrics,
            last_event_ms,
            context,
        }
    }

    /// Builds the event for a reading. `None` when it is a double read to drop.
    pub fn event(&mut self, reading: Reading, now: Instant) -> Option<NewEvent> {
        let year = year_of(&rfc3339(reading.captured_at));
        let handover = reading.handover.clone();
        let ctx = self.context.at(epoch_ms(reading.captured_at));
        let c: Classified = self.rules.classify(&reading, year);
        let mut duplicate = false;
        if let (Some((dedup, mode)), tracegate_drivers::ReadingKind::Code(bytes)) =
            (&mut self.dedup, &reading.kind)
        {
            if dedup.is_double_read(bytes, now) {
                self.metrics
                    .duplicates
                    .get_or_create(&SourceLabel {
                        source: self.source.clone(),
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
        let labels = SourceKind {
            source: self.source.clone(),
            kind: c.kind.topic_level().into(),
        };
        self.metrics.captured.get_or_create(&labels).inc();
        self.last_event_ms
            .store(epoch_ms(reading.captured_at), Ordering::Relaxed);
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
        let event = Event {
            schema: crate::event::SCHEMA,
            id: Uuid::now_v7(),
            seq: 0,
            kind: c.kind,
            captured_at: rfc3339(reading.captured_at),
            captured_ms: epoch_ms(reading.captured_at),
            agent: self.agent.id.clone(),
            site: self.agent.site.clone(),
            line: self.agent.line.clone(),
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
            context: ctx.for_station(&self.station),
            context_rev: ctx.revision,
        };
        let topic = format!("{}/{}", self.topic_base, c.kind.topic_level());
        Some(NewEvent {
            event,
            topic,
            handover,
            captured: reading.captured_at,
        })
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
