//! The committing transaction: deliveries, retention pruning, overflow and appends, all in
//! one fsync.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::ids;
use super::pack::{self, Current, Hint, Packing};
use super::routes::{Routes, route};
use super::store::{
    Limits, PUBLISHED_PLACEHOLDER, QUEUED, Row, ScanFilter, Store, StoreError, Totals, id_text,
};
use crate::config::Overflow;
use crate::event::{Event, Kind};

/// An event waiting to be committed: its payload, serialized by the source's processor, and
/// what the commit needs to know of it.
///
/// The processor serializes it so that the event's many small allocations (code, GS1
/// elements, times) are made and freed on one thread. Freed on the queue writer's thread
/// instead, each free took the lock of the processor thread's malloc arena, against that
/// thread's own allocations: over half the agent's futex calls at full rate
/// (docs/performance.md).
#[derive(Debug)]
pub struct NewEvent {
    /// The JSON payload, seq included ([`NewEvent::set_seq`]).
    payload: Vec<u8>,
    /// Where the seq's digits are in `payload`, and how many there are.
    seq_at: usize,
    seq_len: usize,
    pub id: Uuid,
    pub kind: Kind,
    pub source: Arc<str>,
    /// Capture time in ms since the epoch, stored beside the payload.
    pub captured_ms: i64,
    pub topic: Arc<str>,
    /// The device's handover id ([`tracegate_drivers::Reading::handover`]).
    pub handover: Option<String>,
    /// When the driver captured it (for the scan → commit latency; not stored).
    pub captured: std::time::SystemTime,
}

/// Room for a seq of up to 20 digits where the payload holds a 0 for it.
const SEQ_ROOM: usize = 19;

impl NewEvent {
    /// Serializes `event` (its seq is set at commit). `size_hint` is the capacity to start
    /// from, updated to fit this payload and its seq: a source's payloads are alike, and one
    /// grown from serde_json's 128 bytes took three reallocations.
    pub fn new(
        mut event: Event,
        topic: Arc<str>,
        handover: Option<String>,
        captured: std::time::SystemTime,
        size_hint: &mut usize,
    ) -> NewEvent {
        event.seq = 0;
        let mut payload = Vec::with_capacity(*size_hint);
        // Cannot fail: the writer is a Vec and every map of an event has string keys.
        serde_json::to_writer(&mut payload, &event).expect("an event serializes to JSON");
        // The last size, not the largest: one long code must not widen every payload after it
        // (the published ones keep their capacity in memory).
        *size_hint = (payload.len() + SEQ_ROOM).next_multiple_of(64);
        // The schema and the id come first and hold no `"seq":`, so the first one is the
        // field's.
        const SEQ_ZERO: &[u8] = b"\"seq\":0,";
        let seq_at = payload
            .windows(SEQ_ZERO.len())
            .position(|w| w == SEQ_ZERO)
            .expect("an event's payload has its seq")
            + SEQ_ZERO.len()
            - 2;
        NewEvent {
            payload,
            seq_at,
            seq_len: 1,
            id: event.id,
            kind: event.kind,
            source: event.source,
            captured_ms: event.captured_ms,
            topic,
            handover,
            captured,
        }
    }

    /// Writes `seq` into the payload (again, when a failed commit is retried). Formatted on
    /// the stack: this runs once an event in the commit.
    pub fn set_seq(&mut self, seq: u64) {
        use std::io::Write;
        let mut buf = [0u8; 20];
        let mut rest = &mut buf[..];
        write!(rest, "{seq}").expect("a u64 has at most 20 digits");
        let len = 20 - rest.len();
        let at = self.seq_at;
        self.payload
            .splice(at..at + self.seq_len, buf[..len].iter().copied());
        self.seq_len = len;
    }

    /// The payload as it is published.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// One event a commit took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Its seq; for a repeated handover, the seq of the original commit.
    pub seq: u64,
    /// Whether it is a valid scan (else invalid, no-read or alarm).
    pub valid: bool,
    /// True when this was a handover already committed (nothing new was written for it).
    pub repeated: bool,
}

