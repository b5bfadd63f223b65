//! Both MQTT versions, as a consumer sees them:
//! - `protocol = "3.1.1"`: every event arrives, complete and in order, and a context command
//!   with the 3.1.1 reply convention (`reply_to` and `correlation_id` in the body) is answered
//!   there;
//! - MQTT 5 (the default where the broker speaks it): each event carries its `id`, `seq` and
//!   `schema` as user properties, equal to the payload's, with content type `application/json`;
//!   heartbeats expire after two intervals.

use std::time::Duration;

use tracegate_tests::mqtt::{Subscriber5, publish_v4};
use tracegate_tests::{
    Agent, Mosquitto, PREFIX, Subscriber, agent_config, bounded, wait_all_delivered, wait_until,
};

const LONG: Duration = Duration::from_secs(15);

fn simulator(count: u64) -> String {
    format!(
        "[[sources]]\nid = \"sim1\"\ntype = \"simulator\"\nstation = \"st1\"\nrate = 200.0\n\
         count = {count}\nnoread_ratio = 0.0\ninvalid_ratio = 0.0\n"
    )
}

#[test]
fn mqtt_3_1_1_events_arrive_complete_and_in_order_and_commands_get_their_reply() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), "#");
        let config = format!(
            "{}\n[context]\nkeys = [\"work_order\"]\n",
            agent_config(&broker.url(), "", &simulator(200))
        )
        .replacen("[mqtt]\n", "[mqtt]\nprotocol = \"3.1.1\"\n", 1);
        let agent = Agent::start(&config);
        agent.wait_log("connected to the MQTT broker", 1, LONG);
        let log = agent.stderr_text();
        assert!(
            log.contains("protocol=V311") && !log.contains("protocol=V5"),
            "the agent spoke MQTT 3.1.1 only:\n{}",
            agent.log_tail(20)
        );
        sub.wait_online(&agent, LONG);

        // A 3.1.1 client has no response topic: reply_to and correlation_id ride in the body.
        publish_v4(
            broker.port(),
            &format!("{PREFIX}/cmd/context"),
            br#"{"set": {"work_order": "WO-311"}, "reply_to": "mes/l1/replies", "correlation_id": "c-311"}"#,
        );
        wait_until(
            "the reply on mes/l1/replies",
            LONG,
            || sub.messages().iter().any(|m| m.topic == "mes/l1/replies"),
            || agent.log_tail(20),
        );
        let reply = sub
            .messages()
            .into_iter()
            .find(|m| m.topic == "mes/l1/replies")
            .unwrap()
            .json();
        assert_eq!(reply["accepted"], true, "{reply}");
        assert_eq!(reply["correlation_id"], "c-311", "{reply}");
        assert_eq!(reply["revision"], 1, "{reply}");
        assert_eq!(reply["context"]["work_order"], "WO-311", "{reply}");
        tracegate_tests::delivery::assert_valid_against(&reply, "context-reply.schema.json");

        // Every event, schema-valid, gap-free and in seq order per source.
        let (last, _) = wait_all_delivered(&agent, &sub);
        assert_eq!(last, 200);
    });
}

#[test]
fn mqtt_5_events_carry_id_seq_and_schema_as_user_properties_with_a_json_content_type() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber5::connect(broker.port(), "tracegate/#");
        let config = format!(
            "{}\n[ops]\nheartbeat = \"1s\"\n",
            agent_config(&broker.url(), "", &simulator(20))
        );
        let agent = Agent::start(&config);
        let is_event = |topic: &str| topic.ends_with("/scan");
        wait_until(
            "20 events and a heartbeat at the MQTT 5 subscriber",
            LONG,
            || {
                let m = sub.messages();
                m.iter().filter(|m| is_event(&m.topic)).count() >= 20
                    && m.iter().any(|m| m.topic.ends_with("/status/heartbeat"))
            },
            || agent.log_tail(20),
        );
        assert!(agent.stderr_text().contains("protocol=V5"));
        let messages = sub.messages();
        let mut seqs = Vec::new();
        for m in messages.iter().filter(|m| is_event(&m.topic)) {
            let event = m.json();
            let seq = event["seq"].as_u64().unwrap();
            seqs.push(seq);
            assert_eq!(m.user("id"), event["id"].as_str(), "seq {seq}: {m:?}");
            assert_eq!(
                m.user("seq"),
                Some(seq.to_string().as_str()),
                "seq {seq}: {m:?}"
            );
            assert_eq!(m.user("schema"), Some("tracegate.event/1"), "{m:?}");
            assert_eq!(m.content_type.as_deref(), Some("application/json"));
            assert_eq!(m.payload_format, Some(1), "UTF-8 payload: {m:?}");
        }
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());

        let status = messages
            .iter()
            .find(|m| m.topic == format!("{PREFIX}/status"))
            .expect("the retained status");
        assert_eq!(status.content_type.as_deref(), Some("application/json"));
        let heartbeat = messages
            .iter()
            .find(|m| m.topic.ends_with("/status/heartbeat"))
            .unwrap();
        assert!(
            matches!(heartbeat.expiry_secs, Some(1..=2)),
            "a heartbeat expires after two intervals: {heartbeat:?}"
        );
    });
}
