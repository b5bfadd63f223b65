//! A queue file that cannot be used at start never makes the agent crash-loop: a file of garbage
//! and a real queue cut off mid-page are moved aside (kept, renamed `<queue>.corrupt-<time>`)
//! with a loud error, a fresh queue starts and works. And one queue, one agent: a second agent
//! on the same queue is refused with a clear error naming the lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracegate_tests::chaos::integrity_check;
use tracegate_tests::{
    ALL_TOPICS, Agent, Mosquitto, Subscriber, agent_config, bounded, free_port, wait_all_delivered,
};

fn simulator(count: u64) -> String {
    format!(
        "[[sources]]\nid = \"sim1\"\ntype = \"simulator\"\nstation = \"st1\"\nrate = 500.0\n\
         count = {count}\nnoread_ratio = 0.0\ninvalid_ratio = 0.0\n"
    )
}

/// An agent config whose queue is `queue` (an absolute path outside the agent's folder, so
/// that the test can prepare the file before the agent starts).
fn config(url: &str, queue: &Path, count: u64) -> String {
    agent_config(url, "", &simulator(count)).replace(
        "path = \"queue.db\"",
        &format!("path = {:?}", queue.display()),
    )
}

/// The files `<queue>.corrupt-*` next to `queue` (the database itself, not its -wal/-shm).
fn moved_aside(queue: &Path) -> Vec<PathBuf> {
    let name = queue.file_name().unwrap().to_string_lossy().to_string();
    let mut found: Vec<PathBuf> = std::fs::read_dir(queue.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy();
            f.starts_with(&format!("{name}.corrupt-"))
                && !f.ends_with("-wal")
                && !f.ends_with("-shm")
        })
        .collect();
    found.sort();
    found
}

/// Starts an agent on the bad file in `queue`, checks it moved the file aside loudly (keeping
/// its bytes), started a fresh queue and delivers.
fn starts_fresh_on(queue: &Path, bad: &[u8]) {
    let broker = Mosquitto::start();
    let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
    let mut agent = Agent::start(&config(&broker.url(), queue, 50));
    agent.wait_log("THE QUEUE DATABASE IS CORRUPT", 1, Duration::from_secs(15));
    let log = agent.stderr_text();
    let line = log
        .lines()
        .find(|l| l.contains("THE QUEUE DATABASE IS CORRUPT"))
        .unwrap();
    assert!(line.contains("ERROR"), "logged as an error: {line}");
    let aside = moved_aside(queue);
    assert_eq!(aside.len(), 1, "one file moved aside: {aside:?}");
    assert!(
        line.contains(&aside[0].display().to_string()),
        "the error names where the file went: {line}"
    );
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        bad,
        "the bad file is kept as it was, for recovery"
    );
    eprintln!("{line}");
    // A fresh queue: seqs from 1, everything delivered.
    agent.wait_log("simulator finished its count", 1, Duration::from_secs(30));
    let (last, _) = wait_all_delivered(&agent, &sub);
    assert_eq!(last, 50, "a fresh queue numbers from 1");
    assert!(agent.is_running());
    agent.terminate();
    assert_eq!(integrity_check(queue, false), "ok");
    // The next start finds a good queue and moves nothing.
    agent.restart();
    std::thread::sleep(Duration::from_secs(1));
    assert!(agent.is_running(), "{}", agent.log_tail(20));
    assert_eq!(moved_aside(queue).len(), 1);
    assert_eq!(
        agent
            .stderr_text()
            .matches("THE QUEUE DATABASE IS CORRUPT")
            .count(),
        1
    );
}

#[test]
fn a_queue_file_of_garbage_is_moved_aside_and_a_fresh_queue_works() {
    bounded(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue.db");
        let garbage: Vec<u8> = (0..64 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&queue, &garbage).unwrap();
        starts_fresh_on(&queue, &garbage);
    });
}

#[test]
fn a_real_queue_cut_off_mid_page_is_moved_aside_and_a_fresh_queue_works() {
    bounded(Duration::from_secs(90), || {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue.db");
        // A real queue with 2000 undelivered events (no broker listens), stopped cleanly so the
        // WAL is checkpointed into the file.
        let nobody = format!("mqtt://127.0.0.1:{}", free_port());
        let mut first = Agent::start(&config(&nobody, &queue, 2000));
        first.wait_queue("2000 events queued", Duration::from_secs(30), |s| {
            s.depth == 2000
        });
        first.terminate();
        drop(first);
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", queue.display()));
        }
        let full = std::fs::read(&queue).unwrap();
        assert!(
            full.len() > 64 * 1024,
            "a queue of some size: {}",
            full.len()
        );
        // Cut mid-page (a torn copy, a card that lost its tail).
        let cut = &full[..full.len() / 2 + 1234];
        std::fs::write(&queue, cut).unwrap();
        starts_fresh_on(&queue, cut);
    });
}

#[test]
fn a_second_agent_on_the_same_queue_is_refused_naming_the_lock() {
    bounded(Duration::from_secs(60), || {
        let broker = Mosquitto::start();
        let sub = Subscriber::connect(broker.port(), ALL_TOPICS);
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue.db");
        let agent = Agent::start(&config(&broker.url(), &queue, 100));
        agent.wait_queue("the queue exists", Duration::from_secs(15), |_| true);
        // The same config again: `tracegate run` on the same queue.
        let (code, _, stderr) = agent.cli(&["run"]);
        assert_ne!(code, 0, "the second agent must not run: {stderr}");
        assert!(
            stderr.contains("another tracegate already runs on the queue")
                && stderr.contains(&format!("{}.lock", queue.display())),
            "the refusal names the queue and its lock: {stderr}"
        );
        eprintln!("second agent: exit {code}: {}", stderr.trim());
        // The first one goes on undisturbed.
        agent.wait_log("simulator finished its count", 1, Duration::from_secs(30));
        let (last, _) = wait_all_delivered(&agent, &sub);
        assert_eq!(last, 100);
    });
}
