//! One source's way to its device: requests with a timeout, and a connection that is dropped
//! after any timeout or transport error and opened again on the next request.
//!
//! tokio-modbus's async client has no timeout of its own, and a request abandoned half-way
//! leaves its framing in an unknown state: the reply may still arrive and be read as the reply
//! to the next request. So a timed-out connection is never reused. For TCP the source's own
//! connection is closed; for RTU the shared bus reopens the port ([`super::bus`]).
//!
//! The source's loop decides when to try again (with [`crate::Backoff`]); this module only
//! connects lazily, so a request after a failure is also the reconnect attempt.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::{ExceptionCode, Request, Response, Slave};

use super::address::Table;
use super::bus::BusClient;
use super::config::TcpConfig;

/// One Modbus request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// FC 1, 2, 3 or 4 by table.
    Read {
        table: Table,
        start: u16,
        count: u16,
    },
    /// FC 6 for one register, FC 16 for more.
    Write { start: u16, values: Vec<u16> },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read {
                table,
                start,
                count,
            } => write!(
                f,
                "read of {count} {}(s) from {}:{start}",
                table.noun(),
                table.prefix()
            ),
            Op::Write { start, values } => {
                write!(
                    f,
                    "write of {} holding register(s) at hr:{start}",
                    values.len()
                )
            }
        }
    }
}

/// What a request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Words(Vec<u16>),
    Bits(Vec<bool>),
    Written,
}

/// Why a request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RequestError {
    /// No (complete) reply within the source's timeout; the connection was dropped.
    #[error("no reply within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The connection (or serial port) could not be opened.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The connection failed or the reply made no sense; the connection was dropped.
    #[error("{0}")]
    Transport(String),
    /// The device answered with a Modbus exception (illegal address, busy, …). The connection
    /// is fine; the request is not. `op` says which request, for the operator.
    #[error("the device refused the {op}: {code}")]
    Exception { op: String, code: ExceptionCode },
}

/// The link of one source: its own TCP connection, or its turn on a shared RTU bus.
#[derive(Debug)]
pub(crate) enum Link {
    Tcp(TcpLink),
    Rtu(BusClient),
}

impl Link {
    /// Performs one request within the source's timeout.
    pub async fn call(&mut self, op: Op) -> Result<Reply, RequestError> {
        match self {
            Link::Tcp(link) => link.call(op).await,
            Link::Rtu(bus) => bus.call(op).await,
        }
    }

    /// Drops the connection (TCP), e.g. at the end of a session that failed.
    pub fn disconnect(&mut self) {
        if let Link::Tcp(link) = self {
            link.ctx = None;
        }
    }
}

/// A Modbus TCP connection, opened on demand.
pub(crate) struct TcpLink {
    config: TcpConfig,
    unit: u8,
    timeout: Duration,
    ctx: Option<Context>,
}

impl fmt::Debug for TcpLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpLink")
            .field("address", &self.config.address)
            .field("unit", &self.unit)
            .field("connected", &self.ctx.is_some())
            .finish()
    }
}

impl TcpLink {
    pub fn new(config: TcpConfig, unit: u8, timeout: Duration) -> TcpLink {
        TcpLink {
            config,
            unit,
            timeout,
            ctx: None,
        }
    }

    async fn call(&mut self, op: Op) -> Result<Reply, RequestError> {
        if self.ctx.is_none() {
            let stream = connect(&self.config.address, self.config.connect_timeout).await?;
            self.ctx = Some(tokio_modbus::client::tcp::attach_slave(
                stream,
                Slave(self.unit),
            ));
        }
        let ctx = self.ctx.as_mut().expect("connected above");
        let result = execute(ctx, &op, self.timeout).await;
        if result.as_ref().is_err_and(drops_connection) {
            self.ctx = None;
        }
        result
    }
}

/// True for the errors after which a connection must not be reused.
pub(crate) fn drops_connection(e: &RequestError) -> bool {
    !matches!(e, RequestError::Exception { .. })
}

/// `host:port` or `host` (port 502), resolved, connected within `limit`, Nagle off (requests
/// are small and latency matters).
async fn connect(address: &str, limit: Duration) -> Result<TcpStream, RequestError> {
    let target = if address.parse::<SocketAddr>().is_ok() || address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:502")
    };
    let attempt = async {
        let stream = TcpStream::connect(target.as_str()).await?;
        stream.set_nodelay(true)?;
        Ok::<_, io::Error>(stream)
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(RequestError::Connect(format!("{target}: {e}"))),
        Err(_) => Err(RequestError::Connect(format!(
            "{target}: no answer within {}",
            humantime::format_duration(limit)
        ))),
    }
}

/// Runs `op` on `ctx` within `limit` and sorts the outcome. The reply must match the request
/// exactly (count of registers or bits, echo of a write): anything else is a reply to some
/// other request and drops the connection. (tokio-modbus checks only unit and function code;
/// its convenience readers merely `debug_assert` the length.)
pub(crate) async fn execute(
    ctx: &mut Context,
    op: &Op,
    limit: Duration,
) -> Result<Reply, RequestError> {
    let request = match op {
        Op::Read {
            table,
            start,
            count,
        } => match table {
            Table::Coil => Request::ReadCoils(*start, *count),
            Table::DiscreteInput => Request::ReadDiscreteInputs(*start, *count),
            Table::InputRegister => Request::ReadInputRegisters(*start, *count),
            Table::HoldingRegister => Request::ReadHoldingRegisters(*start, *count),
        },
        Op::Write { start, values } if values.len() == 1 => {
            Request::WriteSingleRegister(*start, values[0])
        }
        Op::Write { start, values } => {
            Request::WriteMultipleRegisters(*start, Cow::Borrowed(values.as_slice()))
        }
    };
    let response = match tokio::time::timeout(limit, ctx.call(request)).await {
        Err(_) => return Err(RequestError::Timeout(limit)),
        Ok(Err(tokio_modbus::Error::Transport(e))) => {
            return Err(RequestError::Transport(format!("connection failed: {e}")));
        }
        Ok(Err(tokio_modbus::Error::Protocol(e))) => {
            return Err(RequestError::Transport(format!("bad reply: {e}")));
        }
        Ok(Ok(Err(code))) => {
            return Err(RequestError::Exception {
                op: op.to_string(),
                code,
            });
        }
        Ok(Ok(Ok(response))) => response,
    };
    let mismatch = || RequestError::Transport(format!("the reply does not match the {op}"));
    match (op, response) {
        (
            Op::Read { count, .. },
            Response::ReadHoldingRegisters(w) | Response::ReadInputRegisters(w),
        ) => {
            if w.len() != usize::from(*count) {
                return Err(mismatch());
            }
            Ok(Reply::Words(w))
        }
        (
            Op::Read { count, .. },
            Response::ReadCoils(mut b) | Response::ReadDiscreteInputs(mut b),
        ) => {
            // Bits come in whole bytes.
            let n = usize::from(*count);
            if b.len() < n || b.len() >= n + 8 {
                return Err(mismatch());
            }
            b.truncate(n);
            Ok(Reply::Bits(b))
        }
        (Op::Write { start, values }, Response::WriteSingleRegister(a, v)) => {
            if a != *start || values.as_slice() != [v] {
                return Err(mismatch());
            }
            Ok(Reply::Written)
        }
        (Op::Write { start, values }, Response::WriteMultipleRegisters(a, n)) => {
            if a != *start || usize::from(n) != values.len() {
                return Err(mismatch());
            }
            Ok(Reply::Written)
        }
        _ => Err(mismatch()),
    }
}
