//! Cutting a scanner's byte stream into frames: pure code, no I/O, no clock.
//!
//! A [`Framer`] takes bytes as they arrive (a read may hold part of a code, several codes, or a
//! terminator split in two) and returns the complete frames. The async shell around it owns the
//! idle timer and calls [`Framer::flush_idle`] when no byte arrived for `idle_timeout`.
//! A [`Classifier`] then decides what each frame is: a code, a no-read, or a command reply to
//! drop.
//!
//! Rules:
//! - A frame ends with the terminator (or ETX in STX/ETX mode), the idle timeout, or the end of
//!   the stream (the shell calls [`Framer::flush_idle`] for both).
//! - CR and LF at either end of a frame are removed, so a reader sending CR LF to a source
//!   configured with `cr` still yields clean codes. A frame left empty is not a scan and is
//!   dropped (a bare CRLF is a keep-alive or a double suffix, never a code).
//! - In STX/ETX mode, bytes outside STX…ETX are discarded and the terminator is not used.
//! - A frame longer than `max_frame` is reported at once as [`Frame::Malformed`] holding its
//!   first `max_frame` bytes; the rest is discarded up to the next terminator (ETX / STX in
//!   STX/ETX mode) or the idle timeout, where framing resumes.
//! - When the shell learns that input was lost ([`Framer::mark_lost`], e.g. the kernel dropped
//!   a keyboard wedge's key events), the frame being read, or the next one if none is, is
//!   reported as [`Frame::Malformed`] with that reason, even if it ends up empty: its bytes are
//!   incomplete, and a code missing a few characters can still look valid.

use crate::reading::ReadingKind;

use super::config::FramingConfig;

/// Start of text: opens a frame in STX/ETX mode.
pub const STX: u8 = 0x02;
/// End of text: closes a frame in STX/ETX mode.
pub const ETX: u8 = 0x03;

/// One frame cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame with its framing removed. Never empty.
    Data(Vec<u8>),
    /// Input that is not a well-formed frame; `bytes` holds at most `max_frame` bytes.
    Malformed { bytes: Vec<u8>, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a frame into `buf` (plain mode), or inside STX…ETX (STX/ETX mode).
    Collecting,
    /// STX/ETX mode only: between frames, waiting for STX.
    Outside,
    /// The current frame was too long and has been reported; dropping bytes until its end.
    /// In plain mode `buf` keeps the last few bytes to recognise the terminator.
    Discarding,
}

/// Splits a byte stream into frames. See the module documentation for the rules.
#[derive(Debug, Clone)]
pub struct Framer {
    terminator: Vec<u8>,
    stx_etx: bool,
    max_frame: usize,
    buf: Vec<u8>,
    state: State,
    /// Input was lost: the next frame to complete is malformed, for this reason.
    lost: Option<String>,
}

impl Framer {
    /// A framer ending frames with `terminator` (empty: only by idle timeout), or by STX/ETX
    /// wrapping when `stx_etx` is set, with frames of at most `max_frame` bytes (at least 1).
    pub fn new(terminator: &[u8], stx_etx: bool, max_frame: usize) -> Framer {
        Framer {
            terminator: terminator.to_vec(),
            stx_etx,
            max_frame: max_frame.max(1),
            buf: Vec::new(),
            state: if stx_etx {
                State::Outside
            } else {
                State::Collecting
            },
            lost: None,
        }
    }

    /// Input was lost between the bytes pushed so far and the next ones: the frame in progress
    /// (or, if none is, the next frame) is reported as malformed with `reason`.
    pub fn mark_lost(&mut self, reason: impl Into<String>) {
        self.lost = Some(reason.into());
    }

    /// A framer for a source's framing settings.
    pub fn from_config(config: &FramingConfig) -> Framer {
        Framer::new(
            config.terminator.as_bytes(),
            config.stx_etx,
            config.max_frame,
        )
    }

