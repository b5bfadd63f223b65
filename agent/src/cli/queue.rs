//! `tracegate queue …`: stats, peek, export and replay. Reads open the queue file directly
//! (SQLite's WAL lets them run beside the agent); replay goes through the running agent when
//! there is one, so its publisher starts again from the front at once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Subcommand;
use hyper::Method;

use crate::config::Config;
use crate::event::epoch_ms;
use crate::ops::client::{self, ClientError};
use crate::queue::{ScanFilter, ScannedRow, Store};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Depth, bytes, oldest age and sequence numbers of undelivered events; with [confirm],
    /// the published events awaiting the consumer's confirmation.
    Stats {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The next undelivered events, as JSON lines.
    Peek {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 10)]
        limit: u64,
    },
    /// Every event still held (undelivered and retained delivered ones), as JSON lines.
    Export {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Only events captured at or after this time: RFC 3339 ("2026-11-21T08:00:00Z") or
        /// a duration ago ("2h").
        #[arg(long)]
        since: Option<String>,
        /// Only events with this seq or higher.
        #[arg(long)]
        from_seq: Option<u64>,
    },
    /// Send delivered events again (same id, seq and bytes) when the upstream lost them.
    Replay {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Events captured at or after this time: RFC 3339 or a duration ago ("2h").
        #[arg(long, required_unless_present = "from_seq")]
        since: Option<String>,
        /// Events with this seq or higher.
        #[arg(long)]
        from_seq: Option<u64>,
    },
}

impl QueueCommand {
    /// The config file the command names.
    pub fn config(&self) -> &Path {
        match self {
            QueueCommand::Stats { config, .. }
            | QueueCommand::Peek { config, .. }
            | QueueCommand::Export { config, .. }
            | QueueCommand::Replay { config, .. } => config,
        }
    }
}

/// Runs a queue command.
pub fn run(config: &Config, command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::Stats { json, .. } => stats(config, json),
        QueueCommand::Peek { limit, .. } => {
            let filter = ScanFilter {
                from_seq: 0,
                since_ms: i64::MIN,
                queued_only: true,
                limit,
            };
            dump(config, &filter)
        }
        QueueCommand::Export {
            since, from_seq, ..
        } => dump(config, &filter(since.as_deref(), from_seq)?),
        QueueCommand::Replay {
            since, from_seq, ..
        } => replay(config, &filter(since.as_deref(), from_seq)?),
    }
}

fn open(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open_existing(&config.store.path, config.limits())?)
}

/// A time given as RFC 3339 or as a duration before now, in ms since the epoch.
pub fn parse_since(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(epoch_ms(t));
    }
    match humantime::parse_duration(text) {
        Ok(ago) => Ok(epoch_ms(SystemTime::now() - ago)),
        Err(_) => bail!(
            "--since {text:?} is neither a time like 2026-11-21T08:00:00Z nor a duration like 2h"
        ),
    }
}

fn filter(since: Option<&str>, from_seq: Option<u64>) -> anyhow::Result<ScanFilter> {
    Ok(ScanFilter {
        from_seq: from_seq.unwrap_or(0),
        since_ms: since.map(parse_since).transpose()?.unwrap_or(i64::MIN),
        queued_only: false,
        limit: u64::MAX,
    })
}

/// One JSON line per event: its state, and the payload as published.
fn dump(config: &Config, filter: &ScanFilter) -> anyhow::Result<()> {
    let store = open(config)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    store.scan(filter, |row: ScannedRow| {
        let event: serde_json::Value =
            serde_json::from_slice(&row.payload).unwrap_or(serde_json::Value::Null);
        let line = serde_json::json!({
            "seq": row.seq,
            "state": row.state,
            "published_ms": row.published_ms,
            "topic": row.topic,
            "event": event,
        });
        writeln!(out, "{line}")
    })?;
    out.flush().ok();
    Ok(())
}

fn replay(config: &Config, filter: &ScanFilter) -> anyhow::Result<()> {
    let query = format!(
        "/queue/replay?from_seq={}&since_ms={}",
        filter.from_seq, filter.since_ms
    );
    let asked = super::block_on(client::request(
        &config.control_socket(),
        Method::POST,
        &query,
    ));
    match asked {
        Ok((code, body)) if code.is_success() => {
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            println!(
                "{} delivered events queued again; the running agent is sending them",
                v["replayed"]
            );
            Ok(())
        }
        Ok((code, body)) => bail!(
            "the agent answered {code}: {}",
            String::from_utf8_lossy(&body)
        ),
        Err(ClientError::NotRunning { .. }) => {
            let mut store = open(config)?;
            let n = store.replay(filter).context("replay")?;
            println!("{n} delivered events queued again; they are sent when the agent starts");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn stats(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = open(config)?;
    let s = store.stats()?;
    let age_ms = s
        .oldest_captured_ms
        .map(|t| (epoch_ms(SystemTime::now()) - t).max(0));
    let full = s.depth + s.awaiting >= s.max_events || s.bytes + s.awaiting_bytes >= s.max_bytes;
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["oldest_age_ms"] = age_ms.into();
        v["oldest_awaiting_age_ms"] = s
            .oldest_awaiting_published_ms
            .map(|t| (epoch_ms(SystemTime::now()) - t).max(0))
            .into();
        v["overflow"] = serde_json::to_value(config.store.overflow)?;
        v["full"] = full.into();
        v["path"] = config.store.path.display().to_string().into();
        println!("{v}");
        return Ok(());
    }
    let pct = |a: u64, b: u64| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    let size = |b: u64| bytesize::ByteSize::b(b).to_string();
    println!("queue      {}", config.store.path.display());
    println!(
        "depth      {} events ({:.1}% of {})",
        s.depth,
        pct(s.depth, s.max_events),
        s.max_events
    );
    println!(
        "bytes      {} ({:.1}% of {})",
        size(s.bytes),
        pct(s.bytes, s.max_bytes),
        size(s.max_bytes)
    );
    match age_ms {
        Some(ms) => println!(
            "oldest     {} old",
            humantime::format_duration(Duration::from_secs((ms / 1000) as u64))
        ),
        None => println!("oldest     -"),
    }
    match s.oldest_seq {
        Some(first) => println!(
            "seq        {first}..={} undelivered (next {})",
            s.next_seq - 1,
            s.next_seq
        ),
        None => println!("seq        none undelivered (next {})", s.next_seq),
    }
    if config.confirm.enabled {
        // Published (the broker acknowledged them) but not confirmed by the consumer yet.
        let oldest = match s.oldest_awaiting_published_ms {
            Some(t) => format!(
                "oldest published {} ago",
                humantime::format_duration(Duration::from_secs(
                    ((epoch_ms(SystemTime::now()) - t).max(0) / 1000) as u64
                ))
            ),
            None => "none waiting".into(),
        };
        println!(
            "awaiting   {} published events, {} unconfirmed ({oldest})",
            s.awaiting,
            size(s.awaiting_bytes)
        );
    }
    println!(
        "retained   {} {} events, {}",
        s.retained,
        if config.confirm.enabled {
            "confirmed"
        } else {
            "delivered"
        },
        size(s.retained_bytes)
    );
    println!(
        "dropped    {} (overflow = {:?})",
        s.dropped_total, config.store.overflow
    );
    println!("state      {}", if full { "FULL" } else { "ok" });
    Ok(())
}
