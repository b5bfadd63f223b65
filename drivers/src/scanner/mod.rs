//! Scanner driver: barcode readers over serial (RS-232, USB-CDC), TCP (the agent dials the
//! reader, or the reader dials the agent) and USB HID keyboard wedges (evdev).
//!
//! # Layout
//!
//! - [`config`]: [`ScannerConfig`], the source's TOML keys, with defaults; `validate.rs` holds
//!   [`ScannerConfig::validate`]; `raw.rs` is the flat serde mirror the TOML is read into.
//! - [`framing`]: pure code cutting the byte stream into frames and sorting them into codes,
//!   no-reads and command replies.
//! - `pipeline.rs`: one connection — read, frame, submit in order; await verdicts in the same
//!   order and write the accept/reject replies and the periodic trigger command.
//! - `serial.rs`, `tcp.rs`: the transports and their reopen / reconnect loops (the TCP client
//!   uses the crate's shared [`crate::backoff::Backoff`]).
//! - [`hid`]: keyboard-wedge scanners: key events are decoded to bytes through the scanner's
//!   keyboard layout (pure code in `hid/decoder.rs`, `hid/keymap.rs`), then framed like the
//!   byte stream of any other transport.
//!
//! Shutdown: [`run`] selects on the shutdown signal and on the sink closing around the whole
//! transport loop. Returning drops that loop, which cancels every read, write and sleep, and
//! (through a `JoinSet`) every reader connection of a TCP server. No await point holds state
//! that would need finishing: a reading is either submitted or not, and an unacknowledged code
//! is presented again by the reader.
//!
//! See `README.md` in this folder for the keys and examples per reader model.

pub mod config;
pub mod framing;
pub mod hid;
mod pipeline;
mod raw;
mod serial;
mod tcp;
mod validate;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use tracing::{info, warn};

use crate::reading::Sink;
use crate::shutdown::Shutdown;

pub use config::{
    DialogueConfig, FlowControl, FramingConfig, HidConfig, HidDevice, HidMatch, Layout, Parity,
    ScannerConfig, SerialConfig, TcpClientConfig, TcpServerConfig, Terminator, Transport, UsbId,
};
pub use validate::{MAX_FRAME_LIMIT, STANDARD_BAUD_RATES};

/// How long a stopping scanner source may take to answer what it submitted.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs the scanner source `source_id` until `shutdown` triggers or the agent stops taking
/// readings from `sink`. Every code, no-read and malformed frame is submitted in the order it
/// was read. `config` should have passed [`ScannerConfig::validate`]; values it would reject
/// do not panic here but are clamped.
pub async fn run(config: ScannerConfig, source_id: String, sink: Sink, mut shutdown: Shutdown) {
    let ScannerConfig {
        transport,
        framing,
        dialogue,
    } = config;
    let ctx = Arc::new(pipeline::Context::new(
        source_id.clone(),
        sink.clone(),
        framing,
        dialogue,
        shutdown.clone(),
    ));
    let transport_loop = async {
        match &transport {
            config::Transport::Serial(serial) => serial::run(serial, &ctx).await,
            config::Transport::TcpClient(client) => tcp::run_client(client, &ctx).await,
            config::Transport::TcpServer(server) => tcp::run_server(server, ctx.clone()).await,
            config::Transport::Hid(hid) => hid::run(hid, &ctx).await,
        }
    };
    let source = source_id.as_str();
    tokio::pin!(transport_loop);
    tokio::select! {
        () = shutdown.wait() => {
            // The sessions stop reading and answer every reading they submitted before they
            // end, so the device does not present again codes that were committed.
            if tokio::time::timeout(STOP_GRACE, &mut transport_loop).await.is_err() {
                warn!(source, "scanner {source}: did not stop within {STOP_GRACE:?}");
            }
            info!(source, "scanner {source}: stopped (shutdown)");
        }
        () = sink.closed() => info!(source, "scanner {source}: stopped, the agent no longer accepts readings"),
        () = &mut transport_loop => info!(source, "scanner {source}: stopped"),
    }
}
