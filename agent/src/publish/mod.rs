//! The publisher: queue → MQTT broker, QoS 1 (or 2), a row deleted only after its PUBACK.
//!
//! - One rumqttc client and event loop per connection attempt; the event loop is polled in its
//!   own task ([`connection::poll`]) which reports CONNACK, packet ids and acknowledgements.
//! - On every CONNACK the in-flight table is new and publishing starts again from the lowest
//!   queued seq: every unacknowledged row is published again, in seq order, with the same
//!   bytes. Consumers see duplicates only with the same id and seq.
//! - At most `mqtt.inflight` events are unacknowledged at once; rows are fetched from the queue
//!   in pages of that size, so memory does not grow with the backlog.
//! - Reconnects back off exponentially with jitter. An outage is logged once when it starts and
//!   once a minute while it lasts, with the queue depth.

pub mod connection;
pub mod inflight;
pub mod status;

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tracegate_drivers::{Backoff, Shutdown};

use self::connection::{NetEvent, Settings};
use self::inflight::{Carried, InFlight};
use crate::config::Config;
use crate::queue::Queue;

/// How often a lasting outage is logged again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(60);
/// How long a clean stop waits for outstanding acknowledgements.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What the publisher needs, prepared at start.
pub struct Publisher {
    settings: Settings,
    queue: Queue,
    config: Config,
}

impl Publisher {
    /// Prepares the publisher for `config`.
    pub fn new(config: &Config, queue: Queue) -> Result<Publisher, connection::SetupError> {
        let prefix = config.mqtt.topic_prefix(&config.agent);
        let settings = Settings::from_config(config, format!("{prefix}/status"))?;
        Ok(Publisher {
            settings,
            queue,
            config: config.clone(),
        })
    }

