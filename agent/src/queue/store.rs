//! The SQLite side of the queue: opening, figures and reads. The committing transaction is in
//! [`super::commit`]. Owned by the writer thread; the CLI opens its own for reads.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::ids;
use super::pack::{self, DictCache, UnpackError};
use super::routes::Routes;
use crate::config::Overflow;
use crate::context::ContextState;

/// Schema version in `PRAGMA user_version`. 2: payloads packed ([`super::pack`]). 3: an
/// event's id stored as its 16 bytes and its source and topic as a number ([`super::migrate`]).
/// 4: payloads packed with the row's id, seq and capture time in their history
/// (`dicts.hinted`). 5: an id stored without the time it shares with `captured_ms`
/// ([`super::ids`]), and the time of the delivery as the ms after the capture
/// (`published_after_ms`).
pub(super) const SCHEMA_VERSION: i64 = 5;

/// The page size of a new queue database, in bytes. Every page a commit changes is written
/// whole to the WAL (and again by the checkpoint), and a commit at ordinary rates changes a
/// few pages for a few events: the table's newest leaf, the leaf of the previous commit's
/// rows it marks delivered, and, each time a leaf fills, a new one with its parent, the
/// freelist and the header. Rows packed with hints are ~80 bytes, so a 1 KiB leaf still
/// holds about ten, and each of those pages costs half what it does at 2 KiB: at 1,000
/// events/s, 1,718-1,731 → 1,510-1,531 bytes written per event, the same latency
/// (docs/performance.md, 2026-12-06). A payload that does not pack and is longer than ~990
/// bytes goes on an overflow page, which costs a page more but nothing else. An existing
/// queue keeps the page size it was made with.
pub(super) const PAGE_SIZE: i64 = 1024;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq          INTEGER PRIMARY KEY, -- gap-free per agent, assigned at commit
    id           BLOB    NOT NULL,    -- the UUIDv7, the consumers' idempotency key: its last
                                      -- 10 bytes when its time is captured_ms, else its 16
                                      -- (ids.rs)
    route        INTEGER NOT NULL,    -- routes(id): the source and the topic
    captured_ms  INTEGER NOT NULL,    -- capture time, ms since the epoch
    bytes        INTEGER NOT NULL,    -- the payload's length (unpacked), for the byte limits
    payload      BLOB    NOT NULL,    -- the exact JSON published, on every attempt; packed
                                      -- against dicts(dict) unless dict is NULL
    state        INTEGER NOT NULL DEFAULT 0, -- 0 queued, 1 published (broker acknowledged),
                                      -- 2 confirmed (by the consumer, [confirm] mode)
    published_after_ms INTEGER,       -- when the broker last acknowledged it (state > 0), in
                                      -- ms after captured_ms; while queued, PUBLISHED_PLACEHOLDER:
                                      -- as wide as the delays of up to 24 days, so that the
                                      -- mark does not grow the row
    first_published_ms INTEGER,       -- when the broker first acknowledged it (confirm lag;
                                      -- [confirm] mode only)
    dict         INTEGER              -- the dictionary the payload is packed against
);
CREATE TABLE IF NOT EXISTS routes (
    id     INTEGER PRIMARY KEY,       -- what events.route names
    source TEXT    NOT NULL,          -- the source's id
    topic  TEXT    NOT NULL,          -- where its events are published
    UNIQUE (source, topic)
);
CREATE INDEX IF NOT EXISTS events_confirmed ON events (seq) WHERE state = 2;
CREATE TABLE IF NOT EXISTS dicts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: readers cache by id
    topic     TEXT    NOT NULL,       -- the topic whose payloads it packs
    bytes     BLOB    NOT NULL,       -- an earlier payload of that topic
    until_seq INTEGER,                -- retired: no row from this seq on uses it (NULL: in use)
    hinted    INTEGER NOT NULL DEFAULT 0 -- 1: its payloads were packed with the row's id,
                                      -- seq and capture time after it in the history
                                      -- (pack.rs, Hint)
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS context (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    revision     INTEGER NOT NULL,    -- the line context's revision
    state        TEXT    NOT NULL     -- the whole context state, JSON
);
CREATE TABLE IF NOT EXISTS handovers (
    source TEXT PRIMARY KEY,          -- the source's id
    key    TEXT    NOT NULL,          -- the last committed handover id (e.g. a PLC counter)
    seq    INTEGER NOT NULL,          -- the seq it was committed as
    valid  INTEGER NOT NULL           -- whether that event was valid
);
";

