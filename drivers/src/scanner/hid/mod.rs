//! USB HID keyboard-wedge scanners (`transport = "hid"`), read through evdev.
//!
//! # Layout
//!
//! - [`keymap`]: the layouts (US, German QWERTZ, French AZERTY) as data tables.
//! - [`decoder`]: pure code turning key events into the bytes they type (Shift, Caps Lock,
//!   AltGr, Alt + numpad codes, Ctrl + key, dead keys).
//! - [`stream`]: `struct input_event` records from any reader → decoder → an `AsyncRead` of
//!   typed bytes, which the scanner's connection pipeline frames like any other byte stream.
//! - `device.rs`: finding the device (by path, or by vendor/product id and name), opening and
//!   grabbing it; FIFOs and files of recorded events for replay.
//! - this file: the reopen loop.
//!
//! Unplug: a vanished device makes reads fail with ENODEV. The driver logs one warning, looks
//! for the device again every `reopen_interval` without logging each failure (debug only), and
//! logs once (info) when it is back. A device missing at start takes the same path. There is no
//! busy loop: every attempt is followed by `reopen_interval`. A keyboard wedge has no
//! back-channel, so nothing is ever written to the device.

pub mod decoder;
mod device;
pub mod keymap;
pub mod stream;
#[cfg(test)]
pub(crate) mod testkeys;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, Interest, ReadBuf};
use tracing::{debug, info, warn};

use super::config::{HidConfig, HidDevice};
use super::pipeline::{Context, Loss, SessionEnd, run_session};
use crate::reading::DeviceState;
use decoder::Decoder;
use device::{Kind, Opened};
use stream::KeyStream;

/// Reads the scanner until the agent stops taking readings (shutdown cancels this future).
pub(crate) async fn run(config: &HidConfig, ctx: &Context) {
    let source = ctx.source_id.as_str();
    let wanted = match &config.device {
        HidDevice::Path(path) => path.clone(),
        HidDevice::Match(m) => format!("the input device with {}", device::describe_match(m)),
    };
    let every = humantime::format_duration(config.reopen_interval);
    // A warning has been logged for the current outage (or the failed start): further failed
    // attempts stay quiet. Every session ends with such a warning, so this never resets.
    let mut down = false;
    let mut opened_before = false;
    loop {
        let owned = config.clone();
        let found = match tokio::task::spawn_blocking(move || device::open(&owned)).await {
            Ok(found) => found,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => return,
        };
        match found {
            Ok(opened) => {
                log_opened(source, &opened, opened_before);
                opened_before = true;
                ctx.sink.set_device_state(DeviceState::Connected);
                let recording = opened.kind == Kind::Recording;
                let path = opened.path.display().to_string();
                match session(config, ctx, opened).await {
                    SessionEnd::SinkClosed | SessionEnd::Stopped => return,
                    SessionEnd::Closed if recording => {
                        info!(
                            source,
                            path,
                            "scanner {source}: end of the recorded events in \
                            {path}; the source stays idle until the agent restarts"
                        );
                        std::future::pending::<()>().await;
                    }
                    end => warn!(source, path, error = %end,
                        "scanner {source}: input device {path} lost: {end}, looking for \
                         {wanted} every {every}"),
                }
                ctx.sink.set_device_state(DeviceState::Disconnected);
                down = true;
            }
            Err(e) if !down => {
                warn!(source, error = %e,
                    "scanner {source}: {e}; looking for {wanted} every {every}");
                ctx.sink.set_device_state(DeviceState::Disconnected);
                down = true;
            }
            Err(e) => debug!(source, error = %e, "scanner {source}: {e}"),
        }
        if ctx
            .pause(config.reopen_interval.max(Duration::from_millis(1)))
            .await
        {
            return;
        }
    }
}

fn log_opened(source: &str, opened: &Opened, before: bool) {
    let what = if before { "reopened" } else { "opened" };
    let path = opened.path.display().to_string();
    match &opened.kind {
        Kind::Device {
            name,
            grabbed,
            keyboard,
            also_matching,
        } => {
            let grab = if *grabbed {
                "grabbed"
            } else {
                "not grabbed (grab = false): scans also reach other programs"
            };
            info!(
                source,
                path,
                name,
                grabbed,
                "scanner {source}: input device {path} ({name}) {what}, {grab}"
            );
            if !keyboard {
                warn!(
                    source,
                    path,
                    "scanner {source}: {path} has no letter keys; it may be the \
                    scanner's second event node, which types no codes (use its *-event-kbd link)"
                );
            }
            if !also_matching.is_empty() {
                let others: Vec<String> = also_matching
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                warn!(
                    source,
                    path,
                    "scanner {source}: {} also match{}; using {path}, the first \
                    (name one with `device` to choose)",
                    others.join(", "),
                    if others.len() == 1 { "es" } else { "" }
                );
            }
        }
        Kind::Fifo | Kind::Recording => {
            info!(
                source,
                path, "scanner {source}: reading recorded key events from {path} ({what})"
            );
            debug!(
                source,
                path, "scanner {source}: {path} is not an input device; not grabbed"
            );
        }
    }
}

/// Reads one opened device until it fails, ends, or the agent stops taking readings.
async fn session(config: &HidConfig, ctx: &Context, opened: Opened) -> SessionEnd {
    // Enter ends the frame: it types the terminator the framer waits for.
    let enter: &[u8] = match ctx.framing.terminator.as_bytes() {
        [] => b"\r",
        terminator => terminator,
    };
    let decoder = Decoder::new(config.layout, enter);
    let reader: Box<dyn AsyncRead + Unpin + Send> = match opened.kind {
        // Regular files cannot be polled; tokio reads them on its blocking pool.
        Kind::Recording => Box::new(tokio::fs::File::from_std(opened.file)),
        // SAFETY: the `File` owns its descriptor, which stays open and the same until the
        // `AsyncFd` (owning the `File`) is dropped.
        _ => match unsafe { AsyncFd::register_with_interest(opened.file, Interest::READABLE) } {
            Ok(fd) => Box::new(FdReader(fd)),
            Err(e) => return SessionEnd::ReadFailed(e.into_parts().1),
        },
    };
    let loss = Loss::default();
    let keys = KeyStream::new(reader, decoder, &ctx.source_id, loss.clone());
    run_session(ctx, keys, tokio::io::sink(), &BTreeMap::new(), &loss).await
}

/// A non-blocking descriptor (evdev device or FIFO) read when epoll says it is readable.
struct FdReader(AsyncFd<File>);

impl AsyncRead for FdReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| (&mut fd.get_ref()).read(unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }
}
