//! What the running agent knows about itself, shared by the metrics, health, `status` and the
//! heartbeat.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tracegate_drivers::DeviceState;

use super::metrics::{Metrics, SourceKind, SourceLabel};
use crate::config::ContextConfig;
use crate::context::{ContextBook, ContextState};
use crate::event::{epoch_ms, rfc3339};
use crate::queue::{Queue, Stats};

/// The broker connection as the publisher last saw it.
#[derive(Debug, Default)]
pub struct BrokerState {
    pub connected: AtomicBool,
    /// Why the last connection ended or failed.
    pub last_error: Mutex<Option<String>>,
    /// When the current state began (ms since the epoch).
    pub since_ms: AtomicI64,
}

/// One configured source.
#[derive(Debug)]
pub struct SourceInfo {
    pub id: String,
    pub kind: String,
    pub station: String,
    pub device: watch::Receiver<DeviceState>,
    /// Capture time of its last event (ms since the epoch), 0 before the first.
    pub last_event_ms: Arc<AtomicI64>,
}

/// The agent's shared state.
pub struct AgentState {
    pub agent: String,
    pub site: String,
    pub line: String,
    pub config_hash: String,
    pub started: Instant,
    pub started_at: SystemTime,
    pub metrics: Arc<Metrics>,
    pub broker: BrokerState,
    pub sources: Vec<SourceInfo>,
    pub queue: Queue,
    /// True once the queue and every source are up (systemd READY).
    pub ready: AtomicBool,
    /// The line context MES pushed down.
    pub context: Arc<ContextBook>,
    /// Which context keys MES may set.
    pub context_config: ContextConfig,
    /// [confirm] mode: alarm when the oldest unconfirmed event is older than this.
    pub confirm_alarm_after: Option<std::time::Duration>,
}