/// `published_after_ms` of a queued row: 2^31 - 1, which SQLite stores in 4 bytes, as it does
/// every delay of delivery up to 24.8 days. The delivered mark then rewrites the row at its
/// size or smaller, never larger: a row that grew would split its page once the page had no
/// room, and appends fill the pages. A delay of a second or less takes 2 bytes.
pub(super) const PUBLISHED_PLACEHOLDER: i64 = i32::MAX as i64;

/// Row states.
pub const QUEUED: i64 = 0;
pub const PUBLISHED: i64 = 1;
pub const CONFIRMED: i64 = 2;

/// Errors of the queue's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("queue database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("no queue database at {0}")]
    Missing(String),
    #[error(
        "queue database {path} has schema version {found}; this tracegate knows {SCHEMA_VERSION}"
    )]
    Version { path: String, found: i64 },
    #[error("queue write failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot serialize event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("queued event seq {seq}: its stored payload cannot be unpacked: {source}")]
    Unpack { seq: u64, source: UnpackError },
}

/// Size limits of the queue and of the retention of delivered events.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most undelivered events.
    pub max_events: u64,
    /// Most undelivered payload bytes.
    pub max_bytes: u64,
    pub overflow: Overflow,
    /// Delivered events kept for `queue replay`/`export`; 0 turns retention off (delivered
    /// rows are deleted at once).
    pub retain_events: u64,
    pub retain_bytes: u64,
    pub retain_age: Duration,
    /// Consumer confirmation ([confirm]): published events wait for it (and count against
    /// `max_events`/`max_bytes`); confirmed ones are the retained.
    pub confirm: bool,
}

impl Limits {
    /// The state of the rows kept for replay.
    pub fn retained_state(&self) -> i64 {
        if self.confirm { CONFIRMED } else { PUBLISHED }
    }
}

/// A committed event as the publisher sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub seq: u64,
    /// The event's UUID (also inside the payload).
    pub id: Arc<str>,
    /// Shared with the committed event's when the row comes from a commit.
    pub source: Arc<str>,
    pub topic: Arc<str>,
    /// Shared by the copies of the row (the tail's, the publisher's, the MQTT client's).
    pub payload: Bytes,
}

/// Figures for `queue stats`, metrics and the alarms.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Undelivered events.
    pub depth: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Lowest undelivered seq.
    pub oldest_seq: Option<u64>,
    /// Capture time of the oldest undelivered event, ms since the epoch.
    pub oldest_captured_ms: Option<i64>,
    /// The seq the next event gets.
    pub next_seq: u64,
    /// Events deleted undelivered by `drop_oldest`, ever.
    pub dropped_total: u64,
    /// Delivered events kept for replay, and their bytes.
    pub retained: u64,
    pub retained_bytes: u64,
    /// Published events waiting for the consumer's confirmation ([confirm] mode), their
    /// bytes, and when the oldest unconfirmed event was first published (ms since the epoch;
    /// events being published again still count).
    pub awaiting: u64,
    pub awaiting_bytes: u64,
    pub oldest_awaiting_published_ms: Option<i64>,
    pub max_events: u64,
    pub max_bytes: u64,
}

/// Running totals, kept in memory and recomputed at open.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals {
    pub depth: u64,
    pub bytes: u64,
    pub awaiting: u64,
    pub awaiting_bytes: u64,
    pub retained: u64,
    pub retained_bytes: u64,
    pub next_seq: u64,
    pub dropped_total: u64,
}

/// The open queue database.
pub struct Store {
    pub(super) conn: Connection,
    pub(super) limits: Limits,
    pub(super) totals: Totals,
    /// The `handovers` table, in memory: source → (key, seq, valid).
    pub(super) handovers: HashMap<String, (String, u64, bool)>,
    /// Topic → the dictionary its payloads are packed against ([`super::pack`]).
    pub(super) packer: HashMap<String, pack::Current>,
    /// Retired dictionaries not yet deleted.
    pub(super) retired_dicts: u64,
    /// The `routes` table: the number a row stores for its source and topic.
    pub(super) routes: Routes,
    /// Dictionaries for the reads through this connection.
    read_dicts: RefCell<DictCache>,
    /// No queued row has a lower seq (outside [confirm] mode; see [`Store::queued_from`]).
    /// Found at open, moved up as the oldest queued rows are found or dropped; a replay
    /// finds it again.
    pub(super) queued_from: Cell<u64>,
}

