//! The agent is stopped with SIGTERM three times while a TCP reader keeps 32 codes in flight,
//! and started again on the same queue. A clean stop must exit promptly, may answer "NG" for
//! readings it did not commit, and must not lose one it answered "OK" for.

use std::collections::VecDeque;
use std::time::Duration;

use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, ReaderListener, Subscriber, agent_config, bounded, present_codes,
    wait_all_delivered,
};

#[test]
fn every_code_the_reader_got_ok_for_arrives_despite_three_clean_stops() {
    const N: usize = 900;
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
        let log = agent.log();
        let codes: Vec<String> = (1..=N).map(|i| format!("TERM-{i:05}")).collect();
        let mut stop_at: VecDeque<usize> = [200, 450, 700].into();
        let presented = present_codes(
            &listener,
            &codes,
            32,
            |acknowledged| {
                let stop = stop_at.front().is_some_and(|&k| acknowledged >= k);
                if stop {
                    stop_at.pop_front();
                    let status = agent.terminate();
                    assert!(
                        status.success(),
                        "a clean stop exits 0, got {status}\n{}",
                        agent.log_tail(20)
                    );
                    agent.restart();
                }
                stop
            },
            || log.tail(30),
        );
        assert!(stop_at.is_empty(), "all three stops happened");

        let (last, delivery) = wait_all_delivered(&agent, &sub);
        delivery.assert_codes_arrived(&codes);
        // A clean stop says goodbye: "stopped", not the last will.
        let stopped = sub
            .status_messages()
            .iter()
            .filter(|s| s["state"] == "offline" && s["reason"] == "stopped")
            .count();
        assert!(
            stopped >= 3,
            "one offline/stopped status per clean stop: {:?}",
            sub.status_messages()
        );
        eprintln!(
            "SIGTERM: {N} codes, {} re-presented, {} answered NG, {last} events",
            presented.re_presented(),
            presented.rejected
        );
    });
}

/// A clean stop must not commit a reading and then drop its answer: the reader would present
/// the code again and the consumer would get it twice under two ids and seqs, which it cannot
/// deduplicate (after a SIGKILL that is unavoidable; after a SIGTERM it is not).
#[test]
fn a_clean_stop_answers_every_reading_it_committed() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let listener = ReaderListener::bind();
        let source = format!(
            r#"[[sources]]
id = "rd1"
type = "scanner"
station = "st1"
transport = "tcp_client"
address = "{}"
accept_reply = "OK\r"
reject_reply = "NG\r"
"#,
            listener.addr()
        );
        let mut agent = Agent::start(&agent_config(&broker.url(), "", &source));
        let mut reader = listener.accept(Duration::from_secs(15));
        let burst: String = (1..=3000).map(|i| format!("BURST-{i:05}\r\n")).collect();
        assert!(reader.send(burst.as_bytes()));
        assert!(
            reader.wait_count(b"OK\r", 1, Duration::from_secs(15)),
            "{}",
            agent.log_tail(30)
        );
        agent.terminate();
        assert!(
            reader.wait(Duration::from_secs(5), |_, closed| closed),
            "the agent exited but the connection is still open"
        );
        let committed = agent.queue_stats().next_seq - 1;
        let (ok, ng) = (reader.count(b"OK\r") as u64, reader.count(b"NG\r"));
        assert!(
            committed < 3000,
            "the stop came mid-burst: {committed} committed"
        );
        assert_eq!(
            ok,
            committed,
            "readings committed vs. answered OK before the stop ({ng} answered NG); the other {} \
             will be presented again and committed twice\n{}",
            committed.saturating_sub(ok),
            agent.log_tail(25)
        );
    });
}
