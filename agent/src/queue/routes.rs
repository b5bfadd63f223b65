//! The `routes` table in memory: each source and topic pair events are published on, by the
//! number an event row stores instead of the two names.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};

/// Source → topic → the number of the pair in `routes`.
#[derive(Debug, Default)]
pub(super) struct Routes(HashMap<String, HashMap<String, i64>>);

impl Routes {
    /// Every pair stored.
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Routes> {
        let mut routes = Routes::default();
        let mut stmt = conn.prepare("SELECT id, source, topic FROM routes")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        for row in rows {
            let (id, source, topic): (i64, String, String) = row?;
            routes.insert(source, topic, id);
        }
        Ok(routes)
    }

    pub(super) fn get(&self, source: &str, topic: &str) -> Option<i64> {
        self.0.get(source)?.get(topic).copied()
    }

    fn insert(&mut self, source: String, topic: String, id: i64) {
        self.0.entry(source).or_default().insert(topic, id);
    }

    /// Moves the pairs of `other` (a commit's new ones) in.
    pub(super) fn extend(&mut self, other: Routes) {
        for (source, topics) in other.0 {
            self.0.entry(source).or_default().extend(topics);
        }
    }
}

/// The number of the pair for a commit: from `stored` (the committed pairs), from `new` (the
/// ones this commit added so far), or a new `routes` row in `tx`, noted in `new`. `new` joins
/// `stored` only once the commit is durable.
pub(super) fn route(
    tx: &Transaction<'_>,
    stored: &Routes,
    new: &mut Routes,
    source: &str,
    topic: &str,
) -> rusqlite::Result<i64> {
    if let Some(id) = stored.get(source, topic).or_else(|| new.get(source, topic)) {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO routes (source, topic) VALUES (?1, ?2)")?
        .execute(params![source, topic])?;
    let id = tx.last_insert_rowid();
    new.insert(source.to_owned(), topic.to_owned(), id);
    Ok(id)
}
