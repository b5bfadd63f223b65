//! The newest committed rows, kept in memory so that a publisher that keeps up with the
//! sources takes them from here instead of reading back from SQLite what was just written
//! (and waiting behind the writer's next commit to do so). Pure state, no I/O.
//!
//! The tail answers a fetch only when it can answer it exactly as the database would: every
//! committed row with seq ≥ [`Tail::covered_from`] is either held here or already delivered.
//! Anything older — a backlog after an outage, a rewind after a reconnect, a replay — is read
//! from the database.

use std::collections::VecDeque;

use super::store::Row;

/// Most rows held; older ones are dropped from memory (they stay in the database).
pub(super) const MAX_ROWS: usize = 512;
/// Most payload bytes held.
pub(super) const MAX_BYTES: usize = 512 * 1024;

#[derive(Debug, Default)]
pub(super) struct Tail {
    /// Committed, not yet delivered rows in seq order (ascending, not necessarily contiguous:
    /// delivered ones are removed).
    rows: VecDeque<Row>,
    bytes: usize,
    /// Every committed row with seq ≥ this is in `rows` or delivered; 0 = nothing is covered.
    covered_from: u64,
}

impl Tail {
    /// Rows of a commit that just became durable; `first_seq` is the first seq that commit
    /// could have taken (the queue's next seq before it), so the coverage starts there.
    pub fn committed(&mut self, first_seq: u64, rows: Vec<Row>) {
        if self.covered_from == 0 {
            self.covered_from = first_seq;
        }
        for row in rows {
            self.bytes += row.payload.len();
            self.rows.push_back(row);
        }
        while self.rows.len() > MAX_ROWS || self.bytes > MAX_BYTES {
            let Some(old) = self.rows.pop_front() else {
                break;
            };
            self.bytes -= old.payload.len();
            self.covered_from = old.seq + 1;
        }
    }

    /// The broker acknowledged these: they are no longer to be fetched.
    pub fn delivered(&mut self, seqs: &[u64]) {
        if self.rows.is_empty() || seqs.is_empty() {
            return;
        }
        // Acknowledgements come about in seq order: sorting them is cheap, and each row is then
        // looked for by binary search instead of hashing every row of the tail.
        let mut sorted = seqs.to_vec();
        sorted.sort_unstable();
        // Acknowledgements come in order, so they are mostly the oldest rows: those leave
        // from the front without a pass over the rest.
        let mut taken = 0;
        while let (Some(front), Some(&seq)) = (self.rows.front(), sorted.get(taken)) {
            if seq < front.seq {
                taken += 1;
            } else if seq == front.seq {
                self.bytes -= front.payload.len();
                self.rows.pop_front();
                taken += 1;
            } else {
                break;
            }
        }
        let sorted = &sorted[taken..];
        let (Some(&first), Some(&last)) = (sorted.first(), sorted.last()) else {
            return;
        };
        let bytes = &mut self.bytes;
        self.rows.retain(|r| {
            let keep = r.seq < first || r.seq > last || sorted.binary_search(&r.seq).is_err();
            if !keep {
                *bytes -= r.payload.len();
            }
            keep
        });
    }

    /// Rows left the queue some other way (dropped by `drop_oldest`) or went back into it (a
    /// replay): the database is the only answer until the next commit.
    pub fn forget(&mut self) {
        self.rows.clear();
        self.bytes = 0;
        self.covered_from = 0;
    }

