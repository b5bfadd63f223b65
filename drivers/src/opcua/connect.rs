//! Everything a session needs before its loop runs: the client (with its own certificate), the
//! endpoint matching the configured security, the server certificate's trust, the identity, the
//! namespace-resolved nodes and the subscription.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use opcua::client::{
    Client, ClientBuilder, DataChangeCallback, IdentityToken, Session, SessionPollResult,
};
use opcua::crypto::{CertificateStore, SecurityPolicy};
use opcua::types::{
    DataValue, EndpointDescription, MessageSecurityMode, MonitoredItemCreateRequest,
    MonitoringMode, MonitoringParameters, NodeId, ReadValueId, StatusCode, TimestampsToReturn,
    VariableId, Variant,
};
use tokio::sync::mpsc;

use super::config::{Identity, Mode, OpcuaConfig, Policy};
use super::nodeid::NodeRef;
use super::pki::{self, Untrusted};

/// The client handle of the trigger item (the counter, or the code without a handshake).
pub(crate) const TRIGGER: u32 = 1;
/// Client handles of the context items: `CONTEXT + i`.
pub(crate) const CONTEXT: u32 = 100;

/// Why a session could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("cannot get the endpoints of {url}: {status}")]
    Endpoints { url: String, status: StatusCode },
    #[error(
        "the server offers no endpoint with security_policy {policy} and security_mode {mode:?}; \
         it offers: {offered}"
    )]
    NoEndpoint {
        policy: &'static str,
        mode: Mode,
        offered: String,
    },
    #[error(transparent)]
    Untrusted(#[from] Untrusted),
    #[error("{0}")]
    Identity(String),
    #[error("cannot create the session: {0}")]
    Session(String),
    #[error("the session did not come up: {0}")]
    NotConnected(StatusCode),
    #[error("{0}")]
    Nodes(String),
    #[error("{what}: {status}")]
    Request {
        what: &'static str,
        status: StatusCode,
    },
}

impl ConnectError {
    /// Whether the problem is one an operator has to fix (logged as an error, not a warning).
    pub(crate) fn needs_operator(&self) -> bool {
        matches!(
            self,
            ConnectError::NoEndpoint { .. }
                | ConnectError::Untrusted(_)
                | ConnectError::Identity(_)
                | ConnectError::Nodes(_)
        )
    }
}

/// What the session's event loop reports, forwarded from its task.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// The (re)connect succeeded; `new_session` when the server no longer had the old one.
    Up { new_session: bool },
    /// The connection was lost.
    Lost(StatusCode),
    /// A reconnect attempt failed.
    Failed(StatusCode),
    /// The event loop ended (closed, or a fatal error).
    Ended(StatusCode),
}

/// The nodes of a source, resolved against one server's namespaces.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Nodes {
    /// The counter (handshake) or the code node.
    pub trigger: NodeId,
    /// Handshake only: the code, ack and result nodes.
    pub code: Option<NodeId>,
    pub ack: Option<NodeId>,
    pub result: Option<NodeId>,
    /// Context nodes, by attribute name.
    pub context: Vec<(String, NodeId)>,
    /// The nodes the line context is written to, by context key (`context_tags`).
    pub context_tags: Vec<(String, NodeId)>,
}

impl Nodes {
    /// Resolves every configured node; the error names the key.
    pub(crate) fn resolve(config: &OpcuaConfig, namespaces: &[String]) -> Result<Nodes, String> {
        let one = |key: &str, text: &str| -> Result<NodeId, String> {
            let node: NodeRef = text.parse().map_err(|e| format!("{key}: {e}"))?;
            node.resolve(namespaces)
                .map_err(|e| format!("{key} {text}: {e}"))
        };
        let context = config
            .context
            .iter()
            .enumerate()
            .map(|(i, c)| Ok((c.name.clone(), one(&format!("context[{i}].node"), &c.node)?)))
            .collect::<Result<_, String>>()?;
        let context_tags = config
            .context_tags
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let key = format!("context_tags[{i}].node");
                Ok((t.key.clone(), one(&key, &t.node)?))
            })
            .collect::<Result<_, String>>()?;
        Ok(match (&config.handshake, &config.code) {
            (Some(h), _) => Nodes {
                trigger: one("handshake.counter", &h.counter)?,
                code: Some(one("handshake.code", &h.code)?),
                ack: Some(one("handshake.ack", &h.ack)?),
                result: h
                    .result
                    .as_deref()
                    .map(|r| one("handshake.result", r))
                    .transpose()?,
                context,
                context_tags,
            },
            (None, Some(code)) => Nodes {
                trigger: one("code", code)?,
                code: None,
                ack: None,
                result: None,
                context,
                context_tags,
            },
            (None, None) => return Err("neither `code` nor [sources.handshake] is set".into()),
        })
    }
}

