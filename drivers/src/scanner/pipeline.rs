//! One connection's life: read bytes → frames → readings submitted in order; verdicts awaited in
//! the same order on the side, each answered with the configured accept or reject reply.
//!
//! Reading never waits for a verdict: the read loop submits and hands the [`Ticket`] to the
//! write loop through a bounded queue ([`MAX_OUTSTANDING`] tickets), so memory stays bounded and
//! a stalled agent (or a reader that stops taking our replies) stops reading, instead of
//! buffering. Back-pressure from the agent comes through [`Sink::submit`] awaiting.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, interval, sleep};
use tracing::{debug, trace};

use crate::reading::{Reading, ReadingKind, Sink, Ticket, Verdict};
use crate::shutdown::Shutdown;

use super::config::{DialogueConfig, FramingConfig};
use super::framing::{Classified, Classifier, Frame, Framer};

/// Readings of one connection whose verdict may be outstanding at once.
pub(crate) const MAX_OUTSTANDING: usize = 256;

/// How long a session that stopped reading waits for the verdicts of what it submitted.
const DRAIN: Duration = Duration::from_secs(5);

/// How long a stopping session keeps reading (and discarding) so its close is not a reset.
const LINGER: Duration = Duration::from_millis(300);

/// Bytes asked of the device per read.
const READ_BUFFER: usize = 4096;

/// Everything a connection needs, shared by all connections of a source.
#[derive(Debug)]
pub(crate) struct Context {
    pub source_id: String,
    pub sink: Sink,
    /// The agent is stopping: sessions stop reading, answer what they submitted, and end.
    pub stopping: Shutdown,
    pub framing: FramingConfig,
    pub classifier: Classifier,
    pub dialogue: DialogueConfig,
}

impl Context {
    /// Waits `d`, or less if the agent starts stopping; true when it is stopping.
    pub async fn pause(&self, d: Duration) -> bool {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            () = sleep(d) => stopping.is_triggered(),
            () = stopping.wait() => true,
        }
    }

    pub fn new(
        source_id: String,
        sink: Sink,
        framing: FramingConfig,
        dialogue: DialogueConfig,
        stopping: Shutdown,
    ) -> Self {
        let classifier = Classifier::from_config(&framing);
        Context {
            source_id,
            sink,
            stopping,
            framing,
            classifier,
            dialogue,
        }
    }
}

/// Lets a reader say that input was lost after the bytes it has returned (an evdev device whose
/// kernel buffer overflowed): the read loop then reports the frame in progress as malformed.
/// Raise it before returning the first bytes that follow the gap.
#[derive(Debug, Clone, Default)]
pub(crate) struct Loss(Arc<Mutex<Option<String>>>);

impl Loss {
    /// Input was lost, for `reason`.
    pub fn report(&self, reason: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    /// The reported loss, if any, clearing it.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The device closed the stream (TCP FIN, or a serial read of 0 bytes).
    Closed,
    ReadFailed(io::Error),
    WriteFailed(io::Error),
    /// The agent stopped taking readings: the whole source stops.
    SinkClosed,
    /// The agent is stopping: reading stopped and every submitted reading was answered.
    Stopped,
}

impl SessionEnd {
    /// True when the whole source must stop, not reconnect.
    pub fn ends_source(&self) -> bool {
        matches!(self, SessionEnd::SinkClosed | SessionEnd::Stopped)
    }
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::Closed => f.write_str("the device closed the connection"),
            SessionEnd::ReadFailed(e) => write!(f, "read failed: {e}"),
            SessionEnd::WriteFailed(e) => write!(f, "write failed: {e}"),
            SessionEnd::SinkClosed => f.write_str("the agent no longer accepts readings"),
            SessionEnd::Stopped => f.write_str("the agent is stopping"),
        }
    }
}

