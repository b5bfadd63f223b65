//! The line's configuration: one TOML file per production line.
//!
//! - [`load`] reads and validates a file; every error names the file, the key path and the line
//!   ([`ConfigError`]).
//! - The structs below are the file's shape. Every field says why it exists and its default.
//!   Unknown keys are errors. Durations carry their unit (`"5ms"`, `"30s"`), sizes too
//!   (`"512 MiB"`).
//!
//! A source table mixes the agent's keys (`id`, `type`, `station`, validation and dedup) with
//! the driver's own keys (`transport`, `baud`, …); [`load`] splits them.

pub(crate) mod check;
mod display;
mod load;
mod locate;

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use tracegate_drivers::modbus::ModbusConfig;
#[cfg(feature = "opcua")]
use tracegate_drivers::opcua::OpcuaConfig;
use tracegate_drivers::scanner::ScannerConfig;

use crate::simulator::SimulatorConfig;

pub use display::render_resolved;
pub use load::{ConfigError, ConfigProblem, load, load_str};

/// The whole file, resolved: defaults applied, secrets read, relative paths made absolute.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// The file this came from (for messages).
    pub file: PathBuf,
    pub agent: AgentSection,
    pub store: StoreConfig,
    pub mqtt: MqttConfig,
    pub ops: OpsConfig,
    pub context: ContextConfig,
    pub confirm: ConfirmConfig,
    pub sources: Vec<SourceConfig>,
    /// SHA-256 of the file's bytes, hex; reported in the retained status so an operator can
    /// see which configuration a gateway runs.
    pub hash: String,
    /// Things that work but should be fixed (secrets readable by others); printed by `check`
    /// and logged at start.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `[agent]`: who this agent is. Every event carries these.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Unique id of this agent (gateway + line). The sequence numbers are gap-free per agent
    /// id. Letters, digits, `.`, `_`, `-`. Required.
    pub id: String,
    /// Site (plant) name; part of the default topic prefix. Same characters. Required.
    pub site: String,
    /// Production line name; part of the default topic prefix. Same characters. Required.
    pub line: String,
}

/// What the queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Stop accepting: sources are not acknowledged and reading is held back until the
    /// publisher frees room. Nothing accepted is ever lost. The default.
    Block,
    /// Accept the new event and delete the oldest undelivered ones to make room (counted and
    /// alarmed). For lines that must never stop, where the newest data matters most.
    DropOldest,
}

/// `[store]`: the durable queue (SQLite, WAL, synchronous=FULL).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The queue's database file. A relative path is relative to the config file's folder.
    /// Required.
    pub path: PathBuf,
    /// Most undelivered events the queue holds. Default 1,000,000 (a weekend at 5 scans/s).
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// Most bytes of undelivered payload the queue holds. Default "1 GiB".
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// `block` (default) or `drop_oldest`: what happens when either limit is reached.
    #[serde(default = "default_overflow")]
    pub overflow: Overflow,
    /// Group commit: how long the writer waits for more events before one fsync'd commit.
    /// Bounds the fsyncs flash sees; adds at most this much scan→commit latency. Default "5ms".
    #[serde(default = "default_commit_window", with = "humantime_serde")]
    pub commit_window: Duration,
    /// Group commit: most events in one transaction; a full batch commits at once, without
    /// waiting for the window. Default 128: half of what one pipelined reader may have
    /// outstanding (256), so a reader sending flat out fills batches instead of waiting out
    /// the window for every round trip (docs/performance.md); at ordinary rates the window
    /// ends a commit long before this many events are in it.
    #[serde(default = "default_commit_batch")]
    pub commit_batch: usize,
    /// Delivered events kept for `tracegate queue replay` and `queue export` (when the
    /// upstream lost what the broker had acknowledged). 0 turns retention off: delivered
    /// events are deleted at once. Default 100,000. Pruned in steps: a limit (count, bytes
    /// or age) is exceeded by up to 1/1024 of it (at least 64 events, 64 KiB, 1 s) before the
    /// oldest go, down to the limit.
    #[serde(default = "default_retain_events")]
    pub retain_events: u64,
    /// Most bytes of delivered events kept. Default "64 MiB".
    #[serde(default = "default_retain_bytes")]
    pub retain_bytes: ByteSize,
    /// Delivered events older than this are pruned (in the next commit that happens anyway;
    /// an idle agent writes nothing). Default "24h".
    #[serde(default = "default_retain_age", with = "humantime_serde")]
    pub retain_age: Duration,
}

impl Config {
    /// The queue's limits.
    pub fn limits(&self) -> crate::queue::Limits {
        crate::queue::Limits {
            confirm: self.confirm.enabled,
            ..self.store.limits()
        }
    }
}

