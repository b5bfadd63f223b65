//! Sources without a handshake: triggers on polled tags.

use super::kit::*;
use crate::reading::ReadingKind;

const POLLED: &str = r#"
poll_interval = "10ms"
timeout = "300ms"
reconnect_min = "20ms"
reconnect_max = "200ms"
code_tag = "code"

[[tags]]
name = "code"
address = "40010"
type = "string"
registers = 10

[[tags]]
name = "count"
address = "40001"
trigger = "counter"

[[tags]]
name = "recipe"
address = "40002"
"#;

#[tokio::test]
async fn a_counter_trigger_reports_codes_with_context_and_skips_as_alarms() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let c = config(&format!(
        "transport = \"tcp\"\naddress = \"{}\"\n{POLLED}",
        server.addr
    ));
    let driver = Driver::start(c, sink);
    // The first value is a baseline, then each increment is an event.
    plc.set(1, &[12]);
    plc.set(0, &[5]);
    // Wait until the baseline was surely read (two full polls).
    plc.wait_requests(2).await;
    plc.set(
        9,
        &crate::modbus::codec::string_registers(b"ITEM-6", 10, Default::default()),
    );
    plc.set(0, &[6]);
    let s = agent.next().await;
    assert_eq!(s.reading.kind, code("ITEM-6"));
    assert_eq!(s.reading.attributes["recipe"], "12");
    assert_eq!(s.reading.attributes["count"], "6");
    assert!(!s.reading.attributes.contains_key("code"));
    assert_eq!(s.reading.handover, None);
    // Two counts skipped.
    plc.set(
        9,
        &crate::modbus::codec::string_registers(b"ITEM-9", 10, Default::default()),
    );
    plc.set(0, &[9]);
    let alarm = agent.next().await;
    assert!(
        matches!(&alarm.reading.kind, ReadingKind::Alarm { code, .. } if code == "counter_skipped"),
        "{:?}",
        alarm.reading
    );
    assert_eq!(alarm.reading.attributes["skipped"], "2");
    assert_eq!(agent.next().await.reading.kind, code("ITEM-9"));
    // Nothing is ever written to a PLC without a handshake.
    assert!(plc.writes().is_empty());
    driver.stop().await;
}

#[tokio::test]
async fn a_rising_edge_on_a_coil_reports_the_code_tag() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let text = r#"
poll_interval = "10ms"
code_tag = "serial"

[[tags]]
name = "part_present"
address = "00001"
trigger = "rising_edge"

[[tags]]
name = "serial"
address = "40001"
type = "u32"
word_order = "CDAB"
"#;
    let c = config(&format!(
        "transport = \"tcp\"\naddress = \"{}\"\n{text}",
        server.addr
    ));
    let driver = Driver::start(c, sink);
    plc.set(0, &[0x0002, 0x0001]); // CDAB: 0x0001_0002
    plc.set_coil(0, false);
    // Two polls (of two requests each: coil, register) see the coil low.
    plc.wait_requests(4).await;
    plc.set_coil(0, true);
    let s = agent.next().await;
    assert_eq!(s.reading.kind, code("65538"));
    assert_eq!(s.reading.attributes["part_present"], "true");
    driver.stop().await;
}
