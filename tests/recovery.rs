//! Getting things back: `restore` at any point (and its undo), recovering sessions VS Code
//! deleted or stopped listing, `diff` between points, and `export`/`import` between journals.

mod common;

use std::path::{Path, PathBuf};

use common::{Env, assert_error_line, vscode_read};
use rusqlite::Connection;
use serde_json::{Value, json};

const ID: &str = "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const OTHER: &str = "7b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e";
const INDEX_KEY: &str = "chat.ChatSessionStore.index";

fn request(n: u32, text: &str) -> Value {
    json!({
        "requestId": format!("request_{n:04}"),
        "timestamp": 1_764_000_000_000i64 + i64::from(n) * 60_000,
        "message": {"text": text, "parts": [{"kind": "text", "text": text}]},
        "response": [{"value": format!("About {text}.")}],
        "modelId": "copilot/gpt-4.1",
    })
}

fn session(id: &str, title: &str, requests: &[Value]) -> Value {
    json!({
        "version": 3,
        "sessionId": id,
        "creationDate": 1_764_000_000_000i64,
        "lastMessageDate": 1_764_000_000_000i64 + requests.len() as i64 * 60_000,
        "customTitle": title,
        "initialLocation": "panel",
        "requests": requests,
    })
}

fn write(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn seqs(env: &Env, id: &str) -> Vec<u64> {
    env.log().iter().filter(|r| r["session_id"] == id).map(|r| r["seq"].as_u64().unwrap()).collect()
}

/// A VS Code user dir with one workspace, its `state.vscdb` (VS Code's schema) listing the
/// sessions written by [`Vs::put`].
struct Vs {
    env: Env,
}

impl Vs {
    fn new() -> Vs {
        let env = Env::new();
        let chat = env.chat_dir();
        std::fs::write(chat.parent().unwrap().join("workspace.json"), r#"{"folder":"file:///home/ada/app"}"#).unwrap();
        let db = Connection::open(chat.parent().unwrap().join("state.vscdb")).unwrap();
        db.execute_batch("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)").unwrap();
        db.execute("INSERT INTO ItemTable VALUES ('workbench.panel.chat', '{\"visible\":true}')", []).unwrap();
        Vs { env }
    }

    /// [`ID`] with these requests and [`OTHER`] with one, both listed by VS Code and synced.
    fn synced_pair(requests: &[Value]) -> Vs {
        let vs = Vs::new();
        write(&vs.file(ID), &session(ID, "Borrow checker", requests));
        write(&vs.file(OTHER), &session(OTHER, "Other", &[request(1, "hello")]));
        vs.set_index(&[ID, OTHER]);
        vs.ok(&["sync"]);
        vs
    }

    fn db_path(&self) -> PathBuf {
        self.env.chat_dir().parent().unwrap().join("state.vscdb")
    }

    fn index(&self) -> Value {
        let db = Connection::open(self.db_path()).unwrap();
        let text: Option<String> =
            db.query_row("SELECT value FROM ItemTable WHERE key = ?1", [INDEX_KEY], |r| r.get(0)).ok();
        text.map(|t| serde_json::from_str(&t).unwrap()).unwrap_or(json!({"version": 1, "entries": {}}))
    }

    fn set_index(&self, ids: &[&str]) {
        self.set_entries(
            ids.iter()
                .map(|id| {
                    (id.to_string(), json!({"sessionId": id, "title": "x", "lastMessageDate": 1, "isEmpty": false}))
                })
                .collect(),
        );
    }

    /// VS Code's index, as VS Code would write it, listing these entries.
    fn set_entries(&self, entries: serde_json::Map<String, Value>) {
        let db = Connection::open(self.db_path()).unwrap();
        db.execute(
            "INSERT INTO ItemTable (key, value) VALUES (?1, ?2)",
            rusqlite::params![INDEX_KEY, json!({"version": 1, "entries": entries}).to_string()],
        )
        .unwrap();
    }

    fn listed(&self) -> Vec<String> {
        self.index()["entries"].as_object().unwrap().keys().cloned().collect()
    }

    fn file(&self, id: &str) -> PathBuf {
        self.env.chat_dir().join(format!("{id}.json"))
    }

    fn root(&self) -> String {
        self.env.dir.path().join("User").to_str().unwrap().to_owned()
    }

    /// Runs chasm with `--root <user dir>` after ARGS.
    fn run(&self, args: &[&str]) -> std::process::Output {
        let root = self.root();
        let mut all = args.to_vec();
        all.extend(["--root", root.as_str()]);
        self.env.chasm(&all)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "chasm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn status_all(&self) -> Vec<Value> {
        self.ok(&["status", "--all", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

#[test]
fn restore_to_any_point_equals_replay_there_and_is_undone_by_restoring_the_seq_before() {
    let env = Env::new();
    let path = env.dir.path().join(format!("{ID}.json"));
    let file = path.to_str().unwrap();
    // A history: requests added, one edited, the title changed, one removed, a field dropped.
    let steps = vec![
        session(ID, "Parsing", &[request(1, "parse a date")]),
        session(ID, "Parsing", &[request(1, "parse a date"), request(2, "and a time")]),
        session(ID, "Dates", &[request(1, "parse a date"), request(2, "and a time zone")]),
        session(ID, "Dates", &[request(2, "and a time zone"), request(3, "format it")]),
        {
            let mut v = session(ID, "Dates and times", &[request(2, "and a time zone"), request(3, "format it")]);
            v.as_object_mut().unwrap().remove("initialLocation");
            v
        },
    ];
    for step in &steps {
        write(&path, step);
        env.ok(&["capture", file]);
    }
    env.ok(&["tag", &ID[..8], "dates"]);
    let points = seqs(&env, ID);
    assert!(points.len() >= 10, "{points:?}");
    for &at in &points {
        let before = env.replay(ID, None);
        let head = env.log().len() as u64;
        let out = env.ok(&["restore", &ID[..8], "--at", &at.to_string()]);
        assert_eq!(env.replay(ID, None), env.replay(ID, Some(at)), "restore --at {at}: {out}");
        // Undo: back to the seq before the restore.
        env.ok(&["restore", ID, "--at", &head.to_string()]);
        assert_eq!(env.replay(ID, None), before, "undo of restore --at {at}");
    }
    // Restoring appends; history before it is untouched.
    let log = env.log();
    assert!(log.iter().any(|r| r["origin"] == "local" && r["entity_type"] == "message"));
    env.ok(&["verify"]);
    // A restore to where it already stands records nothing.
    let n = env.log().len();
    let out = env.ok(&["restore", ID, "--at", &n.to_string()]);
    assert!(
        out.contains("nothing to restore") && !out.contains("chasm sync"),
        "no hint to sync what did not change: {out}"
    );
    assert_eq!(env.log().len(), n);
    // Tags come back with the content: before the tag was added, there was none.
    env.ok(&["restore", ID, "--at", &points[0].to_string()]);
    let newest_tag = env.ok(&["log", ID, "--entity", "tag", "--json", "-n", "1"]);
    assert!(newest_tag.contains("\"change_type\":\"delete\""), "{newest_tag}");
    // A time works as a point too: the state at that time, as replay shows it.
    let t = env.log().iter().find(|r| r["seq"] == points[3]).unwrap()["timestamp"].as_str().unwrap().to_owned();
    env.ok(&["restore", ID, "--at-time", &t]);
    let at_t: Value = serde_json::from_str(&env.ok(&["replay", ID, "--at-time", &t])).unwrap();
    assert_eq!(env.replay(ID, None), at_t);
    // Bad points are errors, not panics.
    assert_error_line(&env.chasm(&["restore", ID, "--at", "0"]));
    assert_error_line(&env.chasm(&["restore", ID, "--at-time", "2001-01-01"]));
}

/// A `.jsonl` session carries no `lastMessageDate`: status dates its last message by its
/// newest request, present or deleted, not by the day it was created.
#[test]
fn status_dates_a_jsonl_session_by_its_last_request() {
    let vs = Vs::new();
    let log = vs.env.chat_dir().join(format!("{ID}.jsonl"));
    let mut first = session(ID, "Borrow checker", &[request(1, "why E0502")]);
    first.as_object_mut().unwrap().remove("lastMessageDate");
    let mut later = request(2, "fix it");
    later["timestamp"] = json!(1_765_000_000_000i64); // 2025-12-06, twelve days after creation
    let lines = [json!({"kind": 0, "v": first}), json!({"kind": 2, "k": ["requests"], "v": [later]})];
    std::fs::write(&log, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    vs.set_index(&[ID]);
    vs.ok(&["sync"]);
    let date = |vs: &Vs| {
        let rows = vs.status_all();
        let row = rows.iter().find(|r| r["session_id"] == ID).expect("listed").clone();
        (row["presence"].as_str().unwrap().to_owned(), row["last_message_date"].as_str().unwrap().to_owned())
    };
    let (presence, last) = date(&vs);
    assert_eq!(presence, "present");
    assert!(last.starts_with("2025-12-06"), "{last}");
    std::fs::remove_file(&log).unwrap();
    vs.set_index(&[]);
    vs.ok(&["sync"]);
    let (presence, last) = date(&vs);
    assert_eq!(presence, "deleted");
    assert!(last.starts_with("2025-12-06"), "{last}");
    let text = vs.ok(&["status", "--all"]);
    assert!(text.contains("last message 2025-12-06"), "{text}");
    // Once a sync has found it settled and gone, the same from what that sync kept of it.
    let json = vs.ok(&["status", "--all", "--json"]);
    vs.ok(&["sync"]);
    assert_eq!(vs.ok(&["status", "--all"]), text);
    assert_eq!(vs.ok(&["status", "--all", "--json"]), json);
}

/// A rename through chasm shows in VS Code's history, whose titles come from its index: the
/// entry is brought up to date with the file, as VS Code does when it saves a session. A
/// session the index no longer lists is not listed by it.
#[test]
fn a_rename_through_chasm_reaches_vs_codes_list() {
    let vs = Vs::new();
    write(&vs.file(ID), &session(ID, "Borrow checker", &[request(1, "why E0502")]));
    write(&vs.file(OTHER), &session(OTHER, "Other", &[request(1, "hello")]));
    vs.set_index(&[ID]);
    vs.ok(&["sync"]);
    vs.env.ok(&["rename", ID, "Lifetimes, at last"]);
    vs.env.ok(&["rename", OTHER, "Still hidden"]);
    vs.ok(&["sync"]);
    assert_eq!(vs.index()["entries"][ID]["title"], "Lifetimes, at last");
    assert_eq!(vs.listed(), [ID]);
}

/// A session deleted through chasm comes off VS Code's list with its file, as VS Code's own
/// deletion does: listed without a file, it would be shown and fail to open. With VS Code
/// holding its database, the file still goes and a warning says what is left.
#[test]
fn a_session_chasm_deletes_in_vs_code_leaves_its_index_too() {
    let vs = Vs::synced_pair(&[request(1, "why E0502")]);
    vs.env.ok(&["delete", ID]);
    vs.ok(&["sync"]);
    assert!(!vs.file(ID).exists());
    assert_eq!(vs.listed(), [OTHER]);
    // VS Code running, its database busy: the file is deleted, the entry stays, and says so.
    vs.env.ok(&["delete", OTHER]);
    let holder = Connection::open(vs.db_path()).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = vs.run(&["sync"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("VS Code still lists it") && stderr.contains(OTHER), "{stderr}");
    holder.execute_batch("ROLLBACK").unwrap();
    assert!(!vs.file(OTHER).exists());
    assert_eq!(vs.listed(), [OTHER]);
}

/// A session deleted in the journal whose file VS Code writes again (an undo, a copy put
/// back) is not reported gone: the next sync brings it back, and status says so.
#[test]
fn a_session_whose_file_comes_back_after_its_deletion_is_present_again() {
    let vs = Vs::new();
    let text = session(ID, "Borrow checker", &[request(1, "why E0502")]);
    write(&vs.file(ID), &text);
    vs.set_index(&[ID]);
    vs.ok(&["sync"]);
    std::fs::remove_file(vs.file(ID)).unwrap();
    assert!(vs.ok(&["sync"]).contains("deleted"));
    // Deleted on both sides and in step: plain status leaves it out, read from the journal
    // and then, once a second sync has found it settled and gone and noted so, from the note.
    assert!(!vs.ok(&["status"]).contains(&ID[..8]));
    vs.ok(&["sync"]);
    assert!(!vs.ok(&["status"]).contains(&ID[..8]));
    let row = |vs: &Vs| vs.status_all().into_iter().find(|r| r["session_id"] == ID).expect("listed");
    assert_eq!(row(&vs)["presence"], "deleted");
    write(&vs.file(ID), &text);
    let now = row(&vs);
    assert_eq!((&now["presence"], &now["status"]), (&json!("present"), &json!("remote_ahead")), "{now}");
    let plain = vs.ok(&["status"]);
    assert!(plain.lines().any(|l| l.starts_with("remote_ahead") && !l.contains("chasm restore")), "{plain}");
    vs.ok(&["sync"]);
    assert_eq!(row(&vs)["status"], "synced");
    let plain = vs.ok(&["status"]);
    assert!(plain.lines().any(|l| l.starts_with("synced") && l.ends_with("Borrow checker")), "{plain}");
    // A deletion made through chasm, not yet pushed, leaves the file: deleted, as asked, and
    // left out of plain status like any deleted session.
    vs.env.ok(&["delete", ID]);
    assert_eq!(row(&vs)["presence"], "deleted");
    assert!(!vs.ok(&["status"]).contains(&ID[..8]));
    // Edits to a deleted session are refused, with the way back.
    let line = vs.env.fails(&["rename", ID, "Renamed"]);
    assert!(line.contains("was deleted at seq") && line.contains(&format!("`chasm restore {ID}`")), "{line}");
}

/// A session VS Code deleted since the last sync, its file and its entry in VS Code's list
/// gone, is VS Code's change waiting for the sync: status says so, and not that VS Code's list
/// hides it.
#[test]
fn a_session_deleted_in_vs_code_since_the_last_sync_is_a_change_waiting_not_a_hidden_one() {
    let vs = Vs::synced_pair(&[request(1, "why E0502")]);
    std::fs::remove_file(vs.file(ID)).unwrap();
    vs.set_index(&[OTHER]);
    let plain = vs.ok(&["status"]);
    let line = plain.lines().find(|l| l.contains(&ID[..8])).unwrap_or_else(|| panic!("{plain}"));
    assert!(line.starts_with("remote_ahead") && !line.contains("hidden"), "{plain}");
}

#[test]
fn a_session_deleted_in_vs_code_is_listed_and_restored_into_vs_code_and_its_index() {
    let vs = Vs::synced_pair(&[request(1, "why E0502"), request(2, "fix it")]);
    let original = vs.env.replay(ID, None);
    // In step, a session's last title and date are its own (read from what the sync kept).
    let row = vs.status_all().into_iter().find(|r| r["session_id"] == OTHER).expect("listed");
    assert_eq!((&row["presence"], &row["last_title"]), (&json!("present"), &json!("Other")));
    assert!(row["last_message_date"].as_str().unwrap().starts_with("2025-11-"), "{row}");

    // VS Code deletes it: the file goes, and so does its index entry.
    std::fs::remove_file(vs.file(ID)).unwrap();
    vs.set_index(&[OTHER]);
    assert!(vs.ok(&["sync"]).contains("deleted"));
    // Plain status leaves it out; --all lists it with its last title and date.
    assert!(!vs.ok(&["status"]).contains(&ID[..8]));
    let all = vs.status_all();
    let row = all.iter().find(|r| r["session_id"] == ID).expect("listed with --all");
    assert_eq!(row["presence"], "deleted");
    assert_eq!(row["last_title"], "Borrow checker");
    assert!(row["last_message_date"].as_str().unwrap().starts_with("2025-11-"));
    let text = vs.ok(&["status", "--all"]);
    assert!(
        text.lines().any(|l| l.starts_with("deleted") && l.contains("Borrow checker") && l.contains("chasm restore")),
        "{text}"
    );

    // One command brings it back: file written, index entry added, a backup of the database kept.
    let out = vs.ok(&["restore", &ID[..8], "--push"]);
    assert!(out.contains("listed in VS Code"), "{out}");
    assert_eq!(vscode_read(&vs.file(ID)), original);
    assert_eq!(vs.env.replay(ID, None), original);
    assert!(vs.listed().contains(&ID.to_string()));
    assert_eq!(vs.index()["entries"][ID]["title"], "Borrow checker");
    assert!(vs.db_path().with_extension("vscdb.chasm-backup").is_file());
    let row = vs.status_all().into_iter().find(|r| r["session_id"] == ID).unwrap();
    assert_eq!((row["status"].as_str(), row["presence"].as_str()), (Some("synced"), Some("present")));
    // Other keys of VS Code's state survive.
    let db = Connection::open(vs.db_path()).unwrap();
    let kept: String =
        db.query_row("SELECT value FROM ItemTable WHERE key = 'workbench.panel.chat'", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, "{\"visible\":true}");
}

#[test]
fn a_session_dropped_from_the_index_is_shown_as_hidden_and_listed_again() {
    let vs = Vs::new();
    write(&vs.file(ID), &session(ID, "Old but gold", &[request(1, "lifetimes")]));
    write(&vs.file(OTHER), &session(OTHER, "New", &[request(1, "hello")]));
    vs.set_index(&[OTHER]);
    vs.ok(&["sync"]);
    let row = vs.status_all().into_iter().find(|r| r["session_id"] == ID).unwrap();
    assert_eq!(row["presence"], "hidden");
    assert!(vs.ok(&["status"]).contains("hidden"));

    // VS Code is running: the database is busy. The user is told, in one line, what to do.
    let holder = Connection::open(vs.db_path()).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = vs.run(&["restore", ID, "--push"]);
    let line = assert_error_line(&out);
    assert!(line.contains("close VS Code"), "{line}");
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert!(!vs.listed().contains(&ID.to_string()));

    // With VS Code closed, the same command lists it; nothing needed restoring in the journal.
    let before = vs.env.log().len();
    let out = vs.ok(&["restore", ID, "--push"]);
    assert!(out.contains("nothing to restore") && out.contains("listed in VS Code"), "{out}");
    assert_eq!(vs.env.log().len(), before);
    assert!(vs.listed().contains(&ID.to_string()));
    assert_eq!(vs.index()["entries"][ID]["title"], "Old but gold");
    assert_eq!(vs.index()["entries"][ID]["lastMessageDate"], 1_764_000_060_000i64);
}

#[test]
fn a_session_listed_again_behind_as_many_newer_as_vs_code_keeps_is_said_to_be_dropped_again() {
    for (newer, warned) in [(399, false), (400, true)] {
        let vs = Vs::new();
        write(&vs.file(ID), &session(ID, "Old but gold", &[request(1, "lifetimes")]));
        vs.ok(&["sync"]);
        // VS Code lists `newer` sessions more recent than this one, and not this one.
        let entries: serde_json::Map<String, Value> = (0..newer)
            .map(|i| {
                let id = format!("newer-{i}");
                (id.clone(), json!({"sessionId": id, "title": "t", "lastMessageDate": 1_800_000_000_000i64 + i}))
            })
            .collect();
        vs.set_entries(entries);
        let out = vs.run(&["restore", ID, "--push"]);
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(vs.listed().contains(&ID.to_string()), "listed either way");
        assert_eq!(stderr.contains("drops this one again"), warned, "{newer} newer: {stderr}");
        // The same when the session was deleted, and the sync writes its file back and lists it.
        vs.env.ok(&["delete", ID]);
        vs.ok(&["sync"]);
        assert!(!vs.file(ID).exists() && !vs.listed().contains(&ID.to_string()));
        let out = vs.run(&["restore", ID, "--push"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && vs.listed().contains(&ID.to_string()), "{stderr}");
        assert_eq!(stderr.contains("drops this one again"), warned, "{newer} newer, deleted: {stderr}");
    }
}

#[test]
fn restore_as_new_writes_a_copy_beside_the_original() {
    let vs = Vs::new();
    write(&vs.file(ID), &session(ID, "Plans", &[request(1, "plan A")]));
    vs.set_index(&[ID]);
    vs.ok(&["sync"]);
    let first = *seqs(&vs.env, ID).last().unwrap();
    write(&vs.file(ID), &session(ID, "Plans", &[request(1, "plan A"), request(2, "plan B")]));
    vs.ok(&["sync"]);
    let out = vs.ok(&["restore", ID, "--at", &first.to_string(), "--as-new"]);
    let copy = out.split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(copy, ID);
    let written = vscode_read(&vs.file(&copy));
    assert_eq!(written["sessionId"], copy.as_str());
    assert_eq!(written["customTitle"], "Plans (restored)");
    assert_eq!(written["requests"].as_array().unwrap().len(), 1);
    assert_eq!(vs.env.replay(&copy, None), written);
    assert!(vs.listed().contains(&copy));
    // The original is untouched, and the next sync has nothing to do.
    assert_eq!(vscode_read(&vs.file(ID))["requests"].as_array().unwrap().len(), 2);
    assert!(vs.ok(&["sync"]).contains("sync: 0 pulled, 0 pushed, 0 merged, 0 conflicted"));
}

#[test]
fn restore_without_push_is_written_by_the_next_sync() {
    let vs = Vs::new();
    write(&vs.file(ID), &session(ID, "Draft", &[request(1, "one")]));
    vs.ok(&["sync"]);
    let at = *seqs(&vs.env, ID).last().unwrap();
    write(&vs.file(ID), &session(ID, "Draft", &[request(1, "one"), request(2, "two")]));
    vs.ok(&["sync"]);
    vs.ok(&["restore", ID, "--at", &at.to_string()]);
    let row = vs.status_all().into_iter().find(|r| r["session_id"] == ID).unwrap();
    assert_eq!(row["status"], "local_ahead");
    assert!(vs.ok(&["sync"]).contains("pushed"));
    assert_eq!(vscode_read(&vs.file(ID)), vs.env.replay(ID, Some(at)));
}

#[test]
fn diff_names_what_changed_between_two_points() {
    let env = Env::new();
    let path = env.dir.path().join(format!("{ID}.json"));
    write(&path, &session(ID, "Before", &[request(1, "keep"), request(2, "drop")]));
    env.ok(&["capture", path.to_str().unwrap()]);
    let from = env.log().len().to_string();
    let mut edited = request(1, "keep");
    edited["response"] = json!([{"value": "About keep."}, {"value": "More."}]);
    write(&path, &session(ID, "After", &[edited, request(3, "new one")]));
    env.ok(&["capture", path.to_str().unwrap()]);

    let text = env.ok(&["diff", &ID[..6], &from]);
    assert!(text.contains("field customTitle: \"Before\" → \"After\""), "{text}");
    assert!(text.contains("+ request_0003  \"new one\""), "{text}");
    assert!(text.contains("- request_0002  \"drop\""), "{text}");
    assert!(text.contains("~ request_0001") && text.contains("response parts 1 → 2"), "{text}");
    let v: Value = serde_json::from_str(&env.ok(&["diff", ID, &from, "--json"])).unwrap();
    assert_eq!(v["added"][0]["id"], "request_0003");
    assert_eq!(v["removed"][0]["id"], "request_0002");
    assert_eq!(v["changed"][0]["keys"], json!(["response"]));
    assert_eq!(v["fields"].as_array().unwrap().len(), 1, "{v}");
    // A tag is a change too.
    let before_tag = env.log().len().to_string();
    env.ok(&["tag", ID, "keeper"]);
    let text = env.ok(&["diff", ID, &before_tag]);
    assert!(text.contains("+ tag \"keeper\"") && !text.contains("no changes"), "{text}");
    let v: Value = serde_json::from_str(&env.ok(&["diff", ID, &before_tag, "--json"])).unwrap();
    assert_eq!((v["tags_added"].clone(), v["tags_removed"].clone()), (json!(["keeper"]), json!([])));
    // Between a point and itself: nothing.
    assert!(env.ok(&["diff", ID, &from, &from]).contains("no changes"));
    // From before the session existed: created.
    assert!(env.ok(&["diff", ID, "0", &from]).contains("session created"));
}

#[test]
fn export_then_import_into_an_empty_journal_gives_identical_history() {
    let vs = Vs::new();
    write(&vs.file(ID), &session(ID, "One", &[request(1, "a")]));
    write(&vs.file(OTHER), &session(OTHER, "Two", &[request(1, "b")]));
    vs.ok(&["sync"]);
    write(&vs.file(ID), &session(ID, "One", &[request(1, "a"), request(2, "c")]));
    vs.ok(&["sync"]);
    vs.env.ok(&["rename", OTHER, "Second"]);
    vs.env.ok(&["tag", ID, "kept"]);
    let export = vs.env.dir.path().join("backup.jsonl");
    vs.env.ok(&["export", "-o", export.to_str().unwrap()]);

    let fresh = Env::new();
    let out = fresh.ok(&["import", export.to_str().unwrap()]);
    assert!(out.contains("imported"), "{out}");
    assert_eq!(fresh.ok(&["log", "--json"]), vs.env.ok(&["log", "--json"]));
    for id in [ID, OTHER] {
        assert_eq!(fresh.ok(&["replay", id]), vs.env.ok(&["replay", id]));
    }
    fresh.ok(&["verify"]);
    // Importing again adds nothing.
    assert!(fresh.ok(&["import", export.to_str().unwrap()]).contains("nothing to import"));
    assert_eq!(fresh.log().len(), vs.env.log().len());
    // An import reads its file twice; a pipe, which cannot be read twice, is read once.
    #[cfg(unix)]
    {
        use std::io::Write;
        let piped = Env::new();
        let mut child = common::chasm_command()
            .args(["--journal", piped.journal().to_str().unwrap(), "import", "/dev/stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&std::fs::read(&export).unwrap()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("imported"));
        assert_eq!(piped.ok(&["log", "--json"]), vs.env.ok(&["log", "--json"]));
    }

    // An incremental export continues where the last one ended.
    let last = vs.env.log().len() as u64;
    vs.env.ok(&["rename", ID, "First"]);
    let more = vs.env.dir.path().join("more.jsonl");
    vs.env.ok(&["export", "--since", &(last + 1).to_string(), "-o", more.to_str().unwrap()]);
    fresh.ok(&["import", more.to_str().unwrap()]);
    assert_eq!(fresh.ok(&["log", "--json"]), vs.env.ok(&["log", "--json"]));

    // One session's history, into a journal with a history of its own: new seqs, same content.
    let other = Env::new();
    let path = other.dir.path().join("mine.json");
    write(&path, &session("mine", "Mine", &[request(1, "x")]));
    other.ok(&["capture", path.to_str().unwrap()]);
    let one = vs.env.dir.path().join("one.jsonl");
    vs.env.ok(&["export", &ID[..8], "-o", one.to_str().unwrap()]);
    assert!(other.ok(&["import", one.to_str().unwrap()]).contains("new seqs"));
    assert_eq!(other.ok(&["replay", ID]), vs.env.ok(&["replay", ID]));
    assert!(other.ok(&["import", one.to_str().unwrap()]).contains("nothing to import"));
    other.ok(&["verify"]);
}

#[test]
fn a_tampered_or_truncated_export_is_refused_naming_the_first_bad_record() {
    let env = Env::new();
    let path = env.dir.path().join(format!("{ID}.json"));
    write(&path, &session(ID, "Secret", &[request(1, "a"), request(2, "b")]));
    env.ok(&["capture", path.to_str().unwrap()]);
    let export = env.ok(&["export"]);
    let file = env.dir.path().join("e.jsonl");

    let tampered = export.replacen("About b.", "About z.", 1);
    std::fs::write(&file, &tampered).unwrap();
    let fresh = Env::new();
    let line = assert_error_line(&fresh.chasm(&["import", file.to_str().unwrap()]));
    let bad_line = tampered.lines().position(|l| l.contains("About z.")).unwrap() + 1;
    assert!(line.contains(&format!("line {bad_line} (seq ")) && line.contains("modified"), "{line}");
    assert!(!fresh.journal().exists(), "a refused import creates no journal");

    std::fs::write(&file, &export[..export.len() - 20]).unwrap();
    assert!(assert_error_line(&fresh.chasm(&["import", file.to_str().unwrap()])).contains("cut short"));
    let mut lines: Vec<&str> = export.lines().collect();
    lines.remove(2);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    assert!(assert_error_line(&fresh.chasm(&["import", file.to_str().unwrap()])).contains("missing"));
    std::fs::write(&file, "not json\n").unwrap();
    assert_error_line(&fresh.chasm(&["import", file.to_str().unwrap()]));
    assert_error_line(&fresh.chasm(&["import", "/nonexistent/export.jsonl"]));
}

#[test]
fn a_keep_both_copy_is_listed_in_vs_code_index() {
    let vs = Vs::new();
    write(&vs.file(ID), &session(ID, "Shared", &[request(1, "a")]));
    vs.set_index(&[ID]);
    vs.ok(&["sync"]);
    vs.env.ok(&["rename", ID, "Mine"]);
    write(&vs.file(ID), &session(ID, "Theirs", &[request(1, "a")]));
    let out = vs.ok(&["sync", "--strategy", "keep_both"]);
    let copy = out.split("kept as ").nth(1).expect(&out).split_whitespace().next().unwrap().to_owned();
    assert_eq!(vscode_read(&vs.file(&copy))["customTitle"], "Mine (local copy)");
    assert_eq!(vs.index()["entries"][copy.as_str()]["title"], "Mine (local copy)");
    assert_eq!(vs.listed().len(), 2);
}
