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
//! - 4 → 5: a row stores its id without the 6 bytes of time it shares with `captured_ms`
//!   ([`super::ids`]), and the time of its delivery as the ms after its capture
//!   (`published_after_ms`, 2 bytes for a delay of up to 32 s, where the time took 6). A row of
//!   a typical scan shrinks from ~90 to ~80 bytes. The table is copied into the new layout,
//!   as from 2 to 3 (from versions 1 to 3 the copy does both).

use rusqlite::Connection;

use super::store::{PUBLISHED_PLACEHOLDER, SCHEMA, SCHEMA_VERSION};

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
    // Every older version's events are copied into the current layout.
    let copy = (1..SCHEMA_VERSION).contains(&version);
    if copy {
        // The old table and its indexes step aside, so that the schema below creates the new
        // ones under their names. [confirm]'s indexes are made again at open if it is on.
        steps.push_str(
            "DROP INDEX IF EXISTS events_confirmed;
             DROP INDEX IF EXISTS events_id;
             DROP INDEX IF EXISTS events_unconfirmed;
             DROP INDEX IF EXISTS events_published;
             DROP INDEX IF EXISTS events_queued;
             ALTER TABLE events RENAME TO events_old;",
        );
    }
    steps.push_str(SCHEMA);
    // A delivered row's delay from capture to delivery; a queued one's placeholder (for
    // versions 1 and 2, also where it has no `published_ms`). A delivered row without a time
    // counts as delivered at its capture.
    let published_after = format!(
        "CASE WHEN e.state > 0 THEN coalesce(e.published_ms - e.captured_ms, 0)
              ELSE {PUBLISHED_PLACEHOLDER} END"
    );
    let columns = "seq, id, route, captured_ms, bytes, payload, state, published_after_ms,
                   first_published_ms, dict";
    if (1..=2).contains(&version) {
        // Ids were text; an id that is not a UUID fails the copy (`id` NOT NULL).
        let id = stored_id("unhex(replace(e.id, '-', ''))");
        steps.push_str(&format!(
            "INSERT INTO routes (source, topic) SELECT DISTINCT source, topic FROM events_old;
             INSERT INTO events ({columns})
                 SELECT e.seq, {id}, r.id, e.captured_ms, e.bytes, e.payload, e.state,
                        {published_after}, e.first_published_ms, e.dict
                 FROM events_old e JOIN routes r ON r.source = e.source AND r.topic = e.topic
                 ORDER BY e.seq;"
        ));
    } else if copy {
        let id = stored_id("e.id");
        steps.push_str(&format!(
            "INSERT INTO events ({columns})
                 SELECT e.seq, {id}, e.route, e.captured_ms, e.bytes, e.payload, e.state,
                        {published_after}, e.first_published_ms, e.dict
                 FROM events_old e ORDER BY e.seq;"
        ));
    }
    if copy {
        steps.push_str("DROP TABLE events_old;");
    }
    steps.push_str(&format!("PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"));
    let done = conn.execute_batch(&steps);
    if done.is_err() && !conn.is_autocommit() {
        // The failed statement left the transaction open; nothing of it stays.
        let _ = conn.execute_batch("ROLLBACK;");
    }
    done
}

/// SQL for what a row stores of the 16 bytes of `whole` (an expression of the row `e`):
/// without the first 6 when they are its `captured_ms` ([`super::ids::stored`]).
fn stored_id(whole: &str) -> String {
    format!(
        "CASE WHEN e.captured_ms BETWEEN 0 AND 281474976710655
                   AND substr({whole}, 1, 6) = unhex(printf('%012X', e.captured_ms))
              THEN substr({whole}, 7) ELSE {whole} END"
    )
}
