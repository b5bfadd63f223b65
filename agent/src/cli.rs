//! The command line: `run`, `check`, `queue stats`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::event::epoch_ms;
use crate::queue::Store;

/// Exit code for a config that cannot be used (sysexits EX_CONFIG); systemd does not restart
/// on it.
pub const EXIT_CONFIG: u8 = 78;

/// tracegate: every trace-code scan from the line to MQTT, once, in order, provably.
#[derive(Debug, Parser)]
#[command(name = "tracegate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent for one line.
    Run {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and print it resolved (secrets masked). Exit 78 when invalid.
    Check {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Inspect the durable queue.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Depth, bytes, oldest age and sequence numbers of undelivered events.
    Stats {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Loads a config or prints its problems; `Err` carries the exit code.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check { config } => match load(&config) {
            Ok(c) => {
                print!("{}", config::render_resolved(&c));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            match rt.block_on(crate::run::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Queue {
            command: QueueCommand::Stats { config, json },
        } => {
            let config = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match queue_stats(&config, json) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn queue_stats(config: &Config, json: bool) -> Result<String, crate::queue::StoreError> {
    let limits = config.store.limits();
    let store = Store::open(&config.store.path, limits)?;
    let s = store.stats()?;
    let age_ms = s
        .oldest_captured_ms
        .map(|t| (epoch_ms(SystemTime::now()) - t).max(0));
    let full = s.depth >= s.max_events || s.bytes >= s.max_bytes;
    if json {
        let mut v = serde_json::to_value(&s).unwrap_or_default();
        v["oldest_age_ms"] = age_ms.into();
        v["overflow"] = serde_json::to_value(config.store.overflow).unwrap_or_default();
        v["full"] = full.into();
        v["path"] = config.store.path.display().to_string().into();
        return Ok(v.to_string());
    }
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    Ok(format!(
        "queue      {}\n\
         depth      {} events ({:.1}% of {})\n\
         bytes      {} ({:.1}% of {})\n\
         oldest     {}\n\
         seq        {} (next {})\n\
         dropped    {} (overflow = {:?})\n\
         state      {}",
        config.store.path.display(),
        s.depth,
        pct(s.depth, s.max_events),
        s.max_events,
        bytesize::ByteSize::b(s.bytes),
        pct(s.bytes, s.max_bytes),
        bytesize::ByteSize::b(s.max_bytes),
        match age_ms {
            Some(ms) => format!(
                "{} old",
                humantime::format_duration(std::time::Duration::from_secs((ms / 1000) as u64))
            ),
            None => "-".into(),
        },
        match s.oldest_seq {
            Some(first) => format!("{first}..={}", s.next_seq - 1),
            None => "-".into(),
        },
        s.next_seq,
        s.dropped_total,
        config.store.overflow,
        if full { "FULL" } else { "ok" },
    ))
}
