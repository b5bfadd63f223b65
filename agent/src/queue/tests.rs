//! Queue tests, named after the failure each one guards against.

use std::time::Duration;

use tokio::sync::oneshot;
use tracegate_drivers::Verdict;
use uuid::Uuid;
use uuid::timestamp::{Timestamp, context::NoContext};

use super::{Confirmation, Limits, NewEvent, Store};
use crate::config::Overflow;
use crate::event::{Code, Event, Kind};

/// `len` hexadecimal digits that neither LZ4 nor a dictionary shrink (a payload stored at
/// about its own size), different for each `seed`.
pub(super) fn incompressible(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x % 16) as u32, 16).unwrap()
        })
        .collect()
}

/// A line's scan: GTIN, expiry and batch as on every item, then the item's serial.
pub(super) fn gs1_code(serial: u64) -> String {
    format!("01095060001343521726123110L-0815\u{1d}21S{serial:012}")
}

pub(super) fn event(text: &str) -> NewEvent {
    queued(event_of(text))
}

/// `event` as the processor hands it to the queue.
pub(super) fn queued(event: Event) -> NewEvent {
    NewEvent::new(
        event,
        "t/st/src/scan".into(),
        None,
        std::time::SystemTime::now(),
        &mut 512,
    )
}

/// A scan of `text`, before its payload is made.
pub(super) fn event_of(text: &str) -> Event {
    Event {
        schema: crate::event::SCHEMA,
        // An id of the capture time, as the processor makes them ([`super::ids`]).
        id: Uuid::new_v7(Timestamp::from_unix(NoContext, 1_795_000_000, 0)),
        seq: 0,
        kind: Kind::Scan,
        captured_at: "2026-11-21T10:00:00.000Z".into(),
        captured_ms: 1_795_000_000_000,
        agent: "a".into(),
        site: "s".into(),
        line: "l".into(),
        station: "st".into(),
        source: "src".into(),
        code: Some(Code::from_bytes(text.as_bytes())),
        symbology: None,
        gs1: None,
        validation: "none",
        reason: None,
        alarm: None,
        duplicate: false,
        attributes: Default::default(),
        context: Default::default(),
        context_rev: 0,
    }
}

pub(super) fn limits(max_events: u64, overflow: Overflow) -> Limits {
    Limits {
        max_events,
        max_bytes: 1 << 30,
        overflow,
        retain_events: 0,
        retain_bytes: 0,
        retain_age: Duration::ZERO,
        confirm: false,
    }
}

/// `limits` keeping up to 1,000 delivered events (1 MiB, an hour) for replay.
pub(super) fn retaining(max_events: u64, overflow: Overflow) -> Limits {
    Limits {
        retain_events: 1000,
        retain_bytes: 1 << 20,
        retain_age: Duration::from_secs(3600),
        ..limits(max_events, overflow)
    }
}

/// The writer thread on `store`, committing within 2 ms, 64 events at most.
fn spawn_writer(store: Store) -> (super::Queue, std::thread::JoinHandle<()>) {
    super::spawn(
        store,
        Duration::from_millis(2),
        64,
        Default::default(),
        None,
    )
}

pub(super) const NOW: i64 = 1_795_000_000_000;

/// A scan or replay of every event.
pub(super) const EVERY_EVENT: super::ScanFilter = super::ScanFilter {
    from_seq: 0,
    since_ms: 0,
    queued_only: false,
    limit: u64::MAX,
};

#[test]
fn seqs_stay_gap_free_across_reopen_even_after_every_row_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
        let done = s.commit(&mut [event("a"), event("b")], &[], NOW).unwrap();
        assert_eq!(done.seqs(), [1, 2]);
        s.commit(&mut [], &[1, 2], NOW).unwrap();
        assert_eq!(s.stats().unwrap().depth, 0);
    }
    let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
    assert_eq!(s.commit(&mut [event("c")], &[], NOW).unwrap().seqs(), [3]);
}

/// Deliveries out of order, with gaps, repeats, seqs already delivered and seqs that do not
/// exist: each existing queued row leaves the queue once, and the figures kept in memory are
/// those the database gives after a reopen.
#[test]
fn scattered_deliveries_leave_the_queue_once_each_in_every_mode() {
    for (mode, l) in [
        ("deleted", limits(100, Overflow::Block)),
        ("retained", retaining(100, Overflow::Block)),
        ("awaiting confirmation", confirm_limits(100)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let mut s = Store::open(&path, l).unwrap();
        let mut ten: Vec<NewEvent> = (1..=10).map(|i| event(&"x".repeat(i))).collect();
        s.commit(&mut ten, &[], NOW).unwrap();
        let all = s.stats().unwrap();
        let gone = [1, 3, 4, 7, 9, 10, 2];
        let gone_bytes: u64 = s
            .fetch(0, 100)
            .unwrap()
            .iter()
            .filter(|r| gone.contains(&r.seq))
            .map(|r| r.payload.len() as u64)
            .sum();
        s.commit(&mut [], &[7, 3, 4, 4, 9, 10, 1, 42], NOW).unwrap();
        s.commit(&mut [], &[3, 2, 2], NOW).unwrap();
        let st = s.stats().unwrap();
        assert_eq!(st.depth, 3, "{mode}");
        assert_eq!(st.bytes, all.bytes - gone_bytes, "{mode}");
        let left: Vec<u64> = s.fetch(0, 100).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(left, [5, 6, 8], "{mode}");
        let (moved, moved_bytes) = match mode {
            "retained" => (st.retained, st.retained_bytes),
            "awaiting confirmation" => (st.awaiting, st.awaiting_bytes),
            _ => (7, gone_bytes),
        };
        assert_eq!((moved, moved_bytes), (7, gone_bytes), "{mode}");
        drop(s);
        let again = Store::open(&path, l).unwrap().stats().unwrap();
        assert_eq!(
            (
                again.depth,
                again.bytes,
                again.retained,
                again.retained_bytes
            ),
            (st.depth, st.bytes, st.retained, st.retained_bytes),
            "{mode}"
        );
        assert_eq!(
            (again.awaiting, again.awaiting_bytes),
            (st.awaiting, st.awaiting_bytes),
            "{mode}"
        );
    }
}

#[test]
fn delivered_seqs_are_taken_as_runs_of_consecutive_numbers() {
    use super::commit::runs;
    assert_eq!(runs(&[]), []);
    assert_eq!(runs(&[5]), [(5, 5)]);
    assert_eq!(
        runs(&[7, 3, 4, 4, 9, 10, 1, 42]),
        [(1, 1), (3, 4), (7, 7), (9, 10), (42, 42)]
    );
    assert_eq!(runs(&[u64::MAX, u64::MAX - 1]), [(u64::MAX - 1, u64::MAX)]);
}

#[test]
fn payload_is_stored_with_its_seq_and_fetched_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("q.db"), limits(100, Overflow::Block)).unwrap();
    s.commit(&mut [event("x"), event("y"), event("z")], &[], NOW)
        .unwrap();
    let rows = s.fetch(1, 10).unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
    let v: serde_json::Value = serde_json::from_slice(&rows[0].payload).unwrap();
    assert_eq!(v["seq"], 2);
    assert_eq!(v["code"]["text"], "y");
    assert_eq!(s.fetch(1, 10).unwrap(), rows);
}

