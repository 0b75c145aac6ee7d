//! Faults from the environment: a read-only chat folder, a journal on read-only media, a file
//! that vanishes between listing and reading, a disk that fills up during an append or a gc,
//! and two chasm processes on one journal.
//! Each gets a clear `error:` line or a warning and a skip, and leaves the journal and the
//! provider files intact. (VS Code appending while chasm reads is in `tests/sync.rs`.)
//!
//! The read-only and full-disk cases mount a small filesystem where the test may (as root);
//! elsewhere they fall back (chmod) or skip with a notice.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use chasm::journal::OpenMode;
use chasm::provider::vscode::VsCode;
use chasm::provider::{Listed, Listing, Location, LogMark, Provider, ProviderError, Pulled, Since};
use chasm::session::Session;
use chasm::sync::{Action, Options, sync};
use common::{Env, assert_error_line, vscode_read};
use serde_json::{Value, json};

fn session(id: &str, title: &str) -> Value {
    json!({"version": 3, "sessionId": id, "customTitle": title, "requests": [{"requestId": "r1", "message": {"text": "hi"}, "response": []}]})
}

fn notice(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "notice: {text}");
}

/// A mount made for one test, undone when dropped.
struct Mount(PathBuf);

impl Mount {
    fn run(args: &[&str]) -> bool {
        Command::new("mount").args(args).status().is_ok_and(|s| s.success())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Makes `dir` read-only for chasm: a read-only bind mount over it where the test can mount
/// (root ignores permissions), else its permissions.
fn make_read_only(dir: &Path) -> Option<Mount> {
    let d = dir.to_str().unwrap();
    if Mount::run(&["--bind", d, d]) {
        let m = Mount(dir.to_owned());
        if Mount::run(&["-o", "remount,bind,ro", d]) {
            return Some(m);
        }
        return None;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(dir.join(".probe"), b"").is_ok() {
        let _ = std::fs::remove_file(dir.join(".probe"));
        return None;
    }
    Some(Mount(PathBuf::new()))
}

#[test]
fn a_read_only_chat_folder_is_a_warning_and_a_retry_later() {
    let env = Env::new();
    let chat = env.chat_dir();
    let file = chat.join("s1.json");
    std::fs::write(&file, session("s1", "Before").to_string()).unwrap();
    let root = env.dir.path().join("User");
    let root = root.to_str().unwrap();
    env.ok(&["sync", "--root", root]);
    env.ok(&["rename", "s1", "After"]);
    let journal_before = env.ok(&["log", "--json"]);

    let Some(guard) = make_read_only(&chat) else {
        notice("cannot make a folder read-only here; skipping the read-only case");
        return;
    };
    let out = env.chasm(&["sync", "--root", root]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "a failed session is not success: {stderr}");
    assert!(assert_error_line(&out).contains("1 session could not be synced"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("warning:") && l.contains("s1.json")), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 failed"));
    // Nothing changed: the file, and the journal (no checkpoint claims a push that failed).
    assert_eq!(vscode_read(&file)["customTitle"], "Before");
    assert_eq!(env.ok(&["log", "--json"]), journal_before);
    drop(guard);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&chat, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Writable again: the next sync delivers the rename.
    env.ok(&["sync", "--root", root]);
    assert_eq!(vscode_read(&file)["customTitle"], "After");
    env.ok(&["verify"]);
}

/// A journal on read-only media (a backup, a file-system snapshot) is read as any other, and
/// so is what the next sync would do (`status`, `conflicts`); a command that would write to it
/// says in one line that it cannot, and nothing changes.
#[test]
fn a_journal_on_read_only_media_is_read_and_not_written() {
    let env = Env::new();
    std::fs::write(env.chat_dir().join("s1.json"), session("s1", "Kept").to_string()).unwrap();
    let root = env.dir.path().join("User");
    let root = root.to_str().unwrap();
    env.ok(&["sync", "--root", root]);
    // One change waiting in VS Code, for `status` to tell.
    std::fs::write(env.chat_dir().join("s1.json"), session("s1", "Changed in VS Code").to_string()).unwrap();
    // (`--json`: a human line says how long ago, which moves on as the test runs.)
    let read = |env: &Env| {
        [
            env.ok(&["log", "--json"]),
            env.ok(&["log", "s1", "--json"]),
            env.ok(&["replay", "s1"]),
            env.ok(&["status", "--root", root, "--json"]),
            env.ok(&["conflicts", "--root", root]),
        ]
    };
    let before = read(&env);
    assert!(before[3].contains("\"remote_ahead\""), "{}", before[3]);

    let Some(guard) = make_read_only(&env.journal()) else {
        notice("cannot make a folder read-only here; skipping the read-only journal case");
        return;
    };
    assert_eq!(read(&env), before);
    assert_error_line(&env.chasm(&["rename", "s1", "Changed"]));
    assert_eq!(read(&env), before);
    drop(guard);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.journal(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(read(&env), before);
    assert!(env.ok(&["verify"]).starts_with("ok:"));
}

/// A journal copied to read-only media while a writer had it open (its last commits still in
/// the write-ahead log, which only a writable open can take in) is not read as if they were
/// not there: one `error:` line says why, and nothing changes.
#[test]
fn a_journal_with_commits_left_in_its_log_on_read_only_media_is_refused_with_the_reason() {
    let env = Env::new();
    let live = env.dir.path().join("live");
    let mut journal = chasm::journal::Journal::open(&live, OpenMode::Create).unwrap();
    let change = |entity: &str| chasm::journal::NewChange {
        session_id: "s1".into(),
        change_type: chasm::journal::ChangeType::Create,
        entity_type: chasm::journal::EntityType::Session,
        entity_id: entity.into(),
        timestamp: chrono::Utc::now(),
        origin: chasm::journal::Origin::Remote,
        provider: "vscode".into(),
        payload: json!({"version": 3, "sessionId": "s1", "requests": []}),
    };
    journal.append(vec![change("s1")]).unwrap();
    // The files as a copy made meanwhile holds them: the commit still in the log.
    std::fs::create_dir(env.journal()).unwrap();
    for name in ["journal.sqlite", "journal.sqlite-wal", "lock"] {
        std::fs::copy(live.join(name), env.journal().join(name)).unwrap();
    }
    drop(journal);
    assert!(std::fs::metadata(env.journal().join("journal.sqlite-wal")).unwrap().len() > 0);
    let files = || {
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(env.journal())
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
            .collect();
        all.sort();
        all
    };
    let before = files();

    let Some(guard) = make_read_only(&env.journal()) else {
        notice("cannot make a folder read-only here; skipping the log left on read-only media case");
        return;
    };
    env.chat_dir();
    let root = env.dir.path().join("User");
    for args in [&["log"][..], &["replay", "s1"], &["status", "--root", root.to_str().unwrap()]] {
        let line = assert_error_line(&env.chasm(args));
        assert!(line.contains("write-ahead log"), "{args:?}: {line}");
    }
    drop(guard);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.journal(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(files(), before);
    // Writable again, the commit is taken in and read.
    assert!(env.ok(&["log", "--json"]).contains("\"seq\":1"));
}

/// A journal an older chasm wrote, before the tables later versions keep beside the records
/// (caches, packed blocks), is read from read-only media too: a reader writes nothing, so it
/// does not add them there. The next writer does.
#[test]
fn an_older_journal_on_read_only_media_is_read() {
    let env = Env::new();
    std::fs::write(env.chat_dir().join("s1.json"), session("s1", "Kept").to_string()).unwrap();
    let root = env.dir.path().join("User");
    env.ok(&["sync", "--root", root.to_str().unwrap()]);
    env.ok(&["rename", "s1", "Renamed"]);
    env.ok(&["sync", "--root", root.to_str().unwrap()]);
    let read = |env: &Env| [env.ok(&["log", "--json"]), env.ok(&["log", "s1", "--json"]), env.ok(&["replay", "s1"])];
    let before = read(&env);
    let db = rusqlite::Connection::open(env.journal().join("journal.sqlite")).unwrap();
    db.execute_batch(
        "DROP TABLE shapes; DROP TABLE shape_parts; DROP TABLE lines; DROP TABLE finals; DROP TABLE blocks;",
    )
    .unwrap();
    drop(db);

    let Some(guard) = make_read_only(&env.journal()) else {
        notice("cannot make a folder read-only here; skipping the older read-only journal case");
        return;
    };
    assert_eq!(read(&env), before);
    drop(guard);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.journal(), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.ok(&["sync", "--root", root.to_str().unwrap()]);
    assert_eq!(read(&env), before);
    assert!(env.ok(&["verify"]).starts_with("ok:"));
}

/// VS Code's storage, where every file vanishes just before chasm reads it.
struct Vanishing(VsCode);

impl Provider for Vanishing {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn list(&self, warnings: &mut Vec<String>) -> Vec<Listed> {
        // A fingerprint no file had in step: every file is read (and so vanishes), as one
        // that has been still a while (a fresh one, with none, is deferred for that alone).
        self.0.list(warnings).into_iter().map(|l| Listed { fingerprint: Some("vanishing".into()), ..l }).collect()
    }
    fn covers(&self, location: &Location) -> bool {
        self.0.covers(location)
    }
    fn pull(&self, location: &Location) -> Result<Pulled, ProviderError> {
        let _ = std::fs::remove_file(&location.path);
        self.0.pull(location)
    }
    fn pull_since(&self, location: &Location, mark: &LogMark) -> Result<Since, ProviderError> {
        let _ = std::fs::remove_file(&location.path);
        self.0.pull_since(location, mark)
    }
    fn push(&self, location: &Location, session: &Session, expected: Option<&Session>) -> Result<(), ProviderError> {
        self.0.push(location, session, expected)
    }
    fn delete(&self, location: &Location, expected: Option<&Session>) -> Result<(), ProviderError> {
        self.0.delete(location, expected)
    }
    fn ensure_listed(&self, location: &Location, id: &str, session: &Session) -> Result<Listing, ProviderError> {
        self.0.ensure_listed(location, id, session)
    }
    fn refresh_listing(&self, location: &Location, id: &str, session: &Session) -> Result<bool, ProviderError> {
        self.0.refresh_listing(location, id, session)
    }
    fn ensure_unlisted(&self, location: &Location, id: &str) -> Result<bool, ProviderError> {
        self.0.ensure_unlisted(location, id)
    }
    fn tidy(&self) -> usize {
        self.0.tidy()
    }
    fn location_for_new(&self, near: &Location, session_id: &str) -> Location {
        self.0.location_for_new(near, session_id)
    }
}

#[test]
fn a_file_that_vanishes_between_listing_and_reading_is_skipped_not_deleted() {
    let env = Env::new();
    let chat = env.chat_dir();
    std::fs::write(chat.join("s1.json"), session("s1", "One").to_string()).unwrap();
    let roots = vec![env.dir.path().join("User")];
    {
        let mut journal = common::open_journal(&env.journal(), OpenMode::Create);
        sync(&mut journal, &VsCode::new(&roots), &Options { max_delete: 10, ..Options::default() }).unwrap();
        let before = journal.last_seq();
        let report =
            sync(&mut journal, &Vanishing(VsCode::new(&roots)), &Options { max_delete: 10, ..Options::default() })
                .unwrap();
        // VS Code deleting a file is no fault: left for the next sync, which sees it gone.
        assert_eq!(report.sessions[0].action, Action::Deferred);
        assert!(report.sessions[0].error.as_ref().is_some_and(|e| e.contains("s1.json")), "{:?}", report.sessions[0]);
        // Not read is not deleted: nothing recorded this time.
        assert_eq!(journal.last_seq(), before);
        // The next sync sees it gone, and records the deletion, with the history kept.
        let report =
            sync(&mut journal, &VsCode::new(&roots), &Options { max_delete: 10, ..Options::default() }).unwrap();
        assert!(report.sessions[0].deleted);
        assert!(journal.verify().unwrap().problems.is_empty());
    }
    assert_eq!(env.replay("s1", Some(2))["customTitle"], "One");
}

#[test]
fn a_chat_folder_that_cannot_be_read_is_not_read_as_every_session_deleted() {
    let env = Env::new();
    let chat = env.chat_dir();
    for id in ["s1", "s2"] {
        std::fs::write(chat.join(format!("{id}.json")), session(id, id).to_string()).unwrap();
    }
    // The folder named as the root, as one configured on a share or a removable disk is.
    let root = chat.to_str().unwrap();
    env.ok(&["sync", "--root", root]);
    let records = env.log().len();

    // Unmounted (gone from under its name): a warning, and nothing recorded as deleted.
    let away = env.dir.path().join("away");
    std::fs::rename(&chat, &away).unwrap();
    let out = env.chasm(&["sync", "--root", root]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("warning:") && l.contains("cannot read the folder")), "{stderr}");
    assert_eq!(env.log().len(), records, "nothing recorded: {}", String::from_utf8_lossy(&out.stdout));
    let status = env.ok(&["status", "--all", "--root", root]);
    assert!(!status.contains("deleted"), "{status}");

    // Back: in step, nothing to do.
    std::fs::rename(&away, &chat).unwrap();
    assert!(env.ok(&["sync", "--root", root]).contains("0 pulled, 0 pushed"));
    assert_eq!(env.log().len(), records);
}

/// A session with a copy in a second chat folder, synced from the copy written last: while that
/// copy's folder cannot be read, the other copy is not taken up in its place (it may be the
/// stale one, as it is here), and nothing is recorded for the session.
#[test]
fn a_copy_is_not_taken_up_while_the_followed_copys_folder_cannot_be_read() {
    let env = Env::new();
    let chat = env.chat_dir();
    let other = env.dir.path().join("User/workspaceStorage/0a1b2c3d4e/chatSessions");
    std::fs::create_dir_all(&other).unwrap();
    let stale = other.join("s1.json");
    std::fs::write(&stale, session("s1", "Before").to_string()).unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(hour_ago).unwrap();
    std::fs::write(chat.join("s1.json"), session("s1", "After").to_string()).unwrap();
    let roots = [chat.to_str().unwrap(), other.to_str().unwrap()];
    let sync = || env.chasm(&["sync", "--root", roots[0], "--root", roots[1]]);
    assert!(sync().status.success());
    let records = env.log().len();

    let away = env.dir.path().join("away");
    std::fs::rename(&chat, &away).unwrap();
    let out = sync();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot read the folder"), "{stderr}");
    assert_eq!(env.log().len(), records, "recorded: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(std::fs::read_to_string(&stale).unwrap(), session("s1", "Before").to_string(), "written to");

    std::fs::rename(&away, &chat).unwrap();
    assert!(sync().status.success());
    assert_eq!(env.log().len(), records);
}

/// A 16 MB filesystem mounted in the test's directory, or `None` (with a notice) where the
/// test may not mount one.
fn small_disk(env: &Env) -> Option<Mount> {
    let mnt = env.dir.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    if !Mount::run(&["-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt.to_str().unwrap()]) {
        notice("cannot mount a small filesystem here; skipping a full-disk case");
        return None;
    }
    Some(Mount(mnt))
}

/// Fills the disk mounted at `mnt` but for `room` bytes, with a file whose removal gives the
/// space back.
fn fill_but(mnt: &Path, room: u64) -> PathBuf {
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![7u8; 64 << 10];
    while std::io::Write::write_all(&mut f, &block).is_ok() {}
    drop(f);
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&filler).unwrap().set_len(len - room).unwrap();
    filler
}

#[test]
fn a_full_disk_during_an_append_is_an_error_and_damages_nothing() {
    let env = Env::new();
    let Some(mnt) = small_disk(&env) else { return };
    let j = mnt.0.join("journal");
    let run = |args: &[&str]| common::chasm_command().arg("--journal").arg(&j).args(args).output().unwrap();
    let small = env.dir.path().join("small.json");
    std::fs::write(&small, session("small", "Small").to_string()).unwrap();
    assert!(run(&["capture", small.to_str().unwrap()]).status.success());
    let before = String::from_utf8(run(&["log", "--json", "--reverse"]).stdout).unwrap();

    // Fill the disk, then free a little: the journal opens, and the next append runs out.
    let filler = fill_but(&mnt.0, 1 << 20);
    let big = env.dir.path().join("big.json");
    // Each request different at both ends, so that none is stored as a small delta of another.
    let requests: Vec<Value> = (0..60)
        .map(|i| json!({"requestId": format!("r{i}"), "response": [{"value": format!("{}{i}", "z".repeat(50_000))}]}))
        .collect();
    std::fs::write(&big, json!({"sessionId": "big", "requests": requests}).to_string()).unwrap();
    let line = assert_error_line(&run(&["capture", big.to_str().unwrap()]));
    assert!(line.contains("No space left"), "{line}");

    // Room again. The failed append was rolled back whole: the journal verifies, holds every
    // acknowledged record unchanged, and takes the same append now.
    std::fs::remove_file(&filler).unwrap();
    let out = run(&["verify"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let after = String::from_utf8(run(&["log", "--json", "--reverse"]).stdout).unwrap();
    assert_eq!(after, before, "acknowledged records changed");
    let out = run(&["capture", big.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(run(&["verify"]).status.success());
    assert!(String::from_utf8(run(&["log", "--json"]).stdout).unwrap().lines().count() > 60);
}

#[test]
fn a_full_disk_during_a_gc_is_an_error_and_damages_nothing() {
    let env = Env::new();
    let Some(mnt) = small_disk(&env) else { return };
    let j = mnt.0.join("journal");
    let run = |args: &[&str]| common::chasm_command().arg("--journal").arg(&j).args(args).output().unwrap();
    // A journal of a few megabytes of records that compress.
    let requests: Vec<Value> = (0..2000)
        .map(|i| json!({"requestId": format!("r{i}"), "response": [{"value": format!("{i} {}", "the value moved here; ".repeat(90))}]}))
        .collect();
    let file = env.dir.path().join("long.json");
    std::fs::write(&file, json!({"sessionId": "long", "requests": requests}).to_string()).unwrap();
    assert!(run(&["capture", file.to_str().unwrap()]).status.success());
    let before = String::from_utf8(run(&["log", "--json", "--reverse"]).stdout).unwrap();
    let replay = || String::from_utf8(run(&["replay", "long"]).stdout).unwrap();
    let state = replay();

    // Fill the disk but for a quarter of a megabyte: less than the gc's rewrite needs.
    let filler = fill_but(&mnt.0, 256 << 10);
    let line = assert_error_line(&run(&["gc"]));
    assert!(line.contains("No space left"), "{line}");

    // Room again: every record and the session as they were, and the gc goes through.
    std::fs::remove_file(&filler).unwrap();
    assert!(run(&["verify"]).status.success());
    assert_eq!(String::from_utf8(run(&["log", "--json", "--reverse"]).stdout).unwrap(), before);
    assert_eq!(replay(), state);
    let out = run(&["gc"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(run(&["verify"]).status.success());
    assert_eq!(replay(), state);
}

#[test]
fn two_processes_on_one_journal_take_turns_or_are_told_it_is_locked() {
    let env = Env::new();
    let dir = env.dir.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = (0..6)
        .map(|i| {
            let p = dir.join(format!("s{i}.json"));
            std::fs::write(&p, session(&format!("s{i}"), "x").to_string()).unwrap();
            p
        })
        .collect();
    env.ok(&["capture", files[0].to_str().unwrap()]);
    let children: Vec<_> = files[1..]
        .iter()
        .map(|f| {
            common::chasm_command()
                .arg("--journal")
                .arg(env.journal())
                .args(["capture", f.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut captured = vec!["s0".to_string()];
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            captured.push(format!("s{}", i + 1));
        } else {
            let line = assert_error_line(&out);
            assert!(line.contains("locked by another process"), "{line}");
        }
    }
    env.ok(&["verify"]);
    let mut ids: Vec<String> = env.log().iter().map(|r| r["session_id"].as_str().unwrap().to_owned()).collect();
    ids.dedup();
    ids.sort();
    assert_eq!(ids, captured);
}