/// Runs one connection until it ends. `attributes` are attached to every reading; `loss` is
/// how the reader reports lost input (a fresh [`Loss`] for readers that cannot lose any).
pub(crate) async fn run_session<R, W>(
    ctx: &Context,
    mut reader: R,
    mut writer: W,
    attributes: &BTreeMap<String, String>,
    loss: &Loss,
) -> SessionEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tickets_tx, tickets_rx) = mpsc::channel(MAX_OUTSTANDING);
    let end = {
        let read = read_loop(ctx, &mut reader, tickets_tx, attributes, loss);
        let write = write_loop(ctx, &mut writer, tickets_rx);
        tokio::pin!(read, write);
        tokio::select! {
            biased;
            end = &mut read => {
                // Reading ended (the device closed, a read failed, or the agent is stopping):
                // the readings already submitted still get their replies, so the device is not
                // left to present codes again that were committed.
                if tokio::time::timeout(DRAIN, &mut write).await.is_err() {
                    debug!(source = %ctx.source_id, "scanner {}: gave up waiting for verdicts after {DRAIN:?}", ctx.source_id);
                }
                end
            }
            end = &mut write => end,
        }
    };
    if matches!(end, SessionEnd::Stopped) {
        close_gracefully(&mut reader, &mut writer).await;
    }
    end
}

/// Ends a stream the agent stops using while the device may still be sending: half-close our
/// side, then read and discard what still arrives for a moment. Closing a TCP socket with
/// unread input sends a reset, which can destroy replies the device has not read yet.
async fn close_gracefully<R, W>(reader: &mut R, writer: &mut W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = writer.shutdown().await;
    let mut buf = vec![0u8; READ_BUFFER];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    ctx: &Context,
    reader: &mut R,
    tickets: mpsc::Sender<Ticket>,
    attributes: &BTreeMap<String, String>,
    loss: &Loss,
) -> SessionEnd {
    let mut framer = Framer::from_config(&ctx.framing);
    let mut buf = vec![0u8; READ_BUFFER];
    let mut stopping = ctx.stopping.clone();
    loop {
        let idle = ctx.framing.idle_timeout.filter(|_| framer.is_pending());
        let mut closed = false;
        let frames: Vec<Frame> = tokio::select! {
            read = reader.read(&mut buf) => {
                // Lost input lies between what was pushed so far and what this read returned.
                if let Some(reason) = loss.take() {
                    framer.mark_lost(reason);
                }
                match read {
                    // The end of the stream ends a frame too (a push reader that sends one code
                    // without a suffix and hangs up).
                    Ok(0) => {
                        closed = true;
                        framer.flush_idle().into_iter().collect()
                    }
                    Ok(n) => {
                        trace!(source = %ctx.source_id, bytes = %buf[..n].escape_ascii(), "read");
                        framer.push(&buf[..n])
                    }
                    Err(e) => return SessionEnd::ReadFailed(e),
                }
            }
            () = sleep(idle.unwrap_or(Duration::ZERO)), if idle.is_some() => {
                framer.flush_idle().into_iter().collect()
            }
            () = stopping.wait() => return SessionEnd::Stopped,
        };
        for frame in frames {
            let kind = match ctx.classifier.classify(frame) {
                Classified::Ignored(bytes) => {
                    debug!(source = %ctx.source_id, frame = %bytes.escape_ascii(),
                        "scanner {}: dropped a command reply", ctx.source_id);
                    continue;
                }
                Classified::Reading(kind) => kind,
            };
            debug!(source = %ctx.source_id, reading = %Describe(&kind),
                "scanner {}: read {}", ctx.source_id, Describe(&kind));
            let mut reading = Reading::now(kind);
            reading.attributes = attributes.clone();
            let Ok(ticket) = ctx.sink.submit(reading).await else {
                return SessionEnd::SinkClosed;
            };
            if tickets.send(ticket).await.is_err() {
                // The write loop ended; its result wins the select in `run_session`.
                return SessionEnd::Closed;
            }
        }
        if closed {
            return SessionEnd::Closed;
        }
    }
}

