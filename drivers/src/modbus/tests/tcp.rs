//! The handshake over Modbus TCP against an in-process PLC: what the PLC sees (acks, results,
//! when they are written) and what the agent receives.

use std::time::Duration;

use tokio::time::Instant;

use super::kit::*;
use crate::modbus::handshake::handover_key;
use crate::reading::{DeviceState, ReadingKind, Verdict};

fn tcp(addr: std::net::SocketAddr, extra: &str) -> crate::modbus::ModbusConfig {
    config(&format!(
        "transport = \"tcp\"\naddress = \"{addr}\"\n{extra}\n{HANDSHAKE}"
    ))
}

#[tokio::test]
async fn a_code_is_acknowledged_only_after_its_verdict_with_its_context() {
    let plc = Plc::new();
    plc.set(
        29,
        &crate::modbus::codec::string_registers(b"WO-4711", 8, Default::default()),
    );
    plc.set(37, &[0x0001, 0x0002]);
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);

    plc.present(1, "]d2010950600013435217261231");
    let s = agent.next().await;
    assert_eq!(s.reading.kind, code("]d2010950600013435217261231"));
    assert_eq!(s.reading.attributes["work_order"], "WO-4711");
    assert_eq!(s.reading.attributes["batch"], "65538");
    assert_eq!(
        s.reading.handover,
        Some(handover_key(1, b"]d2010950600013435217261231"))
    );
    // The verdict is outstanding: several poll intervals pass and nothing is written.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(plc.writes().is_empty(), "{:?}", plc.writes());
    let verdict_at = Instant::now();
    let _ = s.reply.send(Verdict::Committed {
        seq: 1,
        valid: true,
    });
    plc.wait_for(ACK, 1).await;
    let writes = plc.writes();
    assert_eq!(writes.len(), 1, "ack and result in one write: {writes:?}");
    assert_eq!(
        (writes[0].address, writes[0].values.clone()),
        (ACK, vec![1, 1])
    );
    assert!(writes[0].at >= verdict_at);
    driver.stop().await;
}

#[tokio::test]
async fn a_hundred_codes_in_sequence_each_acked_once() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    let plc_side = plc.clone();
    let presenter = tokio::spawn(async move {
        for n in 1..=100u16 {
            plc_side.present(n, &format!("CODE-{n:03}"));
            plc_side.wait_for(ACK, n).await;
        }
    });
    for n in 1..=100u64 {
        agent.commit(&format!("CODE-{n:03}"), n).await;
    }
    within("the presenter", presenter).await.unwrap();
    let acks: Vec<u16> = plc.writes().iter().map(|w| w.values[0]).collect();
    assert_eq!(acks, (1..=100).collect::<Vec<u16>>());
    driver.stop().await;
}

#[tokio::test]
async fn results_follow_the_verdict() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    for (n, verdict, result) in [
        (
            1,
            Verdict::Committed {
                seq: 1,
                valid: false,
            },
            2,
        ),
        (2, Verdict::Duplicate, 1),
        (
            3,
            Verdict::Committed {
                seq: 2,
                valid: true,
            },
            1,
        ),
    ] {
        plc.present(n, "X");
        let s = agent.next().await;
        let _ = s.reply.send(verdict);
        plc.wait_for(ACK, n).await;
        assert_eq!(plc.get(RESULT), result, "code {n}");
    }
    // An empty code is a no-read; committed as such it is rejected.
    plc.present(4, "");
    let s = agent.next().await;
    assert_eq!(s.reading.kind, ReadingKind::NoRead);
    let _ = s.reply.send(Verdict::Committed {
        seq: 3,
        valid: false,
    });
    plc.wait_for(ACK, 4).await;
    assert_eq!(plc.get(RESULT), 2);
    driver.stop().await;
}

