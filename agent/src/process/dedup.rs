//! Double-read detection: the same code seen again on the same source within a window.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Most codes remembered per source; older ones are forgotten first. Bounds memory.
const MAX_REMEMBERED: usize = 10_000;

/// Remembers recent codes of one source.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    /// Last time each code was seen.
    last_seen: HashMap<Vec<u8>, Instant>,
    /// Codes in the order they were seen, to expire them.
    order: VecDeque<(Instant, Vec<u8>)>,
}

impl Dedup {
    /// A detector with the given window.
    pub fn new(window: Duration) -> Self {
        Dedup {
            window,
            last_seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `code` seen at `now`; true when it was already seen less than `window` ago.
    pub fn is_double_read(&mut self, code: &[u8], now: Instant) -> bool {
        while let Some((t, _)) = self.order.front() {
            if now.duration_since(*t) < self.window && self.order.len() < MAX_REMEMBERED {
                break;
            }
            let (t, old) = self.order.pop_front().expect("front exists");
            if self.last_seen.get(&old) == Some(&t) {
                self.last_seen.remove(&old);
            }
        }
        let double = self
            .last_seen
            .get(code)
            .is_some_and(|t| now.duration_since(*t) < self.window);
        self.last_seen.insert(code.to_vec(), now);
        self.order.push_back((now, code.to_vec()));
        double
    }
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
        assert!(d.order.len() <= MAX_REMEMBERED + 1);
        assert!(d.last_seen.len() <= MAX_REMEMBERED + 1);
    }
}
