//! Operating the agent: systemd notify and watchdog over a real datagram socket, Prometheus
//! metrics and health over TCP, `tracegate status` over the control socket, and `queue
//! export/peek/replay`.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracegate_tests::http::http_get;
use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, Subscriber, agent_config, bounded, free_port, wait_all_delivered,
    wait_until,
};

fn simulator(count: u64) -> String {
    format!(
        "[[sources]]\nid = \"sim1\"\ntype = \"simulator\"\nstation = \"st1\"\nrate = 200.0\ncount = {count}\nnoread_ratio = 0.0\ninvalid_ratio = 0.0\n"
    )
}

/// Datagrams received on `sock` within `within`, as text.
fn receive(sock: &UnixDatagram, within: Duration) -> Vec<String> {
    receive_until(sock, within, |_| false)
}

/// Datagrams received on `sock` until one satisfies `done` or `within` passes.
fn receive_until(
    sock: &UnixDatagram,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let stop = done(&text);
                out.push(text);
                if stop {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out
}

#[test]
fn systemd_hears_ready_watchdog_pings_and_stopping() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let config = agent_config(&broker.url(), "", &simulator(5));
        let mut agent = Agent::start_with_env(
            &config,
            &[
                ("NOTIFY_SOCKET", path.to_str().unwrap()),
                ("WATCHDOG_USEC", "400000"),
            ],
        );
        let first = receive_until(&sock, Duration::from_secs(10), |m| m.contains("READY=1"));
        let all = first.join("\n");
        assert!(
            all.contains("READY=1"),
            "no READY=1 within 10s: {first:?}\n{}",
            agent.log_tail(20)
        );
        // Pings at half the 400 ms interval.
        let pings = receive(&sock, Duration::from_millis(1500));
        let count = pings.iter().filter(|m| m.contains("WATCHDOG=1")).count();
        assert!(
            count >= 3,
            "expected watchdog pings every 200ms, got {pings:?}"
        );
        // A frozen agent stops pinging (systemd would restart it); thawed, it pings again.
        agent.signal(Signal::SIGSTOP);
        let _ = receive(&sock, Duration::from_millis(100));
        let frozen = receive(&sock, Duration::from_millis(800));
        assert!(
            frozen.iter().all(|m| !m.contains("WATCHDOG=1")),
            "pings while stopped: {frozen:?}"
        );
        agent.signal(Signal::SIGCONT);
        let thawed = receive_until(&sock, Duration::from_millis(1500), |m| {
            m.contains("WATCHDOG=1")
        });
        assert!(
            thawed.iter().any(|m| m.contains("WATCHDOG=1")),
            "no pings after SIGCONT: {thawed:?}"
        );
        agent.terminate();
        let last = receive_until(&sock, Duration::from_secs(2), |m| m.contains("STOPPING=1"));
        assert!(
            last.iter().any(|m| m.contains("STOPPING=1")),
            "no STOPPING=1: {last:?}"
        );
    });
}

