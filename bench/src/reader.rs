//! The load generator: plays a barcode reader in push mode (it dials the agent's `tcp_server`
//! source), sends GS1 DataMatrix codes terminated by CR LF, and timestamps every `OK\r` the
//! agent writes back after the durable commit.
//!
//! Each code is a realistic GS1 element string with the AIM identifier `]d2` (55 bytes + CR LF):
//! GTIN (01), expiry (17), batch (10), GS, serial (21) = `TGB` + the bench's 9-digit sequence
//! number, which the subscriber finds again in the published payload.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::util::now_ns;

/// How codes are sent.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Open loop at this many codes per second, one write per code (a real reader).
    Rate(f64),
    /// As fast as the agent answers: up to `window` codes without a reply, written in
    /// batches of at most `batch` codes per write.
    Pipelined { window: usize, batch: usize },
}

/// The marker in front of the bench's sequence number inside the serial (AI 21).
pub const MARKER: &[u8] = b"TGB";
pub const SEQ_DIGITS: usize = 9;

/// Appends the code for bench sequence number `seq`, with CR LF.
pub fn push_code(seq: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"]d2010950600013435217271231");
    out.extend_from_slice(b"10BENCH-LOT-7\x1d21");
    out.extend_from_slice(MARKER);
    out.extend_from_slice(format!("{seq:0width$}", width = SEQ_DIGITS).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Finds the bench's sequence number in a payload (the first `TGB` followed by 9 digits).
pub fn find_seq(payload: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(pos) = payload[from..]
        .windows(MARKER.len())
        .position(|w| w == MARKER)
    {
        let start = from + pos + MARKER.len();
        let digits = payload.get(start..start + SEQ_DIGITS)?;
        if digits.iter().all(u8::is_ascii_digit) {
            return std::str::from_utf8(digits).ok()?.parse().ok();
        }
        from = start;
    }
    None
}

/// Replaces the sequence number in a payload produced for another one (same length).
pub fn set_seq(payload: &mut [u8], seq: u64) -> bool {
    let Some(pos) = payload.windows(MARKER.len()).position(|w| w == MARKER) else {
        return false;
    };
    let start = pos + MARKER.len();
    let digits = format!("{seq:0width$}", width = SEQ_DIGITS);
    match payload.get_mut(start..start + SEQ_DIGITS) {
        Some(d) => {
            d.copy_from_slice(digits.as_bytes());
            true
        }
        None => false,
    }
}

/// One run of the reader.
pub struct ReaderRun {
    pub first_seq: u64,
    /// Send time of each code (ns, bench clock); index = seq - first_seq.
    pub sent: Vec<u64>,
    /// Arrival time of each reply, in order (replies follow the order of the readings).
    pub replied: Vec<u64>,
    /// Replies that were not `OK`.
    pub rejected: u64,
}

struct Replies {
    count: AtomicU64,
    lock: Mutex<()>,
    changed: Condvar,
    closed: AtomicBool,
}

/// A connected reader.
pub struct Reader {
    stream: TcpStream,
}

impl Reader {
    /// Dials the agent's scanner port until it accepts (the source may still be starting).
    pub fn connect(port: u16, timeout: Duration) -> Result<Reader, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_nodelay(true).ok();
                    return Ok(Reader { stream: s });
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "cannot connect to the agent's scanner port {port}: {e}"
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends `count` codes with seqs from `first_seq` and waits for every reply (at most
    /// `timeout` in all).
    pub fn run(
        &mut self,
        first_seq: u64,
        count: usize,
        pace: Pace,
        timeout: Duration,
    ) -> Result<ReaderRun, String> {
        let deadline = Instant::now() + timeout;
        let replies = Arc::new(Replies {
            count: AtomicU64::new(0),
            lock: Mutex::new(()),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let mut rd = self.stream.try_clone().map_err(|e| e.to_string())?;
        rd.set_read_timeout(Some(Duration::from_millis(200))).ok();
        let r = replies.clone();
        let receiver = std::thread::Builder::new()
            .name("bench-replies".into())
            .spawn(move || {
                let mut times: Vec<u64> = Vec::with_capacity(count);
                let mut rejected = 0u64;
                let mut line: Vec<u8> = Vec::with_capacity(8);
                let mut buf = [0u8; 16 * 1024];
                while times.len() < count && Instant::now() < deadline {
                    let n = match rd.read(&mut buf) {
                        Ok(0) => {
                            r.closed.store(true, Ordering::SeqCst);
                            break;
                        }
                        Ok(n) => n,
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock
                                    | ErrorKind::TimedOut
                                    | ErrorKind::Interrupted
                            ) =>
                        {
                            continue;
                        }
                        Err(_) => {
                            r.closed.store(true, Ordering::SeqCst);
                            break;
                        }
                    };
                    let t = now_ns();
                    for &b in &buf[..n] {
                        match b {
                            b'\r' | b'\n' => {
                                if !line.is_empty() {
                                    if line != b"OK" {
                                        rejected += 1;
                                    }
                                    times.push(t);
                                    line.clear();
                                }
                            }
                            _ => line.push(b),
                        }
                    }
                    r.count.store(times.len() as u64, Ordering::SeqCst);
                    let _g = r.lock.lock().unwrap();
                    r.changed.notify_all();
                }
                r.closed.store(true, Ordering::SeqCst);
                let _g = r.lock.lock().unwrap();
                r.changed.notify_all();
                (times, rejected)
            })
            .map_err(|e| e.to_string())?;

        let mut sent = vec![0u64; count];
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let started = Instant::now();
        let mut i = 0usize;
        let mut failure = None;
        while i < count {
            if Instant::now() >= deadline {
                failure = Some(format!("timed out after sending {i} of {count} codes"));
                break;
            }
            if replies.closed.load(Ordering::SeqCst) {
                failure = Some(format!("the agent closed the connection after {i} codes"));
                break;
            }
            let n = match pace {
                Pace::Rate(rate) => {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    1
                }
                Pace::Pipelined { window, batch } => {
                    let acked = replies.count.load(Ordering::SeqCst) as usize;
                    let outstanding = i - acked.min(i);
                    if outstanding >= window {
                        let g = replies.lock.lock().unwrap();
                        let acked = replies.count.load(Ordering::SeqCst) as usize;
                        if i - acked.min(i) >= window && !replies.closed.load(Ordering::SeqCst) {
                            let _ = replies
                                .changed
                                .wait_timeout(g, Duration::from_millis(50))
                                .unwrap();
                        }
                        continue;
                    }
                    (window - outstanding).min(batch).min(count - i)
                }
            };
            buf.clear();
            for k in 0..n {
                push_code(first_seq + (i + k) as u64, &mut buf);
            }
            let t = now_ns();
            if let Err(e) = self.stream.write_all(&buf) {
                failure = Some(format!("write to the agent failed after {i} codes: {e}"));
                break;
            }
            sent[i..i + n].fill(t);
            i += n;
        }
        let (replied, rejected) = receiver.join().map_err(|_| "reply thread panicked")?;
        if let Some(f) = failure {
            return Err(f);
        }
        if replied.len() < count {
            return Err(format!(
                "only {} of {count} codes were answered within {timeout:?}",
                replied.len()
            ));
        }
        Ok(ReaderRun {
            first_seq,
            sent,
            replied,
            rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_carry_their_seq() {
        let mut v = Vec::new();
        push_code(123_456, &mut v);
        assert_eq!(v.len(), 57, "{}", String::from_utf8_lossy(&v));
        assert_eq!(find_seq(&v), Some(123_456));
        let mut p = v.clone();
        assert!(set_seq(&mut p, 42));
        assert_eq!(find_seq(&p), Some(42));
        assert_eq!(find_seq(b"xxTGB12TGB000000007"), Some(7));
    }
}
