//! Crash safety: `chasm sync` and `chasm capture` killed with SIGKILL at random moments while
//! VS Code keeps editing. After every kill: the journal verifies; everything a finished run
//! acknowledged (and everything the killed run printed as recorded) is still there, unchanged;
//! no session file is torn; and the next sync converges to what an uninterrupted twin — the
//! same edits, never killed — holds. And `chasm gc` killed the same way changes nothing read.
//!
//! `cargo test` runs a short form. The long form, with its figures, is
//! `CHASM_CRASH_TRIALS=200 cargo test --release --test crash -- --nocapture` (RELIABILITY.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, Rng, append, vscode_read};
use serde_json::{Value, json};

const SESSIONS: usize = 24;

fn id(n: usize) -> String {
    format!("0c0ffee0-0000-4000-8000-{n:012}")
}

fn request(round: usize, n: u64) -> Value {
    json!({
        "requestId": format!("request_{round}_{n}"),
        "timestamp": 1_764_000_000_000i64 + (round as i64) * 1000 + n as i64,
        "message": {"text": format!("question {n} of round {round}")},
        "response": [{"value": "x".repeat(200 + (n as usize % 7) * 100)}],
    })
}

/// A VS Code user dir: half the sessions `.jsonl`, half `.json`.
struct World {
    env: Env,
}

impl World {
    fn new() -> World {
        let env = Env::new();
        let chat = env.chat_dir();
        for n in 0..SESSIONS {
            let session =
                json!({"version": 3, "sessionId": id(n), "creationDate": 1, "requests": [request(0, n as u64)]});
            if n % 2 == 0 {
                std::fs::write(
                    chat.join(format!("{}.jsonl", id(n))),
                    format!("{}\n", json!({"kind": 0, "v": session})),
                )
                .unwrap();
            } else {
                std::fs::write(chat.join(format!("{}.json", id(n))), session.to_string()).unwrap();
            }
        }
        World { env }
    }

    fn root(&self) -> String {
        self.env.dir.path().join("User").to_str().unwrap().to_owned()
    }

    fn file(&self, n: usize) -> PathBuf {
        let ext = if n.is_multiple_of(2) { "jsonl" } else { "json" };
        self.env.chat_dir().join(format!("{}.{ext}", id(n)))
    }

    /// VS Code's edits of one round: a few sessions get a request or a new title; now and
    /// then one gets a burst of requests (an agent's long run), enough for an append large
    /// enough to be sealed on a second thread.
    fn vscode_edits(&self, round: usize, rng: &mut Rng) {
        for _ in 0..4 {
            let n = rng.below(SESSIONS as u64) as usize;
            let path = self.file(n);
            let rename = rng.below(3) == 0;
            let added: Vec<Value> = if rng.below(32) == 0 {
                (0..80).map(|k| request(round, 1000 + k)).collect()
            } else {
                vec![request(round, rng.below(1000))]
            };
            if n.is_multiple_of(2) {
                let line = if rename {
                    json!({"kind": 1, "k": ["customTitle"], "v": format!("title {round}")})
                } else {
                    json!({"kind": 2, "k": ["requests"], "v": added})
                };
                append(&path, &format!("{line}\n"));
            } else {
                let mut v = vscode_read(&path);
                if rename {
                    v["customTitle"] = json!(format!("title {round}"));
                } else {
                    v["requests"].as_array_mut().unwrap().extend(added);
                }
                std::fs::write(&path, v.to_string()).unwrap();
            }
        }
    }

