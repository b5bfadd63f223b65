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
mod heartbeat;
pub mod inflight;
mod session;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracegate_drivers::{Backoff, Shutdown};

use self::connection::{NetEvent, Settings};
use crate::config::Config;
use crate::ops::state::AgentState;
use crate::queue::Queue;

/// How often a lasting outage is logged again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(60);

/// What the publisher needs, prepared at start.
pub struct Publisher {
    settings: Settings,
    queue: Queue,
    config: Config,
    state: Arc<AgentState>,
}

impl Publisher {
    /// Prepares the publisher for `config`.
    pub fn new(
        config: &Config,
        state: Arc<AgentState>,
    ) -> Result<Publisher, connection::SetupError> {
        let prefix = config.mqtt.topic_prefix(&config.agent);
        let settings = Settings::from_config(config, format!("{prefix}/status"))?;
        Ok(Publisher {
            settings,
            queue: state.queue.clone(),
            config: config.clone(),
            state,
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
                    self.state.set_broker(true, None);
                    let end = session::Session::new(&self, &self.state, &client)
                        .run(&mut rx, &mut shutdown)
                        .await;
                    if let Err(reason) = &end {
                        self.state.set_broker(false, Some(reason.clone()));
                    }
                    end
                }
                Err(e) => {
                    self.state.set_broker(false, Some(e.clone()));
                    Err(e)
                }
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
}
