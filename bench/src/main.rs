//! tracegate-bench: the performance figures of docs/performance.md, reproducible.
//!
//! ```sh
//! cargo build --release -p tracegate -p tracegate-bench
//! cargo run --release -p tracegate-bench -- all          # full run, ~10 minutes
//! cargo run --release -p tracegate-bench -- smoke        # seconds; CI (asserts flow, not timings)
//! ```
//!
//! It starts its own mosquitto on a free port, the agent (the real binary, as a separate process)
//! with a TCP-scanner source in push mode, plays the reader (load generator) and the consumer (a
//! QoS 1 subscriber), and reads the agent's RSS, CPU time and disk writes from /proc.

mod agent;
mod broker;
mod phases;
mod raw;
mod reader;
mod stats;
mod subscriber;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
usage: tracegate-bench <all|smoke|latency|throughput|backlog|idle|sizes> [options]

  all          every phase with the documented sizes (~10 minutes)
  smoke        every phase, tiny: checks that events flow and figures come out (no timings)
  latency      idle, then 1, 100 and 1000 events/s
  throughput   pipelined agent vs the raw rumqttc ceiling
  backlog      1M events with the broker down, then the drain
  idle         the idle agent only
  sizes        stripped binary sizes

options:
  --agent PATH      the tracegate binary (default: next to this executable)
  --aarch64 PATH    an aarch64 tracegate binary for `sizes` (default:
                    <target>/aarch64-unknown-linux-gnu/release/tracegate if it exists)
  --dir DIR         where the queues and the broker live (default: $TMPDIR or /tmp; must be
                    the real disk, not tmpfs)
  --json FILE       also write every figure as JSON
  --keep            keep the work folder
  --idle SECS       idle measurement (default 30)
  --secs SECS       duration of the 100 and 1000 events/s phases (default 30)
  --secs-1 SECS     duration of the 1 event/s phase (default 60)
  --events N        events per throughput round (default 50000)
  --rounds N        throughput rounds (default 3)
  --backlog N       backlog size (default 1000000)
  --preload N       events pushed and delivered before the rate phases, so that they run in the
                    steady state of a long-running agent: the retention of delivered events
                    (retain_events, default 100000) is full and every commit prunes (default 100000)
  --window N        pipelined reader: codes without a reply (default 200; the driver allows 256)
  --set S.K=V       override a key of the agent's generated config, V in TOML syntax, e.g.
                    --set 'store.commit_window=\"10ms\"' --set store.retain_events=0 (repeatable)
  --agent-env K=V   extra environment for the agent, e.g. MALLOC_ARENA_MAX=1 (repeatable)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    All,
    Smoke,
    Latency,
    Throughput,
    Backlog,
    Idle,
    Sizes,
}

#[derive(Debug, Clone)]
pub struct Opts {
    pub mode: Mode,
    pub agent: PathBuf,
    pub aarch64: Option<PathBuf>,
    pub dir: PathBuf,
    pub json: Option<PathBuf>,
    pub keep: bool,
    pub idle_secs: f64,
    pub rate_secs: f64,
    pub rate1_secs: f64,
    pub events: u64,
    pub rounds: u32,
    pub backlog: u64,
    pub window: usize,
    pub preload: u64,
    pub overrides: Vec<String>,
    pub agent_env: Vec<(String, String)>,
}

fn parse() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let mode = match args.next().as_deref() {
        Some("all") => Mode::All,
        Some("smoke") => Mode::Smoke,
        Some("latency") => Mode::Latency,
        Some("throughput") => Mode::Throughput,
        Some("backlog") => Mode::Backlog,
        Some("idle") => Mode::Idle,
        Some("sizes") => Mode::Sizes,
        Some("-h" | "--help") | None => return Err(String::new()),
        Some(other) => return Err(format!("unknown command {other:?}")),
    };
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.to_path_buf()))
        .unwrap_or_default();
    let smoke = mode == Mode::Smoke;
    let mut o = Opts {
        mode,
        agent: exe_dir.join("tracegate"),
        aarch64: None,
        dir: std::env::temp_dir(),
        json: None,
        keep: false,
        idle_secs: if smoke { 1.0 } else { 30.0 },
        rate_secs: if smoke { 1.0 } else { 30.0 },
        rate1_secs: if smoke { 2.0 } else { 60.0 },
        events: if smoke { 2000 } else { 50_000 },
        rounds: if smoke { 1 } else { 3 },
        backlog: if smoke { 3000 } else { 1_000_000 },
        window: 200,
        preload: if smoke { 500 } else { 100_000 },
        overrides: Vec::new(),
        agent_env: Vec::new(),
    };
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let num = |v: String, name: &str| -> Result<f64, String> {
            v.replace('_', "")
                .parse::<f64>()
                .map_err(|_| format!("{name}: not a number: {v}"))
        };
        match a.as_str() {
            "--agent" => o.agent = PathBuf::from(val("--agent")?),
            "--aarch64" => o.aarch64 = Some(PathBuf::from(val("--aarch64")?)),
            "--dir" => o.dir = PathBuf::from(val("--dir")?),
            "--json" => o.json = Some(PathBuf::from(val("--json")?)),
            "--keep" => o.keep = true,
            "--set" => o.overrides.push(val("--set")?),
            "--agent-env" => {
                let kv = val("--agent-env")?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or(format!("--agent-env {kv}: expected NAME=VALUE"))?;
                o.agent_env.push((k.to_string(), v.to_string()));
            }
            "--idle" => o.idle_secs = num(val(&a)?, &a)?,
            "--secs" => o.rate_secs = num(val(&a)?, &a)?,
            "--secs-1" => o.rate1_secs = num(val(&a)?, &a)?,
            "--events" => o.events = num(val(&a)?, &a)? as u64,
            "--rounds" => o.rounds = num(val(&a)?, &a)?.max(1.0) as u32,
            "--backlog" => o.backlog = num(val(&a)?, &a)? as u64,
            "--preload" => o.preload = num(val(&a)?, &a)? as u64,
            "--window" => o.window = (num(val(&a)?, &a)? as usize).clamp(1, 256),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.mode != Mode::Sizes && !o.agent.is_file() {
        return Err(format!(
            "no agent binary at {}: build it (cargo build --release -p tracegate) or pass --agent",
            o.agent.display()
        ));
    }
    Ok(o)
}

fn main() -> ExitCode {
    util::clock_start();
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("tracegate-bench: {e}\n");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // A hard ceiling on the whole run: a stuck phase fails instead of hanging CI.
    let limit = match opts.mode {
        Mode::Smoke => Duration::from_secs(300),
        _ => Duration::from_secs(4 * 3600),
    };
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("tracegate-bench: exceeded its overall limit of {limit:?}; aborting");
        std::process::exit(3);
    });
    match phases::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ntracegate-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
