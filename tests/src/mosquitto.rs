//! A real mosquitto broker on a free port of 127.0.0.1, with its config, log and (optional)
//! persistence file in a temporary folder.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{kill9, spawn_tied, terminate};
use crate::wait::{free_port, poll_until};

/// How long a start may take until the port accepts connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) mosquitto. Dropping it kills the broker.
pub struct Mosquitto {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

/// The mosquitto executable; panics with an install hint when it is missing.
fn mosquitto_bin() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("mosquitto"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([
            "/usr/sbin/mosquitto".into(),
            "/usr/local/sbin/mosquitto".into(),
        ])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mosquitto is not installed, and the black-box tests need a real broker: \
                 install it (Debian/Ubuntu: `sudo apt-get install mosquitto`; scripts/test does it)"
            )
        })
}

impl Mosquitto {
    /// A broker without persistence on a free port.
    pub fn start() -> Mosquitto {
        Self::start_with(None, false)
    }

    /// A broker that saves its state (sessions, queued messages, retained messages) to a file
    /// in its folder when it is stopped with SIGTERM ([`Mosquitto::stop`]) and loads it when
    /// started again. It never autosaves, so after a SIGKILL it comes back with the state of
    /// its last clean stop.
    pub fn start_persistent() -> Mosquitto {
        Self::start_with(None, true)
    }

    /// A broker on `port` if given (else a free one), persistent or not.
    pub fn start_with(port: Option<u16>, persistence: bool) -> Mosquitto {
        Self::start_configured(port, persistence, "allow_anonymous true\n")
    }

    /// A broker whose listener takes `listener_options` (mosquitto.conf lines such as
    /// `cafile …`, `require_certificate true`, `allow_anonymous false`, `password_file …`).
    pub fn start_secured(listener_options: &str) -> Mosquitto {
        Self::start_configured(None, false, listener_options)
    }

    fn start_configured(port: Option<u16>, persistence: bool, options: &str) -> Mosquitto {
        let dir = tempfile::Builder::new()
            .prefix("tg-mosquitto-")
            .tempdir()
            .expect("tempdir");
        let mut broker = Mosquitto {
            dir,
            port: port.unwrap_or_else(free_port),
            child: None,
        };
        let mut attempt = 0;
        loop {
            write_config(broker.dir.path(), broker.port, persistence, options);
            match broker.spawn() {
                Ok(()) => return broker,
                // Another test took the free port in the meantime: try another one.
                Err(log) if port.is_none() && attempt < 5 && port_is_taken(&log) => {
                    attempt += 1;
                    broker.port = free_port();
                }
                Err(log) => panic!("mosquitto did not start on port {}:\n{log}", broker.port),
            }
        }
    }

    /// Its folder (for certificates and password files the test writes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's log so far (its log file, then what it wrote to stderr).
    pub fn log(&self) -> String {
        self.log_since((0, 0))
    }

    fn log_files(&self) -> [String; 2] {
        ["mosquitto.log", "stderr.log"]
            .map(|f| fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
    }

    /// The log written after the two files had the lengths `since`.
    fn log_since(&self, since: (usize, usize)) -> String {
        let [log, stderr] = self.log_files();
        format!(
            "{}{}",
            log.get(since.0..).unwrap_or_default(),
            stderr.get(since.1..).unwrap_or_default()
        )
    }

    /// True while the broker process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL: the broker vanishes without a word and without saving anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill9(&mut child);
        }
    }

    /// SIGTERM: a clean shutdown (clients see the connection close; a persistent broker saves
    /// its state). Panics if it does not exit within 10 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let (_, clean) = terminate(&mut child, Duration::from_secs(10));
            assert!(
                clean,
                "mosquitto did not stop within 10s of SIGTERM\n{}",
                self.log()
            );
        }
    }

    /// Starts the broker again on the same port (killing it first if it still runs).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The port can stay busy for a moment after a kill; try again.
                Err(log) if Instant::now() < deadline && port_is_taken(&log) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(log) => panic!("mosquitto did not restart on port {}:\n{log}", self.port),
            }
        }
    }

    /// Spawns the broker and waits until its port accepts connections. On failure returns what
    /// it logged during this attempt; `child` is then `None`.
    fn spawn(&mut self) -> Result<(), String> {
        let [log, stderr] = self.log_files();
        let logged_before = (log.len(), stderr.len());
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .expect("open mosquitto's stderr log");
        let mut child = spawn_tied(
            Command::new(mosquitto_bin())
                .arg("-c")
                .arg(self.dir.path().join("mosquitto.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr),
        )
        .expect("spawn mosquitto");
        let port = self.port;
        let mut exited = false;
        let ready = poll_until(START_TIMEOUT, Duration::from_millis(10), || {
            if child.try_wait().ok().flatten().is_some() {
                exited = true;
                return true;
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if ready && !exited {
            self.child = Some(child);
            return Ok(());
        }
        if !exited {
            kill9(&mut child);
        }
        Err(self.log_since(logged_before))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn port_is_taken(log: &str) -> bool {
    log.contains("Address already in use")
}

fn write_config(dir: &Path, port: u16, persistence: bool, options: &str) {
    let dir_s = dir.display();
    // As root, mosquitto would switch to the `mosquitto` user, which cannot write in our
    // private temporary folder.
    let user = if nix::unistd::geteuid().is_root() {
        "user root\n"
    } else {
        ""
    };
    let config = format!(
        "# written by tracegate-tests\n\
         {user}\
         per_listener_settings true\n\
         listener {port} 127.0.0.1\n\
         {options}\
         set_tcp_nodelay true\n\
         persistence {persistence}\n\
         persistence_location {dir_s}/\n\
         autosave_interval 0\n\
         # Unlimited: a subscriber that is offline for a while must not lose queued events.\n\
         max_queued_messages 0\n\
         log_dest file {dir_s}/mosquitto.log\n\
         log_type error\nlog_type warning\nlog_type notice\nlog_type information\n\
         log_timestamp_format %H:%M:%S\n"
    );
    fs::write(dir.join("mosquitto.conf"), config).expect("write mosquitto.conf");
}
