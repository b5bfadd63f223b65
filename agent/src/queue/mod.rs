//! The durable queue: every event is committed here before its device hears "accepted", and
//! leaves only when the broker has acknowledged it.
//!
//! # On disk
//!
//! One SQLite database (rusqlite, bundled), `journal_mode=WAL`, `synchronous=FULL`, pages of
//! 1 KiB for a new queue ([`store`]`::PAGE_SIZE`: less written per commit; a queue made by an
//! earlier version keeps its 2 or 4 KiB):
//!
//! - `events(seq INTEGER PRIMARY KEY, id, route, captured_ms, bytes, payload, state,
//!   published_after_ms, first_published_ms, dict)` — one row per event not yet delivered (`state` 0), plus the delivered ones
//!   kept for `queue replay` (`state` 1, bounded by `retain_events`/`retain_bytes`/`retain_age`).
//!   `payload` is the exact JSON that is published, seq included, so every (re)publication of
//!   an event is byte-identical; it is stored LZ4-packed against the dictionary `dict`
//!   ([`pack`]; a line's 700-byte events take ~100 bytes each in the file, row and pages
//!   included), `bytes` is its unpacked length. Outside [confirm]
//!   mode the states have no index, since each would cost every commit a page (its appends
//!   and the delivered marks of the commit before): the delivered rows are the oldest, at the
//!   start of the table where pruning finds them; the queued ones follow, and both the oldest of
//!   them and a publisher's fetch from the front are looked for from a seq below which there
//!   are none (`Store::queued_from`, shared with the readers). [confirm] mode, whose states interleave, has partial
//!   indexes on `seq` per state. The delivered mark writes the delivery's time as the ms
//!   after the capture into `published_after_ms`, where a queued row carries a placeholder as
//!   wide as a delay of 24 days: outside [confirm] the mark rewrites the row at its size or
//!   smaller (`first_published_ms`, the confirm lag's start, stays NULL), where a row that
//!   grew would split its page (appends fill the pages). `id` is the UUID's last 10 bytes
//!   when its time is `captured_ms`, as for every event the agent makes, else its 16
//!   ([`ids`]), and `route` names the row's source and topic in `routes`: the fewer bytes a
//!   row has, the fewer commits take a new page, and the fewer pages pruning frees.
//! - `routes(id, source, topic)` — each source and topic pair the events are published on,
//!   once.
//! - `dicts(id, topic, bytes, until_seq, hinted)` — per topic, an earlier payload its
//!   payloads are packed against, followed (`hinted`) by the row's own id, seq and capture
//!   time, which the row stores anyway and the payload spells out; a retired one
//!   (`until_seq` set) is deleted once no row uses it.
//! - `meta(key, value)` — `next_seq` (the seq the next event gets; written by every commit
//!   that deletes rows, so it survives deleting the highest ones; a commit that only appends
//!   leaves it alone, the highest row tells it then) and `dropped_total` (events deleted undelivered by `drop_oldest`).
//! - `handovers(source, key, seq, valid)` — per source, the last committed handover id (a PLC
//!   sequence counter value): when a device presents the same handover again because the agent
//!   stopped between commit and acknowledgement, the commit is repeated, not duplicated.
//! - `context(id = 1, revision, state)` — the line context MES pushed down, as JSON
//!   ([`crate::context`]); stored before a context command is answered.
//! - `PRAGMA user_version` — the schema version ([`store`]); 3 since ids are stored as bytes
//!   and sources and topics once, 4 since payloads are packed with hints, 5 since ids are
//!   stored without their time and the delivery's time as a delay. A queue of an
//!   earlier version is migrated at open, in one transaction ([`migrate`]); its payloads stay
//!   as they were and are published as they are.
//!
//! # Invariants
//!
//! - **Committed** means: the transaction that inserted the row returned, and with
//!   synchronous=FULL its WAL frames were fsync'd. Only then does the writer answer the driver
//!   ([`tracegate_drivers::Verdict::Committed`]). A crash before that loses nothing the device
//!   believes delivered: it was never acknowledged.
//! - **Seq** is assigned inside the committing transaction, from the greater of `meta.next_seq`
//!   and the highest row's seq + 1, so seqs are gap-free over the agent's life: an event that was not committed did not take a number.
//! - **Leaving the queue** (state 0 → 1, or deletion when retention is off) happens only for
//!   seqs the publisher reports acknowledged by the broker (PUBACK/PUBCOMP). Undelivered rows
//!   are deleted only by `drop_oldest` when the queue is full (counted, alarmed). Delivered rows
//!   are pruned oldest first, in steps (once a retention limit is exceeded by 1/1024 of it), in
//!   commits that happen anyway (an idle agent writes nothing).
//! - **Deliveries are written lazily**: a PUBACK'd seq is kept in memory (and never fetched
//!   again) and written with the next commit of appends, where its row is usually on a page
//!   that commit rewrites anyway; without appends, after [`writer::DELIVERIES_AFTER`], once
//!   [`writer::DELIVERIES_AT_MOST`] wait, or at once when the queue is full. They wait in an
//!   inbox the writer takes with its next commit; only the first since it last took them (and
//!   the one that makes the most) wakes the writer. A crash loses at most those marks: the
//!   events are published again with the same id, seq and bytes, which at-least-once allows
//!   and consumers deduplicate on.
//! - **After a crash** SQLite's WAL recovery keeps exactly the committed transactions; the
//!   publisher starts again from the lowest seq, so unacknowledged events are published again
//!   with the same id, seq and bytes.
//! - **Group commit**: appends and deletes that arrive within `commit_window` (or until
//!   `commit_batch` appends) share one transaction and one fsync. Nothing is written while
//!   nothing happens.
//! - **Checkpoints** (copying the WAL back into the database file so the WAL can start over)
//!   run on a thread of their own with its own connection ([`checkpoint`]), not inside the
//!   commit that takes the WAL past 4 MiB: that commit, and the scans waiting behind
//!   it, would wait for the copy and a second fsync. A checkpoint never removes a committed
//!   transaction: what it has not copied stays in the WAL.
//! - **Full**: under `block` the writer stops taking appends (drivers' `submit` waits, devices
//!   are not acknowledged) until deletes make room; under `drop_oldest` the oldest rows go.
//!
//! The writer runs on its own thread ([`writer`]); everything else talks to it through a
//! [`Queue`] handle. The newest committed rows are also kept in memory ([`tail`]): a publisher
//! that keeps up takes them from there, and reads a backlog through a second, read-only
//! connection, so that its reads never wait behind the writer's commits (WAL lets a reader go
//! on while a transaction commits).

mod checkpoint;
mod commit;
pub mod confirm;
mod ids;
mod migrate;
mod pack;
pub mod recover;
mod routes;
pub mod store;
mod tail;
mod writer;

pub use commit::{Accepted, Committed, NewEvent};
pub use confirm::{Confirmation, Confirmed};
pub use pack::UnpackError;
pub use store::{Limits, Row, ScanFilter, ScannedRow, Stats, Store, StoreError};
pub use writer::{Queue, QueueClosed, spawn};

#[cfg(test)]
mod migrate_tests;
#[cfg(test)]
mod pack_tests;
#[cfg(test)]
mod tests;
