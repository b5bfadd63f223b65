//! TCP transports.
//!
//! - Client ([`run_client`]): the agent dials a reader in server mode, with a connect timeout,
//!   TCP keepalive, and exponential backoff with jitter between attempts. One warning per
//!   outage (the first failed attempt or the lost connection) and one info when connected again.
//! - Server ([`run_server`]): readers in push mode dial the agent. Up to `max_connections`
//!   readers are served at once, each with its own framer and reply pipeline; a reader that
//!   disconnects is logged and the listener carries on.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::reading::DeviceState;

use super::config::{TcpClientConfig, TcpServerConfig};
use super::pipeline::{Context, Loss, SessionEnd, run_session};

/// Keepalive probes sent before the connection is declared dead.
const KEEPALIVE_RETRIES: u32 = 3;
/// Pause after a failed `accept` (e.g. out of file descriptors) or `bind`.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
const BIND_RETRY: Duration = Duration::from_secs(5);

/// Dials the reader with a timeout and sets keepalive and no-delay on the connection.
async fn connect(config: &TcpClientConfig) -> io::Result<TcpStream> {
    let stream = timeout(config.connect_timeout, TcpStream::connect(&config.address))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer within {}",
                    humantime::format_duration(config.connect_timeout)
                ),
            )
        })??;
    stream.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(config.keepalive)
        .with_interval(config.keepalive)
        .with_retries(KEEPALIVE_RETRIES);
    SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    Ok(stream)
}

/// Keeps a connection to the reader until the agent stops taking readings (shutdown cancels
/// this future).
pub(crate) async fn run_client(config: &TcpClientConfig, ctx: &Context) {
    let source = ctx.source_id.as_str();
    let address = config.address.as_str();
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    // A warning has been logged for the current outage (or the failed start): further failed
    // attempts stay quiet. Every connection ends with such a warning, so this never resets.
    let mut down = false;
    let mut connected_before = false;
    loop {
        match connect(config).await {
            Ok(stream) => {
                let what = if connected_before {
                    "reconnected"
                } else {
                    "connected"
                };
                info!(source, address, "scanner {source}: {what} to {address}");
                connected_before = true;
                ctx.sink.set_device_state(DeviceState::Connected);
                let since = Instant::now();
                let (reader, writer) = stream.into_split();
                let end =
                    run_session(ctx, reader, writer, &BTreeMap::new(), &Loss::default()).await;
                if end.ends_source() {
                    return;
                }
                warn!(source, address, error = %end,
                    "scanner {source}: connection to {address} lost: {end}; reconnecting");
                ctx.sink.set_device_state(DeviceState::Disconnected);
                down = true;
                if since.elapsed() >= config.reconnect_max {
                    backoff.reset();
                }
            }
            Err(e) if !down => {
                warn!(source, address, error = %e,
                    "scanner {source}: cannot connect to {address}: {e}; retrying every {} to {}",
                    humantime::format_duration(config.reconnect_min),
                    humantime::format_duration(config.reconnect_max));
                ctx.sink.set_device_state(DeviceState::Disconnected);
                down = true;
            }
            Err(e) => debug!(source, address, error = %e, "scanner {source}: connect failed"),
        }
        if ctx.pause(backoff.next_delay()).await {
            return;
        }
    }
}

/// Binds the listen address (retrying while it is unavailable) and serves readers until the
/// agent stops taking readings (shutdown cancels this future).
pub(crate) async fn run_server(config: &TcpServerConfig, ctx: Arc<Context>) {
    let source = ctx.source_id.as_str();
    let listen = config.listen.as_str();
    let mut warned = false;
    let listener = loop {
        match TcpListener::bind(listen).await {
            Ok(listener) => break listener,
            Err(e) => {
                if !warned {
                    error!(source, listen, error = %e,
                        "scanner {source}: cannot listen on {listen}: {e}; retrying every {}",
                        humantime::format_duration(BIND_RETRY));
                    warned = true;
                }
                if ctx.pause(BIND_RETRY).await {
                    return;
                }
            }
        }
    };
    info!(
        source,
        listen, "scanner {source}: listening for readers on {listen}"
    );
    serve_listener(listener, config.max_connections, ctx).await;
}

/// Accepts readers on `listener`, at most `max_connections` at a time.
pub(crate) async fn serve_listener(
    listener: TcpListener,
    max_connections: usize,
    ctx: Arc<Context>,
) {
    let source = ctx.source_id.clone();
    let mut connections: JoinSet<SessionEnd> = JoinSet::new();
    // A refusal has been logged at warn since the last time a slot was free.
    let mut refusal_logged = false;
    let mut stopping = ctx.stopping.clone();
    loop {
        tokio::select! {
            // Stop accepting; the connections answer what they submitted, below.
            () = stopping.wait() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        warn!(source, error = %e, "scanner {source}: accepting a reader failed: {e}");
                        if ctx.pause(ACCEPT_RETRY).await {
                            break;
                        }
                        continue;
                    }
                };
                // Connections that ended but were not reaped yet must not hold a slot.
                while let Some(joined) = connections.try_join_next() {
                    if reaped(joined) {
                        return;
                    }
                }
                if connections.len() >= max_connections {
                    if refusal_logged {
                        debug!(source, %peer, "scanner {source}: refused reader {peer}");
                    } else {
                        warn!(source, %peer, max_connections,
                            "scanner {source}: refused reader {peer}: already {max_connections} \
                             readers connected");
                        refusal_logged = true;
                    }
                    drop(stream);
                    continue;
                }
                refusal_logged = false;
                connections.spawn(serve_reader(stream, peer, ctx.clone()));
            }
            Some(joined) = connections.join_next() => {
                if reaped(joined) {
                    return;
                }
            }
        }
        // For a listener, "connected" means at least one reader is.
        ctx.sink.set_device_state(if connections.is_empty() {
            DeviceState::Disconnected
        } else {
            DeviceState::Connected
        });
    }
    // Stopping: every reader's session stops reading and answers what it submitted.
    while connections.join_next().await.is_some() {}
}

/// True when the finished connection says the whole source must stop.
fn reaped(joined: Result<SessionEnd, tokio::task::JoinError>) -> bool {
    match joined {
        Ok(end) if end.ends_source() => true,
        Ok(_) => false,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => false,
    }
}

async fn serve_reader(stream: TcpStream, peer: SocketAddr, ctx: Arc<Context>) -> SessionEnd {
    let source = ctx.source_id.as_str();
    info!(source, %peer, "scanner {source}: reader {peer} connected");
    if let Err(e) = stream.set_nodelay(true) {
        debug!(source, %peer, error = %e, "scanner {source}: cannot set TCP_NODELAY");
    }
    let attributes = BTreeMap::from([("reader_addr".to_owned(), peer.ip().to_string())]);
    let (reader, writer) = stream.into_split();
    let end = run_session(&ctx, reader, writer, &attributes, &Loss::default()).await;
    if !end.ends_source() {
        info!(source, %peer, reason = %end, "scanner {source}: reader {peer} disconnected: {end}");
    }
    end
}
