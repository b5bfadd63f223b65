//! The disk fills up under a running agent, on a real filesystem: the queue lives on a small
//! tmpfs mounted for the test (real ENOSPC from the kernel, the same error a full flash card
//! gives), and another process fills it. While it is full, the agent must keep running, stop
//! acknowledging its PLC, say so (/health/ready 503 with the reason, the commit-failure counter
//! rising, an error in its log); when space returns it must resume by itself and lose nothing:
//! every code presented is committed once and delivered, seqs gap-free, and the queue file
//! passes `PRAGMA integrity_check`.
//!
//! Mounting needs root (CAP_SYS_ADMIN), which scripts/test's CI machine has; the test fails
//! with that explanation otherwise rather than passing without having tested anything.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracegate_tests::chaos::integrity_check;
use tracegate_tests::http::http_get;
use tracegate_tests::plc::{ACK, HANDSHAKE, Plc, PlcServer};
use tracegate_tests::{
    ALL_TOPICS, Agent, Delivery, Mosquitto, Subscriber, agent_config, bounded, free_port,
    wait_all_delivered, wait_until,
};

/// A tmpfs of `size` mounted on a fresh folder; unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("tg-small-disk-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (root or CAP_SYS_ADMIN): `mount -t tmpfs -o \
             size={size} tmpfs {}` failed: {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the filesystem refuses (ENOSPC). Returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0xA5u8; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A PLC thread presenting `CODE-<n>` one at a time, the next once the previous is acked.
struct Presenter {
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Presenter {
    fn start(plc: &Plc) -> Presenter {
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (plc, t_acked, t_stop) = (plc.clone(), acked.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut n: u16 = 1;
            while !t_stop.load(Ordering::SeqCst) {
                plc.present(n, &format!("CODE-{n:05}"), "WO-1");
                while !plc.wait(Duration::from_millis(100), |m| m.get(ACK) == n) {}
                t_acked.store(n as u64, Ordering::SeqCst);
                n += 1;
            }
        });
        Presenter {
            acked,
            stop,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Stops after the code being presented is acknowledged; returns how many were.
    fn finish(mut self, within: Duration) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().unwrap();
        let deadline = Instant::now() + within;
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the last code was never acknowledged"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        thread.join().unwrap();
        self.acked()
    }
}

/// `tracegate_queue_commit_failures_total` from /metrics.
fn commit_failures(listen: &str) -> u64 {
    let (_, body) = http_get(listen, "/metrics");
    body.lines()
        .find(|l| l.starts_with("tracegate_queue_commit_failures_total"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tracegate_queue_commit_failures_total in\n{body}")) as u64
}

#[test]
fn a_full_disk_holds_the_plc_back_raises_the_alarm_and_resumes_by_itself_losing_nothing() {
    bounded(Duration::from_secs(120), || {
        let disk = SmallDisk::mount("16m");
        let queue = disk.path().join("queue.db");
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let plc = Plc::new();
        let server = PlcServer::tcp(&plc);
        let listen = format!("127.0.0.1:{}", free_port());
        let source = format!(
            r#"[[sources]]
id = "plc1"
type = "modbus"
station = "st1"
validation = "none"
transport = "tcp"
address = "{}"
poll_interval = "5ms"
timeout = "500ms"
reconnect_min = "50ms"
reconnect_max = "500ms"
{HANDSHAKE}
"#,
            server.address
        );
        let config = format!(
            "{}\n[ops]\nlisten = \"{listen}\"\n",
            agent_config(&broker.url(), "", &source).replace(
                "path = \"queue.db\"",
                &format!("path = {:?}", queue.display())
            )
        );
        let mut agent = Agent::start(&config);
        let presenter = Presenter::start(&plc);
        wait_until(
            "200 codes acknowledged",
            Duration::from_secs(30),
            || presenter.acked() >= 200,
            || agent.log_tail(30),
        );
        wait_until(
            "ready",
            Duration::from_secs(10),
            || http_get(&listen, "/health/ready").0 == 200,
            || agent.log_tail(30),
        );
        assert_eq!(commit_failures(&listen), 0);

        // Another process fills the disk. SQLite may still fit a few commits into pages the WAL
        // already has; after that, every commit fails.
        let filler = disk.fill();
        wait_until(
            "commits failing: /health/ready 503 with the reason",
            Duration::from_secs(30),
            || {
                let (code, body) = http_get(&listen, "/health/ready");
                code == 503 && body.contains("queue commits are failing")
            },
            || agent.log_tail(30),
        );
        let held = presenter.acked();
        let failures = commit_failures(&listen);
        assert!(failures > 0, "the failure counter counts");
        // Held back: no acknowledgement for the code being presented, however long it waits.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            presenter.acked(),
            held,
            "a code was acknowledged while the disk was full\n{}",
            agent.log_tail(30)
        );
        assert!(
            commit_failures(&listen) > failures,
            "the writer keeps retrying (the counter rises)"
        );
        assert!(agent.is_running(), "the agent stays up on a full disk");
        let (code, body) = http_get(&listen, "/health/live");
        assert_eq!(code, 200, "alive while the disk is full: {body}");
        let log = agent.stderr_text();
        assert!(
            log.contains("queue commit failed") && log.contains("ERROR"),
            "a loud error in the log\n{}",
            agent.log_tail(30)
        );
        eprintln!(
            "disk full: {held} codes acknowledged before, none during; {} commit failures in 3 s; \
             the error: {}",
            commit_failures(&listen),
            log.lines()
                .find(|l| l.contains("queue commit failed"))
                .unwrap_or_default()
        );

        // A restart on the full disk (a watchdog, a power cut) must not crash-loop either: the
        // new run opens the queue, holds the PLC back and waits for space like the old one.
        agent.kill9();
        agent.restart();
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            agent.is_running(),
            "the agent started on a full disk died\n{}",
            agent.log_tail(30)
        );
        assert_eq!(
            presenter.acked(),
            held,
            "a code was acknowledged after a restart on the full disk\n{}",
            agent.log_tail(30)
        );
        wait_until(
            "the restarted agent reports failing commits",
            Duration::from_secs(10),
            || {
                let (code, body) = http_get(&listen, "/health/ready");
                code == 503 && body.contains("queue commits are failing")
            },
            || agent.log_tail(30),
        );

        // Space returns: the agent resumes by itself.
        std::fs::remove_file(&filler).expect("remove the filler");
        let resumed = Instant::now();
        wait_until(
            "acknowledgements again after space returned",
            Duration::from_secs(10),
            || presenter.acked() > held + 50,
            || agent.log_tail(30),
        );
        eprintln!(
            "space returned: 50 more codes acknowledged within {:?}",
            resumed.elapsed()
        );
        wait_until(
            "ready again",
            Duration::from_secs(10),
            || http_get(&listen, "/health/ready").0 == 200,
            || agent.log_tail(30),
        );
        agent.wait_log("queue commits succeed again", 1, Duration::from_secs(5));
        let total = presenter.finish(Duration::from_secs(20));

        let (last, delivery) = wait_all_delivered(&agent, &sub);
        check_codes(&delivery, total, last);
        assert!(agent.is_running());
        agent.terminate();
        assert_eq!(integrity_check(&queue, false), "ok");
    });
}

/// Every code 1..=`total` arrived under exactly one seq, and those are all the seqs (1..=`last`).
fn check_codes(delivery: &Delivery, total: u64, last: u64) {
    let texts = delivery.code_texts();
    let expected: Vec<String> = (1..=total).map(|n| format!("CODE-{n:05}")).collect();
    assert_eq!(
        texts, expected,
        "every acknowledged code once, in order, nothing else"
    );
    assert_eq!(last, total, "one seq per code");
}
