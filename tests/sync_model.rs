//! Both sides under random edits, as a model check of whole sync rounds.
//!
//! Steps on VS Code's side (its session files, in both formats and two workspaces), on chasm's
//! (rename, add, delete, tag, restore, capture, and capture of sessions kept outside VS Code's
//! storage, which no round can place) and rounds of sync (`in_step::round`, as `chasm
//! sync` and `sync --watch` run them) with every strategy, conflicts settled by a strategy or
//! by `resolve`. After every round: both sides hold the same sessions, field for field (the
//! journal's state, and the text `replay` prints); another round has nothing to do; no round
//! changed a tag; and a twin given the same steps, whose rounds forget every kept shape and the
//! no-op note first (the full path, reading the history), recorded the same events for each
//! session, and reported each session no file holds as the first did from the notes its last
//! round left. At the end every request and title VS Code held when a round read it, and every
//! request added through chasm, is in the history, and the journal verifies. RELIABILITY.md
//! says more, and how to run a longer hunt.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use chasm::journal::{ChangeType, EntityType, NewChange, OpenMode, Origin};
use chasm::merge::{Strategy as SyncStrategy, Take};
use chasm::sync::{Action, Options, Report, SyncError};
use common::{append, open_journal, vscode_read_jsonl};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum Op {
    /// VS Code creates a session, as a mutation log or a whole `.json`, now and then one long
    /// enough for the sync to keep its shape in parts, or for its first read to be a large
    /// batch.
    Create { log: bool, requests: usize },
    /// A request added to a session VS Code has.
    Add(Index),
    /// A response streamed into one of its requests.
    Stream(Index, Index),
    /// Its last request removed.
    Pop(Index),
    /// Its title set.
    Title(Index),
    /// Its title removed (a log's delete entry, kind 3).
    Untitle(Index),
    /// A `.json` replaced by a log of the same session, as VS Code moves sessions to its newer
    /// format.
    Migrate(Index),
    /// The file moved to the other workspace's chat folder (the project moved).
    Move(Index),
    /// The file copied to the other workspace's chat folder with its list entry, the original
    /// kept, as VS Code copies a window's sessions into the workspace it enters: the copy,
    /// written last, is the one VS Code goes on in.
    Copy(Index),
    /// A log rewritten as one line holding the whole state (a `.json` is left alone).
    Compact(Index),
    /// The file written again as it is: a new modification time, the same bytes.
    Touch(Index),
    /// A `.json` written again with the same session in other whitespace (compact): a new
    /// text, no change (a log is left alone).
    Reformat(Index),
    /// The file deleted (and its entry taken off VS Code's list, as VS Code does).
    Remove(Index),
    /// The session's entry dropped from VS Code's list, the file left: VS Code keeps only its
    /// newest sessions listed.
    Hide(Index),
    /// Every file's time set back (distinct each time), so the next sync trusts fingerprints.
    Age,
    /// VS Code caught halfway through writing a request to a log: the first half of the line
    /// is there, the rest comes before VS Code's next write (or the end of the test).
    Tear(Index),
    /// A `.json` cut short, as a crash leaves one: no round can read it, and each says so the
    /// same way, on the no-op path as on the full one, until the user puts the file back (before
    /// anything but a round or the files' ageing).
    Damage(Index),
    /// `chasm rename` of a session the journal holds.
    LocalTitle(Index),
    /// A request added through chasm.
    LocalAdd(Index),
    /// `chasm delete`.
    LocalDelete(Index),
    /// `chasm tag`, or `chasm untag` of the session's first tag when the flag is set (tags live
    /// in the journal alone: no round may change them).
    LocalTag(Index, bool),
    /// `chasm capture FILE` of a session the journal holds: VS Code's changes recorded
    /// outside a round.
    Capture(Index),
    /// `chasm capture` of every session the journal holds that VS Code has a file of (its
    /// newest copy), as README's example runs it over a whole chat folder, again and again:
    /// a file an earlier capture read, unchanged since (aged, its session recorded nothing
    /// since), is not read again — on the first side; the full path's twin reads every one.
    CaptureAll,
    /// `chasm capture FILE` of a session kept outside VS Code's storage: a new one, or (with
    /// the index) one captured before, a request added there. No round can place it; each
    /// reports it, from the note the round before left while nothing was recorded for it.
    Outside(Option<Index>),
    /// `chasm restore --at`: a session brought back to a point of its history; with `--push`
    /// (the flag) written to VS Code at once, by a round over that session alone.
    LocalRestore(Index, Index, bool),
    /// A round with this strategy; what conflicts is then settled (see [`Settle`]). With
    /// `then_still`, the files are then left still long enough to be trusted and synced once
    /// more, which notes everything in step: the next round starts on the no-op path. With
    /// `bit_by_bit`, the round records what it has read after every file where it may (as a
    /// first sync of a large folder does every 16 MB).
    Sync { strategy: SyncStrategy, settle: Settle, then_still: bool, bit_by_bit: bool },
    /// A round while one workspace's chat folder cannot be read (a share not mounted, the
    /// second one when the flag is set), put back after it: none of its sessions may be taken
    /// for deleted.
    Unmounted(bool),
    /// `chasm sync --dry-run`: reports, and changes nothing on either side.
    DryRun(SyncStrategy),
    /// `chasm sync --max-delete 0`: a round that would delete a session on either side stops
    /// before it writes anything to VS Code; one that goes on deletes nothing.
    Careful(SyncStrategy),
}

/// How the conflicts a round leaves are settled.
#[derive(Debug, Clone, Copy)]
enum Settle {
    /// By a round with this strategy (`local_wins` or `remote_wins`).
    Round(SyncStrategy),
    /// By `chasm resolve`, one conflict at a time, each taking this; a `merge` refused (both
    /// sides changed the same field) and whatever is left after a few are settled by a round
    /// with `local_wins`.
    Resolve(Take),
}

fn strategy() -> impl Strategy<Value = SyncStrategy> {
    use SyncStrategy::*;
    prop::sample::select(vec![AutoMerge, Manual, LocalWins, RemoteWins, MostRecent, KeepBoth])
}

