//! Serial transport against a pseudo-terminal pair.

use std::path::Path;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::kit::*;
use crate::reading::{ReadingKind, Verdict};

fn serial_config(port: &Path, extra: &str) -> crate::scanner::ScannerConfig {
    config(&format!(
        "transport = \"serial\"\nport = \"{}\"\nreopen_interval = \"100ms\"\n{extra}",
        port.display()
    ))
}

#[tokio::test]
async fn codes_sent_in_odd_chunks_arrive_in_order() {
    let pty = Pty::open();
    let (mut agent, sink) = Agent::new(16);
    let driver = Driver::start(serial_config(&pty.path, "baud = 9600"), sink);

    for chunk in [
        &b"CODE-1\r\nCO"[..],
        b"DE-2\r",
        b"\nCODE-3\r\nNOR",
        b"EAD\r\n\r\n",
        b"]C100106141411234567897\r\n",
    ] {
        pty.write(chunk).await;
    }
    agent.commit_code("CODE-1").await;
    agent.commit_code("CODE-2").await;
    agent.commit_code("CODE-3").await;
    agent.expect(ReadingKind::NoRead).await;
    agent.commit_code("]C100106141411234567897").await;
    driver.stop().await;
}

#[tokio::test]
async fn line_settings_7e1_with_hardware_flow_control_open() {
    let pty = Pty::open();
    let (mut agent, sink) = Agent::new(16);
    let extra = "baud = 19200\ndata_bits = 7\nparity = \"even\"\nstop_bits = 2\n\
                 flow_control = \"hardware\"\nterminator = \"cr\"";
    let driver = Driver::start(serial_config(&pty.path, extra), sink);
    pty.write(b"ABC\r").await;
    agent.commit_code("ABC").await;
    driver.stop().await;
}

#[tokio::test]
async fn replies_are_written_in_reading_order_after_each_verdict() {
    let pty = Pty::open();
    let (mut agent, sink) = Agent::new(16);
    let extra = "accept_reply = \"OK\\r\"\nreject_reply = \"NG\\r\"";
    let driver = Driver::start(serial_config(&pty.path, extra), sink);

    pty.write(b"A\r\nB\r\nC\r\n").await;
    // All three arrive before any verdict: reading does not wait for the agent's answer.
    let a = agent.expect(code("A")).await;
    let b = agent.expect(code("B")).await;
    let c = agent.expect(code("C")).await;
    // Answered out of order; the replies still follow the readings' order.
    c.reply.send(valid(3)).unwrap();
    b.reply
        .send(Verdict::NotCommitted {
            reason: "queue failed".into(),
        })
        .unwrap();
    a.reply
        .send(Verdict::Committed {
            seq: 1,
            valid: false,
        })
        .unwrap();
    assert_eq!(pty.read_exact(9).await, b"NG\rNG\rOK\r");

    pty.write(b"D\r\n").await;
    let d = agent.expect(code("D")).await;
    d.reply.send(Verdict::Duplicate).unwrap();
    assert_eq!(pty.read_exact(3).await, b"OK\r");
    driver.stop().await;
}

/// Points `link` at `target` atomically, as udev re-creating a by-id link would.
fn repoint(link: &Path, target: &Path) {
    let tmp = link.with_extension("new");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}

#[tokio::test]
async fn a_vanished_port_is_reopened_without_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scanner");
    // Not a tty: opening it succeeds at the file level and then fails, so inotify counts
    // every attempt the driver makes.
    let not_a_tty = dir.path().join("not-a-tty");
    std::fs::write(&not_a_tty, b"").unwrap();

    // The port does not exist at start.
    let (mut agent, sink) = Agent::new(16);
    let driver = Driver::start(serial_config(&link, ""), sink);

    // It appears: the driver opens it on one of its retries.
    let first = Pty::open();
    repoint(&link, &first.path);
    first.write(b"BEFORE\r\n").await;
    agent.commit_code("BEFORE").await;

    // Unplug: the link now leads to something unopenable and the pty goes away.
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    inotify
        // Watching closes too keeps the kernel from merging consecutive identical IN_OPENs.
        .add_watch(&not_a_tty, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_CLOSE)
        .unwrap();
    repoint(&link, &not_a_tty);
    drop(first);

    // Count the open attempts over a window: one per reopen_interval (100ms), not a busy loop.
    let window = Duration::from_millis(800);
    tokio::time::sleep(window).await;
    let events = inotify.read_events().unwrap_or_default();
    let attempts = events
        .iter()
        .filter(|e| e.mask.contains(AddWatchFlags::IN_OPEN))
        .count();
    assert!(
        (2..=10).contains(&attempts),
        "{attempts} open attempts in {window:?} with reopen_interval 100ms"
    );

    // Plugged back in (possibly under a new pts number): reading continues.
    let second = Pty::open();
    repoint(&link, &second.path);
    second.write(b"AFTER\r\n").await;
    agent.commit_code("AFTER").await;
    driver.stop().await;
}

#[tokio::test]
async fn overlong_and_idle_frames_over_serial() {
    let pty = Pty::open();
    let (mut agent, sink) = Agent::new(16);
    let extra = "max_frame = 8\nidle_timeout = \"50ms\"";
    let driver = Driver::start(serial_config(&pty.path, extra), sink);

    pty.write(b"0123456789ABCDEF\r\nOK-1\r\n").await;
    agent
        .expect(ReadingKind::Malformed {
            bytes: b"01234567".to_vec(),
            reason: "frame longer than 8 bytes".into(),
        })
        .await;
    agent.commit_code("OK-1").await;
    // No terminator: the idle timeout completes the frame.
    pty.write(b"NOSUFFIX").await;
    agent.commit_code("NOSUFFIX").await;
    driver.stop().await;
}
