//! The periodic heartbeat on `<prefix>/status/heartbeat` (QoS 0, not retained): the essentials
//! of `tracegate status` for dashboards that only speak MQTT.

use serde::Serialize;

use crate::event::rfc3339;
use crate::ops::state::AgentState;

#[derive(Serialize)]
struct Heartbeat<'a> {
    schema: &'static str,
    agent: &'a str,
    at: String,
    uptime_secs: u64,
    queue_depth: u64,
    queue_oldest_age_secs: Option<f64>,
    queue_full: bool,
    next_seq: u64,
    sources: Vec<SourceBeat>,
    alarms: Vec<String>,
}

#[derive(Serialize)]
struct SourceBeat {
    id: String,
    device: &'static str,
    captured: u64,
    published: u64,
}

/// The heartbeat payload now.
pub async fn payload(state: &AgentState) -> Vec<u8> {
    let s = state.status().await;
    let beat = Heartbeat {
        schema: "tracegate.heartbeat/1",
        agent: &s.agent,
        at: rfc3339(std::time::SystemTime::now()),
        uptime_secs: s.uptime_secs,
        queue_depth: s.queue.stats.depth,
        queue_oldest_age_secs: s.queue.oldest_age_secs,
        queue_full: s.queue.full,
        next_seq: s.queue.stats.next_seq,
        sources: s
            .sources
            .iter()
            .map(|x| SourceBeat {
                id: x.id.clone(),
                device: x.device,
                captured: x.captured,
                published: x.published,
            })
            .collect(),
        alarms: s.alarms.clone(),
    };
    serde_json::to_vec(&beat).unwrap_or_default()
}
