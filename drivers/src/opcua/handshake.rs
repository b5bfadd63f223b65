//! The code handover over OPC UA, as a pure state machine: the same protocol as the Modbus
//! handshake (drivers/src/modbus/README.md), driven by data changes instead of polls. It is told
//! what the subscription reported, what was read and what the agent decided, and answers with
//! what to do next. It never touches a session.
//!
//! ```text
//!              ┌───────────────── counter == ack ─────────────────┐
//!  Sync ──► Idle ──data change: counter ≠ ack──► Presented ──read──► Submitted
//!              ▲                                   ▲                  │ verdict
//!              │                                   └─ NotCommitted ───┤ (retry)
//!              └──── ack written ◄── Acking ◄── Committed/Duplicate ──┘
//! ```
//!
//! - Counter, code and context nodes are read in one Read request, so the code belongs to the
//!   counter value read with it; that value is the one acknowledged.
//! - The code goes to the agent with `handover = "<counter>:<hash of the code>"`: an agent that
//!   committed a code and died before the ack write finds it presented again after its restart,
//!   and the verdict repeats the original commit (same seq) instead of storing it twice.
//! - The ack is written only after `Committed` or `Duplicate`; `NotCommitted` writes nothing
//!   and the code is read and submitted again after a pause.
//! - Data changes that arrive while a handover is in progress are remembered (the newest
//!   counter); once the ack is written the newest counter decides what comes next.
//! - A counter that skipped values raises a `counter_skipped` alarm first; counter 0 with
//!   ack ≠ 0 is answered with ack = 0 (resynchronisation).
//! - A data change may be older than the last read: the subscription's first notification
//!   reports the value sampled when it was created, and can arrive after a Sync read that saw a
//!   newer one. So a data change is never acted on as is: counter and ack are read back first,
//!   a reset (0) included.
//! - After every (re)connect the machine starts over with a Sync read of counter and ack, so a
//!   counter that changed while the connection was down is not missed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::reading::{Reading, ReadingKind, Verdict};

/// Where the handover stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Counter and ack unknown: at start and after every reconnect.
    Unsynced,
    /// Counter == ack: waiting for a data change.
    Idle { ack: u64 },
    /// Counter ≠ ack: code and context must be read.
    Presented { ack: u64, counter: u64 },
    /// The code went to the agent; waiting for its verdict.
    Submitted { ack: u64, counter: u64 },
    /// Committed: writing the ack (and result).
    Acking { counter: u64 },
    /// Counter 0 with ack ≠ 0: writing ack 0.
    Resetting,
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Read counter and ack ([`Handshake::on_sync`]).
    Sync,
    /// Nothing to do until the next data change ([`Handshake::on_counter`]).
    Wait,
    /// Read counter, code and context in one request ([`Handshake::on_block`]).
    Read,
    /// Submit these readings in order; the last is the code, whose verdict goes to
    /// [`Handshake::on_verdict`].
    Submit(Vec<Reading>),
    /// Write `result` (if configured) and then `ack`, in one request; then
    /// [`Handshake::on_written`].
    Write { ack: u64, result: Option<i64> },
    /// The code was not committed: pause, then [`Handshake::on_retry`].
    Retry,
}

/// What one read of counter, code and context found.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub counter: u64,
    pub code: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub captured_at: SystemTime,
}

/// The result values written with the ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Results {
    /// Whether a result node is configured.
    pub enabled: bool,
    pub accepted: i64,
    pub rejected: i64,
}

/// The handover of one source.
#[derive(Debug, Clone)]
pub struct Handshake {
    results: Results,
    state: State,
    /// The newest counter value a data change reported.
    latest: Option<u64>,
    /// The counter value a `counter_skipped` alarm was raised for.
    alarmed: Option<u64>,
}

