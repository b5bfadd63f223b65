//! The agent under test: the real `tracegate` binary as a separate process, with a generated
//! config, its queue on the real disk, a TCP-scanner source in push mode (the bench dials it as
//! the reader) and `/metrics` on a free port.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{ProcSnap, free_port, proc_snap, spawn_tied, terminate};

/// The topic prefix of the agent's events; the subscriber listens below `tgbench/`.
pub const TOPIC_PREFIX: &str = "tgbench/line";
/// The raw publisher's topics replace the prefix by this one (same length).
pub const RAW_PREFIX: &str = "tgbench/raw0";

pub struct Agent {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub scanner_port: u16,
    pub metrics_port: u16,
    bin: PathBuf,
    child: Option<Child>,
}

/// What differs between the bench's agents.
pub struct AgentSetup {
    pub broker_port: u16,
    pub max_events: u64,
    /// `section.key=value` overrides (`--set`), value in TOML syntax.
    pub overrides: Vec<String>,
    /// Extra environment for the agent (`--agent-env K=V`).
    pub env: Vec<(String, String)>,
}

/// Applies `section.key=value` overrides to the generated config: the key's line in that
/// section is replaced, or added under the section's header.
pub fn apply_overrides(config: &str, overrides: &[String]) -> Result<String, String> {
    let mut lines: Vec<String> = config.lines().map(str::to_string).collect();
    for o in overrides {
        let (path, value) = o
            .split_once('=')
            .ok_or(format!("--set {o}: expected section.key=value"))?;
        let (section, key) = path
            .trim()
            .split_once('.')
            .ok_or(format!("--set {o}: expected section.key=value"))?;
        let header = if section == "sources" {
            "[[sources]]".to_string()
        } else {
            format!("[{section}]")
        };
        let start = lines
            .iter()
            .position(|l| l.trim() == header)
            .ok_or(format!("--set {o}: no section {header}"))?;
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .map_or(lines.len(), |p| start + 1 + p);
        let new = format!("{key} = {}", value.trim());
        match lines[start + 1..end]
            .iter()
            .position(|l| l.split('=').next().map(str::trim) == Some(key))
        {
            Some(p) => lines[start + 1 + p] = new,
            None => lines.insert(start + 1, new),
        }
    }
    Ok(lines.join("\n") + "\n")
}

/// Whether the agent speaks MQTT 5 with these overrides: its default ("auto") does with
/// mosquitto 2, `mqtt.protocol = "3.1.1"` does not.
pub fn speaks_mqtt5(overrides: &[String]) -> bool {
    !overrides.iter().any(|o| {
        o.split_once('=').is_some_and(|(k, v)| {
            k.trim() == "mqtt.protocol" && v.trim().trim_matches(['"', '\'']) == "3.1.1"
        })
    })
}

/// The generated config. Everything not set here is the product's default (commit_window 5ms,
/// commit_batch 128, inflight 64, retain_events 100000, heartbeat 60s, keepalive 30s).
pub fn config_toml(s: &AgentSetup, scanner_port: u16, metrics_port: u16) -> String {
    format!(
        r#"# written by tracegate-bench
[agent]
id = "bench-gw"
site = "bench"
line = "line"

[store]
path = "queue.db"
max_events = {max_events}
max_bytes = "8 GiB"

[mqtt]
url = "mqtt://127.0.0.1:{broker}"
topic_prefix = "{TOPIC_PREFIX}"
# the backlog phase measures drain, not the reconnect backoff (default 30s)
reconnect_min = "100ms"
reconnect_max = "1s"

[ops]
listen = "127.0.0.1:{metrics_port}"

[[sources]]
id = "st10-reader"
type = "scanner"
station = "st10"
validation = "gs1"
aim = true
dedup_window = "2s"
transport = "tcp_server"
listen = "127.0.0.1:{scanner_port}"
max_connections = 1
terminator = "crlf"
accept_reply = "OK\r"
reject_reply = "NG\r"
"#,
        max_events = s.max_events,
        broker = s.broker_port,
    )
}

