//! The keys of an opcua source's `[[sources]]` table, once the agent has taken its own (`id`,
//! `type`, `station`, …). Unknown keys are refused. Semantic checks live in
//! [`OpcuaConfig::validate`], which names the key (`security_mode`, `handshake.ack`,
//! `context[1].node`, `context_tags[0].node`); the agent resolves the paths ([`OpcuaConfig::resolve_paths`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// An OPC UA source: one server (a PLC's embedded server, a gateway), and what to read from it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcuaConfig {
    /// The server's endpoint URL, `opc.tcp://host:port[/path]` (4840 is the usual port).
    /// Required. The endpoint matching `security_policy` and `security_mode` is picked from the
    /// server's list; its host is replaced by this one (servers often advertise a name the
    /// gateway cannot resolve).
    pub endpoint: String,
    /// `None` (default), `Basic256Sha256`, `Aes128_Sha256_RsaOaep` or `Aes256_Sha256_RsaPss`.
    /// Basic128Rsa15 and Basic256 are deprecated by the OPC Foundation and not offered.
    #[serde(default)]
    pub security_policy: Policy,
    /// `None`, `Sign` or `SignAndEncrypt`. Default: `None` with policy `None`, `SignAndEncrypt`
    /// otherwise.
    #[serde(default)]
    pub security_mode: Option<Mode>,
    /// Who the agent is to the server: `anonymous` (default), `username` (with `username` and
    /// `password_file`) or `x509` (with `user_certificate` and `user_private_key`).
    #[serde(default)]
    pub identity: Identity,
    /// User name for `identity = "username"`.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password for `identity = "username"` (first line; a trailing newline is
    /// ignored). Read at every connect, never logged. Relative to the config file's folder.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// User certificate (DER or PEM) for `identity = "x509"`.
    #[serde(default)]
    pub user_certificate: Option<PathBuf>,
    /// The user certificate's private key (PEM) for `identity = "x509"`.
    #[serde(default)]
    pub user_private_key: Option<PathBuf>,
    /// The client's certificate store: `own/cert.der` and `private/private.pem` (created on first
    /// start), `trusted/` (server certificates the agent trusts) and `rejected/` (certificates
    /// it refused, to be moved to `trusted/` by an operator or with `tracegate opcua trust`).
    /// Default: `pki` beside the queue's database (the agent's state directory).
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
    /// How often the server sends the notifications of the subscription. The latency of a
    /// handover is about half of this plus one round trip. Default 100ms.
    #[serde(default = "default_publishing_interval", with = "humantime_serde")]
    pub publishing_interval: Duration,
    /// How often the server samples the monitored nodes (the server may revise it). `0s` asks
    /// for the fastest the server can do. Default 50ms.
    #[serde(default = "default_sampling_interval", with = "humantime_serde")]
    pub sampling_interval: Duration,
    /// Values the server queues per monitored node between two publishes. With 1, a code node
    /// that changes twice within one publishing interval reports only the second code; the
    /// handshake does not depend on it. Default 10.
    #[serde(default = "default_queue_size")]
    pub queue_size: u32,
    /// Longest wait for one request (read, write, create). Default 5s.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long the server keeps the session (and its subscription) while the connection is
    /// down; reconnecting within it resumes the session. Default 60s.
    #[serde(default = "default_session_timeout", with = "humantime_serde")]
    pub session_timeout: Duration,
    /// First delay before reconnecting; doubles up to `reconnect_max`. The agent retries
    /// forever. Default 500ms.
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest reconnect delay. Default 30s.
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// Without a handshake: the node whose every data change is a code event (a string, a byte
    /// string or an array of bytes/chars). Give either `code` or `[sources.handshake]`.
    #[serde(default)]
    pub code: Option<String>,
    /// The code handover with the PLC (`[sources.handshake]`), as in the Modbus driver.
    #[serde(default)]
    pub handshake: Option<HandshakeConfig>,
    /// Context nodes (`[[sources.context]]`) attached to each event as attributes.
    #[serde(default)]
    pub context: Vec<ContextNode>,
    /// `[[sources.context_tags]]`: the line context MES pushed down (work order, batch…)
    /// written into String nodes at every session start and whenever it changes, so the HMI
    /// shows it. Default: none.
    #[serde(default)]
    pub context_tags: Vec<super::context::ContextTagConfig>,
    /// The config file this came from, set by the agent; named in the command that trusts a
    /// refused server certificate.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// `[sources.handshake]`: counter, code and ack nodes. NodeIds as in [`super::nodeid`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeConfig {
    /// The integer node the PLC increments after writing a code (0 means "no code"). Monitored;
    /// each change is a handover. Required.
    pub counter: String,
    /// The code node, read together with the counter and the context nodes in one request.
    /// Required.
    pub code: String,
    /// The integer node the agent writes the counter value to, once the code is durably
    /// committed. Written with the node's own data type. Required.
    pub ack: String,
    /// Optional integer node the agent writes the result to, in the same request as the ack
    /// (result first).
    #[serde(default)]
    pub result: Option<String>,
    /// Result for a code committed as valid (or a duplicate of one). Default 1.
    #[serde(default = "default_accepted")]
    pub accepted: i64,
    /// Result for a code committed as invalid or a no-read. Default 2.
    #[serde(default = "default_rejected")]
    pub rejected: i64,
}