#[tokio::test]
async fn not_committed_is_never_acked_and_the_code_is_submitted_again() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    plc.present(1, "KEEP-ME");
    let first = agent.next().await;
    let _ = first.reply.send(Verdict::NotCommitted {
        reason: "queue failed".into(),
    });
    let second = agent.next().await;
    assert_eq!(second.reading.kind, code("KEEP-ME"));
    assert_eq!(second.reading.handover, first.reading.handover);
    assert!(plc.writes().is_empty(), "{:?}", plc.writes());
    let _ = second.reply.send(Verdict::Committed {
        seq: 1,
        valid: true,
    });
    plc.wait_for(ACK, 1).await;
    driver.stop().await;
}

#[tokio::test]
async fn a_code_left_unacknowledged_by_a_previous_run_is_picked_up_again() {
    let plc = Plc::new();
    // The previous run acknowledged 4, committed 5 and died before writing its ack.
    plc.set(ACK, &[4]);
    plc.present(5, "CODE-5");
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    let s = agent.next().await;
    assert_eq!(s.reading.handover, Some(handover_key(5, b"CODE-5")));
    // The agent's queue recognises the handover and repeats the original seq.
    let _ = s.reply.send(Verdict::Committed {
        seq: 41,
        valid: true,
    });
    plc.wait_for(ACK, 5).await;
    driver.stop().await;
}

#[tokio::test]
async fn shutdown_while_a_verdict_is_outstanding_writes_no_ack() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    plc.present(1, "A");
    let s = agent.next().await;
    driver.stop().await;
    let _ = s.reply.send(Verdict::Committed {
        seq: 1,
        valid: true,
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(plc.writes().is_empty());
}

#[tokio::test]
async fn skipped_counters_raise_an_alarm_and_a_reset_resynchronises() {
    let plc = Plc::new();
    plc.set(ACK, &[4]);
    plc.set(COUNTER, &[4]);
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    plc.present(7, "CODE-7");
    let alarm = agent.next().await;
    let ReadingKind::Alarm {
        code: alarm_code, ..
    } = &alarm.reading.kind
    else {
        panic!("{:?}", alarm.reading);
    };
    assert_eq!(alarm_code, "counter_skipped");
    assert_eq!(alarm.reading.attributes["skipped"], "2");
    let _ = alarm.reply.send(Verdict::Committed {
        seq: 1,
        valid: false,
    });
    agent.commit("CODE-7", 2).await;
    plc.wait_for(ACK, 7).await;
    // The PLC resets its counter: the agent follows with ack 0, then 1 is a normal code.
    plc.set(COUNTER, &[0]);
    plc.wait_for(ACK, 0).await;
    plc.present(1, "AFTER-RESET");
    agent.commit("AFTER-RESET", 3).await;
    plc.wait_for(ACK, 1).await;
    driver.stop().await;
}

#[tokio::test]
async fn a_reply_that_times_out_is_followed_by_a_fresh_connection() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    plc.present(1, "BEFORE");
    agent.commit("BEFORE", 1).await;
    plc.wait_for(ACK, 1).await;
    assert_eq!(server.connections(), 1);
    // The next request is answered 1 s late (timeout 300 ms): the late reply must not be
    // taken for anything, and the driver carries on over a new connection.
    plc.delay_next(1, Duration::from_secs(1));
    plc.present(2, "AFTER");
    agent.commit("AFTER", 2).await;
    plc.wait_for(ACK, 2).await;
    assert!(server.connections() >= 2, "reconnected after the timeout");
    assert_eq!(plc.get(RESULT), 1);
    driver.stop().await;
}

