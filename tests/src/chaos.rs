//! The chaos harness of issue #7, "prove it loses nothing": PLCs hand codes over to the real
//! agent while the agent is SIGKILLed, the broker is restarted and the network between them is
//! cut and slowed, all at random moments; at the end a consumer proves that nothing the PLCs saw
//! acknowledged was lost.
//!
//! # The set-up
//!
//! ```text
//!  PLC 1..P (in-process Modbus TCP,      agent (the real binary,      proxy (cut,      persistent
//!  code handshake of plc.rs)     ──────► queue.db in its folder) ───► delay)     ───► mosquitto ───► consumer
//!  one code at a time, the next                 ▲ SIGKILL + restart                  ▲ SIGTERM +     (persistent
//!  only once `ack = counter`                                                          restart         session, QoS 1)
//! ```
//!
//! - Each PLC runs the PLC programmer's side of drivers/src/modbus/README.md: it presents code
//!   `CHAOS-P<plc>-<n>` under counter n (wrapping 65535 → 1), waits until `ack = counter`, checks
//!   `result = 1`, records n as acknowledged and presents n + 1. A PLC never replaces an
//!   unacknowledged code, so the codes a PLC saw acknowledged are exactly `1..=acked`.
//! - The agent publishes through a [`Proxy`]; the consumer connects to the broker directly.
//! - Chaos, each at random moments drawn from a seeded generator (the seed is printed; set
//!   `TRACEGATE_CHAOS_SEED` to replay a schedule): SIGKILL of the agent followed by a restart on
//!   the same queue (sometimes right away, sometimes after a pause; sometimes during the previous
//!   run's start-up), a clean broker restart (SIGTERM, down for a while, start again on the same
//!   port), a cut of every proxied connection, and delay episodes (every chunk held back for
//!   tens to hundreds of milliseconds). The agent must also never die by itself.
//!
//! # What is asserted, and why it is true
//!
//! The agent's contract is "acknowledged to the device ⇒ delivered to the broker at least once,
//! with a stable id and gap-free seq"; the broker's contract is "PUBACKed ⇒ kept and forwarded
//! to a persistent QoS 1 session". The harness only breaks things whose contract says they must
//! be survived:
//!
//! - The **agent** is SIGKILLed freely: its queue is the record, committed (fsync'd) before the
//!   PLC's ack, and rows leave it only on PUBACK.
//! - The **network** is cut and delayed freely: QoS 1 with republication from the queue after
//!   every reconnect covers every loss on the wire.
//! - The **broker** is only restarted **cleanly** (SIGTERM): mosquitto with `persistence true`
//!   saves everything it acknowledged, including the messages queued for the consumer's
//!   session, and loads it at start. A SIGKILLed broker (`autosave_interval 0`) forgets
//!   messages it already PUBACKed, and no at-least-once chain can survive a link that drops data
//!   after acknowledging it — that is the broker's contract, not the agent's (see
//!   docs/reliability.md and tests/tests/broker_restart.rs, which bounds exactly what a killed
//!   broker may lose).
//!
//! Given that, these hold and are checked at the end, once the chaos stops, the broker is up,
//! the agent runs, the PLCs' last codes are acknowledged and the queue is empty:
//!
//! 1. **Acknowledged ⇒ delivered**: every code `1..=acked` of every PLC arrived at the consumer.
//! 2. **Same id and seq on every copy**: all copies of a seq are byte-identical (payload hash),
//!    and every code arrived under exactly one seq (a code committed before a kill and
//!    re-presented after it is acknowledged with its original seq, never stored twice: the
//!    handover id).
//! 3. **Seq has no gaps**: the seqs received are exactly `1..=next_seq − 1` of the queue, and
//!    every one of them is a code (no other event, e.g. no `counter_skipped` alarm, occurs:
//!    the PLCs never skip).
//! 4. **Order per source**: first copies of each source's events arrive in increasing seq
//!    order, and each PLC's codes have increasing seqs in the order it presented them.
//! 5. **The queue file is intact**: `PRAGMA integrity_check` is `ok` on the file left by every
//!    `integrity_every`-th SIGKILL (checked while the agent is dead, before the restart's WAL
//!    recovery) and on the final file after a clean stop.
//! 6. Every payload checked against docs/schema/event.schema.json (all of them in the short
//!    form; the first 2000 and every 100th after that in the long form, to keep the consumer
//!    fast).
//!
//! The consumer keeps a compact record per seq (payload hash, code, copies), not the messages,
//! so a run of millions of events fits in memory.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::agent::Agent;
use crate::mosquitto::Mosquitto;
use crate::plc::{ACK, HANDSHAKE, Plc, PlcServer, RESULT};
use crate::proxy::Proxy;
use crate::{ALL_TOPICS, agent_config};

