//! The keys of a scanner source's `[[sources]]` table, once the agent has taken its own (`id`,
//! `type`, `station`, …).
//!
//! The table is flat in TOML (`transport = "serial"` next to `port`, `baud`, `terminator`, …) but
//! typed here: [`Transport`] holds only the keys of the chosen transport. Deserialization goes
//! through a flat mirror (`raw.rs`) because serde cannot combine `deny_unknown_fields` with
//! `flatten`; that mirror rejects unknown keys and keys of another transport, and fills in the
//! defaults named below. Semantic checks (standard baud rate, ranges, address syntax) live in
//! [`ScannerConfig::validate`], which names the offending key.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A scanner source: where the bytes come from, how they are cut into frames, and what the agent
/// says back to the reader.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "super::raw::RawScannerConfig")]
pub struct ScannerConfig {
    /// How the reader is connected (`transport = "serial" | "tcp_client" | "tcp_server" |
    /// "hid"`) and that transport's settings. Required: there is no sensible default wiring.
    pub transport: Transport,
    /// How the byte stream is cut into frames, the same for every transport.
    pub framing: FramingConfig,
    /// What the agent writes to the reader: trigger command, accept and reject replies.
    pub dialogue: DialogueConfig,
}

/// How the reader is connected.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// RS-232 or USB-CDC (`/dev/ttyUSB0`, `/dev/ttyACM0`).
    Serial(SerialConfig),
    /// The agent dials the reader (the reader is in "server mode", e.g. Keyence SR, Cognex).
    TcpClient(TcpClientConfig),
    /// The reader dials the agent (the reader is in "client" or "push" mode).
    TcpServer(TcpServerConfig),
    /// A USB HID keyboard-wedge scanner read through evdev (`/dev/input/event*`).
    Hid(HidConfig),
}

/// `transport = "serial"`.
#[derive(Debug, Clone, PartialEq)]
pub struct SerialConfig {
    /// Device path. Required. Prefer a stable name (`/dev/serial/by-id/…`): `ttyUSB0` can
    /// become `ttyUSB1` after a replug.
    pub port: String,
    /// Line speed; vendors ship 9600 (Zebra, Keyence BL, Microscan) but it is configurable on
    /// the reader, so it must be here too. USB-CDC devices ignore it. Default 9600.
    pub baud: u32,
    /// Data bits, 5..=8; a 7E1 reader read as 8N1 produces garbage, not silence. Default 8.
    pub data_bits: u8,
    /// Parity (`none`, `even`, `odd`); Keyence BL and Microscan MS-9 default to even. Default none.
    pub parity: Parity,
    /// Stop bits, 1 or 2. Default 1.
    pub stop_bits: u8,
    /// Flow control (`none`, `software` = XON/XOFF, `hardware` = RTS/CTS). Default none.
    pub flow_control: FlowControl,
    /// How often to try opening the port again after it vanished (USB unplug) or when it does
    /// not exist at start. Failures in between are not logged. Default 2s.
    pub reopen_interval: Duration,
}

/// Parity bit setting of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// Flow control of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

/// `transport = "tcp_client"`: the agent connects to a reader that listens.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpClientConfig {
    /// The reader's `host:port` (Keyence SR 9004, Cognex DataMan 23). Required.
    pub address: String,
    /// How long one connection attempt may take before it counts as failed; an unplugged
    /// reader otherwise hangs the attempt for minutes. Default 5s.
    pub connect_timeout: Duration,
    /// First delay before reconnecting after a failure or disconnect. Default 500ms.
    pub reconnect_min: Duration,
    /// The delay doubles (with random jitter) up to this cap, so a reader that is off for a
    /// shift is not hammered. A connection that stays up this long resets the delay to
    /// `reconnect_min`. Default 30s.
    pub reconnect_max: Duration,
    /// TCP keepalive idle time (also used as the probe interval, 3 probes): detects a reader
    /// that lost power without closing the connection. Default 10s.
    pub keepalive: Duration,
}

/// `transport = "tcp_server"`: readers connect to the agent and push their codes.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpServerConfig {
    /// Local `ip:port` to listen on, e.g. `0.0.0.0:5001`. Required.
    pub listen: String,
    /// How many readers may be connected at once; further connections are closed at once so
    /// a misconfigured reader cannot exhaust the agent. Default 4.
    pub max_connections: usize,
}