/// `[[sources.context]]`: a node whose value travels with each event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextNode {
    /// The attribute name in the event. Required.
    pub name: String,
    /// The node. Required.
    pub node: String,
}

/// `security_policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Policy {
    #[default]
    None,
    Basic256Sha256,
    #[serde(rename = "Aes128_Sha256_RsaOaep")]
    Aes128Sha256RsaOaep,
    #[serde(rename = "Aes256_Sha256_RsaPss")]
    Aes256Sha256RsaPss,
}

impl Policy {
    /// The config spelling (also the OPC UA profile name).
    pub fn name(self) -> &'static str {
        match self {
            Policy::None => "None",
            Policy::Basic256Sha256 => "Basic256Sha256",
            Policy::Aes128Sha256RsaOaep => "Aes128_Sha256_RsaOaep",
            Policy::Aes256Sha256RsaPss => "Aes256_Sha256_RsaPss",
        }
    }
}

/// `security_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Mode {
    None,
    Sign,
    SignAndEncrypt,
}

/// `identity`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    #[default]
    Anonymous,
    Username,
    X509,
}

impl OpcuaConfig {
    /// The security mode in effect (`security_mode` or its default).
    pub fn mode(&self) -> Mode {
        self.security_mode.unwrap_or(match self.security_policy {
            Policy::None => Mode::None,
            _ => Mode::SignAndEncrypt,
        })
    }

    /// Makes relative paths relative to the folder of `file` (the config file) and defaults
    /// `pki_dir` to `<state_dir>/pki`. The agent calls this once at load.
    pub fn resolve_paths(&mut self, file: &Path, state_dir: &Path) {
        self.config_file = Some(file.to_path_buf());
        let base = file.parent().unwrap_or(Path::new("."));
        if self.pki_dir.is_none() {
            self.pki_dir = Some(state_dir.join("pki"));
        }
        for p in [
            &mut self.pki_dir,
            &mut self.password_file,
            &mut self.user_certificate,
            &mut self.user_private_key,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The certificate store folder (`pki_dir`, or `pki` in the working directory when the
    /// agent did not resolve it).
    pub fn pki(&self) -> PathBuf {
        self.pki_dir.clone().unwrap_or_else(|| PathBuf::from("pki"))
    }
}

fn default_publishing_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_sampling_interval() -> Duration {
    Duration::from_millis(50)
}
fn default_queue_size() -> u32 {
    10
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_session_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_reconnect_min() -> Duration {
    Duration::from_millis(500)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(30)
}
fn default_accepted() -> i64 {
    1
}
fn default_rejected() -> i64 {
    2
}
