//! The contract between a driver and the agent.
//!
//! A driver captures a [`Reading`] and submits it through its [`Sink`]. Submitting returns a
//! [`Ticket`]; awaiting the ticket yields the [`Verdict`] once the agent has durably committed
//! the event (or failed to). A driver that can acknowledge its device (scanner OK/NG response,
//! PLC ack register, OPC UA write) does so only after the verdict says `Committed`.
//!
//! Back-pressure: the sink is a bounded channel. When the queue is full under the `block`
//! overflow policy the agent stops taking submissions, `submit` waits, and the driver stops
//! reading its device.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};

/// One thing a device reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When the driver captured it (wall clock; consumers order by seq, not by this).
    pub captured_at: SystemTime,
    /// What was read.
    pub kind: ReadingKind,
    /// Values read from the device together with the code (PLC context tags, reader
    /// read-cycle id, …), attached to the event as they are.
    pub attributes: BTreeMap<String, String>,
    /// Identifies this handover from the device, for drivers whose device presents a code
    /// until it is acknowledged (a PLC sequence counter value, an OPC UA counter). When the
    /// agent's last committed reading from this source carries the same handover id — the agent
    /// committed it, then stopped before the device was acknowledged — the verdict repeats that
    /// commit instead of creating a second event. `None` for devices without a handshake.
    pub handover: Option<String>,
}

impl Reading {
    /// A reading captured now, with no attributes.
    pub fn now(kind: ReadingKind) -> Self {
        Reading {
            captured_at: SystemTime::now(),
            kind,
            attributes: BTreeMap::new(),
            handover: None,
        }
    }
}

/// What a device delivered, before any validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadingKind {
    /// A code: the frame's bytes with the framing (terminator, STX/ETX) removed. The AIM
    /// symbology identifier, if the reader sends one, is still at the front.
    Code(Vec<u8>),
    /// The reader reported that it could not read a code (its configured no-read string).
    NoRead,
    /// The device sent something that is not a well-formed frame (for example longer than the
    /// maximum frame length). `bytes` holds what was received, truncated to the maximum; the
    /// agent publishes it as an invalid event with `reason`.
    Malformed { bytes: Vec<u8>, reason: String },
    /// Something the operator must hear about that is not a code: a PLC sequence counter that
    /// skipped values (codes were handed over and missed), a reader fault. `code` is a short
    /// stable identifier (`counter_skipped`), `message` a sentence. Published on its own topic.
    Alarm { code: String, message: String },
}

/// What the agent decided about a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Durably committed to the queue (fsync'd) with this sequence number. `valid` is false
    /// when the event was committed as an invalid or no-read event.
    Committed { seq: u64, valid: bool },
    /// A double read inside the source's dedup window, dropped by configuration. The device
    /// may be told "accepted": the same code was committed moments before.
    Duplicate,
    /// Not committed (the queue failed or the agent is shutting down). Do not acknowledge the
    /// device; it should present the code again.
    NotCommitted { reason: String },
}

impl Verdict {
    /// True when the device may be told that the reading is safe.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Verdict::Committed { .. } | Verdict::Duplicate)
    }
}

/// A reading on its way to the agent, with the channel its verdict comes back on.
#[derive(Debug)]
pub struct Submission {
    pub reading: Reading,
    pub reply: oneshot::Sender<Verdict>,
}

/// The agent has stopped accepting readings (shutting down).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the agent no longer accepts readings")]
pub struct SinkClosed;

/// Whether a driver's device is reachable, as the driver last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// The driver has not reported yet (starting).
    Unknown,
    /// The port is open / the connection is up / at least one reader is connected.
    Connected,
    /// The device is gone (unplugged, refused, timed out); the driver is retrying.
    Disconnected,
}

/// How many times a source's device was lost: the driver reported it disconnected after it had
/// been connected (a failed first connect is not a loss). Counted by the sink as the state is
/// set, so no change is missed however quickly the driver reconnects. Holding it does not keep
/// the sink open.
#[derive(Debug, Clone, Default)]
pub struct DeviceLosses(Arc<AtomicU64>);