/// A reading for logs: bytes shown as escaped ASCII, not as a list of numbers.
struct Describe<'a>(&'a ReadingKind);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ReadingKind::Code(bytes) => write!(f, "code \"{}\"", bytes.escape_ascii()),
            ReadingKind::NoRead => f.write_str("a no-read"),
            ReadingKind::Malformed { bytes, reason } => {
                write!(
                    f,
                    "a malformed frame ({reason}): \"{}\"",
                    bytes.escape_ascii()
                )
            }
            ReadingKind::Alarm { code, message } => write!(f, "alarm {code}: {message}"),
        }
    }
}

type VerdictFuture = Pin<Box<dyn Future<Output = Verdict> + Send>>;

async fn write_loop<W: AsyncWrite + Unpin>(
    ctx: &Context,
    writer: &mut W,
    mut tickets: mpsc::Receiver<Ticket>,
) -> SessionEnd {
    let dialogue = &ctx.dialogue;
    let mut trigger = dialogue.trigger_command.as_ref().map(|command| {
        // The first tick fires at once: a host-triggered reader is triggered on connect.
        let mut ticks = interval(dialogue.trigger_interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        (command.as_bytes(), ticks)
    });
    let mut pending: Option<VerdictFuture> = None;
    // Replies of one group commit leave in one write: verdicts that are already known when
    // one arrives are answered with it, in order.
    let mut out: Vec<u8> = Vec::new();
    let answer = |out: &mut Vec<u8>, verdict: &Verdict| {
        out.extend_from_slice(reply_for(verdict, dialogue).unwrap_or_default().as_bytes());
    };
    loop {
        tokio::select! {
            verdict = async { pending.as_mut().expect("guarded by the branch condition").await },
                if pending.is_some() =>
            {
                pending = None;
                answer(&mut out, &verdict);
                while let Ok(ticket) = tickets.try_recv() {
                    match ticket.ready() {
                        Ok(verdict) => answer(&mut out, &verdict),
                        Err(ticket) => {
                            pending = Some(Box::pin(ticket.verdict()));
                            break;
                        }
                    }
                }
            }
            ticket = tickets.recv(), if pending.is_none() => match ticket {
                Some(ticket) => pending = Some(Box::pin(ticket.verdict())),
                // The read loop ended and every verdict was answered.
                None => return SessionEnd::Closed,
            },
            _ = async { trigger.as_mut().expect("guarded").1.tick().await }, if trigger.is_some() => {
                if let Some((command, _)) = &trigger {
                    out.extend_from_slice(command);
                }
            }
        };
        if !out.is_empty() {
            trace!(source = %ctx.source_id, bytes = %out.escape_ascii(), "write");
            let written = async {
                writer.write_all(&out).await?;
                writer.flush().await
            };
            if let Err(e) = written.await {
                return SessionEnd::WriteFailed(e);
            }
            out.clear();
        }
    }
}

/// The reply a verdict calls for: accept when the code is durable and valid (or a duplicate of
/// one that is), reject when it is durable but invalid / a no-read, or not durable at all.
pub(crate) fn reply_for<'a>(verdict: &Verdict, dialogue: &'a DialogueConfig) -> Option<&'a str> {
    match verdict {
        Verdict::Committed { valid: true, .. } | Verdict::Duplicate => {
            dialogue.accept_reply.as_deref()
        }
        Verdict::Committed { valid: false, .. } | Verdict::NotCommitted { .. } => {
            dialogue.reject_reply.as_deref()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_follow_validity_not_just_acceptance() {
        let d = DialogueConfig {
            accept_reply: Some("OK\r".into()),
            reject_reply: Some("NG\r".into()),
            ..DialogueConfig::default()
        };
        let committed = |valid| Verdict::Committed { seq: 1, valid };
        assert_eq!(reply_for(&committed(true), &d), Some("OK\r"));
        assert_eq!(reply_for(&Verdict::Duplicate, &d), Some("OK\r"));
        assert_eq!(reply_for(&committed(false), &d), Some("NG\r"));
        let failed = Verdict::NotCommitted {
            reason: "disk full".into(),
        };
        assert_eq!(reply_for(&failed, &d), Some("NG\r"));
        assert_eq!(reply_for(&failed, &DialogueConfig::default()), None);
    }
}
