//! The line context MES pushes down is written into the PLC's registers (so the line's HMI
//! shows the order the agent stamps), at start and whenever it changes — and cleared keys are
//! cleared on the PLC too.

use std::time::Duration;

use tracegate_tests::mqtt::publish_v4;
use tracegate_tests::plc::{HANDSHAKE, Plc, PlcServer, string_registers};
use tracegate_tests::{ALL_TOPICS, Agent, Mosquitto, PREFIX, Subscriber, agent_config, bounded};

/// Holding register offsets the agent writes the context into.
const WO_AT: u16 = 99; // 40100
const BATCH_AT: u16 = 109; // 40110

fn registers(plc: &Plc, at: u16, n: u16) -> Vec<u16> {
    (at..at + n).map(|a| plc.get(a)).collect()
}

/// The same, inside [`Plc::wait`] (which holds the memory).
fn regs(m: &tracegate_tests::plc::Memory, at: u16, n: u16) -> Vec<u16> {
    (at..at + n).map(|a| m.get(a)).collect()
}

#[test]
fn mes_context_is_written_to_plc_tags_and_follows_every_change() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let plc = Plc::new();
        let server = PlcServer::tcp(&plc);
        let source = format!(
            "[[sources]]\nid = \"plc1\"\ntype = \"modbus\"\nstation = \"st30\"\ntransport = \"tcp\"\naddress = \"{}\"\n\
             poll_interval = \"20ms\"\nreconnect_min = \"50ms\"\nreconnect_max = \"500ms\"\n{HANDSHAKE}\n\
             [[sources.context_tags]]\nkey = \"work_order\"\naddress = \"40100\"\nregisters = 10\n\n\
             [[sources.context_tags]]\nkey = \"batch\"\naddress = \"40110\"\nregisters = 4\n",
            server.address
        );
        let config = format!(
            "{}\n[context]\nkeys = [\"work_order\", \"batch\"]\n",
            agent_config(&broker.url(), "", &source)
        );
        let mut agent = Agent::start(&config);
        sub.wait_online(&agent, Duration::from_secs(10));
        let topic = format!("{PREFIX}/cmd/context");
        publish_v4(
            broker.port(),
            &topic,
            br#"{"set": {"work_order": "WO-4711", "batch": "L-0815"}}"#,
        );
        let expect_wo = string_registers("WO-4711", 10);
        let expect_batch = string_registers("L-0815", 4);
        assert!(
            plc.wait(Duration::from_secs(10), |m| {
                regs(m, WO_AT, 10) == expect_wo && regs(m, BATCH_AT, 4) == expect_batch
            }),
            "registers: {:04X?} {:04X?}\n{}",
            registers(&plc, WO_AT, 10),
            registers(&plc, BATCH_AT, 4),
            agent.log_tail(20)
        );

        // A removed key is cleared on the PLC.
        publish_v4(broker.port(), &topic, br#"{"set": {"batch": null}}"#);
        assert!(plc.wait(Duration::from_secs(10), |m| regs(m, BATCH_AT, 4)
            == [0, 0, 0, 0]));

        // The PLC loses its memory (restart): the agent writes the context again on its next
        // session.
        plc.set(WO_AT, &[0; 10]);
        agent.kill9();
        agent.restart();
        assert!(
            plc.wait(Duration::from_secs(15), |m| regs(m, WO_AT, 10) == expect_wo),
            "{}",
            agent.log_tail(20)
        );
    });
}
