//! OPC UA sources (`type = "opcua"`): codes from a PLC's OPC UA server, by subscription.
//!
//! # Layout
//!
//! - [`config`]: the source's keys, every one documented; [`validate`](OpcuaConfig::validate)
//!   names the key of each problem.
//! - [`context`]: the line context MES pushed down, as values for the PLC's String nodes, pure.
//! - [`nodeid`]: NodeIds in the standard string form and with namespace URIs (`nsu=`), pure.
//! - [`handshake`]: the counter/ack handover as a pure state machine (the Modbus protocol,
//!   driven by data changes).
//! - [`values`]: OPC UA values to codes, counters and attribute text, and back, pure.
//! - [`pki`]: the client's certificate store and the server-certificate trust list.
//! - `hmi`: writes the line context into the PLC's nodes.
//! - `connect`: client, endpoint, identity, session, namespaces and subscription.
//! - `session`: the async shell around the handshake, reconnects and the gap they leave.
//!
//! README.md in this folder is the operator's guide; sample.toml is a checked example.

pub mod config;
mod connect;
pub mod context;
pub mod handshake;
mod hmi;
pub mod nodeid;
pub mod pki;
mod session;
mod validate;
pub mod values;

#[cfg(test)]
mod tests;

use tracing::info;

use crate::reading::Sink;
use crate::shutdown::Shutdown;

pub use config::{ContextNode, HandshakeConfig, Identity, Mode, OpcuaConfig, Policy};
pub use context::ContextTagConfig;

/// Runs the opcua source `source_id` until `shutdown` triggers or the agent stops taking
/// readings from `sink`. `config` should have passed [`OpcuaConfig::validate`].
///
/// Shutdown cancels the source wherever it is: a code whose verdict is outstanding is then not
/// acknowledged, and is presented again by the PLC to the next run.
pub async fn run(config: OpcuaConfig, source_id: String, sink: Sink, mut shutdown: Shutdown) {
    let source = source_id.as_str();
    tokio::select! {
        () = shutdown.wait() => info!(source, "opcua {source}: stopped (shutdown)"),
        () = session::run(source, &config, &sink) => {
            info!(source, "opcua {source}: stopped, the agent no longer accepts readings")
        }
    }
}