/// What a run must reach, and how often things break.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// PLCs (sources), each with its own Modbus server.
    pub plcs: usize,
    /// The run goes on until all four minimums are reached…
    pub min_kills: u64,
    pub min_restarts: u64,
    pub min_cuts: u64,
    pub min_events: u64,
    /// …or until this much time has passed: then it ends (and passes) if the kill, restart and
    /// cut minimums are reached, reporting the events it managed, and fails otherwise.
    pub max_duration: Duration,
    /// Pause before the next action of each kind, drawn uniformly from the range.
    pub kill_every: (Duration, Duration),
    pub restart_every: (Duration, Duration),
    pub cut_every: (Duration, Duration),
    pub delay_every: (Duration, Duration),
    /// How long a broker stays down, and a delay episode lasts.
    pub broker_down: (Duration, Duration),
    pub delay_lasts: (Duration, Duration),
    /// The delay per chunk during an episode, in ms.
    pub delay_ms: (u64, u64),
    /// `PRAGMA integrity_check` on the dead agent's file after every n-th kill.
    pub integrity_every: u64,
    /// Validate every payload against the schema (else a sample).
    pub validate_all: bool,
    /// The Modbus source's `poll_interval` and the store's `commit_window`.
    pub poll_interval: String,
    pub commit_window: String,
    pub seed: u64,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

impl ChaosConfig {
    /// The CI form: at least 20 kills, 5 broker restarts and 10 cuts, about a minute.
    pub fn short() -> ChaosConfig {
        ChaosConfig {
            plcs: 3,
            min_kills: 20,
            min_restarts: 5,
            min_cuts: 10,
            min_events: 1000,
            max_duration: Duration::from_secs(150),
            kill_every: (secs(0.2), secs(2.0)),
            restart_every: (secs(3.0), secs(7.0)),
            cut_every: (secs(1.0), secs(3.5)),
            delay_every: (secs(2.0), secs(6.0)),
            broker_down: (secs(0.0), secs(1.0)),
            delay_lasts: (secs(0.3), secs(2.0)),
            delay_ms: (5, 150),
            integrity_every: 5,
            validate_all: true,
            poll_interval: "5ms".into(),
            commit_window: "2ms".into(),
            seed: 0,
        }
    }

    /// The long form of the issue: at least 200 kills, 50 restarts, 50 cuts and 1 M events.
    pub fn long() -> ChaosConfig {
        ChaosConfig {
            plcs: 4,
            min_kills: 200,
            min_restarts: 50,
            min_cuts: 50,
            min_events: 1_000_000,
            max_duration: Duration::from_secs(6 * 3600),
            kill_every: (secs(0.2), secs(8.0)),
            restart_every: (secs(5.0), secs(30.0)),
            cut_every: (secs(2.0), secs(20.0)),
            delay_every: (secs(5.0), secs(30.0)),
            integrity_every: 10,
            validate_all: false,
            poll_interval: "2ms".into(),
            ..ChaosConfig::short()
        }
    }

    /// `TRACEGATE_CHAOS=long` selects [`ChaosConfig::long`], anything else the short form; then
    /// `TRACEGATE_CHAOS_{KILLS,RESTARTS,CUTS,EVENTS,PLCS,MINUTES,SEED}` override single figures
    /// (MINUTES is `max_duration`). Without a seed, one is taken from the clock.
    pub fn from_env() -> ChaosConfig {
        let mut c = match std::env::var("TRACEGATE_CHAOS").as_deref() {
            Ok("long") => ChaosConfig::long(),
            _ => ChaosConfig::short(),
        };
        let num = |name: &str| -> Option<u64> {
            std::env::var(format!("TRACEGATE_CHAOS_{name}"))
                .ok()
                .map(|v| {
                    v.replace('_', "")
                        .parse()
                        .unwrap_or_else(|e| panic!("TRACEGATE_CHAOS_{name}={v}: {e}"))
                })
        };
        if let Some(v) = num("KILLS") {
            c.min_kills = v;
        }
        if let Some(v) = num("RESTARTS") {
            c.min_restarts = v;
        }
        if let Some(v) = num("CUTS") {
            c.min_cuts = v;
        }
        if let Some(v) = num("EVENTS") {
            c.min_events = v;
        }
        if let Some(v) = num("PLCS") {
            c.plcs = v as usize;
        }
        if let Some(v) = num("MINUTES") {
            c.max_duration = Duration::from_secs(v * 60);
        }
        c.seed = num("SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64
                | 1
        });
        c
    }
}

