//! The command line: `run`, `check`, `status`, `queue stats|peek|export|replay`,
//! `opcua trust`.

#[cfg(feature = "opcua")]
mod opcua;
mod queue;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};

/// Exit code for a config that cannot be used (sysexits EX_CONFIG); systemd does not restart
/// on it.
pub const EXIT_CONFIG: u8 = 78;

/// `tracegate --version`: the version and the git revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("TRACEGATE_GIT_REVISION"),
    ")"
);

/// tracegate: every trace-code scan from the line to MQTT, once, in order, provably.
#[derive(Debug, Parser)]
#[command(name = "tracegate", version = VERSION, about)]
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
    /// Ask the running agent how it is: sources, queue, broker, alarms.
    Status {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print the JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inspect the durable queue, or send delivered events again.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// OPC UA sources: trust a server certificate.
    #[cfg(feature = "opcua")]
    Opcua {
        #[command(subcommand)]
        command: opcua::OpcuaCommand,
    },
}

/// Loads a config or prints its problems; `Err` carries the exit code.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// A small runtime for the commands that talk to the running agent.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    let (path, command) = match cli.command {
        Command::Check { config } => {
            return match load(&config) {
                Ok(c) => {
                    for w in &c.warnings {
                        eprintln!("warning: {w}");
                    }
                    print!("{}", config::render_resolved(&c));
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            };
        }
        Command::Run { config } => (config.clone(), Command::Run { config }),
        Command::Status { config, json } => (config.clone(), Command::Status { config, json }),
        Command::Queue { command } => (command.config().to_path_buf(), Command::Queue { command }),
        #[cfg(feature = "opcua")]
        Command::Opcua { command } => (command.config().to_path_buf(), Command::Opcua { command }),
    };
    let config = match load(&path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = match command {
        Command::Run { .. } => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            // Two workers unless tokio's own TOKIO_WORKER_THREADS says otherwise.
            if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
                rt.worker_threads(2);
            }
            let rt = rt.enable_all().build().expect("tokio runtime");
            rt.block_on(crate::run::run(config)).map_err(|e| {
                tracing::error!("{e:#}");
                e
            })
        }
        Command::Status { json, .. } => block_on(status::status(&config, json)),
        Command::Queue { command } => queue::run(&config, command),
        #[cfg(feature = "opcua")]
        Command::Opcua { command } => opcua::run(&config, command),
        Command::Check { .. } => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
