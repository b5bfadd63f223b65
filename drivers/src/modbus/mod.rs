//! Modbus driver: PLCs over Modbus TCP and RTU, with the code handshake.
//!
//! # Layout
//!
//! Pure code, no I/O:
//! - [`address`]: `40001` / `hr:0` address parsing (1-based Modicon numbers, 0-based offsets).
//! - [`codec`]: registers → values (types, word orders, strings, bits, scaling).
//! - [`plan`]: which read requests cover a set of tags (limits, gaps).
//! - [`trigger`]: change / rising-edge / counter detection for polled tags.
//! - [`context`]: the line context MES pushed down, as register writes for the HMI.
//! - [`handshake`]: the code handover state machine (counter → block → verdict → ack).
//! - [`config`] (`raw.rs`, `validate.rs`): [`ModbusConfig`], its TOML keys and checks.
//!
//! The async shell:
//! - `client.rs`: one request with a timeout; TCP connections dropped after a timeout and
//!   reopened on the next request.
//! - `bus.rs`: one task per RTU serial port, shared by the sources on it: requests in turn,
//!   inter-frame gap, port reopened after a timeout.
//! - `read.rs`: performing a plan and taking tag values out of the replies.
//! - `session.rs`: the reconnect loop with backoff, and the handshake session;
//!   `polled.rs`: the session of a source without handshake.
//!
//! See `README.md` in this folder for the register map a PLC programmer implements, the keys,
//! and examples.

pub mod address;
mod bus;
mod client;
pub mod codec;
pub mod config;
pub mod context;
pub mod handshake;
pub mod plan;
mod polled;
mod raw;
mod read;
mod session;
pub mod trigger;
mod validate;

#[cfg(test)]
mod tests;

use tracing::{error, info};

use crate::reading::Sink;
use crate::shutdown::Shutdown;

pub use bus::check_shared_buses;
pub use config::{HandshakeConfig, ModbusConfig, RtuConfig, TagConfig, TcpConfig, Transport};

/// Runs the modbus source `source_id` until `shutdown` triggers or the agent stops taking
/// readings from `sink`. `config` should have passed [`ModbusConfig::validate`].
///
/// Shutdown cancels the source wherever it is: a code whose verdict is outstanding is then not
/// acknowledged, and is presented again by the PLC to the next run.
pub async fn run(config: ModbusConfig, source_id: String, sink: Sink, mut shutdown: Shutdown) {
    let source = source_id.as_str();
    let link = match &config.transport {
        Transport::Tcp(tcp) => client::Link::Tcp(client::TcpLink::new(
            tcp.clone(),
            config.unit,
            config.timeout,
        )),
        Transport::Rtu(rtu) => match bus::attach(rtu, config.unit, config.timeout) {
            Ok(bus) => client::Link::Rtu(bus),
            Err(e) => {
                error!(source, "modbus {source}: {e}; the source does not run");
                tokio::select! {
                    () = shutdown.wait() => {}
                    () = sink.closed() => {}
                }
                return;
            }
        },
    };
    tokio::select! {
        () = shutdown.wait() => info!(source, "modbus {source}: stopped (shutdown)"),
        () = sink.closed() => info!(source, "modbus {source}: stopped, the agent no longer accepts readings"),
        () = session::run(source, &config, &sink, link) => {
            info!(source, "modbus {source}: stopped, the agent no longer accepts readings")
        }
    }
}
