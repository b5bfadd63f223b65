//! The retained `<prefix>/status` message: online on connect, offline as the last will and on
//! a clean stop.

use serde::Serialize;

use crate::config::Config;
use crate::context::ContextState;
use crate::event::rfc3339;

/// The status payload.
#[derive(Debug, Serialize)]
pub struct Status<'a> {
    pub schema: &'static str,
    /// "online" or "offline".
    pub state: &'static str,
    pub agent: &'a str,
    pub site: &'a str,
    pub line: &'a str,
    pub version: &'static str,
    /// SHA-256 of the config file the agent runs.
    pub config_hash: &'a str,
    /// When this status was decided.
    pub at: String,
    /// Why it is offline: "connection lost" (last will) or "stopped".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The line context in effect, so MES can see which order the agent stamps.
    pub context: &'a ContextState,
}

/// Schema name and version of status payloads.
pub const STATUS_SCHEMA: &str = "tracegate.status/1";

/// The status payload for `state`.
pub fn payload(
    config: &Config,
    online: bool,
    reason: Option<&'static str>,
    context: &ContextState,
) -> Vec<u8> {
    let status = Status {
        schema: STATUS_SCHEMA,
        state: if online { "online" } else { "offline" },
        agent: &config.agent.id,
        site: &config.agent.site,
        line: &config.agent.line,
        version: env!("CARGO_PKG_VERSION"),
        config_hash: &config.hash,
        at: rfc3339(std::time::SystemTime::now()),
        reason,
        context,
    };
    serde_json::to_vec(&status).unwrap_or_default()
}