#[test]
fn block_policy_commits_only_what_fits_and_keeps_the_rest_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("q.db"), limits(3, Overflow::Block)).unwrap();
    let done = s
        .commit(
            &mut [event("1"), event("2"), event("3"), event("4")],
            &[],
            NOW,
        )
        .unwrap();
    assert_eq!(done.seqs(), [1, 2, 3]);
    assert!(s.is_full());
    // Deleting a delivered row makes room; the next event takes the next seq, no gap.
    let done = s.commit(&mut [event("4")], &[1], NOW).unwrap();
    assert_eq!(done.seqs(), [4]);
    assert_eq!(s.stats().unwrap().oldest_seq, Some(2));
}

#[test]
fn drop_oldest_deletes_the_oldest_rows_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut s = Store::open(&path, limits(3, Overflow::DropOldest)).unwrap();
    let done = s
        .commit(
            &mut [event("1"), event("2"), event("3"), event("4"), event("5")],
            &[],
            NOW,
        )
        .unwrap();
    assert_eq!(done.seqs(), [1, 2, 3, 4, 5]);
    assert_eq!(done.dropped, 2);
    let stats = s.stats().unwrap();
    assert_eq!(
        (stats.depth, stats.oldest_seq, stats.dropped_total),
        (3, Some(3), 2)
    );
    drop(s);
    let s = Store::open(&path, limits(3, Overflow::DropOldest)).unwrap();
    assert_eq!(s.stats().unwrap().dropped_total, 2);
}

#[test]
fn byte_limit_counts_payload_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(
        &dir.path().join("q.db"),
        Limits {
            max_bytes: 2000,
            ..limits(1000, Overflow::Block)
        },
    )
    .unwrap();
    let big = "X".repeat(600);
    let done = s
        .commit(
            &mut [event(&big), event(&big), event(&big), event(&big)],
            &[],
            NOW,
        )
        .unwrap();
    assert_eq!(
        done.accepted.len(),
        2,
        "two ~900-byte payloads fit in 2000 bytes, a third does not"
    );
    assert!(s.stats().unwrap().bytes <= 2000);
}

#[test]
fn a_rolled_back_transaction_leaves_nothing_behind() {
    // A commit that fails (here: the database is locked by another process) takes no seq and
    // writes no row; the next commit continues gap-free.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
    s.commit(&mut [event("a")], &[], NOW).unwrap();
    s.set_busy_timeout(Duration::from_millis(10));
    let ro = rusqlite::Connection::open(&path).unwrap();
    ro.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = s.commit(&mut [event("b")], &[], NOW);
    assert!(
        err.is_err(),
        "a locked database must fail the commit, not pretend"
    );
    ro.execute_batch("ROLLBACK").unwrap();
    assert_eq!(s.commit(&mut [event("b")], &[], NOW).unwrap().seqs(), [2]);
}

#[tokio::test]
async fn writer_answers_only_after_commit_and_holds_back_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.db"), limits(2, Overflow::Block)).unwrap();
    let (queue, writer) = super::spawn(
        store,
        Duration::from_millis(2),
        16,
        Default::default(),
        None,
    );
    let mut verdicts = Vec::new();
    for name in ["a", "b", "c"] {
        let (tx, rx) = oneshot::channel();
        queue.append(event(name), tx).await.unwrap();
        verdicts.push(rx);
    }
    let mut c = verdicts.pop().unwrap();
    for (i, rx) in verdicts.into_iter().enumerate() {
        assert_eq!(
            rx.await.unwrap(),
            Verdict::Committed {
                seq: i as u64 + 1,
                valid: true
            }
        );
    }
    // The third is held back while the queue is full...
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut c)
            .await
            .is_err()
    );
    assert!(*queue.full().borrow());
    // ...and committed as soon as a delivered row is deleted.
    queue.delivered(vec![1]).await.unwrap();
    assert_eq!(
        c.await.unwrap(),
        Verdict::Committed {
            seq: 3,
            valid: true
        }
    );
    let rows = queue.fetch(0, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
    drop(queue);
    writer.join().unwrap();
}