    /// Feeds the bytes of one read; returns the frames they completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        for &byte in bytes {
            if self.stx_etx {
                self.push_wrapped(byte, &mut frames);
            } else {
                self.push_plain(byte, &mut frames);
            }
        }
        frames
    }

    /// True when bytes are held that the idle timeout would complete or discard: the shell arms
    /// its idle timer only then.
    pub fn is_pending(&self) -> bool {
        match self.state {
            State::Collecting => !self.buf.is_empty() || self.stx_etx,
            State::Outside => false,
            State::Discarding => true,
        }
    }

    /// The idle timeout fired: the partial frame is complete (plain mode) or malformed (an STX
    /// without its ETX). Discarding of an overlong frame ends here.
    pub fn flush_idle(&mut self) -> Option<Frame> {
        let state = self.state;
        let partial = std::mem::take(&mut self.buf);
        self.state = if self.stx_etx {
            State::Outside
        } else {
            State::Collecting
        };
        match state {
            State::Collecting if self.stx_etx => (!partial.is_empty()).then(|| Frame::Malformed {
                bytes: partial,
                reason: self
                    .lost
                    .take()
                    .unwrap_or_else(|| "frame started with STX but no ETX followed".into()),
            }),
            State::Collecting if partial.is_empty() => None,
            // Bytes that may begin a terminator are held back from the length check while
            // they wait for the rest of it; the idle timeout makes them data, so the frame may
            // now be too long.
            State::Collecting if trim_crlf(&partial).len() > self.max_frame => {
                self.buf = partial;
                let frame = self.overlong();
                self.buf.clear();
                Some(frame)
            }
            State::Collecting => self.complete(&partial),
            State::Outside | State::Discarding => None,
        }
    }

    fn push_plain(&mut self, byte: u8, frames: &mut Vec<Frame>) {
        self.buf.push(byte);
        let term = self.terminator.as_slice();
        // Only the terminator's last byte can end it: the other bytes of a frame cost no
        // comparison.
        let at_end = term.last() == Some(&byte) && self.buf.ends_with(term);
        // Bytes at the end that may be the start of a terminator do not count yet; they can
        // only matter once the frame is longer than `max_frame`, or while discarding.
        let partial = match self.state {
            State::Collecting if at_end || self.buf.len() <= self.max_frame => 0,
            _ => partial_terminator(&self.buf, term),
        };
        match self.state {
            State::Collecting if at_end => {
                let term_len = term.len();
                let mut frame = std::mem::take(&mut self.buf);
                frames.extend(self.complete(&frame[..frame.len() - term_len]));
                // The next frame reuses the allocation.
                frame.clear();
                self.buf = frame;
            }
            State::Collecting if self.buf.len() - partial > self.max_frame => {
                frames.push(self.overlong());
                self.buf.drain(..self.buf.len() - partial);
                self.state = State::Discarding;
            }
            State::Collecting | State::Outside => {}
            State::Discarding if at_end => {
                self.buf.clear();
                self.state = State::Collecting;
            }
            State::Discarding => {
                self.buf.drain(..self.buf.len() - partial);
            }
        }
    }

    fn push_wrapped(&mut self, byte: u8, frames: &mut Vec<Frame>) {
        match (self.state, byte) {
            (State::Collecting, STX) => {
                if !self.buf.is_empty() {
                    frames.push(Frame::Malformed {
                        bytes: std::mem::take(&mut self.buf),
                        reason: self.lost.take().unwrap_or_else(|| {
                            "frame interrupted by a new STX before its ETX".into()
                        }),
                    });
                }
            }
            (State::Collecting, ETX) => {
                let frame = std::mem::take(&mut self.buf);
                frames.extend(self.complete(&frame));
                self.state = State::Outside;
            }
            (State::Collecting, _) => {
                self.buf.push(byte);
                if self.buf.len() > self.max_frame {
                    frames.push(self.overlong());
                    self.buf.clear();
                    self.state = State::Discarding;
                }
            }
            (State::Outside | State::Discarding, STX) => self.state = State::Collecting,
            (State::Discarding, ETX) => self.state = State::Outside,
            (State::Outside | State::Discarding, _) => {}
        }
    }

    fn overlong(&mut self) -> Frame {
        // Malformed anyway; a loss inside it does not carry over to the next frame.
        self.lost = None;
        Frame::Malformed {
            bytes: self.buf[..self.max_frame].to_vec(),
            reason: format!("frame longer than {} bytes", self.max_frame),
        }
    }

    /// A complete frame: data, or malformed if input was lost while it was read.
    fn complete(&mut self, bytes: &[u8]) -> Option<Frame> {
        match self.lost.take() {
            Some(reason) => Some(Frame::Malformed {
                bytes: trim_crlf(bytes).to_vec(),
                reason,
            }),
            None => data(bytes),
        }
    }
}

/// Length of the longest end of `buf` that is a proper beginning of `term`.
fn partial_terminator(buf: &[u8], term: &[u8]) -> usize {
    (1..term.len())
        .rev()
        .find(|&len| buf.ends_with(&term[..len]))
        .unwrap_or(0)
}

/// A data frame with CR and LF trimmed from both ends, or nothing if that leaves it empty.
fn data(bytes: &[u8]) -> Option<Frame> {
    let trimmed = trim_crlf(bytes);
    (!trimmed.is_empty()).then(|| Frame::Data(trimmed.to_vec()))
}

/// `bytes` without CR and LF at either end.
fn trim_crlf(bytes: &[u8]) -> &[u8] {
    let is_crlf = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = bytes
        .iter()
        .position(|b| !is_crlf(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_crlf(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// What a frame means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Something to submit to the agent.
    Reading(ReadingKind),
    /// A reply to one of our commands (an `ignore` string): not a scan.
    Ignored(Vec<u8>),
}

/// Sorts frames into codes, no-reads and command replies by exact comparison with the
/// configured `noread` and `ignore` strings.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    noread: Vec<Vec<u8>>,
    ignore: Vec<Vec<u8>>,
}

impl Classifier {
    /// A classifier for these no-read and command-reply strings.
    pub fn new(noread: &[String], ignore: &[String]) -> Classifier {
        let bytes = |list: &[String]| list.iter().map(|s| s.as_bytes().to_vec()).collect();
        Classifier {
            noread: bytes(noread),
            ignore: bytes(ignore),
        }
    }

    /// A classifier for a source's framing settings.
    pub fn from_config(config: &FramingConfig) -> Classifier {
        Classifier::new(&config.noread, &config.ignore)
    }

    /// What `frame` is.
    pub fn classify(&self, frame: Frame) -> Classified {
        match frame {
            Frame::Data(bytes) if self.noread.contains(&bytes) => {
                Classified::Reading(ReadingKind::NoRead)
            }
            Frame::Data(bytes) if self.ignore.contains(&bytes) => Classified::Ignored(bytes),
            Frame::Data(bytes) => Classified::Reading(ReadingKind::Code(bytes)),
            Frame::Malformed { bytes, reason } => {
                Classified::Reading(ReadingKind::Malformed { bytes, reason })
            }
        }
    }
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