impl StoreConfig {
    /// The queue's limits, without consumer confirmation.
    pub fn limits(&self) -> crate::queue::Limits {
        crate::queue::Limits {
            max_events: self.max_events,
            max_bytes: self.max_bytes.as_u64(),
            overflow: self.overflow,
            retain_events: self.retain_events,
            retain_bytes: self.retain_bytes.as_u64(),
            retain_age: self.retain_age,
            confirm: false,
        }
    }
}

/// `[mqtt]`: the broker the events go to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS). The port defaults to 1883 / 8883.
    /// Required.
    pub url: String,
    /// MQTT client id. Default `tracegate-<agent.id>`. Must be unique on the broker.
    #[serde(default)]
    pub client_id: Option<String>,
    /// User name, if the broker wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (first line, trailing newline ignored). Secrets never sit in
    /// the config itself. Only with `username`. `${CREDENTIALS_DIRECTORY}` is expanded, so a
    /// systemd credential works: `password_file = "${CREDENTIALS_DIRECTORY}/mqtt-password"`
    /// with `LoadCredential=mqtt-password:/etc/tracegate/line-3.password` in the unit.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA(s) that sign the broker's certificate, for `mqtts://`. Default: the
    /// system's trust store. The broker's certificate is always verified.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate (chain) the agent presents to the broker (mutual TLS), with
    /// `client_key_file`. Only for `mqtts://`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (PKCS#8, PKCS#1 or SEC1). `${CREDENTIALS_DIRECTORY}`
    /// is expanded, like for `password_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Topic prefix. Default `tracegate/<site>/<line>`. Events go to
    /// `<prefix>/<station>/<source>/{scan,noread,invalid}`, status to `<prefix>/status`.
    #[serde(default)]
    pub topic_prefix: Option<String>,
    /// QoS of events: 1 (default; deleted from the queue on PUBACK) or 2 (on PUBCOMP). QoS 0
    /// cannot be confirmed and is refused.
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// MQTT keepalive. Default "30s".
    #[serde(default = "default_keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
    /// Most events published and not yet acknowledged at once. Default 64.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    /// First reconnect delay; doubles (with jitter) up to `reconnect_max`. Default "500ms".
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest reconnect delay. Default "30s".
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// MQTT version: "5", "3.1.1", or "auto" (default: MQTT 5, falling back to 3.1.1 when the
    /// broker refuses the MQTT 5 handshake). MQTT 5 adds event id, seq and schema as user
    /// properties, content types, message expiry on heartbeats and reason codes on PUBACK.
    #[serde(default)]
    pub protocol: MqttProtocol,
    /// Filled from `password_file` at load; never printed.
    #[serde(skip)]
    pub password: Option<String>,
}

/// `[ops]`: what the operator sees: metrics, health, the control socket, the heartbeat.
/// Nothing here writes to disk.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// TCP address serving Prometheus `/metrics`, `/health/live`, `/health/ready` and
    /// `/status` (read-only), e.g. "127.0.0.1:9464". Default: off (the control socket serves
    /// the same locally).
    #[serde(default)]
    pub listen: Option<String>,
    /// Unix socket for `tracegate status` and `queue replay`. Default: `control.sock` beside
    /// the queue database. Only the agent's user (and root) may connect.
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
    /// How often a heartbeat goes to `<prefix>/status/heartbeat` (QoS 0, not retained).
    /// "0s" turns it off. Default "60s".
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            listen: None,
            control_socket: None,
            heartbeat: default_heartbeat(),
        }
    }
}

impl Config {
    /// The control socket in effect.
    pub fn control_socket(&self) -> PathBuf {
        self.ops.control_socket.clone().unwrap_or_else(|| {
            self.store
                .path
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("control.sock")
        })
    }
}

fn default_heartbeat() -> Duration {
    Duration::from_secs(60)
}

