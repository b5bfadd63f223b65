//! The operator's HTTP endpoints, served on the control socket (everything) and, when
//! `[ops] listen` is set, on TCP (read-only: metrics, health, status).
//!
//! | method and path       | what                                                         |
//! |-----------------------|--------------------------------------------------------------|
//! | GET /metrics          | Prometheus text exposition                                   |
//! | GET /health/live      | 200 while the queue writer answers, else 503                 |
//! | GET /health/ready     | 200 when up, the queue has room and is writable, else 503    |
//! | GET /status           | the status document (JSON)                                   |
//! | POST /queue/replay    | control socket only: `?from_seq=N&since_ms=T`, queue again   |

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tracegate_drivers::Shutdown;

use super::state::AgentState;
use crate::queue::ScanFilter;

/// How long a health check waits for the queue writer.
const WRITER_DEADLINE: Duration = Duration::from_secs(2);

/// Binds the control socket (replacing a stale one) with owner-only permissions.
pub fn bind_control(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        // A socket left by a killed agent; a live one would make the bind below fail anyway.
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the control socket until shutdown.
pub async fn serve_control(listener: UnixListener, state: Arc<AgentState>, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_conn(stream, state.clone(), true));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.wait() => return,
        }
    }
}

/// Serves the read-only endpoints on TCP until shutdown.
pub async fn serve_tcp(listener: TcpListener, state: Arc<AgentState>, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_conn(stream, state.clone(), false));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.wait() => return,
        }
    }
}

async fn serve_conn<S>(stream: S, state: Arc<AgentState>, control: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(req, &state, control).await) }
    });
    let conn = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5))
        .serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("valid response")
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    reply(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

async fn route(req: Request<Incoming>, state: &AgentState, control: bool) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            state.refresh().await;
            reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                state.metrics.encode(),
            )
        }
        (&Method::GET, "/health/live") => {
            let alive = tokio::time::timeout(WRITER_DEADLINE, state.queue.stats())
                .await
                .is_ok_and(|r| r.is_ok());
            if alive {
                json(StatusCode::OK, &serde_json::json!({"live": true}))
            } else {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"live": false, "reasons": ["the queue writer does not answer"]}),
                )
            }
        }
        (&Method::GET, "/health/ready") => {
            let reasons = not_ready_reasons(state).await;
            let status = if reasons.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(
                status,
                &serde_json::json!({"ready": reasons.is_empty(), "reasons": reasons}),
            )
        }
        (&Method::GET, "/status") => json(StatusCode::OK, &state.status().await),
        (&Method::POST, "/queue/replay") if control => {
            replay(req.uri().query().unwrap_or(""), state).await
        }
        (&Method::POST, "/queue/replay") => reply(
            StatusCode::FORBIDDEN,
            "text/plain",
            "replay is only allowed on the control socket\n",
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /health/live, /health/ready, /status\n",
        ),
    }
}

/// Why the agent cannot take scans right now; empty when it can.
pub async fn not_ready_reasons(state: &AgentState) -> Vec<String> {
    let mut reasons = Vec::new();
    if !state.ready.load(Ordering::Relaxed) {
        reasons.push("starting".to_string());
    }
    match tokio::time::timeout(WRITER_DEADLINE, state.queue.stats()).await {
        Ok(Ok(_)) => {}
        _ => reasons.push("the queue writer does not answer".into()),
    }
    if *state.queue.full().borrow() {
        reasons.push("the queue is full: sources are not being acknowledged".into());
    }
    if *state.queue.failing().borrow() {
        reasons.push("queue commits are failing (disk full or I/O error)".into());
    }
    reasons
}

async fn replay(query: &str, state: &AgentState) -> Response<Full<Bytes>> {
    let mut filter = ScanFilter {
        from_seq: 0,
        since_ms: i64::MIN,
        queued_only: false,
        limit: u64::MAX,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let ok = match k {
            "from_seq" => v.parse().map(|n| filter.from_seq = n).is_ok(),
            "since_ms" => v.parse().map(|n| filter.since_ms = n).is_ok(),
            _ => false,
        };
        if !ok {
            return reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("bad query parameter {pair:?}\n"),
            );
        }
    }
    match state.queue.replay(filter).await {
        Ok(n) => json(StatusCode::OK, &serde_json::json!({"replayed": n})),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
    }
}
