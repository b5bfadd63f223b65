//! Modbus RTU over a pseudo-terminal pair: several units on one bus, each its own source.

use std::time::Duration;

use tokio::time::Instant;

use super::kit::*;
use crate::modbus::ModbusConfig;

fn rtu(path: &str, unit: u8, extra: &str) -> ModbusConfig {
    config(&format!(
        "transport = \"rtu\"\nport = \"{path}\"\nunit = {unit}\nbaud = 19200\n{extra}\n{HANDSHAKE}"
    ))
}

#[tokio::test]
async fn two_units_on_one_bus_hand_over_their_codes() {
    let (plc1, plc2) = (Plc::new(), Plc::new());
    let bus = RtuBus::start(&[(1, &plc1), (2, &plc2)]);
    let (mut agent1, sink1) = Agent::new();
    let (mut agent2, sink2) = Agent::new();
    let d1 = Driver::named("unit-1", rtu(&bus.path, 1, ""), sink1);
    let d2 = Driver::named("unit-2", rtu(&bus.path, 2, ""), sink2);
    for n in 1..=10u16 {
        // Both PLCs present at once: their requests share the bus.
        plc1.present(n, &format!("U1-{n}"));
        plc2.present(n, &format!("U2-{n}"));
        let r1 = agent1.commit(&format!("U1-{n}"), u64::from(n)).await;
        let r2 = agent2.commit(&format!("U2-{n}"), u64::from(n)).await;
        assert_eq!(r1.attributes["batch"], "0");
        assert_ne!(r1.handover, r2.handover);
        plc1.wait_for(ACK, n).await;
        plc2.wait_for(ACK, n).await;
    }
    // Each PLC saw only its own acks.
    let acks = |plc: &Plc| plc.writes().iter().map(|w| w.values[0]).collect::<Vec<_>>();
    assert_eq!(acks(&plc1), (1..=10).collect::<Vec<u16>>());
    assert_eq!(acks(&plc2), (1..=10).collect::<Vec<u16>>());
    d1.stop().await;
    d2.stop().await;
}

#[tokio::test]
async fn a_unit_that_never_answers_leaves_the_bus_to_the_others() {
    let plc1 = Plc::new();
    // Unit 3 is configured but nobody answers for it.
    let bus = RtuBus::start(&[(1, &plc1)]);
    let (mut agent1, sink1) = Agent::new();
    let (_agent3, sink3) = Agent::new();
    let slow_retry = "reconnect_min = \"2s\"\nreconnect_max = \"5s\"\n";
    let dead_config = config(&format!(
        "transport = \"rtu\"\nport = \"{}\"\nunit = 3\n{}",
        bus.path,
        HANDSHAKE.replace(
            "reconnect_min = \"20ms\"\nreconnect_max = \"200ms\"\n",
            slow_retry
        )
    ));
    let d3 = Driver::named("unit-3", dead_config, sink3);
    let d1 = Driver::named("unit-1", rtu(&bus.path, 1, ""), sink1);
    let mut worst = Duration::ZERO;
    for n in 1..=10u16 {
        let presented = Instant::now();
        plc1.present(n, &format!("U1-{n}"));
        agent1.commit(&format!("U1-{n}"), u64::from(n)).await;
        plc1.wait_for(ACK, n).await;
        worst = worst.max(presented.elapsed());
    }
    // At worst one of unit 3's attempts (a 300 ms timeout and a 300 ms quiet period) stood in
    // the way; unit 3's backoff keeps it from doing so again during the test.
    assert!(
        worst < Duration::from_millis(800),
        "worst round trip {worst:?}"
    );
    d1.stop().await;
    d3.stop().await;
}

#[tokio::test]
async fn a_late_reply_on_the_bus_is_discarded_and_the_unit_recovers() {
    let plc1 = Plc::new();
    let bus = RtuBus::start(&[(1, &plc1)]);
    let (mut agent1, sink1) = Agent::new();
    let d1 = Driver::start(rtu(&bus.path, 1, ""), sink1);
    plc1.present(1, "BEFORE");
    agent1.commit("BEFORE", 1).await;
    plc1.wait_for(ACK, 1).await;
    // The next request is answered 400 ms late, after the 300 ms timeout: the late bytes
    // arrive while the bus keeps quiet and are thrown away.
    plc1.delay_next(1, Duration::from_millis(400));
    let presented = Instant::now();
    plc1.present(2, "AFTER");
    agent1.commit("AFTER", 2).await;
    // The timeout (300 ms) and the quiet period after it (300 ms) went by first.
    assert!(
        presented.elapsed() >= Duration::from_millis(550),
        "{:?}",
        presented.elapsed()
    );
    plc1.wait_for(ACK, 2).await;
    plc1.present(3, "AND-ON");
    agent1.commit("AND-ON", 3).await;
    plc1.wait_for(ACK, 3).await;
    d1.stop().await;
}
