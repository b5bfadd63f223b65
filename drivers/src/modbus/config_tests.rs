//! Parsing and validation of modbus tables: defaults, refused keys, and problems named by key
//! and tag.

use std::time::Duration;

use super::*;
use crate::modbus::address::Address;
use crate::modbus::codec::{ByteOrder, DataType, WordOrder};
use crate::modbus::trigger::Trigger;

fn parse(text: &str) -> Result<ModbusConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// `(key, message)` problems of a table that parses.
fn problems(text: &str) -> Vec<(String, String)> {
    parse(text)
        .expect("parses")
        .validate()
        .expect_err("has problems")
}

fn keys(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|(key, _)| key).collect()
}

const HANDSHAKE: &str = r#"
[handshake]
counter = "40001"
code = "40010"
code_registers = 20
ack = "40002"
result = "40003"
"#;

fn tcp(extra: &str) -> String {
    format!("transport = \"tcp\"\naddress = \"192.168.0.10:502\"\n{extra}\n{HANDSHAKE}")
}

#[test]
fn a_tcp_handshake_source_gets_every_default() {
    let c = parse(&tcp("")).unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.transport,
        Transport::Tcp(TcpConfig {
            address: "192.168.0.10:502".into(),
            connect_timeout: Duration::from_secs(3),
        })
    );
    assert_eq!(c.unit, 1);
    assert_eq!(c.poll_interval, Duration::from_millis(50));
    assert_eq!(c.timeout, Duration::from_millis(500));
    assert_eq!(
        (c.reconnect_min, c.reconnect_max),
        (Duration::from_millis(500), Duration::from_secs(30))
    );
    assert_eq!(
        (c.limits.max_registers, c.limits.max_bits, c.limits.max_gap),
        (125, 2000, 0)
    );
    let h = c.handshake.unwrap();
    assert_eq!(h.counter, Address::hr(0));
    assert_eq!(h.code, Address::hr(9));
    assert_eq!(h.ack, Address::hr(1));
    assert_eq!(h.result, Some(Address::hr(2)));
    assert_eq!((h.accepted, h.rejected), (1, 2));
    assert_eq!(h.byte_order, ByteOrder::HighFirst);
    assert_eq!(h.code_length, None);
    // The block read with each code: counter .. end of the code.
    assert_eq!(h.block().start, Address::hr(0));
    assert_eq!(h.block().count, 29);
}

#[test]
fn an_rtu_source_gets_the_modbus_line_defaults() {
    let c = parse(&format!(
        "transport = \"rtu\"\nport = \"/dev/ttyUSB0\"\nunit = 7\n{HANDSHAKE}"
    ))
    .unwrap();
    c.validate().unwrap();
    let Transport::Rtu(rtu) = &c.transport else {
        panic!()
    };
    assert_eq!(
        *rtu,
        RtuConfig {
            port: "/dev/ttyUSB0".into(),
            baud: 19200,
            data_bits: 8,
            parity: Parity::Even,
            stop_bits: 1,
        }
    );
    assert_eq!(c.unit, 7);
    // 11 bits per character at 19200 baud: 3.5 characters = 2.005 ms.
    assert_eq!(rtu.frame_gap(), Duration::from_nanos(2_005_208));
    // Without parity the standard asks for 2 stop bits.
    let c = parse(&format!(
        "transport = \"rtu\"\nport = \"/dev/ttyUSB0\"\nunit = 7\nparity = \"none\"\nbaud = 115200\n{HANDSHAKE}"
    ))
    .unwrap();
    let Transport::Rtu(rtu) = &c.transport else {
        panic!()
    };
    assert_eq!(rtu.stop_bits, 2);
    // Above 19200 baud the gap is fixed.
    assert_eq!(rtu.frame_gap(), Duration::from_micros(1750));
}

