//! Semantic checks of a parsed config: everything serde cannot say (ranges, references,
//! unique ids, files that must exist). Reads the password file.

use std::collections::HashSet;
use std::time::Duration;

use super::load::Problems;
use super::{Config, DriverConfig, Validation};

/// Characters allowed in ids that become topic levels.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

const NAME_RULE: &str =
    "use 1–64 letters, digits, '.', '_' or '-' (it becomes an MQTT topic level)";

pub(super) fn check(config: &mut Config, p: &mut Problems<'_>) {
    for (key, value) in [
        ("agent.id", &config.agent.id),
        ("agent.site", &config.agent.site),
        ("agent.line", &config.agent.line),
    ] {
        if !is_name(value) {
            p.add(key, format!("{value:?} is not a valid name; {NAME_RULE}"));
        }
    }
    check_store(config, p);
    check_context(config, p);
    warn_readable_secrets(config);
    if config.confirm.republish_after < Duration::from_secs(1) {
        p.add(
            "confirm.republish_after",
            "republish_after must be at least 1s",
        );
    }
    if let Some(listen) = &config.ops.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            p.add(
                "ops.listen",
                format!("listen {listen:?} must be an address and port such as \"127.0.0.1:9464\""),
            );
        }
    }
    check_mqtt(config, p);
    check_sources(config, p);
}

/// Warns about the config and secret files other users may read.
fn warn_readable_secrets(config: &mut Config) {
    use std::os::unix::fs::PermissionsExt;
    let m = &config.mqtt;
    let files = [
        ("the config file", Some(&config.file)),
        ("mqtt.password_file", m.password_file.as_ref()),
        ("mqtt.client_key_file", m.client_key_file.as_ref()),
    ];
    let mut warnings = Vec::new();
    for (what, file) in files {
        let Some(file) = file else { continue };
        if let Ok(meta) = std::fs::metadata(file) {
            if meta.permissions().mode() & 0o004 != 0 {
                warnings.push(format!(
                    "{what} {} is readable by every user; `chmod o-r` it (or use a systemd credential)",
                    file.display()
                ));
            }
        }
    }
    config.warnings.extend(warnings);
}

fn check_context(config: &Config, p: &mut Problems<'_>) {
    let c = &config.context;
    let stations: HashSet<&str> = config.sources.iter().map(|s| s.station()).collect();
    let mut keys = |at: String, list: &[String]| {
        let mut seen = HashSet::new();
        for (i, k) in list.iter().enumerate() {
            if !is_name(k) {
                p.add(
                    format!("{at}[{i}]"),
                    format!("{k:?} is not a valid context key; {NAME_RULE}"),
                );
            } else if !seen.insert(k) {
                p.add(
                    format!("{at}[{i}]"),
                    format!("context key {k:?} is listed twice"),
                );
            }
        }
    };
    keys("context.keys".into(), &c.keys);
    for (station, list) in &c.stations {
        keys(format!("context.stations.{station}"), list);
    }
    for station in c.stations.keys() {
        if !stations.contains(station.as_str()) {
            p.add(
                format!("context.stations.{station}"),
                format!("no source belongs to station {station:?}"),
            );
        }
    }
}

/// The context keys a PLC source writes to its tags must be keys MES may set for the
/// source's station; any other would stay empty on the HMI for ever.
fn check_context_tags(config: &Config, s: &super::SourceConfig, p: &mut Problems<'_>) {
    let keys: Vec<&str> = match &s.driver {
        DriverConfig::Modbus(m) => m.context_tags.iter().map(|t| t.key.as_str()).collect(),
        #[cfg(feature = "opcua")]
        DriverConfig::Opcua(o) => o.context_tags.iter().map(|t| t.key.as_str()).collect(),
        _ => Vec::new(),
    };
    let station = s.station();
    let c = &config.context;
    let station_keys = c.stations.get(station);
    for (j, key) in keys.into_iter().enumerate() {
        let allowed = c.keys.iter().chain(station_keys.into_iter().flatten());
        if !key.is_empty() && !allowed.into_iter().any(|k| k == key) {
            p.add(
                format!("sources[{}].context_tags[{j}].key", s.index),
                format!(
                    "source `{}`: context key `{key}` is not one MES may set for station \
                     {station} (add it to [context] keys or context.stations.{station})",
                    s.common.id
                ),
            );
        }
    }
}

