//! `tracegate check`: a bad config stops start-up with exit code 78 (EX_CONFIG) and one line
//! per problem, `<file>:<line>: <key.path>: <message>`; a good one prints the resolved config
//! with secrets masked; every shipped example config passes.

use std::path::{Path, PathBuf};

use tracegate_tests::{CONFIG_FILE, check, check_file, check_with_files};

/// A valid config; each case below breaks one thing in it.
const VALID: &str = r#"[agent]
id = "t1"
site = "plant"
line = "l1"

[store]
path = "queue.db"

[mqtt]
url = "mqtt://127.0.0.1:1884"

[[sources]]
id = "sc1"
type = "scanner"
station = "st1"
transport = "tcp_client"
address = "127.0.0.1:9004"
"#;

/// `VALID` with the first occurrence of `from` replaced by `to`.
fn broken(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "{from:?} is not in the base config");
    VALID.replacen(from, to, 1)
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the config"))
        + 1
}

/// Asserts exit code 78 and exactly one line on stderr:
/// `<dir>/line.toml:<line of `at`>: <key>: …<fragment>…`.
fn assert_problem(config: &str, at: &str, key: &str, fragment: &str) {
    let (code, stdout, stderr) = check(config);
    let line = line_of(config, at);
    assert_eq!(code, 78, "exit code; stderr:\n{stderr}\nconfig:\n{config}");
    assert!(
        stdout.is_empty(),
        "nothing on stdout for a bad config, got:\n{stdout}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = format!("/{CONFIG_FILE}:{line}: {key}: ");
    assert!(
        lines.len() == 1 && lines[0].contains(&expected) && lines[0].contains(fragment),
        "expected one line containing {expected:?} and {fragment:?}, got {} line(s):\n{stderr}",
        lines.len()
    );
}

#[test]
fn unknown_key_in_mqtt() {
    let config = broken(
        "url = \"mqtt://127.0.0.1:1884\"",
        "url = \"mqtt://127.0.0.1:1884\"\nretries = 3",
    );
    assert_problem(
        &config,
        "retries",
        "mqtt.retries",
        "unknown field `retries`",
    );
}

#[test]
fn missing_agent_id() {
    let config = broken("id = \"t1\"\n", "");
    assert_problem(&config, "[agent]", "agent", "missing field `id`");
}

#[test]
fn bad_url_scheme() {
    let config = broken("mqtt://127.0.0.1:1884", "tcp://127.0.0.1:1884");
    assert_problem(
        &config,
        "url =",
        "mqtt.url",
        "must start with mqtt:// or mqtts://",
    );
}

#[test]
fn qos_zero_is_refused() {
    let config = broken("[mqtt]\n", "[mqtt]\nqos = 0\n");
    assert_problem(&config, "qos = 0", "mqtt.qos", "qos 0 is not allowed");
}

#[test]
fn unknown_source_type() {
    let config = broken("type = \"scanner\"", "type = \"plc\"");
    assert_problem(
        &config,
        "type = \"plc\"",
        "sources[0].type",
        "unknown source type \"plc\"",
    );
}

#[test]
fn non_standard_baud_on_a_serial_scanner() {
    let config = broken(
        "transport = \"tcp_client\"\naddress = \"127.0.0.1:9004\"",
        "transport = \"serial\"\nport = \"/dev/ttyUSB0\"\nbaud = 96000",
    );
    assert_problem(
        &config,
        "baud = 96000",
        "sources[0].baud",
        "baud 96000 is not a standard rate",
    );
}

#[test]
fn duplicate_source_id() {
    let config = format!("{VALID}\n[[sources]]\nid = \"sc1\"\ntype = \"simulator\"\n");
    let second = config
        .match_indices("id = \"sc1\"")
        .nth(1)
        .expect("second id")
        .0;
    let line = config[..second].lines().count() + 1;
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 78, "{stderr}");
    let expected = format!("/{CONFIG_FILE}:{line}: sources[1].id: ");
    assert!(
        stderr.lines().count() == 1 && stderr.contains(&expected) && stderr.contains("used twice"),
        "expected one line with {expected:?} and \"used twice\", got:\n{stderr}"
    );
}

#[test]
fn regex_validation_without_pattern() {
    let config = broken(
        "station = \"st1\"",
        "station = \"st1\"\nvalidation = \"regex\"",
    );
    assert_problem(
        &config,
        "validation = \"regex\"",
        "sources[0].validation",
        "needs a `pattern`",
    );
}

