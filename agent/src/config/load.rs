//! Reading a config file: TOML → structs → semantic checks, with every problem located.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracegate_drivers::modbus::ModbusConfig;
use tracegate_drivers::scanner::ScannerConfig;

use super::locate::{line_at, line_of};
use super::{
    AgentSection, Config, ConfirmConfig, ContextConfig, DriverConfig, MqttConfig, OpsConfig,
    SourceCommon, SourceConfig, StoreConfig, Validation,
};
use crate::simulator::SimulatorConfig;

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key path, e.g. `sources[1].baud`.
    pub path: String,
    /// 1-based line, when it could be found.
    pub line: Option<usize>,
    /// A sentence saying what is wrong.
    pub message: String,
}

/// A config file that cannot be used; start-up stops (exit code 78, EX_CONFIG).
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let file = self.file.display();
            let key = if p.path.is_empty() { "(file)" } else { &p.path };
            match p.line {
                Some(line) => write!(f, "{file}:{line}: {key}: {}", p.message)?,
                None => write!(f, "{file}: {key}: {}", p.message)?,
            }
        }
        Ok(())
    }
}

/// Collects problems while checking; each is located in the text once at the end.
pub(super) struct Problems<'a> {
    text: &'a str,
    list: Vec<ConfigProblem>,
}

impl<'a> Problems<'a> {
    fn new(text: &'a str) -> Self {
        Problems {
            text,
            list: Vec::new(),
        }
    }

    /// Records a problem at `path`.
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let line = line_of(self.text, &path);
        self.list.push(ConfigProblem {
            path,
            line,
            message: message.into(),
        });
    }

    /// True when a problem was already recorded at or under `prefix`.
    pub(super) fn mentions(&self, prefix: &str) -> bool {
        self.list.iter().any(|p| p.path.starts_with(prefix))
    }

    fn at_offset(&mut self, path: String, offset: Option<usize>, message: String) {
        let line = offset
            .map(|o| line_at(self.text, o))
            .or_else(|| line_of(self.text, &path));
        self.list.push(ConfigProblem {
            path,
            line,
            message,
        });
    }
}

/// The file's shape before the sources are split into agent and driver keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    agent: AgentSection,
    store: StoreConfig,
    mqtt: MqttConfig,
    #[serde(default)]
    ops: OpsConfig,
    #[serde(default)]
    context: ContextConfig,
    #[serde(default)]
    confirm: ConfirmConfig,
    #[serde(default)]
    sources: Vec<toml::Table>,
}

/// The keys of a source table that belong to the agent, not to the driver.
const COMMON_KEYS: &[&str] = &[
    "id",
    "station",
    "validation",
    "pattern",
    "aim",
    "dedup_window",
    "dedup",
];

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![ConfigProblem {
            path: String::new(),
            line: None,
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    load_str(&text, path)
}

/// Validates config `text` as if read from `file` (relative paths resolve against its folder).
pub fn load_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let mut problems = Problems::new(text);
    let config = parse(text, file, &mut problems);
    match config {
        Some(config) if problems.list.is_empty() => Ok(config),
        _ => Err(ConfigError {
            file: file.to_path_buf(),
            problems: problems.list,
        }),
    }
}

/// The key path of a deserialization error, as a user writes it: `store.max_events`,
/// `sources[0].port`; empty for the file as a whole. An empty key is shown as `""`, as TOML
/// quotes it, so that it is not taken for the file as a whole; a part serde could not name
/// ends the path there.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if key.is_empty() { "\"\"" } else { key });
            }
            Segment::Unknown => break,
        }
    }
    out
}

