//! The test plays the barcode reader: over a pseudo-terminal (serial) or TCP (either side
//! dialling). It writes codes and collects what the agent answers (accept/reject replies).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

use crate::wait::poll_until;

/// What the agent wrote back, and whether the connection ended.
#[derive(Default)]
struct Inbox {
    state: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

/// One reply read by [`FakeReader::next_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The bytes up to (without) the separator.
    Line(Vec<u8>),
    /// The agent closed the connection (or died) and everything before was taken.
    Closed,
    /// Nothing complete arrived in time.
    Timeout,
}

/// A reader the test drives.
pub struct FakeReader {
    writer: Box<dyn Write + Send>,
    inbox: Arc<Inbox>,
    /// How many reply bytes [`FakeReader::next_reply`] has consumed.
    taken: usize,
    /// The pty's slave side, held open so the pty stays alive while the agent reopens it.
    _slave: Option<OwnedFd>,
    /// The device path for the agent's `port` (pty only).
    pub path: Option<PathBuf>,
    /// The TCP connection, shut down on drop (the reading thread holds a clone of the socket,
    /// so dropping the writer alone would not close it).
    tcp: Option<TcpStream>,
}

impl FakeReader {
    /// A pseudo-terminal pair: the agent opens [`FakeReader::path`] (the slave) as its serial
    /// port; the test writes and reads the master. The slave starts in raw mode (no echo, no
    /// CR→LF translation) so nothing depends on when the agent configures it.
    pub fn pty() -> FakeReader {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut termios = tcgetattr(&pty.slave).expect("tcgetattr");
        cfmakeraw(&mut termios);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).expect("tcsetattr");
        let path = nix::unistd::ttyname(&pty.slave).expect("ttyname of the pty slave");
        let master = File::from(pty.master);
        let reading = master.try_clone().expect("dup pty master");
        let mut reader = Self::with_io(Box::new(master), reading);
        reader._slave = Some(pty.slave);
        reader.path = Some(path);
        reader
    }

    /// The test's end of a TCP connection with the agent.
    pub fn tcp(stream: TcpStream) -> FakeReader {
        stream.set_nodelay(true).expect("nodelay");
        let reading = stream.try_clone().expect("clone stream");
        let mut reader =
            Self::with_io(Box::new(stream.try_clone().expect("clone stream")), reading);
        reader.tcp = Some(stream);
        reader
    }

    fn with_io(
        writer: Box<dyn Write + Send>,
        mut reading: impl Read + Send + 'static,
    ) -> FakeReader {
        let inbox = Arc::new(Inbox::default());
        let thread_inbox = inbox.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match reading.read(&mut buf) {
                    Ok(0) => 0,
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => 0,
                };
                let mut state = thread_inbox.state.lock().unwrap();
                if n == 0 {
                    state.1 = true;
                } else {
                    state.0.extend_from_slice(&buf[..n]);
                }
                drop(state);
                thread_inbox.changed.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        FakeReader {
            writer,
            inbox,
            taken: 0,
            _slave: None,
            path: None,
            tcp: None,
        }
    }

    /// The pty slave's path as a string, for the agent's `port`.
    pub fn port(&self) -> String {
        self.path.as_ref().expect("not a pty").display().to_string()
    }

    /// Writes `bytes` to the agent. Returns false if the connection is gone.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .is_ok()
    }

    /// Everything the agent has written back so far.
    pub fn received(&self) -> Vec<u8> {
        self.inbox.state.lock().unwrap().0.clone()
    }

    /// How often `needle` occurs in what the agent wrote back.
    pub fn count(&self, needle: &[u8]) -> usize {
        count(&self.inbox.state.lock().unwrap().0, needle)
    }

    /// True once the agent closed the connection.
    pub fn is_closed(&self) -> bool {
        self.inbox.state.lock().unwrap().1
    }

    /// Waits until `needle` occurred at least `n` times; returns whether it did in `timeout`.
    pub fn wait_count(&self, needle: &[u8], n: usize, timeout: Duration) -> bool {
        self.wait(timeout, |data, _| count(data, needle) >= n)
    }

    /// The next reply ending in `separator` (e.g. `b'\r'`), consuming it.
    pub fn next_reply(&mut self, separator: u8, timeout: Duration) -> Reply {
        let taken = self.taken;
        let mut reply = Reply::Timeout;
        self.wait(timeout, |data, closed| {
            if let Some(i) = data[taken..].iter().position(|&b| b == separator) {
                reply = Reply::Line(data[taken..taken + i].to_vec());
                true
            } else if closed {
                reply = Reply::Closed;
                true
            } else {
                false
            }
        });
        if let Reply::Line(line) = &reply {
            self.taken += line.len() + 1;
        }
        reply
    }

    /// Waits until `done(received, closed)` holds; returns whether it did within `timeout`.
    pub fn wait(&self, timeout: Duration, mut done: impl FnMut(&[u8], bool) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.inbox.state.lock().unwrap();
        loop {
            if done(&state.0, state.1) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .inbox
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }
}