#[tokio::test]
async fn fetch_skips_rows_whose_delete_is_not_yet_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.db"), limits(100, Overflow::Block)).unwrap();
    // A long window so the delete stays pending while we fetch.
    let (queue, _writer) = super::spawn(
        store,
        Duration::from_millis(300),
        1,
        Default::default(),
        None,
    );
    for name in ["a", "b"] {
        let (tx, rx) = oneshot::channel();
        queue.append(event(name), tx).await.unwrap();
        rx.await.unwrap();
    }
    queue.delivered(vec![1]).await.unwrap();
    let rows = queue.fetch(0, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
}

#[test]
fn a_handover_committed_before_a_crash_is_not_committed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let with_key = |text: &str, key: &str| {
        let mut e = event(text);
        e.handover = Some(key.into());
        e
    };
    {
        let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
        let done = s
            .commit(&mut [with_key("A", "41"), with_key("B", "42")], &[], NOW)
            .unwrap();
        assert_eq!(done.seqs(), [1, 2]);
        // The agent "dies" here: committed, device not yet acknowledged.
    }
    let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
    // The PLC presents counter 42 again: the verdict repeats seq 2, nothing new is written.
    let done = s.commit(&mut [with_key("B", "42")], &[], NOW).unwrap();
    assert_eq!(
        done.accepted[0],
        super::Accepted {
            seq: 2,
            valid: true,
            repeated: true
        }
    );
    assert_eq!(done.last_seq, None);
    assert_eq!(s.stats().unwrap().depth, 2);
    // The next handover is new.
    assert_eq!(
        s.commit(&mut [with_key("C", "43")], &[], NOW)
            .unwrap()
            .seqs(),
        [3]
    );
    // Only the last handover per source counts: an old key comes back as new data.
    assert_eq!(
        s.commit(&mut [with_key("A", "41")], &[], NOW)
            .unwrap()
            .seqs(),
        [4]
    );
}

fn confirm_limits(max_events: u64) -> Limits {
    Limits {
        confirm: true,
        retain_events: 100,
        retain_bytes: 1 << 20,
        retain_age: Duration::from_secs(3600),
        ..limits(max_events, Overflow::Block)
    }
}

#[test]
fn in_confirm_mode_a_puback_is_not_the_end_and_unconfirmed_events_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("q.db"), confirm_limits(3)).unwrap();
    s.commit(&mut [event("a"), event("b"), event("c")], &[], NOW)
        .unwrap();
    s.commit(&mut [], &[1, 2, 3], NOW).unwrap();
    let st = s.stats().unwrap();
    assert_eq!((st.depth, st.awaiting, st.retained), (0, 3, 0));
    assert_eq!(st.oldest_awaiting_published_ms, Some(NOW));
    // Waiting for confirmation still holds room: the queue is full.
    assert!(s.is_full());
    assert!(
        s.commit(&mut [event("d")], &[], NOW)
            .unwrap()
            .accepted
            .is_empty()
    );
    // Confirmation frees it and measures the lag from the PUBACK.
    let c = Confirmation {
        seqs: vec![(1, 2)],
        ..Default::default()
    };
    let done = s.confirm(&c, NOW + 1500).unwrap();
    assert_eq!(done.count, 2);
    assert_eq!(done.lags_ms, [1500, 1500]);
    let st = s.stats().unwrap();
    assert_eq!((st.awaiting, st.retained), (1, 2));
    assert_eq!(s.commit(&mut [event("d")], &[], NOW).unwrap().seqs(), [4]);
}

#[test]
fn confirmations_by_id_and_up_to_and_repeats_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("q.db"), confirm_limits(100)).unwrap();
    let mut batch = [event("a"), event("b"), event("c"), event("d")];
    s.commit(&mut batch, &[], NOW).unwrap();
    let id_of_c = batch[2].id.to_string();
    s.commit(&mut [], &[1, 2, 3, 4], NOW).unwrap();
    let by_id = Confirmation {
        ids: vec![id_of_c, "not-an-id".into()],
        ..Default::default()
    };
    assert_eq!(s.confirm(&by_id, NOW).unwrap().count, 1);
    let up_to = Confirmation {
        up_to: Some(2),
        ..Default::default()
    };
    assert_eq!(s.confirm(&up_to, NOW).unwrap().count, 2);
    assert_eq!(
        s.confirm(&up_to, NOW).unwrap().count,
        0,
        "confirming twice changes nothing"
    );
    let st = s.stats().unwrap();
    assert_eq!((st.awaiting, st.retained), (1, 3));
}

/// A row stores its id without the 6 bytes of time it shares with the capture time, and one
/// of another time whole ([`super::ids`]); either way the id is published, unpacked into its
/// payload, scanned and confirmed by as it was made, and a short id does not match an event
/// of another capture time whose id ends the same.
#[test]
fn ids_are_stored_without_their_capture_time_and_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("q.db"), confirm_limits(100)).unwrap();
    let mut other_time = event_of(&gs1_code(2));
    other_time.id = Uuid::now_v7();
    // Same last 10 bytes as the first event's id, another capture time and id time.
    let mut look_alike = event_of(&gs1_code(3));
    look_alike.captured_ms += 1;
    let mut bytes = *look_alike.id.as_bytes();
    bytes[6..].copy_from_slice(&Uuid::nil().as_bytes()[6..]);
    bytes[5] += 1;
    look_alike.id = Uuid::from_bytes(bytes);
    let mut first = event_of(&gs1_code(1));
    let mut bytes = *first.id.as_bytes();
    bytes[6..].copy_from_slice(&Uuid::nil().as_bytes()[6..]);
    first.id = Uuid::from_bytes(bytes);
    let mut batch = [first, other_time, look_alike].map(queued);
    let ids: Vec<String> = batch.iter().map(|e| e.id.to_string()).collect();
    let committed = s.commit(&mut batch, &[], NOW).unwrap().rows;
    let lengths: Vec<(u64, i64)> = s
        .conn
        .prepare("SELECT seq, length(id) FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(lengths, [(1, 10), (2, 16), (3, 10)]);
    let fetched = s.fetch(0, 10).unwrap();
    assert_eq!(fetched, committed);
    for (row, id) in fetched.iter().zip(&ids) {
        assert_eq!(&*row.id, id);
        let payload: serde_json::Value = serde_json::from_slice(&row.payload).unwrap();
        assert_eq!(
            payload["id"],
            id.as_str(),
            "unpacked with the id as its hint"
        );
    }
    let mut scanned = Vec::new();
    s.scan(&EVERY_EVENT, |r| {
        scanned.push(r.payload);
        Ok(())
    })
    .unwrap();
    let fetched_payloads: Vec<Vec<u8>> = fetched.iter().map(|r| r.payload.to_vec()).collect();
    assert_eq!(scanned, fetched_payloads);
    let by_id = |id: &str| Confirmation {
        ids: vec![id.to_owned()],
        ..Default::default()
    };
    let done = s.confirm(&by_id(&ids[0]), NOW).unwrap();
    assert_eq!(
        done.unpublished,
        [1],
        "the look-alike of another time is not it"
    );
    assert_eq!(s.confirm(&by_id(&ids[1]), NOW).unwrap().unpublished, [2]);
    assert_eq!(s.confirm(&by_id(&ids[2]), NOW).unwrap().unpublished, [3]);
}

