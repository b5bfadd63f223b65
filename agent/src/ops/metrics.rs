//! Prometheus metrics. Counters are bumped where the occurrence is logged, so an operator who
//! sees a counter move finds its log line. Gauges that mirror the queue are refreshed at scrape
//! time. Nothing here touches the disk.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A source's id as a label value, shared with the events that carry it: counting an event
/// copies no string.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        (&*self.0).encode(encoder)
    }
}

impl<T: Into<Arc<str>>> From<T> for Name {
    fn from(s: T) -> Name {
        Name(s.into())
    }
}

/// Counts one event of `source` in a batch's tally, to add to a per-source family once per
/// batch: a family's lookup hashes the label and takes a lock, too much once per event.
pub fn tally(per_source: &mut Vec<(Arc<str>, u64)>, source: &Arc<str>) {
    match per_source.iter_mut().find(|(s, _)| s == source) {
        Some((_, n)) => *n += 1,
        None => per_source.push((source.clone(), 1)),
    }
}

/// Adds a batch's [`tally`] to a per-source counter family.
pub fn add_tally(family: &Family<SourceLabel, Counter>, per_source: Vec<(Arc<str>, u64)>) {
    for (source, n) in per_source {
        family
            .get_or_create(&SourceLabel {
                source: source.into(),
            })
            .inc_by(n);
    }
}

/// The `source` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: Name,
}

/// The `source` and `kind` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceKind {
    pub source: Name,
    pub kind: &'static str,
}

