//! Semantic checks of a [`ScannerConfig`], run once at start-up. Each problem names its key
//! (relative to the source's table) so the agent can point at file and line.

use std::net::SocketAddr;
use std::time::Duration;

use super::config::*;

/// Rates a serial scanner can be set to (Linux termios rates plus the 14400/28800/76800 some
/// scanners offer).
pub const STANDARD_BAUD_RATES: &[u32] = &[
    300, 600, 1200, 1800, 2400, 4800, 9600, 14400, 19200, 28800, 38400, 57600, 76800, 115200,
    230400, 460800, 500000, 576000, 921600,
];

/// The largest `max_frame` accepted: far above any barcode, small enough to bound memory.
pub const MAX_FRAME_LIMIT: usize = 1_048_576;

/// Collects `(key, message)` problems.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn check(&mut self, ok: bool, key: impl Into<String>, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push((key.into(), message()));
        }
    }

    fn positive(&mut self, value: Duration, key: &str, why: &str) {
        self.check(!value.is_zero(), key, || {
            format!("{key} must be longer than 0s {why}")
        });
    }

    fn not_empty(&mut self, value: Option<&String>, key: &str) {
        self.check(value.is_none_or(|v| !v.is_empty()), key, || {
            format!("{key} is empty; leave the key out to send nothing")
        });
    }
}

impl ScannerConfig {
    /// Checks what serde cannot: rates, ranges, addresses, and keys that only make sense
    /// together. Returns every problem found as `(key, sentence)`, the key relative to the
    /// source's table (`"baud"`, `"noread[1]"`).
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut p = Problems::default();
        match &self.transport {
            Transport::Serial(s) => validate_serial(s, &mut p),
            Transport::TcpClient(c) => validate_client(c, &mut p),
            Transport::TcpServer(s) => validate_server(s, &mut p),
            Transport::Hid(h) => {
                validate_hid(h, &mut p);
                no_dialogue(&self.dialogue, &mut p);
            }
        }
        validate_framing(&self.framing, &mut p);
        validate_dialogue(&self.dialogue, &mut p);
        if p.0.is_empty() { Ok(()) } else { Err(p.0) }
    }
}

fn validate_serial(s: &SerialConfig, p: &mut Problems) {
    p.check(!s.port.trim().is_empty(), "port", || {
        "port is empty; name the device, for example /dev/ttyUSB0".into()
    });
    p.check(STANDARD_BAUD_RATES.contains(&s.baud), "baud", || {
        let rates: Vec<String> = STANDARD_BAUD_RATES.iter().map(u32::to_string).collect();
        format!(
            "baud {} is not a standard rate; use one of {}",
            s.baud,
            rates.join(", ")
        )
    });
    p.check((5..=8).contains(&s.data_bits), "data_bits", || {
        format!(
            "data_bits {} is out of range; use 5, 6, 7 or 8",
            s.data_bits
        )
    });
    p.check(matches!(s.stop_bits, 1 | 2), "stop_bits", || {
        format!("stop_bits {} is not possible; use 1 or 2", s.stop_bits)
    });
    p.positive(
        s.reopen_interval,
        "reopen_interval",
        "so that a vanished port is not retried in a busy loop",
    );
}

fn validate_client(c: &TcpClientConfig, p: &mut Problems) {
    p.check(is_host_port(&c.address), "address", || {
        format!(
            "address \"{}\" is not host:port; write it like 192.168.0.20:23 or reader-7:9004",
            c.address
        )
    });
    p.positive(
        c.connect_timeout,
        "connect_timeout",
        "or no connection can succeed",
    );
    p.positive(
        c.reconnect_min,
        "reconnect_min",
        "so that reconnecting is not a busy loop",
    );
    p.check(c.reconnect_min <= c.reconnect_max, "reconnect_max", || {
        format!(
            "reconnect_max ({}) is shorter than reconnect_min ({})",
            humantime::format_duration(c.reconnect_max),
            humantime::format_duration(c.reconnect_min)
        )
    });
    p.check(c.keepalive >= Duration::from_secs(1), "keepalive", || {
        format!(
            "keepalive {} is below 1s, the smallest TCP keepalive time",
            humantime::format_duration(c.keepalive)
        )
    });
}