impl Store {
    /// Opens (or creates) the queue at `path`. Committed events from before a crash are all
    /// there: SQLite's WAL recovery replays what was committed and discards what was not.
    pub fn open(path: &Path, limits: Limits) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        Self::open_with(path, limits, OpenFlags::default())
    }

    /// Opens an existing queue for inspection (the CLI); never creates one.
    pub fn open_existing(path: &Path, limits: Limits) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.display().to_string()));
        }
        Self::open_with(
            path,
            limits,
            OpenFlags::default() - OpenFlags::SQLITE_OPEN_CREATE,
        )
    }

    fn open_with(path: &Path, limits: Limits, flags: OpenFlags) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: p.clone(),
            source,
        };
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // Takes effect only while the file is still empty, that is for a new queue; an
        // existing one keeps the page size it was created with.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(open_err)?;
        // A 256 KiB page cache (SQLite's default is 2 MiB): a commit works on the newest pages
        // and the path down to them, a drain's marks and the pruning on the oldest; both are
        // a few pages of a tree four levels deep at a million rows, and the rest comes from
        // the OS's cache. From 2 MiB to 1 MiB and then to 256 KiB: −1.1 and −0.8 MiB of the
        // agent's own memory while draining, the same drain, fill, latency and bytes written
        // (docs/performance.md).
        conn.pragma_update(None, "cache_size", -256)
            .map_err(open_err)?;
        // WAL + FULL: a commit returns only after the WAL is fsync'd.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_err)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Version {
                path: p,
                found: version,
            });
        }
        if version < SCHEMA_VERSION {
            super::migrate::migrate(&conn, version).map_err(open_err)?;
        }
        let mut store = Store {
            conn,
            limits,
            totals: Totals::default(),
            handovers: HashMap::new(),
            packer: HashMap::new(),
            retired_dicts: 0,
            routes: Routes::default(),
            read_dicts: RefCell::new(DictCache::default()),
            queued_from: Cell::new(0),
        };
        store.load_totals().map_err(open_err)?;
        Ok(store)
    }

    pub(super) fn load_totals(&mut self) -> rusqlite::Result<()> {
        let count = |state: i64| -> rusqlite::Result<(u64, u64, Option<u64>)> {
            self.conn.query_row(
                "SELECT count(*), coalesce(sum(bytes), 0), min(seq) FROM events WHERE state = ?1",
                [state],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
        };
        if self.limits.confirm {
            // Confirmations by id, the oldest unconfirmed publication and the oldest event
            // waiting for confirmation (dropped first when full) stay cheap at any size.
            self.conn.execute_batch(
                "CREATE INDEX IF NOT EXISTS events_id ON events (id);
                 CREATE INDEX IF NOT EXISTS events_unconfirmed ON events (first_published_ms)
                     WHERE state < 2 AND first_published_ms IS NOT NULL;
                 CREATE INDEX IF NOT EXISTS events_published ON events (seq) WHERE state = 1;
                 CREATE INDEX IF NOT EXISTS events_queued ON events (seq) WHERE state = 0;",
            )?;
        } else {
            // Left from a time with [confirm] on: without it they are simply delivered. And
            // without it the states need no index: the delivered are the oldest rows, at the
            // start of the table where pruning finds them, and the queued ones follow them
            // (the oldest is looked for from `queued_from` on). An index of either costs
            // every commit a page: its appends and the delivered marks of the commit before.
            self.conn.execute_batch(
                "UPDATE events SET state = 1 WHERE state = 2;
                 DROP INDEX IF EXISTS events_published;
                 DROP INDEX IF EXISTS events_queued;",
            )?;
        }
        let (depth, bytes, oldest_queued) = count(QUEUED)?;
        let (awaiting, awaiting_bytes, _) = if self.limits.confirm {
            count(PUBLISHED)?
        } else {
            (0, 0, None)
        };
        let (retained, retained_bytes, _) = count(self.limits.retained_state())?;
        let max_seq: Option<u64> = self
            .conn
            .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
        let meta = |key: &str| -> rusqlite::Result<u64> {
            Ok(self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        };
        let next_meta = meta("next_seq")?;
        self.totals = Totals {
            depth,
            bytes,
            awaiting,
            awaiting_bytes,
            retained,
            retained_bytes,
            next_seq: next_meta.max(max_seq.map_or(1, |m| m + 1)).max(1),
            dropped_total: meta("dropped_total")?,
        };
        self.queued_from
            .set(oldest_queued.unwrap_or(self.totals.next_seq));
        let mut stmt = self
            .conn
            .prepare("SELECT source, key, seq, valid FROM handovers")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?;
        self.handovers = rows.collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT id, topic, bytes, hinted FROM dicts WHERE until_seq IS NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let bytes: Vec<u8> = r.get(2)?;
            Ok((
                r.get::<_, String>(1)?,
                pack::Current {
                    id: r.get(0)?,
                    bytes: bytes.into(),
                    used: 0,
                    hinted: r.get(3)?,
                },
            ))
        })?;
        self.packer = rows.collect::<Result<_, _>>()?;
        self.routes = Routes::load(&self.conn)?;
        self.retired_dicts = self.conn.query_row(
            "SELECT count(*) FROM dicts WHERE until_seq IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(())
    }

    /// True when the queue is at a limit.
    pub fn is_full(&self) -> bool {
        let t = &self.totals;
        t.depth + t.awaiting >= self.limits.max_events
            || t.bytes + t.awaiting_bytes >= self.limits.max_bytes
    }

    /// Published events still waiting for the consumer's confirmation.
    pub fn awaiting(&self) -> u64 {
        self.totals.awaiting
    }

    /// The overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.limits.overflow
    }

    /// Up to `limit` undelivered events with seq > `after`, in seq order.
    pub fn fetch(&self, after: u64, limit: usize) -> Result<Vec<Row>, StoreError> {
        fetch(&self.conn, &mut self.read_dicts.borrow_mut(), after, limit)
    }

    /// A second, read-only connection to the same file, for reads that must not wait behind
    /// the writer's commits (WAL lets readers go on while a transaction commits).
    pub(super) fn reader(&self) -> Result<Connection, StoreError> {
        // It reads forward through the backlog once: a small page cache is enough (the
        // writer's is as small).
        self.another_connection(OpenFlags::SQLITE_OPEN_READ_ONLY, 256)
    }

    /// Another connection to the same file, for use on another thread (`flags` plus
    /// `NO_MUTEX`), with the writer's busy timeout and a page cache of `cache_kib`.
    pub(super) fn another_connection(
        &self,
        flags: OpenFlags,
        cache_kib: i64,
    ) -> Result<Connection, StoreError> {
        let path = self.conn.path().unwrap_or_default().to_owned();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(&path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "cache_size", -cache_kib)
            .map_err(open_err)?;
        Ok(conn)
    }

    /// At a clean stop: copies the WAL back into the database file and empties it, so the
    /// file alone holds every event (a copy of it after the stop is complete). SQLite's last
    /// connection to close would do the same, unless that one is the publisher's read-only
    /// reader, and a small queue may never have reached a checkpoint while it ran. A WAL left
    /// behind (a reader still in a transaction) loses nothing: the next open reads it.
    pub fn checkpoint_for_stop(&self) -> Result<(), StoreError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            tracing::info!("queue: the WAL stays until the next start (a reader was busy)");
        }
        Ok(())
    }

    /// The seq from which on queued rows are looked for: below it there are none. Without an
    /// index of the queued rows ([confirm] mode has one: there, 0), this keeps finding the
    /// oldest of them from walking the delivered rows kept before them.
    pub(super) fn queued_from(&self) -> u64 {
        if self.limits.confirm {
            0
        } else {
            self.queued_from.get()
        }
    }

    /// The oldest queued event: its seq and capture time.
    fn oldest_queued(&self) -> rusqlite::Result<Option<(u64, i64)>> {
        let oldest: Option<(u64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT seq, captured_ms FROM events WHERE state = 0 AND seq >= ?1 ORDER BY seq LIMIT 1",
            )?
            .query_row([self.queued_from()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        self.queued_from
            .set(oldest.map_or(self.totals.next_seq, |o| o.0));
        Ok(oldest)
    }

    /// The database's page size: [`PAGE_SIZE`] for a queue made by this version, what it was
    /// made with for an older one.
    pub(super) fn page_size(&self) -> i64 {
        self.conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap_or(PAGE_SIZE)
    }

    /// The queue's figures.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let oldest = self.oldest_queued()?;
        let oldest_awaiting: Option<i64> = if self.limits.confirm {
            self.conn
                .query_row(
                    "SELECT min(first_published_ms) FROM events WHERE state < 2 AND first_published_ms IS NOT NULL",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .flatten()
        } else {
            None
        };
        let t = self.totals;
        Ok(Stats {
            awaiting: t.awaiting,
            awaiting_bytes: t.awaiting_bytes,
            oldest_awaiting_published_ms: oldest_awaiting,
            depth: t.depth,
            bytes: t.bytes,
            oldest_seq: oldest.map(|o| o.0),
            oldest_captured_ms: oldest.map(|o| o.1),
            next_seq: t.next_seq,
            dropped_total: t.dropped_total,
            retained: t.retained,
            retained_bytes: t.retained_bytes,
            max_events: self.limits.max_events,
            max_bytes: self.limits.max_bytes,
        })
    }

    /// Calls `each` for every event (queued and retained) captured at or after `since_ms`
    /// with seq ≥ `from_seq`, in seq order, without loading them all into memory. `queued_only`
    /// limits it to undelivered events; `limit` bounds the count.
    pub fn scan(
        &self,
        filter: &ScanFilter,
        mut each: impl FnMut(ScannedRow) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT e.seq, e.state, CASE WHEN e.state > 0 THEN e.captured_ms + e.published_after_ms END,
                    r.topic, e.id,
                    e.captured_ms, e.payload, e.dict, e.bytes
             FROM events e CROSS JOIN routes r ON r.id = e.route
             WHERE e.seq >= ?1 AND e.captured_ms >= ?2 AND (?3 = 0 OR e.state = 0)
             ORDER BY e.seq LIMIT ?4",
        )?;
        let mut rows = stmt.query(params![
            filter.from_seq,
            filter.since_ms,
            filter.queued_only as i64,
            filter.limit.min(i64::MAX as u64) as i64
        ])?;
        let mut n = 0;
        let dicts = &mut self.read_dicts.borrow_mut();
        while let Some(r) = rows.next()? {
            let state: i64 = r.get(1)?;
            let seq = r.get(0)?;
            let row = ScannedRow {
                seq,
                state: match state {
                    QUEUED => "queued",
                    PUBLISHED => "published",
                    _ => "confirmed",
                },
                published_ms: r.get(2)?,
                topic: r.get(3)?,
                payload: Stored::at(r, 4)?.unpacked(&self.conn, dicts)?,
            };
            if each(row).is_err() {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// The stored line context (the default state before the first command).
    pub fn load_context(&self) -> Result<ContextState, StoreError> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT state FROM context WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        Ok(match json {
            Some(j) => serde_json::from_str(&j)?,
            None => ContextState::default(),
        })
    }

    /// Stores a new line context revision durably.
    pub fn save_context(&mut self, state: &ContextState) -> Result<(), StoreError> {
        let json = serde_json::to_string(state)?;
        self.conn.execute(
            "INSERT OR REPLACE INTO context (id, revision, state) VALUES (1, ?1, ?2)",
            params![state.revision, json],
        )?;
        Ok(())
    }

    /// Runs SQLite's integrity check; "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    /// Shortens how long a commit waits for a lock held by another process (tests).
    #[cfg(test)]
    pub fn set_busy_timeout(&self, d: Duration) {
        self.conn.busy_timeout(d).expect("busy timeout");
    }
}

/// Up to `limit` undelivered events with seq > `after`, in seq order, through `conn` (the
/// writer's or a reader's).
pub(super) fn fetch(
    conn: &Connection,
    dicts: &mut DictCache,
    after: u64,
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    let mut stmt = conn.prepare_cached(
        // CROSS JOIN: SQLite keeps the events as the outer loop, in seq order.
        "SELECT e.seq, r.source, r.topic, e.id, e.captured_ms, e.payload, e.dict, e.bytes
             FROM events e CROSS JOIN routes r ON r.id = e.route
             WHERE e.state = 0 AND e.seq > ?1 ORDER BY e.seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after, limit as u64])?;
    let mut out = Vec::with_capacity(limit.min(1024));
    while let Some(r) = rows.next()? {
        let stored = Stored::at(r, 3)?;
        out.push(Row {
            seq: stored.seq,
            id: row_id_text(&stored.id, stored.captured_ms),
            source: text(r, 1)?,
            topic: text(r, 2)?,
            payload: stored.unpacked(conn, dicts)?.into(),
        });
    }
    Ok(out)
}

/// A text column, copied once.
fn text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Arc<str>> {
    Ok(r.get_ref(i)?.as_str()?.into())
}

/// An event id as a row stores it ([`super::ids`]) in its usual text form. Anything else,
/// which only a file written by something other than the agent could hold, is shown as hex.
fn row_id_text(bytes: &[u8], captured_ms: i64) -> Arc<str> {
    match ids::read(bytes, captured_ms) {
        Some(id) => id_text(&id),
        None => bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into(),
    }
}

/// An event id in its usual text form (hyphenated, lowercase), formatted on the stack and
/// copied once into the row.
pub(super) fn id_text(id: &uuid::Uuid) -> Arc<str> {
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .into()
}

/// A row's payload as stored, with what unpacking it needs.
struct Stored {
    seq: u64,
    /// The event's id as stored ([`super::ids`]) and its capture time: with the seq, the hint
    /// of a hinted dictionary ([`pack::Hint`]).
    id: Vec<u8>,
    captured_ms: i64,
    payload: Vec<u8>,
    dict: Option<i64>,
    /// The unpacked length.
    len: usize,
}

impl Stored {
    /// From a row whose column 0 is `seq` and whose columns from `at` on are `id`,
    /// `captured_ms`, `payload`, `dict` and `bytes`.
    fn at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Stored> {
        Ok(Stored {
            seq: r.get(0)?,
            id: r.get(at)?,
            captured_ms: r.get(at + 1)?,
            payload: r.get(at + 2)?,
            dict: r.get(at + 3)?,
            len: r.get(at + 4)?,
        })
    }

    /// The payload as published: as stored, or unpacked against its dictionary (read through
    /// `conn` into `dicts` the first time).
    fn unpacked(self, conn: &Connection, dicts: &mut DictCache) -> Result<Vec<u8>, StoreError> {
        let Some(id) = self.dict else {
            return Ok(self.payload);
        };
        let seq = self.seq;
        let failed = |source| StoreError::Unpack { seq, source };
        let (bytes, hinted) = match dicts.get(id) {
            Some(d) => d,
            None => {
                let d: Option<(Vec<u8>, bool)> = conn
                    .prepare_cached("SELECT bytes, hinted FROM dicts WHERE id = ?1")?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let (b, hinted) = d.ok_or(failed(UnpackError::MissingDict(id)))?;
                let d: pack::Dict = (b.into(), hinted);
                dicts.insert(id, d.clone());
                d
            }
        };
        let hint = if hinted {
            let id = ids::read(&self.id, self.captured_ms).ok_or(failed(UnpackError::Id))?;
            Some(pack::Hint {
                id,
                seq,
                captured_ms: self.captured_ms,
            })
        } else {
            None
        };
        pack::unpack(&self.payload, &bytes, hint.as_ref(), self.len).map_err(failed)
    }
}

/// Which rows [`Store::scan`] visits.
#[derive(Debug, Clone)]
pub struct ScanFilter {
    pub from_seq: u64,
    pub since_ms: i64,
    pub queued_only: bool,
    pub limit: u64,
}

/// One row visited by [`Store::scan`].
#[derive(Debug, Clone)]
pub struct ScannedRow {
    pub seq: u64,
    /// "queued", "published" or "confirmed".
    pub state: &'static str,
    pub published_ms: Option<i64>,
    pub topic: String,
    pub payload: Vec<u8>,
}
