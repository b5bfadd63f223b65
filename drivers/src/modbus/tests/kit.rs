//! Test helpers: the test plays the PLC (a tokio-modbus server over TCP on 127.0.0.1:0, or an
//! RTU server on the master side of a pty pair) and the agent (receives submissions, answers
//! verdicts when it chooses to).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_serial::SerialPort;

use crate::modbus::codec::{ByteOrder, string_registers};
use crate::modbus::{ModbusConfig, run};
use crate::reading::{ReadingKind, Sink, Submission, Verdict};
use crate::shutdown::{Shutdown, ShutdownTrigger};

/// Upper bound for anything a test waits for; never a sleep.
pub const LIMIT: Duration = Duration::from_secs(10);

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Parses a modbus table the way the agent does and validates it.
pub fn config(toml_text: &str) -> ModbusConfig {
    let config: ModbusConfig = toml::from_str(toml_text).expect("config parses");
    config.validate().expect("config is valid");
    config
}

/// The register map of the handshake tests (README "worked example"): counter 40001, ack
/// 40002, result 40003, code 40010..40029, context tags from 40030.
pub const HANDSHAKE: &str = r#"
poll_interval = "10ms"
timeout = "300ms"
reconnect_min = "20ms"
reconnect_max = "200ms"

[handshake]
counter = "40001"
ack = "40002"
result = "40003"
code = "40010"
code_registers = 20

[[tags]]
name = "work_order"
address = "40030"
type = "string"
registers = 8

[[tags]]
name = "batch"
address = "40038"
type = "u32"
"#;
pub const COUNTER: u16 = 0;
pub const ACK: u16 = 1;
pub const RESULT: u16 = 2;
pub const CODE: u16 = 9;

/// One write a PLC received: when, where, what.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub at: Instant,
    pub address: u16,
    pub values: Vec<u16>,
}

#[derive(Default)]
struct Memory {
    hr: HashMap<u16, u16>,
    coils: HashMap<u16, bool>,
    writes: Vec<Written>,
    requests: u64,
    /// Requests not answered at all from now on.
    silent: bool,
    /// Writes are answered with the exception "illegal data address".
    refuse_writes: bool,
    /// The next `delayed` requests are answered only after `delay`.
    delayed: u32,
    delay: Duration,
}

/// A PLC's memory (holding registers, coils) and what was asked of it.
#[derive(Clone, Default)]
pub struct Plc {
    mem: Arc<Mutex<Memory>>,
    changed: Arc<Notify>,
}

impl Plc {
    pub fn new() -> Plc {
        Plc::default()
    }

    pub fn set(&self, address: u16, values: &[u16]) {
        let mut m = self.mem.lock().unwrap();
        for (i, v) in values.iter().enumerate() {
            m.hr.insert(address + i as u16, *v);
        }
    }

    pub fn get(&self, address: u16) -> u16 {
        self.mem
            .lock()
            .unwrap()
            .hr
            .get(&address)
            .copied()
            .unwrap_or(0)
    }

    pub fn set_coil(&self, address: u16, value: bool) {
        self.mem.lock().unwrap().coils.insert(address, value);
    }

    /// What a PLC program does to hand over a code: the code (and context), then the counter.
    pub fn present(&self, counter: u16, code: &str) {
        self.set(
            CODE,
            &string_registers(code.as_bytes(), 20, ByteOrder::HighFirst),
        );
        self.set(COUNTER, &[counter]);
    }

    pub fn writes(&self) -> Vec<Written> {
        self.mem.lock().unwrap().writes.clone()
    }

    pub fn requests(&self) -> u64 {
        self.mem.lock().unwrap().requests
    }

    /// From now on, requests get no reply (a PLC that hangs).
    pub fn go_silent(&self, silent: bool) {
        self.mem.lock().unwrap().silent = silent;
    }

    /// From now on, writes are refused with a Modbus exception (a register the PLC does not
    /// map for writing).
    pub fn refuse_writes(&self, refuse: bool) {
        self.mem.lock().unwrap().refuse_writes = refuse;
    }

    /// The next `n` requests are answered `delay` late.
    pub fn delay_next(&self, n: u32, delay: Duration) {
        let mut m = self.mem.lock().unwrap();
        m.delayed = n;
        m.delay = delay;
    }

    /// Waits until holding register `address` holds `value`.
    pub async fn wait_for(&self, address: u16, value: u16) {
        within(&format!("hr:{address} = {value}"), async {
            loop {
                let notified = self.changed.notified();
                if self.get(address) == value {
                    return;
                }
                notified.await;
            }
        })
        .await
    }

    /// Waits until `n` more requests than now have been answered (polls that surely saw the
    /// current memory).
    pub async fn wait_requests(&self, n: u64) {
        let target = self.requests() + n;
        within(&format!("{n} more requests"), async {
            loop {
                let notified = self.changed.notified();
                if self.requests() >= target {
                    return;
                }
                notified.await;
            }
        })
        .await
    }