fn check_store(config: &Config, p: &mut Problems<'_>) {
    let s = &config.store;
    if s.max_events == 0 {
        p.add("store.max_events", "max_events must be at least 1");
    }
    if s.max_bytes.as_u64() < 64 * 1024 {
        p.add(
            "store.max_bytes",
            format!(
                "max_bytes {} is too small; use at least 64 KiB",
                s.max_bytes
            ),
        );
    }
    if !(1..=10_000).contains(&s.commit_batch) {
        p.add(
            "store.commit_batch",
            format!("commit_batch {} is out of range 1..=10000", s.commit_batch),
        );
    }
    if s.commit_window > Duration::from_secs(1) {
        p.add(
            "store.commit_window",
            "commit_window longer than 1s would hold every scan's acknowledgement that long",
        );
    }
    if s.path.as_os_str().is_empty() {
        p.add("store.path", "path must name the queue's database file");
    }
}

/// Scheme, host and port of an MQTT url.
pub fn parse_mqtt_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!("url {url:?} must start with mqtt:// or mqtts://"));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "url {url:?} must be just scheme://host[:port] (credentials go in username/password_file)"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || rest.starts_with('[') => {
            match port.parse::<u16>() {
                Ok(port) if port > 0 => (h, port),
                _ => return Err(format!("url {url:?} has an invalid port {port:?}")),
            }
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("url {url:?} names no host"));
    }
    Ok((tls, host.to_string(), port))
}

fn check_mqtt(config: &mut Config, p: &mut Problems<'_>) {
    let m = &mut config.mqtt;
    let tls = match parse_mqtt_url(&m.url) {
        Ok((tls, _, _)) => tls,
        Err(e) => {
            p.add("mqtt.url", e);
            false
        }
    };
    if !matches!(m.qos, 1 | 2) {
        p.add(
            "mqtt.qos",
            format!(
                "qos {} is not allowed: events need 1 (or 2); QoS 0 is never confirmed",
                m.qos
            ),
        );
    }
    if m.keepalive < Duration::from_secs(1) || m.keepalive > Duration::from_secs(65_535) {
        p.add("mqtt.keepalive", "keepalive must be between 1s and 65535s");
    }
    if !(1..=1000).contains(&m.inflight) {
        p.add(
            "mqtt.inflight",
            format!("inflight {} is out of range 1..=1000", m.inflight),
        );
    }
    if m.reconnect_min > m.reconnect_max || m.reconnect_min.is_zero() {
        p.add(
            "mqtt.reconnect_min",
            "reconnect_min must be above zero and not above reconnect_max",
        );
    }
    if let Some(id) = &m.client_id {
        if id.is_empty() || id.len() > 128 {
            p.add("mqtt.client_id", "client_id must be 1–128 characters");
        }
    }
    if let Some(prefix) = &m.topic_prefix {
        if prefix.is_empty()
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix.contains(['+', '#', ' '])
            || prefix.split('/').any(str::is_empty)
        {
            p.add("mqtt.topic_prefix", format!("topic_prefix {prefix:?} must be levels separated by '/', without '+', '#', spaces, empty levels or a leading/trailing '/'"));
        }
    }
    match (&m.username, &m.password_file) {
        (None, Some(_)) => p.add("mqtt.password_file", "password_file needs username"),
        (_, Some(file)) => match std::fs::read_to_string(file) {
            Ok(text) => m.password = Some(text.lines().next().unwrap_or("").to_string()),
            Err(e) => p.add(
                "mqtt.password_file",
                format!("cannot read {}: {e}", file.display()),
            ),
        },
        _ => {}
    }
    match (&m.client_cert_file, &m.client_key_file) {
        (Some(_), None) => p.add(
            "mqtt.client_cert_file",
            "client_cert_file needs client_key_file",
        ),
        (None, Some(_)) => p.add(
            "mqtt.client_key_file",
            "client_key_file needs client_cert_file",
        ),
        (Some(cert), Some(key)) => {
            if !tls {
                p.add(
                    "mqtt.client_cert_file",
                    "a client certificate is only used with an mqtts:// url",
                );
            }
            for (k, f) in [
                ("mqtt.client_cert_file", cert),
                ("mqtt.client_key_file", key),
            ] {
                if let Err(e) = std::fs::metadata(f) {
                    p.add(k, format!("cannot read {}: {e}", f.display()));
                }
            }
        }
        (None, None) => {}
    }
    if let Some(ca) = &m.ca_file {
        if !tls {
            p.add("mqtt.ca_file", "ca_file is only used with an mqtts:// url");
        } else if let Err(e) = std::fs::metadata(ca) {
            p.add("mqtt.ca_file", format!("cannot read {}: {e}", ca.display()));
        }
    }
}

