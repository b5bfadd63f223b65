//! The keys of a modbus source's `[[sources]]` table, once the agent has taken its own (`id`,
//! `type`, `station`, …).
//!
//! The connection keys are flat (`transport = "tcp"` next to `address`, or `"rtu"` next to
//! `port`, `baud`, …) and read through a flat mirror (`raw.rs`) that refuses unknown keys and
//! keys of the other transport. `[sources.handshake]` and `[[sources.tags]]` are nested tables,
//! read directly with unknown keys refused. Semantic checks live in
//! [`ModbusConfig::validate`], which names the key (`handshake.ack`, `tags[2].address`).

use std::time::Duration;

use serde::Deserialize;

use super::address::{Address, Table};
use super::codec::{ByteOrder, DataType, Decoding, WordOrder};
use super::plan::{Item, Limits};
use super::trigger::Trigger;
pub use crate::scanner::Parity;

/// A modbus source: one PLC (or one unit on an RTU bus), and what to read from it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "super::raw::RawModbusConfig")]
pub struct ModbusConfig {
    /// How the device is reached (`transport = "tcp" | "rtu"`) and that transport's settings.
    pub transport: Transport,
    /// The unit id (slave address) requests carry. RTU: the slave, 1–247, required. TCP: most
    /// PLCs ignore it, an RTU gateway uses it to pick the slave. TCP default 1.
    pub unit: u8,
    /// How often the handshake counter (or the polled tags) is read. The handshake takes at
    /// most one code per poll, so poll well inside the shortest item period of the line.
    /// Default 50ms.
    pub poll_interval: Duration,
    /// Longest wait for one reply. tokio-modbus has no timeout of its own; after a timeout the
    /// connection is closed and opened again, so that a late reply cannot be taken for the
    /// answer to a later request. Default 500ms.
    pub timeout: Duration,
    /// First delay before reconnecting after a failure; doubles with jitter up to
    /// `reconnect_max`. Default 500ms.
    pub reconnect_min: Duration,
    /// Longest reconnect delay, so that a PLC that is off for a shift is not hammered.
    /// Default 30s.
    pub reconnect_max: Duration,
    /// How reads are merged: `max_registers` (1–125, default 125) and `max_bits` (1–2000,
    /// default 2000) per request for devices that take less than the protocol allows, and
    /// `max_gap` (default 0): unused registers a merged read may span between two tags.
    pub limits: Limits,
    /// The code handover with the PLC (`[sources.handshake]`). Without it, the source reports
    /// events from tag triggers.
    pub handshake: Option<HandshakeConfig>,
    /// Tags (`[[sources.tags]]`): context read with each code and attached to its event, and,
    /// without a handshake, triggers.
    pub tags: Vec<TagConfig>,
    /// Without a handshake: the tag whose value is the event's code. Default: the value of
    /// the tag whose trigger fired.
    pub code_tag: Option<String>,
    /// `[[sources.context_tags]]`: the line context MES pushed down (work order, batch…)
    /// written into holding registers whenever it changes, so the HMI shows it. Default: none.
    pub context_tags: Vec<super::context::ContextTagConfig>,
}

/// How the device is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// Modbus TCP.
    Tcp(TcpConfig),
    /// Modbus RTU over a serial line (RS-485, RS-232).
    Rtu(RtuConfig),
}

/// `transport = "tcp"`.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpConfig {
    /// `host:port` or `host` (port 502). Required.
    pub address: String,
    /// How long one connection attempt may take; an unplugged PLC otherwise hangs it for
    /// minutes. Default 3s.
    pub connect_timeout: Duration,
}

/// `transport = "rtu"`. Sources naming the same `port` share one bus: their requests take
/// turns, with the inter-frame gap kept between them. They must agree on the line settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RtuConfig {
    /// Device path of the RS-485 adapter. Required; prefer `/dev/serial/by-id/…`.
    pub port: String,
    /// Line speed. Default 19200 (the Modbus serial-line default).
    pub baud: u32,
    /// Data bits; RTU needs 8. Default 8.
    pub data_bits: u8,
    /// Parity. Default even (the Modbus 8-E-1 default).
    pub parity: Parity,
    /// Stop bits, 1 or 2. Default 1, or 2 with `parity = "none"` as the standard asks.
    pub stop_bits: u8,
}

impl RtuConfig {
    /// Bits per character on the line: start, data, parity, stop.
    pub fn bits_per_char(&self) -> u32 {
        1 + u32::from(self.data_bits)
            + u32::from(self.parity != Parity::None)
            + u32::from(self.stop_bits)
    }

    /// The silent interval that separates frames: 3.5 character times, fixed at 1.75 ms above
    /// 19200 baud (Modbus over serial line V1.02, 2.5.1.1).
    pub fn frame_gap(&self) -> Duration {
        if self.baud > 19_200 || self.baud == 0 {
            Duration::from_micros(1750)
        } else {
            Duration::from_nanos(
                3_500_000_000 * u64::from(self.bits_per_char()) / u64::from(self.baud),
            )
        }
    }

    /// How long `bytes` take on the wire.
    pub fn transmit_time(&self, bytes: u32) -> Duration {
        Duration::from_micros(
            u64::from(bytes) * u64::from(self.bits_per_char()) * 1_000_000
                / u64::from(self.baud.max(1)),
        )
    }
}

