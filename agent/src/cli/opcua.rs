//! `tracegate opcua trust --config F <certificate>`: trust an OPC UA server's certificate.
//!
//! An opcua source refuses a server certificate that is not in its trust list and saves it in
//! `<pki_dir>/rejected/`; its log names the file. This command puts a certificate (DER or PEM,
//! from rejected/ or from the server's administrator) into `<pki_dir>/trusted/` under the name
//! the client looks for, for every opcua source of the line. The running agent uses it at its
//! next connect attempt; no restart is needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::{Config, DriverConfig};

#[derive(Debug, Subcommand)]
pub enum OpcuaCommand {
    /// Trust a server certificate (DER or PEM) for the line's opcua sources.
    Trust {
        /// The line's config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The certificate, e.g. the file the refusal named in <pki_dir>/rejected/.
        certificate: PathBuf,
    },
}

impl OpcuaCommand {
    pub fn config(&self) -> &Path {
        match self {
            OpcuaCommand::Trust { config, .. } => config,
        }
    }
}

pub fn run(config: &Config, command: OpcuaCommand) -> anyhow::Result<()> {
    let OpcuaCommand::Trust { certificate, .. } = command;
    let stores: BTreeSet<PathBuf> = config
        .sources
        .iter()
        .filter_map(|s| match &s.driver {
            DriverConfig::Opcua(o) => Some(o.pki()),
            _ => None,
        })
        .collect();
    if stores.is_empty() {
        bail!("{} has no opcua source", config.file.display());
    }
    for pki in stores {
        let trusted = tracegate_drivers::opcua::pki::trust(&pki, &certificate)
            .with_context(|| format!("trusting {}", certificate.display()))?;
        println!("trusted: {}", trusted.display());
    }
    Ok(())
}
