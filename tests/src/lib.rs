//! Black-box test support for tracegate: the real binary against real peers.
//!
//! # Layout
//!
//! - [`mosquitto`]: a real broker on a free port, killable (SIGKILL), stoppable (SIGTERM) and
//!   restartable on the same port, optionally persistent.
//! - [`subscriber`]: the consumer side: a persistent-session QoS 1 subscriber that records
//!   every message in arrival order and reconnects by itself.
//! - [`agent`]: `tracegate run` as a child process with its config and queue in a temporary
//!   folder; `tracegate check` and `tracegate queue stats --json`.
//! - [`reader`]: the test as a barcode reader: a pseudo-terminal pair or TCP, either direction.
//! - [`plc`]: the test as a PLC: an in-process Modbus TCP or RTU (pty) server with the code
//!   handshake's register map, recording reads and writes.
//! - [`opcua`]: the test as a PLC with an in-process OPC UA server (async-opcua) holding the
//!   handshake's nodes, stoppable and restartable on the same port.
//! - [`http`]: GET the agent's /metrics and /health; [`mqtt`]: one-shot publishes standing in
//!   for MES (MQTT 5 with properties, and 3.1.1) and an MQTT 5 subscriber that keeps each
//!   message's properties.
//! - [`delivery`]: what a consumer can prove: schema-valid payloads, byte-identical copies,
//!   complete seqs, order per source.
//! - [`tls`]: a test PKI (CA, broker and client certificates) made with rcgen.
//! - [`wait`]: bounded waiting, free ports, and the per-test ceiling [`bounded`].
//! - [`process`]: children that die with the test.
//! - [`proxy`]: a TCP proxy that can cut every connection and delay traffic; [`chaos`]: the
//!   chaos harness (kills, broker restarts, cuts) behind tests/tests/chaos.rs.
//!
//! The binary is `target/debug/tracegate`: build it first (`cargo build -p tracegate`;
//! scripts/test does). mosquitto must be installed; nothing is skipped without it.

pub mod agent;
pub mod chaos;
pub mod delivery;
pub mod http;
pub mod mosquitto;
pub mod mqtt;
pub mod opcua;
pub mod plc;
pub mod process;
pub mod proxy;
pub mod reader;
pub mod subscriber;
pub mod tls;
pub mod wait;

pub use agent::{Agent, CONFIG_FILE, QueueStats, check, check_file, check_with_files};
pub use delivery::{Delivery, assert_schema_valid};
pub use mosquitto::Mosquitto;
pub use reader::{FakeReader, Presented, ReaderListener, Reply, connect_retry, present_codes};
pub use subscriber::{Message, Subscriber};
pub use wait::{bounded, free_port, poll_until, wait_until};

/// An agent config: `[agent]` (id `t1`, site `plant`, line `l1`), `[store]` with
/// `path = "queue.db"` plus `store_extra` lines, `[mqtt]` on `mqtt_url` with quick reconnects,
/// then `sources` (the `[[sources]]` tables) verbatim.
pub fn agent_config(mqtt_url: &str, store_extra: &str, sources: &str) -> String {
    format!(
        r#"[agent]
id = "t1"
site = "plant"
line = "l1"

[store]
path = "queue.db"
commit_window = "5ms"
{store_extra}

[mqtt]
url = "{mqtt_url}"
qos = 1
keepalive = "5s"
inflight = 64
reconnect_min = "100ms"
reconnect_max = "1s"

{sources}"#
    )
}

/// The topic filter that sees everything an agent built by [`agent_config`] publishes.
pub const ALL_TOPICS: &str = "tracegate/#";

/// The topic prefix of an agent built by [`agent_config`].
pub const PREFIX: &str = "tracegate/plant/l1";

/// Waits until the agent's queue is empty and every seq it ever assigned (1 ..= `queue stats`
/// next_seq − 1) reached `sub`; then checks them all ([`Delivery::analyze`]: schema, identical
/// copies), completeness and order per source. Returns the last seq and the delivery.
pub fn wait_all_delivered(agent: &Agent, sub: &Subscriber) -> (u64, Delivery) {
    let timeout = std::time::Duration::from_secs(30);
    let stats = agent.wait_queue("an empty queue", timeout, |s| s.depth == 0);
    let last = stats.next_seq - 1;
    wait_until(
        &format!("seqs 1..={last} at the subscriber"),
        timeout,
        || sub.missing(1..=last).is_empty(),
        || {
            format!(
                "missing {}\n{}",
                delivery::compress(&sub.missing(1..=last)),
                agent.log_tail(30)
            )
        },
    );
    let delivery = Delivery::analyze(&sub.messages());
    delivery.assert_complete(1..=last);
    delivery.assert_ordered_per_source();
    (last, delivery)
}
