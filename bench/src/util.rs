//! Small shared pieces: the bench's clock, free ports, child processes tied to the bench, and
//! what /proc says about a process.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The bench's time origin; every timestamp is nanoseconds since it (monotonic).
static START: OnceLock<Instant> = OnceLock::new();

/// Starts the clock (idempotent).
pub fn clock_start() {
    START.get_or_init(Instant::now);
}

/// Nanoseconds since the bench started (monotonic clock).
pub fn now_ns() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Never 1883.
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        if port != 1883 {
            return port;
        }
    }
}

/// Spawns `cmd` so that the kernel kills it if the bench dies first.
pub fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: the closure runs between fork and exec and makes one async-signal-safe call.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}

/// SIGTERM, then up to `grace` for the child to exit, then SIGKILL. True when it exited by
/// itself.
pub fn terminate(child: &mut Child, grace: Duration) -> bool {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Polls `done` every `every` until it is true or `timeout` passes.
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

/// What /proc says about a process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSnap {
    pub at_ns: u64,
    /// Resident set size now, KiB (VmRSS).
    pub rss_kib: u64,
    /// Peak resident set size over the process's life, KiB (VmHWM).
    pub hwm_kib: u64,
    /// The anonymous part of the resident set, KiB (RssAnon): heap and stacks, the memory that
    /// is the process's own. The rest are file pages (the binary, the C library), shared with
    /// other processes mapping them and dropped by the kernel under pressure.
    pub anon_kib: u64,
    /// User + system CPU time, seconds (utime + stime of /proc/<pid>/stat; all threads,
    /// including ones that have exited).
    pub cpu_secs: f64,
    /// Bytes the process caused to be written to storage (write_bytes of /proc/<pid>/io).
    pub write_bytes: u64,
}

fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map(|v| v as f64)
            .unwrap_or(100.0)
    })
}

/// Reads VmRSS/VmHWM, utime+stime and write_bytes of `pid`.
pub fn proc_snap(pid: u32) -> std::io::Result<ProcSnap> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let after = stat.rsplit_once(") ").map(|(_, a)| a).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> f64 {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let io = fs::read_to_string(format!("/proc/{pid}/io"))?;
    let io_val = |key: &str| -> u64 {
        io.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcSnap {
        at_ns: now_ns(),
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
        anon_kib: kib("RssAnon:"),
        cpu_secs: (ticks(14) + ticks(15)) / clk_tck(),
        write_bytes: io_val("write_bytes:"),
    })
}

/// The file system `path` lives on: (mount point, type, device), from /proc/self/mountinfo.
pub fn filesystem_of(path: &Path) -> (String, String, String) {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: Option<(String, String, String)> = None;
    for line in info.lines() {
        let (left, right) = match line.split_once(" - ") {
            Some(x) => x,
            None => continue,
        };
        let mount = match left.split_whitespace().nth(4) {
            Some(m) => m.replace("\\040", " "),
            None => continue,
        };
        let mut r = right.split_whitespace();
        let fstype = r.next().unwrap_or("?").to_string();
        let dev = r.next().unwrap_or("?").to_string();
        if path.starts_with(&mount) && best.as_ref().is_none_or(|b| mount.len() >= b.0.len()) {
            best = Some((mount, fstype, dev));
        }
    }
    best.unwrap_or_else(|| ("?".into(), "?".into(), "?".into()))
}

/// The first existing file among `candidates`.
pub fn first_file(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|p| p.is_file()).cloned()
}

/// A program on PATH (or at one of `extra`).
pub fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let mut c: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    c.extend(extra.iter().map(PathBuf::from));
    first_file(&c)
}