    /// Up to `limit` undelivered rows with seq > `after`, in order — `None` when the tail does
    /// not hold everything from there on and the database must be asked.
    pub fn fetch(&self, after: u64, limit: usize) -> Option<Vec<Row>> {
        if self.covered_from == 0 || after.saturating_add(1) < self.covered_from {
            return None;
        }
        let start = self.rows.partition_point(|r| r.seq <= after);
        Some(self.rows.range(start..).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64) -> Row {
        Row {
            seq,
            id: format!("id-{seq}").into(),
            source: "s".into(),
            topic: "t".into(),
            payload: vec![b'x'; 100].into(),
        }
    }

    fn seqs(rows: &[Row]) -> Vec<u64> {
        rows.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn an_empty_tail_sends_every_fetch_to_the_database() {
        let t = Tail::default();
        assert!(t.fetch(0, 10).is_none());
        assert!(t.fetch(41, 10).is_none());
    }

    #[test]
    fn a_publisher_that_keeps_up_is_served_from_memory() {
        let mut t = Tail::default();
        t.committed(5, vec![row(5), row(6), row(7)]);
        assert_eq!(seqs(&t.fetch(4, 10).unwrap()), vec![5, 6, 7]);
        assert_eq!(seqs(&t.fetch(5, 1).unwrap()), vec![6]);
        // Caught up: nothing more, and that is a true answer.
        assert_eq!(t.fetch(7, 10).unwrap(), Vec::new());
        // Rows before the coverage (a rewind after a reconnect) come from the database.
        assert!(t.fetch(3, 10).is_none());
        assert!(t.fetch(0, 10).is_none());
    }

    #[test]
    fn delivered_rows_are_not_fetched_again() {
        let mut t = Tail::default();
        t.committed(1, vec![row(1), row(2), row(3), row(4)]);
        t.delivered(&[1, 3]);
        assert_eq!(seqs(&t.fetch(0, 10).unwrap()), vec![2, 4]);
        t.delivered(&[2, 4]);
        assert_eq!(t.fetch(0, 10).unwrap(), Vec::new());
        // Coverage stays: the next commit continues it.
        t.committed(5, vec![row(5)]);
        assert_eq!(seqs(&t.fetch(0, 10).unwrap()), vec![5]);
    }

    #[test]
    fn acknowledgements_out_of_order_or_of_rows_gone_leave_the_rest() {
        let mut t = Tail::default();
        t.committed(5, vec![row(5), row(6), row(7), row(8)]);
        t.delivered(&[8, 3, 6, 5]);
        assert_eq!(seqs(&t.fetch(4, 10).unwrap()), vec![7]);
        assert_eq!(t.bytes, 100);
        t.delivered(&[7, 7]);
        assert_eq!((t.fetch(4, 10).unwrap(), t.bytes), (Vec::new(), 0));
        t.committed(9, vec![row(9)]);
        assert_eq!(seqs(&t.fetch(4, 10).unwrap()), vec![9]);
    }

    #[test]
    fn rows_beyond_the_bound_leave_memory_and_the_coverage_moves_up() {
        let mut t = Tail::default();
        let n = MAX_ROWS as u64 + 10;
        t.committed(1, (1..=n).map(row).collect());
        assert!(t.fetch(0, 10).is_none());
        assert!(t.fetch(9, 10).is_none());
        assert_eq!(seqs(&t.fetch(10, 2).unwrap()), vec![11, 12]);
        assert_eq!(t.rows.len(), MAX_ROWS);
        let mut big = row(n + 1);
        big.payload = vec![0; MAX_BYTES].into();
        t.committed(n + 1, vec![big]);
        assert!(t.bytes <= MAX_BYTES);
        assert!(t.fetch(n - 1, 10).is_none());
        assert_eq!(seqs(&t.fetch(n, 10).unwrap()), vec![n + 1]);
    }

    #[test]
    fn deliveries_in_any_order_leave_exactly_their_rows() {
        let mut t = Tail::default();
        t.committed(1, (1..=20).map(row).collect());
        t.delivered(&[9, 3, 3, 20, 1, 42, 10]);
        let left: Vec<u64> = (1..=20)
            .filter(|s| ![1, 3, 9, 10, 20].contains(s))
            .collect();
        assert_eq!(seqs(&t.fetch(0, 100).unwrap()), left);
        assert_eq!(t.bytes, left.len() * 100);
        t.delivered(&[]);
        assert_eq!(t.fetch(0, 100).unwrap().len(), left.len());
    }

    #[test]
    fn after_forget_the_database_answers_until_the_next_commit() {
        let mut t = Tail::default();
        t.committed(1, vec![row(1), row(2)]);
        t.forget();
        assert!(t.fetch(2, 10).is_none());
        t.committed(3, vec![row(3)]);
        assert!(t.fetch(1, 10).is_none());
        assert_eq!(seqs(&t.fetch(2, 10).unwrap()), vec![3]);
    }

    #[test]
    fn a_commit_that_took_nothing_new_keeps_the_coverage() {
        let mut t = Tail::default();
        t.committed(1, vec![row(1)]);
        // A commit of repeated handovers only: no rows, same next seq.
        t.committed(2, Vec::new());
        assert_eq!(seqs(&t.fetch(0, 10).unwrap()), vec![1]);
    }
}
