//! Hostile input: files built to break a parser, escape a folder, hang a reader or exhaust
//! memory. Each gets a one-line `error:` (or a warning and a skip during a sync), never a panic,
//! and nothing already stored is damaged; nothing outside the chat roots and the journal is read
//! or written.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{Env, assert_error_line, vscode_read};
use serde_json::{Value, json};

fn session(id: &str) -> Value {
    json!({"version": 3, "sessionId": id, "requests": [{"requestId": "r1", "message": {"text": "hi"}, "response": []}]})
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Runs chasm, killing it if it runs for more than a minute (a hang is a failure too).
fn run_bounded(env: &Env, args: &[&str]) -> Output {
    let mut child = common::chasm_command()
        .arg("--journal")
        .arg(env.journal())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("chasm {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn malformed_and_malicious_session_files_are_refused_and_store_nothing() {
    let env = Env::new();
    let dir = env.dir.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.json");
    std::fs::write(&good, session("good").to_string()).unwrap();
    env.ok(&["capture", good.to_str().unwrap()]);
    let before = env.ok(&["log", "--json"]);

    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let base = json!({"kind": 0, "v": session("s")});
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("deep.json", deep.clone().into_bytes()),
        ("deep-field.json", format!(r#"{{"sessionId":"d","requests":[],"x":{deep}}}"#).into_bytes()),
        ("deep.jsonl", format!("{{\"kind\":0,\"v\":{deep}}}\n").into_bytes()),
        ("raw-nul.json", b"{\"sessionId\":\"n\",\"requests\":[]}\0".to_vec()),
        ("not-utf8.json", b"{\"sessionId\":\"\xff\xfe\",\"requests\":[]}".to_vec()),
        ("requests-not-array.json", br#"{"sessionId":"x","requests":{"a":1}}"#.to_vec()),
        ("id-escapes.json", session("../../etc/passwd").to_string().into_bytes()),
        ("id-absolute.json", session("/etc/passwd").to_string().into_bytes()),
        ("missing-parent.jsonl", jsonl(&[base.clone(), json!({"kind": 1, "k": ["a", "b", "c"], "v": 1})]).into_bytes()),
        (
            "wrong-type-parent.jsonl",
            jsonl(&[base.clone(), json!({"kind": 1, "k": ["version", "x"], "v": 1})]).into_bytes(),
        ),
        (
            "negative-index.jsonl",
            jsonl(&[base.clone(), json!({"kind": 1, "k": ["requests", -1], "v": 1})]).into_bytes(),
        ),
        (
            "huge-index.jsonl",
            jsonl(&[base.clone(), json!({"kind": 1, "k": ["requests", u64::MAX, "x"], "v": 1})]).into_bytes(),
        ),
        ("push-onto-number.jsonl", jsonl(&[base.clone(), json!({"kind": 2, "k": ["version"], "v": [1]})]).into_bytes()),
        (
            "negative-truncate.jsonl",
            jsonl(&[base.clone(), json!({"kind": 2, "k": ["requests"], "i": -3})]).into_bytes(),
        ),
        ("unknown-kind.jsonl", jsonl(&[base.clone(), json!({"kind": 7, "k": ["a"], "v": 1})]).into_bytes()),
        ("path-not-array.jsonl", jsonl(&[base.clone(), json!({"kind": 1, "k": "requests", "v": 1})]).into_bytes()),
        ("empty.jsonl", Vec::new()),
    ];
    for (name, bytes) in &cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let line = assert_error_line(&run_bounded(&env, &["capture", path.to_str().unwrap()]));
        assert!(line.contains(name), "{name}: {line}");
    }
    // Not regular files: a directory and (on Unix) a FIFO, which would block a reader forever.
    std::fs::create_dir(dir.join("dir.json")).unwrap();
    assert_error_line(&run_bounded(&env, &["capture", dir.join("dir.json").to_str().unwrap()]));
    #[cfg(unix)]
    {
        let fifo = dir.join("fifo.json");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let line = assert_error_line(&run_bounded(&env, &["capture", fifo.to_str().unwrap()]));
        assert!(line.contains("not a regular file"), "{line}");
    }
    assert_eq!(env.ok(&["log", "--json"]), before, "nothing was recorded");
    env.ok(&["verify"]);
}

#[test]
fn odd_but_valid_values_survive_exactly() {
    let env = Env::new();
    let path = env.dir.path().join("odd.json");
    let text = r#"{"version":3,"sessionId":"odd","requests":[{"requestId":"r","message":{"text":"a\u0000b \ud83e\udd80 \u202e"},"n":[1e400,-0.0,123456789012345678901234567890123,1.50,5e-324]}],"big":18446744073709551616}"#;
    std::fs::write(&path, text).unwrap();
    env.ok(&["capture", path.to_str().unwrap()]);
    let replayed = env.ok(&["replay", "odd"]);
    // Exact values; serde_json writes an exponent with its sign (1e400 as 1e+400).
    for spelled in ["1e+400", "-0.0", "123456789012345678901234567890123", "1.50", "5e-324", "18446744073709551616"] {
        assert!(replayed.contains(spelled), "{spelled} not kept: {replayed}");
    }
    assert!(replayed.contains("a\\u0000b"), "{replayed}");
    assert_eq!(serde_json::from_str::<Value>(&replayed).unwrap()["requests"][0]["message"]["text"], "a\0b 🦀 \u{202e}");
}

#[cfg(unix)]
#[test]
fn sync_skips_what_could_escape_or_hang_and_touches_nothing_outside() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let chat = env.chat_dir();
    let outside = env.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret.json");
    std::fs::write(&secret, session("secret").to_string()).unwrap();
    let secret_before = (std::fs::read(&secret).unwrap(), std::fs::metadata(&secret).unwrap().modified().unwrap());

    std::fs::write(chat.join("ok.json"), session("ok").to_string()).unwrap();
    std::os::unix::fs::symlink(&secret, chat.join("link-out.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", chat.join("zero.json")).unwrap();
    std::os::unix::fs::symlink(outside.join("missing.json"), chat.join("dangling.json")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(chat.join("fifo.json")).status().unwrap().success());
    std::fs::create_dir(chat.join("folder.json")).unwrap();
    std::fs::write(chat.join(std::ffi::OsStr::from_bytes(b"bad-\xff.json")), session("x").to_string()).unwrap();
    std::fs::write(chat.join("a..b.json"), session("a..b").to_string()).unwrap();
    std::fs::write(chat.join("escape.json"), session("../outside/secret").to_string()).unwrap();

    let root = env.dir.path().join("User");
    let out = run_bounded(&env, &["sync", "--root", root.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The sync finishes; the one file that names a session but cannot be one fails it.
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(assert_error_line(&out).contains("1 session could not be synced"), "{stderr}");
    for skipped in ["link-out.json", "zero.json", "fifo.json", "folder.json", "bad-", "a..b.json", "escape.json"] {
        assert!(stderr.lines().any(|l| l.starts_with("warning:") && l.contains(skipped)), "{skipped}: {stderr}");
    }
    let ids: Vec<String> = env.log().iter().map(|r| r["session_id"].as_str().unwrap().to_owned()).collect();
    assert!(ids.iter().all(|id| id == "ok"), "{ids:?}");
    // Outside the root: unchanged, and nothing new.
    assert_eq!(
        (std::fs::read(&secret).unwrap(), std::fs::metadata(&secret).unwrap().modified().unwrap()),
        secret_before
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn a_100_mb_session_is_captured_replayed_and_synced() {
    let env = Env::new();
    let chat = env.chat_dir();
    let requests: Vec<Value> = (0..1000)
        .map(|i| {
            json!({"requestId": format!("r{i}"), "timestamp": i, "message": {"text": format!("question {i}")},
                   "response": [{"value": "y".repeat(100_000)}]})
        })
        .collect();
    let big = json!({"version": 3, "sessionId": "big", "requests": requests});
    let path = chat.join("big.json");
    std::fs::write(&path, big.to_string()).unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 100_000_000);
    let root = env.dir.path().join("User");
    env.ok(&["sync", "--root", root.to_str().unwrap()]);
    assert!(env.ok(&["replay", "big"]).len() > 100_000_000);
    // A rename goes back as a whole-file rewrite, and VS Code reads the same session.
    env.ok(&["rename", "big", "Big one"]);
    env.ok(&["sync", "--root", root.to_str().unwrap()]);
    let mut expected = big;
    expected["customTitle"] = json!("Big one");
    assert_eq!(vscode_read(&path), expected);
    env.ok(&["verify"]);
}

#[test]
fn a_state_db_that_is_not_a_database_is_reported_and_left_alone() {
    let env = Env::new();
    let chat = env.chat_dir();
    let db = chat.parent().unwrap().join("state.vscdb");
    let garbage = b"SQLite format 3\0 but not really; this file was truncated by a crash".to_vec();
    std::fs::write(&db, &garbage).unwrap();
    std::fs::write(chat.join("s1.json"), session("s1").to_string()).unwrap();
    let root = env.dir.path().join("User");
    let root = root.to_str().unwrap();
    env.ok(&["sync", "--root", root]);
    let out = env.chasm(&["status", "--all", "--root", root]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a VS Code state database"), "{out:?}");
    // Bringing the session back after VS Code deleted it: the file is written, and the index
    // cannot be, which is one clear error line.
    std::fs::remove_file(chat.join("s1.json")).unwrap();
    env.ok(&["sync", "--root", root]);
    let line = assert_error_line(&env.chasm(&["restore", "s1", "--push", "--root", root]));
    assert!(line.contains("not a VS Code state database"), "{line}");
    assert!(chat.join("s1.json").is_file());
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
    assert!(!Path::new(&format!("{}.chasm-backup", db.display())).exists());
}

#[test]
fn a_journal_naming_paths_outside_the_roots_never_writes_there() {
    use chasm::journal::{ChangeType, EntityType, NewChange, OpenMode, Origin};
    let env = Env::new();
    let chat = env.chat_dir();
    let outside = env.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // A history (imported from elsewhere, say) whose checkpoints name a path outside the root,
    // and one inside the root but under another session's name.
    {
        let mut j = common::open_journal(&env.journal(), OpenMode::Create);
        let change = |id: &str, change_type, entity_type, payload: Value| NewChange {
            session_id: id.into(),
            change_type,
            entity_type,
            entity_id: id.into(),
            timestamp: chrono::Utc::now(),
            origin: Origin::Local,
            provider: "vscode".into(),
            payload,
        };
        let victim = chat.join("victim.json");
        std::fs::write(&victim, session("victim").to_string()).unwrap();
        let ghost = chat.join("other.json");
        for (id, path) in [("far", outside.join("far.json")), ("near", victim.clone()), ("ghost", ghost)] {
            j.append(vec![
                change(id, ChangeType::Create, EntityType::Session, json!({"sessionId": id, "requests": []})),
                change(
                    id,
                    ChangeType::Merge,
                    EntityType::Session,
                    json!({"local_seq": 0, "remote_seq": 0, "hash": "x", "path": path}),
                ),
                change(id, ChangeType::Update, EntityType::Metadata, json!({"value": "pwned", "position": 1})),
            ])
            .unwrap();
        }
    }
    let root = env.dir.path().join("User");
    let out = run_bounded(&env, &["sync", "--root", root.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "wrote outside the root");
    assert_eq!(vscode_read(&chat.join("victim.json")), session("victim"));
    // A path under another session's name is not this session's file: its absence is not a
    // deletion of this session, and nothing is written there.
    assert!(!chat.join("other.json").exists());
    let deletes: Vec<Value> =
        env.log().into_iter().filter(|r| r["change_type"] == "delete" && r["entity_type"] == "session").collect();
    assert!(deletes.is_empty(), "{deletes:?}");
}