/// `[sources.handshake]`: the code handover. See README.md for the register map.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeConfig {
    /// The register the PLC increments (u16) after writing a code. 0 means "no code".
    /// Required.
    pub counter: Address,
    /// First register of the code (a string, two characters per register). Same table as the
    /// counter, and read with it in one request. Required.
    pub code: Address,
    /// How many registers the code block has (characters / 2, rounded up). Required.
    pub code_registers: u16,
    /// Optional register holding the code's length in bytes; without it the code ends at its
    /// first NUL byte or at the end of the block.
    #[serde(default)]
    pub code_length: Option<Address>,
    /// Characters per register: `high_first` (default) or `low_first`.
    #[serde(default)]
    pub byte_order: ByteOrder,
    /// Holding register the agent writes the counter value to, once the code is durably
    /// committed. Required.
    pub ack: Address,
    /// Holding register the agent writes the result code to (before, or together with, the
    /// ack). Default: none.
    #[serde(default)]
    pub result: Option<Address>,
    /// Result code for a code committed as valid (or a duplicate of one). Default 1.
    #[serde(default = "default_accepted")]
    pub accepted: u16,
    /// Result code for a code committed as invalid or a no-read. Default 2.
    #[serde(default = "default_rejected")]
    pub rejected: u16,
}

impl HandshakeConfig {
    /// The registers read in one request when a code is presented: from the first to the last
    /// of counter, code block and code length.
    pub fn block(&self) -> Item {
        let mut lo = self.counter.offset.min(self.code.offset);
        let mut hi = u32::from(self.counter.offset)
            .max(u32::from(self.code.offset) + u32::from(self.code_registers.max(1)) - 1);
        if let Some(len) = self.code_length {
            lo = lo.min(len.offset);
            hi = hi.max(u32::from(len.offset));
        }
        Item {
            start: Address {
                table: self.counter.table,
                offset: lo,
            },
            count: (hi + 1 - u32::from(lo)).min(u32::from(u16::MAX)) as u16,
        }
    }
}

/// `[[sources.tags]]`: one value in the PLC.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagConfig {
    /// The attribute name on events (`work_order`). Letters, digits, `_`, `-`, `.`; unique in
    /// the source. Required.
    pub name: String,
    /// Where the value is (`40030`, `hr:29`, `10001`, …; see README.md). Required.
    pub address: Address,
    /// `bool`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32`, `f64` or `string`. Default
    /// `bool` for coils and discrete inputs, `u16` for registers.
    #[serde(default, rename = "type")]
    pub data_type: Option<DataType>,
    /// Strings only, required there: registers of the string (2 characters each).
    #[serde(default)]
    pub registers: Option<u16>,
    /// 32- and 64-bit types (and byte swapping of 16-bit ones): `ABCD` (default), `CDAB`,
    /// `BADC` or `DCBA`.
    #[serde(default)]
    pub word_order: Option<WordOrder>,
    /// Strings only: `high_first` (default) or `low_first`.
    #[serde(default)]
    pub byte_order: Option<ByteOrder>,
    /// `bool` from a register only: the bit, 0 (least significant) to 15. Default: the whole
    /// register, true when not 0.
    #[serde(default)]
    pub bit: Option<u8>,
    /// Numbers only: the value is reported as `value * scale + offset`. Default 1.
    #[serde(default)]
    pub scale: Option<f64>,
    /// Numbers only: see `scale`. Default 0.
    #[serde(default)]
    pub offset: Option<f64>,
    /// Sources without a handshake: `change`, `rising_edge` or `counter`. Default: none (the
    /// tag is context only).
    #[serde(default)]
    pub trigger: Option<Trigger>,
}

impl TagConfig {
    /// The type in effect.
    pub fn data_type(&self) -> DataType {
        self.data_type.unwrap_or(if self.address.table.is_bits() {
            DataType::Bool
        } else {
            DataType::U16
        })
    }

    /// Registers (or bits) the tag occupies.
    pub fn width(&self) -> u16 {
        if self.address.table.is_bits() {
            return 1;
        }
        let t = self.data_type();
        t.fixed_registers()
            .unwrap_or(if t == DataType::String {
                self.registers.unwrap_or(1)
            } else {
                1
            })
            .max(1)
    }

    /// What the planner reads for this tag.
    pub fn item(&self) -> Item {
        Item {
            start: self.address,
            count: self.width(),
        }
    }

    /// How its registers become a value.
    pub fn decoding(&self) -> Decoding {
        Decoding {
            data_type: self.data_type(),
            word_order: self.word_order.unwrap_or_default(),
            byte_order: self.byte_order.unwrap_or_default(),
            bit: self.bit,
            scale: self.scale,
            offset: self.offset,
        }
    }

    /// True when the tag is read from a register table.
    pub fn is_register(&self) -> bool {
        matches!(
            self.address.table,
            Table::HoldingRegister | Table::InputRegister
        )
    }
}

pub(crate) fn default_accepted() -> u16 {
    1
}
pub(crate) fn default_rejected() -> u16 {
    2
}
pub(crate) fn default_poll_interval() -> Duration {
    Duration::from_millis(50)
}
pub(crate) fn default_timeout() -> Duration {
    Duration::from_millis(500)
}
pub(crate) fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
pub(crate) fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
pub(crate) fn default_connect_timeout() -> Duration {
    Duration::from_secs(3)
}
pub(crate) fn default_baud() -> u32 {
    19_200
}
