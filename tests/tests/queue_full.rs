//! A full queue (no broker, `max_events = 50`), under both overflow policies, seen from the
//! reader (which codes get "OK"), from `queue stats`, and from the subscriber once a broker
//! comes.
//!
//! As in broker_down_at_start.rs, the subscriber's session is created on a persistent broker
//! that is then stopped with SIGTERM, so the restarted broker queues everything for it.

use std::time::Duration;

use tracegate_tests::{
    ALL_TOPICS, Agent, Delivery, FakeReader, Mosquitto, ReaderListener, Subscriber, agent_config,
    bounded, wait_until,
};

const SENT: usize = 80;
const ROOM: u64 = 50;

struct Setup {
    broker: Mosquitto,
    sub: Subscriber,
    agent: Agent,
    reader: FakeReader,
    codes: Vec<String>,
}

/// Broker down (subscriber session saved), agent with a 50-event queue under `overflow`, a
/// reader connected that has sent 80 codes.
fn setup(overflow: &str) -> Setup {
    let mut broker = Mosquitto::start_persistent();
    let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
    broker.stop();
    let listener = ReaderListener::bind();
    let source = format!(
        r#"[[sources]]
id = "rd1"
type = "scanner"
station = "st1"
transport = "tcp_client"
address = "{}"
accept_reply = "OK\r"
"#,
        listener.addr()
    );
    let store = format!("max_events = {ROOM}\noverflow = \"{overflow}\"");
    let agent = Agent::start(&agent_config(&broker.url(), &store, &source));
    let mut reader = listener.accept(Duration::from_secs(15));
    let codes: Vec<String> = (1..=SENT)
        .map(|i| format!("FULL-{overflow}-{i:03}"))
        .collect();
    let bytes: String = codes.iter().map(|c| format!("{c}\r\n")).collect();
    assert!(reader.send(bytes.as_bytes()));
    Setup {
        broker,
        sub,
        agent,
        reader,
        codes,
    }
}

fn wait_for_seqs(
    sub: &Subscriber,
    agent: &Agent,
    range: std::ops::RangeInclusive<u64>,
) -> Delivery {
    wait_until(
        &format!("seqs {range:?} at the subscriber"),
        Duration::from_secs(30),
        || sub.missing(range.clone()).is_empty(),
        || {
            format!(
                "received {} events\n{}",
                sub.events().len(),
                agent.log_tail(30)
            )
        },
    );
    Delivery::analyze(&sub.messages())
}

#[test]
fn block_holds_back_the_reader_until_the_broker_frees_room() {
    bounded(Duration::from_secs(90), || {
        let Setup {
            mut broker,
            sub,
            agent,
            reader,
            codes,
        } = setup("block");

        assert!(
            reader.wait_count(b"OK\r", ROOM as usize, Duration::from_secs(15)),
            "{} OKs\n{}",
            reader.count(b"OK\r"),
            agent.log_tail(30)
        );
        let stats = agent.wait_queue("a full queue", Duration::from_secs(10), |s| s.full);
        assert_eq!(
            (stats.depth, stats.next_seq, stats.dropped_total),
            (ROOM, ROOM + 1, 0),
            "{stats:?}"
        );
        // Nothing more is acknowledged while the queue is full. (A negative can only be
        // observed over a window; the 50 OKs above came well within it.)
        assert!(
            !reader.wait_count(b"OK\r", ROOM as usize + 1, Duration::from_millis(700)),
            "a code was acknowledged although the queue is full: {} OKs",
            reader.count(b"OK\r")
        );
        assert_eq!(
            agent.queue_stats().depth,
            ROOM,
            "block must not grow the queue beyond max_events"
        );

        broker.restart();
        assert!(
            reader.wait_count(b"OK\r", SENT, Duration::from_secs(30)),
            "{} OKs after the broker came\n{}",
            reader.count(b"OK\r"),
            agent.log_tail(30)
        );
        let delivery = wait_for_seqs(&sub, &agent, 1..=SENT as u64);
        delivery.assert_complete(1..=SENT as u64);
        delivery.assert_ordered_per_source();
        assert_eq!(
            delivery.code_texts(),
            codes,
            "every code, in the order read"
        );
        agent.wait_queue("an empty queue", Duration::from_secs(10), |s| {
            s.depth == 0 && !s.full
        });
    });
}

#[test]
fn drop_oldest_accepts_everything_and_drops_the_oldest() {
    bounded(Duration::from_secs(90), || {
        let Setup {
            mut broker,
            sub,
            agent,
            reader,
            codes,
        } = setup("drop_oldest");

        assert!(
            reader.wait_count(b"OK\r", SENT, Duration::from_secs(15)),
            "{} OKs\n{}",
            reader.count(b"OK\r"),
            agent.log_tail(30)
        );
        let dropped = SENT as u64 - ROOM;
        let stats = agent.wait_queue("all 80 committed", Duration::from_secs(10), |s| {
            s.next_seq == SENT as u64 + 1
        });
        assert_eq!(
            (
                stats.depth,
                stats.dropped_total,
                stats.oldest_seq,
                stats.full
            ),
            (ROOM, dropped, Some(dropped + 1), true),
            "{stats:?}"
        );

        broker.restart();
        let delivery = wait_for_seqs(&sub, &agent, dropped + 1..=SENT as u64);
        delivery.assert_complete(dropped + 1..=SENT as u64);
        delivery.assert_ordered_per_source();
        assert_eq!(
            delivery.code_texts(),
            codes[dropped as usize..],
            "the newest 50 codes"
        );
        let stats = agent.wait_queue("an empty queue", Duration::from_secs(10), |s| s.depth == 0);
        assert_eq!(stats.dropped_total, dropped, "{stats:?}");
    });
}
