//! Config loading: `tracegate::config::load_str` on arbitrary text.
//!
//! Invariants checked:
//! - no panic;
//! - an error has at least one problem, and every problem a message;
//! - a syntax error (text that is not TOML) is one file-level problem with its line;
//! - for syntactically valid TOML, every problem names its key path, except a missing top-level
//!   section (which has no key to point at), and every problem whose top-level key is written in
//!   the file has a line;
//! - every line is within the file;
//! - a loaded config has a 64-hex-digit hash.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/nonexistent/tracegate-fuzz/line.toml");
    let result = tracegate::config::load_str(text, file);
    let err = match result {
        Ok(config) => {
            assert_eq!(config.hash.len(), 64);
            return;
        }
        Err(err) => err,
    };
    assert!(!err.problems.is_empty(), "an error without problems");
    assert_eq!(err.file, file);
    let lines = text.split('\n').count();
    for p in &err.problems {
        assert!(!p.message.is_empty(), "a problem without a message: {p:?}");
        if let Some(line) = p.line {
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {p:?}");
        }
    }
    let _ = err.to_string();
    match text.parse::<toml::Table>() {
        Err(_) => {
            // One problem with its line; it names the key when the error is inside a value
            // (the document parses, the value does not), else none.
            assert_eq!(err.problems.len(), 1, "{:?}", err.problems);
            let p = &err.problems[0];
            assert!(p.line.is_some(), "syntax error without a line: {p:?}");
        }
        Ok(table) => {
            for p in &err.problems {
                if p.path.is_empty() {
                    assert!(
                        p.message.starts_with("missing field"),
                        "a problem without a key path: {p:?}"
                    );
                    continue;
                }
                let top = p.path.split(['.', '[']).next().unwrap_or("");
                if table.contains_key(top) {
                    assert!(p.line.is_some(), "a problem without a line: {p:?}");
                }
            }
        }
    }
});
