//! The queue's writer thread: group commit, back-pressure, the only owner of the write
//! connection.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tracegate_drivers::Verdict;

use super::checkpoint::Thresholds;
use super::commit::NewEvent;
use super::confirm::{Confirmation, Confirmed};
use super::pack::DictCache;
use super::store::{Row, ScanFilter, Stats, Store};
use super::tail::Tail;
use crate::config::Overflow;
use crate::context::ContextState;
use crate::event::epoch_ms;
use crate::ops::metrics::{Metrics, add_tally, tally};

/// The writer has stopped (shutdown, or its thread failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the queue writer has stopped")]
pub struct QueueClosed;

struct Append {
    event: NewEvent,
    reply: oneshot::Sender<Verdict>,
}

enum Control {
    /// Deliveries wait in [`Deliveries::inbox`]: the first since the writer last took them,
    /// or enough of them.
    Delivered,
    Confirm {
        confirmation: Confirmation,
        reply: oneshot::Sender<Result<Confirmed, String>>,
    },
    SetContext {
        state: ContextState,
        reply: oneshot::Sender<Result<(), String>>,
    },
    Replay {
        filter: ScanFilter,
        reply: oneshot::Sender<Result<u64, String>>,
    },
    Stats(oneshot::Sender<Result<Stats, String>>),
}

/// A handle to the queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    appends: mpsc::Sender<Append>,
    control: mpsc::Sender<Control>,
    /// Highest seq committed so far; the publisher waits on changes.
    committed: watch::Receiver<u64>,
    /// True while the queue is full (alarm).
    full: watch::Receiver<bool>,
    /// Counts replays.
    replays: watch::Receiver<u64>,
    /// True while commits fail (disk full, I/O error): sources are held back.
    failing: watch::Receiver<bool>,
    /// The newest committed rows, for a publisher that keeps up.
    tail: Arc<Mutex<Tail>>,
    /// A read-only connection for the publisher's fetches of older rows, so they do not wait
    /// behind the writer's commits.
    reader: Arc<Mutex<(rusqlite::Connection, DictCache)>>,
    /// Seqs delivered but not yet written as such; fetches skip them.
    deliveries: Arc<Mutex<Deliveries>>,
    /// No queued row has a lower seq ([`Store::queued_from`], kept by the writer): a fetch
    /// from further back (a publisher that starts over) begins here instead of walking the
    /// delivered rows kept for replay.
    queued_floor: Arc<AtomicU64>,
}

impl Queue {
    /// Queues an event for commit; `reply` hears the verdict once it is durable. Waits while the
    /// queue is full under `block`.
    pub async fn append(
        &self,
        event: NewEvent,
        reply: oneshot::Sender<Verdict>,
    ) -> Result<(), QueueClosed> {
        self.appends
            .send(Append { event, reply })
            .await
            .map_err(|_| QueueClosed)
    }

    /// Marks events delivered (the broker acknowledged them); the next commit records it.
    /// Only the first delivery since the writer last took them (and the one that makes
    /// [`DELIVERIES_AT_MOST`]) wakes the writer: the others wait in the inbox for the commit
    /// it has scheduled, instead of waking it once a batch of PUBACKs.
    pub async fn delivered(&self, seqs: Vec<u64>) -> Result<(), QueueClosed> {
        lock(&self.tail).delivered(&seqs);
        let wake = {
            // Skipped by fetches from now on, before the writer takes them.
            let d = &mut *lock(&self.deliveries);
            let before = d.inbox.len();
            d.inbox
                .extend(seqs.into_iter().filter(|s| d.seqs.insert(*s)));
            let after = d.inbox.len();
            (before == 0 && after > 0)
                || (before < DELIVERIES_AT_MOST && after >= DELIVERIES_AT_MOST)
        };
        if wake {
            self.control
                .send(Control::Delivered)
                .await
                .map_err(|_| QueueClosed)?;
        }
        Ok(())
    }

