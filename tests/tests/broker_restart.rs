//! The broker goes away twice while scans stream in (simulator, 250/s), and comes back on the
//! same port.
//!
//! What the agent guarantees is delivery *to the broker*: a row leaves the queue only on
//! PUBACK, and after every reconnect every unacknowledged row is published again. What the
//! subscriber sees also depends on the broker keeping what it acknowledged, so the two ways a
//! broker can go away get different, each strongest-true, assertions:
//!
//! - **SIGTERM** (a clean stop) with persistence on: mosquitto saves everything it acknowledged,
//!   including the messages queued for the subscriber's persistent session, and loads it again.
//!   Nothing may be missing: every seq 1..=N arrives, copies byte-identical, in order.
//! - **SIGKILL**: mosquitto loses whatever it acknowledged to the agent but had not yet
//!   forwarded to the subscriber. That loss is the broker's, not the agent's, and it can only
//!   concern seqs *between* the last one the subscriber got from the dead broker and the first
//!   one the agent republished to the new one (everything unacknowledged). So: every missing seq
//!   must lie in such a window at one of the kills, and everything else arrives. For the first
//!   seq after a restart to be observable, the subscriber's session (with its subscription)
//!   must exist the moment the broker is up again: the broker persists it at a clean stop before
//!   the stream starts, and never autosaves, so each SIGKILL restart comes back with it.

use std::collections::BTreeMap;
use std::time::Duration;

use tracegate_tests::delivery::compress;
use tracegate_tests::{
    ALL_TOPICS, Agent, Delivery, Message, Mosquitto, Subscriber, agent_config, bounded, wait_until,
};

const N: u64 = 2000;

fn start_agent(broker: &Mosquitto) -> Agent {
    let source = format!(
        r#"[[sources]]
id = "sim1"
type = "simulator"
station = "st1"
validation = "gs1"
aim = true
rate = 250.0
count = {N}
"#
    );
    Agent::start(&agent_config(&broker.url(), "", &source))
}

/// Takes the broker away (with `down`) when the subscriber has seen `at` events, waits until the
/// agent has queued at least 50 events meanwhile, then restarts the broker on the same port.
fn outage(
    broker: &mut Mosquitto,
    sub: &Subscriber,
    agent: &Agent,
    at: usize,
    down: fn(&mut Mosquitto),
) {
    assert!(
        sub.wait_for(at, Duration::from_secs(30)),
        "{} events\n{}",
        sub.events().len(),
        agent.log_tail(30)
    );
    down(broker);
    agent.wait_queue(
        "a backlog while the broker is away",
        Duration::from_secs(10),
        |s| s.depth >= 50,
    );
    broker.restart();
}

/// Waits until the simulator is done, the queue is empty and seq N reached the subscriber.
fn wait_end(sub: &Subscriber, agent: &Agent) -> Delivery {
    agent.wait_log("simulator finished its count", 1, Duration::from_secs(60));
    let stats = agent.wait_queue("an empty queue", Duration::from_secs(30), |s| s.depth == 0);
    assert_eq!(
        stats.next_seq,
        N + 1,
        "one seq per simulated scan: {stats:?}"
    );
    wait_until(
        &format!("seq {N} at the subscriber"),
        Duration::from_secs(30),
        || sub.missing(N..=N).is_empty(),
        || agent.log_tail(30),
    );
    Delivery::analyze(&sub.messages())
}

#[test]
fn broker_stopped_cleanly_twice_loses_nothing() {
    bounded(Duration::from_secs(120), || {
        let mut broker = Mosquitto::start_persistent();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let agent = start_agent(&broker);

        outage(&mut broker, &sub, &agent, 500, Mosquitto::stop);
        outage(&mut broker, &sub, &agent, 1200, Mosquitto::stop);

        let delivery = wait_end(&sub, &agent);
        delivery.assert_complete(1..=N);
        delivery.assert_ordered_per_source();
        eprintln!(
            "SIGTERM: {N} events, {} arrived more than once",
            delivery.duplicated()
        );
    });
}

#[test]
fn broker_killed_twice_loses_only_what_it_had_acknowledged() {
    bounded(Duration::from_secs(120), || {
        let mut broker = Mosquitto::start_persistent();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        // Save the subscriber's session: every SIGKILL restart comes back with it.
        broker.stop();
        broker.restart();
        assert!(
            sub.wait_until(Duration::from_secs(10), |_| sub.connections() >= 2),
            "subscriber reconnected"
        );
        let agent = start_agent(&broker);

        outage(&mut broker, &sub, &agent, 500, Mosquitto::kill);
        outage(&mut broker, &sub, &agent, 1200, Mosquitto::kill);

        let delivery = wait_end(&sub, &agent);
        delivery.assert_ordered_per_source();
        let windows = kill_windows(&sub.messages());
        let missing = delivery.missing(1..=N);
        let unexplained: Vec<u64> = missing
            .iter()
            .copied()
            .filter(|s| !windows.iter().any(|(lo, hi)| lo < s && s < hi))
            .collect();
        assert!(
            unexplained.is_empty(),
            "seqs missing outside the brokers' kill windows {windows:?} (the agent lost them): {}",
            compress(&unexplained)
        );
        assert!(
            windows.len() >= 2,
            "two kills seen by the subscriber: {windows:?}"
        );
        eprintln!(
            "SIGKILL: {N} events, {} lost by the killed brokers ({}), {} arrived more than once",
            missing.len(),
            compress(&missing),
            delivery.duplicated()
        );
    });
}

/// For each reconnect of the subscriber: (highest seq it had received on earlier connections,
/// lowest seq it received on the new one). Seqs strictly between were acknowledged by a broker
/// that died before forwarding them.
fn kill_windows(messages: &[Message]) -> Vec<(u64, u64)> {
    let mut per_connection: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for m in messages.iter().filter(|m| m.is_event()) {
        let seq = m.seq.expect("an event has a seq");
        let e = per_connection.entry(m.connection).or_insert((u64::MAX, 0));
        e.0 = e.0.min(seq);
        e.1 = e.1.max(seq);
    }
    let mut windows = Vec::new();
    let mut max_so_far = 0;
    for (min, max) in per_connection.values() {
        if max_so_far > 0 {
            windows.push((max_so_far, *min));
        }
        max_so_far = max_so_far.max(*max);
    }
    windows
}