#[test]
fn unconfirmed_events_are_queued_again_after_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("q.db"), confirm_limits(100)).unwrap();
    s.commit(&mut [event("a"), event("b")], &[], NOW).unwrap();
    s.commit(&mut [], &[1], NOW).unwrap();
    s.commit(&mut [], &[2], NOW + 10_000).unwrap();
    assert_eq!(s.republish_unconfirmed(NOW + 5_000).unwrap(), 1);
    let rows = s.fetch(0, 10).unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
    let st = s.stats().unwrap();
    assert_eq!((st.depth, st.awaiting), (1, 1));
}

#[test]
fn a_confirmation_is_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let mut s = Store::open(&path, confirm_limits(100)).unwrap();
        s.commit(&mut [event("a"), event("b")], &[], NOW).unwrap();
        s.commit(&mut [], &[1, 2], NOW).unwrap();
        s.confirm(
            &Confirmation {
                seqs: vec![(2, 2)],
                ..Default::default()
            },
            NOW,
        )
        .unwrap();
    }
    let s = Store::open(&path, confirm_limits(100)).unwrap();
    let st = s.stats().unwrap();
    assert_eq!((st.depth, st.awaiting, st.retained), (0, 1, 1));
}

#[test]
fn confirmed_deletion_of_the_newest_rows_keeps_seqs_gap_free_across_reopen() {
    // Commits that only append leave meta alone; a commit that deletes must record the next
    // seq, or deleting the newest rows would hand their seqs out again after a restart.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let no_retention = Limits {
        retain_events: 0,
        ..confirm_limits(100)
    };
    {
        let mut s = Store::open(&path, no_retention).unwrap();
        s.commit(&mut [event("a"), event("b"), event("c")], &[], NOW)
            .unwrap();
        let c = Confirmation::parse(br#"{"up_to": 3}"#).unwrap();
        assert_eq!(s.confirm(&c, NOW).unwrap().count, 3);
        assert_eq!(s.stats().unwrap().depth + s.awaiting(), 0);
    }
    let mut s = Store::open(&path, no_retention).unwrap();
    assert_eq!(s.commit(&mut [event("d")], &[], NOW).unwrap().seqs(), [4]);
}

#[test]
fn retention_is_pruned_in_steps_down_to_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let retain = Limits {
        retain_events: 64, // slack: at least 64 events
        retain_bytes: 1 << 30,
        retain_age: Duration::from_secs(3600),
        ..limits(1000, Overflow::Block)
    };
    let mut s = Store::open(&path, retain).unwrap();
    let mut batch: Vec<NewEvent> = (0..128).map(|i| event(&i.to_string())).collect();
    s.commit(&mut batch, &[], NOW).unwrap();
    let seqs: Vec<u64> = (1..=128).collect();
    s.commit(&mut [], &seqs, NOW).unwrap();
    // 128 delivered: over the limit, within the slack: nothing pruned yet.
    assert_eq!(s.stats().unwrap().retained, 128);
    s.commit(&mut [event("x")], &[], NOW).unwrap();
    s.commit(&mut [], &[129], NOW).unwrap();
    // 129 > 64 + 64: pruned down to the limit, oldest first.
    let st = s.stats().unwrap();
    assert_eq!((st.retained, st.depth), (64, 0));
    let left: u64 = s
        .conn
        .query_row("SELECT min(seq) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 66);
    // Within the age plus its slack (1/1024 of it) nothing goes; past it, the whole retention.
    let slack = 3_600_000 / 1024;
    s.commit(&mut [event("y")], &[], NOW + 3_600_000 + slack - 1)
        .unwrap();
    assert_eq!(s.stats().unwrap().retained, 64);
    s.commit(&mut [event("y2")], &[], NOW + 3_600_000 + slack + 1)
        .unwrap();
    assert_eq!(s.stats().unwrap().retained, 0);
    drop(s);
    // And the seqs go on after a reopen.
    let mut s = Store::open(&path, retain).unwrap();
    assert_eq!(s.commit(&mut [event("z")], &[], NOW).unwrap().seqs(), [132]);
}

