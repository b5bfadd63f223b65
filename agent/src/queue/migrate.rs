//! Bringing a queue database of an older schema version up to [`SCHEMA_VERSION`], at open.
//! Each migration is one transaction: one stopped halfway (a crash, a full disk) leaves the
//! file as it was, and the next start tries again.
//!
//! - 1 → 2: payloads packed against per-topic dictionaries ([`super::pack`]). A column and a
//!   table are added; the rows stay as they are (`dict` NULL: stored unpacked).
//! - 2 → 3: an event's id is stored as the UUID's 16 bytes instead of its 36 characters, and
//!   its source and topic (some 45 bytes a row) as the number of a `routes` row. A row of a
//!   typical scan shrinks from ~190 to ~125 bytes, so a page holds half as many rows again
//!   and a commit at ordinary rates takes a new page (which writes the page, its parent, the
//!   freelist and the header) half as often (docs/performance.md). The table is copied into
//!   the new layout: a queue of a million events takes some seconds, and the WAL grows by
//!   the table's size until the next checkpoint.
//! - 3 → 4: `dicts.hinted` is added, 0 for the dictionaries there are: their rows stay as
//!   they were packed. The next event of each topic makes a new, hinted dictionary
//!   ([`super::pack::Hint`]) and retires the old one.

use rusqlite::Connection;

use super::store::{SCHEMA, SCHEMA_VERSION};

/// Migrates the database from `version` (0: a new, empty file) to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &Connection, version: i64) -> rusqlite::Result<()> {
    let mut steps = String::from("BEGIN IMMEDIATE;");
    if version == 1 {
        steps.push_str("ALTER TABLE events ADD COLUMN dict INTEGER;");
    }
    if (2..=3).contains(&version) {
        // The schema below makes `dicts` only where there is none (version 1).
        steps.push_str("ALTER TABLE dicts ADD COLUMN hinted INTEGER NOT NULL DEFAULT 0;");
    }
    if (1..=2).contains(&version) {
        // The old table and its indexes step aside, so that the schema below creates the new
        // ones under their names. [confirm]'s indexes are made again at open if it is on.
        steps.push_str(
            "DROP INDEX IF EXISTS events_confirmed;
             DROP INDEX IF EXISTS events_id;
             DROP INDEX IF EXISTS events_unconfirmed;
             DROP INDEX IF EXISTS events_published;
             DROP INDEX IF EXISTS events_queued;
             ALTER TABLE events RENAME TO events_v2;",
        );
    }
    steps.push_str(SCHEMA);
    if (1..=2).contains(&version) {
        // A queued row of version 1 (or of 2 before the placeholder) has no `published_ms`;
        // it gets the placeholder the commit gives a new row.
        steps.push_str(
            "INSERT INTO routes (source, topic) SELECT DISTINCT source, topic FROM events_v2;
             INSERT INTO events (seq, id, route, captured_ms, bytes, payload, state,
                                 published_ms, first_published_ms, dict)
                 SELECT e.seq, unhex(replace(e.id, '-', '')), r.id, e.captured_ms, e.bytes,
                        e.payload, e.state, coalesce(e.published_ms, e.captured_ms),
                        e.first_published_ms, e.dict
                 FROM events_v2 e JOIN routes r ON r.source = e.source AND r.topic = e.topic
                 ORDER BY e.seq;
             DROP TABLE events_v2;",
        );
    }
    steps.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"));
    let done = conn.execute_batch(&steps);
    if done.is_err() && !conn.is_autocommit() {
        // The failed statement left the transaction open; nothing of it stays.
        let _ = conn.execute_batch("ROLLBACK;");
    }
    done
}