#[test]
fn invalid_regex() {
    let config = broken(
        "station = \"st1\"",
        "station = \"st1\"\nvalidation = \"regex\"\npattern = \"([0-9\"",
    );
    assert_problem(
        &config,
        "pattern =",
        "sources[0].pattern",
        "not a valid regular expression",
    );
}

#[test]
fn duration_without_unit() {
    let config = broken(
        "path = \"queue.db\"",
        "path = \"queue.db\"\ncommit_window = 5",
    );
    assert_problem(&config, "commit_window", "store.commit_window", "duration");
}

#[test]
fn bad_size_string() {
    let config = broken(
        "path = \"queue.db\"",
        "path = \"queue.db\"\nmax_bytes = \"12 parsecs\"",
    );
    assert_problem(&config, "max_bytes", "store.max_bytes", "12 parsecs");
}

#[test]
fn password_file_that_does_not_exist() {
    let config = broken(
        "[mqtt]\n",
        "[mqtt]\nusername = \"u\"\npassword_file = \"missing-pw.txt\"\n",
    );
    assert_problem(
        &config,
        "password_file",
        "mqtt.password_file",
        "missing-pw.txt",
    );
}

#[test]
fn toml_syntax_error() {
    let config = broken("site = \"plant\"", "site = \"plant");
    let (code, stdout, stderr) = check(&config);
    assert_eq!(code, 78, "{stderr}");
    assert!(stdout.is_empty());
    let expected = format!("/{CONFIG_FILE}:{}: ", line_of(&config, "site ="));
    assert!(
        stderr.lines().count() == 1 && stderr.contains(&expected),
        "expected one line starting with {expected:?}, got:\n{stderr}"
    );
}

#[test]
fn empty_sources_list() {
    let config = format!(
        "sources = []\n\n{}",
        &VALID[..VALID.find("[[sources]]").unwrap()]
    );
    assert_problem(&config, "sources = []", "sources", "no [[sources]]");
}

#[test]
fn no_sources_at_all() {
    let config = VALID[..VALID.find("[[sources]]").unwrap()].to_string();
    let (code, _, stderr) = check(&config);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.lines().count() == 1
            && stderr.contains(": sources: ")
            && stderr.contains("no [[sources]]"),
        "{stderr}"
    );
}

#[test]
fn terminator_none_without_idle_timeout() {
    let config = broken(
        "address = \"127.0.0.1:9004\"",
        "address = \"127.0.0.1:9004\"\nterminator = \"none\"",
    );
    assert_problem(
        &config,
        "[[sources]]",
        "sources[0].idle_timeout",
        "idle_timeout is required",
    );
}

#[test]
fn valid_config_prints_the_resolved_config_with_the_password_masked() {
    let config = broken(
        "[mqtt]\n",
        "[mqtt]\nusername = \"line1\"\npassword_file = \"mqtt-password\"\n",
    );
    let ((code, stdout, stderr), _dir) =
        check_with_files(&config, &[("mqtt-password", "s3cret\n")]);
    assert_eq!(code, 0, "a valid config passes; stderr:\n{stderr}");
    assert!(
        !stdout.contains("s3cret") && !stderr.contains("s3cret"),
        "the password leaked:\n{stdout}"
    );
    assert!(
        stdout.contains("password"),
        "the resolved config should say a password is set:\n{stdout}"
    );
    // Defaults are filled in.
    for default in [
        "client_id = \"tracegate-t1\"",
        "topic_prefix = \"tracegate/plant/l1\"",
        "max_events = 1000000",
    ] {
        assert!(
            stdout.contains(default),
            "resolved config lacks {default}:\n{stdout}"
        );
    }
}

/// `config/*.toml` and every `drivers/**/sample.toml`.
fn shipped_configs() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("config"))
        .expect("config/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    let mut samples = Vec::new();
    let mut dirs = vec![root.join("drivers")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n == "sample.toml") {
                samples.push(path);
            }
        }
    }
    samples.sort();
    (examples, samples)
}

#[test]
fn every_shipped_config_passes_check_without_opening_devices() {
    let (examples, samples) = shipped_configs();
    assert!(!examples.is_empty(), "config/ holds no example *.toml");
    assert!(!samples.is_empty(), "no drivers/**/sample.toml found");
    let failures: Vec<String> = examples
        .iter()
        .chain(&samples)
        .filter_map(|path| {
            let (code, _, stderr) = check_file(path);
            (code != 0).then(|| format!("{} (exit {code}):\n{stderr}", path.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "shipped configs that fail `tracegate check`:\n{}",
        failures.join("\n")
    );
}
