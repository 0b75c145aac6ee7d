//! `chasm sync` against a temporary VS Code user dir laid out like the real one.

mod common;

use std::path::{Path, PathBuf};

use chasm::journal::{ChangeType, EntityType, OpenMode};
use common::{Env, age, append, real_fixtures, vscode_read};
use serde_json::{Value, json};

const HAIKU: &str = "9c2d4e6f-8a0b-4c1d-9e3f-5a7b9c1d3e5f";
const READING: &str = "3b5e8f20-6c1d-4a9e-b7f2-0e4d6c8a1f35";
/// A session kept outside VS Code's storage (captured from there).
const OUTSIDE: &str = "0c4e6a8b-1d3f-4b5a-8c7e-9f1a3b5c7d9e";

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sessions").join(name)
}

struct Vs {
    env: Env,
}

impl Vs {
    /// A user dir with the two example sessions (a `.jsonl` and a `.json`) in one workspace.
    fn new() -> Vs {
        let env = Env::new();
        let chat = env.chat_dir();
        std::fs::write(chat.parent().unwrap().join("workspace.json"), r#"{"folder":"file:///home/ada/notes"}"#)
            .unwrap();
        std::fs::copy(example(&format!("{HAIKU}.jsonl")), chat.join(format!("{HAIKU}.jsonl"))).unwrap();
        std::fs::copy(example(&format!("{READING}.json")), chat.join(format!("{READING}.json"))).unwrap();
        Vs { env }
    }

    fn root(&self) -> String {
        self.env.dir.path().join("User").to_str().unwrap().to_owned()
    }

    fn file(&self, id: &str) -> PathBuf {
        let chat = self.env.chat_dir();
        let jsonl = chat.join(format!("{id}.jsonl"));
        if jsonl.exists() { jsonl } else { chat.join(format!("{id}.json")) }
    }

    /// What VS Code would read for a session.
    fn remote(&self, id: &str) -> Value {
        vscode_read(&self.file(id))
    }

    /// Runs a sync of this user dir through the library, with `options`: what it gave, and how
    /// many durable commits it made.
    fn sync_with(&self, options: chasm::sync::Options) -> (Result<chasm::sync::Report, chasm::sync::SyncError>, u64) {
        let mut journal = common::open_journal(&self.env.journal(), OpenMode::Create);
        let roots = [PathBuf::from(self.root())];
        let result = chasm::sync::sync(&mut journal, &chasm::provider::vscode::VsCode::new(&roots), &options);
        (result, journal.appends())
    }

    /// Runs `chasm sync --root <user dir> ARGS`; returns (exit code, stdout).
    fn sync(&self, args: &[&str]) -> (i32, String) {
        let root = self.root();
        let mut all = vec!["sync", "--root", root.as_str()];
        all.extend_from_slice(args);
        let out = self.env.chasm(&all);
        assert_ne!(out.status.code(), Some(101), "panicked: {}", String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
    }

    fn with_root(&self, args: &[&str]) -> String {
        let root = self.root();
        let mut all = args.to_vec();
        all.extend(["--root", root.as_str()]);
        self.env.ok(&all)
    }

    /// Both session files as if VS Code wrote them long ago (see [`age`]).
    fn age_files(&self) {
        for id in [HAIKU, READING] {
            age(&self.file(id));
        }
    }

    /// VS Code writes a mutation-log line.
    fn vscode_writes(&self, id: &str, line: Value) {
        append(&self.file(id), &format!("{line}\n"));
    }

    /// A local change made through the library, as future commands (restore) will make them.
    fn local_change(
        &self,
        id: &str,
        change_type: ChangeType,
        entity_type: EntityType,
        entity_id: &str,
        payload: Value,
    ) {
        common::local_change(&self.env.journal(), id, change_type, entity_type, entity_id, payload);
    }

    fn conflicts(&self) -> Vec<Value> {
        self.with_root(&["conflicts", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn status(&self, id: &str) -> String {
        let line = self.with_root(&["status", id, "--json"]);
        serde_json::from_str::<Value>(line.trim()).unwrap()["status"].as_str().unwrap().to_owned()
    }
}

fn request(id: &str, ts: i64, text: &str) -> Value {
    json!({"requestId": id, "timestamp": ts, "message": {"text": text}, "response": [{"value": format!("answer to {text}")}]})
}

#[test]
fn first_sync_checkpoints_real_sessions_and_a_second_sync_touches_nothing() {
    let Some(files) = real_fixtures() else { return };
    let env = Env::new();
    let chat = env.chat_dir();
    // On disk VS Code names a session file by its id; exports carry none, so they keep their name.
    let mut ids = Vec::new();
    for f in &files {
        let id = vscode_read(f)["sessionId"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| f.file_stem().unwrap().to_str().unwrap().to_owned());
        std::fs::copy(f, chat.join(format!("{id}.{}", f.extension().unwrap().to_str().unwrap()))).unwrap();
        ids.push(id);
    }
    let vs = Vs { env };
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("sync: {} pulled, 0 pushed", files.len())), "{out}");
    // Every session is checkpointed, synced, and replays to exactly what VS Code holds.
    let log = vs.env.log();
    assert_eq!(log.iter().filter(|r| r["change_type"] == "merge").count(), files.len());
    for id in &ids {
        assert_eq!(vs.status(id), "synced");
        assert_eq!(vs.env.replay(id, None), vs.remote(id));
    }
    let mtimes = |dir: &Path| -> Vec<(PathBuf, std::time::SystemTime, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.clone(), std::fs::metadata(&p).unwrap().modified().unwrap(), std::fs::read(&p).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let before = mtimes(&chat);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("sync: 0 pulled, 0 pushed, 0 merged, 0 conflicted"), "{out}");
    assert_eq!(vs.env.log().len(), log.len(), "a second sync appended");
    assert_eq!(mtimes(&chat), before, "a second sync touched a file");
}

/// In `chat`: a temporary of chasm's two hours old, as a write killed before its rename leaves
/// it (`.NAME.chasm-<32 hex>.tmp`); one just made, as a write under way has it; and an old
/// `.tmp` that is not chasm's.
fn temporaries(chat: &Path) -> [PathBuf; 3] {
    let stale = chat.join(format!(".{HAIKU}.jsonl.chasm-0123456789abcdef0123456789abcdef.tmp"));
    let fresh = chat.join(format!(".{READING}.json.chasm-fedcba9876543210fedcba9876543210.tmp"));
    let foreign = chat.join(format!(".{READING}.json.tmp"));
    for (path, hours) in [(&stale, 2), (&fresh, 0), (&foreign, 2)] {
        std::fs::write(path, "{").unwrap();
        let written = std::time::SystemTime::now() - std::time::Duration::from_secs(hours * 3600);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(written).unwrap();
    }
    [stale, fresh, foreign]
}

/// What a write of chasm's killed before its rename leaves (`.NAME.chasm-<32 hex>.tmp`) is
/// removed by a sync once it is an hour old, and by nothing that only reads; a younger one (a
/// write may be under way) and anything not chasm's stay.
#[test]
fn a_sync_removes_the_stale_temporaries_of_killed_writes() {
    let vs = Vs::new();
    assert_eq!(vs.sync(&[]).0, 0);
    let [stale, fresh, foreign] = temporaries(&vs.env.chat_dir());
    vs.with_root(&["status"]);
    assert!(stale.exists(), "status removed a file");
    // In full: the first sync recorded its sessions, so it left no note for the no-op path
    // (which tidies too: the next test).
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(!stale.exists(), "the stale temporary was left");
    assert!(fresh.exists() && foreign.exists(), "a file that may be in use, or not chasm's, was removed");
}

/// A sync that finds nothing to do (the no-op path, which does not open the journal) removes
/// a stale temporary too; a dry run does not.
#[test]
fn a_no_op_sync_removes_the_stale_temporaries_of_killed_writes_too() {
    let vs = Vs::new();
    vs.age_files();
    vs.sync(&[]);
    // In step: this one notes it, for the no-op path to take from here.
    vs.sync(&[]);
    assert!(vs.env.journal().join(chasm::in_step::FILE).exists(), "no note for the no-op path");
    let [stale, fresh, foreign] = temporaries(&vs.env.chat_dir());
    let journal_before = vs.env.ok(&["log", "--json"]);
    // The journal held by another process: only the no-op path, which never opens it, succeeds.
    let held = common::open_journal(&vs.env.journal(), OpenMode::Existing);
    assert_eq!(vs.sync(&["--dry-run"]).0, 0);
    assert!(stale.exists(), "a dry run removed a file");
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(!stale.exists(), "the stale temporary was left");
    assert!(fresh.exists() && foreign.exists(), "a file that may be in use, or not chasm's, was removed");
    drop(held);
    assert_eq!(vs.env.ok(&["log", "--json"]), journal_before);
}

#[test]
fn local_edits_reach_vs_code_in_each_file_format() {
    let vs = Vs::new();
    vs.sync(&[]);
    vs.env.ok(&["rename", "9c2d", "Poems about storage"]);
    vs.env.ok(&["rename", "3b5e", "File reading"]);
    vs.env.ok(&["tag", "9c2d", "poetry"]);
    assert_eq!(vs.status(HAIKU), "local_ahead");
    let jsonl_before = std::fs::read(vs.file(HAIKU)).unwrap();
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("0 pulled, 2 pushed"), "{out}");
    // The .jsonl was appended to (not rewritten), and VS Code's reading of it is the journal's.
    let jsonl_after = std::fs::read(vs.file(HAIKU)).unwrap();
    assert!(jsonl_after.starts_with(&jsonl_before));
    assert_eq!(vs.remote(HAIKU)["customTitle"], "Poems about storage");
    assert_eq!(vs.remote(HAIKU), vs.env.replay(HAIKU, None));
    assert_eq!(vs.remote(READING)["customTitle"], "File reading");
    assert_eq!(vs.remote(READING), vs.env.replay(READING, None));
    // Tags stay in the journal.
    assert!(vs.remote(HAIKU).get("tags").is_none());
    vs.env.ok(&["untag", "9c2d", "poetry"]);
    assert!(vs.env.ok(&["untag", "9c2d", "poetry"]).contains("not tagged"));
    let tags: Vec<String> = vs
        .env
        .log()
        .iter()
        .filter(|r| r["entity_type"] == "tag")
        .map(|r| format!("{} {}", r["change_type"].as_str().unwrap(), r["entity_id"].as_str().unwrap()))
        .collect();
    assert_eq!(tags, ["create poetry", "delete poetry"]);
    assert_eq!(vs.status(HAIKU), "synced");

    // A delete removes the file; the history keeps the session.
    vs.env.ok(&["delete", "3b5e"]);
    let (code, _) = vs.sync(&[]);
    assert_eq!(code, 0);
    assert!(!vs.file(READING).exists());
    let seqs: Vec<u64> = vs
        .env
        .log()
        .iter()
        .filter(|r| r["session_id"] == READING && r["change_type"] == "delete")
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(vs.env.replay(READING, Some(seqs[0] - 1))["customTitle"], "File reading");
}

#[test]
fn vs_code_changes_are_pulled_and_jsonl_compaction_is_no_change() {
    let vs = Vs::new();
    vs.sync(&[]);
    vs.vscode_writes(
        HAIKU,
        json!({"kind": 2, "k": ["requests"], "v": [request("r3", 1764050200000, "One more, about fsync")]}),
    );
    assert_eq!(vs.status(HAIKU), "remote_ahead");
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("1 pulled"), "{out}");
    assert_eq!(vs.env.replay(HAIKU, None), vs.remote(HAIKU));
    assert_eq!(vs.env.replay(HAIKU, None)["requests"].as_array().unwrap().len(), 3);

    // VS Code compacts the log into one kind 0 line: same session, nothing to do.
    let state = vs.remote(HAIKU);
    std::fs::write(vs.file(HAIKU), format!("{}\n", json!({"kind": 0, "v": state}))).unwrap();
    let records = vs.env.log().len();
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("0 pulled, 0 pushed"), "{out}");
    assert_eq!(vs.env.log().len(), records);
}

