//! The async shell around the handshake state machine, and the source's reconnect loop.
//!
//! A session runs on one connection until a request fails; the loop then waits its backoff and
//! starts a new session, whose first request reconnects. Every session of a handshake source
//! begins by reading the counter and the ack register, so a code left unacknowledged by a
//! failed write, a dropped connection or an agent restart is presented again.

use std::time::{Duration, SystemTime};

use tokio::time::{Interval, MissedTickBehavior, interval, sleep};
use tracing::{debug, info, warn};

use super::client::{Link, Op, RequestError};
use super::codec;
use super::config::{HandshakeConfig, ModbusConfig};
use super::handshake::{Action, Block, Handshake};
use super::plan::Item;
use super::polled;
use super::read::{Reads, Snapshot};
use crate::backoff::Backoff;
use std::sync::Arc;

use tokio::sync::watch;

use crate::reading::{DeviceState, LineContext, Sink, Verdict};

/// Why a session ended.
pub(crate) enum End {
    /// The agent stopped taking readings: the source stops.
    SinkClosed,
    /// A request failed: reconnect after the backoff.
    Failed(RequestError),
}

impl From<RequestError> for End {
    fn from(e: RequestError) -> End {
        End::Failed(e)
    }
}

/// What every session of a source shares.
pub(crate) struct Source<'a> {
    pub id: &'a str,
    pub config: &'a ModbusConfig,
    pub sink: &'a Sink,
    pub health: Health,
    /// The line context to show on the PLC (`context_tags`).
    pub context: watch::Receiver<Arc<LineContext>>,
}

impl Source<'_> {
    /// Writes the line context into the PLC's context tags: always when `force` (a new
    /// session: the PLC may have restarted), else only when MES changed it.
    pub async fn sync_context(&mut self, link: &mut Link, force: bool) -> Result<(), RequestError> {
        if self.config.context_tags.is_empty()
            || !(force || self.context.has_changed().unwrap_or(false))
        {
            return Ok(());
        }
        let context = self.context.borrow_and_update().clone();
        for w in super::context::writes(&self.config.context_tags, &context) {
            if w.cut {
                let id = self.id;
                warn!(
                    source = id,
                    register = w.start,
                    "modbus {id}: a context value is longer than its registers and was cut"
                );
            }
            link.call(Op::Write {
                start: w.start,
                values: w.values,
            })
            .await?;
        }
        debug!(
            source = self.id,
            "modbus {}: line context written to the PLC", self.id
        );
        Ok(())
    }
}

/// Whether the device works, logged on changes only: one warning per outage, one info when it
/// is back, and reported as the source's device state. A handshake source is back once it
/// polls or acknowledges again (not merely reads its registers), so a PLC that refuses the ack
/// write is one outage, not a warning per retry.
pub(crate) struct Health {
    source: String,
    down: bool,
    backoff: Backoff,
    /// Where the device state goes (metrics, health, `status`).
    sink: Sink,
}

impl Health {
    fn new(source: &str, config: &ModbusConfig, sink: &Sink) -> Health {
        Health {
            source: source.to_string(),
            down: false,
            backoff: Backoff::new(config.reconnect_min, config.reconnect_max),
            sink: sink.clone(),
        }
    }

    /// A request succeeded.
    pub fn ok(&mut self) {
        self.sink.set_device_state(DeviceState::Connected);
        if self.down {
            let source = self.source.as_str();
            info!(source, "modbus {source}: the device answers again");
            self.down = false;
        }
        self.backoff.reset();
    }

    /// A request failed: how long to wait before the next session.
    fn failed(&mut self, error: &RequestError) -> Duration {
        self.sink.set_device_state(DeviceState::Disconnected);
        let delay = self.backoff.next_delay();
        let source = self.source.as_str();
        if self.down {
            debug!(source, %error, "modbus {source}: still failing: {error}");
        } else {
            warn!(source, %error,
                "modbus {source}: {error}; retrying with backoff, logging again when it answers");
            self.down = true;
        }
        delay
    }
}

