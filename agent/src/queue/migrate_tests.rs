//! Queues made by earlier versions ([`super::migrate`]): opened, their events published as
//! they were, and a migration that cannot be done leaves the file as it was.

use rusqlite::{Connection, params};

use super::Confirmation;
use super::store::Store;
use super::tests::{EVERY_EVENT, NOW, event, gs1_code, limits, retaining};
use crate::config::Overflow;

const ID_1: &str = "019ad5e1-3c2b-7f00-8a00-000000000001";

/// The schema of the first version of the queue, as a queue made then has it.
const SCHEMA_1: &str = "
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, topic TEXT NOT NULL,
    captured_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, payload BLOB NOT NULL,
    state INTEGER NOT NULL DEFAULT 0, published_ms INTEGER, first_published_ms INTEGER
);
CREATE INDEX events_queued ON events (seq) WHERE state = 0;
CREATE INDEX events_published ON events (seq) WHERE state = 1;
CREATE INDEX events_confirmed ON events (seq) WHERE state = 2;
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE context (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE handovers (source TEXT PRIMARY KEY, key TEXT NOT NULL, seq INTEGER NOT NULL, valid INTEGER NOT NULL);
PRAGMA user_version = 1;
";

#[test]
fn a_queue_of_schema_1_is_migrated_and_its_rows_published_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let old = br#"{"schema":"tracegate.event/1","seq":1,"code":{"text":"before"}}"#;
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA_1).unwrap();
        c.execute(
            "INSERT INTO events (seq, id, source, topic, captured_ms, bytes, payload)
             VALUES (1, ?3, 'src', 't/st/src/scan', 0, ?1, ?2)",
            rusqlite::params![old.len(), &old[..], ID_1],
        )
        .unwrap();
    }
    let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
    let mut batch = [event(&gs1_code(2))];
    let new = s.commit(&mut batch, &[], NOW).unwrap().rows;
    assert_eq!(new[0].seq, 2, "seqs go on after the old rows");
    let rows = s.fetch(0, 10).unwrap();
    assert_eq!(&rows[0].payload[..], &old[..]);
    assert_eq!((&*rows[0].id, &*rows[0].source), (ID_1, "src"));
    assert_eq!(rows[1], new[0]);
    drop(s);
    let c = Connection::open(&path).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    // Without [confirm], the index of the delivered rows is gone (it cost every commit a page).
    let indexed: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'events_published'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 0);
    // Opening again is not a second migration.
    assert_eq!(
        Store::open(&path, limits(100, Overflow::Block))
            .unwrap()
            .fetch(0, 10)
            .unwrap(),
        rows
    );
}

