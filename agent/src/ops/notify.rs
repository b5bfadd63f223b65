//! systemd integration: READY once the queue and sources are up, WATCHDOG pings from the main
//! loop while the queue writer answers (a hung agent stops pinging and systemd restarts it),
//! STATUS lines an admin sees in `systemctl status`, STOPPING at shutdown. Does nothing
//! outside systemd (no NOTIFY_SOCKET).

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tracegate_drivers::Shutdown;

use super::state::AgentState;

/// Tells systemd the agent is ready.
pub fn ready(status: &str) {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::warn!(error = %e, "cannot notify systemd (READY)");
    }
}

/// Tells systemd the agent is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Pings the watchdog at half its interval while the agent is healthy, until shutdown.
pub async fn watchdog(state: Arc<AgentState>, mut shutdown: Shutdown) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(100));
    tracing::info!(every = ?period, "systemd watchdog enabled");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.wait() => return,
        }
        // A hung queue writer must stop the pings: check it answers within the period.
        let stats = tokio::time::timeout(period, state.queue.stats()).await;
        match stats {
            Ok(Ok(s)) => {
                let line = format!(
                    "queue {} events; broker {}",
                    s.depth,
                    if state
                        .broker
                        .connected
                        .load(std::sync::atomic::Ordering::Relaxed)
                    {
                        "connected"
                    } else {
                        "disconnected"
                    }
                );
                let _ = sd_notify::notify(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
            }
            _ => tracing::error!(
                "the queue writer does not answer; withholding the systemd watchdog ping"
            ),
        }
    }
}