#[test]
fn a_torn_line_from_vs_code_mid_write_is_never_appended_to() {
    let vs = Vs::new();
    vs.sync(&[]);
    vs.env.ok(&["rename", "9c2d", "Renamed while VS Code writes"]);
    let line = json!({"kind": 1, "k": ["requests", 0, "isCanceled"], "v": true}).to_string();
    append(&vs.file(HAIKU), &line[..10]);
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 deferred"), "the push waits for VS Code to finish: {out}");
    // Nothing appended after half a line.
    assert!(std::fs::read_to_string(vs.file(HAIKU)).unwrap().ends_with(&line[..10]));
    // VS Code finishes the line; the next sync merges both changes.
    append(&vs.file(HAIKU), &format!("{}\n", &line[10..]));
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 merged"), "{out}");
    let remote = vs.remote(HAIKU);
    assert_eq!(remote["customTitle"], "Renamed while VS Code writes");
    assert_eq!(remote["requests"][0]["isCanceled"], true);
    assert_eq!(remote, vs.env.replay(HAIKU, None));
}

#[test]
fn a_torn_line_left_behind_fails_the_push_instead_of_waiting_for_ever() {
    let vs = Vs::new();
    vs.sync(&[]);
    vs.env.ok(&["rename", "9c2d", "Renamed after VS Code stopped mid-write"]);
    let fragment = "{\"kind\":1,\"k\":[\"cust";
    append(&vs.file(HAIKU), fragment);
    // Left that way long since: no write under way will finish it.
    age(&vs.file(HAIKU));
    let out = vs.env.chasm(&["sync", "--root", &vs.root()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(common::assert_error_line(&out).contains("1 session could not be synced"));
    assert!(stderr.contains("incomplete line that has not changed for a while"), "{stderr}");
    assert!(stderr.contains("ignored an incomplete last line (left standing"), "{stderr}");
    assert!(std::fs::read_to_string(vs.file(HAIKU)).unwrap().ends_with(fragment), "nothing written after it");
}

#[test]
fn vs_code_appending_while_chasm_syncs_loses_nothing() {
    let vs = Vs::new();
    vs.sync(&[]);
    let path = vs.file(HAIKU);
    let writer = std::thread::spawn(move || {
        for i in 0..40 {
            let line = json!({"kind": 2, "k": ["requests"], "v": [request(&format!("w{i}"), 1764060000000 + i, &format!("turn {i}"))]});
            append(&path, &format!("{line}\n"));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let mut renamed = 0;
    while !writer.is_finished() {
        renamed += 1;
        vs.env.ok(&["rename", "9c2d", &format!("title {renamed}")]);
        let (code, _) = vs.sync(&[]);
        assert_eq!(code, 0);
    }
    writer.join().unwrap();
    let (code, _) = vs.sync(&[]);
    assert_eq!(code, 0);
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("0 pulled, 0 pushed"), "not converged: {out}");
    let remote = vs.remote(HAIKU);
    assert_eq!(remote["requests"].as_array().unwrap().len(), 42, "a request was lost");
    assert_eq!(remote["customTitle"], format!("title {renamed}"));
    assert_eq!(remote, vs.env.replay(HAIKU, None));
    assert!(vs.env.ok(&["verify"]).starts_with("ok:"));
}

/// Renames on both sides: a `session_metadata` conflict, settled by each strategy.
fn title_conflict() -> Vs {
    let vs = Vs::new();
    vs.sync(&[]);
    vs.env.ok(&["rename", "9c2d", "Local title"]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["customTitle"], "v": "VS Code title"}));
    vs
}

#[test]
fn auto_merge_and_manual_leave_an_edit_conflict_for_resolve() {
    for strategy in ["auto_merge", "manual"] {
        let vs = title_conflict();
        let before = std::fs::read(vs.file(HAIKU)).unwrap();
        let (code, out) = vs.sync(&["--strategy", strategy]);
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("1 conflicted"), "{out}");
        assert_eq!(std::fs::read(vs.file(HAIKU)).unwrap(), before, "nothing is overwritten");
        assert_eq!(vs.status(HAIKU), "conflict");
        let conflicts = vs.conflicts();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0]["kind"], "session_metadata");
        assert_eq!(conflicts[0]["local"], "Local title");
        assert_eq!(conflicts[0]["remote"], "VS Code title");
        // Asked over storage that does not hold the session: none to name, and a warning why.
        let elsewhere = vs.env.dir.path().join("elsewhere/chatSessions");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let out = vs.env.chasm(&["conflicts", "--root", elsewhere.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.stdout.is_empty() && stderr.contains("has conflicts, but its file is not in"), "{stderr}");
        // Resolving takes the local title to VS Code; everything converges.
        let id = conflicts[0]["id"].as_str().unwrap();
        let root = vs.root();
        let out = vs.env.chasm(&["resolve", &id[..6], "--take", "local", "--root", &root]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(vs.remote(HAIKU)["customTitle"], "Local title");
        // The report names the session by the title both sides now show.
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.lines().any(|l| l.starts_with("merged") && l.ends_with("Local title")), "{report}");
        assert_eq!(vs.status(HAIKU), "synced");
        assert!(vs.conflicts().is_empty());
        // The losing title stays in the journal.
        assert!(vs.env.log().iter().any(|r| r["payload"]["value"] == "VS Code title"));
    }
}

#[test]
fn local_wins_remote_wins_and_most_recent() {
    for (strategy, expected) in
        [("local_wins", "Local title"), ("remote_wins", "VS Code title"), ("most_recent", "VS Code title")]
    {
        let vs = title_conflict();
        let (code, out) = vs.sync(&["--strategy", strategy]);
        assert_eq!(code, 0, "{strategy}: {out}");
        assert_eq!(vs.remote(HAIKU)["customTitle"], expected, "{strategy}");
        assert_eq!(vs.env.replay(HAIKU, None), vs.remote(HAIKU), "{strategy}");
        assert_eq!(vs.status(HAIKU), "synced");
    }
    // most_recent goes the other way when the local change is the newer one: VS Code's change
    // is recorded first (by capture), then the rename.
    let vs = Vs::new();
    vs.sync(&[]);
    vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["customTitle"], "v": "VS Code title"}));
    vs.env.ok(&["capture", vs.file(HAIKU).to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    vs.env.ok(&["rename", "9c2d", "Newer local title"]);
    let (code, _) = vs.sync(&["--strategy", "most_recent"]);
    assert_eq!(code, 0);
    assert_eq!(vs.remote(HAIKU)["customTitle"], "Newer local title");
}

#[test]
fn keep_both_makes_the_local_version_a_new_visible_session() {
    let vs = title_conflict();
    let (code, out) = vs.sync(&["--strategy", "keep_both"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(vs.remote(HAIKU)["customTitle"], "VS Code title");
    let copies: Vec<PathBuf> = std::fs::read_dir(vs.env.chat_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_str().unwrap().contains(HAIKU) && !p.to_str().unwrap().contains(READING))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let copy = vscode_read(&copies[0]);
    let copy_id = copies[0].file_stem().unwrap().to_str().unwrap();
    assert_eq!(copy["sessionId"], copy_id);
    assert_eq!(copy["customTitle"], "Local title (local copy)");
    assert_eq!(copy["requests"], vs.remote(HAIKU)["requests"]);
    // The copy is a journal session of its own, synced.
    assert_eq!(vs.env.replay(copy_id, None), copy);
    assert_eq!(vs.status(copy_id), "synced");
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("0 pulled, 0 pushed, 0 merged"), "{out}");
}

#[test]
fn message_edit_deletion_and_concurrent_add_conflicts() {
    // message_edit: the same request changed on both sides.
    let vs = Vs::new();
    vs.sync(&[]);
    let mut mine = vs.remote(HAIKU)["requests"][0].clone();
    mine["response"] = json!([{"value": "a local answer"}]);
    let id = mine["requestId"].as_str().unwrap().to_owned();
    vs.local_change(HAIKU, ChangeType::Update, EntityType::Message, &id, json!({"index": 0, "request": mine}));
    vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["requests", 0, "response"], "v": [{"value": "VS Code's answer"}]}));
    let (code, _) = vs.sync(&[]);
    assert_eq!(code, 3);
    let c = vs.conflicts();
    assert_eq!((c[0]["kind"].as_str(), c[0]["entity_id"].as_str()), (Some("message_edit"), Some(id.as_str())));
    let (code, _) = vs.sync(&["--strategy", "remote_wins"]);
    assert_eq!(code, 0);
    assert_eq!(vs.remote(HAIKU)["requests"][0]["response"][0]["value"], "VS Code's answer");

    // deletion: deleted through chasm, changed in VS Code.
    let vs = Vs::new();
    vs.sync(&[]);
    vs.env.ok(&["delete", "9c2d"]);
    vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["customTitle"], "v": "still here"}));
    let (code, _) = vs.sync(&[]);
    assert_eq!(code, 3);
    assert_eq!(vs.conflicts()[0]["kind"], "deletion");
    assert!(vs.file(HAIKU).exists());
    let (code, _) = vs.sync(&["--strategy", "local_wins"]);
    assert_eq!(code, 0);
    assert!(!vs.file(HAIKU).exists());

    // deletion the other way: renamed through chasm, deleted in VS Code. Plain status lists it
    // (a conflict waits, though the session is gone from VS Code), and the conflict names the
    // local side by its title, not its JSON.
    let vs = Vs::new();
    vs.sync(&[]);
    vs.env.ok(&["rename", "9c2d", "Renamed, then deleted in VS Code"]);
    std::fs::remove_file(vs.file(HAIKU)).unwrap();
    let (code, _) = vs.sync(&[]);
    assert_eq!(code, 3);
    let line = vs.with_root(&["status"]).lines().find(|l| l.contains("9c2d")).map(str::to_owned);
    let line = line.expect("a deletion in conflict is listed by plain status");
    assert!(line.starts_with("conflict") && line.contains("see `chasm conflicts`"), "{line}");
    let listed = vs.with_root(&["conflicts"]);
    assert!(listed.contains("local the session \"Renamed, then deleted in VS Code\""), "{listed}");
    assert!(!listed.contains("\"requests\""), "{listed}");

    // concurrent_add: both sides appended requests; auto_merge takes both, by timestamp.
    let vs = Vs::new();
    vs.sync(&[]);
    let local = request("local-1", 1764050150000, "added through chasm");
    vs.local_change(HAIKU, ChangeType::Create, EntityType::Message, "local-1", json!({"index": 2, "request": local}));
    vs.vscode_writes(
        HAIKU,
        json!({"kind": 2, "k": ["requests"], "v": [request("remote-1", 1764050120000, "typed in VS Code")]}),
    );
    let (code, _) = vs.sync(&["--strategy", "manual"]);
    assert_eq!(code, 3);
    assert_eq!(vs.conflicts_with("manual")[0]["kind"], "concurrent_add");
    assert!(vs.conflicts().is_empty(), "auto_merge settles concurrent additions");
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0, "{out}");
    let remote = vs.remote(HAIKU);
    let ids: Vec<&str> =
        remote["requests"].as_array().unwrap().iter().map(|r| r["requestId"].as_str().unwrap()).collect();
    assert_eq!(ids[2..], ["remote-1", "local-1"]);
    assert_eq!(vs.remote(HAIKU), vs.env.replay(HAIKU, None));
}