/// What one commit did.
#[derive(Debug, Default)]
pub struct Committed {
    /// One entry per event taken, in input order. Shorter than the input under `block` when
    /// the queue filled: the rest were not committed.
    pub accepted: Vec<Accepted>,
    /// The highest seq written by this commit.
    pub last_seq: Option<u64>,
    /// Events deleted undelivered to make room (`drop_oldest`).
    pub dropped: u64,
    /// Payload bytes written.
    pub bytes_written: u64,
    /// The rows written, as the publisher sends them.
    pub rows: Vec<Row>,
}

impl Committed {
    /// The seqs of the events taken, in order.
    pub fn seqs(&self) -> Vec<u64> {
        self.accepted.iter().map(|a| a.seq).collect()
    }
}

impl Store {
    /// In one transaction: marks `delivered` seqs published (or deletes them when retention
    /// is off), prunes the retention, then appends `events` with the next sequence numbers.
    /// Durable when it returns Ok. On error nothing changed, in the file or in memory.
    pub fn commit(
        &mut self,
        events: &mut [NewEvent],
        delivered: &[u64],
        now_ms: i64,
    ) -> Result<Committed, StoreError> {
        let limits = self.limits;
        // Where the oldest queued row is looked for; moves up as `drop_oldest` deletes.
        let mut queued_from = self.queued_from();
        let tx = self.conn.transaction()?;
        let mut t = self.totals;
        let mut out = Committed::default();
        let mut handovers: HashMap<String, (String, u64, bool)> = HashMap::new();
        // The dictionaries this commit makes or uses; the store's own change after it.
        let mut dicts = Dicts::default();
        // The source and topic pairs this commit stores first.
        let mut routes = Routes::default();
        // The events this commit writes, by position: their payloads become its rows once
        // it is durable, and stay with the events for a retry when it fails.
        let mut written = Vec::new();
        // Rows deleted in this commit: `meta.next_seq` is then written too, since the highest
        // seq may be among them. Otherwise the highest row tells it ([`Store::open`]), and a
        // commit of appends touches no meta page.
        let mut deleted = mark_delivered(&tx, &mut t, delivered, &limits, now_ms)?;
        {
            let mut ins = tx.prepare_cached(
                // The placeholder of a queued row (store.rs), as wide as the delays the
                // delivered mark writes there.
                "INSERT INTO events (seq, id, route, captured_ms, bytes, payload, dict, published_after_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut upsert = tx.prepare_cached(
                "INSERT OR REPLACE INTO handovers (source, key, seq, valid) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (at, new) in events.iter_mut().enumerate() {
                let valid = new.kind == Kind::Scan;
                if let Some(key) = &new.handover {
                    let source = &new.source;
                    let last = handovers
                        .get(&**source)
                        .or_else(|| self.handovers.get(&**source));
                    if let Some((_, seq, valid)) = last.filter(|(k, _, _)| k == key) {
                        out.accepted.push(Accepted {
                            seq: *seq,
                            valid: *valid,
                            repeated: true,
                        });
                        continue;
                    }
                }
                new.set_seq(t.next_seq);
                let len = new.payload().len() as u64;
                if !make_room(
                    &tx,
                    &limits,
                    &mut t,
                    len,
                    &mut out.dropped,
                    &mut queued_from,
                )? {
                    break;
                }
                let seq = t.next_seq;
                let hint = Hint {
                    id: new.id,
                    seq,
                    captured_ms: new.captured_ms,
                };
                let (dict, stored) =
                    dicts.pack(&tx, &self.packer, &new.topic, new.payload(), &hint)?;
                let route = route(&tx, &self.routes, &mut routes, &new.source, &new.topic)?;
                ins.execute(params![
                    seq,
                    ids::stored(&new.id, new.captured_ms),
                    route,
                    new.captured_ms,
                    len,
                    stored,
                    dict,
                    PUBLISHED_PLACEHOLDER
                ])?;
                written.push((at, seq));
                if let Some(key) = &new.handover {
                    upsert.execute(params![new.source, key, seq, valid])?;
                    handovers.insert(new.source.to_string(), (key.clone(), seq, valid));
                }
                out.accepted.push(Accepted {
                    seq,
                    valid,
                    repeated: false,
                });
                out.last_seq = Some(seq);
                out.bytes_written += len;
                t.next_seq += 1;
                t.depth += 1;
                t.bytes += len;
            }
        }
        if out.last_seq.is_some() || !delivered.is_empty() {
            deleted += prune_retained(&tx, &limits, &mut t, now_ms)?;
        }
        let retired = delete_unused_dicts(
            &tx,
            self.retired_dicts + dicts.retired,
            deleted + out.dropped,
            t.next_seq,
        )?;
        if deleted + out.dropped > 0 {
            set_meta(&tx, "next_seq", t.next_seq)?;
        }
        if out.dropped > 0 {
            t.dropped_total += out.dropped;
            set_meta(&tx, "dropped_total", t.dropped_total)?;
        }
        tx.commit()?;
        out.rows = written
            .into_iter()
            .map(|(at, seq)| {
                let new = &mut events[at];
                Row {
                    seq,
                    id: id_text(&new.id),
                    source: new.source.clone(),
                    topic: new.topic.clone(),
                    payload: std::mem::take(&mut new.payload).into(),
                }
            })
            .collect();
        self.totals = t;
        self.handovers.extend(handovers);
        self.packer.extend(dicts.current);
        self.routes.extend(routes);
        self.retired_dicts = retired;
        self.queued_from.set(queued_from);
        Ok(out)
    }

