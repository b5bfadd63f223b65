//! Semantic checks of a [`ModbusConfig`], run once at start-up. Each problem names its key
//! relative to the source's table (`unit`, `handshake.ack`, `tags[2].address`) and, for tags,
//! the tag's name in the sentence.

use std::collections::HashSet;
use std::time::Duration;

use super::address::{Address, Table};
use super::codec::DataType;
use super::config::*;
use super::plan::{MAX_BITS, MAX_REGISTERS};
use super::trigger::Trigger;
use crate::scanner::STANDARD_BAUD_RATES;

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
}

impl ModbusConfig {
    /// Checks what serde cannot: ranges, tables, overlaps, and keys that only make sense
    /// together. Returns every problem found as `(key, sentence)`.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        let mut p = Problems::default();
        match &self.transport {
            Transport::Tcp(tcp) => validate_tcp(tcp, &mut p),
            Transport::Rtu(rtu) => validate_rtu(self, rtu, &mut p),
        }
        p.positive(
            self.poll_interval,
            "poll_interval",
            "or polling is a busy loop",
        );
        p.positive(self.timeout, "timeout", "or no reply can arrive in time");
        p.positive(
            self.reconnect_min,
            "reconnect_min",
            "so that reconnecting is not a busy loop",
        );
        p.check(
            self.reconnect_min <= self.reconnect_max,
            "reconnect_max",
            || {
                format!(
                    "reconnect_max ({}) is shorter than reconnect_min ({})",
                    humantime::format_duration(self.reconnect_max),
                    humantime::format_duration(self.reconnect_min)
                )
            },
        );
        let l = &self.limits;
        p.check(
            (1..=MAX_REGISTERS).contains(&l.max_registers),
            "max_registers",
            || {
                format!(
                    "max_registers {} is out of range 1..={MAX_REGISTERS}",
                    l.max_registers
                )
            },
        );
        p.check((1..=MAX_BITS).contains(&l.max_bits), "max_bits", || {
            format!("max_bits {} is out of range 1..={MAX_BITS}", l.max_bits)
        });
        match &self.handshake {
            Some(h) => validate_handshake(self, h, &mut p),
            None => validate_triggers(self, &mut p),
        }
        validate_tags(self, &mut p);
        super::context::validate(&self.context_tags, &mut p.0);
        if p.0.is_empty() { Ok(()) } else { Err(p.0) }
    }
}

fn validate_tcp(tcp: &TcpConfig, p: &mut Problems) {
    p.check(is_host_port(&tcp.address), "address", || {
        format!(
            "address \"{}\" is not host or host:port; write it like 192.168.0.10:502 or plc-30",
            tcp.address
        )
    });
    p.positive(
        tcp.connect_timeout,
        "connect_timeout",
        "or no connection can succeed",
    );
}

fn validate_rtu(c: &ModbusConfig, rtu: &RtuConfig, p: &mut Problems) {
    p.check(!rtu.port.trim().is_empty(), "port", || {
        "port is empty; name the RS-485 adapter, for example /dev/ttyUSB0".into()
    });
    p.check(STANDARD_BAUD_RATES.contains(&rtu.baud), "baud", || {
        format!(
            "baud {} is not a standard rate (9600, 19200, 38400, 57600, 115200, …)",
            rtu.baud
        )
    });
    p.check(rtu.data_bits == 8, "data_bits", || {
        format!(
            "data_bits {} is not possible: Modbus RTU always uses 8",
            rtu.data_bits
        )
    });
    p.check(matches!(rtu.stop_bits, 1 | 2), "stop_bits", || {
        format!("stop_bits {} is not possible; use 1 or 2", rtu.stop_bits)
    });
    p.check((1..=247).contains(&c.unit), "unit", || {
        format!(
            "unit {} is not a slave address: RTU slaves are 1 to 247 (0 is broadcast, which \
             gets no reply; 248–255 are reserved)",
            c.unit
        )
    });
    if STANDARD_BAUD_RATES.contains(&rtu.baud) {
        // The longest exchange: an 8-byte request and a reply of max_registers registers.
        let regs = u32::from(c.limits.max_registers.min(MAX_REGISTERS));
        let needed = rtu.transmit_time(8 + 5 + 2 * regs) + rtu.frame_gap() * 2;
        p.check(c.timeout > needed, "timeout", || {
            format!(
                "timeout {} is shorter than a {regs}-register exchange takes at {} baud ({}); \
                 raise timeout or lower max_registers",
                humantime::format_duration(c.timeout),
                rtu.baud,
                humantime::format_duration(Duration::from_millis(needed.as_millis() as u64 + 1))
            )
        });
    }
}

