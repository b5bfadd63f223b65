//! Serial transport (RS-232, USB-CDC) with reopen after unplug.
//!
//! A USB-serial adapter that is unplugged makes reads fail (EIO) or return 0 bytes, and its
//! device node disappears. The driver then logs one warning, tries to open the port again every
//! `reopen_interval` without logging each failure, and logs once more (info) when it is back.
//! A port that does not exist at start takes the same path. There is never a busy loop: every
//! attempt, successful or not, is followed by `reopen_interval` before the next one.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_serial::{SerialPortBuilderExt, SerialStream};
use tracing::{info, warn};

use super::config::{FlowControl, Parity, SerialConfig};
use super::pipeline::{Context, Loss, run_session};
use crate::reading::DeviceState;

/// Opens the port with every line setting of `config`.
fn open(config: &SerialConfig) -> tokio_serial::Result<SerialStream> {
    let data_bits = match config.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match config.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = match config.stop_bits {
        2 => tokio_serial::StopBits::Two,
        _ => tokio_serial::StopBits::One,
    };
    let flow_control = match config.flow_control {
        FlowControl::None => tokio_serial::FlowControl::None,
        FlowControl::Software => tokio_serial::FlowControl::Software,
        FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
    };
    tokio_serial::new(&config.port, config.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(flow_control)
        .open_native_async()
}

/// Reads the port until the agent stops taking readings (shutdown cancels this future).
pub(crate) async fn run(config: &SerialConfig, ctx: &Context) {
    let source = ctx.source_id.as_str();
    let port = config.port.as_str();
    let every = humantime::format_duration(config.reopen_interval);
    // A warning has been logged for the current outage (or the failed start): further failed
    // attempts stay quiet. Every session ends with such a warning, so this never resets.
    let mut down = false;
    let mut opened_before = false;
    loop {
        match open(config) {
            Ok(stream) => {
                let what = if opened_before { "reopened" } else { "opened" };
                info!(
                    source,
                    port,
                    baud = config.baud,
                    "scanner {source}: serial port {port} {what}"
                );
                opened_before = true;
                ctx.sink.set_device_state(DeviceState::Connected);
                let (reader, writer) = tokio::io::split(stream);
                let end =
                    run_session(ctx, reader, writer, &BTreeMap::new(), &Loss::default()).await;
                if end.ends_source() {
                    return;
                }
                warn!(source, port, error = %end,
                    "scanner {source}: serial port {port} lost: {end}, reopening every {every}");
                ctx.sink.set_device_state(DeviceState::Disconnected);
                down = true;
            }
            Err(e) if !down => {
                warn!(source, port, error = %e,
                    "scanner {source}: cannot open serial port {port}: {e}, retrying every {every}");
                ctx.sink.set_device_state(DeviceState::Disconnected);
                down = true;
            }
            Err(_) => {}
        }
        if ctx
            .pause(config.reopen_interval.max(Duration::from_millis(1)))
            .await
        {
            return;
        }
    }
}
