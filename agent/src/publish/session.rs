//! One connected MQTT session: fill the in-flight window from the queue, correlate
//! acknowledgements, mark events delivered, answer commands, send the heartbeat.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracegate_drivers::Shutdown;

use super::inflight::{Carried, InFlight};
use super::link::{Client, NetEvent, Props, Protocol, Qos};
use super::{Ended, Publisher, commands, heartbeat};
use crate::ops::metrics::{add_tally, tally};
use crate::queue::Confirmation;

/// How a clean stop waits for outstanding acknowledgements.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long after a broker refused events (MQTT 5 reason code) they are sent again.
const RETRY_REFUSED: Duration = Duration::from_secs(5);
const JSON: Option<&str> = Some("application/json");
/// Rows fetched from the queue per round trip to its writer, ahead of the in-flight window.
const FETCH_AHEAD: usize = 256;

/// The state of one connection.
pub(super) struct Session<'a> {
    publisher: &'a Publisher,
    client: &'a Client,
    protocol: Protocol,
    inflight: InFlight,
    /// Source of each event in flight, for the per-source published counter.
    sources: HashMap<u64, Arc<str>>,
    /// Events acknowledged per source since the published counters were last added to.
    published: Vec<(Arc<str>, u64)>,
    /// When events the broker refused are to be sent again.
    retry_at: Option<Instant>,
    /// Rows fetched but not yet sent, in seq order, and whether that fetch reached the end of
    /// the queue.
    ahead: VecDeque<crate::queue::Row>,
    ahead_ends: bool,
}

impl<'a> Session<'a> {
    pub(super) fn new(publisher: &'a Publisher, client: &'a Client, protocol: Protocol) -> Self {
        Session {
            publisher,
            client,
            protocol,
            inflight: InFlight::new(),
            sources: HashMap::new(),
            published: Vec::new(),
            retry_at: None,
            ahead: VecDeque::new(),
            ahead_ends: false,
        }
    }

    /// Publishing starts again from the front of the queue.
    fn rewind(&mut self) {
        self.inflight.cursor = 0;
        self.ahead.clear();
    }

    fn command_topic(&self) -> String {
        format!("{}/cmd/context", self.publisher.prefix)
    }

    fn ack_topic(&self) -> String {
        format!("{}/ack", self.publisher.prefix)
    }

    /// Runs until the connection is lost (Err with the reason) or shutdown (Ok).
    pub(super) async fn run(
        mut self,
        rx: &mut mpsc::UnboundedReceiver<NetEvent>,
        shutdown: &mut Shutdown,
    ) -> Result<(), Ended> {
        let lost = Ended::lost;
        let p = self.publisher;
        let window = usize::from(p.settings.inflight);
        let mut committed = p.queue.committed();
        let mut replays = p.queue.replays();
        replays.borrow_and_update();
        let mut context = p.state.context.watch();
        context.borrow_and_update();
        self.client
            .subscribe(&self.command_topic())
            .await
            .map_err(lost)?;
        if p.config.confirm.enabled {
            self.client
                .subscribe(&self.ack_topic())
                .await
                .map_err(lost)?;
        }
        self.send_status().await.map_err(lost)?;
        let every = p.config.ops.heartbeat;
        let mut beat = tokio::time::interval(if every.is_zero() {
            Duration::from_secs(3600)
        } else {
            every
        });
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut caught_up = false;
        loop {
            while !caught_up && self.inflight.events_in_flight() < window {
                caught_up = self.fill(window).await.map_err(lost)?;
            }
            let retry_at = self.retry_at;
            tokio::select! {
                biased;
                msg = rx.recv() => {
                    let mut delivered = Vec::new();
                    self.handle(msg, &mut delivered).await?;
                    while let Ok(m) = rx.try_recv() {
                        self.handle(Some(m), &mut delivered).await?;
                    }
                    add_tally(&p.state.metrics.published, std::mem::take(&mut self.published));
                    if !delivered.is_empty() {
                        p.queue.delivered(delivered).await.map_err(|e| lost(e.to_string()))?;
                        caught_up = false;
                    }
                }
                _ = replays.changed() => {
                    // Delivered events were queued again: start again from the front.
                    self.rewind();
                    caught_up = false;
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    self.retry_at = None;
                    self.rewind();
                    caught_up = false;
                }
                changed = committed.changed(), if caught_up => {
                    changed.map_err(|_| lost("queue closed".into()))?;
                    caught_up = false;
                }
                _ = context.changed() => {
                    // The retained status carries the context MES sees the line stamp.
                    self.send_status().await.map_err(lost)?;
                }
                _ = beat.tick(), if !every.is_zero() => {
                    let payload = heartbeat::payload(&p.state).await;
                    let topic = format!("{}/heartbeat", p.settings.status_topic);
                    let props = Props { content_type: JSON, expiry_secs: Some((2 * every.as_secs()).max(1) as u32), ..Props::default() };
                    self.send(&topic, Qos::AtMostOnce, false, payload, props, Carried::Other).await.map_err(lost)?;
                }
                _ = shutdown.wait() => {
                    self.stop(rx).await;
                    return Ok(());
                }
            }
        }
    }

    async fn send_status(&mut self) -> Result<(), String> {
        let online = self.publisher.status(true, None);
        let topic = self.publisher.settings.status_topic.clone();
        let props = Props {
            content_type: JSON,
            ..Props::default()
        };
        self.send(
            &topic,
            Qos::AtLeastOnce,
            true,
            online,
            props,
            Carried::Other,
        )
        .await
    }

