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
    // Packed, every session replays the same.
    env.ok(&["gc"]);
    for path in &files {
        let expected = file_value(path);
        assert_eq!(env.replay(&expected_id(path, &expected), None), expected, "{} after gc", path.display());
    }
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

/// Each real session streamed in as VS Code writes it — its requests added one by one, each
/// response growing a part at a time, then again with every part's text grown — is long
/// enough to be read from the runs of log lines kept with its snapshots: `log SESSION` says
/// what the records say (the all-sessions log reads records) of real texts, whatever their
/// characters, newlines and lengths.
#[test]
fn a_real_sessions_log_says_from_its_stored_lines_what_its_records_say() {
    use chasm::journal::{OpenMode, Origin};
    use chasm::session::Session;
    let Some(files) = real_fixtures() else { return };
    for path in files.iter().filter(|p| p.extension().unwrap() == "json") {
        let whole = file_value(path);
        let id = expected_id(path, &whole);
        let env = Env::new();
        // The versions VS Code would have written on the way to the file.
        let mut versions = Vec::new();
        let mut growing = whole.clone();
        let requests = std::mem::take(growing["requests"].as_array_mut().unwrap());
        if requests.is_empty() {
            continue;
        }
        versions.push(growing.clone());
        for request in &requests {
            let parts = request["response"].as_array().cloned().unwrap_or_default();
            let mut r = request.clone();
            r["response"] = Value::Array(Vec::new());
            growing["requests"].as_array_mut().unwrap().push(r);
            versions.push(growing.clone());
            for k in 1..=parts.len() {
                *growing["requests"].as_array_mut().unwrap().last_mut().unwrap().get_mut("response").unwrap() =
                    Value::Array(parts[..k].to_vec());
                versions.push(growing.clone());
            }
        }
        // And each request once more with a part appended, so every session passes 64 events.
        for round in 0.. {
            if versions.len() > 70 + requests.len() {
                break;
            }
            for k in 0..requests.len() {
                let response = growing["requests"][k]["response"].as_array_mut().unwrap();
                response.push(serde_json::json!({"value": format!("more, round {round}\nand a line")}));
                versions.push(growing.clone());
            }
        }
        let mut j = common::open_journal(&env.journal(), OpenMode::Create);
        for v in versions {
            let next = Session::from_value(v).unwrap();
            let state = j.state_at(&id, u64::MAX).unwrap();
            let changes: Vec<_> = chasm::diff::diff(&id, state.as_ref(), &next)
                .into_iter()
                .map(|c| c.into_change(&id, chrono::Utc::now(), Origin::Remote, "vscode"))
                .collect();
            j.append(changes).unwrap();
        }
        assert!(j.session_seqs(&id).unwrap().len() > 64, "{}", path.display());
        assert!(!j.session_line_runs(&id, 0).unwrap().is_empty(), "{}", path.display());
        drop(j);
        for args in [&[][..], &["--reverse"], &["-n", "30"], &["--type", "create"]] {
            let all = env.ok(&[&["log"][..], args].concat());
            let one = env.ok(&[&["log", &id][..], args].concat());
            assert_eq!(one, all, "{} {args:?}", path.display());
        }
        assert_eq!(env.replay(&id, None)["requests"].as_array().unwrap().len(), requests.len());
    }
}