/// A writer (2 ms window, batches of 512) on a new queue at `path`, with `n` events committed.
async fn writer_with(
    path: &std::path::Path,
    limits: Limits,
    n: u64,
) -> (super::Queue, std::thread::JoinHandle<()>) {
    let store = Store::open(path, limits).unwrap();
    let (queue, writer) = super::spawn(
        store,
        Duration::from_millis(2),
        512,
        Default::default(),
        None,
    );
    let mut last = None;
    for i in 0..n {
        let (tx, rx) = oneshot::channel();
        queue.append(event(&i.to_string()), tx).await.unwrap();
        last = Some(rx);
    }
    if let Some(rx) = last {
        rx.await.unwrap();
    }
    (queue, writer)
}

#[tokio::test]
async fn deliveries_wait_for_the_next_append_and_are_never_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let (queue, writer) = writer_with(&path, limits(1000, Overflow::Block), 400).await;
    // 300 delivered: not written yet (no append, not a second old, fewer than the most
    // allowed to wait) but never fetched again, and a fetch still fills its limit.
    queue.delivered((1..=300).collect()).await.unwrap();
    let rows = queue.fetch(0, 50).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (301..=350).collect::<Vec<_>>()
    );
    let on_disk = |path: &std::path::Path| {
        Store::open_existing(path, limits(1000, Overflow::Block))
            .unwrap()
            .stats()
            .unwrap()
            .depth
    };
    assert_eq!(on_disk(&path), 400);
    // The next append carries them.
    let (tx, rx) = oneshot::channel();
    queue.append(event("next"), tx).await.unwrap();
    rx.await.unwrap();
    assert_eq!(on_disk(&path), 101);
    // Without appends they are written after DELIVERIES_AFTER.
    queue.delivered(vec![301]).await.unwrap();
    tokio::time::sleep(super::writer::DELIVERIES_AFTER / 2).await;
    assert_eq!(on_disk(&path), 101);
    tokio::time::sleep(super::writer::DELIVERIES_AFTER).await;
    assert_eq!(on_disk(&path), 100);
    drop(queue);
    writer.join().unwrap();
}

#[tokio::test]
async fn deliveries_that_reach_the_most_allowed_to_wait_are_written_at_once() {
    use super::writer::{DELIVERIES_AFTER, DELIVERIES_AT_MOST};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let n = DELIVERIES_AT_MOST as u64 + 100;
    let (queue, writer) = writer_with(&path, limits(2 * n, Overflow::Block), n).await;
    let depth = || {
        Store::open_existing(&path, limits(2 * n, Overflow::Block))
            .unwrap()
            .stats()
            .unwrap()
            .depth
    };
    // In batches, as PUBACKs come: only the first wakes the writer, and those after it wait
    // with it. One short of the most allowed to wait, nothing is written...
    let most = DELIVERIES_AT_MOST as u64;
    for from in (1..most).step_by(100) {
        queue
            .delivered((from..(from + 100).min(most)).collect())
            .await
            .unwrap();
    }
    tokio::time::sleep(DELIVERIES_AFTER / 10).await;
    assert_eq!(depth(), n);
    // ...the one that makes it has all of them written at once, before the first waited out
    // DELIVERIES_AFTER (nine tenths of it from now: a loaded machine only makes that later).
    let asked = std::time::Instant::now();
    queue.delivered(vec![most]).await.unwrap();
    while depth() != n - most {
        assert!(
            asked.elapsed() < DELIVERIES_AFTER * 8 / 10,
            "the deliveries were not written at once"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Never fetched again; the rest still are.
    let rows = queue.fetch(0, 10).await.unwrap();
    assert_eq!(rows[0].seq, most + 1);
    drop(queue);
    writer.join().unwrap();
}

#[tokio::test]
async fn a_full_batch_commits_without_waiting_out_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("q.db"), limits(1000, Overflow::Block)).unwrap();
    // A window far longer than the test: only a full batch can commit before it ends.
    let (queue, writer) =
        super::spawn(store, Duration::from_secs(600), 8, Default::default(), None);
    let mut replies = Vec::new();
    for i in 0..9 {
        let (tx, rx) = oneshot::channel();
        queue.append(event(&i.to_string()), tx).await.unwrap();
        replies.push(rx);
    }
    let mut ninth = replies.pop().unwrap();
    for (i, rx) in replies.into_iter().enumerate() {
        let verdict = tokio::time::timeout(Duration::from_secs(60), rx)
            .await
            .expect("a full batch waited for the window")
            .unwrap();
        assert!(
            matches!(verdict, Verdict::Committed { seq, .. } if seq == i as u64 + 1),
            "{verdict:?}"
        );
    }
    // The ninth is the next batch's first: it waits for its window, or for the stop.
    assert!(ninth.try_recv().is_err());
    drop(queue);
    writer.join().unwrap();
    assert!(matches!(
        ninth.await.unwrap(),
        Verdict::Committed { seq: 9, .. }
    ));
}

/// Appends `texts` through the writer and waits until the last is committed.
async fn append_all(queue: &super::Queue, texts: impl IntoIterator<Item = String>) {
    let mut last = None;
    for t in texts {
        let (tx, rx) = oneshot::channel();
        queue.append(event(&t), tx).await.unwrap();
        last = Some(rx);
    }
    if let Some(rx) = last {
        rx.await.unwrap();
    }
}

fn fetched(rows: &[super::Row]) -> Vec<u64> {
    rows.iter().map(|r| r.seq).collect()
}

