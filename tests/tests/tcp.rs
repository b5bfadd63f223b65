//! TCP readers, both directions: the agent dials a reader in server mode (`tcp_client`), and
//! readers in push mode dial the agent (`tcp_server`).

use std::collections::BTreeMap;
use std::time::Duration;

use tracegate_tests::http::http_get;
use tracegate_tests::{
    ALL_TOPICS, Agent, Delivery, FakeReader, Mosquitto, PREFIX, ReaderListener, Subscriber,
    agent_config, bounded, connect_retry, free_port, wait_until,
};

const LIMIT: Duration = Duration::from_secs(60);
const STARTUP: Duration = Duration::from_secs(15);

/// Sends `codes` with CRLF, `per_write` codes per write, and waits for one "OK\r" per code.
fn send_codes(reader: &mut FakeReader, codes: &[String], per_write: usize, agent: &Agent) {
    let before = reader.count(b"OK\r");
    for batch in codes.chunks(per_write) {
        let bytes: Vec<u8> = batch
            .iter()
            .flat_map(|c| format!("{c}\r\n").into_bytes())
            .collect();
        assert!(
            reader.send(&bytes),
            "the agent closed the connection\n{}",
            agent.log_tail(30)
        );
    }
    assert!(
        reader.wait_count(b"OK\r", before + codes.len(), STARTUP),
        "{} of {} codes acknowledged\n{}",
        reader.count(b"OK\r") - before,
        codes.len(),
        agent.log_tail(30)
    );
}

fn codes(prefix: &str, range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:05}")).collect()
}

/// Waits until the agent's `/metrics` on `listen` has every one of `lines`.
fn wait_metrics(agent: &Agent, listen: &str, lines: &[&str]) {
    wait_until(
        &format!("{lines:?} in /metrics"),
        Duration::from_secs(10),
        || {
            let (_, text) = http_get(listen, "/metrics");
            lines.iter().all(|l| text.contains(l))
        },
        || {
            format!(
                "{}
{}",
                http_get(listen, "/metrics").1,
                agent.log_tail(20)
            )
        },
    );
}

#[test]
fn agent_dials_the_reader_and_dials_again_after_a_disconnect() {
    bounded(LIMIT, || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let listener = ReaderListener::bind();
        let source = format!(
            r#"[[sources]]
id = "dm1"
type = "scanner"
station = "st7"
transport = "tcp_client"
address = "{}"
reconnect_min = "50ms"
reconnect_max = "200ms"
terminator = "crlf"
accept_reply = "OK\r"
"#,
            listener.addr()
        );
        let listen = format!("127.0.0.1:{}", free_port());
        let mut agent = Agent::start(&format!(
            "{}\n[ops]\nlisten = \"{listen}\"\n",
            agent_config(&broker.url(), "", &source)
        ));

        let first = codes("TCPC", 1..=60);
        let mut reader = listener.accept(STARTUP);
        send_codes(&mut reader, &first, 7, &agent);
        wait_metrics(
            &agent,
            &listen,
            &[
                "tracegate_device_connected{source=\"dm1\"} 1",
                "tracegate_device_disconnects_total{source=\"dm1\"} 0",
            ],
        );
        drop(reader); // the reader goes away; the agent must dial again

        let second = codes("TCPC", 61..=120);
        let mut reader = listener.accept(Duration::from_secs(10));
        send_codes(&mut reader, &second, 13, &agent);
        // One loss of the reader, and it is back.
        wait_metrics(
            &agent,
            &listen,
            &[
                "tracegate_device_connected{source=\"dm1\"} 1",
                "tracegate_device_disconnects_total{source=\"dm1\"} 1",
            ],
        );

        assert!(
            sub.wait_for(120, Duration::from_secs(10)),
            "events: {}\n{}",
            sub.events().len(),
            agent.log_tail(30)
        );
        let delivery = Delivery::analyze(&sub.messages());
        delivery.assert_complete(1..=120);
        delivery.assert_ordered_per_source();
        let expected: Vec<String> = first.into_iter().chain(second).collect();
        assert_eq!(delivery.code_texts(), expected, "codes in seq order");
        assert!(
            delivery
                .arrivals
                .iter()
                .all(|r| r.topic == format!("{PREFIX}/st7/dm1/scan"))
        );

        // The retained status says online while it runs (a late subscriber gets it at once,
        // flagged retained) and "offline" after a clean stop.
        assert_eq!(
            sub.status_messages().first().map(|s| s["state"].clone()),
            Some("online".into())
        );
        let late = Subscriber::connect(broker.port(), &format!("{PREFIX}/status"));
        assert!(
            late.wait_until(Duration::from_secs(5), |m| m
                .iter()
                .any(|m| m.retain && m.json()["state"] == "online")),
            "no retained online status: {:?}",
            late.messages()
        );
        agent.terminate();
        wait_until(
            "an offline status after SIGTERM",
            Duration::from_secs(10),
            || {
                sub.status_messages()
                    .last()
                    .is_some_and(|s| s["state"] == "offline")
            },
            || {
                format!(
                    "status: {:?}\n{}",
                    sub.status_messages(),
                    agent.log_tail(20)
                )
            },
        );
    });
}

