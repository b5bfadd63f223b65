//! Consumer confirmation ([confirm] mode): events the ERP/MES confirmed leave the waiting state
//! (and become the retained, for replay); events published but not confirmed in time are
//! queued again.

use rusqlite::params;

use super::commit::{delete_unused_dicts, prune_retained, set_meta};
use super::ids;
use super::store::{Store, StoreError};

/// What a consumer confirmed (schema: docs/schema/ack.schema.json).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// Inclusive seq ranges, e.g. [[1, 100], [105, 105]].
    #[serde(default)]
    pub seqs: Vec<(u64, u64)>,
    /// Event ids.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Every seq up to and including this one.
    #[serde(default)]
    pub up_to: Option<u64>,
}

/// Most ranges plus ids in one confirmation message.
pub const MAX_ITEMS: usize = 10_000;

impl Confirmation {
    /// Parses and checks a confirmation message.
    pub fn parse(payload: &[u8]) -> Result<Confirmation, String> {
        let c: Confirmation = serde_json::from_slice(payload)
            .map_err(|e| format!("not a valid confirmation: {e}"))?;
        if c.seqs.is_empty() && c.ids.is_empty() && c.up_to.is_none() {
            return Err("the confirmation names no seq, range or id".into());
        }
        if c.seqs.len() + c.ids.len() > MAX_ITEMS {
            return Err(format!(
                "at most {MAX_ITEMS} ranges and ids per confirmation"
            ));
        }
        if let Some((a, b)) = c.seqs.iter().find(|(a, b)| a > b) {
            return Err(format!("range [{a}, {b}] runs backwards"));
        }
        Ok(c)
    }
}

/// What a confirmation did.
#[derive(Debug, Default, PartialEq)]
pub struct Confirmed {
    /// Events confirmed now.
    pub count: u64,
    /// For each confirmed event that had been published: ms from its first PUBACK to now.
    pub lags_ms: Vec<i64>,
    /// The confirmed events that had not been published yet (they are not to be sent now).
    pub unpublished: Vec<u64>,
}

impl Store {
    /// Applies a confirmation in one transaction: matching queued or waiting events become
    /// confirmed (retained for replay, or deleted when retention is off).
    pub fn confirm(&mut self, c: &Confirmation, now_ms: i64) -> Result<Confirmed, StoreError> {
        let limits = self.limits;
        let tx = self.conn.transaction()?;
        let mut t = self.totals;
        let mut out = Confirmed::default();
        let keep = limits.retain_events > 0;
        let action = if keep {
            "UPDATE events SET state = 2, published_after_ms =
                 CASE WHEN state > 0 THEN coalesce(published_after_ms, ?3 - captured_ms)
                      ELSE ?3 - captured_ms END"
        } else {
            "DELETE FROM events"
        };
        {
            // The old state decides which totals move, so rows are read before they change.
            let mut by_range = tx.prepare_cached(
                "SELECT seq, state, bytes, first_published_ms FROM events WHERE seq BETWEEN ?1 AND ?2 AND state < 2",
            )?;
            let mut by_id = tx.prepare_cached(
                "SELECT seq, state, bytes, first_published_ms FROM events
                 WHERE id IN (?1, ?2) AND (length(id) = 16 OR captured_ms = ?3) AND state < 2",
            )?;
            let mut apply =
                tx.prepare_cached(&format!("{action} WHERE seq = ?1 AND ?2 = ?2 AND ?3 = ?3"))?;
            let mut hits: Vec<(u64, i64, u64, Option<i64>)> = Vec::new();
            let mut ranges = c.seqs.clone();
            if let Some(up_to) = c.up_to {
                ranges.push((0, up_to));
            }
            for (a, b) in ranges {
                let rows = by_range.query_map(params![a, b], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                for row in rows {
                    hits.push(row?);
                }
            }
            // Ids are stored as the UUID's bytes, whole or without the capture time
            // ([`super::ids`]): one that is not a UUID names no event.
            for id in c.ids.iter().filter_map(|id| uuid::Uuid::parse_str(id).ok()) {
                let (whole, short, time) = ids::lookup(&id);
                let rows = by_id.query_map(params![whole, short, time], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                for row in rows {
                    hits.push(row?);
                }
            }
            hits.sort_unstable_by_key(|h| h.0);
            hits.dedup_by_key(|h| h.0);
            for (seq, state, bytes, published_ms) in hits {
                apply.execute(params![seq, 0, now_ms])?;
                if state == 0 {
                    t.depth -= 1;
                    t.bytes -= bytes;
                    out.unpublished.push(seq);
                } else {
                    t.awaiting -= 1;
                    t.awaiting_bytes -= bytes;
                }
                if keep {
                    t.retained += 1;
                    t.retained_bytes += bytes;
                }
                if let Some(p) = published_ms {
                    out.lags_ms.push((now_ms - p).max(0));
                }
                out.count += 1;
            }
        }
        let mut deleted = if keep { 0 } else { out.count };
        if out.count > 0 {
            deleted += prune_retained(&tx, &limits, &mut t, now_ms)?;
        }
        if deleted > 0 {
            // The highest seq may be gone: keep it in meta ([`Store::open`]).
            set_meta(&tx, "next_seq", t.next_seq)?;
        }
        let retired = delete_unused_dicts(&tx, self.retired_dicts, deleted, t.next_seq)?;
        tx.commit()?;
        self.totals = t;
        self.retired_dicts = retired;
        Ok(out)
    }

    /// Queues again the events published before `published_before_ms` and still not
    /// confirmed, so they are sent once more. Returns how many.
    pub fn republish_unconfirmed(&mut self, published_before_ms: i64) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        let mut t = self.totals;
        let mut n = 0;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE events SET state = 0
                 WHERE state = 1 AND captured_ms + published_after_ms < ?1 RETURNING bytes",
            )?;
            let rows = stmt.query_map([published_before_ms], |r| r.get::<_, u64>(0))?;
            for b in rows {
                let b = b?;
                t.awaiting -= 1;
                t.awaiting_bytes -= b;
                t.depth += 1;
                t.bytes += b;
                n += 1;
            }
        }
        tx.commit()?;
        self.totals = t;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_parse_and_bad_ones_say_why() {
        let c = Confirmation::parse(br#"{"seqs": [[1, 3], [7, 7]], "ids": ["x"], "up_to": 9}"#)
            .unwrap();
        assert_eq!(c.seqs, [(1, 3), (7, 7)]);
        assert_eq!(c.up_to, Some(9));
        assert!(Confirmation::parse(b"{}").unwrap_err().contains("names no"));
        assert!(
            Confirmation::parse(br#"{"seqs": [[5, 1]]}"#)
                .unwrap_err()
                .contains("backwards")
        );
        assert!(
            Confirmation::parse(br#"{"seq": 1}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(Confirmation::parse(b"nope").is_err());
    }
}