/// Version 2's tables as a queue made then has them (its `events` and index; the other tables
/// are as they are now).
const SCHEMA_2: &str = "
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT NOT NULL, topic TEXT NOT NULL,
    captured_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, payload BLOB NOT NULL,
    state INTEGER NOT NULL DEFAULT 0, published_ms INTEGER, first_published_ms INTEGER,
    dict INTEGER
);
CREATE INDEX events_confirmed ON events (seq) WHERE state = 2;
CREATE TABLE dicts (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, bytes BLOB NOT NULL, until_seq INTEGER);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE context (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE handovers (source TEXT PRIMARY KEY, key TEXT NOT NULL, seq INTEGER NOT NULL, valid INTEGER NOT NULL);
PRAGMA user_version = 2;
";

/// A version 2 queue at `path`: seq 1 delivered (retained), 2 queued without the placeholder
/// (as before it), 3 queued with it, from two sources; each row's id is `ids[seq - 1]`.
fn queue_of_schema_2(path: &std::path::Path, ids: [&str; 3]) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(SCHEMA_2).unwrap();
    let rows = [
        (1, "src", "t/st/src/scan", 1, Some(NOW + 5)),
        (2, "src", "t/st/src/scan", 0, None),
        (3, "other", "t/st/other/scan", 0, Some(NOW + 3)),
    ];
    for (seq, source, topic, state, published) in rows {
        let payload = format!(r#"{{"seq":{seq},"source":"{source}"}}"#);
        c.execute(
            "INSERT INTO events (seq, id, source, topic, captured_ms, bytes, payload, state, published_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![seq, ids[seq as usize - 1], source, topic, NOW + seq, payload.len(), payload.as_bytes(), state, published],
        )
        .unwrap();
    }
}

const IDS: [&str; 3] = [
    "019ad5e1-3c2b-7f00-8a00-000000000001",
    "019ad5e1-3c2b-7f00-8a00-000000000002",
    "019ad5e1-3c2b-7f00-8a00-000000000003",
];

#[test]
fn a_queue_of_schema_2_keeps_every_event_its_id_source_topic_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    queue_of_schema_2(&path, IDS);
    let mut s = Store::open(&path, retaining(100, Overflow::Block)).unwrap();
    let stats = s.stats().unwrap();
    assert_eq!((stats.depth, stats.retained, stats.next_seq), (2, 1, 4));
    let queued = s.fetch(0, 10).unwrap();
    let got: Vec<_> = queued
        .iter()
        .map(|r| (r.seq, &*r.id, &*r.source, &*r.topic))
        .collect();
    assert_eq!(
        got,
        [
            (2, IDS[1], "src", "t/st/src/scan"),
            (3, IDS[2], "other", "t/st/other/scan")
        ]
    );
    assert_eq!(&queued[1].payload[..], br#"{"seq":3,"source":"other"}"#);
    let mut scanned = Vec::new();
    s.scan(&EVERY_EVENT, |r| {
        scanned.push((r.seq, r.state, r.published_ms, r.topic));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        scanned,
        [
            (1, "published", Some(NOW + 5), "t/st/src/scan".to_owned()),
            (2, "queued", None, "t/st/src/scan".to_owned()),
            (3, "queued", None, "t/st/other/scan".to_owned()),
        ]
    );
    // New events of a known source and topic name its route; the old table is gone.
    let new = s.commit(&mut [event(&gs1_code(4))], &[2, 3], NOW).unwrap();
    assert_eq!(new.seqs(), [4]);
    assert_eq!(s.fetch(0, 10).unwrap(), new.rows);
    drop(s);
    let c = Connection::open(&path).unwrap();
    let (version, routes, old): (i64, i64, i64) = c
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM routes),
                    (SELECT count(*) FROM sqlite_master WHERE name = 'events_old')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((version, routes, old), (5, 2, 0));
    assert_eq!(
        c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
}

/// Version 3's tables that version 4 changed (`dicts` has no `hinted`); the others are as
/// they are now.
const SCHEMA_3: &str = "
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, id BLOB NOT NULL, route INTEGER NOT NULL,
    captured_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, payload BLOB NOT NULL,
    state INTEGER NOT NULL DEFAULT 0, published_ms INTEGER, first_published_ms INTEGER,
    dict INTEGER
);
CREATE TABLE routes (id INTEGER PRIMARY KEY, source TEXT NOT NULL, topic TEXT NOT NULL, UNIQUE (source, topic));
CREATE INDEX events_confirmed ON events (seq) WHERE state = 2;
CREATE TABLE dicts (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, bytes BLOB NOT NULL, until_seq INTEGER);
PRAGMA user_version = 3;
";

/// A queue of `version` 3 or 4 (version 3 with `dicts.hinted`) at `path`, with route 1 for the
/// source `src` on `topic` and dictionary 1 of `dict` (hinted in version 4), and no events.
fn queue_of_schema_3_or_4(
    path: &std::path::Path,
    version: i64,
    topic: &str,
    dict: &[u8],
) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch(SCHEMA_3).unwrap();
    if version == 4 {
        c.execute_batch(
            "ALTER TABLE dicts ADD COLUMN hinted INTEGER NOT NULL DEFAULT 0;
             PRAGMA user_version = 4;",
        )
        .unwrap();
    }
    c.execute_batch(super::store::SCHEMA).unwrap();
    c.execute(
        "INSERT INTO routes (id, source, topic) VALUES (1, 'src', ?1)",
        [topic],
    )
    .unwrap();
    c.execute(
        "INSERT INTO dicts (id, topic, bytes) VALUES (1, ?1, ?2)",
        params![topic, dict],
    )
    .unwrap();
    if version == 4 {
        c.execute("UPDATE dicts SET hinted = 1", []).unwrap();
    }
    c
}

