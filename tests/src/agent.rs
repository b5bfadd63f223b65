//! The real `tracegate` binary: `run` as a child process with its config and queue in a
//! temporary folder, and the `check` / `queue stats` commands.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tempfile::TempDir;

use crate::process::{kill9, spawn_tied, terminate, tracegate_bin};
use crate::wait::{poll_until, wait_until};

/// The config's file name inside the agent's folder (it appears in `check`'s messages).
pub const CONFIG_FILE: &str = "line.toml";

/// The agent's log filter: `info,tracegate=debug`, or `TRACEGATE_TEST_LOG` when set (e.g.
/// `trace` to see every byte a driver reads and writes).
fn log_filter() -> String {
    std::env::var("TRACEGATE_TEST_LOG").unwrap_or_else(|_| "info,tracegate=debug".into())
}

/// `tracegate queue stats --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueStats {
    pub depth: u64,
    pub bytes: u64,
    pub oldest_seq: Option<u64>,
    pub oldest_captured_ms: Option<i64>,
    pub oldest_age_ms: Option<i64>,
    pub next_seq: u64,
    pub dropped_total: u64,
    pub max_events: u64,
    pub max_bytes: u64,
    pub overflow: String,
    pub full: bool,
    pub path: String,
    /// Published events waiting for the consumer's confirmation ([confirm] mode).
    #[serde(default)]
    pub awaiting: u64,
    /// Delivered (or confirmed) events kept for replay.
    #[serde(default)]
    pub retained: u64,
}

/// The agent's stderr log file.
#[derive(Debug, Clone)]
pub struct AgentLog(PathBuf);

impl AgentLog {
    /// The last `n` lines, framed for a failure message.
    pub fn tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.0).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!("---- agent log (last {n} lines) ----\n{tail}\n----")
    }
}

/// A `tracegate run` process. Dropping it kills the agent (SIGKILL).
pub struct Agent {
    dir: TempDir,
    config: PathBuf,
    child: Option<Child>,
    runs: u32,
    /// Extra environment for every run.
    env: Vec<(String, String)>,
}

impl Agent {
    /// Writes `config_toml` to a fresh folder and starts the agent on it. Put
    /// `path = "queue.db"` in `[store]`: relative paths resolve against the config's folder.
    pub fn start(config_toml: &str) -> Agent {
        Self::start_with_env(config_toml, &[])
    }

