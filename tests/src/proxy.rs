//! A TCP proxy between the agent and the broker that the chaos tests use to break the network:
//! it accepts on a free port of 127.0.0.1, opens a connection to the target for each client,
//! and pumps bytes both ways. [`Proxy::cut`] closes every connection at once (both sides see a
//! reset or EOF, as when a switch reboots); [`Proxy::set_delay`] holds every chunk back for a
//! while before forwarding it (a slow or congested link). New connections are accepted all the
//! time; when the target does not answer, the client's connection is closed at once.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Shared {
    /// Both ends of every open pair, so that a cut can shut them down.
    streams: Mutex<Vec<TcpStream>>,
    delay_ms: AtomicU64,
    stop: AtomicBool,
    accepted: AtomicU64,
    cuts: AtomicU64,
}

/// A running proxy; stops accepting and closes everything when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to 127.0.0.1:`target_port`.
    pub fn start(target_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = accept_shared.clone();
                std::thread::spawn(move || connect_pair(client, target_port, &shared));
            }
        });
        Proxy { addr, shared }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn mqtt_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.addr.port())
    }

    /// Closes every open connection (both directions, both ends). Returns how many pairs.
    pub fn cut(&self) -> usize {
        let streams: Vec<TcpStream> = std::mem::take(&mut *self.shared.streams.lock().unwrap());
        for s in &streams {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.shared.cuts.fetch_add(1, Ordering::SeqCst);
        streams.len() / 2
    }

    /// Every chunk waits `delay` before it is forwarded (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// How many client connections were forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// How many cuts were made.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

fn connect_pair(client: TcpStream, target_port: u16, shared: &Arc<Shared>) {
    let upstream = match TcpStream::connect_timeout(&([127, 0, 0, 1], target_port).into(), SECOND) {
        Ok(s) => s,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let clones = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    );
    let (Ok(c1), Ok(u1), Ok(c2), Ok(u2)) = clones else {
        return;
    };
    {
        let mut streams = shared.streams.lock().unwrap();
        streams.push(c1);
        streams.push(u1);
    }
    shared.accepted.fetch_add(1, Ordering::SeqCst);
    let s = shared.clone();
    std::thread::spawn(move || pump(client, upstream, &s));
    pump(u2, c2, shared);
}

const SECOND: Duration = Duration::from_secs(1);

/// Copies `from` → `to` until either side closes, then shuts both down.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = shared.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