/// The client of a source: its certificate store, timeouts and the retry policy (forever).
pub(crate) fn client(config: &OpcuaConfig) -> Result<Client, String> {
    let pki = config.pki();
    let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    ClientBuilder::new()
        .application_name("tracegate")
        .application_uri("urn:tracegate")
        .product_uri("urn:tracegate")
        .pki_dir(&pki)
        // The agent's own certificate is created in pki_dir on first start.
        .create_sample_keypair(true)
        // Never trust-all: a server certificate must be in trusted/ (pki.rs).
        .trust_server_certs(false)
        .verify_server_certs(true)
        // async-opcua gives up after 10 reconnect attempts by default; a line's edge never does.
        .session_retry_limit(-1)
        .session_retry_initial(config.reconnect_min)
        .session_retry_max(config.reconnect_max)
        .session_timeout(ms(config.session_timeout))
        .request_timeout(config.request_timeout)
        .keep_alive_interval(Duration::from_secs(5).min(config.session_timeout / 3))
        .min_publish_interval(Duration::from_millis(1))
        .session_name("tracegate")
        .client()
        .map_err(|errors| {
            format!(
                "the OPC UA client cannot start with pki_dir {}: {}",
                pki.display(),
                errors.join("; ")
            )
        })
}

fn policy(p: Policy) -> SecurityPolicy {
    match p {
        Policy::None => SecurityPolicy::None,
        Policy::Basic256Sha256 => SecurityPolicy::Basic256Sha256,
        Policy::Aes128Sha256RsaOaep => SecurityPolicy::Aes128Sha256RsaOaep,
        Policy::Aes256Sha256RsaPss => SecurityPolicy::Aes256Sha256RsaPss,
    }
}

fn mode(m: Mode) -> MessageSecurityMode {
    match m {
        Mode::None => MessageSecurityMode::None,
        Mode::Sign => MessageSecurityMode::Sign,
        Mode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    }
}

