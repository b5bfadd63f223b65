//! Child processes that die with the test: spawned with a parent-death signal, killed with
//! SIGKILL (or stopped with SIGTERM and a bounded wait), never left behind.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::wait::poll_until;

/// `target/debug/tracegate`, found next to the running test executable
/// (`target/debug/deps/<test>-<hash>`). `TRACEGATE_BIN` overrides it.
pub fn tracegate_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TRACEGATE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("tracegate");
    assert!(
        bin.is_file(),
        "{} is missing: build it first: cargo build -p tracegate",
        bin.display()
    );
    bin
}

/// Spawns `cmd` so that the kernel kills it with SIGKILL if the test (the spawning thread) dies
/// first: an aborted or timed-out test leaves no broker or agent running.
pub fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: the closure runs between fork and exec and only makes one async-signal-safe
    // system call (prctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}

/// Sends `signal` to the child (ignoring a child that is already gone).
pub fn signal(child: &Child, signal: Signal) {
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
}

/// SIGKILL and reap.
pub fn kill9(child: &mut Child) -> ExitStatus {
    signal(child, Signal::SIGKILL);
    child.wait().expect("wait for a killed child")
}

/// SIGTERM, then waits up to `grace` for the child to exit; SIGKILL after that. Returns the exit
/// status and whether it exited by itself within the grace period.
pub fn terminate(child: &mut Child, grace: Duration) -> (ExitStatus, bool) {
    signal(child, Signal::SIGTERM);
    let mut status = None;
    poll_until(grace, Duration::from_millis(10), || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    match status {
        Some(status) => (status, true),
        None => (kill9(child), false),
    }
}
