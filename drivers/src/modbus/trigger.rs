//! Triggers of polled tags, pure: when a value seen at one poll calls for an event.
//!
//! - `change`: the value differs from the one seen at the previous poll.
//! - `rising_edge`: the value went from false/0 to true/non-zero.
//! - `counter`: an integer the PLC increments once per item. An increment by one is an event.
//!   An increment by more than one is an event too, preceded by an alarm naming how many counts
//!   were skipped (items the agent never saw). A decrease is a counter reset or wrap: an event
//!   when the new value is not 0, never an alarm. 0 is "no item" and never an event, so a PLC
//!   that wraps its counter should go from its maximum to 1.
//!
//! The first value seen after start or reconnect is only remembered: what happened while the
//! agent was not looking cannot be told from one value. A pulse shorter than the poll interval
//! can be missed by `change` and `rising_edge`; `counter` cannot miss an item, only report it
//! skipped. Prefer the handshake (or at least a counter) for codes.

use serde::Deserialize;

use super::codec::Value;

/// A tag's `trigger = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Change,
    RisingEdge,
    Counter,
}

impl Trigger {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Change => "change",
            Trigger::RisingEdge => "rising_edge",
            Trigger::Counter => "counter",
        }
    }
}

/// What one observation calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// Nothing.
    No,
    /// An event.
    Event,
    /// A counter skipped `missed` counts going from `from` to `to`: an alarm, then an event.
    Skipped { missed: u128, from: i128, to: i128 },
}

/// One tag's trigger and the value it saw last.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    trigger: Trigger,
    last: Option<Value>,
}

impl Detector {
    pub fn new(trigger: Trigger) -> Detector {
        Detector {
            trigger,
            last: None,
        }
    }

    /// Forgets the last value (after a reconnect): the next value is a new baseline.
    pub fn reset(&mut self) {
        self.last = None;
    }

    /// Feeds the value read at this poll.
    pub fn observe(&mut self, value: &Value) -> Fired {
        let Some(last) = self.last.replace(value.clone()) else {
            return Fired::No;
        };
        match self.trigger {
            Trigger::Change if last != *value => Fired::Event,
            Trigger::RisingEdge if !last.is_true() && value.is_true() => Fired::Event,
            Trigger::Counter => match (last.as_integer(), value.as_integer()) {
                (Some(from), Some(to)) => counter_step(from, to),
                _ => Fired::No,
            },
            _ => Fired::No,
        }
    }
}

/// The counter rule of the module documentation.
fn counter_step(from: i128, to: i128) -> Fired {
    if to == 0 || to == from {
        Fired::No
    } else if to == from + 1 || to < from {
        Fired::Event
    } else {
        Fired::Skipped {
            missed: (to - from - 1) as u128,
            from,
            to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(trigger: Trigger, values: &[Value]) -> Vec<Fired> {
        let mut d = Detector::new(trigger);
        values.iter().map(|v| d.observe(v)).collect()
    }

    fn u(v: u64) -> Value {
        Value::Unsigned(v)
    }

    #[test]
    fn change_fires_on_every_difference_but_not_on_the_baseline() {
        let t = |s: &str| Value::Text(s.as_bytes().to_vec());
        assert_eq!(
            run(
                Trigger::Change,
                &[t("A"), t("A"), t("B"), t("B"), t(""), t("A")]
            ),
            [
                Fired::No,
                Fired::No,
                Fired::Event,
                Fired::No,
                Fired::Event,
                Fired::Event
            ]
        );
        assert_eq!(
            run(Trigger::Change, &[u(1), u(2), u(1)]),
            [Fired::No, Fired::Event, Fired::Event]
        );
    }

    #[test]
    fn rising_edge_fires_only_from_false_to_true() {
        let b = Value::Bool;
        assert_eq!(
            run(
                Trigger::RisingEdge,
                &[b(true), b(false), b(true), b(true), b(false), b(true)]
            ),
            [
                Fired::No,
                Fired::No,
                Fired::Event,
                Fired::No,
                Fired::No,
                Fired::Event
            ]
        );
        // Numbers: zero is false.
        assert_eq!(
            run(Trigger::RisingEdge, &[u(0), u(5), u(7), u(0), u(1)]),
            [Fired::No, Fired::Event, Fired::No, Fired::No, Fired::Event]
        );
    }

    #[test]
    fn counter_increments_skips_resets_and_wraps() {
        assert_eq!(
            run(Trigger::Counter, &[u(10), u(11), u(11), u(14), u(15)]),
            [
                Fired::No,
                Fired::Event,
                Fired::No,
                Fired::Skipped {
                    missed: 2,
                    from: 11,
                    to: 14
                },
                Fired::Event
            ]
        );
        // Reset to 0 (no item), then 1; and a wrap from the maximum to 1.
        assert_eq!(
            run(Trigger::Counter, &[u(57), u(0), u(1), u(65535), u(1)]),
            [
                Fired::No,
                Fired::No,
                Fired::Event,
                Fired::Skipped {
                    missed: 65533,
                    from: 1,
                    to: 65535
                },
                Fired::Event
            ]
        );
        // Signed counters.
        assert_eq!(
            run(Trigger::Counter, &[Value::Signed(-1), Value::Signed(1)]),
            [
                Fired::No,
                Fired::Skipped {
                    missed: 1,
                    from: -1,
                    to: 1
                }
            ]
        );
    }

    #[test]
    fn reset_makes_the_next_value_a_baseline() {
        let mut d = Detector::new(Trigger::Counter);
        assert_eq!(d.observe(&u(1)), Fired::No);
        assert_eq!(d.observe(&u(2)), Fired::Event);
        d.reset();
        assert_eq!(d.observe(&u(9)), Fired::No);
        assert_eq!(d.observe(&u(10)), Fired::Event);
    }
}