/// The server's endpoint matching the configured security, with its certificate trusted.
pub(crate) async fn endpoint(
    client: &Client,
    config: &OpcuaConfig,
) -> Result<EndpointDescription, ConnectError> {
    let url = config.endpoint.as_str();
    let endpoints = client
        .get_server_endpoints_from_url(url)
        .await
        .map_err(|e| ConnectError::Endpoints {
            url: url.to_string(),
            status: e.status(),
        })?;
    let wanted = (config.security_policy, config.mode());
    let endpoint =
        Client::find_matching_endpoint(&endpoints, url, policy(wanted.0), mode(wanted.1))
            .ok_or_else(|| ConnectError::NoEndpoint {
                policy: wanted.0.name(),
                mode: wanted.1,
                offered: endpoints
                    .iter()
                    .map(|e| {
                        let uri = e.security_policy_uri.as_ref();
                        let name = uri.rsplit('#').next().unwrap_or(uri);
                        format!("{name}/{:?}", e.security_mode)
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    if wanted.0 != Policy::None {
        let der = endpoint
            .server_certificate
            .value
            .clone()
            .unwrap_or_default();
        let config_file = config
            .config_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("<config>"));
        pki::check_server(&config.pki(), &der, &config_file)?;
    }
    Ok(endpoint)
}

/// The identity token; reads the password or the user certificate now (at every connect).
pub(crate) fn identity(config: &OpcuaConfig) -> Result<IdentityToken, ConnectError> {
    let fail = |key: &str, path: &Option<PathBuf>, e: String| {
        let path = path.as_deref().unwrap_or_else(|| std::path::Path::new("?"));
        ConnectError::Identity(format!("{key} {}: {e}", path.display()))
    };
    Ok(match config.identity {
        Identity::Anonymous => IdentityToken::Anonymous,
        Identity::Username => {
            let path = &config.password_file;
            let text = std::fs::read_to_string(path.as_deref().unwrap_or_else(|| "".as_ref()))
                .map_err(|e| fail("password_file", path, format!("cannot be read: {e}")))?;
            let password = text.lines().next().unwrap_or_default().to_string();
            IdentityToken::new_user_name(config.username.clone().unwrap_or_default(), password)
        }
        Identity::X509 => {
            let cert_path = &config.user_certificate;
            let key_path = &config.user_private_key;
            let cert = CertificateStore::read_cert(cert_path.as_deref().unwrap_or("".as_ref()))
                .map_err(|e| fail("user_certificate", cert_path, e))?;
            let key = CertificateStore::read_pkey(key_path.as_deref().unwrap_or("".as_ref()))
                .map_err(|e| fail("user_private_key", key_path, e))?;
            IdentityToken::X509(Box::new(cert), Box::new(key))
        }
    })
}

/// A session whose event loop runs on its own task (aborted when this is dropped).
pub(crate) struct Live {
    pub session: Arc<Session>,
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates the session and waits until it is up (the library retries forever meanwhile;
/// failed attempts come back as [`LinkEvent::Failed`] and are reported through `on_failed`).
pub(crate) async fn session(
    client: &mut Client,
    endpoint: EndpointDescription,
    identity: IdentityToken,
    mut on_failed: impl FnMut(StatusCode),
) -> Result<Live, ConnectError> {
    let (session, event_loop) = client
        .connect_to_endpoint_directly(endpoint, identity)
        .map_err(|e| ConnectError::Session(e.to_string()))?;
    let (tx, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let stream = event_loop.enter();
        tokio::pin!(stream);
        while let Some(item) = stream.next().await {
            let event = match item {
                Ok(SessionPollResult::Reconnected(mode)) => LinkEvent::Up {
                    new_session: matches!(mode, opcua::client::SessionConnectMode::NewSession(_)),
                },
                Ok(SessionPollResult::ConnectionLost(s)) => LinkEvent::Lost(s),
                Ok(SessionPollResult::ReconnectFailed(s)) => LinkEvent::Failed(s),
                Ok(_) => continue,
                Err(s) => {
                    let _ = tx.send(LinkEvent::Ended(s));
                    return;
                }
            };
            if tx.send(event).is_err() {
                return;
            }
        }
        let _ = tx.send(LinkEvent::Ended(StatusCode::Good));
    });
    let live = loop {
        match events.recv().await {
            Some(LinkEvent::Up { .. }) => {
                break Live {
                    session,
                    events,
                    task,
                };
            }
            Some(LinkEvent::Failed(s)) => on_failed(s),
            Some(LinkEvent::Lost(_)) => {}
            Some(LinkEvent::Ended(s)) => {
                task.abort();
                return Err(ConnectError::NotConnected(s));
            }
            None => {
                task.abort();
                return Err(ConnectError::NotConnected(StatusCode::BadUnexpectedError));
            }
        }
    };
    Ok(live)
}

/// The server's NamespaceArray.
pub(crate) async fn namespaces(session: &Session) -> Result<Vec<String>, ConnectError> {
    let node: NodeId = VariableId::Server_NamespaceArray.into();
    let values = session
        .read(&[ReadValueId::from(node)], TimestampsToReturn::Neither, 0.0)
        .await
        .map_err(|e| ConnectError::Request {
            what: "reading the server's NamespaceArray",
            status: e.status(),
        })?;
    match values.first().and_then(|v| v.value.as_ref()) {
        Some(Variant::Array(a)) => Ok(a
            .values
            .iter()
            .map(|v| match v {
                Variant::String(s) => s.value().clone().unwrap_or_default(),
                _ => String::new(),
            })
            .collect()),
        _ => Err(ConnectError::Request {
            what: "reading the server's NamespaceArray",
            status: StatusCode::BadNoValue,
        }),
    }
}

/// Creates the subscription and its monitored items: the trigger, and (without a handshake)
/// the context nodes, whose latest values travel with each code. Data changes go to `changes`
/// as `(client handle, value)`.
pub(crate) async fn subscribe(
    session: &Session,
    config: &OpcuaConfig,
    nodes: &Nodes,
    changes: mpsc::UnboundedSender<(u32, DataValue)>,
) -> Result<u32, ConnectError> {
    let publishing = config.publishing_interval;
    // Keep-alive every ~1s at most, and the server keeps the subscription for 3 of them.
    let keep_alive = (1000 / publishing.as_millis().max(1)).clamp(3, 1000) as u32;
    let id = session
        .create_subscription(
            publishing,
            keep_alive * 3,
            keep_alive,
            0,
            0,
            true,
            DataChangeCallback::new(move |value, item| {
                let _ = changes.send((item.client_handle(), value));
            }),
        )
        .await
        .map_err(|e| ConnectError::Request {
            what: "creating the subscription",
            status: e.status(),
        })?;
    let item = |handle: u32, node: &NodeId| {
        MonitoredItemCreateRequest::new(
            ReadValueId::from(node.clone()),
            MonitoringMode::Reporting,
            MonitoringParameters {
                client_handle: handle,
                sampling_interval: config.sampling_interval.as_secs_f64() * 1000.0,
                queue_size: config.queue_size,
                discard_oldest: true,
                ..Default::default()
            },
        )
    };
    let mut items = vec![item(TRIGGER, &nodes.trigger)];
    let mut keys = vec![match config.handshake {
        Some(_) => "handshake.counter".to_string(),
        None => "code".to_string(),
    }];
    if config.handshake.is_none() {
        for (i, (_, node)) in nodes.context.iter().enumerate() {
            items.push(item(CONTEXT + i as u32, node));
            keys.push(format!("context[{i}].node"));
        }
    }
    let created = session
        .create_monitored_items(id, TimestampsToReturn::Both, items)
        .await
        .map_err(|e| ConnectError::Request {
            what: "creating the monitored items",
            status: e.status(),
        })?;
    for (key, result) in keys.iter().zip(&created) {
        if !result.result.status_code.is_good() {
            return Err(ConnectError::Nodes(format!(
                "{key}: the server refused to monitor it: {}",
                result.result.status_code
            )));
        }
    }
    Ok(id)
}
