//! Line context from MES: commands accepted and answered (MQTT 5 response topic and
//! correlation data; the reply_to / correlation_id convention for 3.1.1), rejected with a
//! reason and no change, stored across restarts, and stamped on every event by capture time.

use std::time::Duration;

use serde_json::Value;
use tracegate_tests::mqtt::{publish_v4, publish_v5};
use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, PREFIX, Subscriber, agent_config, bounded, wait_until,
};

fn config(url: &str, rate: f64, count: u64) -> String {
    let sources = format!(
        "[[sources]]\nid = \"sim1\"\ntype = \"simulator\"\nstation = \"st1\"\nrate = {rate:.1}\ncount = {count}\nnoread_ratio = 0.0\ninvalid_ratio = 0.0\n"
    );
    format!(
        "{}\n[context]\nkeys = [\"work_order\", \"batch\"]\n[context.stations]\nst1 = [\"work_order\"]\n",
        agent_config(url, "", &sources)
    )
}

/// Waits for the agent's retained "online" status: it is published after the command
/// subscription, on the same connection, so commands sent from then on reach the agent.
fn wait_online(sub: &Subscriber, n: usize) {
    wait_until(
        "the agent online",
        Duration::from_secs(10),
        || {
            sub.status_messages()
                .iter()
                .filter(|s| s["state"] == "online")
                .count()
                >= n
        },
        || format!("{:?}", sub.status_messages()),
    );
}

fn command_topic() -> String {
    format!("{PREFIX}/cmd/context")
}

/// The replies seen on `topic`, as JSON.
fn replies(sub: &Subscriber, topic: &str) -> Vec<Value> {
    sub.messages()
        .iter()
        .filter(|m| m.topic == topic)
        .map(|m| m.json())
        .collect()
}

fn wait_replies(sub: &Subscriber, topic: &str, n: usize) -> Vec<Value> {
    wait_until(
        &format!("{n} replies on {topic}"),
        Duration::from_secs(10),
        || replies(sub, topic).len() >= n,
        || format!("{:?}", replies(sub, topic)),
    );
    replies(sub, topic)
}

#[test]
fn commands_are_answered_accepted_or_rejected_with_a_reason() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), "#");
        let agent = Agent::start(&config(&broker.url(), 1.0, 1));
        wait_online(&sub, 1);

        // MQTT 5: response topic and correlation data.
        publish_v5(
            broker.port(),
            &command_topic(),
            br#"{"set": {"work_order": "WO-1", "batch": "L-1"}}"#,
            Some("mes/replies"),
            Some(b"req-1"),
        );
        let r = &wait_replies(&sub, "mes/replies", 1)[0];
        assert_eq!(r["accepted"], true, "{r}");
        assert_eq!(r["revision"], 1);
        assert_eq!(r["correlation_id"], "req-1");
        assert_eq!(r["context"]["work_order"], "WO-1");

        // MQTT 3.1.1: the reply_to / correlation_id convention, or the default reply topic.
        let default_reply = format!("{PREFIX}/cmd/context/reply");
        publish_v4(
            broker.port(),
            &command_topic(),
            br#"{"set": {"batch": "L-2"}, "reply_to": "mes/r2", "correlation_id": "c2"}"#,
        );
        let r = &wait_replies(&sub, "mes/r2", 1)[0];
        assert_eq!(
            (
                r["accepted"].clone(),
                r["revision"].clone(),
                r["correlation_id"].clone()
            ),
            (true.into(), 2.into(), "c2".into())
        );
        let rejects: [(&[u8], &str); 5] = [
            (
                br#"{"set": {"colour": "red"}, "correlation_id": "k"}"#,
                "not allowed",
            ),
            (
                br#"{"set": {"work_order": 7}, "correlation_id": "s"}"#,
                "not a valid context command",
            ),
            (b"{not json", "not a valid context command"),
            (
                br#"{"station": "st1", "set": {"batch": "x"}}"#,
                "not allowed for station st1",
            ),
            (br#"{"station": "st9", "set": {"work_order": "x"}}"#, "st9"),
        ];
        for (payload, _) in &rejects {
            publish_v4(broker.port(), &command_topic(), payload);
        }
        let got = wait_replies(&sub, &default_reply, rejects.len());
        for (reply, (_, why)) in got.iter().zip(rejects.iter()) {
            assert_eq!(reply["accepted"], false, "{reply}");
            assert!(
                reply["reason"].as_str().unwrap().contains(why),
                "{reply} should say {why}"
            );
            assert!(reply.get("revision").is_none());
        }
        assert_eq!(
            got[0]["correlation_id"], "k",
            "a rejection still carries the correlation id"
        );
        for reply in sub.messages().iter().filter(|m| m.topic.contains("repl")) {
            tracegate_tests::delivery::assert_valid_against(
                &reply.json(),
                "context-reply.schema.json",
            );
        }

        // Nothing changed: revision 2, as the retained status says too.
        let (_, out, _) = agent.cli(&["status", "--json"]);
        let status: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(status["context"]["revision"], 2);
        assert_eq!(
            status["context"]["line"],
            serde_json::json!({"work_order": "WO-1", "batch": "L-2"})
        );
        let retained: Vec<Value> = sub.status_messages();
        assert!(
            retained.iter().any(|s| s["context"]["revision"] == 2),
            "{retained:?}"
        );
    });
}