fn validate_handshake(c: &ModbusConfig, h: &HandshakeConfig, p: &mut Problems) {
    let is_register = |a: Address| matches!(a.table, Table::HoldingRegister | Table::InputRegister);
    p.check(is_register(h.counter), "handshake.counter", || {
        format!(
            "counter {} is {}; the counter must be a holding or input register (e.g. 40001)",
            h.counter,
            h.counter.table.a_noun()
        )
    });
    p.check(h.code.table == h.counter.table, "handshake.code", || {
        format!(
            "code {} is {} but the counter {} is {}; they must be in the same table to be \
             read in one request",
            h.code,
            h.code.table.a_noun(),
            h.counter,
            h.counter.table.a_noun()
        )
    });
    p.check(
        (1..=c.limits.max_registers).contains(&h.code_registers),
        "handshake.code_registers",
        || {
            format!(
                "code_registers {} is out of range 1..={} (2 characters per register)",
                h.code_registers, c.limits.max_registers
            )
        },
    );
    if let Some(len) = h.code_length {
        p.check(
            len.table == h.counter.table,
            "handshake.code_length",
            || {
                format!(
                    "code_length {len} must be in the same table as the counter {}",
                    h.counter
                )
            },
        );
    }
    let block = h.block();
    let block_end = u32::from(block.start.offset) + u32::from(block.count);
    p.check(
        block.count <= c.limits.max_registers && block_end <= 65_536,
        "handshake.code",
        || {
            format!(
                "the counter {}, the code block {} ({} registers){} span {} registers; they must \
                 fit in one read of at most max_registers = {}, so that code and counter are \
                 read together",
                h.counter,
                h.code,
                h.code_registers,
                h.code_length
                    .map(|l| format!(" and the length {l}"))
                    .unwrap_or_default(),
                block.count,
                c.limits.max_registers
            )
        },
    );
    let code_end = u32::from(h.code.offset) + u32::from(h.code_registers);
    let plc_owned = |a: Address| {
        a == h.counter
            || Some(a) == h.code_length
            || (a.table == h.code.table
                && (u32::from(h.code.offset)..code_end).contains(&u32::from(a.offset)))
    };
    for (key, addr) in [
        ("handshake.ack", Some(h.ack)),
        ("handshake.result", h.result),
    ] {
        let Some(addr) = addr else { continue };
        let name = &key["handshake.".len()..];
        p.check(addr.table == Table::HoldingRegister, key, || {
            format!(
                "{name} {addr} is {}; the agent writes it, so it must be a holding register \
                 (4xxxx)",
                addr.table.a_noun()
            )
        });
        p.check(!plc_owned(addr), key, || {
            format!(
                "{name} {addr} overlaps the counter, the code block or the code length, which \
                 the PLC writes"
            )
        });
    }
    p.check(h.result != Some(h.ack), "handshake.result", || {
        format!(
            "result and ack are both {}; they need a register each",
            h.ack
        )
    });
    p.check(h.accepted != h.rejected, "handshake.rejected", || {
        format!(
            "rejected = accepted = {}; the PLC could not tell them apart",
            h.accepted
        )
    });
    for (i, tag) in c.tags.iter().enumerate() {
        if let Some(trigger) = tag.trigger {
            p.0.push((
                format!("tags[{i}].trigger"),
                format!(
                    "tag `{}`: trigger = \"{}\" does not apply to a handshake source, whose tags \
                     are read with each code; use a second source for triggers",
                    tag.name,
                    trigger.name()
                ),
            ));
        }
    }
    p.check(c.code_tag.is_none(), "code_tag", || {
        "code_tag does not apply to a handshake source: the code is handshake.code".into()
    });
}

fn validate_triggers(c: &ModbusConfig, p: &mut Problems) {
    p.check(c.tags.iter().any(|t| t.trigger.is_some()), "tags", || {
        "a source without [handshake] needs at least one tag with a trigger (\"change\", \
         \"rising_edge\" or \"counter\"), or it would never report anything"
            .into()
    });
    if let Some(code) = &c.code_tag {
        p.check(c.tags.iter().any(|t| &t.name == code), "code_tag", || {
            format!("code_tag names `{code}`, which is not one of the source's tags")
        });
    }
}

