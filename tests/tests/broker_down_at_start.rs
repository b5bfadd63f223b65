//! The agent starts while no broker listens: scans are accepted into the queue anyway, and all
//! of them go out, in order, once the broker comes.
//!
//! The subscriber must not miss what the agent publishes in the first milliseconds after the
//! broker appears, so its session is created first: a persistent broker is started, the
//! subscriber subscribes (clean_session = false), and the broker is stopped with SIGTERM, which
//! saves that session. When the broker starts again on the same port it already holds the
//! subscription and queues every event for the subscriber, however fast the agent reconnects.

use std::time::Duration;

use tracegate_tests::{
    ALL_TOPICS, Agent, Delivery, Mosquitto, Subscriber, agent_config, bounded, wait_until,
};

const N: u64 = 200;

#[test]
fn scans_taken_while_the_broker_is_down_all_arrive_once_it_is_up() {
    bounded(Duration::from_secs(90), || {
        let mut broker = Mosquitto::start_persistent();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        broker.stop();

        let source = format!(
            r#"[[sources]]
id = "sim1"
type = "simulator"
station = "st1"
validation = "gs1"
aim = true
rate = 500.0
count = {N}
noread_ratio = 0.05
invalid_ratio = 0.05
"#
        );
        let agent = Agent::start(&agent_config(&broker.url(), "", &source));

        let stats = agent.wait_queue(&format!("depth {N}"), Duration::from_secs(20), |s| {
            s.depth == N
        });
        assert_eq!(
            (stats.next_seq, stats.oldest_seq, stats.dropped_total),
            (N + 1, Some(1), 0),
            "{stats:?}"
        );
        assert!(
            !stats.full && stats.overflow == "block" && stats.bytes > 0,
            "{stats:?}"
        );
        assert!(stats.oldest_age_ms.is_some_and(|age| age >= 0), "{stats:?}");
        assert!(
            sub.events().is_empty(),
            "nothing can have arrived without a broker"
        );

        broker.restart();
        wait_until(
            &format!("seqs 1..={N} at the subscriber"),
            Duration::from_secs(30),
            || sub.missing(1..=N).is_empty(),
            || {
                format!(
                    "received {} events\n{}",
                    sub.events().len(),
                    agent.log_tail(30)
                )
            },
        );
        let delivery = Delivery::analyze(&sub.messages());
        delivery.assert_complete(1..=N);
        delivery.assert_ordered_per_source();

        let stats = agent.wait_queue("an empty queue", Duration::from_secs(10), |s| s.depth == 0);
        assert_eq!(
            (stats.next_seq, stats.oldest_seq, stats.bytes),
            (N + 1, None, 0),
            "{stats:?}"
        );
    });
}