fn settle() -> impl Strategy<Value = Settle> {
    prop_oneof![
        prop::sample::select(vec![SyncStrategy::LocalWins, SyncStrategy::RemoteWins]).prop_map(Settle::Round),
        prop::sample::select(vec![Take::Local, Take::Remote, Take::Merge, Take::Both]).prop_map(Settle::Resolve),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let i = any::<Index>;
    prop_oneof![
        2 => (any::<bool>(), 0usize..3).prop_map(|(log, requests)| Op::Create { log, requests }),
        // Long enough for the sync to keep its shape in parts.
        1 => (any::<bool>(), 17usize..50).prop_map(|(log, requests)| Op::Create { log, requests }),
        // Long enough that the round reading it records a large batch: sealed on a second
        // thread from 64 records, and recorded at once, before the checkpoints, past 128.
        1 => (any::<bool>(), 64usize..160).prop_map(|(log, requests)| Op::Create { log, requests }),
        3 => i().prop_map(Op::Add),
        3 => (i(), i()).prop_map(|(s, r)| Op::Stream(s, r)),
        1 => i().prop_map(Op::Pop),
        2 => i().prop_map(Op::Title),
        1 => i().prop_map(Op::Compact),
        1 => i().prop_map(Op::Touch),
        1 => i().prop_map(Op::Reformat),
        1 => i().prop_map(Op::Remove),
        1 => i().prop_map(Op::Hide),
        1 => i().prop_map(Op::Untitle),
        1 => i().prop_map(Op::Migrate),
        1 => i().prop_map(Op::Move),
        1 => i().prop_map(Op::Copy),
        1 => (i(), i(), any::<bool>()).prop_map(|(s, at, push)| Op::LocalRestore(s, at, push)),
        1 => i().prop_map(Op::Capture),
        1 => Just(Op::CaptureAll),
        1 => proptest::option::of(i()).prop_map(Op::Outside),
        2 => Just(Op::Age),
        1 => i().prop_map(Op::Tear),
        1 => i().prop_map(Op::Damage),
        2 => i().prop_map(Op::LocalTitle),
        2 => i().prop_map(Op::LocalAdd),
        1 => i().prop_map(Op::LocalDelete),
        1 => (i(), any::<bool>()).prop_map(|(s, untag)| Op::LocalTag(s, untag)),
        5 => (strategy(), settle(), any::<bool>(), any::<bool>())
            .prop_map(|(strategy, settle, then_still, bit_by_bit)| {
                Op::Sync { strategy, settle, then_still, bit_by_bit }
            }),
        1 => strategy().prop_map(Op::DryRun),
        1 => any::<bool>().prop_map(Op::Unmounted),
        1 => prop::sample::select(vec![SyncStrategy::AutoMerge, SyncStrategy::LocalWins, SyncStrategy::RemoteWins])
            .prop_map(Op::Careful),
    ]
}

/// One user dir and its journal.
struct Side {
    dir: tempfile::TempDir,
    /// Forget the kept shapes and the no-op note before each sync (the full path).
    full_path: bool,
}

impl Side {
    fn new(full_path: bool) -> Side {
        let dir = tempfile::tempdir().unwrap();
        let side = Side { dir, full_path };
        for (chat, folder) in [(side.chat(), "app"), (side.moved(), "app-moved")] {
            std::fs::create_dir_all(&chat).unwrap();
            let workspace = json!({"folder": format!("file:///home/ada/{folder}")}).to_string();
            std::fs::write(chat.parent().unwrap().join("workspace.json"), workspace).unwrap();
            let db = rusqlite::Connection::open(state_db(&chat)).unwrap();
            db.execute_batch("CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)").unwrap();
            drop(db);
            vscode_lists(&chat, |_| {});
        }
        side
    }

    /// What VS Code's list holds in each workspace, by chat folder: each entry's id and title.
    fn listed(&self) -> BTreeMap<PathBuf, BTreeMap<String, Value>> {
        [self.chat(), self.moved()]
            .into_iter()
            .map(|chat| {
                let entries = index_entries(&chat).into_iter().map(|(id, e)| (id, e["title"].clone())).collect();
                (chat, entries)
            })
            .collect()
    }

    /// Each session file in each workspace, with its bytes.
    fn files(&self) -> BTreeMap<(PathBuf, String), Vec<u8>> {
        let mut out = BTreeMap::new();
        for chat in [self.chat(), self.moved()] {
            for entry in std::fs::read_dir(&chat).unwrap() {
                let path = entry.unwrap().path();
                if let Some(id) = path.file_stem().and_then(|s| s.to_str()) {
                    out.insert((chat.clone(), id.to_owned()), std::fs::read(&path).unwrap());
                }
            }
        }
        out
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("User")
    }

    fn chat(&self) -> PathBuf {
        self.root().join("workspaceStorage/5d41402abc/chatSessions")
    }

    /// The chat folder of the workspace the project moved to.
    fn moved(&self) -> PathBuf {
        self.root().join("workspaceStorage/9e107d9d37/chatSessions")
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    /// Where sessions kept outside VS Code's storage are (see [`Op::Outside`]).
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// The session's file in one chat folder, whichever format it is in.
    fn file_in(&self, chat: &std::path::Path, id: &str) -> Option<PathBuf> {
        let found: Vec<PathBuf> =
            ["jsonl", "json"].map(|ext| chat.join(format!("{id}.{ext}"))).into_iter().filter(|p| p.exists()).collect();
        assert!(found.len() < 2, "{id} has two files in {chat:?}: {found:?}");
        found.into_iter().next()
    }

    /// The session's file VS Code goes on in: of its copies in the two workspaces, the one
    /// written last (the first workspace's when written at once); `None` when there is none.
    fn file(&self, id: &str) -> Option<PathBuf> {
        let mut last: Option<(PathBuf, SystemTime)> = None;
        for chat in [self.chat(), self.moved()] {
            if let Some(path) = self.file_in(&chat, id) {
                let written = std::fs::metadata(&path).unwrap().modified().unwrap();
                if last.as_ref().is_none_or(|(_, before)| written > *before) {
                    last = Some((path, written));
                }
            }
        }
        last.map(|(path, _)| path)
    }

    /// How many copies of the session VS Code has.
    fn copies(&self, id: &str) -> usize {
        [self.chat(), self.moved()].iter().filter(|chat| self.file_in(chat, id).is_some()).count()
    }

    /// Where a file of side A is on this side.
    fn twin(&self, of: &std::path::Path, model: &Model) -> PathBuf {
        self.dir.path().join(of.strip_prefix(model.sides[0].dir.path()).unwrap())
    }

    /// What a dry run of the sync reports of each session no file holds (deleted, or kept
    /// outside VS Code's storage), all of it but the place's path and the file's fingerprint,
    /// which differ between the twins; nothing before the first round. Past the no-op path,
    /// which would report none of them.
    fn without_file(&self, opts: &Options) -> Vec<String> {
        if !self.journal().exists() {
            return Vec::new();
        }
        let mut journal = open_journal(&self.journal(), OpenMode::Existing);
        let provider = chasm::provider::vscode::VsCode::new(&[self.root()]);
        let report = chasm::sync::sync(&mut journal, &provider, &Options { dry_run: true, ..opts.clone() }).unwrap();
        report
            .sessions
            .into_iter()
            .filter(|s| self.file(&s.session_id).is_none())
            .map(|mut s| {
                let (placed, fingerprinted) = (s.location.take().is_some(), s.fingerprint.take().is_some());
                format!("{s:?} placed: {placed}, fingerprinted: {fingerprinted}")
            })
            .collect()
    }

    /// One round of `chasm sync --strategy STRATEGY`.
    fn sync(&self, strategy: SyncStrategy) -> Report {
        self.forget();
        self.round(&options(strategy))
    }

    /// On the full path's side, the kept shapes, the notes and what captures noted of files
    /// forgotten.
    fn forget(&self) {
        if self.full_path && self.journal().exists() {
            let db = rusqlite::Connection::open(self.journal().join("journal.sqlite")).unwrap();
            db.execute_batch("DELETE FROM shapes; DELETE FROM captures").unwrap();
            // And what the last round noted of each session only the journal has (its token
            // empty): settled, or never synced anywhere.
            let rows: Vec<(Vec<u8>, Vec<u8>)> = db
                .prepare("SELECT session, value FROM fingerprints")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for (session, value) in rows {
                if chasm::journal::cache::decode_fingerprint(&value).is_some_and(|fp| fp.token.is_empty()) {
                    db.execute("DELETE FROM fingerprints WHERE session = ?1", [session]).unwrap();
                }
            }
            drop(db);
            let _ = std::fs::remove_file(self.journal().join(chasm::in_step::FILE));
        }
    }

    fn round(&self, opts: &Options) -> Report {
        self.try_round(opts).unwrap()
    }

    fn try_round(&self, opts: &Options) -> Result<Report, SyncError> {
        let provider = chasm::provider::vscode::VsCode::new(&[self.root()]);
        chasm::in_step::round(&self.journal(), &provider, opts)
    }

    /// Settles the conflicts a round with `strategy` left (see [`Settle`]), as a user would:
    /// each `chasm resolve` syncs only its conflict's session, and `chasm conflicts` lists
    /// what is left. Returns the report of a last round over every session.
    fn settle(&self, strategy: SyncStrategy, how: Settle) -> Report {
        if let Settle::Resolve(take) = how {
            for _ in 0..4 {
                self.forget();
                let listed = self.round(&Options { dry_run: true, ..options(strategy) });
                let Some(c) = listed.sessions.iter().flat_map(|s| &s.conflicts).next() else { break };
                let opts = Options {
                    overrides: HashMap::from([(c.id.clone(), take)]),
                    only: Some(c.session_id.clone()),
                    ..options(SyncStrategy::AutoMerge)
                };
                match self.try_round(&opts) {
                    Ok(_) => {}
                    Err(SyncError::Merge(_)) if take == Take::Merge => break,
                    Err(e) => panic!("resolve {}: {e}", c.id),
                }
            }
            let report = self.sync(strategy);
            if !report.sessions.iter().any(|s| s.action == Action::Conflicted) {
                return report;
            }
        }
        self.sync(match how {
            Settle::Round(strategy) => strategy,
            Settle::Resolve(_) => SyncStrategy::LocalWins,
        })
    }

    /// The sessions the journal holds and has not deleted.
    fn existing(&self) -> BTreeSet<String> {
        if !self.journal().exists() {
            return BTreeSet::new();
        }
        let journal = open_journal(&self.journal(), OpenMode::Existing);
        let ids = journal.session_ids().unwrap();
        ids.into_iter().filter(|id| journal.state_at(id, u64::MAX).unwrap().is_some_and(|s| s.exists)).collect()
    }

    /// The journal's state of a session now, if it holds one that exists.
    fn journal_state(&self, id: &str) -> Option<chasm::fold::SessionState> {
        if !self.journal().exists() {
            return None;
        }
        let journal = open_journal(&self.journal(), OpenMode::Existing);
        journal.state_at(id, u64::MAX).unwrap().filter(|s| s.exists)
    }

    /// Whether the journal holds the session deleted (and a round is to delete its file).
    fn deleted_in_journal(&self, id: &str) -> bool {
        self.journal().exists()
            && open_journal(&self.journal(), OpenMode::Existing)
                .state_at(id, u64::MAX)
                .unwrap()
                .is_some_and(|s| !s.exists)
    }

    fn local_change(&self, id: &str, change_type: ChangeType, entity_type: EntityType, entity: &str, payload: Value) {
        common::local_change(&self.journal(), id, change_type, entity_type, entity, payload);
    }

    /// Every file under the user dir and the journal's directory, with its bytes.
    fn everything(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut all = BTreeMap::new();
        let mut dirs = vec![self.dir.path().to_owned()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    all.insert(path.clone(), std::fs::read(path).unwrap());
                }
            }
        }
        all
    }

    /// Each session's records in order, without what differs between two user dirs (times,
    /// hashes, paths) or between two orders of recording different sessions (a sync records
    /// what it has read as it goes when told to, so the sessions it reads on a quick path can
    /// come before others): a checkpoint names the session's events it covers by their place
    /// among the session's own.
    fn events(&self) -> BTreeMap<String, Vec<Value>> {
        let journal = open_journal(&self.journal(), OpenMode::Existing);
        let mut place = BTreeMap::new();
        let mut sessions: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for r in journal.iter() {
            let r = r.unwrap();
            let events = sessions.entry(r.session_id.clone()).or_default();
            place.insert(r.seq, events.len() + 1);
            let mut payload = r.payload;
            if r.change_type == ChangeType::Merge {
                payload["hash"] = Value::Null;
                payload["path"] = Value::Null;
                for side in ["local_seq", "remote_seq"] {
                    let seq = payload[side].as_u64().unwrap();
                    payload[side] = json!(place.get(&seq).copied().unwrap_or(0));
                }
            }
            events.push(json!([
                format!("{:?}", r.change_type),
                format!("{:?}", r.entity_type),
                r.entity_id,
                format!("{:?}", r.origin),
                payload
            ]));
        }
        sessions
    }
}

