//! Double-read detection: the same code seen again on the same source within a window.
//!
//! Each sighting is kept once, in arrival order (a ring that also expires them), and a hash
//! table of 8-byte positions into that ring finds a code's latest sighting. At the bound of
//! [`MAX_REMEMBERED`] codes this is ~1.2 MB (the ring 0.5 MiB, the codes ~0.5 MB, the table
//! 0.15–0.3 MB), where a map from code to time beside a queue of (time, code) held every code
//! twice and took ~3 MB, all of it kept for good once a burst had filled it.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

/// Most codes remembered per source; older ones are forgotten first. Bounds memory.
const MAX_REMEMBERED: usize = 10_000;

/// Below this many slots the ring and the table are not shrunk after a burst.
const KEEP_CAPACITY: usize = 1024;

/// A code and when it was seen.
#[derive(Debug)]
struct Sighting {
    at: Instant,
    code: Box<[u8]>,
}

/// Remembers recent codes of one source.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    /// Most sightings kept ([`MAX_REMEMBERED`]).
    bound: usize,
    /// Sightings in the order they happened. The front one has position `expired`, the next
    /// `expired + 1`, and so on: positions stay valid while the ring moves.
    ring: VecDeque<Sighting>,
    /// Sightings dropped from the front so far.
    expired: u64,
    /// The position of each remembered code's latest sighting, hashed by the code.
    latest: HashTable<u64>,
    hasher: std::hash::RandomState,
}

impl Dedup {
    /// A detector with the given window.
    pub fn new(window: Duration) -> Self {
        Self::bounded(window, MAX_REMEMBERED)
    }

