//! The stored side of packing ([`super::pack`]): what is on disk, what comes back, the
//! dictionaries' life.

use rusqlite::Connection;

use super::StoreError;
use super::pack::REFRESH_AFTER;
use super::store::{Row, Store};
use super::tests::{EVERY_EVENT, NOW, event, gs1_code, incompressible, limits};
use crate::config::Overflow;

/// (stored payload bytes, unpacked payload bytes, dictionaries) in the file at `path`.
fn on_disk(path: &std::path::Path) -> (i64, i64, i64) {
    let c = Connection::open(path).unwrap();
    c.query_row(
        "SELECT (SELECT sum(length(payload)) FROM events), (SELECT sum(bytes) FROM events),
                (SELECT count(*) FROM dicts)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn all_payloads(s: &Store) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    s.scan(&EVERY_EVENT, |r| {
        out.push(r.payload);
        Ok(())
    })
    .unwrap();
    out
}

/// Commits `rounds` commits of `per` scans of a line (serials counting up), as published.
fn commit_scans(s: &mut Store, rounds: u64, per: u64) -> Vec<Row> {
    let mut published = Vec::new();
    for round in 0..rounds {
        let mut batch: Vec<_> = (0..per)
            .map(|i| event(&gs1_code(round * per + i)))
            .collect();
        published.extend(s.commit(&mut batch, &[], NOW).unwrap().rows);
    }
    published
}

#[test]
fn a_lines_events_are_stored_in_a_fraction_and_read_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut s = Store::open(&path, limits(10_000, Overflow::Block)).unwrap();
    let published = commit_scans(&mut s, 40, 5);
    let (stored, bytes, dicts) = on_disk(&path);
    assert_eq!(dicts, 1, "one topic, one dictionary");
    assert!(
        stored * 4 < bytes,
        "{stored} bytes stored for {bytes} bytes of payload"
    );
    // What the publisher fetches and what `queue export` reads are the bytes committed.
    let fetched = s.fetch(0, 1000).unwrap();
    assert_eq!(fetched, published);
    let exported = all_payloads(&s);
    assert_eq!(exported.len(), 200);
    assert!(
        exported
            .iter()
            .zip(&published)
            .all(|(e, p)| *e == p.payload)
    );
}

#[test]
fn a_restart_packs_against_the_same_dictionary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    for start in 0..3 {
        let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
        let mut batch = [event(&gs1_code(start))];
        s.commit(&mut batch, &[], NOW).unwrap();
    }
    let s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
    assert_eq!(on_disk(&path).2, 1);
    assert_eq!(s.fetch(0, 10).unwrap().len(), 3);
}

#[test]
fn a_drifted_dictionary_is_replaced_and_deleted_once_no_row_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut s = Store::open(&path, limits(10_000, Overflow::Block)).unwrap();
    let mut published = commit_scans(&mut s, REFRESH_AFTER / 10, 10);
    // The line's codes change beyond recognition: the next event becomes the dictionary.
    let mut batch: Vec<_> = (0..5).map(|i| event(&incompressible(i, 300))).collect();
    published.extend(s.commit(&mut batch, &[], NOW).unwrap().rows);
    let c = Connection::open(&path).unwrap();
    let until: Vec<Option<u64>> = c
        .prepare("SELECT until_seq FROM dicts ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(until, [Some(REFRESH_AFTER + 1), None]);
    // Rows on both sides of the change read back as they were published.
    assert_eq!(s.fetch(0, 2000).unwrap(), published);

    // Delivering the rows before the change (retention off: they are deleted) frees the
    // first dictionary; the second stays while its topic goes on.
    let first: Vec<u64> = (1..=REFRESH_AFTER).collect();
    s.commit(&mut [], &first, NOW).unwrap();
    let ids: Vec<i64> = c
        .prepare("SELECT id FROM dicts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, [2]);
    assert_eq!(s.fetch(0, 10).unwrap(), published[REFRESH_AFTER as usize..]);
    // Ids are never reused, so a reader's cached dictionary is never another one.
    let mut batch = [event("next")];
    s.commit(&mut batch, &[], NOW).unwrap();
    assert!(
        c.query_row("SELECT max(id) FROM dicts", [], |r| r.get::<_, i64>(0))
            .unwrap()
            >= 2
    );
}

#[test]
fn a_missing_or_damaged_dictionary_is_an_error_not_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let mut s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
        let mut batch = [event(&gs1_code(1)), event(&gs1_code(2))];
        s.commit(&mut batch, &[], NOW).unwrap();
    }
    let c = Connection::open(&path).unwrap();
    c.execute("UPDATE dicts SET bytes = substr(bytes, 1, 10)", [])
        .unwrap();
    let s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
    let err = s.fetch(0, 10).unwrap_err();
    assert!(matches!(err, StoreError::Unpack { seq: 1, .. }), "{err}");
    c.execute("DELETE FROM dicts", []).unwrap();
    let s = Store::open(&path, limits(100, Overflow::Block)).unwrap();
    let err = s.fetch(0, 10).unwrap_err();
    assert!(err.to_string().contains("dictionary 1 is missing"), "{err}");
}