fn parse(text: &str, file: &Path, problems: &mut Problems<'_>) -> Option<Config> {
    let raw: RawFile = match toml::Deserializer::parse(text) {
        Ok(de) => match serde_path_to_error::deserialize(de) {
            Ok(raw) => raw,
            Err(e) => {
                let path = key_path(e.path());
                let inner = e.into_inner();
                let start = inner.span().map(|s| s.start);
                problems.at_offset(path, start, inner.message().to_string());
                return None;
            }
        },
        Err(e) => {
            problems.at_offset(
                String::new(),
                e.span().map(|s| s.start),
                e.message().to_string(),
            );
            return None;
        }
    };
    let mut sources = Vec::new();
    for (i, table) in raw.sources.into_iter().enumerate() {
        if let Some(source) = split_source(i, table, problems) {
            sources.push(source);
        }
    }
    let base = file.parent().unwrap_or(Path::new("."));
    let mut config = Config {
        file: file.to_path_buf(),
        agent: raw.agent,
        store: raw.store,
        mqtt: raw.mqtt,
        ops: raw.ops,
        context: raw.context,
        confirm: raw.confirm,
        sources,
        hash: hex(&Sha256::digest(text.as_bytes())),
        warnings: Vec::new(),
    };
    if config.store.path.is_relative() {
        config.store.path = base.join(&config.store.path);
    }
    #[cfg(feature = "opcua")]
    {
        // OPC UA certificates live beside the queue (the agent's state directory).
        let state_dir = config.store.path.parent().unwrap_or(base).to_path_buf();
        for s in &mut config.sources {
            if let DriverConfig::Opcua(o) = &mut s.driver {
                o.resolve_paths(file, &state_dir);
            }
        }
    }
    for path in [
        &mut config.mqtt.password_file,
        &mut config.mqtt.client_key_file,
    ]
    .into_iter()
    .flatten()
    {
        *path = expand_credentials(path);
    }
    for p in [
        &mut config.mqtt.password_file,
        &mut config.mqtt.ca_file,
        &mut config.mqtt.client_cert_file,
        &mut config.mqtt.client_key_file,
        &mut config.ops.control_socket,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    super::check::check(&mut config, problems);
    Some(config)
}

/// Splits one `[[sources]]` table into the agent's keys and the driver's config.
fn split_source(
    i: usize,
    mut table: toml::Table,
    problems: &mut Problems<'_>,
) -> Option<SourceConfig> {
    let at = |key: &str| format!("sources[{i}].{key}");
    let kind = match table.remove("type") {
        Some(toml::Value::String(s)) => s,
        Some(_) => {
            problems.add(
                at("type"),
                "type must be a string: \"scanner\", \"modbus\" or \"simulator\"",
            );
            return None;
        }
        None => {
            problems.add(
                format!("sources[{i}]"),
                "missing key `type` (\"scanner\", \"modbus\" or \"simulator\")",
            );
            return None;
        }
    };
    let mut common = toml::Table::new();
    for key in COMMON_KEYS {
        if let Some(v) = table.remove(*key) {
            common.insert((*key).to_string(), v);
        }
    }
    let common: Option<SourceCommon> = typed(i, common, problems);
    let driver_keys = table.clone();
    let driver = match kind.as_str() {
        "scanner" => typed::<ScannerConfig>(i, table, problems).map(DriverConfig::Scanner),
        "modbus" => typed::<ModbusConfig>(i, table, problems).map(DriverConfig::Modbus),
        #[cfg(feature = "opcua")]
        "opcua" => typed::<tracegate_drivers::opcua::OpcuaConfig>(i, table, problems)
            .map(DriverConfig::Opcua),
        #[cfg(not(feature = "opcua"))]
        "opcua" => {
            problems.add(
                at("type"),
                "this tracegate was built without OPC UA support (the `opcua` feature)",
            );
            None
        }
        "simulator" => typed::<SimulatorConfig>(i, table, problems).map(DriverConfig::Simulator),
        other => {
            problems.add(
                at("type"),
                format!(
                    "unknown source type {other:?}; expected \"scanner\", \"modbus\" or \"simulator\""
                ),
            );
            None
        }
    };
    Some(SourceConfig {
        index: i,
        common: common?,
        kind,
        driver: driver?,
        driver_keys,
    })
}

fn typed<T: for<'de> Deserialize<'de>>(
    i: usize,
    table: toml::Table,
    problems: &mut Problems<'_>,
) -> Option<T> {
    match serde_path_to_error::deserialize(toml::Value::Table(table)) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "?" || inner == "." {
                format!("sources[{i}]")
            } else {
                format!("sources[{i}].{inner}")
            };
            problems.add(path, e.into_inner().message().to_string());
            None
        }
    }
}

/// Expands `${CREDENTIALS_DIRECTORY}` (systemd's LoadCredential= folder) in a secret's path.
fn expand_credentials(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    match (
        text.contains("${CREDENTIALS_DIRECTORY}"),
        std::env::var("CREDENTIALS_DIRECTORY"),
    ) {
        (true, Ok(dir)) => PathBuf::from(text.replace("${CREDENTIALS_DIRECTORY}", &dir)),
        _ => path.to_path_buf(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Validation {
    /// The name used in config and payloads.
    pub fn name(self) -> &'static str {
        match self {
            Validation::None => "none",
            Validation::Gs1 => "gs1",
            Validation::Regex => "regex",
        }
    }
}