#[tokio::test]
async fn rows_served_from_memory_are_the_rows_the_database_would_give() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let l = retaining(1000, Overflow::Block);
    let (queue, writer) = spawn_writer(Store::open(&path, l).unwrap());
    append_all(&queue, (0..10).map(|i| i.to_string())).await;
    let rows = queue.fetch(0, 100).await.unwrap();
    assert_eq!(fetched(&rows), (1..=10).collect::<Vec<_>>());
    let on_disk = Store::open_existing(&path, l)
        .unwrap()
        .fetch(0, 100)
        .unwrap();
    assert_eq!(
        rows, on_disk,
        "the same bytes, from memory or from the file"
    );
    // Delivered rows are gone from either answer.
    queue.delivered((1..=10).collect()).await.unwrap();
    assert_eq!(queue.fetch(0, 100).await.unwrap(), Vec::new());
    assert_eq!(queue.fetch(5, 100).await.unwrap(), Vec::new());
    // A replay puts them back: memory must not answer "nothing" for them.
    assert_eq!(queue.replay(EVERY_EVENT).await.unwrap(), 10);
    assert_eq!(
        fetched(&queue.fetch(0, 100).await.unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    drop(queue);
    writer.join().unwrap();
}

#[tokio::test]
async fn rows_dropped_by_drop_oldest_or_confirmed_unpublished_are_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, writer) = spawn_writer(
        Store::open(&dir.path().join("q.db"), limits(5, Overflow::DropOldest)).unwrap(),
    );
    append_all(&queue, (0..5).map(|i| i.to_string())).await;
    assert_eq!(
        fetched(&queue.fetch(0, 100).await.unwrap()),
        vec![1, 2, 3, 4, 5]
    );
    append_all(&queue, (5..8).map(|i| i.to_string())).await;
    assert_eq!(
        fetched(&queue.fetch(0, 100).await.unwrap()),
        vec![4, 5, 6, 7, 8]
    );
    assert_eq!(
        fetched(&queue.fetch(4, 100).await.unwrap()),
        vec![5, 6, 7, 8]
    );
    // One commit that drops rows it wrote itself.
    append_all(&queue, (8..20).map(|i| i.to_string())).await;
    assert_eq!(
        fetched(&queue.fetch(0, 100).await.unwrap()),
        vec![16, 17, 18, 19, 20]
    );
    assert_eq!(
        fetched(&queue.fetch(8, 100).await.unwrap()),
        vec![16, 17, 18, 19, 20]
    );
    // The next commit that drops nothing serves from memory again.
    queue.delivered(vec![16, 17, 18, 19, 20]).await.unwrap();
    append_all(&queue, ["x".to_string()]).await;
    assert_eq!(fetched(&queue.fetch(20, 100).await.unwrap()), vec![21]);
    drop(queue);
    writer.join().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (queue, writer) =
        spawn_writer(Store::open(&dir.path().join("q.db"), confirm_limits(100)).unwrap());
    append_all(&queue, (0..4).map(|i| i.to_string())).await;
    // The consumer confirms 2 before its PUBACK arrived: it is not sent again.
    queue
        .confirm(Confirmation::parse(br#"{"seqs":[[2,2]]}"#).unwrap())
        .await
        .unwrap();
    assert_eq!(fetched(&queue.fetch(0, 100).await.unwrap()), vec![1, 3, 4]);
    drop(queue);
    writer.join().unwrap();
}

#[tokio::test]
async fn a_backlog_read_beside_the_writer_skips_what_was_just_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    // A backlog from before a restart: memory holds none of it.
    let mut store = Store::open(&path, limits(10_000, Overflow::Block)).unwrap();
    let mut events: Vec<NewEvent> = (0..600).map(|i| event(&i.to_string())).collect();
    store.commit(&mut events, &[], NOW).unwrap();
    let (queue, writer) = spawn_writer(store);
    assert_eq!(
        fetched(&queue.fetch(0, 10).await.unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    // Delivered and at once fetched again: the writer may not have heard of them yet, and
    // nothing is written yet, but the read skips them.
    queue.delivered((1..=300).collect()).await.unwrap();
    assert_eq!(
        fetched(&queue.fetch(0, 50).await.unwrap()),
        (301..=350).collect::<Vec<_>>()
    );
    let depth = || {
        Store::open_existing(&path, limits(10_000, Overflow::Block))
            .unwrap()
            .stats()
            .unwrap()
            .depth
    };
    assert_eq!(depth(), 600);
    // Written with the next append; still skipped, now by the file itself.
    append_all(&queue, ["next".to_string()]).await;
    assert_eq!(depth(), 301);
    assert_eq!(fetched(&queue.fetch(0, 2).await.unwrap()), vec![301, 302]);
    drop(queue);
    writer.join().unwrap();
}

/// One WAL frame: a page and its 24-byte header.
const FRAME: u64 = super::store::PAGE_SIZE as u64 + 24;

/// Starts the checkpointer at `at` for a new queue and commits 600 single events of a
/// ~900-byte row, `pause` apart. Asserts that they were copied back into the database file
/// (at least 300 pages of rows) and returns the largest size the WAL file reached.
fn wal_max_with_checkpoints(at: super::checkpoint::Thresholds, pause: Duration) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let wal = path.with_extension("db-wal");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut s = Store::open(&path, limits(10_000, Overflow::Block)).unwrap();
    let thread = super::checkpoint::start(&mut s, at).unwrap();
    let mut wal_max = 0;
    for i in 0..600 {
        s.commit(&mut [event(&incompressible(i, 700))], &[], NOW)
            .unwrap();
        wal_max = wal_max.max(size(&wal));
        std::thread::sleep(pause);
    }
    let db_size = size(&path);
    assert!(
        db_size >= 200 * FRAME,
        "database file {db_size} B: nothing copied back"
    );
    drop(s);
    thread.join().unwrap();
    wal_max
}

#[test]
fn the_checkpointer_thread_copies_the_wal_back_while_commits_go_on() {
    // Never inline: only the thread can checkpoint (SQLite's own hook is replaced). The WAL
    // started over instead of holding all 600 commits.
    let at = super::checkpoint::Thresholds {
        background: 16,
        inline: i32::MAX,
    };
    let wal_max = wal_max_with_checkpoints(at, Duration::from_millis(2));
    assert!(
        wal_max < 300 * FRAME,
        "the WAL grew to {wal_max} B, {} frames",
        wal_max / FRAME
    );
}

#[test]
fn commits_that_outrun_the_checkpointer_checkpoint_themselves() {
    // The thread never hears of it: the writer's inline checkpoint alone bounds the WAL.
    let at = super::checkpoint::Thresholds {
        background: i32::MAX,
        inline: 32,
    };
    let wal_max = wal_max_with_checkpoints(at, Duration::ZERO);
    assert!(
        wal_max <= 40 * FRAME,
        "the WAL grew to {wal_max} B, {} frames",
        wal_max / FRAME
    );
}

/// Pages written to the WAL per commit in the steady state of a line: each commit appends
/// six events and marks the six of the commit before delivered. Returns the mean over
/// commits 500..2000, with the retention of delivered events at `retain`.
fn wal_frames_per_commit(retain: u64) -> f64 {
    use std::sync::atomic::{AtomicI32, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let l = Limits {
        retain_events: retain,
        retain_bytes: 1 << 40,
        retain_age: Duration::from_secs(1 << 30),
        ..limits(1_000_000, Overflow::Block)
    };
    let mut s = Store::open(&dir.path().join("q.db"), l).unwrap();
    // The hook replaces SQLite's automatic checkpoint: the WAL only grows, and its size
    // after each commit tells how many pages the commit wrote.
    let frames = std::sync::Arc::new(AtomicI32::new(0));
    let seen = frames.clone();
    s.conn
        .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
            seen.store(pages, Ordering::SeqCst);
            Ok(())
        }))
        .unwrap();
    let (mut delivered, mut written, mut commits) = (Vec::new(), 0, 0);
    for round in 0..2000 {
        if round % 100 == 0 {
            s.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .unwrap();
        }
        let before = frames.load(Ordering::SeqCst);
        let mut batch: Vec<NewEvent> = (0..6).map(|i| event(&gs1_code(round * 6 + i))).collect();
        delivered = s.commit(&mut batch, &delivered, NOW).unwrap().seqs();
        if round >= 500 && round % 100 != 0 {
            written += frames.load(Ordering::SeqCst) - before;
            commits += 1;
        }
    }
    written as f64 / commits as f64
}

