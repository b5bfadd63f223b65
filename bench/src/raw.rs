//! The raw ceiling: a plain rumqttc QoS 1 publisher (no queue, no disk), same client library
//! and window as the agent (inflight 64, TCP_NODELAY), publishing the agent's own payload
//! bytes (only the serial differs) to the same broker, measured by the same subscriber.
//!
//! It sends the messages the agent sends: over MQTT 5 (the agent's default) with the agent's
//! properties (user properties `id`, `seq` and `schema`, content type and payload format),
//! over 3.1.1 the bare payload. The properties cost the client and the broker per message, so
//! a ceiling without them would not be the ceiling of the agent's traffic.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::{Client, Event, MqttOptions, NetworkOptions, Packet, QoS, v5};

use crate::reader::set_seq;
use crate::util::now_ns;

pub struct RawRun {
    pub first_publish_ns: u64,
    pub last_ack_ns: u64,
    pub acks: u64,
}

/// Publishes `n` messages (seqs `first_seq..`) on `topic` with `payload` as the template, over
/// MQTT 5 with the agent's properties when `v5`, else over 3.1.1.
#[allow(clippy::too_many_arguments)]
pub fn publish(
    port: u16,
    topic: &str,
    payload: &[u8],
    first_seq: u64,
    n: u64,
    inflight: u16,
    v5: bool,
    timeout: Duration,
) -> Result<RawRun, String> {
    if v5 {
        return publish_v5(port, topic, payload, first_seq, n, inflight, timeout);
    }
    let mut o = MqttOptions::new(format!("tgbench-raw-{first_seq}"), "127.0.0.1", port);
    o.set_clean_session(true);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(inflight);
    o.set_max_packet_size(1024 * 1024, 1024 * 1024);
    // The agent's request channel: inflight + 16.
    let (client, mut connection) = Client::new(o, usize::from(inflight) + 16);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    connection.eventloop.set_network_options(net);
    let seen = |e: Result<Event, rumqttc::ConnectionError>| match e {
        Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::ConnAck,
        Ok(Event::Incoming(Packet::PubAck(_))) => Seen::PubAck,
        Ok(_) => Seen::Other,
        Err(_) => Seen::Failed,
    };
    let run = publish_all(
        payload,
        first_seq,
        n,
        timeout,
        move |deadline, connected| count_acks(connection.iter().map(seen), n, deadline, connected),
        |p, _| client.publish(topic, QoS::AtLeastOnce, false, p).is_ok(),
    );
    let _ = client.try_disconnect();
    run
}

/// [`publish`] over MQTT 5, each message with the properties the agent gives an event.
fn publish_v5(
    port: u16,
    topic: &str,
    payload: &[u8],
    first_seq: u64,
    n: u64,
    inflight: u16,
    timeout: Duration,
) -> Result<RawRun, String> {
    let mut o = v5::MqttOptions::new(format!("tgbench-raw-{first_seq}"), "127.0.0.1", port);
    o.set_clean_start(true);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_outgoing_inflight_upper_limit(inflight);
    o.set_max_packet_size(Some(1024 * 1024));
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    let (client, mut connection) = v5::Client::new(o, usize::from(inflight) + 16);
    let seen = |e: Result<v5::Event, v5::ConnectionError>| match e {
        Ok(v5::Event::Incoming(v5::Incoming::ConnAck(_))) => Seen::ConnAck,
        Ok(v5::Event::Incoming(v5::Incoming::PubAck(_))) => Seen::PubAck,
        Ok(_) => Seen::Other,
        Err(_) => Seen::Failed,
    };
    // The agent's: the event id (a UUID's 36 characters), the seq and the schema.
    let props = |seq: u64| PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        user_properties: vec![
            ("id".into(), format!("00000000-0000-7000-8000-{seq:012x}")),
            ("seq".into(), seq.to_string()),
            ("schema".into(), "tracegate.event/1".into()),
        ],
        ..Default::default()
    };
    let run = publish_all(
        payload,
        first_seq,
        n,
        timeout,
        move |deadline, connected| count_acks(connection.iter().map(seen), n, deadline, connected),
        |p, seq| {
            let qos = v5::mqttbytes::QoS::AtLeastOnce;
            client
                .publish_with_properties(topic, qos, false, p, props(seq))
                .is_ok()
        },
    );
    let _ = client.try_disconnect();
    run
}

/// What the poll thread makes of one event of either protocol's connection.
enum Seen {
    ConnAck,
    PubAck,
    Other,
    Failed,
}

/// Either protocol's run: `poll` counts the PUBACKs on the poll thread ([`count_acks`]);
/// once it saw the CONNACK, `send` publishes the `n` messages, `payload` with seqs
/// `first_seq..`, until it fails.
fn publish_all(
    payload: &[u8],
    first_seq: u64,
    n: u64,
    timeout: Duration,
    poll: impl FnOnce(Instant, mpsc::Sender<()>) -> (u64, u64) + Send + 'static,
    mut send: impl FnMut(Vec<u8>, u64) -> bool,
) -> Result<RawRun, String> {
    let (connected_tx, connected_rx) = mpsc::channel::<()>();
    let deadline = Instant::now() + timeout;
    let poller = std::thread::Builder::new()
        .name("bench-raw-poll".into())
        .spawn(move || poll(deadline, connected_tx))
        .map_err(|e| e.to_string())?;
    connected_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the raw publisher did not connect")?;
    let mut p = payload.to_vec();
    let first = now_ns();
    for i in 0..n {
        let seq = first_seq + i;
        set_seq(&mut p, seq);
        if !send(p.clone(), seq) {
            break;
        }
    }
    let (acks, last) = poller.join().map_err(|_| "raw poll thread panicked")?;
    if acks < n {
        return Err(format!("the raw publisher got {acks} of {n} PUBACKs"));
    }
    Ok(RawRun {
        first_publish_ns: first,
        last_ack_ns: last,
        acks,
    })
}

/// Counts PUBACKs until `n`, a connection error or `deadline`; tells `connected` at the
/// CONNACK. Returns the count and when the last arrived.
fn count_acks(
    seen: impl Iterator<Item = Seen>,
    n: u64,
    deadline: Instant,
    connected: mpsc::Sender<()>,
) -> (u64, u64) {
    let (mut acks, mut last) = (0u64, 0u64);
    let mut connected = Some(connected);
    for event in seen {
        match event {
            Seen::ConnAck => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(());
                }
            }
            Seen::PubAck => {
                acks += 1;
                last = now_ns();
                if acks == n {
                    break;
                }
            }
            Seen::Other => {}
            Seen::Failed => break,
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    (acks, last)
}