    /// Marks delivered (and, in [confirm] mode, confirmed) events queued again so the
    /// publisher sends them once more (same id, seq and bytes). Returns how many.
    pub fn replay(&mut self, filter: &ScanFilter) -> Result<u64, StoreError> {
        let n = self.conn.execute(
            "UPDATE events SET state = ?1, published_after_ms = ?4, first_published_ms = NULL
             WHERE state > ?1 AND seq >= ?2 AND captured_ms >= ?3",
            params![
                QUEUED,
                filter.from_seq,
                filter.since_ms,
                PUBLISHED_PLACEHOLDER
            ],
        )?;
        self.load_totals()?;
        Ok(n as u64)
    }
}

/// What a commit changes of the store's dictionaries ([`super::pack`]), applied to the store
/// only once the commit is durable.
#[derive(Default)]
struct Dicts {
    /// Topic → its dictionary as this commit leaves it.
    current: HashMap<String, Current>,
    /// Dictionaries this commit retired.
    retired: u64,
}

impl Dicts {
    /// What to store for `payload` (of `topic`, the event `hint` names): its dictionary and
    /// the packed bytes, or no dictionary and the payload as it is. Makes the payload the
    /// topic's new dictionary when [`pack::pack`] says so, retiring the one before it.
    fn pack<'p>(
        &mut self,
        tx: &Transaction<'_>,
        before: &HashMap<String, Current>,
        topic: &str,
        payload: &'p [u8],
        hint: &Hint,
    ) -> rusqlite::Result<(Option<i64>, Cow<'p, [u8]>)> {
        if !self.current.contains_key(topic)
            && let Some(c) = before.get(topic)
        {
            self.current.insert(topic.to_owned(), c.clone());
        }
        let current = self.current.get_mut(topic);
        match pack::pack(payload, current.as_deref(), hint) {
            Packing::Packed { dict, bytes } => {
                if let Some(c) = current {
                    c.used += 1;
                }
                Ok((Some(dict), Cow::Owned(bytes)))
            }
            Packing::Raw => Ok((None, Cow::Borrowed(payload))),
            Packing::NewDict => {
                if let Some(old) = current {
                    tx.prepare_cached("UPDATE dicts SET until_seq = ?2 WHERE id = ?1")?
                        .execute(params![old.id, hint.seq])?;
                    self.retired += 1;
                }
                tx.prepare_cached("INSERT INTO dicts (topic, bytes, hinted) VALUES (?1, ?2, 1)")?
                    .execute(params![topic, payload])?;
                let id = tx.last_insert_rowid();
                self.current.insert(
                    topic.to_owned(),
                    Current {
                        id,
                        bytes: payload.into(),
                        used: 1,
                        hinted: true,
                    },
                );
                Ok((
                    Some(id),
                    Cow::Owned(pack::pack_against(payload, payload, Some(hint))),
                ))
            }
        }
    }
}