/// Flash wear: what one commit of a few events costs is a handful of pages, whatever the
/// queue's size. A new index, a meta row written per commit or rows that grow when marked
/// would each add a page to every commit.
#[test]
fn a_commit_of_a_few_events_writes_a_handful_of_pages() {
    // Measured: 2.0 without retention, 2.47 keeping them, 3.59 keeping 2,000 and pruning (1 KiB
    // pages, rows packed with hints, ids without their time and the delivery's time as a
    // delay: schema 5). With the ids whole and the time absolute (schema 4), 2.0, 2.85, 4.13.
    // With 2 KiB pages and no hints: 2.0, 2.8, 4.05 (a line's scans, packed to a fraction:
    // many rows a page). With the partial indexes of the queued and the delivered rows: 3.0,
    // 5.4, 6.9. Before payloads were packed, with ~870-byte payloads two rows a page: 7.0,
    // 10.8, 12.4.
    for (retain, most) in [(0, 2.5), (100_000, 2.8), (2_000, 4.0)] {
        let frames = wal_frames_per_commit(retain);
        assert!(
            frames <= most,
            "retaining {retain}: {frames:.2} pages per commit, expected at most {most}"
        );
    }
}

/// Outside [confirm], marking events delivered rewrites their rows at their size or smaller,
/// up to 24 days after their capture: a row that grew would split its page, since appends
/// fill the pages. The table keeps its pages,
/// and `queue scan` still shows no publication time for a queued row and the mark's for a
/// delivered one (a replay puts the placeholder back).
#[test]
fn the_delivered_mark_does_not_grow_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    // Every row is retained: pruning would free pages that a split could take.
    let keep_all = Limits {
        retain_events: 100_000,
        retain_bytes: 1 << 30,
        retain_age: Duration::from_secs(30 * 86_400),
        ..limits(100_000, Overflow::Block)
    };
    let mut s = Store::open(&path, keep_all).unwrap();
    let pages = |s: &Store| -> (i64, i64) {
        s.conn
            .query_row(
                "SELECT (SELECT page_count FROM pragma_page_count),
                        (SELECT freelist_count FROM pragma_freelist_count)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let mut batch: Vec<_> = (0..2_000).map(|i| event(&gs1_code(i))).collect();
    let seqs = s.commit(&mut batch, &[], NOW).unwrap().seqs();
    let before = pages(&s);
    s.commit(&mut [], &seqs[..1_500], NOW + 5_000).unwrap();
    assert_eq!(pages(&s), before, "the marks grew rows and split pages");
    let scanned = |s: &Store| {
        let mut out = Vec::new();
        s.scan(
            &super::ScanFilter {
                from_seq: 1_499,
                since_ms: 0,
                queued_only: false,
                limit: 3,
            },
            |r| {
                out.push((r.seq, r.state, r.published_ms));
                Ok(())
            },
        )
        .unwrap();
        out
    };
    assert_eq!(
        scanned(&s),
        [
            (1_499, "published", Some(NOW + 5_000)),
            (1_500, "published", Some(NOW + 5_000)),
            (1_501, "queued", None)
        ]
    );
    let filter = super::ScanFilter {
        from_seq: 1_500,
        since_ms: 0,
        queued_only: false,
        limit: 10,
    };
    assert_eq!(s.replay(&filter).unwrap(), 1);
    assert_eq!(scanned(&s)[1], (1_500, "queued", None));
    s.commit(&mut [], &[1_500], NOW + 9_000).unwrap();
    assert_eq!(scanned(&s)[1], (1_500, "published", Some(NOW + 9_000)));
    assert_eq!(pages(&s), before);
    // Delivered 24 days after their capture: a delay as wide as the placeholder.
    let late = NOW + 24 * 86_400_000;
    s.commit(&mut [], &seqs[1_500..], late).unwrap();
    assert_eq!(scanned(&s)[2], (1_501, "published", Some(late)));
    assert_eq!(pages(&s), before, "a late mark grew rows and split pages");
}

/// A clean stop leaves every event in the database file itself, even for a queue too small to
/// have reached a checkpoint and with another connection still open (SQLite checkpoints only
/// when the last connection closes, and never from a read-only one): a copy of `queue.db`
/// alone after the stop is complete.
#[tokio::test]
async fn a_clean_stop_leaves_every_event_in_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let l = limits(1000, Overflow::Block);
    let (queue, writer) = spawn_writer(Store::open(&path, l).unwrap());
    let outside =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    append_all(&queue, (0..50).map(gs1_code)).await;
    // A connection that has read is attached to the WAL until it closes.
    let seen: i64 = outside
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen, 50);
    drop(queue);
    writer.join().unwrap();
    let wal = std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the WAL was copied back and emptied");
    drop(outside);
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    assert_eq!(Store::open(&copy, l).unwrap().stats().unwrap().depth, 50);
}

