//! `struct input_event` records in, typed bytes out.
//!
//! [`KeyStream`] wraps anything that yields raw input event records (an evdev device, a FIFO, a
//! file of recorded events, one end of a socket pair in the tests) and is itself an
//! [`AsyncRead`] of the bytes the keys type. The scanner's connection pipeline reads it like a
//! serial port, so framing (terminator, idle timeout, maximum length), no-read detection and
//! submission are the same as for every other transport.
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
}

impl<R: AsyncRead + Unpin> KeyStream<R> {
    /// Decodes the records read from `inner` with `decoder`; `source` names the source in logs.
    pub fn new(inner: R, decoder: Decoder, source: &str) -> KeyStream<R> {
        KeyStream {
            inner,
            decoder,
            source: source.to_owned(),
            raw: vec![0; RECORD_SIZE * RECORDS_PER_READ],
            filled: 0,
            out: Vec::new(),
            out_at: 0,
        }
    }

    /// Decodes every whole record in `raw` into `out`, keeping a partial one for later.
    fn decode(&mut self) {
        let whole = self.filled - self.filled % RECORD_SIZE;
        for record in self.raw[..whole].chunks_exact(RECORD_SIZE) {
            let event = parse_record(record);
            match self.decoder.feed(event, &mut self.out) {
                None => {}
                Some(Note::EventsLost) => warn!(
                    source = %self.source,
                    "scanner {}: the kernel dropped key events (SYN_DROPPED); the code being \
                     typed may be incomplete",
                    self.source
                ),
                Some(Note::Ignored { code }) => debug!(
                    source = %self.source, code,
                    "scanner {}: key {code} types nothing here; ignored", self.source
                ),
            }
        }
        self.raw.copy_within(whole..self.filled, 0);
        self.filled -= whole;
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