/// `transport = "hid"`: a scanner that types its codes as a USB keyboard.
#[derive(Debug, Clone, PartialEq)]
pub struct HidConfig {
    /// Which input device is the scanner: `device = "…"`, or `vendor_id` / `product_id` /
    /// `name`. Exactly one of the two ways is required.
    pub device: HidDevice,
    /// The keyboard layout the *scanner* is set to. Key events are layout-independent key
    /// positions; the same position is `z` on US and `y` on German QWERTZ, so a mismatch swaps
    /// characters. Default `us`.
    pub layout: Layout,
    /// Take the device exclusively (EVIOCGRAB) so scans do not also type into a console or the
    /// focused program. Turn off only to watch a scanner without taking it away. Ignored for a
    /// FIFO or a file of recorded events. Default true.
    pub grab: bool,
    /// How often to look for the device again after it vanished (USB unplug) or when it is not
    /// there at start. Failures in between are not logged. Default 2s.
    pub reopen_interval: Duration,
}

/// How a HID scanner's input device is found.
#[derive(Debug, Clone, PartialEq)]
pub enum HidDevice {
    /// `device = "…"`: an event device, best a stable `/dev/input/by-id/usb-…-event-kbd` link
    /// (`eventN` numbers change between boots and replugs). A FIFO or a regular file is read as
    /// recorded `struct input_event` records instead, for replaying captured sessions.
    Path(String),
    /// `vendor_id` / `product_id` / `name`: the first `/dev/input/event*` (by number) whose ids
    /// and name match and that has the letter keys A–Z. Scanners that expose two event nodes
    /// (a keyboard and e.g. a consumer-control node) thus resolve to the keyboard.
    Match(HidMatch),
}

/// What a HID scanner's input device must match; every given field must.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HidMatch {
    /// USB vendor id, as `lsusb` shows it (`"05e0"` for Zebra/Symbol). Default: any.
    pub vendor_id: Option<UsbId>,
    /// USB product id (`"1200"`); only together with `vendor_id`. Default: any.
    pub product_id: Option<UsbId>,
    /// Part of the device's name as the kernel reports it (`N: Name=` in
    /// `/proc/bus/input/devices`), compared ignoring case. Default: any.
    pub name: Option<String>,
}

/// A 16-bit USB vendor or product id. Written as four hex digits like `lsusb` shows them
/// (`"05e0"`, `"0x05E0"`), or as a TOML integer (`0x05e0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsbId(pub u16);

impl UsbId {
    /// `05e0`, `0x05E0`: one to four hex digits with an optional `0x`.
    pub fn parse(text: &str) -> Option<UsbId> {
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        let hex = (1..=4).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_hexdigit());
        hex.then(|| u16::from_str_radix(digits, 16).ok().map(UsbId))
            .flatten()
    }
}