/// A round with `auto_merge` (the default strategy), conflicts settled by `local_wins`.
const PLAIN_SYNC: Op = Op::Sync {
    strategy: SyncStrategy::AutoMerge,
    settle: Settle::Round(SyncStrategy::LocalWins),
    then_still: false,
    bit_by_bit: false,
};

/// A round's options: the strategy, and a delete limit no step reaches.
fn options(strategy: SyncStrategy) -> Options {
    Options { strategy, max_delete: 1000, ..Options::default() }
}

/// A session file as VS Code reads it, but for a last line not yet complete.
fn vscode_read(path: &std::path::Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "jsonl") {
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
        vscode_read_jsonl(&bytes[..complete])
    } else {
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn request(n: u64, text: &str) -> Value {
    json!({"requestId": format!("request_{n:04}"), "timestamp": 1_764_000_000_000u64 + n * 1000,
           "message": {"text": text, "parts": [{"kind": "text", "text": text}]},
           "response": [{"value": format!("answer {n}")}], "modelId": "copilot/gpt-4.1"})
}

/// VS Code's list of a workspace's sessions: the `state.vscdb` beside its chat folder.
fn state_db(chat: &std::path::Path) -> PathBuf {
    chat.parent().unwrap().join("state.vscdb")
}

const INDEX_KEY: &str = "chat.ChatSessionStore.index";

/// The entries of a workspace's list, by session id (none before VS Code first writes it).
fn index_entries(chat: &std::path::Path) -> serde_json::Map<String, Value> {
    use rusqlite::OptionalExtension;
    let db = rusqlite::Connection::open(state_db(chat)).unwrap();
    let text: Option<String> =
        db.query_row("SELECT value FROM ItemTable WHERE key = ?1", [INDEX_KEY], |r| r.get(0)).optional().unwrap();
    let mut index: Value = text.map_or(Value::Null, |t| serde_json::from_str(&t).unwrap());
    index["entries"].as_object_mut().map(std::mem::take).unwrap_or_default()
}

/// VS Code changing its list of a workspace's sessions.
fn vscode_lists(chat: &std::path::Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let mut entries = index_entries(chat);
    edit(&mut entries);
    let text = json!({"version": 1, "entries": entries}).to_string();
    let db = rusqlite::Connection::open(state_db(chat)).unwrap();
    db.execute("INSERT INTO ItemTable (key, value) VALUES (?1, ?2)", (INDEX_KEY, text)).unwrap();
}

/// The entry VS Code writes for a session it saves (the title is not checked on these).
fn vscode_entry(id: &str) -> Value {
    json!({"sessionId": id, "title": "listed by VS Code", "lastMessageDate": 1_764_000_000_000u64})
}

/// What chasm's round did to VS Code's lists is what VS Code itself would have done: every entry
/// names a session whose file is in that workspace; a session listed now was listed before or
/// its file is new (chasm lists what it brings back or creates, and every such session); and a
/// listed session whose file chasm rewrote is listed under the title it now has.
fn lists_kept(
    side: &Side,
    before: &BTreeMap<PathBuf, BTreeMap<String, Value>>,
    files_before: &BTreeMap<(PathBuf, String), Vec<u8>>,
) -> Result<(), TestCaseError> {
    let (after, files) = (side.listed(), side.files());
    for (chat, entries) in &after {
        for (id, title) in entries {
            let key = (chat.clone(), id.clone());
            prop_assert!(files.contains_key(&key), "{} is listed in {:?} without its file", id, chat);
            let created = !files_before.contains_key(&key);
            prop_assert!(before[chat].contains_key(id) || created, "{} was listed again, hidden before", id);
            if files_before.get(&key) != files.get(&key) {
                let file = side.file_in(chat, id).unwrap();
                let session = chasm::session::Session::from_value(vscode_read(&file)).unwrap();
                let expected = session.display_title().unwrap_or_else(|| "New Chat".into());
                prop_assert_eq!(title, &Value::from(expected), "{} is listed under a stale title", id);
            }
        }
        for (at, id) in files.keys().filter(|k| &k.0 == chat && !files_before.contains_key(*k)) {
            prop_assert!(entries.contains_key(id), "{} was created in {:?} and not listed", id, at);
        }
    }
    Ok(())
}

/// The state of the test: the sessions made so far, and what must never be lost.
struct Model {
    sides: [Side; 2],
    /// Every session VS Code created, by id (and those captured from outside).
    ids: Vec<String>,
    /// The sessions kept outside VS Code's storage (see [`Op::Outside`]).
    outside: BTreeSet<String>,
    next: u64,
    /// Each session's requests (as JSON text) and titles that a sync read from VS Code or that
    /// chasm added: each must be in the history.
    held: BTreeMap<String, BTreeSet<String>>,
    /// A log with half a line at its end (the first side's path), and the rest of the line.
    torn: Option<(PathBuf, String)>,
    /// A `.json` cut short (the first side's path), and its whole bytes.
    damaged: Option<(PathBuf, Vec<u8>)>,
    /// The twins are compared until a `most_recent` or `keep_both` sync (see `sync`); after it
    /// only the first side goes on.
    twins: bool,
}

impl Model {
    /// The sides still edited and synced: once the twins part, only the first.
    fn live(&self) -> &[Side] {
        if self.twins { &self.sides } else { &self.sides[..1] }
    }

    /// The file of one of the sessions VS Code has (on the first side), as `at` picks.
    fn with_file(&self, at: &Index) -> Option<PathBuf> {
        let files: Vec<PathBuf> = self.ids.iter().filter_map(|id| self.sides[0].file(id)).collect();
        (!files.is_empty()).then(|| files[at.index(files.len())].clone())
    }

    /// One of the sessions the journal holds and has not deleted, as `at` picks.
    fn in_journal(&self, at: &Index) -> Option<String> {
        let live: Vec<&String> = self.ids.iter().filter(|id| self.sides[0].journal_state(id).is_some()).collect();
        (!live.is_empty()).then(|| live[at.index(live.len())].clone())
    }

    /// `chasm capture` of these files (the first side's) on each side; the full path's twin
    /// reads each, whatever an earlier capture noted of it.
    fn capture(&self, paths: &[PathBuf]) -> Result<(), TestCaseError> {
        for side in self.live() {
            side.forget();
            let out = common::chasm_command()
                .arg("--journal")
                .arg(side.journal())
                .arg("capture")
                .args(paths.iter().map(|p| side.twin(p, self)))
                .output()
                .unwrap();
            prop_assert!(out.status.success(), "capture: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// VS Code writes a line to a session's log, or the whole changed `.json`, on each side;
    /// `None` from `line`, nothing.
    fn vscode_change(&self, at: &Index, line: impl Fn(&Value) -> Option<Value>, edit: impl Fn(&mut Value)) {
        let Some(path) = self.with_file(at) else { return };
        let now = vscode_read(&path);
        if path.extension().is_some_and(|e| e == "jsonl") {
            let Some(line) = line(&now) else { return };
            for side in self.live() {
                append(&side.twin(&path, self), &format!("{line}\n"));
            }
        } else {
            let mut v = now;
            edit(&mut v);
            let text = serde_json::to_string_pretty(&v).unwrap();
            for side in self.live() {
                std::fs::write(side.twin(&path, self), &text).unwrap();
            }
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.next += 1;
        let n = self.next;
        // VS Code finishes writing a line before it writes anything else.
        let writes = !matches!(
            op,
            Op::Age
                | Op::LocalTitle(_)
                | Op::LocalAdd(_)
                | Op::LocalDelete(_)
                | Op::LocalTag(..)
                | Op::LocalRestore(..)
                | Op::Capture(_)
                | Op::CaptureAll
                | Op::Outside(_)
                | Op::Sync { .. }
                | Op::DryRun(_)
                | Op::Careful(_)
                | Op::Unmounted(_)
        );
        if !matches!(op, Op::Age | Op::Sync { .. }) {
            self.put_back();
        }
        if writes {
            self.mend();
        }
        match op {
            Op::Create { log, requests } => {
                let id = format!("{n:08x}-0000-4000-8000-000000000000");
                // Numbered apart from the requests added later (`n * 10`) however many there are.
                let base = if *requests > 3 { 1_000_000 + n * 256 } else { n * 10 };
                let requests: Vec<Value> =
                    (0..*requests as u64).map(|k| request(base + k, &format!("q {n} {k}"))).collect();
                let v = json!({"version": 3, "sessionId": id, "creationDate": 1_764_000_000_000u64,
                               "requesterUsername": "ada", "responderUsername": "GitHub Copilot",
                               "initialLocation": "panel", "requests": requests});
                let (name, text) = if *log {
                    (format!("{id}.jsonl"), format!("{}\n", json!({"kind": 0, "v": v})))
                } else {
                    (format!("{id}.json"), serde_json::to_string_pretty(&v).unwrap())
                };
                for side in self.live() {
                    std::fs::write(side.chat().join(&name), &text).unwrap();
                    vscode_lists(&side.chat(), |e| {
                        e.insert(id.clone(), vscode_entry(&id));
                    });
                }
                self.ids.push(id);
            }
            Op::Add(at) => {
                let r = request(n * 10, &format!("added {n}"));
                self.vscode_change(
                    at,
                    |_| Some(json!({"kind": 2, "k": ["requests"], "v": [r.clone()]})),
                    |v| v["requests"].as_array_mut().unwrap().push(r.clone()),
                );
            }
            Op::Stream(at, which) => {
                let reference = json!({"kind": "inlineReference", "inlineReference": {"path": "/src/main.rs"}});
                let response = json!([{"value": format!("streamed {n}")}, reference]);
                let pick = |v: &Value| {
                    let len = v["requests"].as_array().map_or(0, Vec::len);
                    (len > 0).then(|| which.index(len))
                };
                self.vscode_change(
                    at,
                    |v| pick(v).map(|i| json!({"kind": 1, "k": ["requests", i, "response"], "v": response.clone()})),
                    |v| {
                        if let Some(i) = pick(v) {
                            v["requests"][i]["response"] = response.clone();
                        }
                    },
                );
            }
            Op::Pop(at) => self.vscode_change(
                at,
                |v| {
                    let len = v["requests"].as_array().map_or(0, Vec::len);
                    (len > 0).then(|| json!({"kind": 2, "k": ["requests"], "i": len - 1}))
                },
                |v| {
                    v["requests"].as_array_mut().unwrap().pop();
                },
            ),
            Op::Title(at) => {
                let title = format!("VS Code title {n}");
                self.vscode_change(
                    at,
                    |_| Some(json!({"kind": 1, "k": ["customTitle"], "v": title.clone()})),
                    |v| v["customTitle"] = json!(title.clone()),
                );
            }
            Op::Untitle(at) => self.vscode_change(
                at,
                |v| v.get("customTitle").map(|_| json!({"kind": 3, "k": ["customTitle"]})),
                |v| {
                    v.as_object_mut().unwrap().shift_remove("customTitle");
                },
            ),
            Op::Migrate(at) => {
                if let Some(path) = self.with_file(at)
                    && path.extension().is_some_and(|e| e == "json")
                {
                    let text = format!("{}\n", json!({"kind": 0, "v": vscode_read(&path)}));
                    for side in self.live() {
                        let old = side.twin(&path, self);
                        std::fs::write(old.with_extension("jsonl"), &text).unwrap();
                        std::fs::remove_file(old).unwrap();
                    }
                }
            }
            Op::Move(at) => {
                if let Some(path) = self.with_file(at) {
                    for side in self.live() {
                        let from = side.twin(&path, self);
                        let to = if from.starts_with(side.chat()) { side.moved() } else { side.chat() };
                        let id = from.file_stem().unwrap().to_str().unwrap().to_owned();
                        if side.file_in(&to, &id).is_some() {
                            continue; // a copy is there already
                        }
                        std::fs::rename(&from, to.join(from.file_name().unwrap())).unwrap();
                        // Listed where it now is, if it was listed at all.
                        let mut entry = None;
                        vscode_lists(from.parent().unwrap(), |e| entry = e.remove(&id));
                        if let Some(entry) = entry {
                            vscode_lists(&to, |e| {
                                e.insert(id.clone(), entry);
                            });
                        }
                    }
                }
            }
            Op::Copy(at) => {
                if let Some(path) = self.with_file(at) {
                    let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
                    // Nor a copy of a session chasm is about to delete (as `LocalDelete`).
                    if self.sides[0].deleted_in_journal(&id) {
                        return Ok(());
                    }
                    for side in self.live() {
                        let from = side.twin(&path, self);
                        let to = if from.starts_with(side.chat()) { side.moved() } else { side.chat() };
                        if side.file_in(&to, &id).is_some() {
                            continue;
                        }
                        std::fs::copy(&from, to.join(from.file_name().unwrap())).unwrap();
                        let mut entry = None;
                        vscode_lists(from.parent().unwrap(), |e| entry = e.get(&id).cloned());
                        if let Some(entry) = entry {
                            vscode_lists(&to, |e| {
                                e.insert(id.clone(), entry);
                            });
                        }
                    }
                }
            }
            Op::Compact(at) => {
                if let Some(path) = self.with_file(at)
                    && path.extension().is_some_and(|e| e == "jsonl")
                {
                    let text = format!("{}\n", json!({"kind": 0, "v": vscode_read(&path)}));
                    for side in self.live() {
                        std::fs::write(side.twin(&path, self), &text).unwrap();
                    }
                }
            }
            Op::Touch(at) => {
                if let Some(path) = self.with_file(at) {
                    let bytes = std::fs::read(&path).unwrap();
                    for side in self.live() {
                        std::fs::write(side.twin(&path, self), &bytes).unwrap();
                    }
                }
            }
            Op::Reformat(at) => {
                if let Some(path) = self.with_file(at)
                    && path.extension().is_some_and(|e| e == "json")
                {
                    let text = vscode_read(&path).to_string();
                    for side in self.live() {
                        std::fs::write(side.twin(&path, self), &text).unwrap();
                    }
                }
            }
            Op::Remove(at) | Op::Hide(at) => {
                if let Some(path) = self.with_file(at) {
                    let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
                    for side in self.live() {
                        let file = side.twin(&path, self);
                        if matches!(op, Op::Remove(_)) {
                            std::fs::remove_file(&file).unwrap();
                        }
                        vscode_lists(file.parent().unwrap(), |e| {
                            e.remove(&id);
                        });
                    }
                }
            }
            Op::Tear(at) => {
                if let Some(path) = self.with_file(at)
                    && path.extension().is_some_and(|e| e == "jsonl")
                {
                    let line = json!({"kind": 2, "k": ["requests"], "v": [request(n * 10, &format!("torn {n}"))]});
                    let line = format!("{line}\n");
                    let (first, rest) = line.split_at(line.len() / 2);
                    for side in self.live() {
                        append(&side.twin(&path, self), first);
                    }
                    self.torn = Some((path, rest.to_owned()));
                }
            }
            Op::Damage(at) => {
                if let Some(path) = self.with_file(at).filter(|p| p.extension().is_some_and(|e| e == "json")) {
                    let whole = std::fs::read(&path).unwrap();
                    for side in self.live() {
                        std::fs::write(side.twin(&path, self), &whole[..whole.len() / 2]).unwrap();
                    }
                    self.damaged = Some((path, whole));
                }
            }
            Op::Age => {
                let then = SystemTime::now() - Duration::from_secs(3600) + Duration::from_millis(n);
                for side in self.live() {
                    // In the order they were written (files written at once stay so): of a
                    // session's copies, the one VS Code goes on in stays the one written last.
                    let mut files: Vec<(SystemTime, PathBuf)> = Vec::new();
                    for dir in [side.chat(), side.moved()] {
                        for entry in std::fs::read_dir(dir).unwrap() {
                            let path = entry.unwrap().path();
                            files.push((std::fs::metadata(&path).unwrap().modified().unwrap(), path));
                        }
                    }
                    let mut times: Vec<SystemTime> = files.iter().map(|(t, _)| *t).collect();
                    times.sort_unstable();
                    times.dedup();
                    for (written, path) in files {
                        let rank = times.binary_search(&written).unwrap() as u64;
                        let file = std::fs::File::options().write(true).open(path).unwrap();
                        file.set_modified(then + Duration::from_micros(rank)).unwrap();
                    }
                }
            }
            Op::LocalTitle(at) => {
                let Some(id) = self.in_journal(at) else { return Ok(()) };
                let title = Value::from(format!("chasm title {n}"));
                for side in self.live() {
                    let state = side.journal_state(&id).expect("the twins hold the same sessions");
                    let position = state.session.field_position("customTitle").unwrap_or(usize::MAX);
                    let payload = chasm::fold::metadata_payload(&title, position);
                    side.local_change(&id, ChangeType::Update, EntityType::Metadata, "customTitle", payload);
                }
            }
            Op::LocalAdd(at) => {
                let Some(id) = self.in_journal(at) else { return Ok(()) };
                let r = request(n * 10, &format!("local {n}"));
                for side in self.live() {
                    let index = side.journal_state(&id).expect("the twins hold the same sessions").ids.len();
                    let entity = r["requestId"].as_str().unwrap();
                    let payload = json!({"index": index, "request": r});
                    side.local_change(&id, ChangeType::Create, EntityType::Message, entity, payload);
                }
                self.held.entry(id).or_default().insert(r.to_string());
            }
            Op::LocalDelete(at) => {
                let Some(id) = self.in_journal(at) else { return Ok(()) };
                // A session with a copy in the other workspace: the round deletes the copy it
                // syncs, and the next takes up the other as the session VS Code still has (a
                // decision left open: RELIABILITY.md, *Left for later*).
                if self.sides[0].copies(&id) > 1 {
                    return Ok(());
                }
                for side in self.live() {
                    side.local_change(&id, ChangeType::Delete, EntityType::Session, &id, Value::Null);
                }
            }
            Op::LocalRestore(at, point, push) => {
                let Some(id) = self.in_journal(at) else { return Ok(()) };
                for side in self.live() {
                    let journal = open_journal(&side.journal(), OpenMode::Existing);
                    let seqs = journal.session_seqs(&id).unwrap();
                    let target = journal.state_at(&id, seqs[point.index(seqs.len())]).unwrap().unwrap();
                    let current = journal.state_at(&id, u64::MAX).unwrap();
                    drop(journal);
                    // Back to a point where it was deleted is a deletion (see `LocalDelete`).
                    if !target.exists && self.sides[0].copies(&id) > 1 {
                        return Ok(());
                    }
                    let changes: Vec<NewChange> = chasm::diff::restore(&id, current.as_ref(), &target)
                        .into_iter()
                        .map(|c| c.into_change(&id, chrono::Utc::now(), Origin::Local, "vscode"))
                        .collect();
                    if !changes.is_empty() {
                        open_journal(&side.journal(), OpenMode::Existing).append(changes).unwrap();
                    }
                    if *push {
                        side.forget();
                        let only = Options { only: Some(id.clone()), max_delete: 1, ..Options::default() };
                        let report = side.round(&only);
                        let ids: Vec<&str> = report.sessions.iter().map(|s| s.session_id.as_str()).collect();
                        prop_assert!(ids.iter().all(|s| *s == id), "a round of {} reported {:?}", id, ids);
                        if report.sessions.iter().all(|s| s.action != Action::Conflicted && s.error.is_none())
                            && !self.outside.contains(&id)
                        {
                            converged_one(side, &open_journal(&side.journal(), OpenMode::Existing), &id)?;
                        }
                    }
                }
            }
            Op::LocalTag(at, untag) => {
                let Some(id) = self.in_journal(at) else { return Ok(()) };
                for side in self.live() {
                    let tags = side.journal_state(&id).expect("the twins hold the same sessions").tags;
                    match (untag, tags.first()) {
                        (true, Some(tag)) => {
                            side.local_change(&id, ChangeType::Delete, EntityType::Tag, tag, Value::Null)
                        }
                        (true, None) => {}
                        (false, _) => {
                            side.local_change(&id, ChangeType::Create, EntityType::Tag, &format!("t{n}"), Value::Null)
                        }
                    }
                }
            }
            Op::Capture(at) => {
                let Some(id) = self.in_journal(at) else { return Ok(()) };
                if let Some(path) = self.sides[0].file(&id) {
                    self.capture(&[path])?;
                }
            }
            Op::CaptureAll => {
                let live = self.ids.iter().filter(|id| self.sides[0].journal_state(id).is_some());
                let paths: Vec<PathBuf> = live.filter_map(|id| self.sides[0].file(id)).collect();
                if !paths.is_empty() {
                    self.capture(&paths)?;
                }
            }
            Op::Outside(at) => {
                let outside: Vec<&String> = self.outside.iter().collect();
                let (id, session) = match at {
                    Some(at) if !outside.is_empty() => {
                        let id = outside[at.index(outside.len())].clone();
                        let path = self.sides[0].outside().join(format!("{id}.json"));
                        let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                        v["requests"].as_array_mut().unwrap().push(request(n * 10, &format!("outside {n}")));
                        (id, v)
                    }
                    _ => {
                        let id = format!("{n:08x}-0000-4000-8000-00000000000f");
                        let v = json!({"version": 3, "sessionId": id, "creationDate": 1_764_000_000_000u64,
                                       "requesterUsername": "ada", "responderUsername": "GitHub Copilot",
                                       "initialLocation": "panel", "requests": [request(n * 10, &format!("outside {n}"))]});
                        (id, v)
                    }
                };
                let requests = session["requests"].as_array().unwrap().iter().map(Value::to_string);
                self.held.entry(id.clone()).or_default().extend(requests);
                for side in self.live() {
                    std::fs::create_dir_all(side.outside()).unwrap();
                    let path = side.outside().join(format!("{id}.json"));
                    std::fs::write(&path, serde_json::to_string_pretty(&session).unwrap()).unwrap();
                    let out = common::chasm_command()
                        .arg("--journal")
                        .arg(side.journal())
                        .arg("capture")
                        .arg(&path)
                        .output()
                        .unwrap();
                    prop_assert!(out.status.success(), "capture: {}", String::from_utf8_lossy(&out.stderr));
                }
                if self.outside.insert(id.clone()) {
                    self.ids.push(id);
                }
            }
            Op::DryRun(strategy) => {
                for side in self.live() {
                    side.forget();
                    let before = side.everything();
                    let report = side.round(&Options { dry_run: true, ..options(*strategy) });
                    prop_assert_eq!((report.appended, report.files_written), (0, 0));
                    let after = side.everything();
                    let changed: Vec<&PathBuf> = before
                        .keys()
                        .chain(after.keys())
                        .filter(|p| before.get(*p) != after.get(*p))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    prop_assert!(changed.is_empty(), "a dry run changed {:?}", changed);
                }
            }
            Op::Unmounted(second) => {
                for side in self.live() {
                    let chat = if *second { side.moved() } else { side.chat() };
                    // The sessions whose files are there, where the last round saw them. (One VS
                    // Code moved there since is gone from where chasm last saw it, as a deleted
                    // one is: that it may take for deleted, and brings back with the folder.)
                    let journal = open_journal(&side.journal(), OpenMode::Existing);
                    let seen_there = |id: &String| {
                        let home = chasm::sync::home_of(&journal, id).unwrap();
                        home.is_some_and(|l| l.path.parent() == Some(chat.as_path()))
                    };
                    let there: BTreeSet<String> = side
                        .files()
                        .into_keys()
                        .filter(|(dir, id)| *dir == chat && seen_there(id))
                        .map(|(_, id)| id)
                        .collect();
                    drop(journal);
                    let away = chat.with_file_name("chatSessions.away");
                    std::fs::rename(&chat, &away).unwrap();
                    let before: BTreeSet<String> = side.existing().intersection(&there).cloned().collect();
                    // How many records each of them has.
                    let history = || {
                        let journal = open_journal(&side.journal(), OpenMode::Existing);
                        there.iter().map(|id| (id.clone(), journal.session_seqs(id).unwrap().len())).collect::<Vec<_>>()
                    };
                    let history_before = history();
                    // Over the two chat folders named as roots (as configured roots on a share
                    // are), one of which cannot be read; then over the user dir, which no longer
                    // shows that workspace's folder.
                    let named = chasm::provider::vscode::VsCode::new(&[side.chat(), side.moved()]);
                    let report = chasm::in_step::round(&side.journal(), &named, &options(SyncStrategy::AutoMerge));
                    let history_after = history();
                    side.forget();
                    let user = side.try_round(&options(SyncStrategy::AutoMerge));
                    let after = side.existing();
                    std::fs::rename(&away, &chat).unwrap();
                    let failed = |e: SyncError| TestCaseError::fail(format!("a round without a folder: {e}"));
                    let report = report.map_err(failed)?;
                    user.map_err(failed)?;
                    let unread = chat.display().to_string();
                    prop_assert!(
                        report.warnings.iter().any(|w| w.contains(&unread)),
                        "no word of the folder: {:?}",
                        report.warnings
                    );
                    let lost: Vec<&String> = before.difference(&after).collect();
                    prop_assert!(lost.is_empty(), "taken for deleted while their folder was away: {:?}", lost);
                    // Nor synced from a copy elsewhere while the folder that cannot be read is
                    // one of the roots: the copy VS Code goes on in may be the one away. (Over
                    // the user dir a missing folder is no folder of VS Code's, and the round
                    // takes up a copy elsewhere, as it must once VS Code has removed a
                    // workspace's storage.)
                    prop_assert_eq!(history_after, history_before, "recorded while their folder was away");
                }
            }
            Op::Careful(strategy) => {
                for side in self.live() {
                    side.forget();
                    let in_vscode = |all: BTreeMap<PathBuf, Vec<u8>>| {
                        all.into_iter().filter(|(p, _)| p.starts_with(side.root())).collect::<BTreeMap<_, _>>()
                    };
                    let (files, sessions) = (in_vscode(side.everything()), side.existing());
                    match side.try_round(&Options { max_delete: 0, ..options(*strategy) }) {
                        Err(SyncError::TooManyDeletes { .. }) => {
                            prop_assert!(in_vscode(side.everything()) == files, "a stopped round wrote to VS Code")
                        }
                        Err(e) => prop_assert!(false, "{}", e),
                        Ok(_) => {
                            let gone: Vec<&PathBuf> = files.keys().filter(|p| !p.exists()).collect();
                            prop_assert!(gone.is_empty(), "--max-delete 0 deleted {:?}", gone);
                            let now = side.existing();
                            let deleted: Vec<&String> = sessions.difference(&now).collect();
                            prop_assert!(deleted.is_empty(), "--max-delete 0 recorded deleting {:?}", deleted);
                        }
                    }
                }
            }
            Op::Sync { strategy, settle, then_still, bit_by_bit } => {
                let record_after = bit_by_bit.then_some(1);
                self.sync(Options { record_after, ..options(*strategy) }, *settle)?;
                if *then_still {
                    self.apply(&Op::Age)?;
                    for side in self.live() {
                        let quiet = side.sync(*strategy);
                        prop_assert_eq!((quiet.appended, quiet.files_written), (0, 0), "{:?}", quiet);
                        prop_assert!(side.journal().join(chasm::in_step::FILE).exists(), "no note after {:?}", quiet);
                    }
                }
            }
        }
        Ok(())
    }

    /// The file cut short put back whole, if there is one.
    fn put_back(&mut self) {
        if let Some((path, whole)) = self.damaged.take() {
            for side in self.live() {
                std::fs::write(side.twin(&path, self), &whole).unwrap();
            }
        }
    }

    /// Rounds while a file is cut short, then the file put back. Each round fails that session
    /// alone, with a warning of that file alone, and writes nothing to it; a round with the
    /// files still after one that found nothing else to do takes the no-op path (on the first
    /// side: on the full path's side the note is forgotten) and reports the same.
    fn rounds_while_damaged(&mut self, opts: &Options) -> Result<(), TestCaseError> {
        let Some((path, _)) = self.damaged.clone() else { return Ok(()) };
        self.mend();
        let failed = |report: &Report| -> Vec<(String, Option<String>, bool)> {
            let failed = report.sessions.iter().filter(|s| s.action == Action::Failed);
            failed.map(|s| (s.session_id.clone(), s.error.clone(), s.bad_content)).collect()
        };
        let mut last: Vec<Option<Report>> = vec![None; self.live().len()];
        for k in 0..3 {
            // Still files from the second round on: the third finds them as the second left them.
            if k < 2 {
                self.apply(&Op::Age)?;
            }
            for (side, last) in self.live().iter().zip(&mut last) {
                let file = side.twin(&path, self);
                let name = file.file_name().unwrap().to_str().unwrap().to_owned();
                let before = std::fs::read(&file).unwrap();
                side.forget();
                let report = side.round(opts);
                let id = name.trim_end_matches(".json");
                let f = failed(&report);
                prop_assert!(f.len() == 1 && f[0].0 == id && f[0].2, "{} not failed alone: {:?}", id, f);
                let of_file = |w: &String| w.contains(&name) || of_a_copy(w);
                prop_assert!(report.warnings.iter().all(of_file), "warnings: {:?}", report.warnings);
                prop_assert!(std::fs::read(&file).unwrap() == before, "a file cut short was written to");
                if let Some(last) = last.as_ref().filter(|_| k == 2)
                    && last.appended == 0
                    && last.files_written == 0
                    && !last.sessions.iter().any(|s| s.action == Action::Conflicted)
                {
                    let noted = side.journal().join(chasm::in_step::FILE).exists();
                    prop_assert!(side.full_path || noted, "no note after {:?}", last);
                    prop_assert_eq!(failed(last), f, "the next round failed otherwise");
                    prop_assert_eq!(&last.warnings, &report.warnings, "the next round warned otherwise");
                }
                *last = Some(report);
            }
        }
        self.put_back();
        Ok(())
    }

    /// The torn line's rest written, if there is one.
    fn mend(&mut self) {
        if let Some((path, rest)) = self.torn.take() {
            for side in self.live() {
                append(&side.twin(&path, self), &rest);
            }
        }
    }

    fn sync(&mut self, opts: Options, settle: Settle) -> Result<(), TestCaseError> {
        self.rounds_while_damaged(&opts)?;
        let strategy = opts.strategy;
        // What VS Code holds as the sync reads it: history from now on.
        for id in &self.ids {
            if let Some(path) = self.sides[0].file(id) {
                let v = vscode_read(&path);
                let held = self.held.entry(id.clone()).or_default();
                held.extend(v["requests"].as_array().unwrap().iter().map(Value::to_string));
                if let Some(title) = v.get("customTitle") {
                    held.insert(title.to_string());
                }
            }
        }
        // `most_recent` decides by the records' times, `keep_both` names its copies anew: the
        // twins part there.
        if matches!(strategy, SyncStrategy::MostRecent | SyncStrategy::KeepBoth)
            || matches!(settle, Settle::Resolve(Take::Both))
        {
            self.twins = false;
        }
        // A round while VS Code is still writing a line: whatever it reads or decides, it
        // warns of that log alone and leaves its bytes alone (a line appended after half of
        // one would corrupt both). Then VS Code finishes the line, and the round below runs.
        if let Some((path, _)) = &self.torn {
            for side in self.live() {
                let log = side.twin(path, self);
                let before = std::fs::read(&log).unwrap();
                side.forget();
                let report = side.round(&opts);
                let name = log.file_name().unwrap().to_str().unwrap();
                let of_log = |w: &String| w.contains(name) || of_a_copy(w);
                prop_assert!(report.warnings.iter().all(of_log), "warnings: {:?}", report.warnings);
                prop_assert!(std::fs::read(&log).unwrap() == before, "a log being written was written to");
            }
            self.mend();
        }
        // What a dry run before the round reports of the sessions no file holds: the first side
        // from the notes its last round left, the full path's side from their histories.
        let mut unplaced = Vec::new();
        for side in self.live() {
            let tags_before = self.tags(side);
            let (listed_before, files_before) = (side.listed(), side.files());
            side.forget();
            unplaced.push(side.without_file(&opts));
            let report = side.round(&opts);
            if report.sessions.iter().any(|s| s.action == Action::Conflicted) {
                let settled = side.settle(strategy, settle);
                let left: Vec<&str> = settled
                    .sessions
                    .iter()
                    .filter(|s| s.action == Action::Conflicted)
                    .map(|s| s.session_id.as_str())
                    .collect();
                prop_assert!(left.is_empty(), "conflicts left after settling: {:?}", left);
            }
            let warnings: Vec<&String> = report.warnings.iter().filter(|w| !of_a_copy(w)).collect();
            prop_assert!(warnings.is_empty(), "warnings: {:?}", warnings);
            self.converged(side)?;
            lists_kept(side, &listed_before, &files_before)?;
            let again = side.sync(strategy);
            prop_assert_eq!((again.appended, again.files_written), (0, 0), "a second sync had work: {:?}", again);
            let tags_after = self.tags(side);
            for (id, tags) in &tags_before {
                if let Some(after) = tags_after.get(id) {
                    prop_assert_eq!(tags, after, "a round changed the tags of {}", id);
                }
            }
        }
        if self.twins {
            prop_assert_eq!(self.sides[0].events(), self.sides[1].events(), "the full path recorded other events");
            prop_assert_eq!(&unplaced[0], &unplaced[1], "the full path reported otherwise");
        }
        // Copies `keep_both` made are sessions like any other from now on.
        let journal = open_journal(&self.sides[0].journal(), OpenMode::Existing);
        for id in journal.session_ids().unwrap() {
            if !self.ids.contains(&id) {
                self.ids.push(id);
            }
        }
        Ok(())
    }

    /// The tags of each session the journal holds and has not deleted.
    fn tags(&self, side: &Side) -> BTreeMap<String, BTreeSet<String>> {
        self.ids.iter().filter_map(|id| Some((id.clone(), side.journal_state(id)?.tags))).collect()
    }

    /// Both sides hold the same sessions.
    fn converged(&self, side: &Side) -> Result<(), TestCaseError> {
        let journal = open_journal(&side.journal(), OpenMode::Existing);
        for id in &self.ids {
            if self.outside.contains(id) {
                // Never placed: no round writes it to VS Code.
                prop_assert!(side.file(id).is_none(), "{} kept outside is in VS Code", id);
                continue;
            }
            converged_one(side, &journal, id)?;
        }
        Ok(())
    }

    /// Everything VS Code held at a sync, and every request chasm added, is in the history.
    fn nothing_lost(&self) -> Result<(), TestCaseError> {
        let side = &self.sides[0];
        if !side.journal().exists() {
            return Ok(());
        }
        let journal = open_journal(&side.journal(), OpenMode::Existing);
        for (id, held) in &self.held {
            let mut seen = BTreeSet::new();
            for seq in journal.session_seqs(id).unwrap() {
                if let Some(state) = journal.state_at(id, seq).unwrap() {
                    let v = state.session.to_value();
                    seen.extend(v["requests"].as_array().unwrap().iter().map(Value::to_string));
                    if let Some(title) = v.get("customTitle") {
                        seen.insert(title.to_string());
                    }
                }
            }
            let lost: Vec<&String> = held.difference(&seen).collect();
            prop_assert!(lost.is_empty(), "{} lost {:?}", id, lost);
        }
        let report = journal.verify().unwrap();
        prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
        Ok(())
    }
}

/// A warning that a copy of a session was skipped for another (see [`Op::Copy`]).
fn of_a_copy(warning: &str) -> bool {
    warning.contains(": skipped: session ") && warning.contains(" is also at ")
}

/// One session is the same on both sides.
fn converged_one(side: &Side, journal: &chasm::journal::Journal, id: &str) -> Result<(), TestCaseError> {
    let state = journal.state_at(id, u64::MAX).unwrap();
    match side.file(id) {
        Some(path) => {
            let file = vscode_read(&path);
            let state = state.filter(|s| s.exists);
            prop_assert!(state.is_some(), "{} is in VS Code, not in the journal", id);
            prop_assert_eq!(&state.unwrap().session.to_value(), &file, "{} differs", id);
            let text = journal.session_text_at(id, u64::MAX).unwrap().unwrap();
            let bytes: Vec<u8> = text.pieces.iter().flat_map(|p| p.iter().copied()).collect();
            let printed: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&printed, &file, "{} as replay prints it differs", id);
        }
        None => prop_assert!(state.is_none_or(|s| !s.exists), "{} is in the journal, not in VS Code", id),
    }
    Ok(())
}

proptest! {
    // 64 cases unless PROPTEST_CASES says otherwise (a longer hunt); a failure is printed
    // shrunk, to be kept as a test of its own.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn both_sides_converge_lose_nothing_and_the_full_path_agrees(ops in prop::collection::vec(op(), 1..60)) {
        let mut model = Model { sides: [Side::new(false), Side::new(true)], ids: Vec::new(), outside: BTreeSet::new(), next: 0,
                                held: BTreeMap::new(), torn: None, damaged: None, twins: true };
        // A log and a whole file to begin with, synced; the edits go on from there.
        let start = [Op::Create { log: true, requests: 2 }, Op::Create { log: false, requests: 2 }, PLAIN_SYNC];
        for op in start.iter().chain(&ops).chain([&PLAIN_SYNC]) {
            model.apply(op)?;
        }
        model.nothing_lost()?;
    }
}
