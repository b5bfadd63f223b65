//! The bench's own mosquitto on a free port of 127.0.0.1 (never 1883). Persistent sessions are
//! saved only on a clean stop (no autosave), so the broker does no disk I/O while measured; the
//! subscriber's session survives the outage of the backlog phase.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{find_program, free_port, poll_until, spawn_tied, terminate};

pub struct Broker {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    bin: PathBuf,
}

impl Broker {
    /// Writes the config into `dir` and starts the broker on a free port.
    pub fn start(dir: &Path) -> Result<Broker, String> {
        let bin = find_program(
            "mosquitto",
            &["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"],
        )
        .ok_or("mosquitto is not installed (Debian: apt-get install mosquitto)")?;
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let mut b = Broker {
            dir: dir.to_path_buf(),
            port: free_port(),
            child: None,
            bin,
        };
        for _ in 0..5 {
            b.write_config();
            match b.spawn() {
                Ok(()) => return Ok(b),
                Err(log) if log.contains("Address already in use") => b.port = free_port(),
                Err(log) => return Err(format!("mosquitto did not start: {log}")),
            }
        }
        Err("mosquitto: no free port".into())
    }

    fn write_config(&self) {
        let d = self.dir.display();
        let user = if nix::unistd::geteuid().is_root() {
            "user root\n"
        } else {
            ""
        };
        let conf = format!(
            "# written by tracegate-bench\n\
             {user}\
             listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             set_tcp_nodelay true\n\
             persistence true\n\
             persistence_location {d}/\n\
             autosave_interval 0\n\
             # unlimited: the subscriber must never lose an event, and must not be the bottleneck\n\
             max_queued_messages 0\n\
             max_inflight_messages 0\n\
             log_dest file {d}/mosquitto.log\n\
             log_type error\nlog_type warning\nlog_type notice\n",
            port = self.port
        );
        fs::write(self.dir.join("mosquitto.conf"), conf).expect("write mosquitto.conf");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.log"))
            .map_err(|e| e.to_string())?;
        let mut child = spawn_tied(
            Command::new(&self.bin)
                .arg("-c")
                .arg(self.dir.join("mosquitto.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr),
        )
        .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        let port = self.port;
        let mut exited = false;
        let ready = poll_until(Duration::from_secs(10), Duration::from_millis(5), || {
            if let Ok(Some(_)) = child.try_wait() {
                exited = true;
                return true;
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if ready && !exited {
            self.child = Some(child);
            return Ok(());
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(self.log())
    }

    /// The broker's log and stderr.
    pub fn log(&self) -> String {
        ["mosquitto.log", "stderr.log"]
            .iter()
            .map(|f| fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("")
    }

    /// Clean stop (SIGTERM; the subscriber's session is saved).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c, Duration::from_secs(10));
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let mut last = String::new();
        for _ in 0..100 {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(log) if log.contains("Address already in use") => {
                    last = log;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(log) => return Err(log),
            }
        }
        Err(last)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