/// Outside [confirm] the states have no index (each would cost every commit a page): the
/// oldest queued event is still found behind the delivered ones kept for replay, after
/// deliveries, `drop_oldest`, a replay and a reopen.
#[test]
fn the_oldest_queued_event_is_found_behind_the_delivered_without_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let l = retaining(6, Overflow::DropOldest);
    let mut s = Store::open(&path, l).unwrap();
    let oldest = |s: &Store| s.stats().unwrap().oldest_seq;
    let mut batch: Vec<_> = (0..6).map(|i| event(&gs1_code(i))).collect();
    s.commit(&mut batch, &[], NOW).unwrap();
    assert_eq!(oldest(&s), Some(1));
    s.commit(&mut [], &[1, 2, 3, 4], NOW).unwrap();
    assert_eq!(oldest(&s), Some(5));
    // Six queued at most: two more push out 5 and 6.
    let mut batch: Vec<_> = (6..12).map(|i| event(&gs1_code(i))).collect();
    assert_eq!(s.commit(&mut batch, &[], NOW).unwrap().dropped, 2);
    assert_eq!(oldest(&s), Some(7));
    s.commit(&mut [], &[7, 8, 9, 10, 11, 12], NOW).unwrap();
    assert_eq!(oldest(&s), None);
    let mut batch = [event("13")];
    s.commit(&mut batch, &[], NOW).unwrap();
    assert_eq!(oldest(&s), Some(13));
    // A replay queues delivered events again, below where the last search ended.
    let from_3 = super::ScanFilter {
        from_seq: 3,
        since_ms: 0,
        queued_only: false,
        limit: u64::MAX,
    };
    assert_eq!(s.replay(&from_3).unwrap(), 8);
    assert_eq!(oldest(&s), Some(3));
    drop(s);
    let s = Store::open(&path, l).unwrap();
    assert_eq!(oldest(&s), Some(3));
    assert_eq!(
        s.fetch(0, 2)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        [3, 4]
    );
    let c = rusqlite::Connection::open(&path).unwrap();
    let indexes: Vec<String> = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE name IN ('events_queued', 'events_published')",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(indexes.is_empty(), "{indexes:?}");
}

/// A publisher that starts over (from seq 0) reads the queued rows from where they begin, not
/// through the delivered ones kept for replay; a replay moves that point back first.
#[tokio::test]
async fn a_fetch_from_the_front_starts_where_the_queued_rows_begin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let l = retaining(1000, Overflow::Block);
    let (queue, writer) = spawn_writer(Store::open(&path, l).unwrap());
    append_all(&queue, (0..300).map(gs1_code)).await;
    queue.delivered((1..=290).collect()).await.unwrap();
    append_all(&queue, ["next".to_string()]).await;
    // The oldest queued event is looked for (stats do), and the floor follows it.
    assert_eq!(queue.stats().await.unwrap().oldest_seq, Some(291));
    assert_eq!(queue.queued_floor(), 291);
    let all: Vec<u64> = (291..=301).collect();
    assert_eq!(fetched(&queue.fetch(0, 100).await.unwrap()), all);
    let from_100 = super::ScanFilter {
        from_seq: 100,
        since_ms: 0,
        queued_only: false,
        limit: u64::MAX,
    };
    assert_eq!(queue.replay(from_100).await.unwrap(), 191);
    assert!(queue.queued_floor() <= 100);
    assert_eq!(
        fetched(&queue.fetch(0, 1000).await.unwrap()),
        (100..=301).collect::<Vec<_>>()
    );
    drop(queue);
    writer.join().unwrap();
}

#[test]
fn a_payload_carries_the_seq_of_its_commit_and_a_retry_rewrites_it() {
    for text in [gs1_code(7), r#"{"seq":0,}"#.to_string()] {
        let e = event_of(&text);
        let mut new = queued(e.clone());
        for seq in [1, 1_234_567, 42, u64::MAX, 0] {
            new.set_seq(seq);
            let mut expected = e.clone();
            expected.seq = seq;
            assert_eq!(
                std::str::from_utf8(new.payload()).unwrap(),
                serde_json::to_string(&expected).unwrap()
            );
        }
    }
}

#[test]
fn one_long_code_does_not_widen_the_payloads_after_it() {
    let mut hint = 512;
    let mut queue = |text: &str| {
        NewEvent::new(
            event_of(text),
            "t/st/src/scan".into(),
            None,
            std::time::SystemTime::now(),
            &mut hint,
        );
        hint
    };
    assert!(queue(&"x".repeat(50_000)) > 50_000);
    assert!(queue("short") < 1024);
}
