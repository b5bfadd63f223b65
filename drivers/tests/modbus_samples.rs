//! The modbus sample config and every TOML example in its README parse and validate, so the
//! documentation cannot drift from the code.

use std::path::{Path, PathBuf};

use tracegate_drivers::modbus::{ModbusConfig, check_shared_buses};

/// Keys the agent takes from a `[[sources]]` table before the driver sees it.
const AGENT_KEYS: &[&str] = &[
    "id",
    "type",
    "station",
    "validation",
    "pattern",
    "aim",
    "dedup_window",
    "dedup",
];

fn modbus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/modbus")
}

/// Parses every source of `text` as the agent does; returns the configs.
fn check_sources(text: &str, origin: &str) -> Vec<(String, ModbusConfig)> {
    let doc: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("{origin}: {e}"));
    let sources = doc["sources"].as_array().expect("[[sources]]");
    let mut out = Vec::new();
    for source in sources {
        let mut table = source.as_table().expect("table").clone();
        assert_eq!(table["type"].as_str(), Some("modbus"), "{origin}");
        let id = table["id"].as_str().unwrap().to_owned();
        for key in AGENT_KEYS {
            table.remove(*key);
        }
        let config: ModbusConfig = toml::Value::Table(table)
            .try_into()
            .unwrap_or_else(|e| panic!("{origin}, source {id}: {e}"));
        if let Err(problems) = config.validate() {
            panic!("{origin}, source {id}: {problems:?}");
        }
        out.push((id, config));
    }
    let shared = check_shared_buses(
        out.iter()
            .enumerate()
            .map(|(i, (id, c))| (i, id.as_str(), c)),
    );
    assert!(shared.is_empty(), "{origin}: {shared:?}");
    out
}

fn read(name: &str) -> String {
    std::fs::read_to_string(modbus_dir().join(name)).unwrap()
}

#[test]
fn sample_toml_parses_and_validates() {
    let sources = check_sources(&read("sample.toml"), "sample.toml");
    assert_eq!(sources.len(), 4);
    let plc = &sources[0].1;
    assert_eq!(plc.tags.len(), 5);
    assert!(plc.handshake.as_ref().unwrap().code_length.is_some());
}

/// The ```toml blocks of the README.
fn readme_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in read("README.md").lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_readme_example_parses_and_validates() {
    let blocks = readme_blocks();
    assert_eq!(blocks.len(), 4, "the README's examples");
    let counts: Vec<usize> = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| check_sources(b, &format!("README example {i}")).len())
        .collect();
    assert_eq!(counts, [1, 1, 2, 1]);
}

#[test]
fn every_key_in_the_readme_tables_is_shown_in_the_sample() {
    let readme = read("README.md");
    let sample = read("sample.toml");
    let section = readme
        .split("## Keys")
        .nth(1)
        .and_then(|rest| rest.split("## Examples").next())
        .expect("a Keys section");
    let keys: Vec<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert!(keys.len() >= 30, "{keys:?}");
    for key in keys {
        assert!(
            sample.contains(&format!("\n{key} = ")),
            "sample.toml does not show `{key}`"
        );
    }
}