    /// Publishes queued events after the cursor into the free part of the window, fetching
    /// [`FETCH_AHEAD`] at a time. True when the queue had no more.
    async fn fill(&mut self, window: usize) -> Result<bool, String> {
        let room = window - self.inflight.events_in_flight();
        if self.ahead.is_empty() {
            // Everything fetched before was sent: the cursor is the last row fetched.
            let want = FETCH_AHEAD.max(room);
            let rows = self
                .publisher
                .queue
                .fetch(self.inflight.cursor, want)
                .await
                .map_err(|e| e.to_string())?;
            self.ahead_ends = rows.len() < want;
            self.ahead.extend(rows);
        }
        let rows: Vec<_> = self.ahead.drain(..room.min(self.ahead.len())).collect();
        let caught_up = self.ahead.is_empty() && self.ahead_ends;
        for row in rows {
            if self.inflight.holds(row.seq) {
                self.inflight.cursor = self.inflight.cursor.max(row.seq);
                continue;
            }
            self.sources.insert(row.seq, row.source);
            let props = match self.protocol {
                Protocol::V5 => Props {
                    user: vec![
                        ("id".into(), row.id.to_string()),
                        ("seq".into(), row.seq.to_string()),
                        ("schema".into(), crate::event::SCHEMA.into()),
                    ],
                    content_type: JSON,
                    ..Props::default()
                },
                Protocol::V311 => Props::default(),
            };
            let qos = self.publisher.settings.qos;
            self.send(
                &row.topic,
                qos,
                false,
                row.payload,
                props,
                Carried::Event(row.seq),
            )
            .await?;
        }
        Ok(caught_up)
    }

    /// One event from the poll task; adds the seq it delivered, if any, to `delivered`.
    async fn handle(
        &mut self,
        msg: Option<NetEvent>,
        delivered: &mut Vec<u64>,
    ) -> Result<(), Ended> {
        match msg {
            Some(NetEvent::Sent(pkid)) => self.inflight.assigned(pkid),
            Some(NetEvent::Acked { pkid, refused }) => {
                if let Some((seq, after)) = self.inflight.acknowledged_after(pkid) {
                    let source = self.sources.remove(&seq);
                    if let Some(reason) = refused {
                        tracing::warn!(seq, %reason, "the broker refused an event; it stays queued and is sent again");
                        self.retry_at
                            .get_or_insert_with(|| Instant::now() + RETRY_REFUSED);
                        return Ok(());
                    }
                    let m = &self.publisher.state.metrics;
                    m.publish_to_ack.observe(after.as_secs_f64());
                    if let Some(source) = source {
                        tally(&mut self.published, &source);
                    }
                    delivered.push(seq);
                }
            }
            Some(NetEvent::Message(message)) => {
                let (incoming, token) = *message;
                if incoming.topic == self.command_topic() {
                    let default_reply = format!("{}/reply", self.command_topic());
                    let reply =
                        commands::context(&self.publisher.state, &incoming, &default_reply).await;
                    let props = Props {
                        content_type: JSON,
                        correlation_data: reply.correlation_data,
                        ..Props::default()
                    };
                    self.send(
                        &reply.topic,
                        Qos::AtLeastOnce,
                        false,
                        reply.payload,
                        props,
                        Carried::Other,
                    )
                    .await
                    .map_err(Ended::lost)?;
                } else if incoming.topic == self.ack_topic()
                    && self.publisher.config.confirm.enabled
                {
                    self.confirm(&incoming.payload).await;
                } else {
                    tracing::debug!(topic = %incoming.topic, "message on an unexpected topic ignored");
                }
                // Acknowledged only now: a command that was not handled (the agent died) is
                // delivered again by the broker.
                self.client.ack(&token).await;
            }
            Some(NetEvent::Connected { .. }) => {}
            Some(NetEvent::Lost { reason, .. }) => {
                return Err(Ended::lost(reason));
            }
            None => {
                return Err(Ended::lost("connection task ended".into()));
            }
        }
        Ok(())
    }

    /// A consumer's confirmation: stored before the MQTT message is acknowledged.
    async fn confirm(&self, payload: &[u8]) {
        match Confirmation::parse(payload) {
            Ok(c) => match self.publisher.queue.confirm(c).await {
                Ok(done) => tracing::debug!(confirmed = done.count, "consumer confirmation"),
                Err(e) => tracing::error!(error = %e, "cannot store a consumer confirmation"),
            },
            Err(reason) => tracing::warn!(%reason, "consumer confirmation ignored"),
        }
    }

    /// Clean stop: offline status, a short wait for outstanding acknowledgements, disconnect.
    async fn stop(mut self, rx: &mut mpsc::UnboundedReceiver<NetEvent>) {
        let topic = self.publisher.settings.status_topic.clone();
        let offline = self.publisher.status(false, Some("stopped"));
        let props = Props {
            content_type: JSON,
            ..Props::default()
        };
        let _ = self
            .send(
                &topic,
                Qos::AtLeastOnce,
                true,
                offline,
                props,
                Carried::Other,
            )
            .await;
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let mut delivered = Vec::new();
        while !self.inflight.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(msg @ Some(_)) => {
                    if self.handle(msg, &mut delivered).await.is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        add_tally(
            &self.publisher.state.metrics.published,
            std::mem::take(&mut self.published),
        );
        if !delivered.is_empty() {
            let _ = self.publisher.queue.delivered(delivered).await;
        }
        self.client.disconnect().await;
    }

    /// Hands one publish to the client and records it.
    async fn send(
        &mut self,
        topic: &str,
        qos: Qos,
        retain: bool,
        payload: impl Into<Bytes>,
        props: Props,
        what: Carried,
    ) -> Result<(), String> {
        self.client
            .publish(topic, qos, retain, payload.into(), props)
            .await
            .map_err(|e| format!("client closed: {e}"))?;
        self.inflight.sent(what);
        Ok(())
    }
}
