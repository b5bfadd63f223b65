//! The publisher: queue → MQTT broker, QoS 1 (or 2), an event leaves the queue only after the
//! broker acknowledged it.
//!
//! - One client and event loop per connection attempt ([`connection`]), MQTT 5 or 3.1.1
//!   ([`link`]); the event loop is polled in its own task which reports CONNACK, packet ids,
//!   acknowledgements and incoming commands.
//! - On every CONNACK the in-flight table is new and publishing starts again from the lowest
//!   queued seq: every unacknowledged event is published again, in seq order, with the same
//!   bytes. Consumers see duplicates only with the same id and seq.
//! - At most `mqtt.inflight` events are unacknowledged at once; rows are fetched from the queue
//!   in pages of that size, so memory does not grow with the backlog.
//! - Commands (line context) arrive on subscribed topics and are answered ([`commands`]).
//! - Reconnects back off exponentially with jitter. An outage is logged once when it starts and
//!   once a minute while it lasts, with the queue depth.

pub mod commands;
pub mod connection;
mod heartbeat;
pub mod inflight;
pub mod link;
mod session;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracegate_drivers::{Backoff, Shutdown};

use self::connection::Settings;
use self::link::{NetEvent, Protocol};
use crate::config::{Config, MqttProtocol};
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
    prefix: String,
}

/// Why a connection attempt or session ended.
struct Ended {
    reason: String,
    /// The MQTT handshake failed on a standing connection.
    handshake: bool,
    /// The broker refused our credentials: retrying soon cannot help.
    refused_credentials: bool,
}

impl Ended {
    pub(super) fn lost(reason: String) -> Ended {
        Ended {
            reason,
            handshake: false,
            refused_credentials: false,
        }
    }
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
            prefix,
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
        let mut protocol = self.settings.first_protocol();
        // With "auto", the version is settled by the first successful handshake.
        let mut settled = self.config.mqtt.protocol != MqttProtocol::Auto;
        let mut refused = false;
        while !shutdown.is_triggered() {
            let will = self.status(false, Some("connection lost"));
            let (client, mut rx, poller) = self.settings.connect(protocol, will);
            let end = match wait_connected(&mut rx, &mut shutdown).await {
                Ok(()) => {
                    if let Some((since, _)) = outage.take() {
                        tracing::info!(url = %url, ?protocol, outage_secs = since.elapsed().as_secs(), "connected to the MQTT broker again");
                    } else {
                        tracing::info!(url = %url, ?protocol, "connected to the MQTT broker");
                    }
                    settled = true;
                    backoff.reset();
                    self.state.set_broker(true, None);
                    let end = session::Session::new(&self, &client, protocol)
                        .run(&mut rx, &mut shutdown)
                        .await;
                    if let Err(e) = &end {
                        self.state.set_broker(false, Some(e.reason.clone()));
                    }
                    end
                }
                Err(e) => {
                    self.state.set_broker(false, Some(e.reason.clone()));
                    Err(e)
                }
            };
            match end {
                Ok(()) => {
                    // A clean stop: let the poll task send DISCONNECT so the broker does not
                    // publish the last will.
                    let _ = tokio::time::timeout(Duration::from_secs(1), poller).await;
                    return;
                }
                Err(ended) => {
                    poller.abort();
                    if shutdown.is_triggered() {
                        return;
                    }
                    if ended.handshake && !settled {
                        let next = self.settings.fallback(protocol);
                        if next != protocol {
                            tracing::info!(reason = %ended.reason, "the broker refused the {protocol:?} handshake; trying {next:?}");
                            protocol = next;
                            if protocol == Protocol::V311 {
                                continue;
                            }
                        }
                    }
                    if ended.refused_credentials {
                        // A hot reconnect loop would only hammer the broker: wait the longest.
                        tracing::error!(reason = %ended.reason, user = self.config.mqtt.username.as_deref().unwrap_or("(none)"), retry_in = ?self.config.mqtt.reconnect_max,
                            "the MQTT broker refused our credentials; check mqtt.username, mqtt.password_file or the client certificate");
                        outage.get_or_insert((Instant::now(), Instant::now()));
                        refused = true;
                    } else {
                        self.log_outage(&mut outage, &ended.reason).await;
                    }
                }
            }
            let delay = if std::mem::take(&mut refused) {
                self.config.mqtt.reconnect_max
            } else {
                backoff.next_delay()
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// The retained status payload.
    fn status(&self, online: bool, reason: Option<&'static str>) -> Vec<u8> {
        status::payload(&self.config, online, reason, &self.state.context.current())
    }

    async fn log_outage(&self, outage: &mut Option<(Instant, Instant)>, reason: &str) {
        let url = &self.config.mqtt.url;
        let depth = self.queue.stats().await.map(|s| s.depth).unwrap_or(0);
        let now = Instant::now();
        match outage {
            None => {
                tracing::warn!(url = %url, %reason, queued = depth, "cannot reach the MQTT broker; events stay in the queue and are sent when it is back");
                *outage = Some((now, now));
            }
            Some((since, logged)) if now.duration_since(*logged) >= OUTAGE_LOG_EVERY => {
                tracing::warn!(url = %url, %reason, queued = depth, outage_secs = since.elapsed().as_secs(), "still no MQTT broker; buffering");
                *logged = now;
            }
            Some(_) => tracing::debug!(%reason, "reconnect failed"),
        }
    }
}

async fn wait_connected(
    rx: &mut mpsc::UnboundedReceiver<NetEvent>,
    shutdown: &mut Shutdown,
) -> Result<(), Ended> {
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(NetEvent::Connected { .. }) => return Ok(()),
                Some(NetEvent::Lost { reason, handshake, refused_credentials }) => {
                    return Err(Ended { reason, handshake, refused_credentials });
                }
                Some(_) => {}
                None => return Err(Ended::lost("connection task ended".into())),
            },
            _ = shutdown.wait() => return Err(Ended::lost("stopping".into())),
        }
    }
}
