//! Real VS Code sessions, as their authors published them, survive capture → replay unchanged.

mod common;

use common::{Env, real_fixtures};
use serde_json::Value;

/// The session id chasm gives a file: `sessionId`, else the file stem.
fn expected_id(path: &std::path::Path, value: &Value) -> String {
    value
        .get("sessionId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| path.file_stem().unwrap().to_str().unwrap().to_owned())
}

/// The file's session as VS Code would read it.
fn file_value(path: &std::path::Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().unwrap() == "jsonl" {
        chasm::provider::vscode::jsonl::read(&bytes).unwrap().state
    } else {
        serde_json::from_slice(&bytes).unwrap()
    }
}

#[test]
fn every_real_fixture_replays_to_the_same_json_value() {
    let Some(files) = real_fixtures() else { return };
    assert!(!files.is_empty());
    let env = Env::new();
    for path in &files {
        let expected = file_value(path);
        let id = expected_id(path, &expected);
        env.ok(&["capture", path.to_str().unwrap()]);
        assert_eq!(env.replay(&id, None), expected, "{}", path.display());
        // The jsonl form is one kind 0 line holding the same value.
        let jsonl = env.ok(&["replay", &id, "--format", "jsonl"]);
        assert_eq!(jsonl.lines().count(), 1);
        assert_eq!(chasm::provider::vscode::jsonl::read(jsonl.as_bytes()).unwrap().state, expected);
        // The transcript names every request.
        let md = env.ok(&["replay", &id, "--format", "markdown"]);
        let turns = md.lines().filter(|l| l.starts_with("## ") && l.contains(". User")).count();
        assert_eq!(turns, expected["requests"].as_array().unwrap().len(), "{}", path.display());
    }
    // Capturing unchanged files again records nothing.
    let before = env.log().len();
    let args: Vec<&str> = std::iter::once("capture").chain(files.iter().map(|p| p.to_str().unwrap())).collect();
    let out = env.ok(&args);
    assert!(out.contains("recorded 0 changes"), "{out}");
    assert_eq!(env.log().len(), before);
    assert!(env.ok(&["verify"]).starts_with("ok:"));
}

#[test]
fn the_jsonl_fixture_is_read_as_vs_code_reads_it() {
    let Some(files) = real_fixtures() else { return };
    let Some(path) = files.iter().find(|p| p.extension().unwrap() == "jsonl") else {
        return;
    };
    let state = file_value(path);
    // Facts from SOURCES.md: two requests after replay, the title set in the kind 0 snapshot.
    assert_eq!(state["requests"].as_array().unwrap().len(), 2);
    assert_eq!(state["customTitle"], "Adding a joke to jokes.csv file");
    let env = Env::new();
    env.ok(&["capture", path.to_str().unwrap()]);
    let log = env.log();
    let kinds: Vec<(&str, &str)> =
        log.iter().map(|r| (r["change_type"].as_str().unwrap(), r["entity_type"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("create", "session"), ("create", "message"), ("create", "message")]);
}
