//! Modbus RTU buses: one task per serial port, shared by every source that names the port.
//!
//! An RS-485 bus carries one transaction at a time, so the sources of the slaves on it (one
//! per unit id) hand their requests to the port's task, which runs them one after the other:
//! it keeps the silent interval of 3.5 characters between the end of one exchange and the
//! start of the next ([`RtuConfig::frame_gap`]), addresses each request to its source's unit,
//! and applies that source's timeout. After a timeout or a transport error it closes the port.
//! Before the next request it opens it again and, after a timeout, first keeps the line quiet
//! for one more timeout period, discarding whatever arrives (a slave answering late), then
//! empties the input buffer. So the bytes of a late reply are not read as the reply to the
//! next request; what is left (a reply later than twice the timeout) is caught by the reply
//! checks in `client.rs` (unit, function, count), which drop the connection once more.
//!
//! A slave that does not answer costs the bus two timeouts per request it is sent; its source
//! then backs off (reconnect backoff, up to `reconnect_max`), so the other slaves have the bus
//! almost all the time.
//!
//! The task ends, closing the port, when the last source using it has stopped. Sources naming
//! the same port must agree on its line settings; the port name is resolved through symlinks
//! (`/dev/serial/by-id/…`) so two spellings of one adapter share one bus.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_modbus::Slave;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::SlaveContext;
use tokio_serial::{SerialPort, SerialPortBuilderExt};
use tracing::debug;

use super::client::{Op, Reply, RequestError, drops_connection, execute};
use super::config::{Parity, RtuConfig};

/// Requests that may wait for the bus, across all its sources.
const QUEUE: usize = 64;

/// One source's request, as queued for the bus.
struct Job {
    unit: u8,
    op: Op,
    timeout: Duration,
    reply: oneshot::Sender<Result<Reply, RequestError>>,
}

/// A source's handle on its bus.
#[derive(Debug)]
pub(crate) struct BusClient {
    port: String,
    unit: u8,
    timeout: Duration,
    jobs: mpsc::Sender<Job>,
}

/// An open bus: its line settings and its task's queue (weak, so the task ends with its
/// last source).
type Registered = (RtuConfig, mpsc::WeakSender<Job>);

/// The buses that are open, by resolved port path.
static BUSES: LazyLock<Mutex<HashMap<String, Registered>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The bus of `config.port`: the running one, or a new task. Fails when the port is in use by
/// a source with other line settings.
pub(crate) fn attach(config: &RtuConfig, unit: u8, timeout: Duration) -> Result<BusClient, String> {
    let key = resolve(&config.port);
    let mut buses = BUSES.lock().unwrap_or_else(|e| e.into_inner());
    let jobs = match buses
        .get(&key)
        .and_then(|(settings, weak)| Some((settings, weak.upgrade()?)))
    {
        Some((settings, jobs)) => {
            if !same_line(settings, config) {
                return Err(format!(
                    "serial port {} is already used by another modbus source with other line \
                     settings ({} baud, parity {}, {} stop bit(s)); sources on one bus must \
                     agree",
                    config.port,
                    settings.baud,
                    parity_name(settings.parity),
                    settings.stop_bits
                ));
            }
            jobs
        }
        None => {
            let (tx, rx) = mpsc::channel(QUEUE);
            buses.insert(key, (config.clone(), tx.downgrade()));
            tokio::spawn(run(config.clone(), rx));
            tx
        }
    };
    Ok(BusClient {
        port: config.port.clone(),
        unit,
        timeout,
        jobs,
    })
}

/// Checks across sources: RTU sources naming one port (after resolving symlinks) must agree on
/// its line settings. `sources` are `(index, source id, config)`; returns `(index, key,
/// message)` for each source that disagrees with the first one on its port.
pub fn check_shared_buses<'a>(
    sources: impl IntoIterator<Item = (usize, &'a str, &'a super::ModbusConfig)>,
) -> Vec<(usize, String, String)> {
    let mut first: HashMap<String, (&str, &RtuConfig)> = HashMap::new();
    let mut problems = Vec::new();
    for (i, id, config) in sources {
        let super::Transport::Rtu(rtu) = &config.transport else {
            continue;
        };
        let (other, theirs) = *first.entry(resolve(&rtu.port)).or_insert((id, rtu));
        let differs = [
            ("baud", rtu.baud != theirs.baud),
            ("data_bits", rtu.data_bits != theirs.data_bits),
            ("parity", rtu.parity != theirs.parity),
            ("stop_bits", rtu.stop_bits != theirs.stop_bits),
        ];
        if let Some((key, _)) = differs.iter().find(|(_, differs)| *differs) {
            problems.push((
                i,
                key.to_string(),
                format!(
                    "port {} is also used by source `{other}` ({} baud, parity {}, {} stop \
                     bit(s)); sources on one RS-485 bus share it and must agree on baud, \
                     data_bits, parity and stop_bits",
                    rtu.port,
                    theirs.baud,
                    parity_name(theirs.parity),
                    theirs.stop_bits
                ),
            ));
        }
    }
    problems
}

fn parity_name(parity: Parity) -> &'static str {
    match parity {
        Parity::None => "none",
        Parity::Even => "even",
        Parity::Odd => "odd",
    }
}

fn resolve(port: &str) -> String {
    std::fs::canonicalize(Path::new(port))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| port.to_string())
}

fn same_line(a: &RtuConfig, b: &RtuConfig) -> bool {
    (a.baud, a.data_bits, a.parity, a.stop_bits) == (b.baud, b.data_bits, b.parity, b.stop_bits)
}