#[test]
fn readers_dial_the_agent_and_each_keeps_its_order() {
    bounded(LIMIT, || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let listen = format!("127.0.0.1:{}", free_port());
        let source = format!(
            r#"[[sources]]
id = "push1"
type = "scanner"
station = "st8"
transport = "tcp_server"
listen = "{listen}"
max_connections = 4
terminator = "lf"
accept_reply = "OK\r"
"#
        );
        let agent = Agent::start(&agent_config(&broker.url(), "", &source));

        // Two readers at once, their writes interleaved.
        let mut a = connect_retry(&listen, STARTUP);
        let mut b = connect_retry(&listen, STARTUP);
        let (codes_a, codes_b) = (codes("PUSH-A", 1..=50), codes("PUSH-B", 1..=50));
        for (ca, cb) in codes_a.chunks(5).zip(codes_b.chunks(5)) {
            assert!(
                a.send(
                    ca.iter()
                        .map(|c| format!("{c}\n"))
                        .collect::<String>()
                        .as_bytes()
                )
            );
            assert!(
                b.send(
                    cb.iter()
                        .map(|c| format!("{c}\n"))
                        .collect::<String>()
                        .as_bytes()
                )
            );
        }
        for (reader, n) in [(&a, 50), (&b, 50)] {
            assert!(
                reader.wait_count(b"OK\r", n, Duration::from_secs(10)),
                "{}",
                agent.log_tail(30)
            );
        }

        assert!(
            sub.wait_for(100, Duration::from_secs(10)),
            "events: {}\n{}",
            sub.events().len(),
            agent.log_tail(30)
        );
        let delivery = Delivery::analyze(&sub.messages());
        delivery.assert_complete(1..=100);
        delivery.assert_ordered_per_source();
        // Each reader's codes keep the order it sent them in.
        let seq_of: BTreeMap<String, u64> = delivery
            .arrivals
            .iter()
            .map(|r| (r.event["code"]["text"].as_str().unwrap().to_string(), r.seq))
            .collect();
        for sent in [&codes_a, &codes_b] {
            let seqs: Vec<u64> = sent
                .iter()
                .map(|c| *seq_of.get(c).unwrap_or_else(|| panic!("{c} missing")))
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "a reader's codes out of order: {seqs:?}"
            );
        }
        assert!(
            delivery
                .arrivals
                .iter()
                .all(|r| r.topic == format!("{PREFIX}/st8/push1/scan"))
        );
    });
}

#[test]
fn double_reads_inside_the_dedup_window_are_dropped_or_marked() {
    bounded(LIMIT, || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let (drop_at, mark_at) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let source = |id: &str, listen: &str, mode: &str| {
            format!(
                r#"[[sources]]
id = "{id}"
type = "scanner"
transport = "tcp_server"
listen = "{listen}"
dedup_window = "30s"
dedup = "{mode}"
accept_reply = "OK\r"
"#
            )
        };
        let sources = source("dd-drop", &drop_at, "drop") + &source("dd-mark", &mark_at, "mark");
        let agent = Agent::start(&agent_config(&broker.url(), "", &sources));

        for at in [&drop_at, &mark_at] {
            let mut reader = connect_retry(at, STARTUP);
            assert!(reader.send(b"DUP-A\r\nDUP-A\r\nDUP-B\r\nDUP-A\r\n"));
            // A double read is still "accepted": the same code was committed moments before.
            assert!(
                reader.wait_count(b"OK\r", 4, Duration::from_secs(10)),
                "{}",
                agent.log_tail(30)
            );
        }

        let mut expected = vec![
            ("dd-drop", "DUP-A", false),
            ("dd-drop", "DUP-B", false),
            ("dd-mark", "DUP-A", false),
            ("dd-mark", "DUP-A", true),
            ("dd-mark", "DUP-B", false),
            ("dd-mark", "DUP-A", true),
        ];
        assert!(
            sub.wait_for(6, Duration::from_secs(10)),
            "{:?}",
            sub.events()
        );
        let delivery = Delivery::analyze(&sub.messages());
        delivery.assert_complete(1..=6);
        let mut got: Vec<(&str, &str, bool)> = delivery
            .arrivals
            .iter()
            .map(|r| {
                let e = &r.event;
                (
                    e["source"].as_str().unwrap(),
                    e["code"]["text"].as_str().unwrap(),
                    e["duplicate"] == true,
                )
            })
            .collect();
        // Each source keeps its own order; the two sources interleave freely.
        got.sort_by_key(|(source, ..)| *source);
        expected.sort_by_key(|(source, ..)| *source);
        assert_eq!(got, expected);
    });
}
