//! The test as a PLC: a tokio-modbus server (TCP on 127.0.0.1:0, or RTU on the master side of a
//! pty pair whose slave the agent opens) serving holding registers, on a runtime thread of its
//! own so that the synchronous tests can drive it. It records every read and write with its
//! time, and can lose writes (neither applied nor answered) to stage a lost acknowledgement.
//!
//! [`HANDSHAKE`] is the register map of the modbus driver's README: counter 40001, ack 40002,
//! result 40003, code 40010–40029, work order 40030–40037.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_serial::SerialPort;

/// The `[sources.handshake]` table and the work-order tag of the register map.
pub const HANDSHAKE: &str = r#"
[sources.handshake]
counter = "40001"
ack = "40002"
result = "40003"
code = "40010"
code_registers = 20

[[sources.tags]]
name = "work_order"
address = "40030"
type = "string"
registers = 8
"#;
/// 0-based offsets of the map.
pub const COUNTER: u16 = 0;
pub const ACK: u16 = 1;
pub const RESULT: u16 = 2;
pub const CODE: u16 = 9;
pub const WORK_ORDER: u16 = 29;

/// A read the PLC answered.
#[derive(Debug, Clone)]
pub struct Read {
    pub at: Instant,
    pub start: u16,
    pub count: u16,
    /// The counter register when the read was answered.
    pub counter: u16,
}

/// A write the PLC applied.
#[derive(Debug, Clone)]
pub struct Written {
    pub at: Instant,
    pub address: u16,
    pub values: Vec<u16>,
}

/// The PLC's memory and its request log.
#[derive(Debug, Default)]
pub struct Memory {
    pub hr: HashMap<u16, u16>,
    pub reads: Vec<Read>,
    pub writes: Vec<Written>,
    /// Writes are neither applied nor answered.
    pub lose_writes: bool,
    /// Requests are not answered at all.
    pub silent: bool,
}

impl Memory {
    pub fn get(&self, address: u16) -> u16 {
        self.hr.get(&address).copied().unwrap_or(0)
    }
}

/// One PLC. Cheap to clone (shared memory).
#[derive(Debug, Clone, Default)]
pub struct Plc {
    shared: Arc<(Mutex<Memory>, Condvar)>,
}

impl Plc {
    pub fn new() -> Plc {
        Plc::default()
    }

    pub fn memory(&self) -> MutexGuard<'_, Memory> {
        self.shared.0.lock().unwrap()
    }

    pub fn set(&self, address: u16, values: &[u16]) {
        let mut m = self.memory();
        for (i, v) in values.iter().enumerate() {
            m.hr.insert(address + i as u16, *v);
        }
    }

    pub fn get(&self, address: u16) -> u16 {
        self.memory().get(address)
    }

    /// What the PLC program does for each code: the code and the work order, then the counter.
    pub fn present(&self, counter: u16, code: &str, work_order: &str) {
        self.set(CODE, &string_registers(code, 20));
        self.set(WORK_ORDER, &string_registers(work_order, 8));
        self.set(COUNTER, &[counter]);
    }

    pub fn lose_writes(&self, lose: bool) {
        self.memory().lose_writes = lose;
    }

    pub fn go_silent(&self, silent: bool) {
        self.memory().silent = silent;
    }

    /// Waits until `done` holds for the memory; returns whether it did within `timeout`.
    pub fn wait(&self, timeout: Duration, done: impl Fn(&Memory) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.shared;
        let mut m = lock.lock().unwrap();
        while !done(&m) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            m = changed.wait_timeout(m, deadline - now).unwrap().0;
        }
        true
    }

    /// Answers one request: the response (None: no reply).
    fn answer(&self, req: &Request<'_>) -> Option<Result<Response, ExceptionCode>> {
        let (lock, changed) = &*self.shared;
        let mut m = lock.lock().unwrap();
        if m.silent {
            return None;
        }
        let response = match req {
            Request::ReadHoldingRegisters(a, n) => {
                let read = Read {
                    at: Instant::now(),
                    start: *a,
                    count: *n,
                    counter: m.get(COUNTER),
                };
                m.reads.push(read);
                let words = (*a..a + n).map(|i| m.get(i)).collect();
                Ok(Response::ReadHoldingRegisters(words))
            }
            Request::WriteSingleRegister(..) | Request::WriteMultipleRegisters(..)
                if m.lose_writes =>
            {
                return None;
            }
            Request::WriteSingleRegister(a, v) => {
                m.hr.insert(*a, *v);
                let w = Written {
                    at: Instant::now(),
                    address: *a,
                    values: vec![*v],
                };
                m.writes.push(w);
                Ok(Response::WriteSingleRegister(*a, *v))
            }
            Request::WriteMultipleRegisters(a, values) => {
                for (i, v) in values.iter().enumerate() {
                    m.hr.insert(a + i as u16, *v);
                }
                let w = Written {
                    at: Instant::now(),
                    address: *a,
                    values: values.to_vec(),
                };
                m.writes.push(w);
                Ok(Response::WriteMultipleRegisters(*a, values.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        };
        changed.notify_all();
        Some(response)
    }
}

/// Characters two per register, high byte first, NUL-padded to `registers`.
pub fn string_registers(text: &str, registers: usize) -> Vec<u16> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(registers * 2, 0);
    bytes
        .chunks(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]))
        .collect()
}

type Answer = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

/// Serves one PLC whatever the unit (TCP), or PLCs by unit (RTU; other units get silence).
#[derive(Clone)]
struct PlcService {
    units: HashMap<u8, Plc>,
    any: Option<Plc>,
}

impl Service for PlcService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: SlaveRequest<'static>) -> Answer {
        let answer = self
            .any
            .as_ref()
            .or_else(|| self.units.get(&req.slave))
            .and_then(|plc| plc.answer(&req.request));
        Box::pin(async move { answer.transpose() })
    }
}

/// A running server; stops when dropped.
pub struct PlcServer {
    /// `127.0.0.1:port` (TCP) or the pty slave's path (RTU), for the agent's config.
    pub address: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl PlcServer {
    /// Modbus TCP on 127.0.0.1:0 serving `plc`.
    pub fn tcp(plc: &Plc) -> PlcServer {
        let runtime = runtime();
        let service = PlcService {
            units: HashMap::new(),
            any: Some(plc.clone()),
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr: SocketAddr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let on_connected = |stream, _| {
                let service = service.clone();
                async move { Ok(Some((service, stream))) }
            };
            let _ = server.serve(&on_connected, |_| {}).await;
        });
        PlcServer {
            address: addr.to_string(),
            runtime: Some(runtime),
        }
    }

    /// Modbus RTU on a pty pair: the server on the master answers for `units`.
    pub fn rtu(units: &[(u8, &Plc)]) -> PlcServer {
        let runtime = runtime();
        let service = PlcService {
            units: units.iter().map(|(u, p)| (*u, (*p).clone())).collect(),
            any: None,
        };
        let (master, slave) = runtime
            .block_on(async { tokio_serial::SerialStream::pair() })
            .expect("pty pair");
        let address = slave.name().expect("pty slave path");
        runtime.spawn(async move {
            // Held open so that the agent's closing and reopening never hangs the pty up.
            let _slave = slave;
            let server = tokio_modbus::server::rtu::Server::new(master);
            let _ = server.serve_forever(service).await;
        });
        PlcServer {
            address,
            runtime: Some(runtime),
        }
    }
}

impl Drop for PlcServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("PLC runtime")
}
