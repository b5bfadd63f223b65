//! `struct input_event` records in, typed bytes out.
//!
//! [`KeyStream`] wraps anything that yields raw input event records (an evdev device, a FIFO, a
//! file of recorded events, one end of a socket pair in the tests) and is itself an
//! [`AsyncRead`] of the bytes the keys type. The scanner's connection pipeline reads it like a
//! serial port, so framing (terminator, idle timeout, maximum length), no-read detection and
//! submission are the same as for every other transport.
//!
//! Lost events (`SYN_DROPPED`: the kernel's buffer for this reader overflowed) are reported
//! through the session's [`Loss`] just before the first bytes typed after the gap, so the code
//! being typed becomes a malformed reading instead of a shorter code that may look valid.
//!
//! The record layout is the target's `libc::input_event`: a `struct timeval`, then `type: u16`,
//! `code: u16`, `value: i32`, 24 bytes on 64-bit Linux and 16 on 32-bit ARM. A read may return
//! part of a record (a FIFO does not keep record boundaries); the rest is kept for the next.

use std::io;
use std::mem::{offset_of, size_of};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};
use tracing::{debug, warn};

use super::decoder::{Decoder, InputEvent, Note};
use crate::scanner::pipeline::Loss;

/// Why a frame is malformed after the kernel dropped key events.
pub const EVENTS_LOST: &str =
    "key events were lost while this code was typed (SYN_DROPPED: the agent read too slowly)";

/// Bytes of one `struct input_event` on this target.
pub const RECORD_SIZE: usize = size_of::<libc::input_event>();

/// Records asked of the device per read (an evdev read must hold at least one whole record).
const RECORDS_PER_READ: usize = 64;

/// The event in one record (`bytes` is exactly [`RECORD_SIZE`] long).
pub fn parse_record(bytes: &[u8]) -> InputEvent {
    let u16_at = |offset: usize| u16::from_ne_bytes([bytes[offset], bytes[offset + 1]]);
    let value_at = offset_of!(libc::input_event, value);
    let value: [u8; 4] = bytes[value_at..value_at + 4]
        .try_into()
        .expect("four bytes");
    InputEvent {
        kind: u16_at(offset_of!(libc::input_event, type_)),
        code: u16_at(offset_of!(libc::input_event, code)),
        value: i32::from_ne_bytes(value),
    }
}

/// One record holding `event` with a zero timestamp, as the kernel would lay it out.
pub fn encode_record(event: InputEvent) -> Vec<u8> {
    let mut bytes = vec![0; RECORD_SIZE];
    let type_at = offset_of!(libc::input_event, type_);
    let code_at = offset_of!(libc::input_event, code);
    let value_at = offset_of!(libc::input_event, value);
    bytes[type_at..type_at + 2].copy_from_slice(&event.kind.to_ne_bytes());
    bytes[code_at..code_at + 2].copy_from_slice(&event.code.to_ne_bytes());
    bytes[value_at..value_at + 4].copy_from_slice(&event.value.to_ne_bytes());
    bytes
}

/// The bytes typed by the key events read from `R`; see the module documentation.
pub struct KeyStream<R> {
    inner: R,
    decoder: Decoder,
    /// The source id, for logs.
    source: String,
    /// Raw records read, `filled` bytes of them valid (a partial record at the end).
    raw: Vec<u8>,
    filled: usize,
    /// Typed bytes not yet handed to the reader, from `out_at` on.
    out: Vec<u8>,
    out_at: usize,
    /// Where lost events are reported.
    loss: Loss,
    /// Events were lost after the bytes in `out`: report it once they are handed out.
    gap_after_out: bool,
}

impl<R: AsyncRead + Unpin> KeyStream<R> {
    /// Decodes the records read from `inner` with `decoder`; `source` names the source in logs,
    /// `loss` hears about dropped events.
    pub(crate) fn new(inner: R, decoder: Decoder, source: &str, loss: Loss) -> KeyStream<R> {
        KeyStream {
            inner,
            decoder,
            source: source.to_owned(),
            raw: vec![0; RECORD_SIZE * RECORDS_PER_READ],
            filled: 0,
            out: Vec::new(),
            out_at: 0,
            loss,
            gap_after_out: false,
        }
    }

