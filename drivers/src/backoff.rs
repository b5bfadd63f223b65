//! Exponential reconnect backoff with jitter, shared by every reconnecting loop (scanner TCP
//! client, MQTT publisher, PLC connections).

use std::time::Duration;

use rand::Rng;

/// Delays that double from `min` to `max`, each drawn at random from its upper half so that
/// fifty gateways that lost the same broker do not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff between `min` and `max` (`min` is raised to 1 ms, `max` to `min`).
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            current: min,
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = ceiling / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
        (half + Duration::from_millis(jitter)).max(self.min.min(ceiling))
    }

    /// Back to the shortest delay, after a connection succeeded.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_maximum_and_stay_within_bounds() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut last_ceiling = Duration::ZERO;
        for i in 0..20 {
            let d = b.next_delay();
            let ceiling =
                (Duration::from_millis(100) * 2u32.pow(i.min(10))).min(Duration::from_secs(2));
            assert!(d <= ceiling, "delay {d:?} above {ceiling:?}");
            assert!(d >= ceiling / 2, "delay {d:?} below half of {ceiling:?}");
            last_ceiling = ceiling;
        }
        assert_eq!(last_ceiling, Duration::from_secs(2));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