fn validate_server(s: &TcpServerConfig, p: &mut Problems) {
    p.check(s.listen.parse::<SocketAddr>().is_ok(), "listen", || {
        format!(
            "listen \"{}\" is not ip:port; write it like 0.0.0.0:5001",
            s.listen
        )
    });
    p.check(s.max_connections >= 1, "max_connections", || {
        "max_connections must be at least 1, or no reader can connect".into()
    });
}

fn validate_hid(h: &HidConfig, p: &mut Problems) {
    match &h.device {
        HidDevice::Path(path) => p.check(!path.trim().is_empty(), "device", || {
            "device is empty; name the scanner's event device, for example \
             /dev/input/by-id/usb-Scanner-event-kbd"
                .into()
        }),
        HidDevice::Match(m) => {
            p.check(
                m.product_id.is_none() || m.vendor_id.is_some(),
                "product_id",
                || "product_id needs vendor_id: product ids are only unique per vendor".into(),
            );
            p.check(
                m.name.as_ref().is_none_or(|n| !n.trim().is_empty()),
                "name",
                || "name is empty; leave the key out to match any name".into(),
            );
        }
    }
    p.positive(
        h.reopen_interval,
        "reopen_interval",
        "so that a missing scanner is not looked for in a busy loop",
    );
}

/// A keyboard wedge only types into the host: nothing can be sent back to it.
fn no_dialogue(d: &DialogueConfig, p: &mut Problems) {
    for (key, set) in [
        ("trigger_command", d.trigger_command.is_some()),
        ("accept_reply", d.accept_reply.is_some()),
        ("reject_reply", d.reject_reply.is_some()),
    ] {
        p.check(!set, key, || {
            format!(
                "{key} cannot be used with transport = \"hid\": a keyboard-wedge scanner has no \
                 back-channel, nothing can be sent to it; remove the key"
            )
        });
    }
}

fn validate_framing(f: &FramingConfig, p: &mut Problems) {
    p.check(
        f.terminator != Terminator::Bytes(Vec::new()),
        "terminator",
        || "terminator is empty; use \"none\" to end frames by idle_timeout only".into(),
    );
    let ends_by_idle_only = f.terminator == Terminator::None && !f.stx_etx;
    p.check(
        !ends_by_idle_only || f.idle_timeout.is_some(),
        "idle_timeout",
        || {
            "idle_timeout is required when terminator = \"none\" (and stx_etx is off), \
             otherwise a frame never ends"
                .into()
        },
    );
    if let Some(idle) = f.idle_timeout {
        p.positive(
            idle,
            "idle_timeout",
            "or every byte would be a frame of its own",
        );
    }
    p.check(
        (1..=MAX_FRAME_LIMIT).contains(&f.max_frame),
        "max_frame",
        || {
            format!(
                "max_frame {} is out of range; use 1 to {MAX_FRAME_LIMIT} bytes",
                f.max_frame
            )
        },
    );
    for (list, name) in [(&f.noread, "noread"), (&f.ignore, "ignore")] {
        for (i, entry) in list.iter().enumerate() {
            p.check(!entry.is_empty(), format!("{name}[{i}]"), || {
                format!("{name}[{i}] is empty; an empty frame is never reported")
            });
        }
    }
    for (i, entry) in f.ignore.iter().enumerate() {
        p.check(!f.noread.contains(entry), format!("ignore[{i}]"), || {
            format!("ignore[{i}] \"{entry}\" is also listed in noread; keep it in one list")
        });
    }
}

fn validate_dialogue(d: &DialogueConfig, p: &mut Problems) {
    p.not_empty(d.trigger_command.as_ref(), "trigger_command");
    p.not_empty(d.accept_reply.as_ref(), "accept_reply");
    p.not_empty(d.reject_reply.as_ref(), "reject_reply");
    if d.trigger_command.is_some() {
        p.positive(
            d.trigger_interval,
            "trigger_interval",
            "or the trigger command is sent in a busy loop",
        );
    }
}

/// `host:port` with a non-empty host and a non-zero port (`[::1]:23` for IPv6 literals).
fn is_host_port(address: &str) -> bool {
    if address.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match address.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(':')
                && !host.chars().any(char::is_whitespace)
                && port.parse::<u16>().is_ok_and(|port| port != 0)
        }
        None => false,
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
