//! One connected MQTT session: fill the in-flight window from the queue, correlate
//! acknowledgements, mark events delivered, send the heartbeat.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tracegate_drivers::Shutdown;

use super::connection::NetEvent;
use super::inflight::{Carried, InFlight};
use super::{Publisher, heartbeat, status};
use crate::ops::metrics::SourceLabel;
use crate::ops::state::AgentState;

/// How a clean stop waits for outstanding acknowledgements.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The state of one connection.
pub(super) struct Session<'a> {
    publisher: &'a Publisher,
    state: &'a Arc<AgentState>,
    client: &'a AsyncClient,
    inflight: InFlight,
    /// Source of each event in flight, for the per-source published counter.
    sources: HashMap<u64, String>,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        publisher: &'a Publisher,
        state: &'a Arc<AgentState>,
        client: &'a AsyncClient,
    ) -> Self {
        Session {
            publisher,
            state,
            client,
            inflight: InFlight::new(),
            sources: HashMap::new(),
        }
    }

    /// Runs until the connection is lost (Err with the reason) or shutdown (Ok).
    pub(super) async fn run(
        mut self,
        rx: &mut mpsc::UnboundedReceiver<NetEvent>,
        shutdown: &mut Shutdown,
    ) -> Result<(), String> {
        let queue = &self.publisher.queue;
        let window = usize::from(self.publisher.settings.inflight);
        let mut committed = queue.committed();
        let mut replays = queue.replays();
        replays.borrow_and_update();
        let online = status::payload(&self.publisher.config, true, None);
        self.send(
            &self.publisher.settings.status_topic.clone(),
            QoS::AtLeastOnce,
            true,
            online,
            Carried::Other,
        )
        .await?;
        let every = self.publisher.config.ops.heartbeat;
        let mut beat = tokio::time::interval(if every.is_zero() {
            Duration::from_secs(3600)
        } else {
            every
        });
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut caught_up = false;
        loop {
            while !caught_up && self.inflight.events_in_flight() < window {
                caught_up = self.fill(window).await?;
            }
            tokio::select! {
                biased;
                msg = rx.recv() => {
                    let mut delivered = self.handle(msg)?;
                    while let Ok(m) = rx.try_recv() {
                        delivered.extend(self.handle(Some(m))?);
                    }
                    if !delivered.is_empty() {
                        queue.delivered(delivered).await.map_err(|e| e.to_string())?;
                        caught_up = false;
                    }
                }
                _ = replays.changed() => {
                    // Delivered events were queued again: start again from the front.
                    self.inflight.cursor = 0;
                    caught_up = false;
                }
                changed = committed.changed(), if caught_up => {
                    changed.map_err(|_| "queue closed".to_string())?;
                    caught_up = false;
                }
                _ = beat.tick(), if !every.is_zero() => {
                    let payload = heartbeat::payload(self.state).await;
                    let topic = format!("{}/heartbeat", self.publisher.settings.status_topic);
                    self.send(&topic, QoS::AtMostOnce, false, payload, Carried::Other).await?;
                }
                _ = shutdown.wait() => {
                    self.stop(rx).await;
                    return Ok(());
                }
            }
        }
    }

    /// Publishes queued events after the cursor into the free part of the window. True when
    /// the queue had no more.
    async fn fill(&mut self, window: usize) -> Result<bool, String> {
        let room = window - self.inflight.events_in_flight();
        let rows = self
            .publisher
            .queue
            .fetch(self.inflight.cursor, room)
            .await
            .map_err(|e| e.to_string())?;
        let caught_up = rows.len() < room;
        for row in rows {
            if self.inflight.holds(row.seq) {
                self.inflight.cursor = self.inflight.cursor.max(row.seq);
                continue;
            }
            self.sources.insert(row.seq, row.source);
            let qos = self.publisher.settings.qos;
            self.send(&row.topic, qos, false, row.payload, Carried::Event(row.seq))
                .await?;
        }
        Ok(caught_up)
    }

    /// One event from the poll task; returns the seqs it delivered.
    fn handle(&mut self, msg: Option<NetEvent>) -> Result<Vec<u64>, String> {
        match msg {
            Some(NetEvent::Sent(pkid)) => self.inflight.assigned(pkid),
            Some(NetEvent::Acked(pkid)) => {
                if let Some((seq, after)) = self.inflight.acknowledged_after(pkid) {
                    let m = &self.state.metrics;
                    m.publish_to_ack.observe(after.as_secs_f64());
                    if let Some(source) = self.sources.remove(&seq) {
                        m.published.get_or_create(&SourceLabel { source }).inc();
                    }
                    return Ok(vec![seq]);
                }
            }
            Some(NetEvent::Connected { .. }) => {}
            Some(NetEvent::Lost(reason)) => return Err(reason),
            None => return Err("connection task ended".into()),
        }
        Ok(Vec::new())
    }

    /// Clean stop: offline status, a short wait for outstanding acknowledgements, disconnect.
    async fn stop(mut self, rx: &mut mpsc::UnboundedReceiver<NetEvent>) {
        let topic = self.publisher.settings.status_topic.clone();
        let offline = status::payload(&self.publisher.config, false, Some("stopped"));
        let _ = self
            .send(&topic, QoS::AtLeastOnce, true, offline, Carried::Other)
            .await;
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let mut delivered = Vec::new();
        while !self.inflight.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(msg @ Some(_)) => match self.handle(msg) {
                    Ok(seqs) => delivered.extend(seqs),
                    Err(_) => break,
                },
                _ => break,
            }
        }
        if !delivered.is_empty() {
            let _ = self.publisher.queue.delivered(delivered).await;
        }
        let _ = self.client.disconnect().await;
    }

    /// Hands one publish to the client and records it.
    async fn send(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        what: Carried,
    ) -> Result<(), String> {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .map_err(|e| format!("client closed: {e}"))?;
        self.inflight.sent(what);
        Ok(())
    }
}
