//! An MQTT subscriber standing in for the ERP/MES side: a persistent session (clean_session =
//! false, fixed client id), QoS 1, everything it receives recorded in arrival order. It
//! reconnects by itself when the broker goes away and comes back.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

/// One message as the subscriber received it.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// The broker's retain flag (set on retained messages sent because of a subscription).
    pub retain: bool,
    /// Which of the subscriber's connections brought it (1 for the first; each reconnect, e.g.
    /// after a broker restart, counts up).
    pub connection: u32,
    /// The event's `seq`, read on arrival (None for status messages and non-JSON payloads), so
    /// that waiting for seqs does not parse every payload on every poll.
    pub seq: Option<u64>,
}

impl Message {
    /// True for the agent's retained `<prefix>/status` messages.
    pub fn is_status(&self) -> bool {
        self.topic.ends_with("/status")
    }

    /// True for events: `<prefix>/<station>/<source>/<kind>` with kind `scan`, `noread`,
    /// `invalid` or `alarm` (not status, not `<prefix>/status/heartbeat`).
    pub fn is_event(&self) -> bool {
        !self.topic.contains("/status/")
            && matches!(
                self.topic.rsplit('/').next(),
                Some("scan" | "noread" | "invalid" | "alarm")
            )
    }

    /// The payload as JSON; panics with the payload when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "payload on {} is not JSON ({e}): {}",
                self.topic,
                String::from_utf8_lossy(&self.payload)
            )
        })
    }
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Message>>,
    changed: Condvar,
    subscribed: AtomicBool,
    connections: AtomicU32,
    stop: AtomicBool,
}

/// A subscriber running in its own thread.
pub struct Subscriber {
    client: Client,
    shared: Arc<Shared>,
    filter: String,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

impl Subscriber {
    /// Connects to the broker on 127.0.0.1:`port`, subscribes to `filter` at QoS 1 and returns
    /// once the broker has confirmed the subscription (panics after 10 s).
    pub fn connect(port: u16, filter: &str) -> Subscriber {
        let id = format!(
            "tg-test-sub-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(1024 * 1024, 64 * 1024);
        let (client, mut connection) = Client::new(options, 16);
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread_client = client.clone();
        let thread_filter = filter.to_string();
        std::thread::spawn(move || {
            let shared = thread_shared;
            for event in connection.iter() {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        shared.connections.fetch_add(1, Ordering::SeqCst);
                        // A new session (first connect, or a broker that lost its state)
                        // knows no subscription: make it.
                        if !ack.session_present {
                            let _ = thread_client
                                .try_subscribe(thread_filter.as_str(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        shared.subscribed.store(true, Ordering::SeqCst);
                        shared.changed.notify_all();
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let mut message = Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            connection: shared.connections.load(Ordering::SeqCst),
                            seq: None,
                        };
                        if message.is_event() {
                            message.seq = serde_json::from_slice::<Value>(&message.payload)
                                .ok()
                                .and_then(|v| v.get("seq").and_then(Value::as_u64));
                        }
                        shared.messages.lock().unwrap().push(message);
                        shared.changed.notify_all();
                    }
                    Ok(_) => {}
                    // The broker is away: the next poll reconnects. A short pause keeps this
                    // from spinning while nothing listens on the port.
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        let subscriber = Subscriber {
            client,
            shared,
            filter: filter.to_string(),
        };
        subscriber.wait_change(Duration::from_secs(10), |s| {
            s.subscribed.load(Ordering::SeqCst)
        });
        assert!(
            subscriber.shared.subscribed.load(Ordering::SeqCst),
            "the subscriber could not subscribe to {filter} on port {port} within 10s"
        );
        subscriber
    }

    /// Waits (on the condition variable) until `done` holds or `timeout` passes.
    fn wait_change(&self, timeout: Duration, done: impl Fn(&Shared) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.shared.messages.lock().unwrap();
        loop {
            drop(guard);
            if done(&self.shared) {
                return true;
            }
            guard = self.shared.messages.lock().unwrap();
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Bounded waits: a notification between the check and the wait is caught by the
            // next round at the latest.
            let slice = (deadline - now).min(Duration::from_millis(50));
            guard = self.shared.changed.wait_timeout(guard, slice).unwrap().0;
        }
    }

    /// Everything received so far, in arrival order (events and status).
    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// The event messages (not status, not heartbeats), in arrival order.
    pub fn event_messages(&self) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.is_event())
            .collect()
    }

    /// The event payloads as JSON, in arrival order (copies included).
    pub fn events(&self) -> Vec<Value> {
        self.event_messages().iter().map(Message::json).collect()
    }

    /// The `…/status` payloads as JSON, in arrival order.
    pub fn status_messages(&self) -> Vec<Value> {
        self.messages()
            .iter()
            .filter(|m| m.is_status())
            .map(Message::json)
            .collect()
    }

    /// Waits until the agent's retained status says online; fails the test with the agent's
    /// log after `timeout`.
    pub fn wait_online(&self, agent: &crate::Agent, timeout: Duration) {
        crate::wait_until(
            "the agent online",
            timeout,
            || {
                self.status_messages()
                    .iter()
                    .any(|s| s["state"] == "online")
            },
            || agent.log_tail(20),
        );
    }

    /// How many connections the subscriber has made so far.
    pub fn connections(&self) -> u32 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` event messages (copies included) arrived; returns whether they
    /// did within `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |messages| {
            messages.iter().filter(|m| m.is_event()).count() >= n
        })
    }

    /// Waits until `done` holds for the messages received so far; returns whether it did
    /// within `timeout`.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[Message]) -> bool) -> bool {
        self.wait_change(timeout, |shared| done(&shared.messages.lock().unwrap()))
    }

    /// Seqs of `range` that have not arrived (yet).
    pub fn missing(&self, range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
        let seen: std::collections::HashSet<u64> = self
            .shared
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| m.seq)
            .collect();
        range.filter(|s| !seen.contains(s)).collect()
    }

    /// Waits until every seq of `range` arrived; returns whether they did within `timeout`.
    pub fn wait_for_seqs(&self, range: std::ops::RangeInclusive<u64>, timeout: Duration) -> bool {
        self.wait_until(timeout, |messages| {
            let seen: std::collections::HashSet<u64> =
                messages.iter().filter_map(|m| m.seq).collect();
            range.clone().all(|s| seen.contains(&s))
        })
    }

    /// The filter it subscribed to.
    pub fn filter(&self) -> &str {
        &self.filter
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wakes the connection thread (it sees `stop` at its next event); not joined, so a
        // broker that is away cannot hold the test up.
        let _ = self.client.try_disconnect();
    }
}
