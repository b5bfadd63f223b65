//! The flat TOML mirror of [`ModbusConfig`]: every key the table may hold, unknown keys refused.
//!
//! serde cannot combine `deny_unknown_fields` with a flattened, internally tagged enum, so the
//! connection keys are read flat and then sorted into the typed [`Transport`]. Keys of the
//! chosen transport that are absent get their defaults (documented on the typed fields); keys
//! of the other transport are an error, so `baud = …` on a TCP source is not silently ignored.

use std::time::Duration;

use serde::Deserialize;

use super::config::*;
use super::plan::{Limits, MAX_BITS, MAX_REGISTERS};

/// Which transport the table selects (`transport = "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TransportKind {
    Tcp,
    Rtu,
}

impl TransportKind {
    fn name(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Rtu => "rtu",
        }
    }
}

/// Every key of a modbus table; see the typed config for what each means and its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModbusConfig {
    transport: TransportKind,
    unit: Option<u8>,
    // tcp
    address: Option<String>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    // rtu
    port: Option<String>,
    baud: Option<u32>,
    data_bits: Option<u8>,
    parity: Option<Parity>,
    stop_bits: Option<u8>,
    // both
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    poll_interval: Duration,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    reconnect_min: Duration,
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    reconnect_max: Duration,
    #[serde(default)]
    max_registers: Option<u16>,
    #[serde(default)]
    max_bits: Option<u16>,
    #[serde(default)]
    max_gap: Option<u16>,
    #[serde(default)]
    handshake: Option<HandshakeConfig>,
    #[serde(default)]
    tags: Vec<TagConfig>,
    #[serde(default)]
    code_tag: Option<String>,
    #[serde(default)]
    context_tags: Vec<super::context::ContextTagConfig>,
}

impl TryFrom<RawModbusConfig> for ModbusConfig {
    type Error = String;

    fn try_from(raw: RawModbusConfig) -> Result<Self, String> {
        let kind = raw.transport;
        let tcp_keys = [
            ("address", raw.address.is_some()),
            ("connect_timeout", raw.connect_timeout.is_some()),
        ];
        let rtu_keys = [
            ("port", raw.port.is_some()),
            ("baud", raw.baud.is_some()),
            ("data_bits", raw.data_bits.is_some()),
            ("parity", raw.parity.is_some()),
            ("stop_bits", raw.stop_bits.is_some()),
        ];
        let foreign: Vec<String> = [
            (TransportKind::Tcp, &tcp_keys[..]),
            (TransportKind::Rtu, &rtu_keys[..]),
        ]
        .into_iter()
        .filter(|(owner, _)| *owner != kind)
        .flat_map(|(owner, keys)| {
            keys.iter().filter(|(_, set)| *set).map(move |(key, _)| {
                format!(
                    "`{key}` is a {} setting and does not apply to transport = \"{}\"",
                    owner.name(),
                    kind.name()
                )
            })
        })
        .collect();
        if !foreign.is_empty() {
            return Err(foreign.join("; "));
        }
        let transport = match kind {
            TransportKind::Tcp => Transport::Tcp(TcpConfig {
                address: raw.address.ok_or(
                    "transport = \"tcp\" needs `address` (for example \"192.168.0.10:502\")",
                )?,
                connect_timeout: raw.connect_timeout.unwrap_or_else(default_connect_timeout),
            }),
            TransportKind::Rtu => {
                let parity = raw.parity.unwrap_or(Parity::Even);
                Transport::Rtu(RtuConfig {
                    port: raw
                        .port
                        .ok_or("transport = \"rtu\" needs `port` (for example \"/dev/ttyUSB0\")")?,
                    baud: raw.baud.unwrap_or_else(default_baud),
                    data_bits: raw.data_bits.unwrap_or(8),
                    parity,
                    stop_bits: raw
                        .stop_bits
                        .unwrap_or(if parity == Parity::None { 2 } else { 1 }),
                })
            }
        };
        let unit = match (kind, raw.unit) {
            (_, Some(unit)) => unit,
            (TransportKind::Tcp, None) => 1,
            (TransportKind::Rtu, None) => {
                return Err(
                    "transport = \"rtu\" needs `unit`, the slave address (1 to 247)".into(),
                );
            }
        };
        Ok(ModbusConfig {
            transport,
            unit,
            poll_interval: raw.poll_interval,
            timeout: raw.timeout,
            reconnect_min: raw.reconnect_min,
            reconnect_max: raw.reconnect_max,
            limits: Limits {
                max_registers: raw.max_registers.unwrap_or(MAX_REGISTERS),
                max_bits: raw.max_bits.unwrap_or(MAX_BITS),
                max_gap: raw.max_gap.unwrap_or(0),
            },
            handshake: raw.handshake,
            tags: raw.tags,
            code_tag: raw.code_tag,
            context_tags: raw.context_tags,
        })
    }
}
