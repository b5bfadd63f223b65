//! `tracegate check` prints the resolved config: defaults filled in, secrets masked.

use super::Config;

/// The resolved config as TOML. The password is never printed.
pub fn render_resolved(config: &Config) -> String {
    let mut value = serde_json::to_value(config).unwrap_or_default();
    strip_nulls(&mut value);
    if let Some(mqtt) = value.get_mut("mqtt").and_then(|m| m.as_object_mut()) {
        mqtt.insert(
            "client_id".into(),
            config.mqtt.client_id(&config.agent).into(),
        );
        mqtt.insert(
            "topic_prefix".into(),
            config.mqtt.topic_prefix(&config.agent).into(),
        );
        if config.mqtt.password.is_some() {
            mqtt.insert(
                "password".into(),
                "******** (read from password_file)".into(),
            );
        }
    }
    if let Some(obj) = value.as_object_mut() {
        obj.remove("file");
        obj.remove("hash");
    }
    let body = toml::to_string_pretty(&value).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
    format!(
        "# {} is valid (sha256 {}).\n# Resolved configuration, defaults included:\n\n{body}",
        config.file.display(),
        config.hash
    )
}

fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}
