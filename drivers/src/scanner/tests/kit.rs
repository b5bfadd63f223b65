//! Test helpers: the test plays the agent (receives submissions, answers verdicts) and the
//! device (a pty master or a TCP peer).

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::reading::{Reading, ReadingKind, Sink, Submission, Verdict};
use crate::scanner::{ScannerConfig, run};
use crate::shutdown::{Shutdown, ShutdownTrigger};

/// Upper bound for anything a test waits for; never a sleep.
pub const LIMIT: Duration = Duration::from_secs(5);

/// Awaits `future`, failing the test if it takes longer than [`LIMIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Parses a scanner table the way the agent does (after taking its own keys) and validates it.
pub fn config(toml_text: &str) -> ScannerConfig {
    let config: ScannerConfig = toml::from_str(toml_text).expect("config parses");
    config.validate().expect("config is valid");
    config
}

/// The agent's side of a sink.
pub struct Agent {
    pub rx: mpsc::Receiver<Submission>,
}

impl Agent {
    pub fn new(capacity: usize) -> (Agent, Sink) {
        let (sink, rx) = Sink::channel(capacity);
        (Agent { rx }, sink)
    }

    /// The next submission.
    pub async fn next(&mut self) -> Submission {
        within("a submission", self.rx.recv())
            .await
            .expect("driver is running")
    }

    /// The next submission, which must be `kind`.
    pub async fn expect(&mut self, kind: ReadingKind) -> Submission {
        let submission = self.next().await;
        assert_eq!(submission.reading.kind, kind);
        submission
    }

    /// Expects the code `text` and commits it as valid; returns the reading.
    pub async fn commit_code(&mut self, text: &str) -> Reading {
        let submission = self.next().await;
        assert_eq!(submission.reading.kind, code(text));
        let _ = submission.reply.send(valid(1));
        submission.reading
    }
}

pub fn code(text: &str) -> ReadingKind {
    ReadingKind::Code(text.as_bytes().to_vec())
}

pub fn valid(seq: u64) -> Verdict {
    Verdict::Committed { seq, valid: true }
}

/// A driver running `run` in a task, stopped on drop of the trigger.
pub struct Driver {
    pub trigger: ShutdownTrigger,
    pub task: JoinHandle<()>,
}

impl Driver {
    pub fn start(config: ScannerConfig, sink: Sink) -> Driver {
        let (trigger, shutdown): (ShutdownTrigger, Shutdown) = Shutdown::new();
        let task = tokio::spawn(run(config, "test-scanner".into(), sink, shutdown));
        Driver { trigger, task }
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn stop(self) {
        self.trigger.trigger();
        within("the driver to stop", self.task)
            .await
            .expect("driver task did not panic");
    }
}

/// Reads from `reader` until exactly `len` bytes arrived.
pub async fn read_exact(reader: &mut (impl AsyncRead + Unpin), len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    within("bytes from the driver", reader.read_exact(&mut buf))
        .await
        .expect("read succeeds");
    buf
}

/// A pseudo-terminal pair: the test writes to the master as the scanner would; the driver opens
/// the slave by its path.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    /// Held so the slave stays set to raw mode until the driver opens it.
    _slave: OwnedFd,
    pub path: PathBuf,
}

impl Pty {
    pub fn open() -> Pty {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut termios = tcgetattr(&pty.slave).expect("tcgetattr");
        // Raw from the start, so bytes written before the driver opens are not cooked/echoed.
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).expect("tcsetattr");
        let path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
        fcntl(&pty.master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
        // SAFETY: an OwnedFd stays open and returns the same descriptor until dropped.
        let master = unsafe { AsyncFd::register(pty.master) }.expect("register master");
        Pty {
            master,
            _slave: pty.slave,
            path,
        }
    }

    /// Writes all of `bytes` into the master (the scanner sending).
    pub async fn write(&self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let mut guard = within("pty writable", self.master.writable())
                .await
                .unwrap();
            if let Ok(written) = guard.try_io(|fd| Ok(nix::unistd::write(fd.get_ref(), bytes)?)) {
                bytes = &bytes[written.expect("write to pty master")..];
            }
        }
    }

    /// Reads exactly `len` bytes from the master (what the driver wrote to the scanner).
    pub async fn read_exact(&self, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < len {
            let mut guard = within("bytes on the pty", self.master.readable())
                .await
                .unwrap();
            let mut buf = vec![0; len - out.len()];
            if let Ok(read) = guard.try_io(|fd| Ok(nix::unistd::read(fd.get_ref(), &mut buf)?)) {
                let n = read.expect("read from pty master");
                out.extend_from_slice(&buf[..n]);
            }
        }
        out
    }
}
