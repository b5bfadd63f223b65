//! Context commands: accepted, merged, replaced, cleared, rejected with a reason — and the
//! published JSON Schema agrees with the parser on every example.

use std::collections::BTreeMap;

use super::*;

fn config() -> ContextConfig {
    ContextConfig {
        keys: vec!["work_order".into(), "batch".into(), "shift".into()],
        stations: BTreeMap::from([("st20".to_string(), vec!["work_order".to_string()])]),
    }
}

fn run(json: &str, current: &ContextState) -> Result<Accepted, String> {
    apply(json.as_bytes(), &config(), current, 5000).1
}

#[test]
fn merges_into_the_line_and_makes_a_new_revision() {
    let a = run(
        r#"{"set": {"work_order": "WO-1", "batch": "L1"}}"#,
        &ContextState::default(),
    )
    .unwrap();
    assert_eq!(a.next.revision, 1);
    assert_eq!(a.next.effective_ms, 5000);
    let b = run(r#"{"set": {"batch": "L2", "work_order": null}}"#, &a.next).unwrap();
    assert_eq!(b.next.revision, 2);
    assert_eq!(
        b.next.line,
        Values::from([("batch".to_string(), "L2".to_string())])
    );
}

#[test]
fn replace_sets_exactly_the_given_keys() {
    let a = run(
        r#"{"set": {"work_order": "WO-1", "batch": "L1"}}"#,
        &ContextState::default(),
    )
    .unwrap();
    let b = run(r#"{"set": {"shift": "B"}, "replace": true}"#, &a.next).unwrap();
    assert_eq!(
        b.next.line,
        Values::from([("shift".to_string(), "B".to_string())])
    );
    let c = run(r#"{"set": {}, "replace": true}"#, &b.next).unwrap();
    assert!(c.next.line.is_empty());
}

#[test]
fn a_station_scope_takes_only_its_own_keys() {
    let a = run(
        r#"{"station": "st20", "set": {"work_order": "WO-20"}}"#,
        &ContextState::default(),
    )
    .unwrap();
    assert_eq!(a.next.stations["st20"]["work_order"], "WO-20");
    assert_eq!(a.station.as_deref(), Some("st20"));
    let err = run(
        r#"{"station": "st20", "set": {"batch": "L"}}"#,
        &ContextState::default(),
    )
    .unwrap_err();
    assert!(err.contains("not allowed for station st20"), "{err}");
    let err = run(
        r#"{"station": "st99", "set": {"work_order": "W"}}"#,
        &ContextState::default(),
    )
    .unwrap_err();
    assert!(err.contains("st99"), "{err}");
}

#[test]
fn rejections_say_why() {
    let cases = [
        (r#"{"set": {"colour": "red"}}"#, "not allowed"),
        (r#"{"set": {"work_order": ""}}"#, "1–128 characters"),
        (
            r#"{"set": {"work_order": 42}}"#,
            "not a valid context command",
        ),
        (r#"{"set": {}}"#, "names no key"),
        (r#"{"sett": {}}"#, "unknown field"),
        (
            r#"{"set": {"work_order": "A"}, "reply_to": "a/#"}"#,
            "wildcards",
        ),
        ("not json", "not a valid context command"),
        ("[]", "not a valid context command"),
    ];
    for (json, why) in cases {
        let err = run(json, &ContextState::default()).unwrap_err();
        assert!(err.contains(why), "{json}: {err}");
    }
}

#[test]
fn an_oversized_command_is_refused_before_parsing() {
    let big = format!(
        r#"{{"set": {{"work_order": "{}"}}}}"#,
        "x".repeat(MAX_COMMAND_BYTES)
    );
    assert!(
        run(&big, &ContextState::default())
            .unwrap_err()
            .contains("bytes")
    );
}

#[test]
fn reply_hints_survive_a_rejection() {
    let (hints, result) = apply(
        br#"{"set": {"colour": "red"}, "correlation_id": "c-9", "reply_to": "mes/r"}"#,
        &config(),
        &ContextState::default(),
        0,
    );
    assert!(result.is_err());
    assert_eq!(hints.correlation_id.as_deref(), Some("c-9"));
    assert_eq!(hints.reply_to.as_deref(), Some("mes/r"));
    let (hints, _) = apply(
        br#"{"set": 1, "correlation_id": "c-10"}"#,
        &config(),
        &ContextState::default(),
        0,
    );
    assert_eq!(hints.correlation_id.as_deref(), Some("c-10"));
}

#[test]
fn the_published_schema_agrees_with_the_parser() {
    let schema: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../docs/schema/context-command.schema.json"
    ))
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    // Shape only: key permissions come from the config, not the schema.
    let shapes = [
        (r#"{"set": {"work_order": "WO-1"}}"#, true),
        (
            r#"{"set": {"work_order": null}, "station": "st20", "replace": false}"#,
            true,
        ),
        (
            r#"{"set": {"shift": "B"}, "correlation_id": "c", "reply_to": "r/t"}"#,
            true,
        ),
        (r#"{"set": {"work_order": 42}}"#, false),
        (r#"{"sett": {}}"#, false),
        (r#"{"set": {"work_order": ""}}"#, false),
        (r#"{"set": {"work_order": "A"}, "reply_to": "a/#"}"#, false),
        (r#"{"set": {"work_order": "A"}, "extra": 1}"#, false),
        ("[]", false),
    ];
    for (json, valid) in shapes {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(validator.is_valid(&value), valid, "schema on {json}");
        let parsed = run(json, &ContextState::default());
        assert_eq!(parsed.is_ok(), valid, "parser on {json}: {parsed:?}");
    }
}
