//! Scanner driver: barcode readers over serial (RS-232, USB-CDC) and TCP (the agent dials the
//! reader, or the reader dials the agent).
//!
//! # Layout
//!
//! - [`config`]: [`ScannerConfig`], the source's TOML keys, with defaults; `validate.rs` holds
//!   [`ScannerConfig::validate`]; `raw.rs` is the flat serde mirror the TOML is read into.
//! - [`framing`]: pure code cutting the byte stream into frames and sorting them into codes,
//!   no-reads and command replies.

pub mod config;
pub mod framing;
mod raw;
mod validate;

pub use config::{
    DialogueConfig, FlowControl, FramingConfig, Parity, ScannerConfig, SerialConfig,
    TcpClientConfig, TcpServerConfig, Terminator, Transport,
};
pub use validate::{MAX_FRAME_LIMIT, STANDARD_BAUD_RATES};