    fn command(&self, capture: bool) -> Command {
        let mut cmd = common::chasm_command();
        cmd.arg("--journal").arg(self.env.journal());
        if capture {
            cmd.arg("capture");
            let mut files: Vec<PathBuf> =
                std::fs::read_dir(self.env.chat_dir()).unwrap().map(|e| e.unwrap().path()).collect();
            files.retain(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"));
            files.sort();
            cmd.args(files);
        } else {
            cmd.args(["sync", "--json", "--root", &self.root()]);
        }
        cmd
    }

    fn sync(&self) -> Value {
        let out = self.command(false).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every record, oldest first: (seq, hash).
    fn records(&self) -> Vec<(u64, String)> {
        self.env.log().iter().map(|r| (r["seq"].as_u64().unwrap(), r["hash"].as_str().unwrap().to_owned())).collect()
    }

    /// Each session as VS Code reads it and as the journal replays it.
    fn contents(&self) -> Vec<(Value, Value)> {
        (0..SESSIONS).map(|n| (vscode_read(&self.file(n)), self.env.replay(&id(n), None))).collect()
    }
}

/// The highest seq a killed run printed as recorded (capture prints `seq A..B` after its
/// append is durable; sync prints its report only at the end).
fn acknowledged(stdout: &str, before: u64) -> u64 {
    if let Ok(report) = serde_json::from_str::<Value>(stdout.trim()) {
        return before + report["appended"].as_u64().unwrap_or(0);
    }
    stdout
        .lines()
        .filter_map(|l| l.rsplit_once("(seq ").map(|(_, r)| r.trim_end_matches(')').to_owned()))
        .filter_map(|r| r.rsplit("..").next().and_then(|s| s.parse::<u64>().ok()))
        .max()
        .unwrap_or(before)
}

/// No file in the chat dir is torn: each `.json` parses, each `.jsonl` has only complete lines.
fn assert_no_torn_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|e| panic!("{} is torn: {e}", path.display()));
            }
            Some("jsonl") => {
                assert!(bytes.ends_with(b"\n"), "{} ends mid-line", path.display());
                vscode_read(&path);
            }
            _ => {}
        }
    }
}

#[test]
fn killed_syncs_and_captures_lose_nothing_and_converge() {
    let (trials, seed) = (setting("CHASM_CRASH_TRIALS", 12) as usize, setting("CHASM_CRASH_SEED", 0x5eed_c0de));
    let mut rng = Rng(seed);
    let (killed, twin) = (World::new(), World::new());
    killed.sync();
    twin.sync();
    let (mut mid_run, mut mid_append, mut finished, started) = (0, 0, 0, Instant::now());
    let mut durations = Vec::new();

    for round in 1..=trials {
        // The same edits on both sides, from generators in the same state.
        let mut edits = Rng(rng.next());
        let mut twin_edits = Rng(edits.0);
        killed.vscode_edits(round, &mut edits);
        twin.vscode_edits(round, &mut twin_edits);
        // The twin's uninterrupted run sets the range the kill falls in: from before the
        // journal opens to somewhat after the run would have finished.
        let t = Instant::now();
        twin.sync();
        let full_run = t.elapsed();

        let before = killed.records();
        let last_before = before.last().map_or(0, |r| r.0);
        let capture = rng.below(3) == 0;
        let delay = Duration::from_micros(rng.below(full_run.as_micros() as u64 * 3 / 2 + 1));
        let t = Instant::now();
        let mut child = killed.command(capture).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        durations.push(t.elapsed());
        if out.status.success() {
            finished += 1
        } else {
            mid_run += 1
        }
        let acked = acknowledged(&String::from_utf8_lossy(&out.stdout), last_before);

        // The journal holds everything acknowledged, unchanged: read first by a command that
        // only reads (which must see commits the killed run left in the write-ahead log), then
        // checked whole.
        let after = killed.records();
        assert!(after.len() as u64 >= acked, "round {round}: {acked} acknowledged, {} present", after.len());
        assert_eq!(&after[..before.len()], &before[..], "round {round}: earlier records changed");
        killed.env.ok(&["verify"]);
        assert_eq!(killed.records(), after, "round {round}: verify changed what a reader read");
        assert_no_torn_files(&killed.env.chat_dir());
        if !out.status.success() && after.len() > before.len() {
            mid_append += 1; // killed after some of its work was durable
        }

        // The next sync converges, and a second one has nothing to do.
        killed.sync();
        let again = killed.sync();
        assert_eq!((again["appended"].as_u64(), again["files_written"].as_u64()), (Some(0), Some(0)), "round {round}");
    }
    // Same content on every side as the twin that was never killed.
    assert_eq!(killed.contents(), twin.contents());
    for (remote, journal) in killed.contents() {
        assert_eq!(remote, journal);
    }
    let mut d = durations.clone();
    d.sort();
    println!(
        "crash trials: {trials} (seed {seed:#x}); killed mid-run {mid_run} ({mid_append} of them after some of \
         their work was durable), finished before the kill {finished}; median run-to-kill {:?}; journal {} records; \
         {:?} in all",
        d[d.len() / 2],
        killed.records().len(),
        started.elapsed()
    );
}