impl Agent {
    /// Writes the config into `dir` (created) and starts `tracegate run`.
    pub fn start(bin: &Path, dir: &Path, setup: &AgentSetup) -> Result<Agent, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let scanner_port = free_port();
        let metrics_port = free_port();
        let config = dir.join("line.toml");
        let text = apply_overrides(
            &config_toml(setup, scanner_port, metrics_port),
            &setup.overrides,
        )?;
        fs::write(&config, text).map_err(|e| e.to_string())?;
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .map_err(|e| e.to_string())?;
        let child = spawn_tied(
            Command::new(bin)
                .arg("run")
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "info")
                .envs(setup.env.iter().map(|(k, v)| (k, v)))
                .env_remove("JOURNAL_STREAM")
                .env_remove("NOTIFY_SOCKET")
                .env_remove("WATCHDOG_USEC")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr),
        )
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut agent = Agent {
            dir: dir.to_path_buf(),
            config,
            scanner_port,
            metrics_port,
            bin: bin.to_path_buf(),
            child: Some(child),
        };
        // Up when /metrics answers.
        let up =
            crate::util::poll_until(Duration::from_secs(20), Duration::from_millis(20), || {
                agent.metrics().is_ok() || agent.exited()
            });
        if !up || agent.exited() {
            return Err(format!("the agent did not come up\n{}", agent.log_tail(30)));
        }
        Ok(agent)
    }

    fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn snap(&self) -> ProcSnap {
        proc_snap(self.pid()).unwrap_or_default()
    }

    /// The last `n` lines of the agent's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "---- agent log (last {n} lines) ----\n{}\n----",
            lines[lines.len().saturating_sub(n)..].join("\n")
        )
    }

    /// GET /metrics.
    pub fn metrics(&self) -> Result<String, String> {
        let mut s =
            TcpStream::connect(("127.0.0.1", self.metrics_port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        if !out.starts_with("HTTP/1.1 200") {
            return Err(out.lines().next().unwrap_or("").to_string());
        }
        Ok(body.to_string())
    }

    /// One sample's value from /metrics (`name` including labels, as exposed).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().ok()?;
        metric_value(&text, name)
    }

    /// `tracegate queue stats --config F --json`.
    pub fn queue_stats(&self) -> Result<serde_json::Value, String> {
        let out = Command::new(&self.bin)
            .args(["queue", "stats", "--json", "--config"])
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// SIGTERM and a bounded wait; true when it stopped by itself.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(mut c) => terminate(&mut c, Duration::from_secs(20)),
            None => true,
        }
    }

    /// Size of the queue's files (database + WAL), bytes.
    pub fn store_bytes(&self) -> u64 {
        ["queue.db", "queue.db-wal", "queue.db-shm"]
            .iter()
            .filter_map(|f| fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The value of the sample `name` (with its labels, exactly as exposed) in exposition text.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let rest = rest.strip_prefix(' ')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A histogram's cumulative buckets (upper bound in seconds, count), from exposition text.
pub fn histogram(text: &str, family: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{family}_bucket{{le=\"");
    let mut out: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, rest) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The bucket bound under which the quantile `q` of the observations between two scrapes lies
/// (`before` may be empty). None when nothing was observed.
pub fn histogram_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map(|x| x.1)
                .unwrap_or(0.0);
            (*le, c - b)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    delta
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_publisher_speaks_what_the_overrides_make_the_agent_speak() {
        assert!(speaks_mqtt5(&[]));
        assert!(speaks_mqtt5(&["mqtt.protocol=\"5\"".into()]));
        assert!(speaks_mqtt5(&["mqtt.protocol = \"auto\"".into()]));
        assert!(!speaks_mqtt5(&["mqtt.protocol = \"3.1.1\"".into()]));
        assert!(!speaks_mqtt5(&[
            "store.commit_window=\"4ms\"".into(),
            "mqtt.protocol='3.1.1'".into()
        ]));
    }
}
