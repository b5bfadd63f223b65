//! The context command (schema: docs/schema/context-command.schema.json), validated against
//! what the config allows. Pure code: bytes in, a new context state or a reason out.
//!
//! ```json
//! {"set": {"work_order": "WO-4711", "batch": "L-0815"}, "station": "st20",
//!  "replace": false, "correlation_id": "c-1", "reply_to": "mes/replies/line-3"}
//! ```
//!
//! - `set`: key → value (string) or null (remove the key). Required.
//! - `station`: the station whose own context changes; absent = the whole line.
//! - `replace`: true = the scope's context becomes exactly `set`; false (default) = merge.
//! - `correlation_id`, `reply_to`: for MQTT 3.1.1 clients; MQTT 5 correlation data and
//!   response topic take precedence.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ContextState, Values};
use crate::config::ContextConfig;

/// Largest command accepted, in bytes.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;
/// Most keys in one command.
pub const MAX_KEYS: usize = 32;
/// Longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 128;

/// The command as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Command {
    set: BTreeMap<String, Option<String>>,
    #[serde(default)]
    station: Option<String>,
    #[serde(default)]
    replace: bool,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
}

/// Where and how to answer, as far as the command says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyHints {
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
}

/// A command that passed validation: the state it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub next: ContextState,
    /// The station the command addressed, if any.
    pub station: Option<String>,
}

/// Validates `payload` and applies it to `current`. `now_ms` becomes the new revision's
/// effective time. The hints are returned even for a rejected command when they could be read.
pub fn apply(
    payload: &[u8],
    config: &ContextConfig,
    current: &ContextState,
    now_ms: i64,
) -> (ReplyHints, Result<Accepted, String>) {
    if payload.len() > MAX_COMMAND_BYTES {
        return (
            ReplyHints::default(),
            Err(format!(
                "command is {} bytes; at most {MAX_COMMAND_BYTES} are accepted",
                payload.len()
            )),
        );
    }
    let command: Command = match serde_json::from_slice(payload) {
        Ok(c) => c,
        Err(e) => {
            return (
                hints_of(payload),
                Err(format!("not a valid context command: {e}")),
            );
        }
    };
    let hints = ReplyHints {
        correlation_id: command.correlation_id.clone(),
        reply_to: command.reply_to.clone(),
    };
    if let Some(to) = &hints.reply_to {
        if to.is_empty() || to.len() > 256 || to.contains(['+', '#']) {
            return (
                ReplyHints {
                    reply_to: None,
                    ..hints
                },
                Err("reply_to must be a topic without wildcards, at most 256 characters".into()),
            );
        }
    }
    let result = validate(&command, config).map(|allowed_scope| {
        let mut next = current.clone();
        next.revision = current.revision + 1;
        next.effective_ms = now_ms;
        let scope: &mut Values = match &command.station {
            Some(st) => next.stations.entry(st.clone()).or_default(),
            None => &mut next.line,
        };
        if command.replace {
            scope.clear();
        }
        for (k, v) in &command.set {
            match v {
                Some(v) => scope.insert(k.clone(), v.clone()),
                None => scope.remove(k),
            };
        }
        if let Some(st) = &command.station {
            if next.stations.get(st).is_some_and(|v| v.is_empty()) {
                next.stations.remove(st);
            }
        }
        let _ = allowed_scope;
        Accepted {
            next,
            station: command.station.clone(),
        }
    });
    (hints, result)
}

/// Checks keys and values against the config; returns the allowed keys of the scope.
fn validate<'a>(c: &Command, config: &'a ContextConfig) -> Result<&'a [String], String> {
    let allowed: &[String] = match &c.station {
        None => {
            if config.keys.is_empty() {
                return Err(
                    "this line accepts no line-wide context (no [context] keys configured)".into(),
                );
            }
            &config.keys
        }
        Some(st) => match config.stations.get(st) {
            Some(keys) => keys,
            None => {
                return Err(format!(
                    "station {st:?} takes no context of its own (not in [context.stations])"
                ));
            }
        },
    };
    if c.set.is_empty() && !c.replace {
        return Err("`set` names no key".into());
    }
    if c.set.len() > MAX_KEYS {
        return Err(format!(
            "`set` has {} keys; at most {MAX_KEYS}",
            c.set.len()
        ));
    }
    for (k, v) in &c.set {
        if !allowed.iter().any(|a| a == k) {
            let scope = c
                .station
                .as_deref()
                .map_or("this line".to_string(), |s| format!("station {s}"));
            return Err(format!(
                "key {k:?} is not allowed for {scope}; allowed: {}",
                allowed.join(", ")
            ));
        }
        if let Some(v) = v {
            if v.is_empty()
                || v.chars().count() > MAX_VALUE_CHARS
                || v.chars().any(char::is_control)
            {
                return Err(format!(
                    "value of {k:?} must be 1–{MAX_VALUE_CHARS} characters without control characters"
                ));
            }
        }
    }
    Ok(allowed)
}

/// Best effort: the correlation id and reply topic of a command that is otherwise invalid, so
/// the rejection can still reach the sender.
fn hints_of(payload: &[u8]) -> ReplyHints {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    ReplyHints {
        correlation_id: text("correlation_id"),
        reply_to: text("reply_to")
            .filter(|t| !t.is_empty() && t.len() <= 256 && !t.contains(['+', '#'])),
    }
}

#[cfg(test)]
mod tests;
