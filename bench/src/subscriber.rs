//! The consumer side: one QoS 1 subscriber on `tgbench/#` with a persistent session (it keeps
//! its subscription across the backlog phase's broker outage). It records when each event
//! arrives, keyed by the bench sequence number found in the payload: agent events
//! (`tgbench/line/…/scan`) and the raw publisher's messages (`tgbench/raw0/…`) separately.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, NetworkOptions, Packet, QoS};

use crate::reader::find_seq;
use crate::util::{now_ns, poll_until};

#[derive(Default)]
pub struct Arrivals {
    /// Arrival time (ns) by seq; 0 = not arrived.
    pub times: Vec<u64>,
    /// Distinct seqs that arrived.
    pub unique: u64,
    /// Arrivals of a seq that had already arrived (QoS 1 redeliveries).
    pub duplicates: u64,
}

impl Arrivals {
    fn record(&mut self, seq: u64, t: u64) {
        let i = seq as usize;
        if i >= self.times.len() {
            self.times.resize((i + 1).max(self.times.len() * 2), 0);
        }
        if self.times[i] == 0 {
            self.times[i] = t;
            self.unique += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// Arrival time of `seq`, if it arrived.
    pub fn at(&self, seq: u64) -> Option<u64> {
        self.times.get(seq as usize).copied().filter(|t| *t != 0)
    }
}

#[derive(Default)]
pub struct Shared {
    pub agent: Mutex<Arrivals>,
    pub raw: Mutex<Arrivals>,
    pub agent_unique: AtomicU64,
    pub raw_unique: AtomicU64,
    /// Messages that were neither (status, heartbeat, no marker).
    pub other: AtomicU64,
    /// The first agent event's topic and payload (the raw publisher sends the same bytes).
    pub sample: Mutex<Option<(String, Vec<u8>)>>,
    subscribed: AtomicBool,
    stop: AtomicBool,
    pub connections: AtomicU64,
}

pub struct Subscriber {
    client: Client,
    pub shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

pub const CLIENT_ID: &str = "tgbench-subscriber";

impl Subscriber {
    /// Connects (keeping the session from an earlier connection with the same id), subscribes
    /// if the broker has no session, and returns once subscribed.
    pub fn connect(port: u16, shared: Arc<Shared>) -> Result<Subscriber, String> {
        let mut o = MqttOptions::new(CLIENT_ID, "127.0.0.1", port);
        o.set_clean_session(false);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut connection) = Client::new(o, 16);
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        connection.eventloop.set_network_options(net);
        shared.subscribed.store(false, Ordering::SeqCst);
        shared.stop.store(false, Ordering::SeqCst);
        let s = shared.clone();
        let c = client.clone();
        let thread = std::thread::Builder::new()
            .name("bench-subscriber".into())
            .spawn(move || {
                for event in connection.iter() {
                    if s.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    match event {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let t = now_ns();
                            let topic: &str = &p.topic;
                            if topic.starts_with(crate::agent::RAW_PREFIX) {
                                if let Some(seq) = find_seq(&p.payload) {
                                    let mut a = s.raw.lock().unwrap();
                                    a.record(seq, t);
                                    s.raw_unique.store(a.unique, Ordering::SeqCst);
                                }
                            } else if topic.starts_with(crate::agent::TOPIC_PREFIX)
                                && topic.ends_with("/scan")
                            {
                                match find_seq(&p.payload) {
                                    Some(seq) => {
                                        let mut a = s.agent.lock().unwrap();
                                        a.record(seq, t);
                                        s.agent_unique.store(a.unique, Ordering::SeqCst);
                                        drop(a);
                                        let mut sample = s.sample.lock().unwrap();
                                        if sample.is_none() {
                                            *sample = Some((p.topic.clone(), p.payload.to_vec()));
                                        }
                                    }
                                    None => {
                                        s.other.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            } else {
                                s.other.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            s.connections.fetch_add(1, Ordering::SeqCst);
                            if ack.session_present {
                                s.subscribed.store(true, Ordering::SeqCst);
                            } else {
                                let _ = c.try_subscribe("tgbench/#", QoS::AtLeastOnce);
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            s.subscribed.store(true, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            if s.stop.load(Ordering::SeqCst) {
                                return;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let sub = Subscriber {
            client,
            shared: shared.clone(),
            thread: Some(thread),
        };
        if !poll_until(Duration::from_secs(10), Duration::from_millis(5), || {
            shared.subscribed.load(Ordering::SeqCst)
        }) {
            return Err("the subscriber did not get its subscription within 10s".into());
        }
        Ok(sub)
    }

    /// Disconnects cleanly (the broker keeps the session).
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until `unique` reaches `n`; false on timeout.
pub fn wait_count(counter: &AtomicU64, n: u64, timeout: Duration) -> bool {
    poll_until(timeout, Duration::from_millis(2), || {
        counter.load(Ordering::SeqCst) >= n
    })
}