    /// Up to `limit` undelivered events with seq > `after`, in order, without those delivered
    /// but not yet written: fewer only when the queue has no more. From memory when they are
    /// the newest, else read through the reader connection.
    pub async fn fetch(&self, after: u64, limit: usize) -> Result<Vec<Row>, QueueClosed> {
        if let Some(rows) = lock(&self.tail).fetch(after, limit) {
            return Ok(rows);
        }
        let (reader, deliveries) = (self.reader.clone(), self.deliveries.clone());
        let after = after.max(self.queued_floor.load(Ordering::Acquire).saturating_sub(1));
        tokio::task::spawn_blocking(move || {
            let (conn, dicts) = &mut *lock(&reader);
            read_undelivered(conn, dicts, &deliveries, after, limit)
        })
        .await
        .map_err(|_| QueueClosed)?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read queued events");
            QueueClosed
        })
    }

    /// Where fetches from further back begin (tests).
    #[cfg(test)]
    pub(super) fn queued_floor(&self) -> u64 {
        self.queued_floor.load(Ordering::Acquire)
    }

    /// Queues retained events again (`tracegate queue replay`); the publisher sends them once
    /// more. Returns how many.
    pub async fn replay(&self, filter: ScanFilter) -> Result<u64, String> {
        let (reply, rx) = oneshot::channel();
        self.control
            .send(Control::Replay { filter, reply })
            .await
            .map_err(|_| QueueClosed.to_string())?;
        rx.await.map_err(|_| QueueClosed.to_string())?
    }

    /// Applies a consumer confirmation durably; answered once it is on disk.
    pub async fn confirm(&self, confirmation: Confirmation) -> Result<Confirmed, String> {
        let (reply, rx) = oneshot::channel();
        self.control
            .send(Control::Confirm {
                confirmation,
                reply,
            })
            .await
            .map_err(|_| QueueClosed.to_string())?;
        rx.await.map_err(|_| QueueClosed.to_string())?
    }

    /// Stores a new line context revision durably (answered once it is on disk).
    pub async fn set_context(&self, state: ContextState) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.control
            .send(Control::SetContext { state, reply })
            .await
            .map_err(|_| QueueClosed.to_string())?;
        rx.await.map_err(|_| QueueClosed.to_string())?
    }

    /// Watches the replay counter: it changes whenever delivered events were queued again,
    /// so the publisher starts again from the front.
    pub fn replays(&self) -> watch::Receiver<u64> {
        self.replays.clone()
    }

    /// The queue's current figures.
    pub async fn stats(&self) -> Result<Stats, QueueClosed> {
        let (reply, rx) = oneshot::channel();
        self.control
            .send(Control::Stats(reply))
            .await
            .map_err(|_| QueueClosed)?;
        rx.await.map_err(|_| QueueClosed)?.map_err(|_| QueueClosed)
    }

    /// Watches the highest committed seq.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Watches the "commits are failing" alarm.
    pub fn failing(&self) -> watch::Receiver<bool> {
        self.failing.clone()
    }

    /// Watches the "queue full" alarm.
    pub fn full(&self) -> watch::Receiver<bool> {
        self.full.clone()
    }
}

/// Locks the tail, the reader or the set of deliveries in writing. A panic while one was held
/// cannot leave it in a state worse than stopping would: each is valid between statements.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Delivered seqs not yet written as such.
#[derive(Default)]
struct Deliveries {
    /// Every one: fetches skip them. A seq leaves once the commit that marks it is durable.
    seqs: HashSet<u64>,
    /// Those the writer has not taken yet; it takes them with its next commit.
    inbox: Vec<u64>,
}