/// After a transaction deleted `deleted` rows: deletes the `retired` dictionaries that no row
/// uses any more (every row left is at or after the seq they were retired at). Returns how
/// many retired ones are left; nothing is looked at when no row went or none is retired.
pub(super) fn delete_unused_dicts(
    tx: &Transaction<'_>,
    retired: u64,
    deleted: u64,
    next_seq: u64,
) -> rusqlite::Result<u64> {
    if deleted == 0 || retired == 0 {
        return Ok(retired);
    }
    let n = tx
        .prepare_cached(
            "DELETE FROM dicts WHERE until_seq <= (SELECT coalesce(min(seq), ?1) FROM events)",
        )?
        .execute([next_seq])?;
    Ok(retired - n as u64)
}

/// The broker acknowledged `seqs`: they wait for confirmation ([confirm] mode), are retained
/// for replay, or are deleted (retention off). Returns how many rows were deleted.
///
/// Acknowledgements come in seq order, so the seqs form a few runs of consecutive numbers
/// (usually one per commit); each run is counted and changed with one statement each. A
/// statement per seq with `RETURNING bytes` cost several times an insert: SQLite builds a
/// temporary table for the rows a `RETURNING` statement changes.
fn mark_delivered(
    tx: &Transaction<'_>,
    t: &mut Totals,
    seqs: &[u64],
    l: &Limits,
    now_ms: i64,
) -> rusqlite::Result<u64> {
    if seqs.is_empty() {
        return Ok(0);
    }
    let keep = l.confirm || l.retain_events > 0;
    let mut count = tx.prepare_cached(
        "SELECT count(*), coalesce(sum(bytes), 0) FROM events WHERE seq BETWEEN ?1 AND ?2 AND state = 0",
    )?;
    // Outside [confirm] the mark changes the row in place, at its size or smaller: the state's
    // 0 and 1 take no bytes, the delay replaces a placeholder at least as wide (store.rs),
    // and the first acknowledgement's time, which measures the confirm lag, stays NULL. A
    // mark that grew the row would split its page once the page had no room: rows fill their
    // pages on append. 2.0 pages written per commit instead of 2.8, 2.0 instead of 4.05 while
    // pruning (`a_commit_of_a_few_events_writes_a_handful_of_pages`).
    let mut change = tx.prepare_cached(if l.confirm {
        "UPDATE events SET state = 1, published_after_ms = ?3 - captured_ms,
                first_published_ms = coalesce(first_published_ms, ?3)
         WHERE seq BETWEEN ?1 AND ?2 AND state = 0"
    } else if keep {
        "UPDATE events SET state = 1, published_after_ms = ?3 - captured_ms
         WHERE seq BETWEEN ?1 AND ?2 AND state = 0"
    } else {
        "DELETE FROM events WHERE seq BETWEEN ?1 AND ?2 AND state = 0 AND ?3 = ?3"
    })?;
    let mut deleted = 0;
    for (first, last) in runs(seqs) {
        let (n, b): (u64, u64) =
            count.query_row(params![first, last], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if n == 0 {
            continue;
        }
        change.execute(params![first, last, now_ms])?;
        t.depth -= n;
        t.bytes -= b;
        if l.confirm {
            t.awaiting += n;
            t.awaiting_bytes += b;
        } else if keep {
            t.retained += n;
            t.retained_bytes += b;
        } else {
            deleted += n;
        }
    }
    Ok(deleted)
}

/// `seqs` as runs of consecutive numbers `(first, last)`, in ascending order, each seq once.
pub(super) fn runs(seqs: &[u64]) -> Vec<(u64, u64)> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in sorted {
        match out.last_mut() {
            // Sorted: `s` is the run's last seq again (a repeat) or the one after it.
            Some((_, last)) if s <= last.saturating_add(1) => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Sets a meta value. An update in place rewrites the table's one page; `INSERT OR REPLACE`
/// would delete and insert the row and rewrite its key index's page as well.
pub(super) fn set_meta(tx: &Transaction<'_>, key: &str, value: u64) -> rusqlite::Result<()> {
    let updated = tx
        .prepare_cached("UPDATE meta SET value = ?2 WHERE key = ?1")?
        .execute(params![key, value])?;
    if updated == 0 {
        tx.prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2)")?
            .execute(params![key, value])?;
    }
    Ok(())
}

/// Ensures an event of `len` bytes fits: under `drop_oldest` deletes the oldest undelivered
/// events (queued, or waiting for confirmation); under `block` answers false when it does not
/// fit.
fn make_room(
    tx: &Transaction<'_>,
    l: &Limits,
    t: &mut Totals,
    len: u64,
    dropped: &mut u64,
    queued_from: &mut u64,
) -> rusqlite::Result<bool> {
    let fits = |t: &Totals| {
        t.depth + t.awaiting < l.max_events && t.bytes + t.awaiting_bytes + len <= l.max_bytes
    };
    let mut oldest_queued = tx.prepare_cached(
        "DELETE FROM events WHERE seq = (SELECT min(seq) FROM events WHERE state = 0 AND seq >= ?1) RETURNING seq, bytes",
    )?;
    let mut oldest_awaiting = tx.prepare_cached(
        "DELETE FROM events WHERE seq = (SELECT min(seq) FROM events WHERE state = 1) RETURNING bytes",
    )?;
    while !fits(t) && l.overflow == Overflow::DropOldest && t.depth + t.awaiting > 0 {
        // Waiting rows are older than queued ones (they were published first).
        if t.awaiting > 0 {
            let b: u64 = oldest_awaiting.query_row([], |r| r.get(0))?;
            t.awaiting -= 1;
            t.awaiting_bytes -= b;
        } else {
            let (seq, b): (u64, u64) =
                oldest_queued.query_row([*queued_from], |r| Ok((r.get(0)?, r.get(1)?)))?;
            *queued_from = seq + 1;
            t.depth -= 1;
            t.bytes -= b;
        }
        *dropped += 1;
    }
    Ok(fits(t))
}

/// How far a retention limit may be exceeded before a prune: 1/1024 of it, and at least
/// `floor`. Pruning in such steps leaves the oldest pages alone in most commits, frees whole
/// pages at once (a freed page is listed, not rewritten), and keeps each prune short: a
/// slack of 1/32 (3,125 rows at the default 100,000) made one commit in every few seconds take
/// tens of milliseconds, and the events that arrived meanwhile waited for it.
fn prune_slack(limit: u64, floor: u64) -> u64 {
    (limit / 1024).max(floor)
}

/// Deletes retained (delivered) events beyond the retention's count, bytes or age, in
/// steps: nothing until a limit is exceeded by its [`prune_slack`], then down to the limit.
/// Returns how many rows were deleted.
pub(super) fn prune_retained(
    tx: &Transaction<'_>,
    l: &Limits,
    t: &mut Totals,
    now_ms: i64,
) -> rusqlite::Result<u64> {
    if t.retained == 0 {
        return Ok(0);
    }
    let oldest_allowed = now_ms - l.retain_age.as_millis() as i64;
    // The state is written into the SQL so that in [confirm] mode the partial index of the
    // confirmed can serve the query. Otherwise the retained are simply the oldest rows (events
    // are delivered in seq order; a replay queues the newest again), found at the table's
    // start without an index.
    let mut oldest = tx.prepare_cached(&format!(
        "SELECT seq, bytes, coalesce(captured_ms + published_after_ms, 0) FROM events
         WHERE state = {} ORDER BY seq LIMIT 1",
        l.retained_state()
    ))?;
    if t.retained <= l.retain_events + prune_slack(l.retain_events, 64)
        && t.retained_bytes <= l.retain_bytes + prune_slack(l.retain_bytes, 64 * 1024)
    {
        // Within the count and bytes: only the age can require a prune.
        let slack_ms = prune_slack(l.retain_age.as_millis() as u64, 1000) as i64;
        let first: Option<i64> = oldest.query_row([], |r| r.get(2)).optional()?;
        match first {
            Some(published_ms) if published_ms < oldest_allowed - slack_ms => {}
            _ => return Ok(0),
        }
    }
    let mut delete = tx.prepare_cached("DELETE FROM events WHERE seq = ?1")?;
    let mut deleted = 0;
    while t.retained > 0 {
        let Some((seq, b, published_ms)) = oldest
            .query_row([], |r| {
                Ok((
                    r.get::<_, u64>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?
        else {
            break;
        };
        let over = t.retained > l.retain_events
            || t.retained_bytes > l.retain_bytes
            || published_ms < oldest_allowed;
        if !over {
            break;
        }
        delete.execute([seq])?;
        t.retained -= 1;
        t.retained_bytes -= b;
        deleted += 1;
    }
    Ok(deleted)
}