fn check_sources(config: &Config, p: &mut Problems<'_>) {
    // A source that failed to parse is already reported; only an empty list is a problem.
    if config.sources.is_empty() && !p.mentions("sources[") {
        p.add(
            "sources",
            "no [[sources]] configured; the agent would have nothing to read",
        );
    }
    let mut ids = HashSet::new();
    for s in &config.sources {
        let i = s.index;
        let at = |key: &str| format!("sources[{i}].{key}");
        let c = &s.common;
        if !is_name(&c.id) {
            p.add(
                at("id"),
                format!("{:?} is not a valid source id; {NAME_RULE}", c.id),
            );
        } else if !ids.insert(c.id.clone()) {
            p.add(
                at("id"),
                format!("source id {:?} is used twice; ids must be unique", c.id),
            );
        }
        if let Some(station) = &c.station {
            if !is_name(station) {
                p.add(
                    at("station"),
                    format!("{station:?} is not a valid station; {NAME_RULE}"),
                );
            }
        }
        match (c.validation, &c.pattern) {
            (Validation::Regex, None) => {
                p.add(at("validation"), "validation = \"regex\" needs a `pattern`")
            }
            (Validation::Regex, Some(re)) => {
                if let Err(e) = regex::Regex::new(re) {
                    p.add(
                        at("pattern"),
                        // regex's message spans lines (pattern, caret, error); one line per problem.
                        format!(
                            "pattern is not a valid regular expression: {}",
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or_default()
                                .trim_start_matches("error: ")
                        ),
                    );
                }
            }
            (_, Some(_)) => p.add(
                at("pattern"),
                "pattern is only used with validation = \"regex\"",
            ),
            _ => {}
        }
        if c.dedup_window
            .is_some_and(|w| w.is_zero() || w > Duration::from_secs(3600))
        {
            p.add(
                at("dedup_window"),
                "dedup_window must be above zero and at most 1h",
            );
        }
        let driver_problems = match &s.driver {
            DriverConfig::Scanner(d) => d.validate().err(),
            DriverConfig::Modbus(d) => d.validate().err(),
            #[cfg(feature = "opcua")]
            DriverConfig::Opcua(d) => d.validate().err(),
            DriverConfig::Simulator(d) => d.validate().err(),
        };
        for (key, message) in driver_problems.unwrap_or_default() {
            p.add(at(&key), format!("source `{}`: {message}", c.id));
        }
        check_context_tags(config, s, p);
    }
    // Modbus RTU sources on one serial port share the bus and its line settings.
    let modbus = config
        .sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match &s.driver {
            DriverConfig::Modbus(m) => Some((i, s.common.id.as_str(), m)),
            _ => None,
        });
    for (pos, key, message) in tracegate_drivers::modbus::check_shared_buses(modbus) {
        let id = &config.sources[pos].common.id;
        let i = config.sources[pos].index;
        p.add(
            format!("sources[{i}].{key}"),
            format!("source `{id}`: {message}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls() {
        assert_eq!(
            parse_mqtt_url("mqtt://localhost"),
            Ok((false, "localhost".into(), 1883))
        );
        assert_eq!(
            parse_mqtt_url("mqtts://broker.lan:8884"),
            Ok((true, "broker.lan".into(), 8884))
        );
        assert_eq!(
            parse_mqtt_url("mqtt://[::1]:1884"),
            Ok((false, "::1".into(), 1884))
        );
        assert!(parse_mqtt_url("tcp://x").is_err());
        assert!(parse_mqtt_url("mqtt://:1883").is_err());
        assert!(parse_mqtt_url("mqtt://host:0").is_err());
        assert!(parse_mqtt_url("mqtt://user:pw@host").is_err());
    }
}
