//! The SQLite side of the queue: synchronous, owned by the writer thread (and opened
//! read-only-in-spirit by `tracegate queue stats`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::config::Overflow;
use crate::event::{Event, Kind};

/// Schema version in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,  -- gap-free per agent, assigned at commit
    id          TEXT    NOT NULL,     -- UUIDv7, the consumers' idempotency key
    topic       TEXT    NOT NULL,     -- where the payload is published
    captured_ms INTEGER NOT NULL,     -- capture time, ms since the epoch
    bytes       INTEGER NOT NULL,     -- length(payload), kept for the byte limit
    payload     BLOB    NOT NULL      -- the exact JSON published, on every attempt
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS handovers (
    source TEXT PRIMARY KEY,          -- the source's id
    key    TEXT    NOT NULL,          -- the last committed handover id (e.g. a PLC counter)
    seq    INTEGER NOT NULL,          -- the seq it was committed as
    valid  INTEGER NOT NULL           -- whether that event was valid
);
";

/// Errors of the queue's storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("queue database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "queue database {path} has schema version {found}; this tracegate knows {SCHEMA_VERSION}"
    )]
    Version { path: String, found: i64 },
    #[error("queue write failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot serialize event: {0}")]
    Json(#[from] serde_json::Error),
}

/// Size limits of the queue.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_events: u64,
    pub max_bytes: u64,
    pub overflow: Overflow,
}

/// An event waiting to be committed, with its topic.
#[derive(Debug)]
pub struct NewEvent {
    pub event: Event,
    pub topic: String,
    /// The device's handover id ([`tracegate_drivers::Reading::handover`]).
    pub handover: Option<String>,
}

/// A committed event as the publisher sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub seq: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Figures for `queue stats` and the alarms.
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
    pub max_events: u64,
    pub max_bytes: u64,
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
}

impl Committed {
    /// The seqs of the events taken, in order.
    pub fn seqs(&self) -> Vec<u64> {
        self.accepted.iter().map(|a| a.seq).collect()
    }
}

/// The open queue database.
pub struct Store {
    conn: Connection,
    limits: Limits,
    next_seq: u64,
    depth: u64,
    bytes: u64,
    dropped_total: u64,
    /// The `handovers` table, in memory: source → (key, seq, valid).
    handovers: HashMap<String, (String, u64, bool)>,
}

impl Store {
    /// Opens (or creates) the queue at `path`. Committed events from before a crash are all
    /// there: SQLite's WAL recovery replays what was committed and discards what was not.
    pub fn open(path: &Path, limits: Limits) -> Result<Store, StoreError> {
        let p = path.display().to_string();
        let open_err = |source| StoreError::Open {
            path: p.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
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
            conn.execute_batch(SCHEMA).map_err(open_err)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(open_err)?;
        }
        let mut store = Store {
            conn,
            limits,
            next_seq: 1,
            depth: 0,
            bytes: 0,
            dropped_total: 0,
            handovers: HashMap::new(),
        };
        store.load_totals().map_err(open_err)?;
        Ok(store)
    }

    fn load_totals(&mut self) -> rusqlite::Result<()> {
        let (depth, bytes, max_seq): (u64, u64, Option<u64>) = self.conn.query_row(
            "SELECT count(*), coalesce(sum(bytes), 0), max(seq) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let meta = |key: &str| -> rusqlite::Result<u64> {
            Ok(self
                .conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?
                .unwrap_or(0))
        };
        let next_meta = meta("next_seq")?;
        self.dropped_total = meta("dropped_total")?;
        self.next_seq = next_meta.max(max_seq.map_or(1, |m| m + 1)).max(1);
        self.depth = depth;
        self.bytes = bytes;
        let mut stmt = self
            .conn
            .prepare("SELECT source, key, seq, valid FROM handovers")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?;
        self.handovers = rows.collect::<Result<_, _>>()?;
        Ok(())
    }

    /// True when one more event of `len` bytes fits without dropping anything.
    pub fn has_room(&self, len: u64) -> bool {
        self.depth < self.limits.max_events && self.bytes + len <= self.limits.max_bytes
    }

    /// True when the queue is at a limit.
    pub fn is_full(&self) -> bool {
        !self.has_room(1)
    }