/// Runs sessions until the agent stops taking readings.
pub(crate) async fn run(id: &str, config: &ModbusConfig, sink: &Sink, mut link: Link) {
    let mut source = Source {
        id,
        config,
        sink,
        health: Health::new(id, config, sink),
        context: sink.context(),
    };
    loop {
        if let Err(error) = source.sync_context(&mut link, true).await {
            link.disconnect();
            let delay = source.health.failed(&error);
            sleep(delay).await;
            continue;
        }
        let end = match &config.handshake {
            Some(h) => handshake(&mut source, h, &mut link).await,
            None => polled::run(&mut source, &mut link).await,
        };
        match end {
            End::SinkClosed => return,
            End::Failed(error) => {
                link.disconnect();
                let delay = source.health.failed(&error);
                sleep(delay).await;
            }
        }
    }
}

/// A poll ticker that does not try to catch up after a long wait.
pub(crate) fn ticker(every: Duration) -> Interval {
    let mut ticks = interval(every.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// The first register of item `i`.
fn word(s: &Snapshot<'_>, i: usize) -> u16 {
    s.words(i).first().copied().unwrap_or_default()
}

/// One session of the handover (see [`super::handshake`]).
async fn handshake(src: &mut Source<'_>, h: &HandshakeConfig, link: &mut Link) -> End {
    let c = src.config;
    let one = |start| Item { start, count: 1 };
    let sync = Reads::new(vec![one(h.counter), one(h.ack)], c.limits);
    let poll = Reads::new(vec![one(h.counter)], c.limits);
    let block = h.block();
    let mut items = vec![block];
    items.extend(c.tags.iter().map(|t| t.item()));
    let reads = Reads::new(items, c.limits);
    let id = src.id;
    let mut hs = Handshake::new(h.clone());
    let mut ticks = ticker(c.poll_interval);
    let mut action = hs.start();
    loop {
        action = match action {
            Action::Sync => {
                let s = match sync.read(link).await {
                    Ok(s) => s,
                    Err(e) => return e.into(),
                };
                let (counter, ack) = (word(&s, 0), word(&s, 1));
                debug!(
                    source = id,
                    counter, ack, "modbus {id}: handshake synchronised"
                );
                hs.on_sync(counter, ack)
            }
            Action::Poll => {
                ticks.tick().await;
                if let Err(e) = src.sync_context(link, false).await {
                    return e.into();
                }
                match poll.read(link).await {
                    Ok(s) => {
                        src.health.ok();
                        hs.on_poll(word(&s, 0))
                    }
                    Err(e) => return e.into(),
                }
            }
            Action::ReadBlock => {
                let s = match reads.read(link).await {
                    Ok(s) => s,
                    Err(e) => return e.into(),
                };
                let captured_at = SystemTime::now();
                let at = |a: super::address::Address| usize::from(a.offset - block.start.offset);
                let regs = s.words(0);
                let code_regs = regs
                    .get(at(h.code)..at(h.code) + usize::from(h.code_registers))
                    .unwrap_or(&[]);
                let code = match h.code_length {
                    Some(len) => {
                        let mut bytes = codec::bytes(code_regs, h.byte_order);
                        bytes.truncate(usize::from(regs.get(at(len)).copied().unwrap_or(0)));
                        bytes
                    }
                    None => codec::string(code_regs, h.byte_order),
                };
                hs.on_block(Block {
                    counter: regs.get(at(h.counter)).copied().unwrap_or(0),
                    code,
                    attributes: s.attributes(&c.tags, 1),
                    captured_at,
                })
            }
            Action::Submit(readings) => {
                let mut code = None;
                for reading in readings {
                    match src.sink.submit(reading).await {
                        Ok(ticket) => code = Some(ticket),
                        Err(_) => return End::SinkClosed,
                    }
                }
                let Some(ticket) = code else {
                    return End::SinkClosed;
                };
                let verdict = ticket.verdict().await;
                match &verdict {
                    Verdict::NotCommitted { reason } => warn!(
                        source = id,
                        reason,
                        "modbus {id}: the code was not committed ({reason}); not acknowledging it, \
                         reading it again shortly"
                    ),
                    v => debug!(source = id, verdict = ?v, "modbus {id}: verdict"),
                }
                hs.on_verdict(&verdict)
            }
            Action::Write(writes) => {
                for w in writes {
                    let op = Op::Write {
                        start: w.address,
                        values: w.values,
                    };
                    if let Err(e) = link.call(op).await {
                        return e.into();
                    }
                }
                src.health.ok();
                debug!(source = id, state = ?hs.state(), "modbus {id}: acknowledged");
                hs.on_written()
            }
            Action::Retry => {
                sleep(c.reconnect_min.max(c.poll_interval)).await;
                hs.on_retry()
            }
        };
    }
}
