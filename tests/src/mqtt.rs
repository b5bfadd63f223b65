//! One-shot MQTT publishes standing in for MES: MQTT 5 (with Response Topic and Correlation
//! Data) and MQTT 3.1.1.

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

fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}
