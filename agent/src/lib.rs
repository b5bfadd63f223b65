//! tracegate: a shop-floor edge agent that gets every trace-code scan from the line to the
//! ERP/WMS/MES over MQTT, once, in order, provably.
//!
//! # Layout
//!
//! One scan's way: device → driver (`tracegate-drivers`) → [`process`] (classify, GS1,
//! validate, dedup, enrich) → [`queue`] (SQLite, committed before the device hears
//! "accepted") → [`publish`] (QoS 1, deleted only after PUBACK) → broker.
//!
//! - [`config`]: the per-line TOML file, validated with file/key/line in every error.
//! - [`context`]: line context pushed down from MES (work order, batch…), stamped on events.
//! - [`event`]: the event and its JSON payload (docs/schema/event.schema.json).
//! - [`process`]: reading → event, one task per source.
//! - [`queue`]: the durable queue; its module docs state the on-disk format and invariants.
//! - [`publish`]: MQTT publishing, the in-flight table, status messages.
//! - [`ops`]: metrics, health, the control socket, systemd notify and watchdog.
//! - [`simulator`]: a source that makes realistic scans without hardware.
//! - [`run`]: wiring and clean shutdown; [`cli`]: the commands.

pub mod cli;
pub mod config;
pub mod context;
pub mod event;
pub mod logging;
pub mod ops;
pub mod process;
pub mod publish;
pub mod queue;
pub mod run;
pub mod simulator;