    fn bounded(window: Duration, bound: usize) -> Self {
        Dedup {
            window,
            bound,
            ring: VecDeque::new(),
            expired: 0,
            latest: HashTable::new(),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Records `code` seen at `now`; true when it was already seen less than `window` ago.
    pub fn is_double_read(&mut self, code: &[u8], now: Instant) -> bool {
        self.expire(now);
        let hash = self.hasher.hash_one(code);
        let position = self.expired + self.ring.len() as u64;
        let (ring, expired) = (&self.ring, self.expired);
        let double = match self
            .latest
            .find_mut(hash, |&p| &*sighting(ring, expired, p).code == code)
        {
            Some(latest) => {
                let seen = sighting(ring, expired, *latest).at;
                *latest = position;
                now.duration_since(seen) < self.window
            }
            None => {
                let rehash = rehasher(ring, expired, &self.hasher);
                self.latest.insert_unique(hash, position, rehash);
                false
            }
        };
        self.ring.push_back(Sighting {
            at: now,
            code: code.into(),
        });
        double
    }

    /// Forgets sightings older than the window, and the oldest beyond the bound.
    fn expire(&mut self, now: Instant) {
        while let Some(front) = self.ring.front() {
            if now.duration_since(front.at) < self.window && self.ring.len() < self.bound {
                break;
            }
            let hash = self.hasher.hash_one(&front.code);
            // The code leaves the table only if this was its latest sighting.
            if let Ok(entry) = self.latest.find_entry(hash, |&p| p == self.expired) {
                entry.remove();
            }
            self.ring.pop_front();
            self.expired += 1;
        }
        // After a burst, give the memory back instead of holding the high-water mark.
        if self.ring.capacity() > KEEP_CAPACITY && self.ring.len() * 4 < self.ring.capacity() {
            let keep = (self.ring.len() * 2).max(KEEP_CAPACITY);
            self.ring.shrink_to(keep);
            let rehash = rehasher(&self.ring, self.expired, &self.hasher);
            self.latest.shrink_to(keep, rehash);
        }
    }
}

/// The sighting at `position`, in a ring whose front has position `expired`.
fn sighting(ring: &VecDeque<Sighting>, expired: u64, position: u64) -> &Sighting {
    &ring[(position - expired) as usize]
}

/// The table's hash of an entry (a position): its code's, for the table to move it when it
/// grows or shrinks.
fn rehasher<'a>(
    ring: &'a VecDeque<Sighting>,
    expired: u64,
    hasher: &'a std::hash::RandomState,
) -> impl Fn(&u64) -> u64 + 'a {
    move |&p| hasher.hash_one(&sighting(ring, expired, p).code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_code_inside_the_window_is_a_double_read() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(2));
        assert!(!d.is_double_read(b"A", t0));
        assert!(d.is_double_read(b"A", t0 + Duration::from_millis(500)));
        assert!(!d.is_double_read(b"B", t0 + Duration::from_millis(600)));
        // The window runs from the latest sighting.
        assert!(d.is_double_read(b"A", t0 + Duration::from_millis(2400)));
        assert!(!d.is_double_read(b"A", t0 + Duration::from_millis(4500)));
    }

    #[test]
    fn memory_stays_bounded() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(3600));
        for i in 0..(MAX_REMEMBERED + 500) {
            d.is_double_read(format!("code-{i}").as_bytes(), t0);
        }
        assert!(d.ring.len() <= MAX_REMEMBERED);
        assert!(d.latest.len() <= MAX_REMEMBERED);
        // The oldest were forgotten, the newest are still known.
        assert!(!d.is_double_read(b"code-0", t0));
        assert!(d.is_double_read(format!("code-{}", MAX_REMEMBERED + 499).as_bytes(), t0));
    }

    #[test]
    fn memory_is_given_back_after_a_burst() {
        let t0 = Instant::now();
        let mut d = Dedup::new(Duration::from_secs(1));
        for i in 0..MAX_REMEMBERED {
            d.is_double_read(format!("burst-{i}").as_bytes(), t0);
        }
        let burst = d.ring.capacity();
        assert!(burst >= MAX_REMEMBERED);
        // A second later the burst has expired: one code at a time again.
        assert!(!d.is_double_read(b"calm", t0 + Duration::from_secs(2)));
        assert!(d.ring.capacity() < burst / 4, "{}", d.ring.capacity());
        assert!(d.latest.capacity() < burst / 4, "{}", d.latest.capacity());
        assert!(d.is_double_read(b"calm", t0 + Duration::from_millis(2500)));
    }

    /// The ring and its table against the plain model of the rules (every sighting kept in a
    /// list): the same verdict at every step of random sequences over a few codes, in rounds
    /// where the window forgets first and rounds where the bound does.
    #[test]
    fn agrees_with_the_plain_rules() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let window = Duration::from_millis(100);
        let (mut by_window, mut by_bound, mut doubles) = (0, 0, 0);
        for round in 0..40 {
            let bound = [4, 16, 64, 1000][round % 4];
            let max_step = [1, 5, 30, 120][round / 4 % 4];
            let t0 = Instant::now();
            let mut d = Dedup::bounded(window, bound);
            let mut seen: Vec<(Instant, Vec<u8>)> = Vec::new();
            let mut now = t0;
            for _ in 0..5_000 {
                now += Duration::from_millis(rng.random_range(0..=max_step));
                let code = format!("c{}", rng.random_range(0..12)).into_bytes();
                // The model: forget by age, then by the bound, then look for the code.
                let young = seen
                    .iter()
                    .position(|(t, _)| now.duration_since(*t) < window)
                    .unwrap_or(seen.len());
                let room = seen.len().saturating_sub(bound - 1);
                by_window += usize::from(young > room);
                by_bound += usize::from(room > young);
                seen.drain(..young.max(room));
                let expected = seen.iter().rev().any(|(_, c)| *c == code);
                doubles += usize::from(expected);
                seen.push((now, code.clone()));
                assert_eq!(d.is_double_read(&code, now), expected, "round {round}");
                assert!(d.ring.len() <= bound && d.latest.len() <= bound);
            }
        }
        // Every rule was exercised.
        assert!(by_window > 1000 && by_bound > 1000 && doubles > 1000);
    }
}
