//! The flat TOML mirror of [`ScannerConfig`]: every key the table may hold, unknown keys refused.
//!
//! serde cannot combine `deny_unknown_fields` with a flattened, internally tagged enum, so the
//! table is read flat and then sorted into the typed config. Keys of the chosen transport that
//! are absent get their defaults (the `default_*` functions in `config.rs`, documented on the
//! typed fields); keys of another transport are an error, so `port = …` on a TCP source is not
//! silently ignored.

use std::time::Duration;

use serde::Deserialize;

use super::config::*;

/// Which transport the table selects (`transport = "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TransportKind {
    Serial,
    TcpClient,
    TcpServer,
    Hid,
}

impl TransportKind {
    fn name(self) -> &'static str {
        match self {
            TransportKind::Serial => "serial",
            TransportKind::TcpClient => "tcp_client",
            TransportKind::TcpServer => "tcp_server",
            TransportKind::Hid => "hid",
        }
    }
}

/// Every key of a scanner table; see the typed config for what each means and its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScannerConfig {
    transport: TransportKind,
    // serial
    port: Option<String>,
    baud: Option<u32>,
    data_bits: Option<u8>,
    parity: Option<Parity>,
    stop_bits: Option<u8>,
    flow_control: Option<FlowControl>,
    #[serde(default, with = "humantime_serde")]
    reopen_interval: Option<Duration>,
    // tcp_client
    address: Option<String>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    reconnect_min: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    reconnect_max: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    keepalive: Option<Duration>,
    // tcp_server
    listen: Option<String>,
    max_connections: Option<usize>,
    // hid (and reopen_interval, shared with serial)
    device: Option<String>,
    vendor_id: Option<UsbId>,
    product_id: Option<UsbId>,
    name: Option<String>,
    layout: Option<Layout>,
    grab: Option<bool>,
    // framing (all transports)
    #[serde(default = "default_terminator")]
    terminator: Terminator,
    #[serde(default)]
    stx_etx: bool,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
    #[serde(default = "default_max_frame")]
    max_frame: usize,
    #[serde(default = "default_noread")]
    noread: Vec<String>,
    #[serde(default)]
    ignore: Vec<String>,
    // dialogue (all transports)
    trigger_command: Option<String>,
    #[serde(default = "default_trigger_interval", with = "humantime_serde")]
    trigger_interval: Duration,
    accept_reply: Option<String>,
    reject_reply: Option<String>,
}

impl TryFrom<RawScannerConfig> for ScannerConfig {
    type Error = String;

