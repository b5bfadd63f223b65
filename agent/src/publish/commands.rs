//! Commands that arrive over MQTT: line context from MES on `<prefix>/cmd/context`. Each is
//! validated, stored durably, applied, and answered on the reply topic — or rejected with a
//! reason, changing nothing.

use std::time::SystemTime;

use serde::Serialize;

use crate::context::Values;
use crate::context::command::{self, Accepted};
use crate::event::epoch_ms;
use crate::ops::state::AgentState;

/// An incoming command, whatever the MQTT version.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    /// MQTT 5 Response Topic.
    pub response_topic: Option<String>,
    /// MQTT 5 Correlation Data.
    pub correlation_data: Option<Vec<u8>>,
}

/// A reply to publish.
#[derive(Debug, Clone)]
pub struct Reply {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Echoed as MQTT 5 Correlation Data.
    pub correlation_data: Option<Vec<u8>>,
}

#[derive(Serialize)]
struct ReplyBody<'a> {
    schema: &'static str,
    agent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    station: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Values>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Handles a context command; returns the reply to publish.
pub async fn context(state: &AgentState, msg: &Incoming, default_reply_topic: &str) -> Reply {
    let current = state.context.current();
    let (hints, result) = command::apply(
        &msg.payload,
        &state.context_config,
        &current,
        epoch_ms(SystemTime::now()),
    );
    let result = match result {
        Ok(accepted) => store(state, accepted).await,
        Err(reason) => Err(reason),
    };
    let correlation_id = hints.correlation_id.or_else(|| {
        msg.correlation_data
            .as_ref()
            .and_then(|c| String::from_utf8(c.clone()).ok())
    });
    let body = match result {
        Ok(accepted) => {
            let scope = match &accepted.station {
                Some(st) => accepted.next.stations.get(st).cloned().unwrap_or_default(),
                None => accepted.next.line.clone(),
            };
            tracing::info!(revision = accepted.next.revision, station = accepted.station.as_deref().unwrap_or("(line)"), context = ?scope, "line context changed by command");
            state
                .metrics
                .context_commands
                .get_or_create(&result_label("accepted"))
                .inc();
            ReplyBody {
                schema: "tracegate.context-reply/1",
                agent: &state.agent,
                correlation_id,
                accepted: true,
                revision: Some(accepted.next.revision),
                station: accepted.station,
                context: Some(scope),
                reason: None,
            }
        }
        Err(reason) => {
            tracing::warn!(%reason, "context command rejected");
            state
                .metrics
                .context_commands
                .get_or_create(&result_label("rejected"))
                .inc();
            ReplyBody {
                schema: "tracegate.context-reply/1",
                agent: &state.agent,
                correlation_id,
                accepted: false,
                revision: None,
                station: None,
                context: None,
                reason: Some(reason),
            }
        }
    };
    Reply {
        topic: msg
            .response_topic
            .clone()
            .or(hints.reply_to)
            .unwrap_or_else(|| default_reply_topic.to_string()),
        payload: serde_json::to_vec(&body).unwrap_or_default(),
        correlation_data: msg.correlation_data.clone(),
    }
}

/// Stores the new revision, then makes it current.
async fn store(state: &AgentState, accepted: Accepted) -> Result<Accepted, String> {
    state
        .queue
        .set_context(accepted.next.clone())
        .await
        .map_err(|e| format!("the context could not be stored: {e}"))?;
    state.context.push(accepted.next.clone());
    Ok(accepted)
}

fn result_label(result: &str) -> crate::ops::metrics::ResultLabel {
    crate::ops::metrics::ResultLabel {
        result: result.into(),
    }
}