/// How many of the journal's rows are stored compressed, alone and in blocks (read while no
/// chasm holds it).
fn compressed_rows(journal: &Path) -> (i64, i64, i64) {
    let db = rusqlite::Connection::open(journal.join("journal.sqlite")).unwrap();
    let count = |sql: &str, form: u8| -> i64 { db.query_row(sql, [[form]], |r| r.get(0)).unwrap() };
    let log = "SELECT count(*) FROM log WHERE substr(record, 1, 1) = ?1";
    // Derived rows a gc compresses after the records: snapshots, runs of log lines, shapes.
    let derived = "SELECT (SELECT count(*) FROM snapshots WHERE substr(body, 1, 1) = ?1) \
                   + (SELECT count(*) FROM lines WHERE substr(body, 1, 1) = ?1) \
                   + (SELECT count(*) FROM shapes WHERE substr(value, 1, 1) = ?1)";
    (count(log, 0xC5), count(log, 0xB0), count(derived, 0xC5))
}

/// A number from the environment, decimal or `0x` hex, or `default` when it is not set; one
/// set but not a number stops the test rather than run another seed than the one asked for.
fn setting(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else { return default };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => text.replace('_', "").parse().ok(),
    };
    parsed.unwrap_or_else(|| panic!("{name}={text:?} is not a number"))
}

/// A copy of a closed journal's files, for a twin run.
fn copy_journal(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn killed_gcs_lose_nothing() {
    let (trials, seed) = (setting("CHASM_CRASH_TRIALS", 12) as usize / 2, setting("CHASM_CRASH_SEED", 0x5eed_c0de));
    let mut rng = Rng(seed ^ 0x6c);
    let world = World::new();
    world.sync();
    let (mut killed, mut killed_after_packing, mut packed_some, mut notes_dropped) = (0, 0, 0, 0);
    for round in 1..=trials {
        // Every file captured first: notes of files, which the sync's records below leave dead
        // for the gc to drop (and a capture after a killed gc must still run).
        let out = world.command(true).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // New records, stored whole by the sync's append, for the gc to compress.
        world.vscode_edits(round, &mut Rng(rng.next()));
        world.sync();
        let (records, contents) = (world.records(), world.contents());
        let compressed = compressed_rows(&world.env.journal());
        // A twin gc on a copy sets the range the kill falls in.
        let twin = world.env.dir.path().join(format!("twin-{round}"));
        copy_journal(&world.env.journal(), &twin);
        let t = Instant::now();
        let out = common::chasm_command().arg("--journal").arg(&twin).arg("gc").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let full_run = t.elapsed();

        let mut child = common::chasm_command()
            .arg("--journal")
            .arg(world.env.journal())
            .args(["gc", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(full_run.as_micros() as u64 * 3 / 2 + 1)));
        let _ = child.kill(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            packed_some += usize::from(report["records_compressed"].as_u64() > Some(0));
            notes_dropped += report["capture_notes_dropped"].as_u64().unwrap();
        } else {
            killed += 1;
            let now = compressed_rows(&world.env.journal());
            killed_after_packing += usize::from(now.0 + now.1 + now.2 > compressed.0 + compressed.1 + compressed.2);
        }
        // Every record as it was, each session as it was, and the chain intact.
        assert_eq!(world.records(), records, "round {round}");
        world.env.ok(&["verify"]);
        assert_eq!(world.contents(), contents, "round {round}");
    }
    // A gc run to its end after all of that packs what is left, and changes nothing read.
    let (records, contents) = (world.records(), world.contents());
    world.env.ok(&["gc"]);
    assert_eq!((world.records(), world.contents()), (records, contents));
    world.env.ok(&["verify"]);
    // The trials packed rows into blocks (a round's edits append runs of a session's records):
    // a gc that stored nothing compressed would pass the rest.
    let (alone, in_blocks, derived) = compressed_rows(&world.env.journal());
    assert!(in_blocks > 0, "{alone} rows compressed alone, {in_blocks} in blocks");
    println!(
        "gc crash trials: {trials} (seed {seed:#x}); killed mid-run {killed} ({killed_after_packing} of them after \
         some rows were stored compressed); finished having packed {packed_some}; rows compressed alone \
         {alone}, in blocks {in_blocks}; derived rows compressed {derived}; capture notes dropped by the \
         finished {notes_dropped}"
    );
}