#[test]
fn tags_with_every_key() {
    let c = parse(&tcp(r#"
[[tags]]
name = "work_order"
address = "40030"
type = "string"
registers = 10
byte_order = "low_first"

[[tags]]
name = "temperature"
address = "ir:4"
type = "f32"
word_order = "CDAB"
scale = 0.1
offset = -5.0

[[tags]]
name = "door_open"
address = "40050"
type = "bool"
bit = 3

[[tags]]
name = "estop"
address = "10001"
"#))
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.tags.len(), 4);
    assert_eq!(c.tags[0].data_type(), DataType::String);
    assert_eq!(c.tags[0].width(), 10);
    assert_eq!(c.tags[1].decoding().word_order, WordOrder::CDAB);
    assert_eq!(c.tags[1].width(), 2);
    assert_eq!(c.tags[2].bit, Some(3));
    assert_eq!(c.tags[3].data_type(), DataType::Bool);
    assert_eq!(c.tags[3].width(), 1);
}

#[test]
fn unknown_and_foreign_keys_are_refused() {
    let e = parse(&tcp("bogus = 1")).unwrap_err();
    assert!(e.contains("unknown field `bogus`"), "{e}");
    let e = parse(&tcp("baud = 9600")).unwrap_err();
    assert!(e.contains("`baud` is a rtu setting"), "{e}");
    let e = parse(&tcp(
        "[[tags]]\nname = \"x\"\naddress = \"40001\"\nkind = \"u16\"",
    ))
    .unwrap_err();
    assert!(e.contains("unknown field `kind`"), "{e}");
    let e = parse("transport = \"tcp\"\naddress = \"a:1\"\n[handshake]\ncounter = \"40001\"\ncode = \"40002\"\ncode_registers = 2\nack = \"40005\"\nack_value = 1").unwrap_err();
    assert!(e.contains("unknown field `ack_value`"), "{e}");
    let e = parse("transport = \"rtu\"\nport = \"/dev/ttyS0\"").unwrap_err();
    assert!(e.contains("needs `unit`"), "{e}");
    let e = parse("transport = \"tcp\"").unwrap_err();
    assert!(e.contains("needs `address`"), "{e}");
    let e = parse(&tcp("[[tags]]\nname = \"x\"\naddress = \"4001\"")).unwrap_err();
    assert!(e.contains("ambiguous"), "{e}");
}

#[test]
fn connection_problems_name_their_keys() {
    assert_eq!(
        keys(&tcp("").replace("192.168.0.10:502", "plc 30")),
        ["address"]
    );
    let rtu =
        |extra: &str| format!("transport = \"rtu\"\nport = \"/dev/ttyUSB0\"\n{extra}\n{HANDSHAKE}");
    assert_eq!(keys(&rtu("unit = 0")), ["unit"]);
    assert_eq!(keys(&rtu("unit = 248")), ["unit"]);
    assert_eq!(keys(&rtu("unit = 1\nbaud = 96000")), ["baud"]);
    assert_eq!(keys(&rtu("unit = 1\ndata_bits = 7")), ["data_bits"]);
    assert_eq!(keys(&rtu("unit = 1\nstop_bits = 3")), ["stop_bits"]);
    // 125 registers at 1200 baud take far longer than 500ms.
    let p = problems(&rtu("unit = 1\nbaud = 1200"));
    assert_eq!(p[0].0, "timeout");
    assert!(p[0].1.contains("1200 baud"), "{}", p[0].1);
    assert_eq!(
        keys(&tcp(
            "poll_interval = \"0s\"\ntimeout = \"0s\"\nreconnect_min = \"2s\"\nreconnect_max = \"1s\""
        )),
        ["poll_interval", "timeout", "reconnect_max"]
    );
    assert_eq!(
        keys(&tcp("max_registers = 126\nmax_bits = 0")),
        ["max_registers", "max_bits"]
    );
    // host without a port means 502.
    parse(&tcp("").replace("192.168.0.10:502", "plc-30"))
        .unwrap()
        .validate()
        .unwrap();
}

#[test]
fn handshake_problems_name_their_keys() {
    let hs =
        |body: &str| format!("transport = \"tcp\"\naddress = \"plc:502\"\n[handshake]\n{body}");
    let base = "counter = \"40001\"\ncode = \"40010\"\ncode_registers = 20\n";
    // The ack must be a holding register outside what the PLC writes.
    assert_eq!(
        keys(&hs(&format!("{base}ack = \"30002\""))),
        ["handshake.ack"]
    );
    assert_eq!(
        keys(&hs(&format!("{base}ack = \"40015\""))),
        ["handshake.ack"]
    );
    assert_eq!(
        keys(&hs(&format!("{base}ack = \"40001\""))),
        ["handshake.ack"]
    );
    assert_eq!(
        keys(&hs(&format!("{base}ack = \"40002\"\nresult = \"40002\""))),
        ["handshake.result"]
    );
    assert_eq!(
        keys(&hs(&format!(
            "{base}ack = \"40002\"\naccepted = 3\nrejected = 3"
        ))),
        ["handshake.rejected"]
    );
    // Counter and code must be read in one request.
    let far = "counter = \"40001\"\ncode = \"40200\"\ncode_registers = 20\nack = \"40002\"";
    let p = problems(&hs(far));
    assert_eq!(p[0].0, "handshake.code");
    assert!(p[0].1.contains("one read"), "{}", p[0].1);
    let tables = "counter = \"40001\"\ncode = \"30010\"\ncode_registers = 20\nack = \"40002\"";
    assert_eq!(keys(&hs(tables)), ["handshake.code"]);
    let coil = "counter = \"00001\"\ncode = \"00010\"\ncode_registers = 20\nack = \"40002\"";
    assert!(keys(&hs(coil)).contains(&"handshake.counter".to_string()));
    assert_eq!(
        keys(&hs(&format!(
            "{base}ack = \"40002\"\ncode_length = \"30009\""
        ))),
        ["handshake.code_length"]
    );
    let zero = "counter = \"40001\"\ncode = \"40010\"\ncode_registers = 0\nack = \"40002\"";
    assert_eq!(keys(&hs(zero)), ["handshake.code_registers"]);
    // Input registers are fine for what the PLC writes.
    parse(&hs("counter = \"30001\"\ncode = \"30010\"\ncode_registers = 20\nack = \"40002\"\ncode_length = \"30002\""))
        .unwrap()
        .validate()
        .unwrap();
}

#[test]
fn tag_problems_name_the_tag() {
    let tag = |body: &str| tcp(&format!("[[tags]]\nname = \"wo\"\n{body}"));
    for (body, key) in [
        (
            "address = \"40030\"\ntype = \"string\"",
            "tags[0].registers",
        ),
        (
            "address = \"40030\"\ntype = \"u32\"\nregisters = 2",
            "tags[0].registers",
        ),
        (
            "address = \"40030\"\ntype = \"string\"\nregisters = 200",
            "tags[0].registers",
        ),
        ("address = \"10001\"\ntype = \"u16\"", "tags[0].type"),
        (
            "address = \"40030\"\ntype = \"string\"\nregisters = 2\nword_order = \"CDAB\"",
            "tags[0].word_order",
        ),
        (
            "address = \"40030\"\ntype = \"u16\"\nbyte_order = \"low_first\"",
            "tags[0].byte_order",
        ),
        (
            "address = \"40030\"\ntype = \"u16\"\nbit = 1",
            "tags[0].bit",
        ),
        (
            "address = \"40030\"\ntype = \"bool\"\nbit = 16",
            "tags[0].bit",
        ),
        (
            "address = \"40030\"\ntype = \"string\"\nregisters = 2\nscale = 2.0",
            "tags[0].scale",
        ),
        ("address = \"40030\"\nscale = 0.0", "tags[0].scale"),
        ("address = \"465536\"\ntype = \"u32\"", "tags[0].address"),
        (
            "address = \"40030\"\ntrigger = \"change\"",
            "tags[0].trigger",
        ),
    ] {
        let p = problems(&tag(body));
        assert_eq!(
            p.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            [key],
            "{body}"
        );
        assert!(
            p[0].1.contains("`wo`") || key == "tags[0].trigger",
            "{body}: {}",
            p[0].1
        );
    }
    let two = tcp(
        "[[tags]]\nname = \"a\"\naddress = \"40030\"\n[[tags]]\nname = \"a\"\naddress = \"40031\"\n[[tags]]\nname = \"b c\"\naddress = \"40032\"",
    );
    assert_eq!(keys(&two), ["tags[1].name", "tags[2].name"]);
}

#[test]
fn trigger_sources_need_a_trigger_and_a_valid_code_tag() {
    let polled = |tags: &str| format!("transport = \"tcp\"\naddress = \"plc\"\n{tags}");
    assert_eq!(
        keys(&polled("[[tags]]\nname = \"a\"\naddress = \"40001\"")),
        ["tags"]
    );
    assert_eq!(
        keys(&polled(
            "code_tag = \"nope\"\n[[tags]]\nname = \"a\"\naddress = \"40001\"\ntrigger = \"change\""
        )),
        ["code_tag"]
    );
    assert_eq!(
        keys(&polled(
            "[[tags]]\nname = \"a\"\naddress = \"40001\"\ntype = \"f32\"\ntrigger = \"counter\""
        )),
        ["tags[0].trigger"]
    );
    assert_eq!(
        keys(&polled(
            "[[tags]]\nname = \"a\"\naddress = \"40001\"\ntype = \"string\"\nregisters = 2\ntrigger = \"rising_edge\""
        )),
        ["tags[0].trigger"]
    );
    let ok = polled(
        "code_tag = \"code\"\n[[tags]]\nname = \"code\"\naddress = \"40010\"\ntype = \"string\"\nregisters = 10\n\
         [[tags]]\nname = \"count\"\naddress = \"40001\"\ntrigger = \"counter\"\n\
         [[tags]]\nname = \"part_present\"\naddress = \"10001\"\ntrigger = \"rising_edge\"",
    );
    let c = parse(&ok).unwrap();
    c.validate().unwrap();
    assert_eq!(c.tags[1].trigger, Some(Trigger::Counter));
    // A handshake source refuses code_tag.
    assert_eq!(keys(&tcp("code_tag = \"x\"")), ["code_tag"]);
}