impl Vs {
    fn conflicts_with(&self, strategy: &str) -> Vec<Value> {
        self.with_root(&["conflicts", "--json", "--strategy", strategy])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[test]
fn dry_run_writes_nothing_anywhere() {
    let vs = Vs::new();
    vs.sync(&[]);
    vs.env.ok(&["rename", "9c2d", "Would be pushed"]);
    std::fs::write(
        vs.file(READING),
        serde_json::to_string(&{
            let mut v = vs.remote(READING);
            v["customTitle"] = json!("Changed in VS Code");
            v
        })
        .unwrap(),
    )
    .unwrap();
    let records = vs.env.log().len();
    let files: Vec<Vec<u8>> = [HAIKU, READING].iter().map(|id| std::fs::read(vs.file(id)).unwrap()).collect();
    let (code, out) = vs.sync(&["--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.contains("dry run") && out.contains("1 pulled, 1 pushed"), "{out}");
    assert_eq!(vs.env.log().len(), records);
    assert_eq!([HAIKU, READING].iter().map(|id| std::fs::read(vs.file(id)).unwrap()).collect::<Vec<_>>(), files);
}

/// Sessions deleted with `chasm delete` count against the limit too, when the sync would
/// delete them in VS Code; what VS Code changed meanwhile is recorded all the same, and the
/// error says so.
#[test]
fn max_delete_counts_the_sessions_chasm_would_delete_in_vs_code() {
    let vs = Vs::new();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    vs.env.ok(&["delete", HAIKU]);
    let mut reading = vs.remote(READING);
    reading["customTitle"] = json!("Renamed in VS Code");
    std::fs::write(vs.file(READING), reading.to_string()).unwrap();
    let root = vs.root();
    let records = vs.env.log().len();
    let sync = |args: &[&str]| vs.env.chasm(&[&["sync", "--root", &root, "--max-delete", "0"], args].concat());
    let line = common::assert_error_line(&sync(&["--dry-run"]));
    assert!(line.contains("chasm would delete 1 session in VS Code, more than --max-delete 0"), "{line}");
    assert!(line.contains("; nothing was changed; a sync with --max-delete 1 deletes them"), "{line}");
    assert_eq!(vs.env.log().len(), records);
    let line = common::assert_error_line(&sync(&[]));
    assert!(line.contains("the change read from VS Code was recorded; nothing was written to VS Code"), "{line}");
    // The change, and the checkpoint of the session it left in step.
    let log = vs.env.log();
    assert_eq!(log.len(), records + 2);
    assert_eq!((&log[records]["change_type"], &log[records + 1]["change_type"]), (&json!("update"), &json!("merge")));
    assert!(vs.file(HAIKU).exists());
    assert_eq!(vs.env.replay(READING, None)["customTitle"], "Renamed in VS Code");
    assert_eq!(vs.status(READING), "synced");
    assert_eq!(vs.sync(&["--max-delete", "1"]).0, 0);
    assert!(!vs.file(HAIKU).exists());
}

/// A round of one session says nothing of the others: finding that one in step, it leaves
/// no note that everything is, which would let the next round skip a deletion in VS Code of
/// another (a note lists files, and a file gone matches a note that never listed it). Found
/// by `tests/sync_model.rs`.
#[test]
fn a_round_of_one_session_notes_nothing() {
    let vs = Vs::new();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    std::fs::remove_file(vs.file(HAIKU)).unwrap();
    let provider = chasm::provider::vscode::VsCode::new(&[PathBuf::from(vs.root())]);
    let only = chasm::sync::Options { only: Some(READING.into()), ..Default::default() };
    let report = chasm::in_step::round(&vs.env.journal(), &provider, &only).unwrap();
    assert_eq!(report.appended, 0);
    assert!(!vs.env.journal().join(chasm::in_step::FILE).exists(), "a round of one session noted everything in step");
    assert_eq!(vs.sync(&[]).0, 0);
    assert!(vs.env.log().iter().any(|r| r["session_id"] == HAIKU && r["change_type"] == "delete"));
}

/// A session VS Code creates while syncs stop at the delete limit is recorded by the stopped
/// sync; if VS Code deletes it before the next one, that deletion is recorded too. (Recorded
/// with no checkpoint, it had no known place in VS Code, so its deletion could never be seen:
/// the journal held it as unsynced for ever. Found by `tests/sync_model.rs`.)
#[test]
fn a_session_created_while_the_delete_limit_stops_syncs_is_seen_deleted() {
    let vs = Vs::new();
    assert_eq!(vs.sync(&[]).0, 0);
    vs.env.ok(&["delete", HAIKU]);
    let (brief, file) = new_session(&vs);
    let root = vs.root();
    let out = vs.env.chasm(&["sync", "--root", &root, "--max-delete", "0"]);
    assert!(common::assert_error_line(&out).contains("chasm would delete 1 session in VS Code"));
    assert_eq!(vs.status(brief), "synced");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(vs.sync(&["--max-delete", "2"]).0, 0);
    assert!(deleted_in_vs_code(&vs, brief), "VS Code's deletion of {brief} was not recorded");
    let status = vs.with_root(&["status", "--json"]);
    assert!(!status.contains("unsynced"), "{status}");
}

#[test]
fn max_delete_stops_a_sync_that_would_delete_too_much() {
    let vs = Vs::new();
    for i in 0..3 {
        let id = format!("extra-{i}");
        std::fs::write(
            vs.env.chat_dir().join(format!("{id}.json")),
            json!({"version": 3, "sessionId": id, "requests": []}).to_string(),
        )
        .unwrap();
    }
    vs.sync(&[]);
    for entry in std::fs::read_dir(vs.env.chat_dir()).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let records = vs.env.log().len();
    let root = vs.root();
    let out = vs.env.chasm(&["sync", "--root", &root, "--max-delete", "4"]);
    let line = common::assert_error_line(&out);
    assert!(line.contains("VS Code deleted 5 sessions, more than --max-delete 4"), "{line}");
    // The way on, in the same line.
    assert!(
        line.ends_with("a sync with --max-delete 5 records the deletions (the history stays in the journal)"),
        "{line}"
    );
    assert_eq!(vs.env.log().len(), records, "nothing recorded");
    let (code, _) = vs.sync(&["--max-delete", "5"]);
    assert_eq!(code, 0);
    let deletes = vs.env.log().iter().filter(|r| r["change_type"] == "delete" && r["entity_type"] == "session").count();
    assert_eq!(deletes, 5);
    // Deleted sessions are not deleted again.
    let (code, out) = vs.sync(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("0 pulled, 0 pushed"), "{out}");
}

#[test]
fn unsafe_files_are_skipped_with_a_warning_and_a_broken_one_fails_the_sync() {
    let vs = Vs::new();
    let broken = vs.env.chat_dir().join("broken.json");
    std::fs::write(&broken, "{ not json").unwrap();
    std::fs::write(vs.env.chat_dir().join("..json"), "{}").unwrap();
    let root = vs.root();
    // Written a moment ago, it may be VS Code's half-written file: left for the next sync.
    let out = vs.env.chasm(&["sync", "--root", &root]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("2 pulled, 0 pushed, 0 merged, 0 conflicted, 1 deferred"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("deferred") && l.contains("broken.json")), "{stdout}");
    // Still broken once it has been still a while: a failure, which a script must see.
    age(&broken);
    let out = vs.env.chasm(&["sync", "--root", &root]);
    assert_eq!(out.status.code(), Some(4));
    assert!(common::assert_error_line(&out).contains("1 session could not be synced"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning:") && stderr.contains("broken.json"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 pulled, 0 pushed, 0 merged, 0 conflicted, 1 failed"));
    assert_eq!(vs.status("broken"), "error");
    // A dry run says what a sync would meet.
    let out = vs.env.chasm(&["sync", "--root", &root, "--dry-run"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(common::assert_error_line(&out).contains("1 session cannot be synced"));
    // `--json` counts it too.
    let out = vs.env.chasm(&["sync", "--root", &root, "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["failed"].as_u64(), report["deferred"].as_u64()), (Some(1), Some(0)));
}

/// A small deterministic generator, so a failing run can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Edits on both sides interleaved with syncs. After every sync that converges, both sides hold
/// the same session; no request is ever lost unless a delete said so; and replaying the journal
/// at every checkpoint gives what VS Code held right after that sync.
#[test]
fn randomized_edits_on_both_sides_converge_and_lose_nothing() {
    for seed in [1u64, 7, 42] {
        let vs = Vs::new();
        let mut rng = Lcg(seed);
        let (code, _) = vs.sync(&[]);
        assert_eq!(code, 0);
        let mut live: std::collections::BTreeSet<String> = vs.remote(HAIKU)["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["requestId"].as_str().unwrap().to_owned())
            .collect();
        let mut checkpoints: Vec<(u64, Value)> = Vec::new();
        let mut next = 0;
        for step in 0..24 {
            next += 1;
            let ts = 1764100000000 + next * 1000;
            match rng.below(6) {
                0 => {
                    let id = format!("vs-{seed}-{next}");
                    vs.vscode_writes(
                        HAIKU,
                        json!({"kind": 2, "k": ["requests"], "v": [request(&id, ts, &format!("remote {next}"))]}),
                    );
                    live.insert(id);
                }
                1 => {
                    let n = vs.remote(HAIKU)["requests"].as_array().unwrap().len() as u64;
                    if n > 0 {
                        let i = rng.below(n);
                        vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["requests", i, "response"], "v": [{"value": format!("streamed {next}")}]}));
                    }
                }
                2 => {
                    let requests = vs.remote(HAIKU)["requests"].as_array().unwrap().clone();
                    if let Some(last) = requests.last() {
                        // VS Code removes the last request: a delete that says so.
                        live.remove(last["requestId"].as_str().unwrap());
                        vs.vscode_writes(HAIKU, json!({"kind": 2, "k": ["requests"], "i": requests.len() - 1}));
                    }
                }
                3 => vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["customTitle"], "v": format!("vs title {next}")})),
                4 => {
                    vs.env.ok(&["rename", HAIKU, &format!("local title {next}")]);
                }
                _ => {
                    let id = format!("local-{seed}-{next}");
                    let index = vs.env.replay(HAIKU, None)["requests"].as_array().unwrap().len();
                    vs.local_change(
                        HAIKU,
                        ChangeType::Create,
                        EntityType::Message,
                        &id,
                        json!({"index": index, "request": request(&id, ts, &format!("local {next}"))}),
                    );
                    live.insert(id);
                }
            }
            if step % 3 != 2 {
                continue;
            }
            let (mut code, mut out) = vs.sync(&[]);
            while code == 3 {
                // Settle each conflict one way or the other, then sync again.
                for c in vs.conflicts() {
                    let take = if rng.below(2) == 0 { "local" } else { "remote" };
                    vs.with_root(&["resolve", c["id"].as_str().unwrap(), "--take", take]);
                }
                (code, out) = vs.sync(&[]);
            }
            assert_eq!(code, 0, "seed {seed} step {step}: {out}");
            let remote = vs.remote(HAIKU);
            assert_eq!(remote, vs.env.replay(HAIKU, None), "seed {seed} step {step}: the two sides differ");
            let present: std::collections::BTreeSet<String> = remote["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["requestId"].as_str().unwrap().to_owned())
                .collect();
            assert!(
                live.is_subset(&present),
                "seed {seed} step {step}: lost {:?}",
                live.difference(&present).collect::<Vec<_>>()
            );
            // A request present that no side added or that a delete removed would be a ghost.
            assert!(
                present.is_subset(&live),
                "seed {seed} step {step}: resurrected {:?}",
                present.difference(&live).collect::<Vec<_>>()
            );
            let cp = vs
                .env
                .log()
                .iter()
                .rev()
                .find(|r| r["session_id"] == HAIKU && r["change_type"] == "merge")
                .unwrap()["seq"]
                .as_u64()
                .unwrap();
            if checkpoints.last().is_none_or(|(seq, _)| *seq != cp) {
                checkpoints.push((cp, remote));
            }
        }
        for (seq, state) in &checkpoints {
            assert_eq!(&vs.env.replay(HAIKU, Some(*seq)), state, "seed {seed}: replay at checkpoint {seq}");
        }
        assert!(vs.env.ok(&["verify"]).starts_with("ok:"));
    }
}

#[test]
fn an_unchanged_file_is_not_read_again_and_any_change_is_seen() {
    let vs = Vs::new();
    let (haiku, reading) = (vs.file(HAIKU), vs.file(READING));
    age(&haiku);
    age(&reading);
    vs.sync(&[]);
    // Same size, same mtime, same inode, different bytes: a sync that skips reading unchanged
    // files does not notice, which shows it did not read it.
    let text = std::fs::read_to_string(&reading).unwrap();
    let old_mtime = std::fs::metadata(&reading).unwrap().modified().unwrap();
    let swapped = text.replacen("Rust", "Rast", 1);
    assert_eq!(swapped.len(), text.len());
    std::fs::write(&reading, &swapped).unwrap();
    std::fs::File::options().write(true).open(&reading).unwrap().set_modified(old_mtime).unwrap();
    let (code, out) = vs.sync(&["--json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["appended"], 0, "{out}");
    assert_eq!(vs.status(READING), "synced");
    // A change of size is seen.
    append(&haiku, &format!("{}\n", json!({"kind": 1, "k": ["customTitle"], "v": "Seen"})));
    age(&haiku);
    vs.sync(&[]);
    assert_eq!(vs.env.replay(HAIKU, None)["customTitle"], "Seen");
    // So is a change made through chasm, though the file did not change.
    vs.env.ok(&["rename", READING, "Renamed"]);
    vs.sync(&[]);
    assert_eq!(vs.remote(READING)["customTitle"], "Renamed");
}

#[test]
fn a_sync_with_nothing_to_do_is_noted_and_the_next_one_does_not_open_the_journal() {
    let vs = Vs::new();
    let note = vs.env.journal().join("in-step.json");
    vs.age_files();
    vs.sync(&[]);
    assert!(!note.exists(), "a sync that recorded changes leaves no note");
    vs.sync(&[]);
    assert!(note.exists(), "a sync that found nothing to do notes it");

    // With the journal held by another process, a sync with nothing to do still succeeds:
    // it never opened the journal.
    let held = common::open_journal(&vs.env.journal(), OpenMode::Existing);
    let (code, out) = vs.sync(&["--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["appended"], 0);
    // A file VS Code changed takes the full path, which needs the journal.
    append(&vs.file(HAIKU), &format!("{}\n", json!({"kind": 1, "k": ["customTitle"], "v": "Changed"})));
    age(&vs.file(HAIKU));
    let out = vs.env.chasm(&["sync", "--root", &vs.root()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"), "{out:?}");
    drop(held);
    vs.sync(&[]);
    assert_eq!(vs.env.replay(HAIKU, None)["customTitle"], "Changed");

    // A change made through chasm drops the note, so the next sync delivers it.
    vs.sync(&[]);
    age(&vs.file(HAIKU));
    vs.sync(&[]);
    assert!(note.exists());
    vs.env.ok(&["rename", READING, "Noted"]);
    assert!(!note.exists());
    vs.sync(&[]);
    assert_eq!(vs.remote(READING)["customTitle"], "Noted");
}

/// VS Code copies a window's sessions into the workspace it enters and keeps the originals, so
/// one session id can stand in two chat folders for good. The copy the user goes on in, the
/// one written last, is synced; the other is skipped with a warning at every sync, and the
/// no-op note stands over it: the syncs after it still do not open the journal.
#[test]
fn a_session_copied_to_another_workspace_is_followed_there_and_the_no_op_path_kept() {
    let vs = Vs::new();
    let note = vs.env.journal().join("in-step.json");
    vs.age_files();
    vs.sync(&[]);
    let original = vs.file(HAIKU);
    let other = vs.env.dir.path().join("User/workspaceStorage/0a1b2c3d4e/chatSessions");
    std::fs::create_dir_all(&other).unwrap();
    let copy = other.join(format!("{HAIKU}.jsonl"));
    std::fs::copy(&original, &copy).unwrap();
    append(&copy, &format!("{}\n", json!({"kind": 1, "k": ["customTitle"], "v": "In the new workspace"})));
    let half_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(1800);
    std::fs::File::options().write(true).open(&copy).unwrap().set_modified(half_hour_ago).unwrap();

    let root = vs.root();
    let warning = format!(
        "warning: {}: skipped: session {HAIKU} is also at {}, written later",
        original.display(),
        copy.display()
    );
    let sync = || {
        let out = vs.env.chasm(&["sync", "--root", &root]);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for _ in 0..2 {
        let (code, stderr) = sync();
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains(&warning), "{stderr}");
    }
    assert_eq!(vs.env.replay(HAIKU, None)["customTitle"], "In the new workspace");
    assert!(note.exists(), "a sync whose only warning is the other copy notes it");

    let held = common::open_journal(&vs.env.journal(), OpenMode::Existing);
    let (code, stderr) = sync();
    assert_eq!(code, Some(0), "the journal was opened: {stderr}");
    assert_eq!(stderr.lines().collect::<Vec<_>>(), [warning.as_str()], "warned again, and only of the copy");
    // A change to the copy not synced takes the full path, as a session file's does.
    append(&original, &format!("{}\n", json!({"kind": 1, "k": ["customTitle"], "v": "In the old one"})));
    age(&original);
    let (code, stderr) = sync();
    assert_ne!(code, Some(0));
    assert!(stderr.contains("locked"), "{stderr}");
    drop(held);
    // Still the older, still skipped: what it says stays in the file, as VS Code shows it there.
    let (code, stderr) = sync();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(&warning), "{stderr}");
    assert_eq!(vs.env.replay(HAIKU, None)["customTitle"], "In the new workspace");
}

/// A first sync reads the sessions the journal has never seen ahead of its scan, on another
/// thread: each is recorded as its own file holds it, in the listing's order, and a file that
/// does not read among them fails alone, as it would read in turn.
#[test]
fn a_first_sync_reads_new_sessions_ahead_and_each_is_its_own() {
    let vs = Vs::new();
    let chat = vs.env.chat_dir();
    let mut reading: Value = serde_json::from_slice(&std::fs::read(vs.file(READING)).unwrap()).unwrap();
    let ids: Vec<String> = (0..9).map(|k| format!("0000000{k}-6c1d-4a9e-b7f2-0e4d6c8a1f35")).collect();
    for (k, id) in ids.iter().enumerate() {
        reading["sessionId"] = json!(id);
        reading["customTitle"] = json!(format!("Copy {k}"));
        let text = serde_json::to_string_pretty(&reading).unwrap();
        // The fourth cut short, as a crash leaves a file.
        let text = if k == 3 { &text[..text.len() / 2] } else { &text[..] };
        std::fs::write(chat.join(format!("{id}.json")), text).unwrap();
        age(&chat.join(format!("{id}.json")));
    }
    vs.age_files();
    let out = vs.env.chasm(&["sync", "--root", &vs.root()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stdout.contains("sync: 10 pulled"), "{stdout}");
    assert!(stderr.contains(&format!("{}.json", ids[3])) && stderr.contains("not valid JSON"), "{stderr}");
    for (k, id) in ids.iter().enumerate().filter(|(k, _)| *k != 3) {
        assert_eq!(vs.env.replay(id, None), vscode_read(&chat.join(format!("{id}.json"))), "copy {k}");
        assert_eq!(vs.status(id), "synced", "copy {k}");
    }
    assert_eq!(vs.env.replay(HAIKU, None), vs.remote(HAIKU));
}

/// A session file that does not read (cut short by a crash, say) fails every sync until it is
/// mended, and says so each time; the syncs after it that find nothing else to do take the
/// no-op path all the same, with the same output and exit code as the full sync, until the
/// file changes.
#[test]
fn a_file_that_does_not_read_fails_each_sync_and_the_no_op_path_is_kept() {
    let vs = Vs::new();
    let note = vs.env.journal().join("in-step.json");
    vs.age_files();
    vs.sync(&[]);
    let path = vs.file(READING);
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    age(&path);
    let root = vs.root();
    let sync = |json: bool| {
        let mut args = vec!["sync", "--root", root.as_str()];
        args.extend(json.then_some("--json"));
        let out = vs.env.chasm(&args);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    // The full sync's report, the note dropped before each.
    let full_sync = |json: bool| {
        let _ = std::fs::remove_file(&note);
        sync(json)
    };
    let full = [full_sync(false), full_sync(true)];
    let (code, stdout, stderr) = &full[0];
    assert_eq!(*code, Some(4), "{stderr}");
    assert!(stdout.contains("failed") && stderr.contains("skipped: ") && stderr.contains("not valid JSON"), "{stderr}");
    assert!(note.exists(), "a sync whose only failure is a file that does not read notes it");

    // The journal held by another process: the same report, from the note.
    let held = common::open_journal(&vs.env.journal(), OpenMode::Existing);
    assert_eq!([sync(false), sync(true)], full);
    // Mended, the file takes the full path, which needs the journal.
    std::fs::write(&path, &whole).unwrap();
    age(&path);
    let (code, _, stderr) = sync(false);
    assert!(code != Some(0) && stderr.contains("locked"), "{stderr}");
    drop(held);
    assert_eq!(vs.sync(&[]).0, 0);
    assert_eq!(vs.status(READING), "synced");
}

/// A session deleted through chasm is deleted where chasm syncs it; a copy VS Code keeps in
/// another workspace is said to stay, and is taken up by the next sync, as VS Code still shows
/// it there (and a second delete deletes it too).
#[test]
fn deleting_a_session_with_a_copy_elsewhere_says_the_copy_stays() {
    let vs = Vs::new();
    vs.age_files();
    let original = vs.file(HAIKU);
    let other = vs.env.dir.path().join("User/workspaceStorage/0a1b2c3d4e/chatSessions");
    std::fs::create_dir_all(&other).unwrap();
    let copy = other.join(format!("{HAIKU}.jsonl"));
    std::fs::copy(&original, &copy).unwrap();
    let half_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(1800);
    std::fs::File::options().write(true).open(&copy).unwrap().set_modified(half_hour_ago).unwrap();
    vs.sync(&[]);

    vs.env.ok(&["delete", HAIKU]);
    let root = vs.root();
    let out = vs.env.chasm(&["sync", "--root", &root]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!copy.exists() && original.exists());
    let said = format!(
        "{HAIKU} was deleted from {}, but VS Code has another copy of it at {}",
        copy.display(),
        original.display()
    );
    assert!(stderr.contains(&said), "{stderr}");
    let (_, out) = vs.sync(&[]);
    assert!(out.contains("pulled"), "{out}");
    assert_eq!(vs.status(HAIKU), "synced");

    vs.env.ok(&["delete", HAIKU]);
    let out = vs.env.chasm(&["sync", "--root", &root]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert!(!original.exists());
}

/// A file still for a tenth of a second is trusted by its fingerprint (its time has a
/// fraction, as on every file system with nanosecond times): the sync after VS Code stops
/// writing finds everything in step and notes it, so a background sync goes back to the no-op
/// path within a round, not only once the file has been left alone for seconds.
#[test]
fn a_file_still_for_a_moment_is_noted_in_step() {
    let vs = Vs::new();
    let note = vs.env.journal().join("in-step.json");
    vs.age_files();
    vs.sync(&[]);
    vs.sync(&[]);
    assert!(note.exists());
    vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["customTitle"], "v": "Just now"}));
    vs.sync(&[]);
    assert!(!note.exists(), "a sync that recorded a change leaves no note");
    std::thread::sleep(std::time::Duration::from_millis(200));
    vs.sync(&[]);
    assert!(note.exists(), "the file has been still for 200 ms");
    assert_eq!(vs.env.replay(HAIKU, None)["customTitle"], "Just now");
}

#[test]
fn the_graph_shows_both_sides_the_conflict_and_its_resolution() {
    let vs = title_conflict();
    assert_eq!(vs.sync(&[]).0, 3);
    let id = vs.conflicts()[0]["id"].as_str().unwrap().to_owned();
    vs.with_root(&["resolve", &id, "--take", "local"]);
    let graph = vs.env.ok(&["log", "--graph", "9c2d", "--reverse"]);
    let lines: Vec<&str> = graph.lines().collect();
    assert!(lines[0].contains("L R"), "{graph}");
    let find =
        |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {graph}"));
    let local = find("customTitle = \"Local title\"");
    let remote = find("customTitle = \"VS Code title\"");
    let resolution = find("<- resolution");
    assert!(lines[local].contains("* |") && !lines[local].contains('!'), "{graph}");
    assert!(lines[remote].contains("| *") && lines[remote].contains("changed on both sides"), "{graph}");
    assert!(lines[resolution].contains("* |") && lines[resolution].contains("Local title"), "{graph}");
    assert!(local < remote && remote < resolution);
    // Checkpoints join the lanes: the first sync's, and the one the resolution ended with.
    let checkpoints: Vec<usize> = lines.iter().enumerate().filter(|(_, l)| l.contains("*=*")).map(|(i, _)| i).collect();
    assert_eq!(checkpoints.len(), 2, "{graph}");
    assert!(checkpoints[0] < local && checkpoints[1] == resolution + 1, "{graph}");
}

/// `--graph -n N` reads back only as far as the checkpoints its lines' marks depend on, and
/// shows what the whole graph shows of them: its newest N lines, marks and all, for the
/// journal and for one session, in either order.
#[test]
fn a_limited_graph_shows_the_whole_graphs_newest_lines() {
    let vs = title_conflict();
    assert_eq!(vs.sync(&[]).0, 3);
    // The other session goes on changing meanwhile, and then the conflict is settled.
    vs.env.ok(&["rename", "3b5e", "Reading, renamed"]);
    vs.sync(&[]);
    vs.env.ok(&["tag", "3b5e", "later"]);
    let id = vs.conflicts()[0]["id"].as_str().unwrap().to_owned();
    vs.with_root(&["resolve", &id, "--take", "local"]);
    vs.sync(&[]);
    // And once more the other way round, VS Code's change first (captured: no checkpoint),
    // so that the one chasm makes after it is the one marked.
    vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["customTitle"], "v": "VS Code again"}));
    vs.env.ok(&["capture", vs.file(HAIKU).to_str().unwrap()]);
    vs.env.ok(&["rename", "9c2d", "Local again"]);
    for session in [&[][..], &["9c2d"], &["3b5e"]] {
        let whole = vs.env.graph_as_limited_graphs_show_it(session);
        if session.is_empty() {
            let newest = whole.lines().nth(1).unwrap();
            assert!(whole.contains("changed on both sides") && whole.contains("<- resolution"), "{whole}");
            assert!(newest.contains("Local again") && newest.contains("changed on both sides"), "{whole}");
        }
    }
}

/// VS Code changes one of the two sessions, as the generator picks: a request added, a
/// response streamed, the last request removed or a title set, in the `.jsonl` log, or the same
/// kinds of change written as a whole new `.json` file.
fn vscode_edit(vs: &Vs, rng: &mut Lcg, next: u64) {
    let ts = 1764200000000 + next as i64 * 1000;
    let new_request = request(&format!("vs-{next}"), ts, &format!("remote {next}"));
    if rng.below(2) == 0 {
        let n = vs.remote(HAIKU)["requests"].as_array().unwrap().len() as u64;
        let line = match rng.below(4) {
            0 => json!({"kind": 2, "k": ["requests"], "v": [new_request]}),
            1 if n > 0 => {
                json!({"kind": 1, "k": ["requests", rng.below(n), "response"], "v": [{"value": format!("streamed {next}")}]})
            }
            2 if n > 0 => json!({"kind": 2, "k": ["requests"], "i": n - 1}),
            _ => json!({"kind": 1, "k": ["customTitle"], "v": format!("vs title {next}")}),
        };
        vs.vscode_writes(HAIKU, line);
    } else {
        let mut v = vs.remote(READING);
        let requests = v["requests"].as_array_mut().unwrap();
        match rng.below(4) {
            0 => requests.push(new_request),
            1 if !requests.is_empty() => {
                let i = rng.below(requests.len() as u64) as usize;
                requests[i]["response"] = json!([{"value": format!("streamed {next}")}]);
            }
            2 if !requests.is_empty() => {
                requests.pop();
            }
            _ => v["customTitle"] = json!(format!("vs title {next}")),
        }
        std::fs::write(vs.file(READING), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    }
    vs.age_files();
}

/// The journal's events without what differs between two runs (times, hashes), session by
/// session in the order each session's were recorded; a checkpoint names the events it covers
/// by their place among its session's own. (A session read on a quick path is recorded with
/// its checkpoint, one read in full has it recorded after every session's changes: only the
/// order across sessions differs.)
fn events_of(vs: &Vs) -> Vec<Value> {
    let mut place = std::collections::HashMap::new();
    let mut count: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut events: Vec<(String, Value)> = vs
        .env
        .log()
        .into_iter()
        .map(|r| {
            let session = r["session_id"].as_str().unwrap().to_owned();
            let n = count.entry(session.clone()).or_default();
            *n += 1;
            place.insert(r["seq"].as_u64().unwrap(), *n);
            let mut payload = r["payload"].clone();
            if r["change_type"] == "merge" {
                payload["hash"] = Value::Null;
                payload["path"] = Value::Null;
                for side in ["local_seq", "remote_seq"] {
                    let seq = payload[side].as_u64().unwrap();
                    payload[side] = json!(place.get(&seq).copied().unwrap_or(0));
                }
            }
            (
                session,
                json!([r["session_id"], r["change_type"], r["entity_type"], r["entity_id"], r["origin"], payload]),
            )
        })
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    events.into_iter().map(|(_, e)| e).collect()
}

/// A change made in chasm to a session that does not fold: its local side cannot be built, so
/// no sync can plan it.
fn break_session(vs: &Vs, id: &str) {
    vs.local_change(
        id,
        ChangeType::Update,
        EntityType::Message,
        "broken",
        json!({"index": 0, "request": "not a request"}),
    );
}

/// VS Code creates a session (as a `.json`): its id and file.
fn new_session(vs: &Vs) -> (&'static str, PathBuf) {
    let id = "55555555-6c1d-4a9e-b7f2-0e4d6c8a1f35";
    let file = vs.env.chat_dir().join(format!("{id}.json"));
    std::fs::write(&file, json!({"version": 3, "sessionId": id, "requests": []}).to_string()).unwrap();
    (id, file)
}

/// Whether the journal recorded VS Code deleting the session.
fn deleted_in_vs_code(vs: &Vs, id: &str) -> bool {
    vs.env.log().iter().any(|r| r["session_id"] == id && r["change_type"] == "delete" && r["origin"] == "remote")
}

fn forget_shapes(vs: &Vs) {
    let db = rusqlite::Connection::open(vs.env.journal().join("journal.sqlite")).unwrap();
    db.execute_batch("DELETE FROM shapes").unwrap();
}

/// A file VS Code changed while the journal recorded nothing since both sides were in step is
/// diffed against what the session held then, not against its history: the events recorded
/// and the states replayed are the same as a sync that reads the history gives.
#[test]
fn a_file_changed_alone_is_diffed_against_what_the_session_held_with_the_same_result() {
    for seed in [3u64, 11] {
        let (quick, full) = (Vs::new(), Vs::new());
        for vs in [&quick, &full] {
            vs.age_files();
            assert_eq!(vs.sync(&[]).0, 0);
        }
        let (mut a, mut b) = (Lcg(seed), Lcg(seed));
        for step in 0..12 {
            vscode_edit(&quick, &mut a, step);
            vscode_edit(&full, &mut b, step);
            forget_shapes(&full);
            for vs in [&quick, &full] {
                let (code, out) = vs.sync(&[]);
                assert_eq!(code, 0, "seed {seed} step {step}: {out}");
            }
            assert_eq!(events_of(&quick), events_of(&full), "seed {seed} step {step}");
            for id in [HAIKU, READING] {
                assert_eq!(quick.env.replay(id, None), quick.remote(id), "seed {seed} step {step}");
                assert_eq!(quick.env.replay(id, None), full.env.replay(id, None), "seed {seed} step {step}");
            }
        }
        assert!(quick.env.ok(&["verify"]).starts_with("ok:"));
    }
}

/// The same for the real sessions, as VS Code goes on changing them: a response streamed
/// into the last request, a request added, the title set, the first request dropped. Each
/// change is read against the kept shape (a `.json` in parts, a `.jsonl` by its new lines) and
/// gives the events and states a read of the history gives.
#[test]
fn real_sessions_changed_by_vs_code_are_read_against_what_they_held_with_the_same_result() {
    let Some(files) = real_fixtures() else { return };
    for f in &files {
        let format = f.extension().unwrap().to_str().unwrap();
        let id = vscode_read(f)["sessionId"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| f.file_stem().unwrap().to_str().unwrap().to_owned());
        let (quick, full) = (Vs { env: Env::new() }, Vs { env: Env::new() });
        for vs in [&quick, &full] {
            std::fs::copy(f, vs.env.chat_dir().join(format!("{id}.{format}"))).unwrap();
            age(&vs.file(&id));
            assert_eq!(vs.sync(&[]).0, 0);
        }
        for step in 0..4 {
            for vs in [&quick, &full] {
                let mut v = vs.remote(&id);
                let n = v["requests"].as_array().unwrap().len();
                let mut added = v["requests"][0].clone();
                added["requestId"] = json!(format!("request_added-{step}"));
                let streamed = json!([{"value": format!("streamed at step {step}")}]);
                if format == "jsonl" {
                    let line = match step {
                        0 => json!({"kind": 1, "k": ["requests", n - 1, "response"], "v": streamed}),
                        1 => json!({"kind": 2, "k": ["requests"], "v": [added]}),
                        2 => json!({"kind": 1, "k": ["customTitle"], "v": "Retitled"}),
                        _ => json!({"kind": 2, "k": ["requests"], "i": n - 1}),
                    };
                    vs.vscode_writes(&id, line);
                } else {
                    match step {
                        0 => v["requests"][n - 1]["response"] = streamed,
                        1 => v["requests"].as_array_mut().unwrap().push(added),
                        2 => v["customTitle"] = json!("Retitled"),
                        _ => _ = v["requests"].as_array_mut().unwrap().remove(0),
                    }
                    std::fs::write(vs.file(&id), serde_json::to_string_pretty(&v).unwrap()).unwrap();
                }
                age(&vs.file(&id));
            }
            forget_shapes(&full);
            let report = quick.sync_with(chasm::sync::Options::default()).0.unwrap();
            assert_eq!(report.quick, 1, "{f:?} step {step}: read from its history");
            assert_eq!(full.sync(&[]).0, 0);
            assert_eq!(events_of(&quick), events_of(&full), "{f:?} step {step}");
            assert_eq!(quick.env.replay(&id, None), quick.remote(&id), "{f:?} step {step}");
            assert_eq!(quick.status(&id), "synced", "{f:?} step {step}");
        }
    }
}

/// New lines only a whole read can settle (VS Code compacting its log into one whole state)
/// are still read against what the session held: the file is read whole, but the session's
/// history is not.
#[test]
fn a_log_compacted_is_read_whole_against_what_the_session_held() {
    let vs = Vs::new();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    let mut state = vs.remote(HAIKU);
    state["customTitle"] = json!("Compacted");
    vs.vscode_writes(HAIKU, json!({"kind": 0, "v": state}));
    age(&vs.file(HAIKU));
    let report = vs.sync_with(chasm::sync::Options { max_delete: 10, ..Default::default() }).0.unwrap();
    assert_eq!(report.quick, 1, "diffed against the kept shape, not the history");
    assert_eq!(vs.env.replay(HAIKU, None), vs.remote(HAIKU));
    assert_eq!(vs.status(HAIKU), "synced");
}

/// A first sync records each session it has never seen without folding or merging: the events
/// and states are those of a sync that takes the full path (forced here with a resolution
/// for a conflict that does not exist), and the next change is read against its shape.
#[test]
fn a_session_recorded_for_the_first_time_gets_the_same_events_as_the_full_path() {
    let (quick, full) = (Vs::new(), Vs::new());
    for vs in [&quick, &full] {
        vs.age_files();
    }
    let first_sync = |vs: &Vs, options| vs.sync_with(options).0.unwrap();
    let report = first_sync(&quick, chasm::sync::Options { max_delete: 10, ..Default::default() });
    assert_eq!(report.quick, 2, "both sessions recorded without a fold or merge");
    let overrides = [("no-such-conflict".to_owned(), chasm::merge::Take::Local)].into();
    let report = first_sync(&full, chasm::sync::Options { overrides, max_delete: 10, ..Default::default() });
    assert_eq!(report.quick, 0, "the full path for both");
    // Recording what was read after every file (a first sync records as it goes, to bound its
    // memory) gives the same records in the same order.
    let early = Vs::new();
    early.age_files();
    let report =
        first_sync(&early, chasm::sync::Options { record_after: Some(1), max_delete: 10, ..Default::default() });
    assert_eq!(report.quick, 2);
    assert_eq!(report.appended, events_of(&early).len());
    assert!(!events_of(&quick).is_empty());
    assert_eq!(events_of(&quick), events_of(&full));
    assert_eq!(events_of(&quick), events_of(&early));
    for id in [HAIKU, READING] {
        assert_eq!(quick.env.replay(id, None), quick.remote(id));
        assert_eq!(quick.env.replay(id, None), full.env.replay(id, None));
        assert_eq!(quick.env.replay(id, None), early.env.replay(id, None));
        assert_eq!(quick.status(id), "synced");
        assert_eq!(early.status(id), "synced");
    }
    assert_eq!(early.sync(&["--json"]).0, 0);
    assert!(early.env.ok(&["verify"]).starts_with("ok:"));
    let held = |vs: &Vs| {
        let db = rusqlite::Connection::open(vs.env.journal().join("journal.sqlite")).unwrap();
        db.query_row("SELECT count(*) FROM shapes", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    assert_eq!(held(&quick), 2, "the first sync keeps what each session holds");
    assert!(quick.env.ok(&["verify"]).starts_with("ok:"));
}

/// A session only the journal has, settled since its last checkpoint — deleted in VS Code, or
/// synced to a place this run does not cover — is reported without reading its history, and
/// as the full path (forced here with a resolution for a conflict that does not exist)
/// reports it. Such sessions pile up: every session VS Code deletes stays in the journal.
#[test]
fn settled_sessions_only_the_journal_has_are_reported_as_the_full_path_reports_them() {
    let vs = Vs::new();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    std::fs::remove_file(vs.file(HAIKU)).unwrap();
    assert_eq!(vs.sync(&[]).0, 0);
    let journal = common::open_journal(&vs.env.journal(), OpenMode::Existing);
    let haiku = journal.settled(HAIKU).unwrap().expect("deleted in VS Code, and checkpointed");
    assert!(!haiku.exists && haiku.title.is_none() && haiku.path.is_some());
    let reading = journal.settled(READING).unwrap().expect("in step, and checkpointed");
    assert!(reading.exists && reading.title.is_some());
    drop(journal);
    let elsewhere = tempfile::tempdir().unwrap();
    for (root, covered) in [(PathBuf::from(vs.root()), true), (elsewhere.path().to_owned(), false)] {
        let report = |overrides: std::collections::HashMap<String, chasm::merge::Take>| {
            let mut journal = common::open_journal(&vs.env.journal(), OpenMode::Existing);
            let options = chasm::sync::Options { overrides, dry_run: true, ..Default::default() };
            let provider = chasm::provider::vscode::VsCode::new(std::slice::from_ref(&root));
            let report = chasm::sync::sync(&mut journal, &provider, &options).unwrap();
            format!("{:?}", report.sessions)
        };
        let full = report([("no-such-conflict".to_owned(), chasm::merge::Take::Local)].into());
        assert_eq!(report(Default::default()), full, "root {}", root.display());
        // Deleted where it was synced to, when that place is covered.
        assert_eq!(full.contains("deleted: true"), covered, "{full}");
    }
    // A sync notes what it found of a settled session; the next reads that instead, and
    // reports the same.
    let (first, again) = (vs.sync(&["--json"]), vs.sync(&["--json"]));
    assert_eq!(first, again);
    let db = rusqlite::Connection::open(vs.env.journal().join("journal.sqlite")).unwrap();
    let noted: Vec<u8> =
        db.query_row("SELECT value FROM fingerprints WHERE session = ?1", [HAIKU.as_bytes()], |r| r.get(0)).unwrap();
    assert!(chasm::journal::cache::decode_fingerprint(&noted).unwrap().settled.is_some());
    drop(db);
    // Over the root that covers neither: both are only in the journal, neither is touched.
    let other = elsewhere.path().to_str().unwrap();
    let before = events_of(&vs).len();
    assert_eq!(vs.env.chasm(&["sync", "--root", other]).status.code(), Some(0));
    assert_eq!(events_of(&vs).len(), before);
    let status = vs.env.ok(&["status", "--all", "--root", other]);
    assert!(status.contains(&READING[..8]) && status.contains(&HAIKU[..8]), "{status}");
}

/// A session never synced anywhere (captured from a file outside VS Code's storage) cannot be
/// synced, and having no checkpoint to begin from, finding that out folds its whole history:
/// a sync notes what it found, and the next reports it from the note as the full path does,
/// and `status` shows it as it did before, until anything is recorded for it. One changed on
/// both sides is not noted (a strategy could matter there).
#[test]
fn a_never_synced_session_is_reported_from_the_sync_s_note_as_the_full_path_reports_it() {
    const GONE: &str = "7e9a1c3d-5f7b-4d9e-a1c3-e5f7a9b1c3d5";
    let vs = Vs::new();
    vs.age_files();
    let outside = tempfile::tempdir().unwrap();
    let file = |id: &str| outside.path().join(format!("{id}.json"));
    let mut session = vs.remote(READING);
    for id in [GONE, OUTSIDE] {
        session["sessionId"] = json!(id);
        std::fs::write(file(id), session.to_string()).unwrap();
    }
    vs.env.ok(&["capture", file(OUTSIDE).to_str().unwrap(), file(GONE).to_str().unwrap()]);
    vs.env.ok(&["delete", GONE]);
    // What a dry run reports of the session, and of how many from notes; beside it the full
    // path's (forced with a resolution for a conflict that does not exist).
    let report = |overrides: std::collections::HashMap<String, chasm::merge::Take>| {
        let options = chasm::sync::Options { overrides, dry_run: true, ..Default::default() };
        let report = vs.sync_with(options).0.unwrap();
        let outside = report.sessions.iter().find(|s| s.session_id == OUTSIDE).unwrap();
        (format!("{outside:?}"), report.noted)
    };
    let check = |noted: usize, changes: (u64, u64)| {
        let (sessions, n) = report(Default::default());
        assert_eq!(sessions, report([("no-such-conflict".to_owned(), chasm::merge::Take::Local)].into()).0);
        assert_eq!(n, noted, "{sessions}");
        let line = vs.with_root(&["status", OUTSIDE, "--json"]);
        let status: Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(status["status"], "unsynced", "{status}");
        assert_eq!(
            (status["local_changes"].as_u64(), status["remote_changes"].as_u64()),
            (Some(changes.0), Some(changes.1))
        );
    };
    // What `status` shows of a session, every way it can be asked.
    let shown = |id: &str| -> Vec<String> {
        let all =
            [vec!["status"], vec!["status", "--all"], vec!["status", "--json"], vec!["status", "--all", "--json"]];
        all.iter()
            .flat_map(|args| {
                vs.with_root(args).lines().filter(|l| l.contains(&id[..8])).map(str::to_owned).collect::<Vec<_>>()
            })
            .collect()
    };
    check(0, (0, 0));
    let before = (shown(OUTSIDE), shown(GONE));
    assert_eq!((before.0.len(), before.1.len()), (4, 2), "{before:?}");
    assert!(before.1.iter().all(|l| l.contains("deleted")), "{:?}", before.1);
    assert_eq!(vs.sync(&[]).0, 0);
    check(2, (0, 0));
    assert_eq!((shown(OUTSIDE), shown(GONE)), before);
    let (first, again) = (vs.sync(&["--json"]), vs.sync(&["--json"]));
    assert_eq!(first, again);
    // Renamed through chasm: the note no longer holds; the next sync notes it again.
    vs.env.ok(&["rename", OUTSIDE, "Renamed here"]);
    check(1, (1, 0));
    let before = shown(OUTSIDE);
    assert_eq!(vs.sync(&[]).0, 0);
    check(2, (1, 0));
    assert_eq!(shown(OUTSIDE), before);
    // A request added where it was captured from, captured again: changed on both sides.
    session["sessionId"] = json!(OUTSIDE);
    session["requests"].as_array_mut().unwrap().push(request("request_outside", 1_700_000_000_000, "more"));
    std::fs::write(file(OUTSIDE), session.to_string()).unwrap();
    vs.env.ok(&["capture", file(OUTSIDE).to_str().unwrap()]);
    assert_eq!(vs.sync(&[]).0, 0);
    check(1, (1, 1));
    assert!(vs.env.ok(&["verify"]).starts_with("ok:"));
}

/// A sync that would delete more sessions than allowed records nothing, even one that would
/// otherwise record what it reads as it goes: a session missing from VS Code holds that back.
#[test]
fn a_sync_stopped_by_the_delete_limit_records_nothing_read_before_it() {
    let vs = Vs::new();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    let before = events_of(&vs).len();
    // HAIKU deleted in VS Code, READING changed there.
    std::fs::remove_file(vs.file(HAIKU)).unwrap();
    let mut reading = vs.remote(READING);
    reading["customTitle"] = json!("Changed while the other went");
    std::fs::write(vs.file(READING), reading.to_string()).unwrap();
    age(&vs.file(READING));
    let mut journal = common::open_journal(&vs.env.journal(), OpenMode::Existing);
    let roots = [PathBuf::from(vs.root())];
    let options = chasm::sync::Options { record_after: Some(1), max_delete: 0, ..Default::default() };
    let result = chasm::sync::sync(&mut journal, &chasm::provider::vscode::VsCode::new(&roots), &options);
    drop(journal);
    assert!(matches!(result, Err(chasm::sync::SyncError::TooManyDeletes { .. })), "{result:?}");
    assert_eq!(events_of(&vs).len(), before, "nothing recorded");
}

/// A session VS Code deleted long ago, settled and noted so, does not stop a sync recording
/// what it reads as it goes (every deleted session stays in the journal: otherwise a journal
/// that ever saw a deletion would never again bound a sync's memory); a session deleted in
/// this run still does, so the delete limit sees it before anything is recorded.
#[test]
fn a_session_deleted_long_ago_does_not_hold_back_recording_as_a_sync_reads() {
    const THIRD: &str = "5d7f9b31-2e4a-4c6b-8d0f-1a3c5e7b9d2f";
    let vs = Vs::new();
    let mut third = vs.remote(READING);
    third["sessionId"] = json!(THIRD);
    std::fs::write(vs.env.chat_dir().join(format!("{THIRD}.json")), third.to_string()).unwrap();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    std::fs::remove_file(vs.file(HAIKU)).unwrap();
    assert_eq!(vs.sync(&[]).0, 0);
    assert_eq!(vs.sync(&[]).0, 0, "notes HAIKU settled");
    let sync =
        |max_delete| vs.sync_with(chasm::sync::Options { record_after: Some(1), max_delete, ..Default::default() }).0;
    assert!(recorded_as_read(&vs, &vs.env.chat_dir(), READING, THIRD, || {
        sync(0).unwrap();
    }));
    let mut reading = vs.remote(READING);
    // Now THIRD is gone from VS Code: a deletion this run must count first, so nothing is
    // recorded, READING's next change included.
    std::fs::remove_file(vs.file(THIRD)).unwrap();
    reading["customTitle"] = json!("Changed again");
    std::fs::write(vs.file(READING), reading.to_string()).unwrap();
    age(&vs.file(READING));
    let before = events_of(&vs).len();
    let result = sync(0);
    assert!(matches!(result, Err(chasm::sync::SyncError::TooManyDeletes { .. })), "{result:?}");
    assert_eq!(events_of(&vs).len(), before, "nothing recorded");
    // Allowed, the sync records it all and leaves both sides in step.
    assert!(sync(10).is_ok());
    assert_eq!(vs.env.replay(READING, None), vs.remote(READING));
    assert!(vs.env.ok(&["verify"]).starts_with("ok:"));
}

/// Nor do the sessions of another VS Code user dir sharing the journal (settled, and synced
/// to a place this run does not cover): they cannot turn out deleted here either.
#[test]
fn another_user_dirs_sessions_do_not_hold_back_recording_as_a_sync_reads() {
    const FIRST: &str = "1a3c5e7b-9d2f-4b6d-8f0a-2c4e6a8b0d1f";
    const THIRD: &str = "5d7f9b31-2e4a-4c6b-8d0f-1a3c5e7b9d2f";
    let vs = Vs::new();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    // A second user dir, FIRST and THIRD in it, synced into the same journal.
    let other = Env::new();
    let chat = other.chat_dir();
    for id in [FIRST, THIRD] {
        let mut v = vs.remote(READING);
        v["sessionId"] = json!(id);
        std::fs::write(chat.join(format!("{id}.json")), v.to_string()).unwrap();
        age(&chat.join(format!("{id}.json")));
    }
    let root = other.dir.path().join("User");
    let sync_other = |record_after| {
        let mut journal = common::open_journal(&vs.env.journal(), OpenMode::Existing);
        let options = chasm::sync::Options { record_after, max_delete: 10, ..Default::default() };
        let provider = chasm::provider::vscode::VsCode::new(std::slice::from_ref(&root));
        chasm::sync::sync(&mut journal, &provider, &options).unwrap();
    };
    sync_other(None);
    sync_other(None); // notes HAIKU and READING settled for this root
    assert!(recorded_as_read(&vs, &chat, FIRST, THIRD, || sync_other(Some(1))));
    // The first user dir's sessions are untouched, and still in step there.
    assert_eq!(vs.sync(&["--json"]).0, 0);
    assert_eq!(vs.status(READING), "synced");
    assert!(vs.env.ok(&["verify"]).starts_with("ok:"));
}

/// Nor does a session never synced anywhere (captured from outside VS Code's storage), noted
/// so: it has no place to be deleted from.
#[test]
fn a_captured_session_does_not_hold_back_recording_as_a_sync_reads() {
    const THIRD: &str = "5d7f9b31-2e4a-4c6b-8d0f-1a3c5e7b9d2f";
    let vs = Vs::new();
    let outside = tempfile::tempdir().unwrap();
    for (id, dir) in [(THIRD, vs.env.chat_dir()), (OUTSIDE, outside.path().to_owned())] {
        let mut v = vs.remote(READING);
        v["sessionId"] = json!(id);
        std::fs::write(dir.join(format!("{id}.json")), v.to_string()).unwrap();
    }
    vs.env.ok(&["capture", outside.path().join(format!("{OUTSIDE}.json")).to_str().unwrap()]);
    vs.age_files();
    age(&vs.file(THIRD));
    assert_eq!(vs.sync(&[]).0, 0, "notes OUTSIDE never synced");
    let sync = || {
        let report = vs.sync_with(chasm::sync::Options { record_after: Some(1), ..Default::default() }).0.unwrap();
        assert_eq!(report.noted, 1);
    };
    assert!(recorded_as_read(&vs, &vs.env.chat_dir(), READING, THIRD, sync));
    assert_eq!(vs.status(OUTSIDE), "unsynced");
    assert!(vs.env.ok(&["verify"]).starts_with("ok:"));
}

/// Changes `first` and `then` in VS Code (in `chat`) and drops `first`'s kept shape, so that
/// only `then` takes the quick path; runs `sync`; says whether `then`'s changes were recorded
/// before `first`'s, which is read first: whether the sync recorded the quick path's as it
/// read them, rather than all when the scan ended.
fn recorded_as_read(vs: &Vs, chat: &Path, first: &str, then: &str, sync: impl FnOnce()) -> bool {
    for id in [first, then] {
        let path = chat.join(format!("{id}.json"));
        let mut v = vscode_read(&path);
        v["customTitle"] = json!(format!("{id} changed"));
        std::fs::write(&path, v.to_string()).unwrap();
        age(&path);
    }
    let db = rusqlite::Connection::open(vs.env.journal().join("journal.sqlite")).unwrap();
    db.execute("DELETE FROM shapes WHERE session = ?1", [first.as_bytes()]).unwrap();
    drop(db);
    let before = vs.env.log().len();
    sync();
    let new: Vec<Value> = vs.env.log().into_iter().skip(before).collect();
    let first_of = |id: &str| new.iter().position(|r| r["session_id"] == id).unwrap();
    first_of(then) < first_of(first)
}

/// A round that only pulls records what VS Code changed with its checkpoints, in one durable
/// commit; one that also pushes records what VS Code changed first, durable before any file
/// is written, then the checkpoints.
#[test]
fn a_round_that_only_pulls_commits_once() {
    let vs = Vs::new();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    let change_in_vscode = |title: &str| {
        let mut reading = vs.remote(READING);
        reading["customTitle"] = json!(title);
        std::fs::write(vs.file(READING), reading.to_string()).unwrap();
        age(&vs.file(READING));
    };
    let sync = || {
        let (report, appends) = vs.sync_with(chasm::sync::Options { max_delete: 10, ..Default::default() });
        (report.unwrap(), appends)
    };
    change_in_vscode("Pulled alone");
    let before = vs.env.log().len();
    let (report, appends) = sync();
    assert_eq!(appends, 1);
    assert!(report.appended >= 2 && vs.env.log().len() == before + report.appended, "{report:?}");
    assert_eq!(vs.env.replay(READING, None), vs.remote(READING));
    // Renamed in chasm (a push) while VS Code changed the other session (a pull).
    vs.env.ok(&["rename", &HAIKU[..8], "Pushed"]);
    change_in_vscode("Pulled beside a push");
    let (report, appends) = sync();
    assert_eq!((appends, report.files_written), (2, 1), "{report:?}");
    assert_eq!(vs.remote(HAIKU)["customTitle"], "Pushed");
    assert_eq!(vs.env.replay(READING, None), vs.remote(READING));
    assert_eq!(vs.sync(&["--json"]).0, 0);
    assert!(vs.env.ok(&["verify"]).starts_with("ok:"));
}

/// A sync that stops because a session cannot be planned has still recorded what VS Code
/// changed in the others (it is read first, and held back only while nothing goes wrong).
#[test]
fn a_session_that_cannot_be_planned_does_not_keep_the_others_changes_out_of_history() {
    let vs = Vs::new();
    vs.age_files();
    assert_eq!(vs.sync(&[]).0, 0);
    break_session(&vs, HAIKU);
    let mut reading = vs.remote(READING);
    reading["customTitle"] = json!("Changed while the other is broken");
    std::fs::write(vs.file(READING), reading.to_string()).unwrap();
    age(&vs.file(READING));
    let recorded = || vs.env.log().iter().filter(|r| r["session_id"] == READING).count();
    let before = recorded();
    let (result, _) = vs.sync_with(chasm::sync::Options { max_delete: 10, ..Default::default() });
    assert!(result.is_err(), "{result:?}");
    assert!(recorded() > before, "READING's change is in the journal");
}

/// A session VS Code just created is recorded with its checkpoint, in one commit, however the
/// sync then ends: here it stops on a session that cannot be planned, as a sync killed before
/// its last commit would. When VS Code deletes the new session before the next sync, that
/// sync knows where it was and records the deletion.
#[test]
fn a_new_session_is_recorded_with_its_place_even_when_the_sync_stops() {
    let vs = Vs::new();
    assert_eq!(vs.sync(&[]).0, 0);
    break_session(&vs, HAIKU);
    let (brief, file) = new_session(&vs);
    let (result, _) = vs.sync_with(chasm::sync::Options { max_delete: 10, ..Default::default() });
    assert!(result.is_err(), "{result:?}");
    std::fs::remove_file(&file).unwrap();
    let only = chasm::sync::Options { only: Some(brief.into()), max_delete: 10, ..Default::default() };
    vs.sync_with(only).0.unwrap();
    assert!(deleted_in_vs_code(&vs, brief), "VS Code's deletion of {brief} was not recorded");
}

/// The shape is what such a sync reads: one that says a request differs gets it recorded again.
#[test]
fn a_changed_file_is_diffed_against_the_kept_shape() {
    let vs = Vs::new();
    vs.age_files();
    vs.sync(&[]);
    let first = tamper_shape_digest(&vs, READING, 0);
    let mut v = vs.remote(READING);
    v["customTitle"] = json!("Changed in VS Code");
    std::fs::write(vs.file(READING), v.to_string()).unwrap();
    age(&vs.file(READING));
    let out = vs.env.chasm(&["sync", "--root", &vs.root()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recorded: Vec<Value> = vs.env.log().into_iter().filter(|r| r["session_id"] == READING).collect();
    let last_two: Vec<&Value> = recorded.iter().rev().skip(1).take(2).collect();
    assert!(last_two.iter().any(|r| r["entity_id"] == first.as_str()), "{last_two:?}");
    assert!(last_two.iter().any(|r| r["entity_id"] == "customTitle"), "{last_two:?}");
    assert_eq!(vs.env.replay(READING, None), vs.remote(READING));
}

/// Sets one request's digest in the kept shape of a session to something no request has.
fn tamper_shape_digest(vs: &Vs, id: &str, request: usize) -> String {
    let db = rusqlite::Connection::open(vs.env.journal().join("journal.sqlite")).unwrap();
    let held: Vec<u8> =
        db.query_row("SELECT value FROM shapes WHERE session = ?1", [id.as_bytes()], |r| r.get(0)).unwrap();
    let mut held = chasm::journal::cache::decode_held(&held).unwrap();
    let entity = held.shape.requests[request].0.clone();
    held.shape.requests[request].1 = [0; 32];
    db.execute(
        "UPDATE shapes SET value = ?1 WHERE session = ?2",
        rusqlite::params![chasm::journal::cache::encode_held(&held), id.as_bytes()],
    )
    .unwrap();
    entity
}

/// A log VS Code appended to is read from where the last read ended: its new lines are applied
/// to what the session held, and a request no line reaches into is not read at all. A log
/// rewritten since, or a line still being written, is read as a whole read would.
#[test]
fn a_log_is_read_from_where_the_last_read_ended() {
    let vs = Vs::new();
    vs.age_files();
    vs.sync(&[]);
    // A shape that says request 0 differs from what it is: a read of the whole file would
    // record it again; reading only the new line leaves it alone.
    let first = tamper_shape_digest(&vs, HAIKU, 0);
    vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["customTitle"], "v": "From the new line"}));
    vs.vscode_writes(HAIKU, json!({"kind": 1, "k": ["requests", 1, "response"], "v": [{"value": "streamed"}]}));
    age(&vs.file(HAIKU));
    assert_eq!(vs.sync(&[]).0, 0);
    let recorded: Vec<Value> = vs.env.log().into_iter().filter(|r| r["session_id"] == HAIKU).collect();
    let changed: Vec<&str> = recorded.iter().rev().skip(1).take(2).map(|r| r["entity_id"].as_str().unwrap()).collect();
    assert!(changed.contains(&"customTitle") && !changed.contains(&first.as_str()), "{changed:?}");
    assert_eq!(vs.env.replay(HAIKU, None), vs.remote(HAIKU));

    // Half a line: left for the next read, with a warning; then finished.
    let line = json!({"kind": 2, "k": ["requests"], "v": [request("r9", 1764050300000, "Half written")]}).to_string();
    append(&vs.file(HAIKU), &line[..20]);
    age(&vs.file(HAIKU));
    let out = vs.env.chasm(&["sync", "--root", &vs.root()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete last line"), "{out:?}");
    assert_eq!(vs.env.replay(HAIKU, None)["requests"].as_array().unwrap().len(), 2);
    append(&vs.file(HAIKU), &format!("{}\n", &line[20..]));
    age(&vs.file(HAIKU));
    assert_eq!(vs.sync(&[]).0, 0);
    assert_eq!(vs.env.replay(HAIKU, None), vs.remote(HAIKU));
    assert_eq!(vs.env.replay(HAIKU, None)["requests"].as_array().unwrap().len(), 3);

    // VS Code compacts the log, and changes a request while at it: read whole, seen.
    let mut state = vs.remote(HAIKU);
    state["requests"][0]["isCanceled"] = json!(true);
    std::fs::write(vs.file(HAIKU), format!("{}\n", json!({"kind": 0, "v": state}))).unwrap();
    age(&vs.file(HAIKU));
    assert_eq!(vs.sync(&[]).0, 0);
    assert_eq!(vs.env.replay(HAIKU, None), state);
    assert!(vs.env.ok(&["verify"]).starts_with("ok:"));
}

/// A file VS Code is still writing has no fingerprint yet (its mtime is too fresh to trust),
/// yet what its session holds is kept, so a session being chatted in is read from where the
/// last read ended on every sync, not read whole; and a file with the bytes last read is not
/// parsed at all.
#[test]
fn a_log_being_written_is_read_from_where_the_last_read_ended() {
    let vs = Vs::new();
    vs.sync(&[]);
    let first = tamper_shape_digest(&vs, HAIKU, 0);
    for n in 0..3 {
        let line = json!({"kind": 1, "k": ["requests", 1, "response"], "v": [{"value": format!("streamed {n}")}]});
        vs.vscode_writes(HAIKU, line);
        assert_eq!(vs.sync(&[]).0, 0);
    }
    let recorded: Vec<Value> = vs.env.log().into_iter().filter(|r| r["session_id"] == HAIKU).collect();
    // Request 0 was recorded once, when first seen; the streamed request on each sync.
    let times = |id: &str| recorded.iter().filter(|r| r["entity_id"] == id).count();
    assert_eq!(times(&first), 1);
    assert_eq!(times("request_a1b2c3d4-0002-4e5f-8a9b-0c1d2e3f4a5b"), 4);

    // A `.json` written again with the same bytes is not parsed: its hash says it is unchanged.
    tamper_shape_digest(&vs, READING, 0);
    let bytes = std::fs::read(vs.file(READING)).unwrap();
    std::fs::write(vs.file(READING), &bytes).unwrap();
    let records = vs.env.log().len();
    assert_eq!(vs.sync(&[]).0, 0);
    assert_eq!(vs.env.log().len(), records);
    assert_eq!(vs.env.replay(HAIKU, None), vs.remote(HAIKU));
}