/// The figures of a run.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    pub seed: u64,
    pub duration: Duration,
    /// Distinct events (seqs) delivered; each is one acknowledged code.
    pub events: u64,
    /// Messages the consumer received (copies included).
    pub messages: u64,
    /// Seqs that arrived more than once.
    pub duplicated: u64,
    pub kills: u64,
    /// Kills that hit a run before it had acknowledged anything (during start-up/recovery).
    pub kills_during_recovery: u64,
    pub broker_restarts: u64,
    pub cuts: u64,
    /// Connections those cuts closed.
    pub connections_cut: u64,
    pub delay_episodes: u64,
    /// From a restart of the agent to the next code a PLC saw acknowledged.
    pub max_recovery: Duration,
    pub mean_recovery: Duration,
    /// After the chaos ended: until the queue was empty and everything delivered.
    pub drain: Duration,
    pub integrity_checks: u64,
    pub schema_checked: u64,
    pub events_target_reached: bool,
}

impl std::fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self.events as f64 / self.duration.as_secs_f64().max(0.001);
        write!(
            f,
            "chaos: seed {seed}, {dur:.0?}: {events} events ({rate:.0}/s) all delivered, \
             {messages} messages, {dup} seqs duplicated; {kills} agent SIGKILLs ({kdr} during \
             start-up), {restarts} broker restarts, {cuts} cuts ({conns} connections), \
             {delays} delay episodes; recovery after a kill: max {maxr:.2?}, mean {meanr:.2?}; \
             drain after the chaos {drain:.2?}; {ic} integrity checks ok, {sc} payloads \
             schema-checked{target}",
            seed = self.seed,
            dur = self.duration,
            events = self.events,
            messages = self.messages,
            dup = self.duplicated,
            kills = self.kills,
            kdr = self.kills_during_recovery,
            restarts = self.broker_restarts,
            cuts = self.cuts,
            conns = self.connections_cut,
            delays = self.delay_episodes,
            maxr = self.max_recovery,
            meanr = self.mean_recovery,
            drain = self.drain,
            ic = self.integrity_checks,
            sc = self.schema_checked,
            target = if self.events_target_reached {
                ""
            } else {
                " (EVENTS TARGET NOT REACHED within the time limit)"
            },
        )
    }
}

/// A small seeded generator (xorshift64*): no dependency, reproducible schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        lo + (hi.saturating_sub(lo)).mul_f64(self.unit())
    }

    fn range(&mut self, (lo, hi): (u64, u64)) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The code PLC `plc` presents as its `n`-th.
pub fn code(plc: usize, n: u64) -> String {
    format!("CHAOS-P{plc}-{n:09}")
}

fn parse_code(text: &str) -> Option<(usize, u64)> {
    let rest = text.strip_prefix("CHAOS-P")?;
    let (p, n) = rest.split_once('-')?;
    Some((p.parse().ok()?, n.parse().ok()?))
}