impl Drop for FakeReader {
    /// A TCP reader hangs up (FIN to the agent).
    fn drop(&mut self) {
        if let Some(stream) = &self.tcp {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() || haystack.len() < needle.len() {
        return 0;
    }
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// A listening reader for `transport = "tcp_client"` (the agent dials it): the test's stand-in
/// for a fixed-mount reader in server mode. Accepts in a thread, so waits can be bounded.
pub struct ReaderListener {
    addr: SocketAddr,
    accepted: mpsc::Receiver<TcpStream>,
}

impl ReaderListener {
    /// Listens on 127.0.0.1:0.
    pub fn bind() -> ReaderListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let (tx, accepted) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if tx.send(stream).is_err() {
                    return;
                }
            }
        });
        ReaderListener { addr, accepted }
    }

    /// `127.0.0.1:PORT`, for the agent's `address`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The next connection from the agent; panics after `timeout`.
    pub fn accept(&self, timeout: Duration) -> FakeReader {
        match self.accepted.recv_timeout(timeout) {
            Ok(stream) => FakeReader::tcp(stream),
            Err(_) => panic!(
                "the agent did not connect to the reader at {} within {timeout:?}",
                self.addr
            ),
        }
    }
}

/// Dials the agent's `listen` address (`transport = "tcp_server"`), retrying while the agent is
/// not listening yet; panics after `timeout`.
pub fn connect_retry(addr: &str, timeout: Duration) -> FakeReader {
    let mut stream = None;
    poll_until(timeout, Duration::from_millis(20), || {
        stream = TcpStream::connect(addr).ok();
        stream.is_some()
    });
    FakeReader::tcp(
        stream.unwrap_or_else(|| panic!("the agent did not listen on {addr} within {timeout:?}")),
    )
}

/// What [`present_codes`] did.
#[derive(Debug, Default)]
pub struct Presented {
    /// How often each code was written to the agent.
    pub sends: Vec<u32>,
    /// How many "NG" replies came back (codes the agent did not accept; re-presented later).
    pub rejected: usize,
}

impl Presented {
    /// Codes that were written more than once.
    pub fn re_presented(&self) -> usize {
        self.sends.iter().filter(|&&s| s > 1).count()
    }
}

/// Plays a reader in server mode (the agent dials `listener`) that presents `codes` until the
/// agent has acknowledged each with "OK\r": `window` codes in flight, replies matched in order
/// ("OK\r" accepted, "NG\r" not accepted). Whenever the connection ends, it waits for the
/// agent to dial again and re-presents, in order, every code not acknowledged yet, as an
/// operator would re-scan what the reader did not confirm.
///
/// `after_ok(acknowledged_so_far)` runs after every "OK"; when it returns true it has stopped
/// the agent (and usually started it again), and the reader moves on to the next connection.
/// Panics after 10 s without a reply, or 15 s without a connection.
pub fn present_codes(
    listener: &ReaderListener,
    codes: &[String],
    window: usize,
    mut after_ok: impl FnMut(usize) -> bool,
    diagnostics: impl Fn() -> String,
) -> Presented {
    let n = codes.len();
    let mut acked = vec![false; n];
    let mut acked_count = 0;
    let mut out = Presented {
        sends: vec![0; n],
        rejected: 0,
    };
    let mut connection: Option<FakeReader> = None;
    while acked_count < n {
        let reader = match &mut connection {
            Some(reader) if !reader.is_closed() => reader,
            _ => connection.insert(listener.accept(Duration::from_secs(15))),
        };
        let todo: Vec<usize> = (0..n).filter(|&i| !acked[i]).collect();
        let (mut next, mut in_flight) = (0, std::collections::VecDeque::new());
        let mut hang_up = false;
        loop {
            while in_flight.len() < window && next < todo.len() {
                if !reader.send(format!("{}\r\n", codes[todo[next]]).as_bytes()) {
                    break;
                }
                in_flight.push_back(todo[next]);
                out.sends[todo[next]] += 1;
                next += 1;
            }
            if in_flight.is_empty() {
                break;
            }
            match reader.next_reply(b'\r', Duration::from_secs(10)) {
                Reply::Line(line) if line == b"OK" => {
                    let i = in_flight.pop_front().expect("a code in flight");
                    acked[i] = true;
                    acked_count += 1;
                    if after_ok(acked_count) {
                        hang_up = true;
                        break;
                    }
                }
                Reply::Line(line) if line == b"NG" => {
                    in_flight.pop_front();
                    out.rejected += 1;
                }
                Reply::Line(line) => {
                    panic!("unexpected reply {:?}", String::from_utf8_lossy(&line))
                }
                Reply::Closed => {
                    hang_up = true;
                    break;
                }
                Reply::Timeout => panic!("no reply within 10s\n{}", diagnostics()),
            }
        }
        if hang_up {
            connection = None;
        }
    }
    out
}
