//! The device side of tracegate.
//!
//! # Layout
//!
//! - [`reading`]: what a driver hands the agent — a [`Reading`] plus a way to hear back whether it
//!   was committed ([`Sink`], [`Verdict`]). This is the whole contract between drivers and agent.
//! - [`scanner`]: barcode scanners over serial (RS-232, USB-CDC), TCP (client and server
//!   mode) and USB HID keyboard wedges (evdev); framing lives in [`scanner::framing`] and key
//!   decoding in [`scanner::hid::decoder`], both as pure code.
//!
//! A driver is a config struct (deserialized from the line's TOML file) that builds a task: an
//! `async fn run(config, sink, shutdown)` which sends readings into the sink until shutdown. The
//! drivers depend on nothing in the agent; the agent never reaches into a driver.

pub mod backoff;
pub mod modbus;
#[cfg(feature = "opcua")]
pub mod opcua;
pub mod reading;
pub mod scanner;
pub mod shutdown;

pub use backoff::Backoff;
pub use reading::{
    ContextFeed, DeviceLosses, DeviceState, LineContext, Reading, ReadingKind, Sink, SinkClosed,
    Ticket, Verdict,
};
pub use shutdown::Shutdown;