/// Reads undelivered rows after `after`, skipping those delivered but not yet written. The
/// set is copied before the read starts: a seq the writer writes as delivered and then takes
/// out of the set during the read is either still in the copy or already marked in what the
/// read sees.
fn read_undelivered(
    conn: &rusqlite::Connection,
    dicts: &mut DictCache,
    deliveries: &Mutex<Deliveries>,
    mut after: u64,
    limit: usize,
) -> Result<Vec<Row>, super::StoreError> {
    let skip = lock(deliveries).seqs.clone();
    let mut out = Vec::with_capacity(limit);
    loop {
        let rows = super::store::fetch(conn, dicts, after, limit)?;
        let end = rows.len() < limit;
        after = rows.last().map_or(after, |r| r.seq);
        out.extend(rows.into_iter().filter(|r| !skip.contains(&r.seq)));
        if end || out.len() >= limit {
            out.truncate(limit);
            return Ok(out);
        }
    }
}

/// How long the writer waits before retrying a commit that failed.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Deliveries ride with the next commit of appends; without one they are written after this
/// long...
pub(super) const DELIVERIES_AFTER: Duration = Duration::from_secs(1);
/// ...or once this many wait.
pub(super) const DELIVERIES_AT_MOST: usize = 4096;

/// Starts the writer thread for an open store. The thread ends when every [`Queue`] handle is
/// dropped, after committing what it holds.
pub fn spawn(
    mut store: Store,
    window: Duration,
    batch: usize,
    metrics: Arc<Metrics>,
    republish_after: Option<Duration>,
) -> (Queue, std::thread::JoinHandle<()>) {
    let (append_tx, append_rx) = mpsc::channel(batch.max(1));
    let (control_tx, control_rx) = mpsc::channel(1024);
    let next = store.stats().map(|s| s.next_seq).unwrap_or(1);
    let (committed_tx, committed_rx) = watch::channel(next - 1);
    let (full_tx, full_rx) = watch::channel(store.is_full());
    let (replays_tx, replays_rx) = watch::channel(0);
    let (failing_tx, failing_rx) = watch::channel(false);
    let tail = Arc::new(Mutex::new(Tail::default()));
    let deliveries = Arc::new(Mutex::new(Deliveries::default()));
    let queued_floor = Arc::new(AtomicU64::new(store.queued_from()));
    let reader = Arc::new(Mutex::new((
        store.reader().expect("a reader of the queue just opened"),
        DictCache::default(),
    )));
    // Without its thread, SQLite's automatic checkpoints (inside the commits) stay on.
    let at = Thresholds::for_page_size(store.page_size());
    let checkpointer = super::checkpoint::start(&mut store, at)
        .inspect_err(|e| tracing::warn!(error = %e, "queue: checkpoints stay in the commits"))
        .ok();
    let writer = Writer {
        tail: tail.clone(),
        metrics,
        republish_after,
        failing: failing_tx,
        store,
        window,
        batch: batch.max(1),
        appends: append_rx,
        control: control_rx,
        committed: committed_tx,
        full: full_tx,
        replays: replays_tx,
        pending: Vec::new(),
        deletes: Vec::new(),
        deliveries: deliveries.clone(),
        queued_floor: queued_floor.clone(),
        deletes_since: None,
        stalled: false,
    };
    let handle = std::thread::Builder::new()
        .name("queue-writer".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("queue writer runtime");
            rt.block_on(writer.run());
            // The store is closed: the checkpointer has no more signals to wait for.
            if let Some(c) = checkpointer {
                let _ = c.join();
            }
        })
        .expect("spawn queue writer thread");
    let queue = Queue {
        appends: append_tx,
        control: control_tx,
        committed: committed_rx,
        full: full_rx,
        replays: replays_rx,
        failing: failing_rx,
        tail,
        reader,
        deliveries,
        queued_floor,
    };
    (queue, handle)
}