fn validate_tags(c: &ModbusConfig, p: &mut Problems) {
    let mut names = HashSet::new();
    for (i, tag) in c.tags.iter().enumerate() {
        let at = |key: &str| format!("tags[{i}].{key}");
        let name = &tag.name;
        let t = tag.data_type();
        p.check(is_tag_name(name), at("name"), || {
            format!("tag name {name:?} is not valid; use 1–64 letters, digits, '_', '-' or '.'")
        });
        p.check(names.insert(name.as_str()), at("name"), || {
            format!("tag `{name}` is defined twice; names must be unique in a source")
        });
        p.check(
            !tag.address.table.is_bits() || t == DataType::Bool,
            at("type"),
            || {
                format!(
                    "tag `{name}`: {} is {}, which holds one bit; its type can only be bool",
                    tag.address,
                    tag.address.table.a_noun()
                )
            },
        );
        match (t, tag.registers) {
            (DataType::String, None) => p.0.push((
                at("registers"),
                format!("tag `{name}`: a string needs `registers` (2 characters each)"),
            )),
            (DataType::String, Some(n)) => p.check(
                (1..=c.limits.max_registers).contains(&n),
                at("registers"),
                || {
                    format!(
                        "tag `{name}`: registers {n} is out of range 1..={}",
                        c.limits.max_registers
                    )
                },
            ),
            (_, Some(_)) => p.0.push((
                at("registers"),
                format!("tag `{name}`: registers only applies to type = \"string\""),
            )),
            _ => {}
        }
        let multi_byte = t.fixed_registers().is_some() && tag.is_register();
        p.check(
            tag.word_order.is_none() || multi_byte,
            at("word_order"),
            || format!("tag `{name}`: word_order only applies to numeric register types"),
        );
        p.check(
            tag.byte_order.is_none() || t == DataType::String,
            at("byte_order"),
            || format!("tag `{name}`: byte_order only applies to strings; numbers use word_order"),
        );
        if let Some(bit) = tag.bit {
            p.check(t == DataType::Bool && tag.is_register(), at("bit"), || {
                format!("tag `{name}`: bit only applies to type = \"bool\" read from a register")
            });
            p.check(bit <= 15, at("bit"), || {
                format!("tag `{name}`: bit {bit} is out of range 0..=15")
            });
        }
        for (key, value) in [("scale", tag.scale), ("offset", tag.offset)] {
            let Some(v) = value else { continue };
            p.check(t.is_numeric(), at(key), || {
                format!(
                    "tag `{name}`: {key} only applies to numbers, not {}",
                    t.name()
                )
            });
            p.check(
                v.is_finite() && (key != "scale" || v != 0.0),
                at(key),
                || {
                    format!(
                        "tag `{name}`: {key} {v} must be a finite number{}",
                        if key == "scale" { " other than 0" } else { "" }
                    )
                },
            );
        }
        let end = u32::from(tag.address.offset) + u32::from(tag.width());
        p.check(end <= 65_536, at("address"), || {
            format!(
                "tag `{name}` at {} runs past the end of the table",
                tag.address
            )
        });
        // (A string's size is checked with `registers` above.)
        let fits =
            tag.width() <= c.limits.max_registers || !tag.is_register() || t == DataType::String;
        p.check(fits, at("type"), || {
            format!(
                "tag `{name}` needs {} registers, more than max_registers = {}",
                tag.width(),
                c.limits.max_registers
            )
        });
        match tag.trigger {
            Some(Trigger::RisingEdge) => {
                p.check(t == DataType::Bool || t.is_integer(), at("trigger"), || {
                    format!(
                        "tag `{name}`: rising_edge needs a bool or an integer, not {}",
                        t.name()
                    )
                })
            }
            Some(Trigger::Counter) => p.check(
                t.is_integer() && tag.scale.is_none() && tag.offset.is_none(),
                at("trigger"),
                || {
                    format!(
                        "tag `{name}`: a counter must be an unscaled integer type, not {}",
                        t.name()
                    )
                },
            ),
            _ => {}
        }
    }
}

/// Tag names become attribute keys.
fn is_tag_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `host` or `host:port` with a non-empty host and a non-zero port (`[::1]:502` for IPv6).
fn is_host_port(address: &str) -> bool {
    if address.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (address, None),
    };
    !host.is_empty()
        && !host.contains(':')
        && !host.chars().any(char::is_whitespace)
        && port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port != 0))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
