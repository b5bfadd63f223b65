//! `tracegate check` on modbus sources: every problem on its own line with file, line, key
//! path, the source and (for tags) the tag's name; exit code 78.

use tracegate_tests::{CONFIG_FILE, agent_config, check};

#[test]
fn modbus_problems_name_the_source_the_key_and_the_tag() {
    let sources = r#"[[sources]]
id = "st30-plc"
type = "modbus"
transport = "tcp"
address = "192.168.0.10:502"

[sources.handshake]
counter = "40001"
ack = "30002"
code = "40010"
code_registers = 20

[[sources.tags]]
name = "work_order"
address = "40030"
type = "string"

[[sources.tags]]
name = "temperature"
address = "30001"
type = "i16"
byte_order = "low_first"

[[sources]]
id = "bus-a"
type = "modbus"
transport = "rtu"
port = "/dev/ttyUSB7"
unit = 1
baud = 19200
[sources.handshake]
counter = "40001"
ack = "40002"
code = "40010"
code_registers = 10

[[sources]]
id = "bus-b"
type = "modbus"
transport = "rtu"
port = "/dev/ttyUSB7"
unit = 2
baud = 9600
[sources.handshake]
counter = "40001"
ack = "40002"
code = "40010"
code_registers = 10
"#;
    let text = agent_config("mqtt://127.0.0.1:1883", "", sources);
    let (code, _stdout, stderr) = check(&text);
    assert_eq!(code, 78, "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(CONFIG_FILE)).collect();
    let expect = [
        (
            "sources[0].handshake.ack",
            "source `st30-plc`: ack 30002 (ir:1) is an input register",
        ),
        (
            "sources[0].tags[0].registers",
            "tag `work_order`: a string needs `registers`",
        ),
        (
            "sources[0].tags[1].byte_order",
            "tag `temperature`: byte_order only applies to strings",
        ),
        (
            "sources[2].baud",
            "source `bus-b`: port /dev/ttyUSB7 is also used by source `bus-a`",
        ),
    ];
    assert_eq!(lines.len(), expect.len(), "{stderr}");
    for (key, message) in expect {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!(": {key}: ")))
            .unwrap_or_else(|| panic!("no problem at {key}:\n{stderr}"));
        assert!(line.contains(message), "{line}");
        // file:line: key: message
        let located = line
            .split(':')
            .nth(1)
            .is_some_and(|n| n.parse::<usize>().is_ok());
        assert!(located, "not located: {line}");
    }
}

#[test]
fn a_bad_address_is_refused_with_how_to_write_it() {
    let sources = r#"[[sources]]
id = "st30-plc"
type = "modbus"
transport = "tcp"
address = "plc-30"

[[sources.tags]]
name = "count"
address = "4001"
trigger = "counter"
"#;
    let (code, _stdout, stderr) = check(&agent_config("mqtt://127.0.0.1:1883", "", sources));
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("sources[0].tags[0].address: address \"4001\" is ambiguous"),
        "{stderr}"
    );
    assert!(stderr.contains("40001 (1-based"), "{stderr}");
}