    /// Like [`Agent::start`], with extra environment variables (e.g. systemd's NOTIFY_SOCKET).
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("tg-agent-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join(CONFIG_FILE);
        fs::write(&config, config_toml).expect("write the agent's config");
        let mut agent = Agent {
            dir,
            config,
            child: None,
            runs: 0,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        agent.spawn();
        agent
    }

    /// Runs `tracegate <args> --config <this agent's config>`; returns exit code, stdout and
    /// stderr.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(tracegate_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .output()
            .expect("run tracegate");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .expect("open the agent's stderr log");
        let mut marker = stderr.try_clone().expect("clone log handle");
        use std::io::Write;
        let _ = writeln!(marker, "==== tracegate-tests: run {} ====", self.runs);
        let child = spawn_tied(
            Command::new(tracegate_bin())
                .arg("run")
                .arg("--config")
                .arg(&self.config)
                .env("RUST_LOG", log_filter())
                .env_remove("JOURNAL_STREAM")
                .env_remove("NOTIFY_SOCKET")
                .env_remove("WATCHDOG_USEC")
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr),
        )
        .expect("spawn tracegate run");
        self.child = Some(child);
    }

    /// The agent's folder (config, queue, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("agent.stderr.log")
    }

    /// Everything the agent wrote to stderr, all runs (separated by marker lines).
    pub fn stderr_text(&self) -> String {
        fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        self.log().tail(n)
    }

    /// A handle on the log file that does not borrow the agent (for closures that run while
    /// the agent is borrowed mutably elsewhere).
    pub fn log(&self) -> AgentLog {
        AgentLog(self.stderr_path())
    }

    /// Waits until the log (all runs) contains `needle` at least `times` times.
    pub fn wait_log(&self, needle: &str, times: usize, timeout: Duration) {
        wait_until(
            &format!("{times}× {needle:?} in the agent's log"),
            timeout,
            || self.stderr_text().matches(needle).count() >= times,
            || self.log_tail(40),
        );
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL: the agent dies mid-whatever, as on a power cut of the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill9(&mut child);
        }
    }

    /// Sends `signal` to the running agent (SIGSTOP/SIGCONT to freeze and thaw it).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let child = self.child.as_ref().expect("the agent is not running");
        crate::process::signal(child, signal);
    }

    /// SIGTERM and wait (up to 15 s) for a clean stop; panics if it had to be killed.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the agent is not running");
        let (status, clean) = terminate(&mut child, Duration::from_secs(15));
        assert!(
            clean,
            "the agent did not stop within 15s of SIGTERM\n{}",
            self.log_tail(40)
        );
        status
    }

    /// Starts the agent again on the same config and queue (killing it first if it runs).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// `tracegate queue stats --config <file> --json`, raw; panics if the command fails.
    pub fn queue_stats_json(&self) -> Value {
        self.try_queue_stats_json()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `tracegate queue stats --config <file> --json`, raw, or why it failed (e.g. the agent
    /// has not created its queue yet).
    pub fn try_queue_stats_json(&self) -> Result<Value, String> {
        let out = Command::new(tracegate_bin())
            .args(["queue", "stats", "--json", "--config"])
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .output()
            .expect("run tracegate queue stats");
        if !out.status.success() {
            return Err(format!(
                "tracegate queue stats failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "queue stats printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `tracegate queue stats --json`, typed; panics if the command fails.
    pub fn queue_stats(&self) -> QueueStats {
        let v = self.queue_stats_json();
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("queue stats JSON {v}: {e}"))
    }

    /// Polls `queue stats` (every 100 ms) until `done` holds; panics after `timeout` with the
    /// last figures (or the last error: a queue the agent has not created yet counts as not
    /// done) and the log.
    pub fn wait_queue(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&QueueStats) -> bool,
    ) -> QueueStats {
        let mut last: Result<QueueStats, String> = Err("not polled".into());
        let ok = poll_until(timeout, Duration::from_millis(100), || {
            last = self.try_queue_stats_json().and_then(|v| {
                serde_json::from_value(v.clone()).map_err(|e| format!("queue stats JSON {v}: {e}"))
            });
            last.as_ref().is_ok_and(&done)
        });
        assert!(
            ok,
            "timed out after {timeout:?} waiting for the queue: {what}; last stats {last:?}\n{}",
            self.log_tail(40)
        );
        last.expect("done holds")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `tracegate check --config <dir>/line.toml` on `config_toml`: (exit code, stdout, stderr).
pub fn check(config_toml: &str) -> (i32, String, String) {
    check_with_files(config_toml, &[]).0
}

/// Like [`check`], with extra files written next to the config (e.g. a password file). Also
/// returns the folder, which lives as long as the returned `TempDir`.
pub fn check_with_files(
    config_toml: &str,
    files: &[(&str, &str)],
) -> ((i32, String, String), TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("tg-check-")
        .tempdir()
        .expect("tempdir");
    for (name, content) in files {
        fs::write(dir.path().join(name), content).expect("write a file next to the config");
    }
    let config = dir.path().join(CONFIG_FILE);
    fs::write(&config, config_toml).expect("write the config");
    (check_file(&config), dir)
}

/// `tracegate check --config <path>`: (exit code, stdout, stderr).
pub fn check_file(path: &Path) -> (i32, String, String) {
    let out = Command::new(tracegate_bin())
        .arg("check")
        .arg("--config")
        .arg(path)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tracegate check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
