//! Bounded waiting: every wait has a deadline, so a broken agent fails a test instead of hanging
//! it, and `bounded` puts a ceiling on a whole test.

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Calls `done` every `every` until it returns true or `timeout` passes. Returns whether it
/// became true.
pub fn poll_until(timeout: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

/// Like [`poll_until`] (every 20 ms), but panics naming `what` and the `context` (a closure so
/// that it is only computed on failure, e.g. the agent's log) when the deadline passes.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    done: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    if !poll_until(timeout, Duration::from_millis(20), done) {
        panic!(
            "timed out after {timeout:?} waiting for {what}\n{}",
            context()
        );
    }
}

/// Runs a whole test body with a hard ceiling. If `body` has not returned after `limit`, the
/// test process is aborted with a message (child processes die with it: see
/// [`crate::process::spawn_tied`]). Individual waits have their own, shorter deadlines; this is
/// the backstop for a wait that was forgotten.
pub fn bounded<T>(limit: Duration, body: impl FnOnce() -> T) -> T {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let name = std::thread::current().name().unwrap_or("test").to_string();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
            // Written straight to fd 2: the test harness's output capture would be lost.
            let _ = writeln!(
                std::io::stderr(),
                "\n{name}: exceeded its overall limit of {limit:?}; aborting the test process"
            );
            std::process::abort();
        }
    });
    let out = body();
    drop(done_tx);
    let _ = watchdog.join();
    out
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}
