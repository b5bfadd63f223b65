//! Config loading: every shipped example parses; every error names file, key and line.

use std::path::Path;

use super::{DriverConfig, Overflow, load, load_str};

const GOOD: &str = r#"
[agent]
id = "gw1"
site = "plant"
line = "l1"

[store]
path = "q.db"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[sources]]
id = "sim"
type = "simulator"
rate = 5.0
"#;

fn problems(text: &str) -> Vec<(String, Option<usize>, String)> {
    let err =
        load_str(text, Path::new("/etc/tracegate/l1.toml")).expect_err("config should be rejected");
    err.problems
        .into_iter()
        .map(|p| (p.path, p.line, p.message))
        .collect()
}

#[test]
fn every_example_config_in_the_repo_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["config", "drivers/src/scanner"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    assert!(
        files.len() >= 2,
        "expected example configs, found {files:?}"
    );
    for file in files {
        if let Err(e) = load(&file) {
            panic!("{} does not load:\n{e}", file.display());
        }
    }
}

#[test]
fn defaults_are_applied_and_relative_paths_resolve_against_the_file() {
    let c = load_str(GOOD, Path::new("/etc/tracegate/l1.toml")).unwrap();
    assert_eq!(c.store.path, Path::new("/etc/tracegate/q.db"));
    assert_eq!(c.store.max_events, 1_000_000);
    assert_eq!(c.store.overflow, Overflow::Block);
    assert_eq!(c.store.commit_window, std::time::Duration::from_millis(5));
    assert_eq!(c.mqtt.qos, 1);
    assert_eq!(c.mqtt.client_id(&c.agent), "tracegate-gw1");
    assert_eq!(c.mqtt.topic_prefix(&c.agent), "tracegate/plant/l1");
    assert_eq!(c.sources[0].station(), "sim");
    assert!(matches!(c.sources[0].driver, DriverConfig::Simulator(_)));
    assert_eq!(c.hash.len(), 64);
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let text = GOOD.replace("url = ", "colour = \"red\"\nurl = ");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "mqtt.colour");
    assert_eq!(p[0].1, Some(11));
    assert!(p[0].2.contains("unknown field `colour`"), "{p:?}");
}

#[test]
fn unknown_driver_key_is_named_with_the_source_index() {
    let text = GOOD.replace("rate = 5.0", "rate = 5.0\nbaud = 9600");
    let p = problems(&text);
    assert_eq!(p[0].0, "sources[0].baud");
    assert_eq!(p[0].1, Some(17));
}

#[test]
fn a_duration_without_unit_is_refused() {
    let text = GOOD.replace("path = \"q.db\"", "path = \"q.db\"\ncommit_window = 5");
    let p = problems(&text);
    assert_eq!(p[0].0, "store.commit_window");
    assert_eq!(p[0].1, Some(9));
}

#[test]
fn semantic_problems_are_all_reported_at_once() {
    let text = GOOD
        .replace("id = \"gw1\"", "id = \"gw 1\"")
        .replace("mqtt://127.0.0.1:1883", "tcp://broker")
        .replace("rate = 5.0", "rate = 0.0");
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(keys, ["agent.id", "mqtt.url", "sources[0].rate"]);
    assert_eq!(p[0].1, Some(3));
    assert_eq!(p[1].1, Some(11));
    assert_eq!(
        p[2].1,
        Some(16),
        "a missing or bad driver key points into its source"
    );
}

#[test]
fn the_error_text_is_one_line_per_problem_with_file_line_and_key() {
    let text = GOOD.replace("mqtt://127.0.0.1:1883", "tcp://broker");
    let err = load_str(&text, Path::new("/etc/tracegate/l1.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/tracegate/l1.toml:11: mqtt.url: url \"tcp://broker\" must start with mqtt:// or mqtts://"
    );
}

#[test]
fn a_syntax_error_names_its_line() {
    let text = GOOD.replace("[store]", "[store\n");
    let p = problems(&text);
    assert_eq!(p[0].1, Some(7));
}

#[test]
fn a_malformed_value_names_its_key_and_line() {
    // Found by the config fuzz target: a control character inside a number. The document
    // parses, the value does not; the one problem names the key and its line.
    let text = GOOD.replace("[store]", "[store]\nmax_events = 1_000_0\u{1d}0");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, "store.max_events");
    assert_eq!(p[0].1, Some(8));
}

#[test]
fn an_empty_key_is_named_as_toml_quotes_it() {
    // Found by the config fuzz target: `''=''` was reported as a problem of the whole file.
    let p = problems(&format!("''=''\n{GOOD}"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0.as_str(), p[0].1), ("\"\"", Some(1)), "{p:?}");
    let p = problems(&GOOD.replace("[store]", "[store]\n\"\" = 1"));
    assert_eq!(p[0].0, "store.\"\"", "{p:?}");
}

#[test]
fn the_password_is_read_from_its_file_and_never_rendered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let text = GOOD.replace("url = ", "username = \"u\"\npassword_file = \"pw\"\nurl = ");
    let c = load_str(&text, &dir.path().join("l1.toml")).unwrap();
    assert_eq!(c.mqtt.password.as_deref(), Some("s3cret"));
    let shown = super::render_resolved(&c);
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("password = \"******** (read from password_file)\""));
}