struct Writer {
    metrics: Arc<Metrics>,
    /// Filled after every commit; emptied when rows leave or re-enter the queue otherwise.
    tail: Arc<Mutex<Tail>>,
    /// [confirm] mode: published events unconfirmed this long are queued again.
    republish_after: Option<Duration>,
    /// True while commits fail (disk full, I/O error).
    failing: watch::Sender<bool>,
    store: Store,
    window: Duration,
    batch: usize,
    appends: mpsc::Receiver<Append>,
    control: mpsc::Receiver<Control>,
    committed: watch::Sender<u64>,
    full: watch::Sender<bool>,
    replays: watch::Sender<u64>,
    /// Appends waiting for the next commit (at most `batch`).
    pending: Vec<Append>,
    /// Delivered seqs taken from the inbox for the commit being made, or kept for the retry
    /// of one that failed.
    deletes: Vec<u64>,
    deliveries: Arc<Mutex<Deliveries>>,
    /// The store's `queued_from`, for the readers ([`Queue::fetch`]).
    queued_floor: Arc<AtomicU64>,
    /// Since when deliveries wait (in `deletes` or the inbox).
    deletes_since: Option<Instant>,
    /// The last commit left appends pending for lack of room; wait for deletes.
    stalled: bool,
}

impl Writer {
    async fn run(mut self) {
        let mut deadline: Option<Instant> = None;
        let mut appends_open = true;
        let mut control_open = true;
        // [confirm] mode: how often unconfirmed events are looked at (only while some wait).
        let check_every = self
            .republish_after
            .map(|d| (d / 4).clamp(Duration::from_secs(1), Duration::from_secs(30)));
        let mut next_check = Instant::now() + check_every.unwrap_or(Duration::from_secs(3600));
        while appends_open || control_open {
            let check = check_every.is_some() && self.store.awaiting() > 0;
            let take_appends = appends_open && !self.blocked() && self.pending.len() < self.batch;
            let due = deadline.filter(|_| self.has_work());
            let deliveries_at = self
                .deletes_since
                .filter(|_| self.pending.is_empty())
                .map(|t| t + DELIVERIES_AFTER);
            tokio::select! {
                biased;
                msg = self.control.recv(), if control_open => match msg {
                    Some(c) => self.handle(c),
                    None => control_open = false,
                },
                msg = self.appends.recv(), if take_appends => match msg {
                    Some(a) => self.pending.push(a),
                    None => appends_open = false,
                },
                _ = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    deadline = None;
                    self.commit();
                }
                _ = sleep_until(deliveries_at.unwrap_or_else(Instant::now)), if deliveries_at.is_some() => {
                    self.commit();
                }
                _ = sleep_until(next_check), if check => {
                    next_check = Instant::now() + check_every.unwrap_or_default();
                    self.republish_unconfirmed();
                }
                // Only a blocked writer with no open control channel gets here: nothing can
                // free room any more.
                else => break,
            }
            if self.pending.len() >= self.batch && self.has_work() && !*self.failing.borrow() {
                deadline = None;
                self.commit();
            } else if deadline.is_none() && self.has_work() {
                let wait = if *self.failing.borrow() {
                    RETRY_AFTER_FAILURE
                } else {
                    self.window
                };
                deadline = Some(Instant::now() + wait);
            }
            self.publish_floor();
        }
        // Shutting down: commit what fits, tell the rest they were not committed.
        self.commit();
        for a in self.pending.drain(..) {
            let _ = a.reply.send(Verdict::NotCommitted {
                reason: "the agent is shutting down".into(),
            });
        }
        if let Err(e) = self.store.checkpoint_for_stop() {
            tracing::warn!(error = %e, "queue: no checkpoint at the stop (the WAL is kept and read at the next start)");
        }
    }

    /// True when a commit is due: appends are waiting and the queue has room (a full queue
    /// under `block` waits for deliveries instead of retrying), or deliveries are due.
    fn has_work(&self) -> bool {
        let failing = *self.failing.borrow();
        let full =
            self.stalled || (self.store.overflow() == Overflow::Block && self.store.is_full());
        self.deliveries_due() || (!self.pending.is_empty() && (failing || !full))
    }

    /// Deliveries must be written now, not only with the next appends: enough wait, the oldest
    /// waited long enough, or the room they free is needed.
    fn deliveries_due(&self) -> bool {
        let waiting = self.deletes.len() + lock(&self.deliveries).inbox.len();
        waiting > 0
            && (waiting >= DELIVERIES_AT_MOST
                || self.stalled
                || self.store.is_full()
                || self
                    .deletes_since
                    .is_some_and(|t| t.elapsed() >= DELIVERIES_AFTER))
    }

    /// Full under `block`, the last commit could not fit the next pending event, or commits
    /// are failing.
    fn blocked(&self) -> bool {
        self.stalled
            || *self.failing.borrow()
            || (self.store.overflow() == Overflow::Block && self.store.is_full())
    }

    /// Tells the readers where queued rows begin. Called after every step of the writer; the
    /// floor only rises between replays, and a reader that still has a lower one just reads
    /// from further back.
    fn publish_floor(&self) {
        self.queued_floor
            .store(self.store.queued_from(), Ordering::Release);
    }

    fn handle(&mut self, c: Control) {
        match c {
            Control::Confirm {
                confirmation,
                reply,
            } => {
                // Deliveries first: a confirmation may name events whose PUBACK is pending here.
                self.commit();
                let done = self
                    .store
                    .confirm(&confirmation, epoch_ms(std::time::SystemTime::now()));
                if let Ok(d) = &done {
                    lock(&self.tail).delivered(&d.unpublished);
                    self.metrics.confirmed.inc_by(d.count);
                    for lag in &d.lags_ms {
                        self.metrics.confirmation_lag.observe(*lag as f64 / 1000.0);
                    }
                }
                let _ = reply.send(done.map_err(|e| e.to_string()));
                self.update_full();
            }
            Control::SetContext { state, reply } => {
                let _ = reply.send(self.store.save_context(&state).map_err(|e| e.to_string()));
            }
            Control::Replay { filter, reply } => {
                self.commit();
                // Replayed rows are queued below the floor: readers start from the front
                // before they can see them, and from the new floor once it is known.
                self.queued_floor.store(0, Ordering::Release);
                let n = self.store.replay(&filter).map_err(|e| e.to_string());
                self.publish_floor();
                lock(&self.tail).forget();
                if let Ok(n) = n {
                    tracing::info!(events = n, "delivered events queued again for replay");
                    self.replays.send_modify(|r| *r += 1);
                }
                let _ = reply.send(n);
                self.update_full();
            }
            Control::Delivered => {
                // The seqs stay in the inbox until the commit takes them.
                self.stalled = false;
                self.deletes_since.get_or_insert_with(Instant::now);
            }
            Control::Stats(reply) => {
                let stats = self.store.stats().map_err(|e| e.to_string());
                // They looked for the oldest queued row.
                self.publish_floor();
                let _ = reply.send(stats);
            }
        }
    }

    /// One transaction for everything pending, deliveries included. Appends that did not fit
    /// (block) stay pending.
    fn commit(&mut self) {
        // Each seq once (the inbox only takes seqs new to the set).
        self.deletes.append(&mut lock(&self.deliveries).inbox);
        if self.pending.is_empty() && self.deletes.is_empty() {
            // A wake for deliveries an earlier commit took.
            self.deletes_since = None;
            return;
        }
        let mut events: Vec<NewEvent> = Vec::new();
        let mut replies = Vec::new();
        for a in self.pending.drain(..) {
            events.push(a.event);
            replies.push(a.reply);
        }
        let first_seq = self.store.totals.next_seq;
        let result = self.store.commit(
            &mut events,
            &self.deletes,
            epoch_ms(std::time::SystemTime::now()),
        );
        match result {
            Ok(mut done) => {
                {
                    let mut tail = lock(&self.tail);
                    if done.dropped > 0 {
                        // Rows of this very commit may be among those dropped: the database
                        // answers until a commit that drops nothing.
                        tail.forget();
                    } else {
                        tail.committed(first_seq, std::mem::take(&mut done.rows));
                    }
                }
                {
                    // Only what this commit wrote: others may have been added meanwhile.
                    let mut deliveries = lock(&self.deliveries);
                    for s in self.deletes.drain(..) {
                        deliveries.seqs.remove(&s);
                    }
                }
                self.deletes_since = None;
                if done.dropped > 0 {
                    self.metrics.dropped.inc_by(done.dropped);
                    tracing::warn!(
                        dropped = done.dropped,
                        "queue full: deleted the oldest undelivered events (overflow = drop_oldest)"
                    );
                }
                let n = done.accepted.len();
                self.stalled = n < events.len();
                // The commit's time and its count per source, once: per event they were a
                // clock read and a labelled lookup.
                let now = std::time::SystemTime::now();
                let mut per_source: Vec<(Arc<str>, u64)> = Vec::new();
                for (i, (event, reply)) in events.into_iter().zip(replies).enumerate() {
                    match done.accepted.get(i) {
                        Some(a) => {
                            if !a.repeated {
                                tally(&mut per_source, &event.source);
                                let latency =
                                    now.duration_since(event.captured).unwrap_or_default();
                                self.metrics.scan_to_commit.observe(latency.as_secs_f64());
                            }
                            if a.repeated {
                                tracing::info!(source = %event.source, seq = a.seq, "handover already committed before a restart; acknowledging it again");
                            }
                            let _ = reply.send(Verdict::Committed {
                                seq: a.seq,
                                valid: a.valid,
                            });
                        }
                        None => self.pending.push(Append { event, reply }),
                    }
                }
                add_tally(&self.metrics.committed, per_source);
                if let Some(last) = done.last_seq {
                    self.committed.send_replace(last);
                }
            }
            Err(e) => {
                // Nothing was written. Keep the readings and retry: sources are held back (not
                // acknowledged) until the disk takes writes again, and nothing is lost.
                self.metrics.commit_failures.inc();
                if self.deletes_since.is_some() {
                    // Deliveries alone are retried after the same pause, not at once.
                    self.deletes_since = Some(Instant::now());
                }
                if !*self.failing.borrow() {
                    tracing::error!(error = %e, pending = events.len(), "queue commit failed; holding the readings back and retrying every {RETRY_AFTER_FAILURE:?}");
                    self.failing.send_replace(true);
                }
                for (event, reply) in events.into_iter().zip(replies) {
                    self.pending.push(Append { event, reply });
                }
                return;
            }
        }
        if *self.failing.borrow() {
            tracing::info!("queue commits succeed again");
            self.failing.send_replace(false);
        }
        self.update_full();
    }

    /// Queues again the events published `republish_after` ago and still not confirmed.
    fn republish_unconfirmed(&mut self) {
        let Some(after) = self.republish_after else {
            return;
        };
        let before = epoch_ms(std::time::SystemTime::now()) - after.as_millis() as i64;
        match self.store.republish_unconfirmed(before) {
            Ok(0) => {}
            Ok(n) => {
                lock(&self.tail).forget();
                tracing::warn!(events = n, after = ?after, "events not confirmed by the consumer in time; publishing them again");
                self.metrics.republished_unconfirmed.inc_by(n);
                self.replays.send_modify(|r| *r += 1);
            }
            Err(e) => tracing::error!(error = %e, "cannot queue unconfirmed events again"),
        }
    }

    fn update_full(&mut self) {
        let full = self.store.is_full();
        if full != *self.full.borrow() {
            if full {
                tracing::warn!(policy = ?self.store.overflow(), "queue is full");
            } else {
                tracing::info!("queue has room again");
            }
            self.full.send_replace(full);
        }
    }
}
