//! The code handover with a PLC, as a pure state machine: it is told what was read and what the
//! agent decided, and answers with what to do next. It never touches a connection.
//!
//! ```text
//!            ┌──────────── counter == ack ─────────────┐
//!  Sync ──► Idle ──poll: counter ≠ ack──► Presented ──block read──► Submitted
//!            ▲                              ▲                          │ verdict
//!            │                              └── NotCommitted (retry) ──┤
//!            └────────── ack written ◄── Acking ◄── Committed/Duplicate┘
//! ```
//!
//! - A code is presented when the counter differs from the ack register. The block (counter,
//!   code, length) is read in one request; the counter value read *with* the code is the one
//!   acknowledged.
//! - The code is submitted with `handover = "<counter>:<hash of the code>"`. The agent keeps
//!   the last committed handover per source: an agent that committed a code and died before
//!   writing the ack finds the same counter and code presented after its restart, and the
//!   verdict repeats the original commit instead of storing the code twice. The hash keeps a
//!   PLC that restarted its counter from being taken for a repeat when it presents a new code
//!   under an old counter value.
//! - The ack is written only after `Committed` (result `accepted` when valid, `rejected` when
//!   committed as invalid or no-read) or `Duplicate` (accepted). `NotCommitted` writes nothing:
//!   the code stays presented and is read and submitted again after a pause.
//! - The counter skipping values (ack 5, counter 8) means codes were presented and replaced
//!   before the agent read them: an alarm `counter_skipped` goes first, once per counter value.
//! - Counter 0 is "no code": with ack ≠ 0 the agent writes ack = 0 (resynchronisation), and
//!   counter = ack = 0 is the idle state a PLC can reset both registers to.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::config::HandshakeConfig;
use crate::reading::{Reading, ReadingKind, Verdict};

/// Where the handover stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Counter and ack unknown: at start and after every reconnect.
    Unsynced,
    /// Counter == ack: waiting for the PLC.
    Idle { ack: u16 },
    /// Counter ≠ ack: the block must be read.
    Presented { ack: u16, counter: u16 },
    /// The code went to the agent; waiting for its verdict.
    Submitted { ack: u16, counter: u16 },
    /// Committed: writing the ack (and result).
    Acking { counter: u16 },
    /// Counter 0 with ack ≠ 0: writing ack 0.
    Resetting,
}

/// One register write: `values` from `address` (FC 6 for one value, FC 16 for more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterWrite {
    pub address: u16,
    pub values: Vec<u16>,
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Read the counter and the ack register ([`Handshake::on_sync`]).
    Sync,
    /// Wait for the next poll, read the counter ([`Handshake::on_poll`]).
    Poll,
    /// Read the block and the context tags now ([`Handshake::on_block`]).
    ReadBlock,
    /// Submit these readings in order; the last is the code, whose verdict goes to
    /// [`Handshake::on_verdict`].
    Submit(Vec<Reading>),
    /// Perform these writes in order, then [`Handshake::on_written`].
    Write(Vec<RegisterWrite>),
    /// The code was not committed: pause, then read the block again.
    Retry,
}

/// What one block read found.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The counter, read in the same request as the code.
    pub counter: u16,
    /// The code's bytes (cut at the length register or the first NUL).
    pub code: Vec<u8>,
    /// The context tags, by name.
    pub attributes: BTreeMap<String, String>,
    pub captured_at: SystemTime,
}

/// The handover of one source.
#[derive(Debug, Clone)]
pub struct Handshake {
    config: HandshakeConfig,
    state: State,
    /// The counter value a `counter_skipped` alarm was raised for, so that a retried code does
    /// not raise it again.
    alarmed: Option<u16>,
}

impl Handshake {
    pub fn new(config: HandshakeConfig) -> Handshake {
        Handshake {
            config,
            state: State::Unsynced,
            alarmed: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// After connecting (or reconnecting): the registers must be read again, since the PLC may
    /// have been reset meanwhile.
    pub fn start(&mut self) -> Action {
        self.state = State::Unsynced;
        Action::Sync
    }

    /// The counter and the ack register as read after (re)connecting.
    pub fn on_sync(&mut self, counter: u16, ack: u16) -> Action {
        self.decide(ack, counter)
    }

    /// The counter as read at a poll.
    pub fn on_poll(&mut self, counter: u16) -> Action {
        match self.state {
            State::Idle { ack } => self.decide(ack, counter),
            // Polls only happen while idle; anything else re-synchronises.
            _ => self.start(),
        }
    }

    fn decide(&mut self, ack: u16, counter: u16) -> Action {
        if counter == ack {
            self.state = State::Idle { ack };
            Action::Poll
        } else if counter == 0 {
            self.state = State::Resetting;
            Action::Write(vec![RegisterWrite {
                address: self.config.ack.offset,
                values: vec![0],
            }])
        } else {
            self.state = State::Presented { ack, counter };
            Action::ReadBlock
        }
    }

    /// The block as read: the readings to submit (an alarm first when the counter skipped).
    pub fn on_block(&mut self, block: Block) -> Action {
        let State::Presented { ack, .. } = self.state else {
            return self.start();
        };
        let counter = block.counter;
        if counter == ack || counter == 0 {
            // The PLC withdrew the code or reset between the poll and the block read.
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
            Verdict::Committed { valid: true, .. } | Verdict::Duplicate => self.config.accepted,
            Verdict::Committed { valid: false, .. } => self.config.rejected,
            Verdict::NotCommitted { .. } => {
                self.state = State::Presented { ack, counter };
                return Action::Retry;
            }
        };
        self.state = State::Acking { counter };
        Action::Write(ack_writes(&self.config, counter, result))
    }

    /// The writes of [`Action::Write`] are done.
    pub fn on_written(&mut self) -> Action {
        match self.state {
            State::Acking { counter } => self.state = State::Idle { ack: counter },
            State::Resetting => self.state = State::Idle { ack: 0 },
            _ => return self.start(),
        }
        Action::Poll
    }

    /// After a [`Action::Retry`] pause: read the block again.
    pub fn on_retry(&mut self) -> Action {
        match self.state {
            State::Presented { .. } => Action::ReadBlock,
            _ => self.start(),
        }
    }
}

/// Codes presented and never read between the last acknowledged counter and `counter`. A PLC
/// counts 1, 2, …, wraps from 65535 to 1 and restarts at 1 after a reset, so a counter below
/// the ack counts from 0.
pub fn skipped(ack: u16, counter: u16) -> u16 {
    if counter > ack {
        counter - ack - 1
    } else {
        counter.saturating_sub(1)
    }
}

/// `"<counter>:<FNV-1a 64 of the code, hex>"`: the same code presented under the same counter
/// gives the same key, in every process.
pub fn handover_key(counter: u16, code: &[u8]) -> String {
    let hash = code.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{counter}:{hash:016x}")
}

/// The writes that acknowledge `counter` with `result`: one FC 16 write when the result
/// register sits next to the ack, otherwise the result first and the ack last, so that a PLC
/// that sees the ack always finds the result already there.
pub fn ack_writes(config: &HandshakeConfig, counter: u16, result: u16) -> Vec<RegisterWrite> {
    let ack = config.ack.offset;
    let single = |address, values| RegisterWrite { address, values };
    match config.result.map(|r| r.offset) {
        None => vec![single(ack, vec![counter])],
        Some(r) if ack.checked_add(1) == Some(r) => vec![single(ack, vec![counter, result])],
        Some(r) if r.checked_add(1) == Some(ack) => vec![single(r, vec![result, counter])],
        Some(r) => vec![single(r, vec![result]), single(ack, vec![counter])],
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