    /// Publishes until shutdown.
    pub async fn run(self, mut shutdown: Shutdown) {
        let url = &self.config.mqtt.url;
        let mut backoff = Backoff::new(
            self.config.mqtt.reconnect_min,
            self.config.mqtt.reconnect_max,
        );
        let mut outage: Option<(Instant, Instant)> = None; // (since, last logged)
        while !shutdown.is_triggered() {
            let will = status::payload(&self.config, false, Some("connection lost"));
            let (client, eventloop) = self.settings.client(will);
            let (tx, mut rx) = mpsc::unbounded_channel();
            let poller = tokio::spawn(connection::poll(eventloop, tx));
            let end = match self.wait_connected(&mut rx, &mut shutdown).await {
                Ok(()) => {
                    if let Some((since, _)) = outage.take() {
                        tracing::info!(url = %url, outage_secs = since.elapsed().as_secs(), "connected to the MQTT broker again");
                    } else {
                        tracing::info!(url = %url, "connected to the MQTT broker");
                    }
                    backoff.reset();
                    self.session(&client, &mut rx, &mut shutdown).await
                }
                Err(e) => Err(e),
            };
            if end.is_err() {
                poller.abort();
            } else {
                // A clean stop: let the poll task send DISCONNECT so the broker does not
                // publish the last will.
                let _ = tokio::time::timeout(Duration::from_secs(1), poller).await;
            }
            match end {
                Ok(()) => return,
                Err(reason) => {
                    let depth = self.queue.stats().await.map(|s| s.depth).unwrap_or(0);
                    let now = Instant::now();
                    match &mut outage {
                        None => {
                            tracing::warn!(url = %url, %reason, queued = depth, "cannot reach the MQTT broker; events stay in the queue and are sent when it is back");
                            outage = Some((now, now));
                        }
                        Some((since, logged))
                            if now.duration_since(*logged) >= OUTAGE_LOG_EVERY =>
                        {
                            tracing::warn!(url = %url, %reason, queued = depth, outage_secs = since.elapsed().as_secs(), "still no MQTT broker; buffering");
                            *logged = now;
                        }
                        Some(_) => tracing::debug!(%reason, "reconnect failed"),
                    }
                }
            }
            let delay = backoff.next_delay();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    async fn wait_connected(
        &self,
        rx: &mut mpsc::UnboundedReceiver<NetEvent>,
        shutdown: &mut Shutdown,
    ) -> Result<(), String> {
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(NetEvent::Connected { .. }) => return Ok(()),
                    Some(NetEvent::Lost(reason)) => return Err(reason),
                    Some(_) => {}
                    None => return Err("connection task ended".into()),
                },
                _ = shutdown.wait() => return Err("stopping".into()),
            }
        }
    }

    /// One connected session. Ok(()) on a clean stop, Err(reason) when the connection is lost.
    async fn session(
        &self,
        client: &AsyncClient,
        rx: &mut mpsc::UnboundedReceiver<NetEvent>,
        shutdown: &mut Shutdown,
    ) -> Result<(), String> {
        let mut inflight = InFlight::new();
        let topic = &self.settings.status_topic;
        let window = usize::from(self.settings.inflight);
        let mut committed = self.queue.committed();
        let mut replays = self.queue.replays();
        replays.borrow_and_update();
        let online = status::payload(&self.config, true, None);
        publish(
            client,
            &mut inflight,
            topic,
            QoS::AtLeastOnce,
            true,
            online,
            Carried::Other,
        )
        .await?;
        let mut caught_up = false;
        loop {
            // Fill the window from the queue.
            while !caught_up && inflight.events_in_flight() < window {
                let room = window - inflight.events_in_flight();
                let rows = self
                    .queue
                    .fetch(inflight.cursor, room)
                    .await
                    .map_err(|e| e.to_string())?;
                caught_up = rows.len() < room;
                for row in rows {
                    if inflight.holds(row.seq) {
                        inflight.cursor = inflight.cursor.max(row.seq);
                        continue;
                    }
                    publish(
                        client,
                        &mut inflight,
                        &row.topic,
                        self.settings.qos,
                        false,
                        row.payload,
                        Carried::Event(row.seq),
                    )
                    .await?;
                }
            }
            tokio::select! {
                biased;
                msg = rx.recv() => {
                    let mut acked = Vec::new();
                    let mut next = msg;
                    loop {
                        match next {
                            Some(NetEvent::Sent(pkid)) => inflight.assigned(pkid),
                            Some(NetEvent::Acked(pkid)) => acked.extend(inflight.acknowledged(pkid)),
                            Some(NetEvent::Connected { .. }) => {}
                            Some(NetEvent::Lost(reason)) => return Err(reason),
                            None => return Err("connection task ended".into()),
                        }
                        match rx.try_recv() {
                            Ok(m) => next = Some(m),
                            Err(_) => break,
                        }
                    }
                    if !acked.is_empty() {
                        self.queue.delivered(acked).await.map_err(|e| e.to_string())?;
                        caught_up = false;
                    }
                }
                _ = replays.changed() => {
                    // Delivered events were queued again: start again from the front.
                    inflight.cursor = 0;
                    caught_up = false;
                }
                changed = committed.changed(), if caught_up => {
                    if changed.is_err() {
                        return Err("queue closed".into());
                    }
                    caught_up = false;
                }
                _ = shutdown.wait() => {
                    self.stop(client, rx, &mut inflight).await;
                    return Ok(());
                }
            }
        }
    }

    /// Clean stop: offline status, a short wait for outstanding acknowledgements, disconnect.
    async fn stop(
        &self,
        client: &AsyncClient,
        rx: &mut mpsc::UnboundedReceiver<NetEvent>,
        inflight: &mut InFlight,
    ) {
        let topic = &self.settings.status_topic;
        let offline = status::payload(&self.config, false, Some("stopped"));
        let _ = publish(
            client,
            inflight,
            topic,
            QoS::AtLeastOnce,
            true,
            offline,
            Carried::Other,
        )
        .await;
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let mut acked = Vec::new();
        while !inflight.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(NetEvent::Sent(pkid))) => inflight.assigned(pkid),
                Ok(Some(NetEvent::Acked(pkid))) => acked.extend(inflight.acknowledged(pkid)),
                Ok(Some(NetEvent::Connected { .. })) => {}
                _ => break,
            }
        }
        if !acked.is_empty() {
            let _ = self.queue.delivered(acked).await;
        }
        let _ = client.disconnect().await;
    }
}

/// Hands one publish to the client and records it.
async fn publish(
    client: &AsyncClient,
    inflight: &mut InFlight,
    topic: &str,
    qos: QoS,
    retain: bool,
    payload: Vec<u8>,
    what: Carried,
) -> Result<(), String> {
    client
        .publish(topic, qos, retain, payload)
        .await
        .map_err(|e| format!("client closed: {e}"))?;
    inflight.sent(what);
    Ok(())
}
