//! The agent is SIGKILLed three times mid-stream and restarted on the same queue file.
//!
//! - Simulator: every seq the agent ever assigned (1 ..= `queue stats` next_seq − 1) reaches
//!   the subscriber at least once, copies byte-identical, order per source kept.
//! - TCP reader, the stronger form of "accepted ⇒ delivered": the test is the reader, keeps
//!   32 codes in flight, and after each kill re-presents every code whose "OK" it did not get
//!   (as a real reader's operator would). Every code that got an "OK" must arrive.

use std::collections::VecDeque;
use std::time::Duration;

use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, ReaderListener, Subscriber, agent_config, bounded, present_codes,
    wait_all_delivered,
};

#[test]
fn simulated_scans_survive_three_kills() {
    bounded(Duration::from_secs(120), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let source = r#"[[sources]]
id = "sim1"
type = "simulator"
station = "st1"
validation = "gs1"
aim = true
rate = 300.0
count = 900
"#;
        let mut agent = Agent::start(&agent_config(&broker.url(), "", source));

        // Kill when the subscriber has seen this many messages: mid-stream every time, and
        // each run is killed before its simulator reaches its count.
        for threshold in [200, 450, 700] {
            assert!(
                sub.wait_for(threshold, Duration::from_secs(20)),
                "{} events before kill\n{}",
                sub.events().len(),
                agent.log_tail(30)
            );
            agent.kill9();
            agent.restart();
        }
        agent.wait_log("simulator finished its count", 1, Duration::from_secs(30));
        // Each killed agent's last will told the consumers it went offline.
        let wills = sub
            .status_messages()
            .iter()
            .filter(|s| s["state"] == "offline" && s["reason"] == "connection lost")
            .count();
        assert!(
            wills >= 1,
            "no last-will offline status: {:?}",
            sub.status_messages()
        );

        let (last, delivery) = wait_all_delivered(&agent, &sub);
        assert!(
            last >= 900 + 3 * 100,
            "each killed run contributed events; last seq {last}"
        );
        eprintln!(
            "simulator: {last} events, {} arrived more than once",
            delivery.duplicated()
        );
    });
}

#[test]
fn every_code_the_reader_got_ok_for_arrives_despite_three_kills() {
    const N: usize = 1200;
    const WINDOW: usize = 32;
    bounded(Duration::from_secs(120), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let listener = ReaderListener::bind();
        let source = format!(
            r#"[[sources]]
id = "rd1"
type = "scanner"
station = "st1"
transport = "tcp_client"
address = "{}"
reconnect_min = "50ms"
reconnect_max = "200ms"
accept_reply = "OK\r"
reject_reply = "NG\r"
"#,
            listener.addr()
        );
        let mut agent = Agent::start(&agent_config(&broker.url(), "", &source));
        let codes: Vec<String> = (1..=N).map(|i| format!("K9-{i:05}")).collect();
        let log = agent.log();
        let mut kill_at: VecDeque<usize> = [250, 600, 900].into();
        let presented = present_codes(
            &listener,
            &codes,
            WINDOW,
            |acknowledged| {
                let kill = kill_at.front().is_some_and(|&k| acknowledged >= k);
                if kill {
                    kill_at.pop_front();
                    agent.kill9();
                    agent.restart();
                }
                kill
            },
            || log.tail(30),
        );
        assert!(kill_at.is_empty(), "all three kills happened");
        assert_eq!(presented.rejected, 0, "no code was refused");

        let (last, delivery) = wait_all_delivered(&agent, &sub);
        delivery.assert_codes_arrived(&codes);
        assert!(
            last as usize >= N,
            "at least one event per code; last seq {last}"
        );
        let resent = presented.re_presented();
        eprintln!(
            "tcp reader: {N} codes, {resent} re-presented after a kill, {last} events ({} committed twice)",
            last as usize - N
        );
    });
}