impl<'de> Deserialize<'de> for UsbId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = UsbId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a USB id: four hex digits like \"05e0\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<UsbId, E> {
                UsbId::parse(text).ok_or_else(|| {
                    E::custom(format!(
                        "\"{text}\" is not a USB id; write four hex digits like \"05e0\""
                    ))
                })
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<UsbId, E> {
                u16::try_from(value)
                    .map(UsbId)
                    .map_err(|_| E::custom(format!("{value} is not a USB id (0 to 0xffff)")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

/// A keyboard layout a HID scanner can be set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// US English (QWERTY), the factory default of nearly every scanner.
    #[default]
    Us,
    /// German QWERTZ (Windows/Linux `de`): `y`/`z` swapped, `ß`, umlauts, AltGr for `@ { [ ] } \ ~ |`.
    De,
    /// French AZERTY (Windows `fr`): digits need Shift (or Caps Lock), AltGr for `@ # { [ | \ ] }`.
    Fr,
}

/// How the byte stream is cut into frames.
#[derive(Debug, Clone, PartialEq)]
pub struct FramingConfig {
    /// The bytes that end a frame: `cr`, `lf`, `crlf`, `none`, or any other string taken as its
    /// literal bytes (e.g. `"\u0004"`). Readers append a configurable suffix; CRLF is the most
    /// common. Ignored when `stx_etx` is on. Default `crlf`.
    pub terminator: Terminator,
    /// Frames are wrapped in STX (0x02) … ETX (0x03), as Keyence and others can send them;
    /// bytes outside a wrapper are discarded. Default false.
    pub stx_etx: bool,
    /// A partial frame followed by no byte for this long is complete (readers without a
    /// suffix); with `stx_etx`, an STX not closed in time is reported as malformed. Required
    /// when `terminator = "none"` and `stx_etx` is off. Default unset.
    pub idle_timeout: Option<Duration>,
    /// Longest frame in bytes, so a reader that never sends its terminator cannot grow memory.
    /// A longer frame becomes a malformed reading (its first `max_frame` bytes) and the framer
    /// resynchronises at the next terminator. Default 4096.
    pub max_frame: usize,
    /// Frames equal to one of these are the reader's no-read output and become
    /// `ReadingKind::NoRead`, never a code. Default `["NOREAD", "ERROR"]` (Microscan, Keyence).
    pub noread: Vec<String>,
    /// Frames equal to one of these are replies to our commands (e.g. Keyence `OK,LON`), not
    /// codes: they are dropped with a debug log. Default empty.
    pub ignore: Vec<String>,
}

/// What the agent writes to the reader. Replies follow the verdicts in reading order.
#[derive(Debug, Clone, PartialEq)]
pub struct DialogueConfig {
    /// Sent on connect and then every `trigger_interval`, for readers that read only when the
    /// host triggers them (Keyence `LON\r`, Cognex `||>TRIGGER ON\r\n`). Default unset.
    pub trigger_command: Option<String>,
    /// Period of `trigger_command`. Default 1s.
    pub trigger_interval: Duration,
    /// Written after a reading was durably committed as valid (or was a duplicate), e.g. to
    /// light the reader's OK lamp. Never written before the commit. Default unset.
    pub accept_reply: Option<String>,
    /// Written after a reading was committed as invalid / no-read, or could not be committed,
    /// e.g. to trigger a reject gate. Default unset.
    pub reject_reply: Option<String>,
}

/// The bytes that end a frame.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum Terminator {
    /// Frames end only by the idle timeout (or ETX).
    None,
    /// Frames end with these bytes (never empty once validated).
    Bytes(Vec<u8>),
}

impl Terminator {
    /// `cr`, `lf`, `crlf` and `none` (any case) are keywords; any other string is its bytes.
    pub fn parse(text: &str) -> Terminator {
        match text.to_ascii_lowercase().as_str() {
            "none" => Terminator::None,
            "cr" => Terminator::Bytes(b"\r".to_vec()),
            "lf" => Terminator::Bytes(b"\n".to_vec()),
            "crlf" => Terminator::Bytes(b"\r\n".to_vec()),
            _ => Terminator::Bytes(text.as_bytes().to_vec()),
        }
    }

    /// The terminator's bytes; empty for [`Terminator::None`].
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Terminator::None => &[],
            Terminator::Bytes(bytes) => bytes,
        }
    }
}

impl From<String> for Terminator {
    fn from(text: String) -> Self {
        Terminator::parse(&text)
    }
}

impl fmt::Display for Terminator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_bytes() {
            [] => f.write_str("none"),
            b"\r" => f.write_str("cr"),
            b"\n" => f.write_str("lf"),
            b"\r\n" => f.write_str("crlf"),
            bytes => write!(f, "\"{}\"", bytes.escape_ascii()),
        }
    }
}

pub(crate) fn default_baud() -> u32 {
    9600
}
pub(crate) fn default_data_bits() -> u8 {
    8
}
pub(crate) fn default_stop_bits() -> u8 {
    1
}
pub(crate) fn default_reopen_interval() -> Duration {
    Duration::from_secs(2)
}
pub(crate) fn default_grab() -> bool {
    true
}
pub(crate) fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
pub(crate) fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
pub(crate) fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
pub(crate) fn default_keepalive() -> Duration {
    Duration::from_secs(10)
}
pub(crate) fn default_max_connections() -> usize {
    4
}
pub(crate) fn default_terminator() -> Terminator {
    Terminator::parse("crlf")
}
pub(crate) fn default_max_frame() -> usize {
    4096
}
pub(crate) fn default_noread() -> Vec<String> {
    vec!["NOREAD".into(), "ERROR".into()]
}
pub(crate) fn default_trigger_interval() -> Duration {
    Duration::from_secs(1)
}

impl Default for FramingConfig {
    fn default() -> Self {
        FramingConfig {
            terminator: default_terminator(),
            stx_etx: false,
            idle_timeout: None,
            max_frame: default_max_frame(),
            noread: default_noread(),
            ignore: Vec::new(),
        }
    }
}

impl Default for DialogueConfig {
    fn default() -> Self {
        DialogueConfig {
            trigger_command: None,
            trigger_interval: default_trigger_interval(),
            accept_reply: None,
            reject_reply: None,
        }
    }
}
