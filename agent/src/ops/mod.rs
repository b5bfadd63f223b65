//! Operations: what an admin running fifty gateways needs from each agent.
//!
//! - [`metrics`]: Prometheus metrics; [`state`]: the shared view of the running agent that
//!   metrics, health, `tracegate status` and the MQTT heartbeat are built from.
//! - [`server`]: the HTTP endpoints on the control socket and the optional TCP listener.
//! - [`notify`]: systemd READY / WATCHDOG / STATUS / STOPPING.
//! - [`client`]: the CLI side of the control socket.
//! - [`footprint`]: gives the pages start-up touched in the agent's own binary back.
//!
//! Nothing here writes to disk.

pub mod client;
pub mod footprint;
pub mod metrics;
pub mod notify;
pub mod server;
pub mod state;