    /// Decodes the whole records in `raw` into `out`, keeping a partial one for later. Stops
    /// after `SYN_DROPPED` if bytes typed before it are waiting, so that they are handed out
    /// before the loss is reported.
    fn decode(&mut self) {
        let mut used = 0;
        while self.filled - used >= RECORD_SIZE {
            let event = parse_record(&self.raw[used..used + RECORD_SIZE]);
            used += RECORD_SIZE;
            match self.decoder.feed(event, &mut self.out) {
                None => {}
                Some(Note::EventsLost) => {
                    warn!(source = %self.source,
                        "scanner {}: the kernel dropped key events (SYN_DROPPED); the code being \
                         typed is reported as malformed", self.source);
                    if self.out_at < self.out.len() {
                        self.gap_after_out = true;
                        break;
                    }
                    self.loss.report(EVENTS_LOST.into());
                }
                Some(Note::Ignored { code }) => debug!(
                    source = %self.source, code,
                    "scanner {}: key {code} types nothing here; ignored", self.source
                ),
            }
        }
        self.raw.copy_within(used..self.filled, 0);
        self.filled -= used;
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for KeyStream<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Records that type nothing (releases, Shift, SYN) must not look like the end of the
        // stream (a read of 0 bytes): read on until some bytes are typed or the input ends.
        while this.out_at == this.out.len() {
            this.out.clear();
            this.out_at = 0;
            if std::mem::take(&mut this.gap_after_out) {
                this.loss.report(EVENTS_LOST.into());
            }
            // Whole records left by a stop at SYN_DROPPED come before anything new.
            if this.filled >= RECORD_SIZE {
                this.decode();
                continue;
            }
            let mut raw = ReadBuf::new(&mut this.raw[this.filled..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
            let read = raw.filled().len();
            if read == 0 {
                if this.filled > 0 {
                    debug!(source = %this.source, bytes = this.filled,
                        "scanner {}: input ended inside a record; its bytes are dropped",
                        this.source);
                    this.filled = 0;
                }
                return Poll::Ready(Ok(()));
            }
            this.filled += read;
            this.decode();
        }
        let n = buf.remaining().min(this.out.len() - this.out_at);
        buf.put_slice(&this.out[this.out_at..this.out_at + n]);
        this.out_at += n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::scanner::config::Layout;
    use crate::scanner::hid::testkeys::*;

    #[test]
    fn records_have_the_layout_of_the_targets_input_event() {
        // SAFETY: input_event is plain old data; all-zero is a valid value.
        let mut event: libc::input_event = unsafe { std::mem::zeroed() };
        event.type_ = 1;
        event.code = 30;
        event.value = -2;
        // SAFETY: reading the bytes of a plain struct that lives for the whole borrow.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of_val(&event))
        };
        let ours = encode_record(InputEvent::key(30, -2));
        assert_eq!(ours, bytes);
        assert_eq!(parse_record(bytes), InputEvent::key(30, -2));
        #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
        assert_eq!(RECORD_SIZE, 24);
    }

    /// A reader handing out the given chunks one per read, then the end of input.
    struct Chunks(VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(chunk) = self.0.pop_front() {
                assert!(
                    chunk.len() <= buf.remaining(),
                    "test chunk larger than the read"
                );
                buf.put_slice(&chunk);
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn records_split_across_reads_are_put_back_together() {
        let records = v1_us().records();
        // Odd sizes: most chunks end inside a record.
        let mut chunks = VecDeque::new();
        let mut at = 0;
        for size in [1, 23, 2, 47, RECORD_SIZE, 5].iter().cycle() {
            if at == records.len() {
                break;
            }
            let end = (at + size).min(records.len());
            chunks.push_back(records[at..end].to_vec());
            at = end;
        }
        let decoder = Decoder::new(Layout::Us, b"\r\n");
        let mut keys = KeyStream::new(Chunks(chunks), decoder, "test", Loss::default());
        let mut typed = Vec::new();
        keys.read_to_end(&mut typed).await.unwrap();
        assert_eq!(
            typed,
            b"]d201095060001343521726123110ABC123\x1d21SN0001\r\n"
        );
    }

    #[tokio::test]
    async fn reads_that_type_nothing_are_not_the_end_of_input() {
        let shift = Keys::default().event(KEY_LEFTSHIFT, 1).records();
        let a = Keys::default().tap(KEY_A).records();
        let release = Keys::default().event(KEY_LEFTSHIFT, 0).records();
        let chunks = VecDeque::from([shift, a, release, b"partial".to_vec()]);
        let decoder = Decoder::new(Layout::Us, b"\r");
        let mut keys = KeyStream::new(Chunks(chunks), decoder, "test", Loss::default());
        let mut buf = [0; 16];
        assert_eq!(
            keys.read(&mut buf).await.unwrap(),
            1,
            "Shift alone is no end"
        );
        assert_eq!(&buf[..1], b"A");
        // Shift released, then input ends inside a record: the end of input.
        assert_eq!(keys.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn dropped_events_are_reported_between_the_bytes_before_and_after() {
        let before = Keys::default().taps(&[KEY_A, KEY_B]).records();
        let dropped = encode_record(InputEvent {
            kind: crate::scanner::hid::decoder::EV_SYN,
            code: crate::scanner::hid::decoder::SYN_DROPPED,
            value: 0,
        });
        let after = Keys::default().tap(KEY_C).enter().records();
        // All in one read: the stream must still stop at the gap.
        // The kernel's SYN_DROPPED is followed by the rest of a packet, up to SYN_REPORT.
        let report = encode_record(InputEvent::report());
        let chunk = [before, dropped, report, after].concat();
        let loss = Loss::default();
        let decoder = Decoder::new(Layout::Us, b"\r");
        let mut keys = KeyStream::new(Chunks(VecDeque::from([chunk])), decoder, "t", loss.clone());
        let mut buf = [0; 16];
        let n = keys.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ab");
        assert_eq!(loss.take(), None, "not yet: `ab` came before the gap");
        let n = keys.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"c\r");
        assert_eq!(loss.take().as_deref(), Some(EVENTS_LOST));
    }
}