impl Handshake {
    pub fn new(results: Results) -> Handshake {
        Handshake {
            results,
            state: State::Unsynced,
            latest: None,
            alarmed: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// After connecting (or reconnecting, or a failed request): read counter and ack again.
    pub fn start(&mut self) -> Action {
        self.state = State::Unsynced;
        self.latest = None;
        Action::Sync
    }

    /// Counter and ack as read.
    pub fn on_sync(&mut self, counter: u64, ack: u64) -> Action {
        self.decide(ack, counter)
    }

    /// A data change of the counter node.
    pub fn on_counter(&mut self, counter: u64) -> Action {
        self.latest = Some(counter);
        match self.state {
            State::Idle { ack } => self.changed(ack, counter),
            // Busy (or not synchronised yet): the newest value is looked at afterwards.
            _ => Action::Wait,
        }
    }

    /// A counter a data change reported, which may be stale: anything but the ack is read
    /// back (a reset to 0 too) before it is acted on.
    fn changed(&mut self, ack: u64, counter: u64) -> Action {
        if counter == ack {
            self.state = State::Idle { ack };
            Action::Wait
        } else {
            self.state = State::Presented { ack, counter };
            Action::Read
        }
    }

    fn decide(&mut self, ack: u64, counter: u64) -> Action {
        if counter == ack {
            self.state = State::Idle { ack };
            Action::Wait
        } else if counter == 0 {
            self.state = State::Resetting;
            Action::Write {
                ack: 0,
                result: None,
            }
        } else {
            self.state = State::Presented { ack, counter };
            Action::Read
        }
    }

    /// Counter, code and context as read: the readings to submit.
    pub fn on_block(&mut self, block: Block) -> Action {
        let State::Presented { ack, .. } = self.state else {
            return self.start();
        };
        let counter = block.counter;
        if counter == ack || counter == 0 {
            // The PLC withdrew the code or reset between the data change and the read.
            return self.decide(ack, counter);
        }
        let mut readings = Vec::with_capacity(2);
        let missed = skipped(ack, counter);
        if missed > 0 && self.alarmed != Some(counter) {
            self.alarmed = Some(counter);
            let mut alarm = Reading::now(ReadingKind::Alarm {
                code: "counter_skipped".into(),
                message: format!(
                    "the PLC's handshake counter went from {ack} (last acknowledged) to \
                     {counter}: {missed} code(s) were presented and replaced before the agent \
                     read them"
                ),
            });
            alarm.captured_at = block.captured_at;
            alarm.attributes = BTreeMap::from([
                ("last_ack".to_string(), ack.to_string()),
                ("counter".to_string(), counter.to_string()),
                ("skipped".to_string(), missed.to_string()),
            ]);
            readings.push(alarm);
        }
        let kind = if block.code.is_empty() {
            ReadingKind::NoRead
        } else {
            ReadingKind::Code(block.code.clone())
        };
        readings.push(Reading {
            captured_at: block.captured_at,
            kind,
            attributes: block.attributes,
            handover: Some(handover_key(counter, &block.code)),
        });
        self.state = State::Submitted { ack, counter };
        Action::Submit(readings)
    }

    /// The code's verdict: the ack to write, or a retry.
    pub fn on_verdict(&mut self, verdict: &Verdict) -> Action {
        let State::Submitted { ack, counter } = self.state else {
            return self.start();
        };
        let result = match verdict {
            Verdict::Committed { valid: true, .. } | Verdict::Duplicate => self.results.accepted,
            Verdict::Committed { valid: false, .. } => self.results.rejected,
            Verdict::NotCommitted { .. } => {
                self.state = State::Presented { ack, counter };
                return Action::Retry;
            }
        };
        self.state = State::Acking { counter };
        Action::Write {
            ack: counter,
            result: self.results.enabled.then_some(result),
        }
    }

    /// The write of [`Action::Write`] succeeded.
    pub fn on_written(&mut self) -> Action {
        let ack = match self.state {
            State::Acking { counter } => counter,
            State::Resetting => 0,
            _ => return self.start(),
        };
        match self.latest {
            Some(latest) => self.changed(ack, latest),
            None => {
                self.state = State::Idle { ack };
                Action::Wait
            }
        }
    }

    /// After a [`Action::Retry`] pause: read again.
    pub fn on_retry(&mut self) -> Action {
        match self.state {
            State::Presented { .. } => Action::Read,
            _ => self.start(),
        }
    }
}

/// Codes presented and never read between the last acknowledged counter and `counter`. A PLC
/// counts 1, 2, … and restarts at 1 after a reset or a wrap, so a counter below the ack counts
/// from 0.
pub fn skipped(ack: u64, counter: u64) -> u64 {
    if counter > ack {
        counter - ack - 1
    } else {
        counter.saturating_sub(1)
    }
}

/// `"<counter>:<FNV-1a 64 of the code, hex>"`, the same key the Modbus handshake uses: the
/// same code presented under the same counter gives the same key, in every process.
pub fn handover_key(counter: u64, code: &[u8]) -> String {
    let hash = code.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{counter}:{hash:016x}")
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