#[test]
fn metrics_health_and_status_tell_what_happened() {
    bounded(Duration::from_secs(60), || {
        let mut broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let listen = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "{}\n[ops]\nlisten = \"{listen}\"\nheartbeat = \"1s\"\n",
            agent_config(&broker.url(), "", &simulator(50))
        );
        let agent = Agent::start(&config);
        assert!(sub.wait_for_seqs(1..=50, Duration::from_secs(10)));
        wait_all_delivered(&agent, &sub);

        let (code, metrics) = http_get(&listen, "/metrics");
        assert_eq!(code, 200);
        for line in [
            "tracegate_events_captured_total{source=\"sim1\",kind=\"scan\"} 50",
            "tracegate_events_committed_total{source=\"sim1\"} 50",
            "tracegate_events_published_total{source=\"sim1\"} 50",
            "tracegate_queue_depth_events 0",
            "tracegate_mqtt_connected 1",
            "tracegate_device_connected{source=\"sim1\"} 1",
            "tracegate_device_disconnects_total{source=\"sim1\"} 0",
            "tracegate_scan_to_commit_seconds_count 50",
        ] {
            assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
        }
        let (code, body) = http_get(&listen, "/health/live");
        assert_eq!((code, body.contains("true")), (200, true), "{body}");
        let (code, body) = http_get(&listen, "/health/ready");
        assert_eq!(code, 200, "{body}");
        assert_eq!(http_get(&listen, "/nothing").0, 404);

        let (code, out, err) = agent.cli(&["status", "--json"]);
        assert_eq!(code, 0, "{err}");
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(status["ready"], true);
        assert_eq!(status["broker"]["connected"], true);
        assert_eq!(status["sources"][0]["published"], 50);
        assert_eq!(status["queue"]["depth"], 0);
        assert!(status["revision"].as_str().is_some_and(|r| !r.is_empty()));

        // The heartbeat is on MQTT too.
        assert!(sub.wait_until(Duration::from_secs(5), |m| {
            m.iter().any(|x| x.topic.ends_with("/status/heartbeat"))
        }));

        // Without a broker: an alarm, and still ready (scans are taken into the queue).
        broker.kill();
        wait_until(
            "the broker alarm",
            Duration::from_secs(10),
            || {
                agent
                    .cli(&["status"])
                    .1
                    .contains("ALARM      not connected to the MQTT broker")
            },
            || agent.cli(&["status"]).1,
        );
        assert_eq!(http_get(&listen, "/health/ready").0, 200);
        let (code, text, _) = agent.cli(&["status"]);
        assert_eq!(code, 0);
        assert!(text.contains("broker     DISCONNECTED"), "{text}");
    });
}

#[test]
fn status_without_a_running_agent_says_so() {
    let broker_url = format!("mqtt://127.0.0.1:{}", free_port());
    let mut agent = Agent::start(&agent_config(&broker_url, "", &simulator(1)));
    agent.kill9();
    let (code, _, err) = agent.cli(&["status"]);
    assert_eq!(code, 1);
    assert!(err.contains("no agent is listening"), "{err}");
}

#[test]
fn delivered_events_can_be_exported_and_replayed_byte_identical() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let agent = Agent::start(&agent_config(&broker.url(), "", &simulator(20)));
        assert!(sub.wait_for_seqs(1..=20, Duration::from_secs(10)));
        let (last, _) = wait_all_delivered(&agent, &sub);
        assert_eq!(last, 20);

        let (code, out, err) = agent.cli(&["queue", "export", "--since", "1h"]);
        assert_eq!(code, 0, "{err}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 20);
        assert!(lines.iter().all(|l| l["state"] == "published"));
        assert_eq!(lines[4]["event"]["seq"], 5);
        let (code, out, _) = agent.cli(&["queue", "peek"]);
        assert_eq!((code, out.as_str()), (0, ""), "nothing is undelivered");

        let (code, out, err) = agent.cli(&["queue", "replay", "--from-seq", "11"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with("10 delivered events queued again"), "{out}");
        wait_until(
            "seqs 11..=20 twice",
            Duration::from_secs(10),
            || {
                (11..=20).all(|s| {
                    sub.event_messages()
                        .iter()
                        .filter(|m| m.seq == Some(s))
                        .count()
                        == 2
                })
            },
            || format!("{} messages", sub.messages().len()),
        );
        let messages = sub.event_messages();
        for seq in 11..=20 {
            let copies: Vec<_> = messages.iter().filter(|m| m.seq == Some(seq)).collect();
            assert_eq!(
                copies[0].payload, copies[1].payload,
                "seq {seq} replayed with other bytes"
            );
        }
        assert_eq!(
            messages
                .iter()
                .filter(|m| m.seq.is_some_and(|s| s <= 10))
                .count(),
            10
        );
    });
}