    fn try_from(raw: RawScannerConfig) -> Result<Self, String> {
        let kind = raw.transport;
        use TransportKind::{Hid, Serial, TcpClient, TcpServer};
        // Every transport-specific key: whether it is set, and the transports it belongs to.
        let keys: [(&str, bool, &[TransportKind]); 20] = [
            ("port", raw.port.is_some(), &[Serial]),
            ("baud", raw.baud.is_some(), &[Serial]),
            ("data_bits", raw.data_bits.is_some(), &[Serial]),
            ("parity", raw.parity.is_some(), &[Serial]),
            ("stop_bits", raw.stop_bits.is_some(), &[Serial]),
            ("flow_control", raw.flow_control.is_some(), &[Serial]),
            (
                "reopen_interval",
                raw.reopen_interval.is_some(),
                &[Serial, Hid],
            ),
            ("address", raw.address.is_some(), &[TcpClient]),
            (
                "connect_timeout",
                raw.connect_timeout.is_some(),
                &[TcpClient],
            ),
            ("reconnect_min", raw.reconnect_min.is_some(), &[TcpClient]),
            ("reconnect_max", raw.reconnect_max.is_some(), &[TcpClient]),
            ("keepalive", raw.keepalive.is_some(), &[TcpClient]),
            ("listen", raw.listen.is_some(), &[TcpServer]),
            (
                "max_connections",
                raw.max_connections.is_some(),
                &[TcpServer],
            ),
            ("device", raw.device.is_some(), &[Hid]),
            ("vendor_id", raw.vendor_id.is_some(), &[Hid]),
            ("product_id", raw.product_id.is_some(), &[Hid]),
            ("name", raw.name.is_some(), &[Hid]),
            ("layout", raw.layout.is_some(), &[Hid]),
            ("grab", raw.grab.is_some(), &[Hid]),
        ];
        let foreign: Vec<String> = keys
            .iter()
            .filter(|(_, set, owners)| *set && !owners.contains(&kind))
            .map(|(key, _, owners)| {
                let owners: Vec<&str> = owners.iter().map(|o| o.name()).collect();
                format!(
                    "`{key}` is a {} setting and does not apply to transport = \"{}\"",
                    owners.join("/"),
                    kind.name()
                )
            })
            .collect();
        if !foreign.is_empty() {
            return Err(foreign.join("; "));
        }
        let required = |value: Option<String>, key: &str, example: &str| {
            value.ok_or_else(|| {
                format!(
                    "transport = \"{}\" needs `{key}` (for example {example})",
                    kind.name()
                )
            })
        };

        let transport = match kind {
            TransportKind::Serial => Transport::Serial(SerialConfig {
                port: required(raw.port, "port", "\"/dev/ttyUSB0\"")?,
                baud: raw.baud.unwrap_or_else(default_baud),
                data_bits: raw.data_bits.unwrap_or_else(default_data_bits),
                parity: raw.parity.unwrap_or(Parity::None),
                stop_bits: raw.stop_bits.unwrap_or_else(default_stop_bits),
                flow_control: raw.flow_control.unwrap_or(FlowControl::None),
                reopen_interval: raw.reopen_interval.unwrap_or_else(default_reopen_interval),
            }),
            TransportKind::TcpClient => Transport::TcpClient(TcpClientConfig {
                address: required(raw.address, "address", "\"192.168.0.20:23\"")?,
                connect_timeout: raw.connect_timeout.unwrap_or_else(default_connect_timeout),
                reconnect_min: raw.reconnect_min.unwrap_or_else(default_reconnect_min),
                reconnect_max: raw.reconnect_max.unwrap_or_else(default_reconnect_max),
                keepalive: raw.keepalive.unwrap_or_else(default_keepalive),
            }),
            TransportKind::TcpServer => Transport::TcpServer(TcpServerConfig {
                listen: required(raw.listen, "listen", "\"0.0.0.0:5001\"")?,
                max_connections: raw.max_connections.unwrap_or_else(default_max_connections),
            }),
            TransportKind::Hid => Transport::Hid(HidConfig {
                device: hid_device(raw.device, raw.vendor_id, raw.product_id, raw.name)?,
                layout: raw.layout.unwrap_or_default(),
                grab: raw.grab.unwrap_or_else(default_grab),
                reopen_interval: raw.reopen_interval.unwrap_or_else(default_reopen_interval),
            }),
        };
        Ok(ScannerConfig {
            transport,
            framing: FramingConfig {
                terminator: raw.terminator,
                stx_etx: raw.stx_etx,
                idle_timeout: raw.idle_timeout,
                max_frame: raw.max_frame,
                noread: raw.noread,
                ignore: raw.ignore,
            },
            dialogue: DialogueConfig {
                trigger_command: raw.trigger_command,
                trigger_interval: raw.trigger_interval,
                accept_reply: raw.accept_reply,
                reject_reply: raw.reject_reply,
            },
        })
    }
}

/// `device`, or the match keys: exactly one of the two ways to find a HID scanner.
fn hid_device(
    device: Option<String>,
    vendor_id: Option<UsbId>,
    product_id: Option<UsbId>,
    name: Option<String>,
) -> Result<HidDevice, String> {
    let matching = vendor_id.is_some() || product_id.is_some() || name.is_some();
    match (device, matching) {
        (Some(_), true) => Err("transport = \"hid\" takes either `device` or \
             `vendor_id`/`product_id`/`name`, not both"
            .into()),
        (Some(path), false) => Ok(HidDevice::Path(path)),
        (None, true) => Ok(HidDevice::Match(HidMatch {
            vendor_id,
            product_id,
            name,
        })),
        (None, false) => Err("transport = \"hid\" needs `device` (for example \
             \"/dev/input/by-id/usb-Scanner-event-kbd\") or `vendor_id`/`product_id`/`name`"
            .into()),
    }
}
