//! Modbus RTU end to end: PLCs with unit ids 1 and 2 on one RS-485 bus (a pty pair, the test's
//! RTU server on the master), a third configured unit that never answers, and the real agent
//! with one source per unit on the same port.

use std::time::Duration;

use tracegate_tests::plc::{ACK, HANDSHAKE, Plc, PlcServer};
use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, PREFIX, Subscriber, agent_config, bounded, wait_all_delivered,
};

fn source(id: &str, port: &str, unit: u8) -> String {
    format!(
        r#"[[sources]]
id = "{id}"
type = "modbus"
station = "bus1"
transport = "rtu"
port = "{port}"
baud = 19200
parity = "even"
unit = {unit}
poll_interval = "10ms"
timeout = "300ms"
reconnect_min = "1s"
reconnect_max = "5s"
{HANDSHAKE}"#
    )
}

#[test]
fn two_units_on_one_bus_deliver_while_a_third_never_answers() {
    const N: u16 = 15;
    bounded(Duration::from_secs(120), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let (plc1, plc2) = (Plc::new(), Plc::new());
        let bus = PlcServer::rtu(&[(1, &plc1), (2, &plc2)]);
        let sources = [
            source("unit1", &bus.address, 1),
            source("unit2", &bus.address, 2),
            source("unit3", &bus.address, 3),
        ]
        .join("\n");
        let agent = Agent::start(&agent_config(&broker.url(), "", &sources));
        for n in 1..=N {
            // Both PLCs present at once; their sources take turns on the bus.
            plc1.present(n, &format!("U1-{n:03}"), "WO-A");
            plc2.present(n, &format!("U2-{n:03}"), "WO-B");
            for (unit, plc) in [(1, &plc1), (2, &plc2)] {
                assert!(
                    plc.wait(Duration::from_secs(15), |m| m.get(ACK) == n),
                    "unit {unit}: code {n} not acknowledged\n{}",
                    agent.log_tail(30)
                );
            }
        }
        let (last, delivery) = wait_all_delivered(&agent, &sub);
        assert_eq!(last, u64::from(2 * N));
        for (unit, work_order) in [(1, "WO-A"), (2, "WO-B")] {
            let topic = format!("{PREFIX}/bus1/unit{unit}/scan");
            let codes: Vec<String> = delivery
                .arrivals
                .iter()
                .filter(|r| r.topic == topic)
                .map(|r| {
                    assert_eq!(r.event["attributes"]["work_order"], work_order);
                    r.event["code"]["text"].as_str().unwrap().to_string()
                })
                .collect();
            let expected: Vec<String> = (1..=N).map(|n| format!("U{unit}-{n:03}")).collect();
            assert_eq!(codes, expected, "unit {unit}");
        }
        // The silent unit was tried and logged once as failing.
        agent.wait_log(
            "modbus unit3: no reply within 300ms",
            1,
            Duration::from_secs(5),
        );
    });
}