#[tokio::test]
async fn the_device_state_follows_the_plc_and_each_outage_is_one_loss() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let mut state = sink.device_state();
    let losses = sink.device_losses();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    plc.present(1, "BEFORE");
    agent.commit("BEFORE", 1).await;
    plc.wait_for(ACK, 1).await;
    within(
        "the device to be reported connected",
        state.wait_for(|s| *s == DeviceState::Connected),
    )
    .await
    .unwrap();
    assert_eq!(losses.get(), 0);
    // The PLC hangs: every request times out, over several reconnect attempts.
    plc.go_silent(true);
    within(
        "the device to be reported disconnected",
        state.wait_for(|s| *s == DeviceState::Disconnected),
    )
    .await
    .unwrap();
    let requests = plc.requests();
    within("more requests to the silent PLC", async {
        while plc.requests() < requests + 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    plc.go_silent(false);
    within(
        "the device to be reported connected again",
        state.wait_for(|s| *s == DeviceState::Connected),
    )
    .await
    .unwrap();
    plc.present(2, "AFTER");
    agent.commit("AFTER", 2).await;
    plc.wait_for(ACK, 2).await;
    assert_eq!(losses.get(), 1, "one outage, however many failed requests");
    driver.stop().await;
}

#[tokio::test]
async fn a_device_that_never_answers_does_not_delay_another() {
    let dead = Plc::new();
    dead.go_silent(true);
    let dead_server = TcpPlc::start(&dead).await;
    let live = Plc::new();
    let live_server = TcpPlc::start(&live).await;
    let (_dead_agent, dead_sink) = Agent::new();
    let (mut agent, sink) = Agent::new();
    let d1 = Driver::named("dead", tcp(dead_server.addr, ""), dead_sink);
    let d2 = Driver::named("live", tcp(live_server.addr, ""), sink);
    let mut worst = Duration::ZERO;
    for n in 1..=20u16 {
        let presented = Instant::now();
        live.present(n, &format!("LIVE-{n}"));
        agent.commit(&format!("LIVE-{n}"), u64::from(n)).await;
        live.wait_for(ACK, n).await;
        worst = worst.max(presented.elapsed());
    }
    // The dead PLC's 300 ms timeouts never show in the live PLC's round trips.
    assert!(
        worst < Duration::from_millis(250),
        "worst round trip {worst:?}"
    );
    assert!(dead.requests() >= 1, "the dead PLC was asked");
    d1.stop().await;
    d2.stop().await;
}

#[tokio::test]
async fn a_plc_that_is_not_there_yet_is_reached_once_it_listens() {
    // Reserve a port, close it, start the driver against it, then start the PLC there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(port, ""), sink);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let plc = Plc::new();
    let _server = TcpPlc::start_at(&plc, port).await;
    plc.present(1, "LATE-PLC");
    agent.commit("LATE-PLC", 1).await;
    plc.wait_for(ACK, 1).await;
    driver.stop().await;
}

#[tokio::test]
async fn a_length_register_and_low_byte_first_codes() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let text = HANDSHAKE.replace(
        "code_registers = 20",
        "code_registers = 20\ncode_length = \"40004\"\nbyte_order = \"low_first\"",
    );
    let c = config(&format!(
        "transport = \"tcp\"\naddress = \"{}\"\n{text}",
        server.addr
    ));
    let driver = Driver::start(c, sink);
    // "AB\0D" with length 4: the NUL is part of the code when the length says so.
    plc.set(CODE, &[0x4241, 0x4400]);
    plc.set(3, &[4]);
    plc.set(COUNTER, &[1]);
    let s = agent.next().await;
    assert_eq!(s.reading.kind, ReadingKind::Code(b"AB\0D".to_vec()));
    let _ = s.reply.send(Verdict::Committed {
        seq: 1,
        valid: true,
    });
    plc.wait_for(ACK, 1).await;
    driver.stop().await;
}

#[tokio::test]
async fn a_refused_ack_write_is_retried_with_the_same_handover() {
    let plc = Plc::new();
    let server = TcpPlc::start(&plc).await;
    let (mut agent, sink) = Agent::new();
    let driver = Driver::start(tcp(server.addr, ""), sink);
    plc.refuse_writes(true);
    plc.present(1, "REFUSED");
    let first = agent.next().await;
    let _ = first.reply.send(Verdict::Committed {
        seq: 1,
        valid: true,
    });
    // The write is refused: the driver starts over and presents the code again (the agent's
    // queue would answer with the same seq).
    let second = agent.next().await;
    assert_eq!(second.reading.handover, first.reading.handover);
    plc.refuse_writes(false);
    let _ = second.reply.send(Verdict::Committed {
        seq: 1,
        valid: true,
    });
    plc.wait_for(ACK, 1).await;
    driver.stop().await;
}