/// The `status` document.
#[derive(Debug, Serialize)]
pub struct Status {
    pub agent: String,
    pub site: String,
    pub line: String,
    pub version: &'static str,
    pub revision: &'static str,
    pub config_hash: String,
    pub started_at: String,
    pub uptime_secs: u64,
    pub ready: bool,
    pub broker: BrokerStatus,
    pub queue: QueueStatus,
    pub sources: Vec<SourceStatus>,
    /// The line context in effect.
    pub context: ContextState,
    /// Conditions that need attention, as sentences.
    pub alarms: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BrokerStatus {
    pub connected: bool,
    pub since: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct QueueStatus {
    #[serde(flatten)]
    pub stats: Stats,
    pub oldest_age_secs: Option<f64>,
    pub full: bool,
}

#[derive(Debug, Serialize)]
pub struct SourceStatus {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub station: String,
    pub device: &'static str,
    pub captured: u64,
    pub invalid: u64,
    pub noread: u64,
    pub duplicates: u64,
    pub published: u64,
    pub last_event_at: Option<String>,
}

/// The git revision baked in at build time.
pub const REVISION: &str = env!("TRACEGATE_GIT_REVISION");

impl AgentState {
    /// Refreshes the queue gauges and returns the queue's figures.
    pub async fn refresh(&self) -> Option<Stats> {
        let stats = self.queue.stats().await.ok()?;
        let m = &self.metrics;
        m.queue_depth.set(stats.depth as i64);
        m.queue_bytes.set(stats.bytes as i64);
        m.queue_retained.set(stats.retained as i64);
        m.queue_full.set(self.queue_full() as i64);
        m.queue_oldest_age_seconds
            .set(oldest_age_secs(&stats).unwrap_or(0.0));
        m.awaiting_confirmation.set(stats.awaiting as i64);
        m.oldest_unconfirmed_age_seconds
            .set(unconfirmed_age_secs(&stats).unwrap_or(0.0));
        if let Some(b) = super::metrics::disk_write_bytes() {
            m.disk_write_bytes.set(b as i64);
        }
        for s in &self.sources {
            let v = match *s.device.borrow() {
                DeviceState::Connected => 1,
                DeviceState::Disconnected => 0,
                DeviceState::Unknown => -1,
            };
            m.device_connected
                .get_or_create(&SourceLabel {
                    source: s.id.as_str().into(),
                })
                .set(v);
        }
        Some(stats)
    }

    fn queue_full(&self) -> bool {
        *self.queue.full().borrow()
    }

    /// The whole status document.
    pub async fn status(&self) -> Status {
        let stats = self.refresh().await.unwrap_or_default();
        let m = &self.metrics;
        let count = |source: &str, kind: &'static str| {
            m.captured
                .get_or_create(&SourceKind {
                    source: source.into(),
                    kind,
                })
                .get()
        };
        let sources: Vec<SourceStatus> = self
            .sources
            .iter()
            .map(|s| {
                let label = SourceLabel {
                    source: s.id.as_str().into(),
                };
                let last = s.last_event_ms.load(Ordering::Relaxed);
                SourceStatus {
                    id: s.id.clone(),
                    kind: s.kind.clone(),
                    station: s.station.clone(),
                    device: match *s.device.borrow() {
                        DeviceState::Connected => "connected",
                        DeviceState::Disconnected => "disconnected",
                        DeviceState::Unknown => "unknown",
                    },
                    captured: ["scan", "noread", "invalid", "alarm"]
                        .iter()
                        .map(|k| count(&s.id, k))
                        .sum(),
                    invalid: count(&s.id, "invalid"),
                    noread: count(&s.id, "noread"),
                    duplicates: m.duplicates.get_or_create(&label).get(),
                    published: m.published.get_or_create(&label).get(),
                    last_event_at: (last != 0).then(|| ms_to_rfc3339(last)),
                }
            })
            .collect();
        let broker = BrokerStatus {
            connected: self.broker.connected.load(Ordering::Relaxed),
            since: Some(self.broker.since_ms.load(Ordering::Relaxed))
                .filter(|t| *t != 0)
                .map(ms_to_rfc3339),
            last_error: self.broker.last_error.lock().ok().and_then(|e| e.clone()),
        };
        let full = self.queue_full();
        let mut alarms = Vec::new();
        if *self.queue.failing().borrow() {
            alarms.push(
                "queue commits are failing (disk full or I/O error): sources are not acknowledged"
                    .into(),
            );
        }
        if full {
            alarms.push(format!(
                "the queue is full ({} events, {} bytes)",
                stats.depth, stats.bytes
            ));
        }
        if !broker.connected {
            alarms.push(format!(
                "not connected to the MQTT broker{}",
                broker
                    .last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        if let (Some(limit), Some(age)) = (self.confirm_alarm_after, unconfirmed_age_secs(&stats)) {
            if age > limit.as_secs_f64() {
                alarms.push(format!(
                    "the consumer has not confirmed {} events; the oldest was published {age:.0}s ago",
                    stats.awaiting
                ));
            }
        }
        for s in &sources {
            if s.device == "disconnected" {
                alarms.push(format!("source {} has lost its device", s.id));
            }
        }
        Status {
            agent: self.agent.clone(),
            site: self.site.clone(),
            line: self.line.clone(),
            version: env!("CARGO_PKG_VERSION"),
            revision: REVISION,
            config_hash: self.config_hash.clone(),
            started_at: rfc3339(self.started_at),
            uptime_secs: self.started.elapsed().as_secs(),
            ready: self.ready.load(Ordering::Relaxed),
            broker,
            queue: QueueStatus {
                oldest_age_secs: oldest_age_secs(&stats),
                stats,
                full,
            },
            sources,
            context: (*self.context.current()).clone(),
            alarms,
        }
    }

    /// Records a change of the broker connection.
    pub fn set_broker(&self, connected: bool, error: Option<String>) {
        if self.broker.connected.swap(connected, Ordering::Relaxed) != connected || error.is_some()
        {
            self.broker
                .since_ms
                .store(epoch_ms(SystemTime::now()), Ordering::Relaxed);
        }
        self.metrics.mqtt_connected.set(connected as i64);
        if let Some(e) = error {
            self.metrics.mqtt_disconnects.inc();
            if let Ok(mut last) = self.broker.last_error.lock() {
                *last = Some(e);
            }
        }
    }
}

fn oldest_age_secs(stats: &Stats) -> Option<f64> {
    stats
        .oldest_captured_ms
        .map(|t| ((epoch_ms(SystemTime::now()) - t).max(0)) as f64 / 1000.0)
}

fn unconfirmed_age_secs(stats: &Stats) -> Option<f64> {
    stats
        .oldest_awaiting_published_ms
        .map(|t| ((epoch_ms(SystemTime::now()) - t).max(0)) as f64 / 1000.0)
}

fn ms_to_rfc3339(ms: i64) -> String {
    rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}