impl BusClient {
    /// Queues `op` for this source's unit and waits for its turn and its reply.
    pub async fn call(&mut self, op: Op) -> Result<Reply, RequestError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            unit: self.unit,
            op,
            timeout: self.timeout,
            reply,
        };
        let gone = || RequestError::Transport(format!("the bus task of {} stopped", self.port));
        self.jobs.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn open(config: &RtuConfig) -> tokio_serial::Result<tokio_serial::SerialStream> {
    let data_bits = match config.data_bits {
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let parity = match config.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let stop_bits = match config.stop_bits {
        2 => tokio_serial::StopBits::Two,
        _ => tokio_serial::StopBits::One,
    };
    tokio_serial::new(&config.port, config.baud)
        .data_bits(data_bits)
        .parity(parity)
        .stop_bits(stop_bits)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
}

/// Reads and discards until `until` (or until the port fails).
async fn drain(stream: &mut tokio_serial::SerialStream, until: Instant) {
    let mut buf = [0u8; 256];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        debug!(bytes = n, "modbus bus: discarded {n} late byte(s)");
    }
}

/// The bus task: one request at a time until every source has let go.
async fn run(config: RtuConfig, mut jobs: mpsc::Receiver<Job>) {
    let gap = config.frame_gap();
    let port = config.port.as_str();
    let mut ctx: Option<Context> = None;
    let mut quiet_since = Instant::now();
    // After a timeout: until when late bytes are read and thrown away.
    let mut drain_until: Option<Instant> = None;
    while let Some(job) = jobs.recv().await {
        if job.reply.is_closed() {
            // The source stopped waiting (shutdown): do not spend bus time on it.
            continue;
        }
        if ctx.is_none() {
            match open(&config) {
                Ok(mut stream) => {
                    if let Some(until) = drain_until.take() {
                        drain(&mut stream, until).await;
                    }
                    let _ = stream.clear(tokio_serial::ClearBuffer::Input);
                    debug!(port, "modbus bus {port}: port opened");
                    ctx = Some(tokio_modbus::client::rtu::attach_slave(
                        stream,
                        Slave(job.unit),
                    ));
                    quiet_since = Instant::now();
                }
                Err(e) => {
                    let _ = job
                        .reply
                        .send(Err(RequestError::Connect(format!("{port}: {e}"))));
                    continue;
                }
            }
        }
        let c = ctx.as_mut().expect("opened above");
        c.set_slave(Slave(job.unit));
        sleep_until(quiet_since + gap).await;
        let result = execute(c, &job.op, job.timeout).await;
        quiet_since = Instant::now();
        if let Err(e) = &result {
            if drops_connection(e) {
                debug!(port, unit = job.unit, error = %e, "modbus bus {port}: reopening the port after: {e}");
                ctx = None;
                if matches!(e, RequestError::Timeout(_)) {
                    drain_until = Some(Instant::now() + job.timeout);
                }
            }
        }
        let _ = job.reply.send(result);
    }
    debug!(
        port,
        "modbus bus {port}: closed (no source uses it any more)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(port: &str, baud: u32) -> RtuConfig {
        RtuConfig {
            port: port.into(),
            baud,
            data_bits: 8,
            parity: Parity::Even,
            stop_bits: 1,
        }
    }

    #[tokio::test]
    async fn sources_on_one_port_share_its_task_and_must_agree_on_the_line() {
        let port = "/nonexistent/tracegate-bus-test";
        let a = attach(&line(port, 19200), 1, Duration::from_millis(10)).unwrap();
        let b = attach(&line(port, 19200), 2, Duration::from_millis(10)).unwrap();
        assert!(a.jobs.same_channel(&b.jobs));
        let e = attach(&line(port, 9600), 3, Duration::from_millis(10)).unwrap_err();
        assert!(e.contains("other line settings"), "{e}");
        // Once every source let go, the port gets a fresh task, with any settings.
        drop((a, b));
        tokio::task::yield_now().await;
        attach(&line(port, 9600), 3, Duration::from_millis(10)).unwrap();
    }

    #[test]
    fn sources_sharing_a_port_must_agree_on_its_settings() {
        let source = |port: &str, baud: u32, unit: u8| {
            let text = format!(
                "transport = \"rtu\"\nport = \"{port}\"\nunit = {unit}\nbaud = {baud}\n\
                 [handshake]\ncounter = \"40001\"\ncode = \"40010\"\ncode_registers = 2\nack = \"40002\""
            );
            toml::from_str::<super::super::ModbusConfig>(&text).unwrap()
        };
        let (a, b, c) = (
            source("/dev/ttyX", 19200, 1),
            source("/dev/ttyX", 19200, 2),
            source("/dev/ttyX", 9600, 3),
        );
        let d = source("/dev/ttyY", 9600, 1);
        let problems = check_shared_buses([(0, "a", &a), (1, "b", &b), (2, "c", &c), (3, "d", &d)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].0, problems[0].1.as_str()), (2, "baud"));
        assert!(problems[0].2.contains("source `a`"), "{}", problems[0].2);
    }

    #[tokio::test]
    async fn a_port_that_cannot_open_fails_each_request() {
        let mut c = attach(
            &line("/nonexistent/tracegate-bus-2", 19200),
            1,
            Duration::from_millis(10),
        )
        .unwrap();
        let op = Op::Read {
            table: super::super::address::Table::HoldingRegister,
            start: 0,
            count: 1,
        };
        let e = c.call(op).await.unwrap_err();
        assert!(matches!(e, RequestError::Connect(_)), "{e}");
    }
}