    /// Answers one request (None: no reply), and how late.
    fn answer(&self, req: &Request<'_>) -> (Option<Result<Response, ExceptionCode>>, Duration) {
        let mut m = self.mem.lock().unwrap();
        m.requests += 1;
        if m.silent {
            return (None, Duration::ZERO);
        }
        let delay = if m.delayed > 0 {
            m.delayed -= 1;
            m.delay
        } else {
            Duration::ZERO
        };
        let regs = |m: &Memory, a: u16, n: u16| -> Vec<u16> {
            (a..a + n)
                .map(|i| m.hr.get(&i).copied().unwrap_or(0))
                .collect()
        };
        let response = match req {
            Request::ReadHoldingRegisters(a, n) => {
                Ok(Response::ReadHoldingRegisters(regs(&m, *a, *n)))
            }
            Request::ReadInputRegisters(a, n) => Ok(Response::ReadInputRegisters(regs(&m, *a, *n))),
            Request::ReadCoils(a, n) => Ok(Response::ReadCoils(
                (*a..*a + *n)
                    .map(|i| m.coils.get(&i).copied().unwrap_or(false))
                    .collect(),
            )),
            Request::ReadDiscreteInputs(a, n) => Ok(Response::ReadDiscreteInputs(
                (*a..*a + *n)
                    .map(|i| m.coils.get(&i).copied().unwrap_or(false))
                    .collect(),
            )),
            Request::WriteSingleRegister(..) | Request::WriteMultipleRegisters(..)
                if m.refuse_writes =>
            {
                Err(ExceptionCode::IllegalDataAddress)
            }
            Request::WriteSingleRegister(a, v) => {
                m.hr.insert(*a, *v);
                m.writes.push(Written {
                    at: Instant::now(),
                    address: *a,
                    values: vec![*v],
                });
                Ok(Response::WriteSingleRegister(*a, *v))
            }
            Request::WriteMultipleRegisters(a, values) => {
                for (i, v) in values.iter().enumerate() {
                    m.hr.insert(*a + i as u16, *v);
                }
                m.writes.push(Written {
                    at: Instant::now(),
                    address: *a,
                    values: values.to_vec(),
                });
                Ok(Response::WriteMultipleRegisters(*a, values.len() as u16))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        };
        drop(m);
        self.changed.notify_waiters();
        (Some(response), delay)
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

/// Serves PLCs by unit id (RTU) or one PLC whatever the unit (TCP).
#[derive(Clone)]
pub struct PlcService {
    units: HashMap<u8, Plc>,
    any: Option<Plc>,
}

impl Service for PlcService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: SlaveRequest<'static>) -> Answer {
        let Some(plc) = self.any.as_ref().or_else(|| self.units.get(&req.slave)) else {
            // No slave with this address on the bus: silence, as on a real RS-485 line.
            return Box::pin(async { Ok(None) });
        };
        let (answer, delay) = plc.answer(&req.request);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            match answer {
                None => Ok(None),
                Some(Ok(response)) => Ok(Some(response)),
                Some(Err(e)) => Err(e),
            }
        })
    }
}

/// A Modbus TCP server on 127.0.0.1:0 serving `plc`; counts connections.
pub struct TcpPlc {
    pub addr: SocketAddr,
    pub connections: Arc<Mutex<u32>>,
    task: JoinHandle<()>,
}

impl TcpPlc {
    pub async fn start(plc: &Plc) -> TcpPlc {
        Self::start_at(plc, "127.0.0.1:0".parse().unwrap()).await
    }

    /// On a given address (a PLC that comes up where the driver already dials).
    pub async fn start_at(plc: &Plc, addr: SocketAddr) -> TcpPlc {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(0));
        let service = PlcService {
            units: HashMap::new(),
            any: Some(plc.clone()),
        };
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let on_connected = |stream, _addr| {
                *counted.lock().unwrap() += 1;
                let service = service.clone();
                async move { Ok(Some((service, stream))) }
            };
            let _ = server.serve(&on_connected, |_e| {}).await;
        });
        TcpPlc {
            addr,
            connections,
            task,
        }
    }

    pub fn connections(&self) -> u32 {
        *self.connections.lock().unwrap()
    }
}

impl Drop for TcpPlc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An RS-485 bus on a pty pair: an RTU server on the master answers for `units`; the driver
/// opens the slave by its path.
pub struct RtuBus {
    pub path: String,
    task: JoinHandle<()>,
    _slave: tokio_serial::SerialStream,
}

impl RtuBus {
    pub fn start(units: &[(u8, &Plc)]) -> RtuBus {
        let (master, slave) = tokio_serial::SerialStream::pair().expect("pty pair");
        let path = slave.name().expect("pty slave name");
        let service = PlcService {
            units: units.iter().map(|(u, p)| (*u, (*p).clone())).collect(),
            any: None,
        };
        let task = tokio::spawn(async move {
            let _ = tokio_modbus::server::rtu::Server::new(master)
                .serve_forever(service)
                .await;
        });
        RtuBus {
            path,
            task,
            _slave: slave,
        }
    }
}

impl Drop for RtuBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The agent's side of a sink.
pub struct Agent {
    pub rx: mpsc::Receiver<Submission>,
}

impl Agent {
    pub fn new() -> (Agent, Sink) {
        let (sink, rx) = Sink::channel(16);
        (Agent { rx }, sink)
    }

    pub async fn next(&mut self) -> Submission {
        within("a submission", self.rx.recv())
            .await
            .expect("driver is running")
    }

    /// Expects the code `text`, commits it as valid with `seq`; returns the submission's
    /// reading.
    pub async fn commit(&mut self, text: &str, seq: u64) -> crate::reading::Reading {
        let s = self.next().await;
        assert_eq!(s.reading.kind, code(text));
        let _ = s.reply.send(Verdict::Committed { seq, valid: true });
        s.reading
    }
}

pub fn code(text: &str) -> ReadingKind {
    ReadingKind::Code(text.as_bytes().to_vec())
}

/// A driver running `run` in a task.
pub struct Driver {
    pub trigger: ShutdownTrigger,
    pub task: JoinHandle<()>,
}

impl Driver {
    pub fn start(config: ModbusConfig, sink: Sink) -> Driver {
        Self::named("test-plc", config, sink)
    }

    pub fn named(id: &str, config: ModbusConfig, sink: Sink) -> Driver {
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(run(config, id.into(), sink, shutdown));
        Driver { trigger, task }
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        within("the driver to stop", self.task)
            .await
            .expect("driver task did not panic");
    }
}
