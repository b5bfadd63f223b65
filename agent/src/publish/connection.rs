//! Connection settings (credentials, TLS, last will, protocol version) prepared once, and
//! [`Settings::connect`], which opens one connection: a [`Client`] plus its poll task.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5;
use rumqttc::{NetworkOptions, TlsConfiguration, Transport};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::link::{self, Client, NetEvent, Protocol, Qos};
use crate::config::{Config, MqttProtocol, check::parse_mqtt_url};

/// How long a persistent MQTT 5 session (with commands queued for us) outlives a connection.
const SESSION_EXPIRY_SECS: u32 = 7 * 24 * 3600;

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
    pub qos: Qos,
    pub protocol: MqttProtocol,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub status_topic: String,
}

impl Settings {
    /// Prepares connection settings from the config (reads the CA file, builds the TLS config).
    pub fn from_config(config: &Config, status_topic: String) -> Result<Settings, SetupError> {
        let m = &config.mqtt;
        let (tls, host, port) = parse_mqtt_url(&m.url).map_err(SetupError::Url)?;
        let tls = if tls {
            let client = match (&m.client_cert_file, &m.client_key_file) {
                (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
                _ => None,
            };
            Some(Arc::new(tls_config(m.ca_file.as_deref(), client)?))
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
                Qos::ExactlyOnce
            } else {
                Qos::AtLeastOnce
            },
            protocol: m.protocol,
            tls,
            status_topic,
        })
    }

    /// Opens one connection with a fresh client (a fresh session state for every connection:
    /// the queue, not the client, is the record of what is delivered). Persistent session on
    /// the broker side, so commands sent to the agent while it was away are still delivered.
    pub fn connect(
        &self,
        protocol: Protocol,
        will: Vec<u8>,
    ) -> (Client, mpsc::UnboundedReceiver<NetEvent>, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut net = NetworkOptions::new();
        // Without it, Nagle's algorithm and delayed ACKs hold small publishes back for tens of
        // milliseconds.
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(10);
        let cap = usize::from(self.inflight) + 16;
        // Room for the event window plus status, replies and heartbeats.
        let inflight = self.inflight.saturating_add(8);
        let transport = self
            .tls
            .as_ref()
            .map(|tls| Transport::tls_with_config(TlsConfiguration::Rustls(tls.clone())));
        match protocol {
            Protocol::V311 => {
                let mut o =
                    rumqttc::MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
                o.set_keep_alive(self.keepalive);
                o.set_clean_session(false);
                o.set_manual_acks(true);
                o.set_inflight(inflight);
                o.set_max_packet_size(1024 * 1024, 1024 * 1024);
                o.set_last_will(rumqttc::LastWill::new(
                    self.status_topic.clone(),
                    will,
                    rumqttc::QoS::AtLeastOnce,
                    true,
                ));
                if let Some(user) = &self.username {
                    o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                let (client, mut eventloop) = rumqttc::AsyncClient::new(o, cap);
                eventloop.set_network_options(net);
                let poller = tokio::spawn(link::poll_v4(eventloop, tx));
                (Client::V4(client), rx, poller)
            }
            Protocol::V5 => {
                let mut o =
                    v5::MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
                o.set_keep_alive(self.keepalive);
                o.set_clean_start(false);
                o.set_session_expiry_interval(Some(SESSION_EXPIRY_SECS));
                o.set_manual_acks(true);
                o.set_outgoing_inflight_upper_limit(inflight);
                o.set_max_packet_size(Some(1024 * 1024));
                let props = v5::mqttbytes::v5::LastWillProperties {
                    delay_interval: None,
                    payload_format_indicator: Some(1),
                    message_expiry_interval: None,
                    content_type: Some("application/json".into()),
                    response_topic: None,
                    correlation_data: None,
                    user_properties: Vec::new(),
                };
                o.set_last_will(v5::mqttbytes::v5::LastWill::new(
                    self.status_topic.clone(),
                    will,
                    v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    Some(props),
                ));
                if let Some(user) = &self.username {
                    o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                o.set_network_options(net);
                let (client, eventloop) = v5::AsyncClient::new(o, cap);
                let poller = tokio::spawn(link::poll_v5(eventloop, tx));
                (Client::V5(client), rx, poller)
            }
        }
    }

    /// The protocol to try first.
    pub fn first_protocol(&self) -> Protocol {
        match self.protocol {
            MqttProtocol::V311 => Protocol::V311,
            MqttProtocol::V5 | MqttProtocol::Auto => Protocol::V5,
        }
    }

    /// With `protocol = "auto"`, the other version to try after a failed handshake.
    pub fn fallback(&self, tried: Protocol) -> Protocol {
        match (self.protocol, tried) {
            (MqttProtocol::Auto, Protocol::V5) => Protocol::V311,
            (MqttProtocol::Auto, Protocol::V311) => Protocol::V5,
            _ => tried,
        }
    }
}

/// rustls with the ring provider; roots from `ca_file` or the system trust store; a client
/// certificate and key for mutual TLS.
fn tls_config(
    ca_file: Option<&std::path::Path>,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<rustls::ClientConfig, SetupError> {
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
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let Some((cert, key)) = client else {
        return Ok(builder.with_no_client_auth());
    };
    let file_err = |key: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        SetupError::Tls(format!("mqtt.{key} {}: {e}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err("client_cert_file", cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err("client_cert_file", cert, &e))?;
    if chain.is_empty() {
        return Err(file_err(
            "client_cert_file",
            cert,
            &"no PEM certificate in the file",
        ));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| file_err("client_key_file", key, &e))?;
    builder
        .with_client_auth_cert(chain, private)
        .map_err(|e| SetupError::Tls(format!("client certificate and key do not fit: {e}")))
}