/// `[context]`: which line context keys MES/ERP may set over `<prefix>/cmd/context`. Only
/// these can be written; a command naming another key is rejected with a reason.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// Keys the line-wide context may hold, e.g. ["work_order", "batch", "gtin", "shift"].
    /// Default: none (context commands for the line are rejected).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Station → keys its own context may hold (they add to and override the line's), e.g.
    /// `st20 = ["work_order"]`. Default: none.
    #[serde(default)]
    pub stations: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[confirm]`: delivery confirmed by the consumer. A PUBACK only says the broker took an
/// event; with this on, the ERP/MES confirms on `<prefix>/ack` and the agent keeps (and
/// eventually republishes) every event until it is confirmed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmConfig {
    /// Turn consumer confirmation on. Default false (an event is delivered at its PUBACK).
    #[serde(default)]
    pub enabled: bool,
    /// A published event not confirmed this long after its PUBACK is published again (same
    /// id, seq and bytes). Default "5m".
    #[serde(default = "default_republish_after", with = "humantime_serde")]
    pub republish_after: Duration,
    /// Raise an alarm (status, heartbeat, metric, log) when the oldest unconfirmed event was
    /// published longer ago than this. Default "15m".
    #[serde(default = "default_alarm_after", with = "humantime_serde")]
    pub alarm_after: Duration,
}

impl Default for ConfirmConfig {
    fn default() -> Self {
        ConfirmConfig {
            enabled: false,
            republish_after: default_republish_after(),
            alarm_after: default_alarm_after(),
        }
    }
}

fn default_republish_after() -> Duration {
    Duration::from_secs(300)
}
fn default_alarm_after() -> Duration {
    Duration::from_secs(900)
}

/// The MQTT protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum MqttProtocol {
    /// MQTT 5, else 3.1.1.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "5")]
    V5,
    #[serde(rename = "3.1.1")]
    V311,
}

/// How a source's codes are checked. A code that fails becomes an `invalid` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// Any non-empty code is valid (GS1 data is still parsed and attached when the AIM id
    /// announces it).
    None,
    /// The code must be valid GS1 (element string or Digital Link).
    Gs1,
    /// The code must match `pattern` (a whole-code regular expression).
    Regex,
}

/// What happens to a double read inside the dedup window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupMode {
    /// Not published; the device is told "accepted". Counted.
    Drop,
    /// Published with `"duplicate": true`.
    Mark,
}

/// The agent's keys of a `[[sources]]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCommon {
    /// Unique id of the source on this agent; a topic level. Required.
    pub id: String,
    /// Station (cell) the source belongs to; a topic level. Default: the source id.
    #[serde(default)]
    pub station: Option<String>,
    /// `none` (default), `gs1` or `regex`.
    #[serde(default = "default_validation")]
    pub validation: Validation,
    /// The regular expression for `validation = "regex"`; must match the whole code.
    #[serde(default)]
    pub pattern: Option<String>,
    /// The reader prefixes codes with AIM symbology identifiers (`]d2`, `]C1`, …). The
    /// identifier is split off, reported, and decides whether GS1 data is parsed. Default false.
    #[serde(default)]
    pub aim: bool,
    /// A code identical to one read less than this long ago on this source is a double read.
    /// Default: off.
    #[serde(default, with = "humantime_serde")]
    pub dedup_window: Option<Duration>,
    /// `drop` (default) or `mark` double reads.
    #[serde(default = "default_dedup_mode")]
    pub dedup: DedupMode,
}

/// A source's driver and its own settings, chosen by `type`.
#[derive(Debug, Clone)]
pub enum DriverConfig {
    /// A barcode reader over serial, TCP or USB HID (drivers/src/scanner/README.md).
    Scanner(ScannerConfig),
    /// A PLC over Modbus TCP or RTU, usually with the code handshake
    /// (drivers/src/modbus/README.md).
    Modbus(ModbusConfig),
    /// A PLC's OPC UA server: subscriptions, the code handshake with write-back
    /// (drivers/src/opcua/README.md).
    #[cfg(feature = "opcua")]
    Opcua(OpcuaConfig),
    /// Simulated scans, for trying the product without hardware.
    Simulator(SimulatorConfig),
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct SourceConfig {
    /// Position of the table in the file (`sources[index]` in messages), which differs from
    /// the position in [`Config::sources`] when an earlier table was rejected.
    #[serde(skip)]
    pub index: usize,
    #[serde(flatten)]
    pub common: SourceCommon,
    /// `scanner`, `modbus`, `opcua` or `simulator`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip)]
    pub driver: DriverConfig,
    /// The driver's keys as written, for `tracegate check` (the driver's defaults are in its
    /// README).
    #[serde(flatten)]
    pub driver_keys: toml::Table,
}

impl SourceConfig {
    /// The station, defaulting to the source id.
    pub fn station(&self) -> &str {
        self.common.station.as_deref().unwrap_or(&self.common.id)
    }
}

impl MqttConfig {
    /// The MQTT client id in effect.
    pub fn client_id(&self, agent: &AgentSection) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("tracegate-{}", agent.id))
    }

    /// The topic prefix in effect.
    pub fn topic_prefix(&self, agent: &AgentSection) -> String {
        self.topic_prefix
            .clone()
            .unwrap_or_else(|| format!("tracegate/{}/{}", agent.site, agent.line))
    }
}

fn default_max_events() -> u64 {
    1_000_000
}
fn default_max_bytes() -> ByteSize {
    ByteSize::gib(1)
}
fn default_overflow() -> Overflow {
    Overflow::Block
}
fn default_commit_window() -> Duration {
    Duration::from_millis(5)
}
fn default_commit_batch() -> usize {
    128
}
fn default_retain_events() -> u64 {
    100_000
}
fn default_retain_bytes() -> ByteSize {
    ByteSize::mib(64)
}
fn default_retain_age() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_qos() -> u8 {
    1
}
fn default_keepalive() -> Duration {
    Duration::from_secs(30)
}
fn default_inflight() -> u16 {
    64
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
fn default_validation() -> Validation {
    Validation::None
}
fn default_dedup_mode() -> DedupMode {
    DedupMode::Drop
}

#[cfg(test)]
mod tests;
