//! One MQTT connection attempt: options (credentials, TLS, last will), and the task that polls
//! rumqttc's event loop and reports what happened. Nothing is published from inside the poll
//! task.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, NetworkOptions,
    Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::mpsc;

use crate::config::{Config, check::parse_mqtt_url};

/// What the poll task saw.
#[derive(Debug)]
pub enum NetEvent {
    /// CONNACK received.
    Connected { session_present: bool },
    /// rumqttc sent a PUBLISH with this packet id.
    Sent(u16),
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for this packet id.
    Acked(u16),
    /// The connection failed or ended; the poll task has stopped.
    Lost(String),
}

/// Errors building the connection's options.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("mqtt.url: {0}")]
    Url(String),
    #[error("mqtt.ca_file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// Everything needed to open connections, prepared once.
#[derive(Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keepalive: Duration,
    pub inflight: u16,
    pub qos: QoS,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub status_topic: String,
}

impl Settings {
    /// Prepares connection settings from the config (reads the CA file, builds the TLS config).
    pub fn from_config(config: &Config, status_topic: String) -> Result<Settings, SetupError> {
        let m = &config.mqtt;
        let (tls, host, port) = parse_mqtt_url(&m.url).map_err(SetupError::Url)?;
        let tls = if tls {
            Some(Arc::new(tls_config(m.ca_file.as_deref())?))
        } else {
            None
        };
        Ok(Settings {
            host,
            port,
            client_id: m.client_id(&config.agent),
            username: m.username.clone(),
            password: m.password.clone(),
            keepalive: m.keepalive,
            inflight: m.inflight,
            qos: if m.qos == 2 {
                QoS::ExactlyOnce
            } else {
                QoS::AtLeastOnce
            },
            tls,
            status_topic,
        })
    }

    /// A new client and event loop (a fresh session state for every connection: the queue,
    /// not the client, is the record of what is delivered).
    pub fn client(&self, will_payload: Vec<u8>) -> (AsyncClient, EventLoop) {
        let mut o = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        o.set_keep_alive(self.keepalive);
        o.set_clean_session(true);
        // Room for the event window plus status messages.
        o.set_inflight(self.inflight.saturating_add(4));
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        o.set_last_will(LastWill::new(
            self.status_topic.clone(),
            will_payload,
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(user) = &self.username {
            o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        let (client, mut eventloop) = AsyncClient::new(o, usize::from(self.inflight) + 16);
        let mut net = NetworkOptions::new();
        // Without it, Nagle's algorithm and delayed ACKs hold small publishes back for tens of
        // milliseconds.
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(10);
        eventloop.set_network_options(net);
        (client, eventloop)
    }
}

/// rustls with the ring provider; roots from `ca_file` or the system trust store.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_err = |reason: String| SetupError::Ca {
                path: path.display().to_string(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no PEM certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(SetupError::Tls(
                    "no CA certificates in the system trust store; set mqtt.ca_file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Polls the event loop until the connection ends, forwarding what matters.
pub async fn poll(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<NetEvent>) {
    loop {
        let event = match eventloop.poll().await {
            Ok(event) => event,
            Err(e) => {
                let _ = tx.send(NetEvent::Lost(describe(&e)));
                return;
            }
        };
        let msg = match event {
            Event::Incoming(Packet::ConnAck(ack)) => NetEvent::Connected {
                session_present: ack.session_present,
            },
            // Status messages go at QoS 1 even when events go at QoS 2.
            Event::Incoming(Packet::PubAck(ack)) => NetEvent::Acked(ack.pkid),
            Event::Incoming(Packet::PubComp(comp)) => NetEvent::Acked(comp.pkid),
            Event::Outgoing(Outgoing::Publish(pkid)) => NetEvent::Sent(pkid),
            _ => continue,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

/// A sentence for a connection error.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?}")
        }
        other => other.to_string(),
    }
}