impl DeviceLosses {
    /// The losses so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The line context (work order, batch…) in effect for a source's station, as MES pushed it
/// down. Drivers that can show it on the line (PLC registers, OPC UA nodes) write it there.
pub type LineContext = BTreeMap<String, String>;

/// Sets the line context a driver sees ([`Sink::context`]).
#[derive(Debug, Clone)]
pub struct ContextFeed(Arc<watch::Sender<Arc<LineContext>>>);

impl ContextFeed {
    /// Sets the line context in effect for the source's station (drivers see changes only).
    pub fn set(&self, context: LineContext) {
        self.0.send_if_modified(|c| {
            let changed = **c != context;
            if changed {
                *c = Arc::new(context);
            }
            changed
        });
    }
}

/// Where a driver sends its readings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: mpsc::Sender<Submission>,
    state: Arc<watch::Sender<DeviceState>>,
    /// Connected → disconnected changes of `state`.
    losses: DeviceLosses,
    context: Arc<watch::Sender<Arc<LineContext>>>,
}

impl Sink {
    /// A sink and the receiving end the agent reads submissions from. `capacity` bounds how
    /// many readings may wait for processing before `submit` blocks.
    pub fn channel(capacity: usize) -> (Sink, mpsc::Receiver<Submission>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (state, _) = watch::channel(DeviceState::Unknown);
        let (context, _) = watch::channel(Arc::new(LineContext::new()));
        (
            Sink {
                tx,
                state: Arc::new(state),
                losses: DeviceLosses::default(),
                context: Arc::new(context),
            },
            rx,
        )
    }

    /// Reports whether the device is reachable (shown in metrics, health and `status`). A
    /// change from connected to disconnected counts as a loss ([`Sink::device_losses`]).
    pub fn set_device_state(&self, state: DeviceState) {
        self.state.send_if_modified(|s| {
            let was = std::mem::replace(s, state);
            if was == DeviceState::Connected && state == DeviceState::Disconnected {
                self.losses.0.fetch_add(1, Ordering::Relaxed);
            }
            was != state
        });
    }

    /// How many times the device was lost; the count changes before the state change is seen
    /// on [`Sink::device_state`].
    pub fn device_losses(&self) -> DeviceLosses {
        self.losses.clone()
    }

    /// The handle the agent sets this source's line context with. It does not keep the sink
    /// open.
    pub fn context_feed(&self) -> ContextFeed {
        ContextFeed(self.context.clone())
    }

    /// Watches the line context for this source's station (starts empty).
    pub fn context(&self) -> watch::Receiver<Arc<LineContext>> {
        self.context.subscribe()
    }

    /// Watches the state the driver reports.
    pub fn device_state(&self) -> watch::Receiver<DeviceState> {
        self.state.subscribe()
    }

    /// Hands a reading to the agent. Waits while the agent applies back-pressure. The returned
    /// ticket resolves to the verdict; readings of one sink are committed in submission order.
    pub async fn submit(&self, reading: Reading) -> Result<Ticket, SinkClosed> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Submission { reading, reply })
            .await
            .map_err(|_| SinkClosed)?;
        Ok(Ticket { rx })
    }

    /// Waits until the agent stops accepting readings. Lets a driver whose device is quiet
    /// notice that the agent is gone without having to submit something first.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The promise of a verdict for one submitted reading.
#[derive(Debug)]
pub struct Ticket {
    rx: oneshot::Receiver<Verdict>,
}

impl Ticket {
    /// Waits for the verdict. If the agent dropped the reading without answering (it is
    /// shutting down), the verdict is `NotCommitted`.
    pub async fn verdict(self) -> Verdict {
        self.rx.await.unwrap_or_else(|_| Self::stopped())
    }

    /// The verdict if it is already known, without waiting; `Err` gives the ticket back.
    pub fn ready(mut self) -> Result<Verdict, Ticket> {
        match self.rx.try_recv() {
            Ok(v) => Ok(v),
            Err(oneshot::error::TryRecvError::Closed) => Ok(Self::stopped()),
            Err(oneshot::error::TryRecvError::Empty) => Err(self),
        }
    }

    fn stopped() -> Verdict {
        Verdict::NotCommitted {
            reason: "the agent stopped before committing the reading".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connected_device_going_away_counts_as_a_loss() {
        let (sink, _rx) = Sink::channel(1);
        let losses = sink.device_losses();
        // A device that is not there at start, then is, then goes away twice.
        for state in [
            DeviceState::Disconnected,
            DeviceState::Disconnected,
            DeviceState::Connected,
            DeviceState::Connected,
            DeviceState::Disconnected,
            DeviceState::Disconnected,
            DeviceState::Connected,
            DeviceState::Disconnected,
        ] {
            sink.set_device_state(state);
        }
        assert_eq!(losses.get(), 2);
        assert_eq!(*sink.device_state().borrow(), DeviceState::Disconnected);
    }
}
