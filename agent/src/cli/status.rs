//! `tracegate status`: asks the running agent over its control socket.

use anyhow::bail;
use hyper::Method;

use crate::config::Config;
use crate::ops::client;

/// Prints the running agent's status.
pub async fn status(config: &Config, json: bool) -> anyhow::Result<()> {
    let (code, body) = client::request(&config.control_socket(), Method::GET, "/status").await?;
    if !code.is_success() {
        bail!(
            "the agent answered {code}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    if json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(());
    }
    let s: serde_json::Value = serde_json::from_slice(&body)?;
    let q = &s["queue"];
    println!(
        "agent      {} ({} / {}), version {} ({}), up {}s, {}",
        s["agent"].as_str().unwrap_or("?"),
        s["site"].as_str().unwrap_or("?"),
        s["line"].as_str().unwrap_or("?"),
        s["version"].as_str().unwrap_or("?"),
        s["revision"].as_str().unwrap_or("?"),
        s["uptime_secs"],
        if s["ready"].as_bool() == Some(true) {
            "ready"
        } else {
            "NOT READY"
        },
    );
    println!(
        "broker     {}{}",
        if s["broker"]["connected"].as_bool() == Some(true) {
            "connected"
        } else {
            "DISCONNECTED"
        },
        s["broker"]["last_error"]
            .as_str()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default()
    );
    println!(
        "queue      {} events, {} bytes, oldest {}, next seq {}, {} retained{}",
        q["depth"],
        q["bytes"],
        q["oldest_age_secs"]
            .as_f64()
            .map_or("-".into(), |a| format!("{a:.0}")),
        q["next_seq"],
        q["retained"],
        if q["full"].as_bool() == Some(true) {
            ", FULL"
        } else {
            ""
        }
    );
    for src in s["sources"].as_array().into_iter().flatten() {
        println!(
            "source     {} ({}, station {}): device {}, {} captured, {} invalid, {} no-read, {} duplicates, {} published, last {}",
            src["id"].as_str().unwrap_or("?"),
            src["type"].as_str().unwrap_or("?"),
            src["station"].as_str().unwrap_or("?"),
            src["device"].as_str().unwrap_or("?"),
            src["captured"],
            src["invalid"],
            src["noread"],
            src["duplicates"],
            src["published"],
            src["last_event_at"].as_str().unwrap_or("-"),
        );
    }
    for alarm in s["alarms"].as_array().into_iter().flatten() {
        println!("ALARM      {}", alarm.as_str().unwrap_or("?"));
    }
    Ok(())
}
