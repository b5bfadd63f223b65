//! One-shot MQTT publishes standing in for MES: MQTT 5 (with Response Topic and Correlation
//! Data) and MQTT 3.1.1; and [`Subscriber5`], an MQTT 5 consumer that keeps each message's
//! properties (user properties, content type, message expiry).

use std::time::Duration;

/// Publishes one QoS 1 message with MQTT 3.1.1 and waits for its PUBACK.
pub fn publish_v4(port: u16, topic: &str, payload: &[u8]) {
    use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
    let id = format!("tg-test-pub4-{}-{}", std::process::id(), unique());
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(o, 10);
    client
        .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
        .expect("queue publish");
    for event in conn.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => break,
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => panic!("publish to {topic}: {e}"),
        }
    }
    let _ = client.disconnect();
}

/// Publishes one QoS 1 message with MQTT 5 properties and waits for its PUBACK.
pub fn publish_v5(
    port: u16,
    topic: &str,
    payload: &[u8],
    response_topic: Option<&str>,
    correlation: Option<&[u8]>,
) {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::{Client, Event, MqttOptions};
    let id = format!("tg-test-pub5-{}-{}", std::process::id(), unique());
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(o, 10);
    let props = PublishProperties {
        response_topic: response_topic.map(str::to_string),
        correlation_data: correlation.map(|c| c.to_vec().into()),
        ..Default::default()
    };
    client
        .publish_with_properties(topic, QoS::AtLeastOnce, false, payload.to_vec(), props)
        .expect("queue publish");
    for event in conn.iter() {
        match event {
            Ok(Event::Incoming(Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("publish to {topic}: {e}"),
        }
    }
    let _ = client.disconnect();
}

/// One message as an MQTT 5 subscriber received it, with its properties.
#[derive(Debug, Clone)]
pub struct Message5 {
    pub topic: String,
    pub payload: Vec<u8>,
    /// User properties, in the order they were sent.
    pub user: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// The payload format indicator (1: UTF-8 text).
    pub payload_format: Option<u8>,
    /// The message expiry interval as forwarded by the broker, in seconds.
    pub expiry_secs: Option<u32>,
}

impl Message5 {
    /// The value of the user property `name` (the first, if sent more than once).
    pub fn user(&self, name: &str) -> Option<&str> {
        self.user
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The payload as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("payload on {} is not JSON: {e}", self.topic))
    }
}

/// An MQTT 5 subscriber (clean start, QoS 1) recording every message with its properties, in
/// arrival order, on a thread of its own. Dropping it disconnects.
pub struct Subscriber5 {
    client: rumqttc::v5::Client,
    messages: std::sync::Arc<std::sync::Mutex<Vec<Message5>>>,
}

impl Subscriber5 {
    /// Connects to 127.0.0.1:`port` with MQTT 5 and subscribes to `filter`; returns once the
    /// broker confirmed the subscription (panics after 10 s).
    pub fn connect(port: u16, filter: &str) -> Subscriber5 {
        use rumqttc::v5::mqttbytes::QoS;
        use rumqttc::v5::mqttbytes::v5::Packet;
        use rumqttc::v5::{Client, Event, MqttOptions};
        let id = format!("tg-test-sub5-{}-{}", std::process::id(), unique());
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = Client::new(o, 16);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("queue subscribe");
        let messages = std::sync::Arc::<std::sync::Mutex<Vec<Message5>>>::default();
        let (subscribed, on_suback) = std::sync::mpsc::channel();
        let recorded = messages.clone();
        std::thread::spawn(move || {
            for event in conn.iter() {
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let props = p.properties.unwrap_or_default();
                        recorded.lock().unwrap().push(Message5 {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.to_vec(),
                            user: props.user_properties,
                            content_type: props.content_type,
                            payload_format: props.payload_format_indicator,
                            expiry_secs: props.message_expiry_interval,
                        });
                    }
                    Ok(_) => {}
                    // Disconnected (the subscriber was dropped, or the broker went away).
                    Err(_) => return,
                }
            }
        });
        on_suback
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no MQTT 5 subscription to {filter} on port {port}"));
        Subscriber5 { client, messages }
    }

    /// Everything received so far, in arrival order.
    pub fn messages(&self) -> Vec<Message5> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for Subscriber5 {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}

fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}