/// One PLC running its side of the handshake on a thread.
struct PlcRunner {
    _server: PlcServer,
    acked: Arc<AtomicU64>,
    /// Set when a wrong result was seen (the code was not accepted).
    errors: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

fn start_plc(index: usize, stop: Arc<AtomicBool>, abort: Arc<AtomicBool>) -> (PlcRunner, String) {
    let plc = Plc::new();
    let server = PlcServer::tcp(&plc);
    let address = server.address.clone();
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (t_acked, t_errors) = (acked.clone(), errors.clone());
    let thread = std::thread::spawn(move || {
        let mut n: u64 = 1;
        while !stop.load(Ordering::SeqCst) && !abort.load(Ordering::SeqCst) {
            let counter = ((n - 1) % 65535 + 1) as u16;
            plc.present(counter, &code(index, n), &format!("WO-{index}"));
            // Step 4 of the README: wait for `ack = counter`, however long the agent is away.
            loop {
                if plc.wait(Duration::from_millis(200), |m| m.get(ACK) == counter) {
                    break;
                }
                if abort.load(Ordering::SeqCst) {
                    return;
                }
            }
            let result = plc.get(RESULT);
            if result != 1 {
                t_errors.lock().unwrap().push(format!(
                    "code {} acknowledged with result {result}",
                    code(index, n)
                ));
            }
            t_acked.store(n, Ordering::SeqCst);
            n += 1;
        }
    });
    (
        PlcRunner {
            _server: server,
            acked,
            errors,
            thread: Some(thread),
        },
        address,
    )
}

fn source(index: usize, address: &str, poll: &str) -> String {
    format!(
        r#"[[sources]]
id = "plc{index}"
type = "modbus"
station = "st{index}"
validation = "none"
transport = "tcp"
address = "{address}"
poll_interval = "{poll}"
timeout = "500ms"
reconnect_min = "50ms"
reconnect_max = "500ms"
{HANDSHAKE}
"#
    )
}

/// What the consumer knows about one seq.
struct SeqRecord {
    hash: u64,
    copies: u32,
    /// The PLC and code number, if it is a code.
    code: Option<(usize, u64)>,
}

#[derive(Default)]
struct Tally {
    seqs: HashMap<u64, SeqRecord>,
    /// Code → the seq it first arrived under.
    codes: HashMap<(usize, u64), u64>,
    ids: HashSet<String>,
    last_per_source: HashMap<String, u64>,
    messages: u64,
    schema_checked: u64,
    /// Violations, as found (capped).
    errors: Vec<String>,
    error_count: u64,
}

impl Tally {
    fn error(&mut self, e: String) {
        self.error_count += 1;
        if self.errors.len() < 20 {
            self.errors.push(e);
        }
    }
}

/// A persistent-session QoS 1 consumer that checks every message as it arrives and keeps a
/// compact record per seq.
struct Consumer {
    client: Client,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
}

fn schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/schema/event.schema.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn is_event_topic(topic: &str) -> bool {
    !topic.contains("/status/")
        && matches!(
            topic.rsplit('/').next(),
            Some("scan" | "noread" | "invalid" | "alarm")
        )
}

impl Consumer {
    fn connect(port: u16, validate_all: bool) -> Consumer {
        let id = format!("tg-chaos-consumer-{}", std::process::id());
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(1024 * 1024, 64 * 1024);
        let (client, mut connection) = Client::new(options, 64);
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        let (t_client, t_tally, t_stop, t_sub) = (
            client.clone(),
            tally.clone(),
            stop.clone(),
            subscribed.clone(),
        );
        std::thread::spawn(move || {
            let validator = schema();
            for event in connection.iter() {
                if t_stop.load(Ordering::Relaxed) {
                    return;
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                        let _ = t_client.try_subscribe(ALL_TOPICS, QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => t_sub.store(true, Ordering::SeqCst),
                    Ok(Event::Incoming(Packet::Publish(p))) if is_event_topic(&p.topic) => {
                        record(&t_tally, &validator, validate_all, &p.topic, &p.payload);
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !subscribed.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the chaos consumer could not subscribe within 10s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Consumer {
            client,
            tally,
            stop,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

fn record(
    tally: &Mutex<Tally>,
    validator: &jsonschema::Validator,
    validate_all: bool,
    topic: &str,
    payload: &[u8],
) {
    let mut hasher = DefaultHasher::new();
    topic.hash(&mut hasher);
    payload.hash(&mut hasher);
    let hash = hasher.finish();
    let mut t = tally.lock().unwrap();
    t.messages += 1;
    let event: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            t.error(format!(
                "payload on {topic} is not JSON ({e}): {}",
                String::from_utf8_lossy(payload)
            ));
            return;
        }
    };
    let Some(seq) = event["seq"].as_u64() else {
        t.error(format!("event without seq on {topic}: {event}"));
        return;
    };
    if let Some(r) = t.seqs.get_mut(&seq) {
        r.copies += 1;
        if r.hash != hash {
            t.error(format!(
                "seq {seq} arrived again with different bytes or topic: {topic} {event}"
            ));
        }
        return;
    }
    // First copy of this seq.
    if validate_all || t.schema_checked < 2000 || seq % 100 == 0 {
        t.schema_checked += 1;
        let errors: Vec<String> = validator
            .iter_errors(&event)
            .map(|e| format!("at {}: {e}", e.instance_path()))
            .collect();
        if !errors.is_empty() {
            t.error(format!("seq {seq} does not match the schema: {errors:?}"));
        }
    }
    let id = event["id"].as_str().unwrap_or_default().to_string();
    if !t.ids.insert(id.clone()) {
        t.error(format!("id {id} arrived under a second seq ({seq})"));
    }
    let source = event["source"].as_str().unwrap_or_default().to_string();
    let last = t.last_per_source.insert(source.clone(), seq);
    if let Some(prev) = last.filter(|&p| p > seq) {
        t.error(format!(
            "source {source}: seq {seq} arrived after seq {prev} (order per source broken)"
        ));
    }
    let code = event["code"]["text"].as_str().and_then(parse_code);
    match code {
        Some(c) => {
            if let Some(other) = t.codes.insert(c, seq) {
                t.error(format!(
                    "code {} arrived under two seqs, {other} and {seq} (committed twice)",
                    self::code(c.0, c.1)
                ));
            }
        }
        None => t.error(format!("seq {seq} is not a chaos code: {topic} {event}")),
    }
    t.seqs.insert(
        seq,
        SeqRecord {
            hash,
            copies: 1,
            code,
        },
    );
}

/// `PRAGMA integrity_check` on a queue file; `read_only` for the file of a dead agent (no
/// checkpoint on close, so the next run sees the file as the kill left it).
pub fn integrity_check(path: &Path, read_only: bool) -> String {
    use rusqlite::{Connection, OpenFlags};
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::default()
    };
    let conn = Connection::open_with_flags(path, flags)
        .unwrap_or_else(|e| panic!("open {} for integrity_check: {e}", path.display()));
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_else(|e| panic!("integrity_check on {}: {e}", path.display()));
    rows.join("\n")
}

/// Runs the chaos of `config` and checks everything (panics with the evidence on a violation).
pub fn run(config: &ChaosConfig) -> ChaosReport {
    let started = Instant::now();
    let mut rng = Rng(config.seed | 1);
    let mut report = ChaosReport {
        seed: config.seed,
        ..ChaosReport::default()
    };
    eprintln!("chaos: {config:?}");

    let mut broker = Mosquitto::start_persistent();
    let consumer = Consumer::connect(broker.port(), config.validate_all);
    let proxy = Proxy::start(broker.port());

    let stop_plcs = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    // Abort the PLC threads if anything below panics.
    struct AbortOnDrop(Arc<AtomicBool>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _abort_guard = AbortOnDrop(abort.clone());
    let mut plcs = Vec::new();
    let mut sources = String::new();
    for i in 1..=config.plcs {
        let (runner, address) = start_plc(i, stop_plcs.clone(), abort.clone());
        sources.push_str(&source(i, &address, &config.poll_interval));
        plcs.push(runner);
    }
    let text = agent_config(&proxy.mqtt_url(), "", &sources).replace(
        "commit_window = \"5ms\"",
        &format!("commit_window = \"{}\"", config.commit_window),
    );
    // Debug logging of every handover would make a long run's log huge.
    let log = std::env::var("TRACEGATE_TEST_LOG").unwrap_or_else(|_| "info".into());
    let mut agent = Agent::start_with_env(&text, &[("RUST_LOG", log.as_str())]);
    let queue = agent.dir().join("queue.db");
    let acked = |plcs: &[PlcRunner]| -> u64 {
        plcs.iter()
            .map(|p| p.acked.load(Ordering::SeqCst))
            .sum::<u64>()
    };

    let now = Instant::now();
    let mut next_kill = now + rng.between(config.kill_every);
    let mut next_restart = now + rng.between(config.restart_every);
    let mut next_cut = now + rng.between(config.cut_every);
    let mut next_delay = now + rng.between(config.delay_every);
    let mut delay_until: Option<Instant> = None;
    // (restart time, acks at the restart) while a restarted agent has not acknowledged yet.
    let mut recovering: Option<(Instant, u64)> = None;
    let mut recoveries: Vec<Duration> = Vec::new();
    let mut last_progress = (Instant::now(), 0u64);
    let mut last_print = Instant::now();

    loop {
        let now = Instant::now();
        let done = acked(&plcs);
        if let Some((at, before)) = recovering
            && done > before
        {
            recoveries.push(now - at);
            recovering = None;
        }
        if done > last_progress.1 {
            last_progress = (now, done);
        }
        assert!(
            now - last_progress.0 < Duration::from_secs(60),
            "no code acknowledged for 60s (acked {done}); seed {}\n{}",
            config.seed,
            agent.log_tail(60)
        );
        assert!(
            agent.is_running() || recovering.is_some(),
            "the agent died by itself (seed {})\n{}",
            config.seed,
            agent.log_tail(60)
        );
        let errors: Vec<String> = plcs
            .iter()
            .flat_map(|p| p.errors.lock().unwrap().clone())
            .collect();
        assert!(errors.is_empty(), "PLC: {errors:?}\n{}", agent.log_tail(40));
        let targets_met = report.kills >= config.min_kills
            && report.broker_restarts >= config.min_restarts
            && report.cuts >= config.min_cuts;
        let elapsed = now - started;
        if targets_met && (done >= config.min_events || elapsed >= config.max_duration) {
            report.events_target_reached = done >= config.min_events;
            break;
        }
        assert!(
            elapsed < config.max_duration,
            "after {elapsed:?} the chaos targets were not reached: {} kills, {} restarts, {} cuts \
             (seed {})",
            report.kills,
            report.broker_restarts,
            report.cuts,
            config.seed
        );
        if now - last_print >= Duration::from_secs(30) {
            last_print = now;
            eprintln!(
                "chaos: {elapsed:.0?}: {done} codes acknowledged, {} kills, {} restarts, {} cuts",
                report.kills, report.broker_restarts, report.cuts
            );
        }

        if now >= next_kill {
            if recovering.is_some() {
                report.kills_during_recovery += 1;
            }
            // The process dies by itself only if something is wrong: caught above, unless it
            // happened during a start-up, which this catches.
            assert!(
                agent.is_running(),
                "the agent died by itself (seed {})\n{}",
                config.seed,
                agent.log_tail(60)
            );
            agent.kill9();
            report.kills += 1;
            if config.integrity_every > 0
                && report.kills % config.integrity_every == 0
                && queue.exists()
            {
                let check = integrity_check(&queue, true);
                assert_eq!(
                    check, "ok",
                    "integrity_check after kill {} (seed {})",
                    report.kills, config.seed
                );
                report.integrity_checks += 1;
            }
            // Sometimes the agent stays down a little (the PLCs wait for their ack).
            if rng.unit() < 0.3 {
                std::thread::sleep(rng.between((secs(0.0), secs(1.0))));
            }
            agent.restart();
            recovering = Some((Instant::now(), acked(&plcs)));
            // One kill in six lands in the next run's start-up (queue recovery, connecting).
            let pause = if rng.unit() < 1.0 / 6.0 {
                rng.between((secs(0.0), secs(0.15)))
            } else {
                rng.between(config.kill_every)
            };
            next_kill = Instant::now() + pause;
        }
        if now >= next_restart {
            broker.stop();
            std::thread::sleep(rng.between(config.broker_down));
            broker.restart();
            report.broker_restarts += 1;
            next_restart = Instant::now() + rng.between(config.restart_every);
        }
        if now >= next_cut {
            report.connections_cut += proxy.cut() as u64;
            report.cuts += 1;
            next_cut = Instant::now() + rng.between(config.cut_every);
        }
        match delay_until {
            Some(until) if now >= until => {
                proxy.set_delay(Duration::ZERO);
                delay_until = None;
                next_delay = now + rng.between(config.delay_every);
            }
            None if now >= next_delay => {
                proxy.set_delay(Duration::from_millis(rng.range(config.delay_ms)));
                report.delay_episodes += 1;
                delay_until = Some(now + rng.between(config.delay_lasts));
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // The chaos ends: a healthy network and broker, the agent running; each PLC finishes the
    // code it is presenting (it waits for its ack) and stops.
    proxy.set_delay(Duration::ZERO);
    if !broker.is_running() {
        broker.restart();
    }
    stop_plcs.store(true, Ordering::SeqCst);
    let chaos_end = Instant::now();
    for p in &mut plcs {
        let thread = p.thread.take().expect("PLC thread");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "a PLC's last code was not acknowledged within 60s of the chaos ending\n{}",
                agent.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        thread.join().expect("PLC thread");
    }
    if let Some((at, _)) = recovering.take() {
        recoveries.push(Instant::now() - at);
    }
    let acked_per_plc: Vec<u64> = plcs
        .iter()
        .map(|p| p.acked.load(Ordering::SeqCst))
        .collect();
    let total: u64 = acked_per_plc.iter().sum();

    // Everything drains: the queue empties and the consumer has every seq.
    let deadline = Instant::now() + Duration::from_secs(120) + Duration::from_millis(total / 10);
    let last_seq = loop {
        let stats = agent.try_queue_stats_json().ok();
        let (depth, next) = stats
            .as_ref()
            .map(|s| (s["depth"].as_u64(), s["next_seq"].as_u64()))
            .unwrap_or((None, None));
        if let (Some(0), Some(next)) = (depth, next) {
            let last = next - 1;
            let t = consumer.lock();
            if (1..=last).all(|s| t.seqs.contains_key(&s)) {
                break last;
            }
        }
        if Instant::now() >= deadline {
            let t = consumer.lock();
            let missing: Vec<u64> = next
                .map(|n| (1..n).filter(|s| !t.seqs.contains_key(s)).collect())
                .unwrap_or_default();
            panic!(
                "not everything was delivered within the drain deadline: queue {stats:?}; \
                 missing seqs {} (seed {})\n{}",
                crate::delivery::compress(&missing),
                config.seed,
                agent.log_tail(60)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    report.drain = chaos_end.elapsed();
    // Copies still in flight are welcome but not waited for; a moment for stragglers.
    std::thread::sleep(Duration::from_millis(300));

    agent.terminate();
    let check = integrity_check(&queue, false);
    assert_eq!(check, "ok", "integrity_check of the final queue file");
    report.integrity_checks += 1;

    let t = consumer.lock();
    assert!(
        t.error_count == 0,
        "{} violations seen by the consumer (seed {}), first ones:\n{}",
        t.error_count,
        config.seed,
        t.errors.join("\n")
    );
    // 3. Exactly the seqs 1..=last, no extra.
    let extra: Vec<u64> = t.seqs.keys().copied().filter(|&s| s > last_seq).collect();
    assert!(
        extra.is_empty() && t.seqs.len() as u64 == last_seq,
        "seqs beyond the queue's last seq {last_seq}: {extra:?}"
    );
    // 1. Every acknowledged code arrived; 2. under one seq (checked on arrival); no code that
    // was never presented.
    let mut lost = Vec::new();
    for (i, &n) in acked_per_plc.iter().enumerate() {
        let plc = i + 1;
        let mut prev_seq = 0;
        for k in 1..=n {
            match t.codes.get(&(plc, k)) {
                Some(&seq) => {
                    // 4. Each PLC's codes in presentation order have increasing seqs.
                    assert!(
                        seq > prev_seq,
                        "{} has seq {seq}, after a later-presented code's {prev_seq}",
                        code(plc, k)
                    );
                    prev_seq = seq;
                }
                None if lost.len() < 20 => lost.push(code(plc, k)),
                None => {}
            }
        }
    }
    assert!(
        lost.is_empty(),
        "codes the PLC saw acknowledged never arrived (seed {}): {lost:?}",
        config.seed
    );
    assert_eq!(
        t.codes.len() as u64,
        total,
        "every seq is one acknowledged code and every acknowledged code has one seq"
    );
    assert!(
        t.seqs.values().all(|r| r.code.is_some()),
        "only codes were published"
    );

    report.duration = started.elapsed();
    report.events = last_seq;
    report.messages = t.messages;
    report.duplicated = t.seqs.values().filter(|r| r.copies > 1).count() as u64;
    report.schema_checked = t.schema_checked;
    report.max_recovery = recoveries.iter().copied().max().unwrap_or_default();
    report.mean_recovery = if recoveries.is_empty() {
        Duration::ZERO
    } else {
        recoveries.iter().sum::<Duration>() / recoveries.len() as u32
    };
    report
}