#[test]
fn the_context_survives_a_restart_and_is_stamped_on_later_events() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let mut agent = Agent::start(&config(&broker.url(), 50.0, 100_000));
        wait_online(&sub, 1);
        publish_v4(
            broker.port(),
            &command_topic(),
            br#"{"set": {"work_order": "WO-7"}}"#,
        );
        publish_v4(
            broker.port(),
            &command_topic(),
            br#"{"station": "st1", "set": {"work_order": "WO-7-st1"}}"#,
        );
        agent.wait_log(
            "line context changed by command",
            2,
            Duration::from_secs(10),
        );
        agent.kill9();
        let before = sub.events().len();
        agent.restart();
        wait_until(
            "events after the restart",
            Duration::from_secs(10),
            || sub.events().len() > before + 20,
            String::new,
        );
        let after: Vec<Value> = sub.events().into_iter().skip(before + 10).collect();
        for e in &after {
            assert_eq!(e["context_rev"], 2, "{e}");
            // The station's own value overrides the line's.
            assert_eq!(e["context"]["work_order"], "WO-7-st1", "{e}");
        }
    });
}

#[test]
fn under_load_every_event_carries_the_context_of_its_capture_time() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let agent = Agent::start(&config(&broker.url(), 300.0, 100_000));
        wait_online(&sub, 1);
        for n in 1..=5 {
            let cmd = format!(r#"{{"set": {{"work_order": "WO-{n}", "batch": "B-{n}"}}}}"#);
            publish_v4(broker.port(), &command_topic(), cmd.as_bytes());
            agent.wait_log(
                "line context changed by command",
                n,
                Duration::from_secs(10),
            );
            std::thread::sleep(Duration::from_millis(150));
        }
        std::thread::sleep(Duration::from_millis(300));
        let events = sub.events();
        assert!(events.len() > 200, "only {} events", events.len());
        let mut last_rev = 0;
        let mut seen = std::collections::BTreeSet::new();
        let mut by_seq: Vec<&Value> = events.iter().collect();
        by_seq.sort_by_key(|e| e["seq"].as_u64());
        for e in by_seq {
            let rev = e["context_rev"].as_u64().unwrap_or(0);
            assert!(
                rev >= last_rev,
                "revision went back from {last_rev} to {rev} at seq {}",
                e["seq"]
            );
            last_rev = rev;
            seen.insert(rev);
            if rev > 0 {
                assert_eq!(e["context"]["work_order"], format!("WO-{rev}"), "{e}");
                assert_eq!(e["context"]["batch"], format!("B-{rev}"), "{e}");
            } else {
                assert!(e.get("context").is_none(), "{e}");
            }
        }
        assert_eq!(
            seen,
            (0..=5).collect(),
            "every revision stamped on some events"
        );
    });
}