/// A version 3 queue packed its payloads against the dictionary alone. They are published as
/// they were; the topic's next event makes a dictionary with hints, and the old one goes
/// once no row uses it.
#[test]
fn a_queue_of_schema_3_publishes_its_packed_rows_and_packs_new_ones_with_hints() {
    use super::pack::pack_against;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let topic = "t/st/src/scan";
    let dict = br#"{"schema":"tracegate.event/1","id":"019ad5e1-3c2b-7f00-8a00-000000000001","seq":1,"code":{"text":"first"}}"#;
    let old = br#"{"schema":"tracegate.event/1","id":"019ad5e1-3c2b-7f00-8a00-000000000002","seq":2,"code":{"text":"second"}}"#;
    {
        let c = queue_of_schema_3_or_4(&path, 3, topic, dict);
        for (seq, payload) in [(1u64, &dict[..]), (2, &old[..])] {
            let id = uuid::Uuid::parse_str(IDS[seq as usize - 1]).unwrap();
            c.execute(
                "INSERT INTO events (seq, id, route, captured_ms, bytes, payload, dict, published_ms)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, 1, ?3)",
                params![seq, &id.as_bytes()[..], NOW, payload.len(), pack_against(payload, dict, None)],
            )
            .unwrap();
        }
    }
    let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
    let before = s.fetch(0, 10).unwrap();
    assert_eq!(
        before.iter().map(|r| &r.payload[..]).collect::<Vec<_>>(),
        [&dict[..], &old[..]]
    );
    let new = s.commit(&mut [event(&gs1_code(3))], &[], NOW).unwrap().rows;
    assert_eq!(s.fetch(2, 10).unwrap(), new);
    let c = Connection::open(&path).unwrap();
    let dicts = |c: &Connection| -> Vec<(i64, Option<i64>, bool)> {
        c.prepare("SELECT id, until_seq, hinted FROM dicts ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(dicts(&c), [(1, Some(3), false), (2, None, true)]);
    // The old rows are delivered (and deleted: no retention); their dictionary goes with them.
    s.commit(&mut [event(&gs1_code(4))], &[1, 2], NOW).unwrap();
    assert_eq!(dicts(&c), [(2, None, true)]);
    assert_eq!(s.fetch(0, 10).unwrap().len(), 2);
}

#[test]
fn a_migrated_queue_is_confirmed_by_the_ids_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    queue_of_schema_2(&path, IDS);
    let confirming = super::store::Limits {
        confirm: true,
        ..retaining(100, Overflow::Block)
    };
    let mut s = Store::open(&path, confirming).unwrap();
    let json = format!(r#"{{"ids": ["{}", "not-a-uuid"]}}"#, IDS[2]);
    let done = s
        .confirm(&Confirmation::parse(json.as_bytes()).unwrap(), NOW)
        .unwrap();
    assert_eq!((done.count, done.unpublished.as_slice()), (1, &[3][..]));
    assert_eq!(
        s.fetch(0, 10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        [2]
    );
}

#[test]
fn a_migration_that_fails_leaves_the_queue_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    // An id that is not a UUID cannot be stored as one: the migration stops at it.
    queue_of_schema_2(&path, [IDS[0], "not-a-uuid", IDS[2]]);
    let err = Store::open(&path, retaining(100, Overflow::Block))
        .err()
        .expect("the migration fails");
    let text = err.to_string();
    assert!(text.contains("q.db") && text.contains("NOT NULL"), "{text}");
    let c = Connection::open(&path).unwrap();
    let (version, rows, tables): (i64, i64, i64) = c
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM events),
                    (SELECT count(*) FROM sqlite_master WHERE name IN ('routes', 'events_old'))",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((version, rows, tables), (2, 3, 0));
    let id: String = c
        .query_row("SELECT id FROM events WHERE seq = 2", [], |r| r.get(0))
        .unwrap();
    assert_eq!(id, "not-a-uuid");
}

/// A version 4 queue stored ids whole and the delivery's time as such. Its rows are copied
/// with ids of their capture time shortened, the others whole, and the delivery's time as
/// the delay; their payloads, packed with the ids as hints, are published as they were.
#[test]
fn a_queue_of_schema_4_stores_its_ids_and_delivery_times_as_version_5_does() {
    use super::pack::{Hint, pack_against};
    use super::store::PUBLISHED_PLACEHOLDER;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let topic = "t/st/src/scan";
    let dict = br#"{"schema":"tracegate.event/1","id":"019ad5e1-3c2b-7f00-8a00-000000000000","seq":0,"code":{"text":"zero"}}"#;
    // Ids 1 and 3 carry their row's capture time, id 2 another.
    let captured = [NOW - 10, NOW, NOW - 8];
    let id_at = |ms: i64, n: u8| {
        let mut bytes = *uuid::Uuid::parse_str(IDS[0]).unwrap().as_bytes();
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        bytes[15] = n;
        uuid::Uuid::from_bytes(bytes).to_string()
    };
    let ids = [
        id_at(captured[0], 1),
        IDS[1].to_owned(),
        id_at(captured[2], 3),
    ];
    let mut payloads = Vec::new();
    {
        let c = queue_of_schema_3_or_4(&path, 4, topic, dict);
        for seq in 1..=3u64 {
            let i = seq as usize - 1;
            let id = uuid::Uuid::parse_str(&ids[i]).unwrap();
            let payload = format!(
                r#"{{"schema":"tracegate.event/1","id":"{id}","seq":{seq},"code":{{"text":"row {seq}"}}}}"#
            );
            let hint = Hint {
                id,
                seq,
                captured_ms: captured[i],
            };
            let (state, published) = if seq == 1 {
                (1, captured[i] + 7)
            } else {
                (0, captured[i])
            };
            c.execute(
                "INSERT INTO events (seq, id, route, captured_ms, bytes, payload, dict, state, published_ms)
                 VALUES (?1, ?2, 1, ?3, ?4, ?5, 1, ?6, ?7)",
                params![
                    seq,
                    &id.as_bytes()[..],
                    captured[i],
                    payload.len(),
                    pack_against(payload.as_bytes(), dict, Some(&hint)),
                    state,
                    published
                ],
            )
            .unwrap();
            payloads.push(payload);
        }
    }
    let mut s = Store::open(&path, retaining(100, Overflow::Block)).unwrap();
    let stored: Vec<(i64, i64)> = s
        .conn
        .prepare("SELECT length(id), published_after_ms FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored,
        [
            (10, 7),
            (16, PUBLISHED_PLACEHOLDER),
            (10, PUBLISHED_PLACEHOLDER)
        ]
    );
    let queued = s.fetch(0, 10).unwrap();
    let got: Vec<_> = queued
        .iter()
        .map(|r| {
            (
                r.seq,
                r.id.to_string(),
                String::from_utf8(r.payload.to_vec()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (2, ids[1].clone(), payloads[1].clone()),
            (3, ids[2].clone(), payloads[2].clone())
        ]
    );
    s.commit(&mut [], &[2, 3], NOW + 50).unwrap();
    let mut scanned = Vec::new();
    s.scan(&EVERY_EVENT, |r| {
        scanned.push((r.seq, r.published_ms, String::from_utf8(r.payload).unwrap()));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        scanned,
        [
            (1, Some(captured[0] + 7), payloads[0].clone()),
            (2, Some(NOW + 50), payloads[1].clone()),
            (3, Some(NOW + 50), payloads[2].clone()),
        ]
    );
    drop(s);
    let c = Connection::open(&path).unwrap();
    let (version, old): (i64, i64) = c
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version),
                    (SELECT count(*) FROM sqlite_master WHERE name = 'events_old')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, old), (5, 0));
    assert_eq!(
        c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap(),
        "ok"
    );
}