    /// The overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.limits.overflow
    }

    /// In one transaction: deletes the delivered `deletes`, then appends `events` with the
    /// next sequence numbers. Durable when it returns Ok. On error nothing changed.
    pub fn commit(
        &mut self,
        events: &mut [NewEvent],
        deletes: &[u64],
    ) -> Result<Committed, StoreError> {
        let tx = self.conn.transaction()?;
        let (mut depth, mut bytes, mut next_seq) = (self.depth, self.bytes, self.next_seq);
        let mut dropped = 0u64;
        let mut out = Committed::default();
        // Handovers written by this transaction; applied to `self` once it commits.
        let mut handovers: HashMap<String, (String, u64, bool)> = HashMap::new();
        {
            let mut del = tx.prepare_cached("DELETE FROM events WHERE seq = ?1 RETURNING bytes")?;
            for seq in deletes {
                if let Some(b) = del.query_row([seq], |r| r.get::<_, u64>(0)).optional()? {
                    depth -= 1;
                    bytes -= b;
                }
            }
            let mut ins = tx.prepare_cached(
                "INSERT INTO events (seq, id, topic, captured_ms, bytes, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut oldest =
                tx.prepare_cached("SELECT seq, bytes FROM events ORDER BY seq LIMIT 1")?;
            let mut upsert = tx.prepare_cached(
                "INSERT OR REPLACE INTO handovers (source, key, seq, valid) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for new in events.iter_mut() {
                let valid = new.event.kind == Kind::Scan;
                if let Some(key) = &new.handover {
                    let last = handovers
                        .get(&new.event.source)
                        .or_else(|| self.handovers.get(&new.event.source));
                    if let Some((_, seq, valid)) = last.filter(|(k, _, _)| k == key) {
                        out.accepted.push(Accepted {
                            seq: *seq,
                            valid: *valid,
                            repeated: true,
                        });
                        continue;
                    }
                }
                new.event.seq = next_seq;
                let payload = serde_json::to_vec(&new.event)?;
                let len = payload.len() as u64;
                let room = |depth: u64, bytes: u64| {
                    depth < self.limits.max_events && bytes + len <= self.limits.max_bytes
                };
                while !room(depth, bytes) {
                    if self.limits.overflow == Overflow::Block || depth == 0 {
                        break;
                    }
                    let (seq, b): (u64, u64) =
                        oldest.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    tx.execute("DELETE FROM events WHERE seq = ?1", [seq])?;
                    depth -= 1;
                    bytes -= b;
                    dropped += 1;
                }
                if !room(depth, bytes) {
                    break;
                }
                ins.execute(params![
                    next_seq,
                    new.event.id.to_string(),
                    new.topic,
                    new.event.captured_ms,
                    len,
                    payload
                ])?;
                if let Some(key) = &new.handover {
                    upsert.execute(params![new.event.source, key, next_seq, valid])?;
                    handovers.insert(new.event.source.clone(), (key.clone(), next_seq, valid));
                }
                out.accepted.push(Accepted {
                    seq: next_seq,
                    valid,
                    repeated: false,
                });
                out.last_seq = Some(next_seq);
                next_seq += 1;
                depth += 1;
                bytes += len;
            }
            if out.last_seq.is_some() {
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('next_seq', ?1)",
                    [next_seq],
                )?;
            }
            if dropped > 0 {
                tx.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('dropped_total', ?1)",
                    [self.dropped_total + dropped],
                )?;
            }
        }
        tx.commit()?;
        self.depth = depth;
        self.bytes = bytes;
        self.next_seq = next_seq;
        self.dropped_total += dropped;
        self.handovers.extend(handovers);
        out.dropped = dropped;
        Ok(out)
    }

    /// Up to `limit` undelivered events with seq > `after`, in seq order.
    pub fn fetch(&self, after: u64, limit: usize) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, topic, payload FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as u64], |r| {
            Ok(Row {
                seq: r.get(0)?,
                topic: r.get(1)?,
                payload: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The queue's figures.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let oldest: Option<(u64, i64)> = self
            .conn
            .query_row(
                "SELECT seq, captured_ms FROM events ORDER BY seq LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(Stats {
            depth: self.depth,
            bytes: self.bytes,
            oldest_seq: oldest.map(|o| o.0),
            oldest_captured_ms: oldest.map(|o| o.1),
            next_seq: self.next_seq,
            dropped_total: self.dropped_total,
            max_events: self.limits.max_events,
            max_bytes: self.limits.max_bytes,
        })
    }

    /// Shortens how long a commit waits for a lock held by another process (tests).
    #[cfg(test)]
    pub fn set_busy_timeout(&self, d: Duration) {
        self.conn.busy_timeout(d).expect("busy timeout");
    }

    /// Runs SQLite's integrity check; "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }
}