/// The `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// Every metric the agent exports.
pub struct Metrics {
    pub registry: Registry,
    /// Readings turned into events, by source and kind (scan, noread, invalid, alarm).
    pub captured: Family<SourceKind, Counter>,
    /// Double reads inside the dedup window.
    pub duplicates: Family<SourceLabel, Counter>,
    /// Events durably committed.
    pub committed: Family<SourceLabel, Counter>,
    /// Events acknowledged by the broker.
    pub published: Family<SourceLabel, Counter>,
    /// Capture → durable commit.
    pub scan_to_commit: Histogram,
    /// Publish → PUBACK.
    pub publish_to_ack: Histogram,
    /// Commits that failed (disk full, I/O error); readings were not acknowledged.
    pub commit_failures: Counter,
    /// Undelivered events dropped by `drop_oldest`.
    pub dropped: Counter,
    pub queue_depth: Gauge,
    pub queue_bytes: Gauge,
    pub queue_oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub queue_retained: Gauge,
    pub queue_full: Gauge,
    /// 1 while connected to the broker.
    pub mqtt_connected: Gauge,
    /// Connection losses (each followed by reconnect attempts).
    pub mqtt_disconnects: Counter,
    /// 1 while the source's device is connected, 0 when not, -1 before it reported.
    pub device_connected: Family<SourceLabel, Gauge>,
    /// Times the source's device was lost after it had been connected (the driver logs each
    /// outage as a warning).
    pub device_disconnects: Family<SourceLabel, Counter>,
    /// Bytes this process caused to be written to storage (/proc/self/io).
    pub disk_write_bytes: Gauge,
    /// Context commands from MES, by result (accepted, rejected).
    pub context_commands: Family<ResultLabel, Counter>,
    /// Events confirmed by the consumer ([confirm] mode).
    pub confirmed: Counter,
    /// PUBACK → consumer confirmation.
    pub confirmation_lag: Histogram,
    /// Events published again because the consumer did not confirm them in time.
    pub republished_unconfirmed: Counter,
    /// Published events waiting for confirmation, and the age of the oldest.
    pub awaiting_confirmation: Gauge,
    pub oldest_unconfirmed_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    /// All metrics, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tracegate");
        let latency = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let m = Metrics {
            captured: Family::default(),
            duplicates: Family::default(),
            committed: Family::default(),
            published: Family::default(),
            scan_to_commit: latency(),
            publish_to_ack: latency(),
            commit_failures: Counter::default(),
            dropped: Counter::default(),
            queue_depth: Gauge::default(),
            queue_bytes: Gauge::default(),
            queue_oldest_age_seconds: Gauge::default(),
            queue_retained: Gauge::default(),
            queue_full: Gauge::default(),
            mqtt_connected: Gauge::default(),
            mqtt_disconnects: Counter::default(),
            device_connected: Family::default(),
            device_disconnects: Family::default(),
            disk_write_bytes: Gauge::default(),
            context_commands: Family::default(),
            confirmed: Counter::default(),
            confirmation_lag: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
            republished_unconfirmed: Counter::default(),
            awaiting_confirmation: Gauge::default(),
            oldest_unconfirmed_age_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "events_captured",
            "Readings turned into events, by source and kind",
            m.captured.clone(),
        );
        r.register(
            "events_duplicate",
            "Double reads inside the dedup window",
            m.duplicates.clone(),
        );
        r.register(
            "events_committed",
            "Events durably committed to the queue",
            m.committed.clone(),
        );
        r.register(
            "events_published",
            "Events acknowledged by the MQTT broker",
            m.published.clone(),
        );
        r.register(
            "scan_to_commit_seconds",
            "Capture to durable commit",
            m.scan_to_commit.clone(),
        );
        r.register(
            "publish_to_ack_seconds",
            "MQTT publish to broker acknowledgement",
            m.publish_to_ack.clone(),
        );
        r.register(
            "queue_commit_failures",
            "Queue commits that failed; readings were not acknowledged",
            m.commit_failures.clone(),
        );
        r.register(
            "queue_dropped",
            "Undelivered events deleted by overflow = drop_oldest",
            m.dropped.clone(),
        );
        r.register(
            "queue_depth_events",
            "Undelivered events in the queue",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_depth_bytes",
            "Payload bytes of undelivered events",
            m.queue_bytes.clone(),
        );
        r.register(
            "queue_oldest_age_seconds",
            "Age of the oldest undelivered event",
            m.queue_oldest_age_seconds.clone(),
        );
        r.register(
            "queue_retained_events",
            "Delivered events kept for replay",
            m.queue_retained.clone(),
        );
        r.register(
            "queue_full",
            "1 while the queue is at a limit",
            m.queue_full.clone(),
        );
        r.register(
            "mqtt_connected",
            "1 while connected to the MQTT broker",
            m.mqtt_connected.clone(),
        );
        r.register(
            "mqtt_disconnects",
            "MQTT connection losses and failed connects",
            m.mqtt_disconnects.clone(),
        );
        r.register(
            "device_connected",
            "1 connected, 0 disconnected, -1 not yet known",
            m.device_connected.clone(),
        );
        r.register(
            "device_disconnects",
            "Times the source's device was lost after it had been connected",
            m.device_disconnects.clone(),
        );
        r.register(
            "disk_write_bytes",
            "Bytes this process caused to be written to storage",
            m.disk_write_bytes.clone(),
        );
        r.register(
            "context_commands",
            "Line context commands from MES, by result",
            m.context_commands.clone(),
        );
        r.register(
            "events_confirmed",
            "Events confirmed by the consumer",
            m.confirmed.clone(),
        );
        r.register(
            "confirmation_lag_seconds",
            "Broker acknowledgement to consumer confirmation",
            m.confirmation_lag.clone(),
        );
        r.register(
            "events_republished_unconfirmed",
            "Events published again for want of a confirmation",
            m.republished_unconfirmed.clone(),
        );
        r.register(
            "queue_awaiting_confirmation_events",
            "Published events waiting for the consumer's confirmation",
            m.awaiting_confirmation.clone(),
        );
        r.register(
            "queue_oldest_unconfirmed_age_seconds",
            "Time since the oldest unconfirmed event was published",
            m.oldest_unconfirmed_age_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Bytes written to storage on behalf of this process (`write_bytes` of /proc/self/io).
pub fn disk_write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_family_with_the_prefix() {
        let m = Metrics::new();
        m.captured
            .get_or_create(&SourceKind {
                source: "s1".into(),
                kind: "scan",
            })
            .inc();
        m.queue_depth.set(7);
        let text = m.encode();
        assert!(
            text.contains("tracegate_events_captured_total{source=\"s1\",kind=\"scan\"} 1"),
            "{text}"
        );
        assert!(text.contains("tracegate_queue_depth_events 7"), "{text}");
        assert!(
            text.contains("# TYPE tracegate_scan_to_commit_seconds histogram"),
            "{text}"
        );
    }
}
