//! Delivery confirmed by the consumer: with [confirm] on, an event the consumer never confirms
//! is published again and stays in the queue; a confirmed one leaves.

use std::time::Duration;

use tracegate_tests::http::http_get;
use tracegate_tests::mqtt::publish_v4;
use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, PREFIX, Subscriber, agent_config, bounded, free_port, wait_until,
};

/// The value of the unlabelled metric `name` in `/metrics` on `listen`.
fn metric(listen: &str, name: &str) -> f64 {
    let (_, text) = http_get(listen, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn unconfirmed_events_are_published_again_and_confirmed_ones_leave() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let sources = "[[sources]]\nid = \"sim1\"\ntype = \"simulator\"\nstation = \"st1\"\nrate = 100.0\ncount = 10\nnoread_ratio = 0.0\ninvalid_ratio = 0.0\n";
        let listen = format!("127.0.0.1:{}", free_port());
        let config = format!(
            "{}\n[confirm]\nenabled = true\nrepublish_after = \"1s\"\nalarm_after = \"1s\"\n\
             [ops]\nlisten = \"{listen}\"\n",
            agent_config(&broker.url(), "", sources)
        );
        let agent = Agent::start(&config);
        assert!(
            sub.wait_for_seqs(1..=10, Duration::from_secs(10)),
            "the first publication"
        );
        // Published, acknowledged by the broker, but not confirmed: still held.
        agent.wait_queue("10 awaiting, none queued", Duration::from_secs(5), |s| {
            s.depth == 0 && s.awaiting == 10
        });
        // The operator sees it in the text too: published, not yet confirmed, and since when.
        let (code, text, err) = agent.cli(&["queue", "stats"]);
        assert_eq!(code, 0, "{err}");
        let awaiting = text
            .lines()
            .find(|l| l.starts_with("awaiting"))
            .unwrap_or_else(|| panic!("no awaiting line in:\n{text}"));
        assert!(
            awaiting.starts_with("awaiting   10 published events, ")
                && awaiting.contains(" unconfirmed (oldest published ")
                && awaiting.ends_with(" ago)"),
            "{text}"
        );
        assert!(text.contains("depth      0 events"), "{text}");
        let json = agent.queue_stats_json();
        assert!(json["awaiting_bytes"].as_u64().unwrap() > 0, "{json}");
        assert!(json["oldest_awaiting_age_ms"].as_i64().is_some(), "{json}");

        // The consumer confirms 1..=5 by range and 6 by id.
        let id6 = sub.events().iter().find(|e| e["seq"] == 6).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let ack = format!(r#"{{"seqs": [[1, 5]], "ids": ["{id6}"]}}"#);
        publish_v4(broker.port(), &format!("{PREFIX}/ack"), ack.as_bytes());
        agent.wait_queue("4 awaiting", Duration::from_secs(5), |s| s.awaiting == 4);
        assert_eq!(metric(&listen, "tracegate_events_confirmed_total"), 6.0);
        assert_eq!(
            metric(&listen, "tracegate_queue_awaiting_confirmation_events"),
            4.0
        );
        assert!(metric(&listen, "tracegate_queue_oldest_unconfirmed_age_seconds") > 0.0);

        // 7..=10 come again (same bytes), 1..=6 do not.
        wait_until(
            "seqs 7..=10 published again",
            Duration::from_secs(10),
            || {
                (7..=10).all(|s| {
                    sub.event_messages()
                        .iter()
                        .filter(|m| m.seq == Some(s))
                        .count()
                        >= 2
                })
            },
            || agent.log_tail(20),
        );
        let msgs = sub.event_messages();
        for seq in 1..=6 {
            assert_eq!(
                msgs.iter().filter(|m| m.seq == Some(seq)).count(),
                1,
                "seq {seq} was confirmed"
            );
        }
        for seq in 7..=10 {
            let copies: Vec<_> = msgs.iter().filter(|m| m.seq == Some(seq)).collect();
            assert!(
                copies.windows(2).all(|w| w[0].payload == w[1].payload),
                "seq {seq} changed"
            );
        }
        let (_, status, _) = agent.cli(&["status"]);
        assert!(
            status.contains("has not confirmed"),
            "lagging confirmation is an alarm:\n{status}"
        );

        publish_v4(broker.port(), &format!("{PREFIX}/ack"), br#"{"up_to": 10}"#);
        agent.wait_queue("nothing awaiting", Duration::from_secs(5), |s| {
            s.awaiting == 0
        });
        assert_eq!(
            metric(&listen, "tracegate_queue_awaiting_confirmation_events"),
            0.0
        );
        assert_eq!(
            metric(&listen, "tracegate_queue_oldest_unconfirmed_age_seconds"),
            0.0
        );
        let stats = agent.queue_stats_json();
        assert_eq!(stats["retained"], 10, "{stats}");
        let (_, text, _) = agent.cli(&["queue", "stats"]);
        assert!(
            text.contains("awaiting   0 published events, 0 B unconfirmed (none waiting)")
                && text.contains("retained   10 confirmed events"),
            "{text}"
        );
    });
}
