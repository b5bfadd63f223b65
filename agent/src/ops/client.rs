//! The CLI side of the control socket: one HTTP/1.1 request over a unix socket.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

/// Why the running agent could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no agent is listening on {path} ({source}); is `tracegate run` running for this config?"
    )]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to the agent on {path}: {reason}")]
    Protocol { path: String, reason: String },
}

/// Sends one request to the agent's control socket; returns status and body.
pub async fn request(
    socket: &Path,
    method: Method,
    path_and_query: &str,
) -> Result<(StatusCode, Bytes), ClientError> {
    let path = socket.display().to_string();
    let protocol = |e: &dyn std::fmt::Display| ClientError::Protocol {
        path: path.clone(),
        reason: e.to_string(),
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::NotRunning {
            path: path.clone(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| protocol(&e))?;
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", "tracegate")
        .body(Empty::<Bytes>::new())
        .map_err(|e| protocol(&e))?;
    let res = sender.send_request(req).await.map_err(|e| protocol(&e))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| protocol(&e))?
        .to_bytes();
    Ok((status, body))
}
