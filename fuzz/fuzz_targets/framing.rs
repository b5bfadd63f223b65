//! Scanner framing: arbitrary framing settings and arbitrary reads (plus idle timeouts and lost
//! input) through `Framer`.
//!
//! Invariants checked:
//! - no panic;
//! - every frame holds at most `max_frame` bytes;
//! - a data frame is never empty, never starts or ends with CR/LF, and never contains the
//!   terminator (plain mode) or STX/ETX (STX/ETX mode); a malformed frame never contains STX/ETX
//!   in STX/ETX mode either;
//! - bytes out never exceed bytes in;
//! - after `flush_idle`, nothing is pending; with nothing pending, `flush_idle` yields nothing;
//! - when no frame can be overlong and no input was lost, the frames are exactly those of a
//!   simple reference model (split at the terminator / STX…ETX, CR/LF trimmed, empties dropped).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tracegate_drivers::scanner::framing::{ETX, Frame, Framer, STX};

#[derive(Arbitrary, Debug)]
enum Term {
    None,
    Cr,
    Lf,
    CrLf,
    Custom(Vec<u8>),
}

impl Term {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Term::None => Vec::new(),
            Term::Cr => b"\r".to_vec(),
            Term::Lf => b"\n".to_vec(),
            Term::CrLf => b"\r\n".to_vec(),
            Term::Custom(b) => b.iter().take(8).copied().collect(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Push(Vec<u8>),
    FlushIdle,
    MarkLost,
}

#[derive(Arbitrary, Debug)]
struct Input {
    terminator: Term,
    stx_etx: bool,
    max_frame: u16,
    ops: Vec<Op>,
}

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

/// The framer without overlong frames and lost input: what the rules in framing.rs say.
#[derive(Default)]
struct Model {
    buf: Vec<u8>,
    inside: bool,
}

impl Model {
    fn push(&mut self, term: &[u8], stx_etx: bool, bytes: &[u8], out: &mut Vec<Frame>) {
        for &b in bytes {
            if stx_etx {
                match (self.inside, b) {
                    (true, STX) => {
                        if !self.buf.is_empty() {
                            out.push(Frame::Malformed {
                                bytes: std::mem::take(&mut self.buf),
                                reason: String::new(),
                            });
                        }
                    }
                    (true, ETX) => {
                        self.data(out);
                        self.inside = false;
                    }
                    (true, _) => self.buf.push(b),
                    (false, STX) => self.inside = true,
                    (false, _) => {}
                }
            } else {
                self.buf.push(b);
                if !term.is_empty() && self.buf.ends_with(term) {
                    self.buf.truncate(self.buf.len() - term.len());
                    self.data(out);
                }
            }
        }
    }

    fn flush(&mut self, stx_etx: bool, out: &mut Vec<Frame>) {
        if stx_etx {
            if self.inside && !self.buf.is_empty() {
                out.push(Frame::Malformed {
                    bytes: std::mem::take(&mut self.buf),
                    reason: String::new(),
                });
            }
            self.inside = false;
        } else {
            self.data(out);
        }
        self.buf.clear();
    }

    fn data(&mut self, out: &mut Vec<Frame>) {
        let frame = std::mem::take(&mut self.buf);
        let t = trim_crlf(&frame);
        if !t.is_empty() {
            out.push(Frame::Data(t.to_vec()));
        }
    }
}

/// Frames with their malformed reasons blanked, for comparison with the model.
fn shape(frames: &[Frame]) -> Vec<Frame> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Data(b) => Frame::Data(b.clone()),
            Frame::Malformed { bytes, .. } => Frame::Malformed {
                bytes: bytes.clone(),
                reason: String::new(),
            },
        })
        .collect()
}

fn check_frame(frame: &Frame, term: &[u8], stx_etx: bool, max_frame: usize) {
    let bytes = match frame {
        Frame::Data(b) => {
            assert!(!b.is_empty(), "empty data frame");
            assert!(
                !matches!(b.first(), Some(b'\r' | b'\n'))
                    && !matches!(b.last(), Some(b'\r' | b'\n')),
                "data frame not trimmed: {b:?}"
            );
            if !stx_etx && !term.is_empty() {
                assert!(
                    !b.windows(term.len()).any(|w| w == term),
                    "data frame {b:?} contains the terminator {term:?}"
                );
            }
            b
        }
        Frame::Malformed { bytes, reason } => {
            assert!(!reason.is_empty(), "malformed frame without a reason");
            bytes
        }
    };
    assert!(
        bytes.len() <= max_frame,
        "frame of {} bytes exceeds max_frame {max_frame}: {frame:?}",
        bytes.len()
    );
    if stx_etx {
        assert!(
            !bytes.contains(&STX) && !bytes.contains(&ETX),
            "STX/ETX inside a frame: {frame:?}"
        );
    }
}

fuzz_target!(|input: Input| {
    let term = input.terminator.bytes();
    let max_frame = usize::from(input.max_frame).max(1);
    let mut framer = Framer::new(&term, input.stx_etx, usize::from(input.max_frame));
    let mut model = Model::default();
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    let mut bytes_in = 0usize;
    let mut lost = false;
    for op in &input.ops {
        match op {
            Op::Push(bytes) => {
                bytes_in += bytes.len();
                frames.extend(framer.push(bytes));
                model.push(&term, input.stx_etx, bytes, &mut expected);
            }
            Op::FlushIdle => {
                let pending = framer.is_pending();
                let frame = framer.flush_idle();
                if !pending {
                    assert!(frame.is_none(), "nothing pending, yet flush gave {frame:?}");
                }
                assert!(!framer.is_pending(), "pending right after flush_idle");
                frames.extend(frame);
                model.flush(input.stx_etx, &mut expected);
            }
            Op::MarkLost => {
                lost = true;
                framer.mark_lost("lost");
            }
        }
    }
    let mut bytes_out = 0;
    for frame in &frames {
        check_frame(frame, &term, input.stx_etx, max_frame);
        bytes_out += match frame {
            Frame::Data(b) | Frame::Malformed { bytes: b, .. } => b.len(),
        };
    }
    assert!(
        bytes_out <= bytes_in,
        "{bytes_out} bytes out of {bytes_in} in"
    );
    // The model knows no overlong frames: compare only when none can occur.
    if !lost && bytes_in <= max_frame {
        assert_eq!(shape(&frames), expected, "framer and model disagree");
    }
});
