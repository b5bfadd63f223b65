//! The scanner's sample config and every TOML example in its README parse and validate, so the
//! documentation cannot drift from the code.

use std::path::Path;

use tracegate_drivers::scanner::ScannerConfig;

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

fn scanner_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scanner")
}

/// Parses every scanner source of `text` as the agent does; returns how many there were.
fn check_sources(text: &str, origin: &str) -> usize {
    let doc: toml::Table = toml::from_str(text).unwrap_or_else(|e| panic!("{origin}: {e}"));
    let sources = doc["sources"].as_array().expect("[[sources]]");
    let mut count = 0;
    for source in sources {
        let mut table = source.as_table().expect("table").clone();
        assert_eq!(table["type"].as_str(), Some("scanner"), "{origin}");
        let id = table["id"].as_str().unwrap().to_owned();
        for key in AGENT_KEYS {
            table.remove(*key);
        }
        let config: ScannerConfig = toml::Value::Table(table)
            .try_into()
            .unwrap_or_else(|e| panic!("{origin}, source {id}: {e}"));
        if let Err(problems) = config.validate() {
            panic!("{origin}, source {id}: {problems:?}");
        }
        count += 1;
    }
    count
}

#[test]
fn sample_toml_parses_and_validates() {
    let text = std::fs::read_to_string(scanner_dir().join("sample.toml")).unwrap();
    assert_eq!(check_sources(&text, "sample.toml"), 4);
}

/// The ```toml blocks of the README.
fn readme_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(scanner_dir().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
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
    assert!(
        blocks.len() >= 5,
        "expected the reader examples, found {}",
        blocks.len()
    );
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(check_sources(block, &format!("README example {i}")), 1);
    }
}

#[test]
fn every_key_in_the_readme_table_is_shown_in_the_sample() {
    let readme = std::fs::read_to_string(scanner_dir().join("README.md")).unwrap();
    let sample = std::fs::read_to_string(scanner_dir().join("sample.toml")).unwrap();
    let keys: Vec<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert!(keys.len() >= 25, "{keys:?}");
    for key in keys {
        assert!(
            sample.contains(&format!("{key} = ")),
            "sample.toml does not show `{key}`"
        );
    }
}
