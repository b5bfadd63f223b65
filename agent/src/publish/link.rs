//! One MQTT connection, MQTT 3.1.1 or 5, behind one small interface: publish (with MQTT 5
//! properties where the protocol has them), subscribe, acknowledge an incoming message, and a
//! poll task that reports what happened as [`NetEvent`]s. Nothing is published from inside the
//! poll task.

use bytes::Bytes;
use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5::{PubAckReason, PubCompReason, PublishProperties};
use tokio::sync::mpsc;

use super::commands::Incoming;

/// The protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V311,
    V5,
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

/// MQTT 5 properties of a publish; ignored on 3.1.1.
#[derive(Debug, Clone, Default)]
pub struct Props {
    pub user: Vec<(String, String)>,
    pub content_type: Option<&'static str>,
    pub expiry_secs: Option<u32>,
    pub correlation_data: Option<Vec<u8>>,
}

/// What the poll task saw.
#[derive(Debug)]
pub enum NetEvent {
    /// CONNACK received.
    Connected { session_present: bool },
    /// The client sent a PUBLISH with this packet id.
    Sent(u16),
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for this packet id. `refused` carries the MQTT 5
    /// reason when the broker took the packet but refused the message (quota exceeded, not
    /// authorized…): the event is not delivered.
    Acked { pkid: u16, refused: Option<String> },
    /// A message on a subscribed topic; acknowledge it with [`Client::ack`] once handled.
    Message(Box<(Incoming, AckToken)>),
    /// The connection failed or ended; the poll task has stopped. `handshake` is true when
    /// the TCP/TLS connection stood but the MQTT handshake failed (a broker that does not
    /// speak this protocol version).
    Lost {
        reason: String,
        handshake: bool,
        refused_credentials: bool,
    },
}

/// What [`Client::ack`] needs to acknowledge an incoming message.
#[derive(Debug)]
pub enum AckToken {
    V4(rumqttc::Publish),
    V5(v5::mqttbytes::v5::Publish),
}

/// The client side of a connection.
#[derive(Clone)]
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

impl Client {
    /// Hands one publish to the client (waits while its request channel is full).
    pub async fn publish(
        &self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: Bytes,
        props: Props,
    ) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .publish_bytes(topic, v4_qos(qos), retain, payload)
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => {
                let p = PublishProperties {
                    payload_format_indicator: props.content_type.map(|_| 1),
                    message_expiry_interval: props.expiry_secs,
                    content_type: props.content_type.map(str::to_string),
                    user_properties: props.user,
                    correlation_data: props.correlation_data.map(Into::into),
                    ..Default::default()
                };
                c.publish_bytes_with_properties(topic, v5_qos(qos), retain, payload, p)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Subscribes at QoS 1.
    pub async fn subscribe(&self, topic: &str) -> Result<(), String> {
        match self {
            Client::V4(c) => c
                .subscribe(topic, rumqttc::QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .subscribe(topic, v5::mqttbytes::QoS::AtLeastOnce)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Acknowledges an incoming message (after it was handled and stored).
    pub async fn ack(&self, token: &AckToken) {
        let _ = match (self, token) {
            (Client::V4(c), AckToken::V4(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            (Client::V5(c), AckToken::V5(p)) => c.ack(p).await.map_err(|e| e.to_string()),
            _ => Ok(()),
        };
    }

    /// Sends DISCONNECT.
    pub async fn disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

fn v4_qos(q: Qos) -> rumqttc::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        Qos::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

fn v5_qos(q: Qos) -> v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        Qos::ExactlyOnce => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// Polls a 3.1.1 event loop until the connection ends.
pub async fn poll_v4(mut eventloop: rumqttc::EventLoop, tx: mpsc::UnboundedSender<NetEvent>) {
    use rumqttc::{ConnectionError, Event, Outgoing, Packet};
    let mut connected = false;
    loop {
        let msg = match eventloop.poll().await {
            Err(e) => {
                let handshake = connected_but_refused(&e, connected);
                let refused_credentials = matches!(
                    e,
                    ConnectionError::ConnectionRefused(
                        rumqttc::ConnectReturnCode::BadUserNamePassword
                            | rumqttc::ConnectReturnCode::NotAuthorized
                    )
                );
                let reason = match e {
                    ConnectionError::ConnectionRefused(code) => {
                        format!("the broker refused the connection: {code:?}")
                    }
                    other => other.to_string(),
                };
                let _ = tx.send(NetEvent::Lost {
                    reason,
                    handshake,
                    refused_credentials,
                });
                return;
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connected = true;
                NetEvent::Connected {
                    session_present: ack.session_present,
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => NetEvent::Acked {
                pkid: ack.pkid,
                refused: None,
            },
            Ok(Event::Incoming(Packet::PubComp(comp))) => NetEvent::Acked {
                pkid: comp.pkid,
                refused: None,
            },
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let incoming = Incoming {
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                    response_topic: None,
                    correlation_data: None,
                };
                NetEvent::Message(Box::new((incoming, AckToken::V4(p))))
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => NetEvent::Sent(pkid),
            Ok(_) => continue,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }

    fn connected_but_refused(e: &ConnectionError, connected: bool) -> bool {
        !connected
            && matches!(
                e,
                ConnectionError::ConnectionRefused(_)
                    | ConnectionError::NotConnAck(_)
                    | ConnectionError::MqttState(_)
            )
    }
}

/// Polls an MQTT 5 event loop until the connection ends.
pub async fn poll_v5(mut eventloop: v5::EventLoop, tx: mpsc::UnboundedSender<NetEvent>) {
    use rumqttc::Outgoing;
    use v5::mqttbytes::v5::Packet;
    use v5::{ConnectionError, Event};
    let mut connected = false;
    loop {
        let msg = match eventloop.poll().await {
            Err(e) => {
                let handshake = !connected
                    && matches!(
                        e,
                        ConnectionError::ConnectionRefused(_)
                            | ConnectionError::NotConnAck(_)
                            | ConnectionError::MqttState(_)
                    );
                use v5::mqttbytes::v5::ConnectReturnCode as Rc;
                let refused_credentials = matches!(
                    e,
                    ConnectionError::ConnectionRefused(
                        Rc::BadUserNamePassword
                            | Rc::NotAuthorized
                            | Rc::Banned
                            | Rc::BadAuthenticationMethod
                    )
                );
                let reason = match e {
                    ConnectionError::ConnectionRefused(code) => {
                        format!("the broker refused the connection: {code:?}")
                    }
                    other => other.to_string(),
                };
                let _ = tx.send(NetEvent::Lost {
                    reason,
                    handshake,
                    refused_credentials,
                });
                return;
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connected = true;
                NetEvent::Connected {
                    session_present: ack.session_present,
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let refused = match ack.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                    other => Some(format!("{other:?}")),
                };
                NetEvent::Acked {
                    pkid: ack.pkid,
                    refused,
                }
            }
            Ok(Event::Incoming(Packet::PubComp(comp))) => {
                let refused = match comp.reason {
                    PubCompReason::Success => None,
                    other => Some(format!("{other:?}")),
                };
                NetEvent::Acked {
                    pkid: comp.pkid,
                    refused,
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let props = p.properties.clone().unwrap_or_default();
                let incoming = Incoming {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload.to_vec(),
                    response_topic: props.response_topic,
                    correlation_data: props.correlation_data.map(|b| b.to_vec()),
                };
                NetEvent::Message(Box::new((incoming, AckToken::V5(p))))
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => NetEvent::Sent(pkid),
            Ok(_) => continue,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}
