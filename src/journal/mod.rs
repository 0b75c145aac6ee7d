//! The append-only, hash-chained journal: the single source of truth.
//!
//! Records are only ever appended; the per-session index and the `sessions` table are derived
//! from the log and checked by [`Journal::verify`]. One process at a time holds a journal open
//! to write (it locks the journal's lock file), or any number to read only (sharing that lock);
//! any other gets [`JournalError::Locked`].

pub mod block;
pub mod cache;
pub mod compressed;
pub mod delta;
pub mod export;
mod legacy;
pub mod lines;
pub mod record;
mod snapshot;
mod store;
mod verify;

use std::cell::OnceCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use record::{ChangeType, EntityType, NewChange, Origin, SyncChange};
pub use snapshot::SNAPSHOT_INTERVAL;
pub use store::FORMAT_VERSION;
pub use verify::{Problem, VerifyReport};

use crate::fold::{FoldError, SessionState, Source, Tail};
use crate::session::REQUESTS_KEY;
use record::GENESIS_HASH;
use store::Store;

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("no journal at {0}")]
    NotFound(PathBuf),
    #[error("{0} is not a chasm journal (it is not empty and holds no journal)")]
    NotAJournal(PathBuf),
    #[error("the journal at {0} is locked by another process (is another chasm running?)")]
    Locked(PathBuf),
    #[error("the journal at {dir} has format {found}, newer than this chasm supports ({supported}); upgrade chasm")]
    NewerFormat { dir: PathBuf, found: u32, supported: u32 },
    #[error("the journal at {0} has an unknown format")]
    UnknownFormat(PathBuf),
    #[error("journal storage: {0}")]
    Storage(String),
    #[error("journal: {0}")]
    Io(String),
    #[error("journal record {seq} is damaged: {reason} (run `chasm verify`)")]
    Corrupt { seq: u64, reason: String },
    #[error("invalid change: {0}")]
    InvalidChange(String),
    #[error("no session matches {0:?}")]
    UnknownSession(String),
    #[error("{prefix:?} matches {count} sessions ({examples}…); give more of the id")]
    AmbiguousSession { prefix: String, count: usize, examples: String },
}

/// See [`Journal::fingerprints_in_step`]. The default is a note with no token and no count (the
/// count is stamped when it is stored), to be filled in with what it notes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// The provider's token for the file (size, modification time, inode).
    pub token: String,
    /// How many records the session had when the token was taken (records are only ever
    /// added, so the same count means nothing was recorded since).
    #[serde(default)]
    pub events: u64,
    /// Its title then, for reports that skip reading it.
    pub title: Option<String>,
    /// For a session only the journal has, what a sync found of it while it was settled (see
    /// [`Journal::settled`]); its token is then empty. Valid for as long as the session has
    /// the same records: that is what it was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<Settled>,
    /// For a session only the journal has and never synced anywhere (captured from a file
    /// outside VS Code's storage, say), how many changes a sync found on each side: there is
    /// nothing a sync can do with it, yet finding that out reads its history, which has no
    /// checkpoint to begin from (all of it from its first change through chasm on; see
    /// [`Journal::tail`]). Valid, as `settled` is, while the session has the same records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsynced: Option<Unsynced>,
}

/// See [`Fingerprint::unsynced`]: the changes since the merge base on each side (one of them
/// none, so that the sync's strategy cannot matter: a merge with one side unchanged is the
/// other side, whatever the strategy), and what `status` shows of it beside the sync's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unsynced {
    pub local_changes: u64,
    pub remote_changes: u64,
    /// Whether it exists now (not deleted, nor only fields never created, as an import of
    /// part of a history leaves): `status` shows such a one from the note alone.
    pub exists: bool,
    /// When it was last active, if it exists (see [`crate::session::Session::last_activity`]).
    pub last_activity: Option<i64>,
}

/// What `chasm capture` read from a file, noted by its path: see
/// [`Journal::captured_unchanged`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The file's token then (see [`Fingerprint::token`]), taken before it was read.
    pub token: String,
    pub session_id: String,
    /// The session's record count once that capture's batch was in: what the file held was
    /// then what the journal last saw of the session in VS Code.
    pub events: u64,
}

/// A session at some point as JSON text: see [`Journal::session_text_at`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionText {
    pub exists: bool,
    pub deleted_seq: Option<u64>,
    pub last_seq: u64,
    /// The session object, compact (its stored requests as they were written), in pieces:
    /// each request where it lies in the record read, so a long session is never copied into
    /// one buffer, nor its requests out of their records.
    pub pieces: Vec<Text>,
}

impl SessionText {
    fn of(state: SessionState) -> SessionText {
        let json = serde_json::to_vec(&state.session.to_value()).expect("a session serializes");
        SessionText {
            exists: state.exists,
            deleted_seq: state.deleted_seq,
            last_seq: state.last_seq,
            pieces: vec![Text::from(json)],
        }
    }
}

/// Bytes within a record read (or text made), shared rather than copied.
#[derive(Clone)]
pub struct Text {
    bytes: store::Shared,
    range: std::ops::Range<usize>,
}

impl Text {
    /// The part `range` of `bytes`, which must lie within them.
    pub(crate) fn within(bytes: store::Shared, range: std::ops::Range<usize>) -> Text {
        debug_assert!(range.end <= bytes.len());
        Text { bytes, range }
    }
}

impl From<Vec<u8>> for Text {
    fn from(bytes: Vec<u8>) -> Text {
        let range = 0..bytes.len();
        Text { bytes: std::rc::Rc::new(bytes), range }
    }
}

impl std::ops::Deref for Text {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[self.range.clone()]
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        **self == **other
    }
}

impl Eq for Text {}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// The newest state `at` gives in which a session existed, walking back over its deletions,
/// and the seq of the latest one when it is deleted now (see [`Journal::last_existing`]).
fn before_deletions(
    at: impl Fn(u64) -> Result<Option<SessionState>, StateError>,
) -> Result<(Option<SessionState>, Option<u64>), StateError> {
    let mut state = at(u64::MAX)?;
    let mut deleted = None;
    while let Some(st) = state.as_ref().filter(|st| !st.exists) {
        let seq = st.deleted_seq.unwrap_or(st.last_seq);
        deleted.get_or_insert(seq);
        // Not there and not deleted: never created so far (only a deletion ends a session
        // that was), so not before either. Walking back a record at a time found that out
        // at the cost of a snapshot and its records for each of the session's records.
        if st.deleted_seq.is_none() {
            return Ok((None, deleted));
        }
        state = at(seq - 1)?;
    }
    Ok((state, deleted))
}

fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("writing JSON to a Vec cannot fail");
}

/// A settled session, as far as a sync reports it (see [`Journal::settled`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Settled {
    pub exists: bool,
    pub title: Option<String>,
    /// Where its last checkpoint says it was synced to.
    pub path: Option<String>,
    /// For a deleted session, what `status --all` shows of it: deleted sessions pile up, and
    /// reading what each last held costs a snapshot and its records decompressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone: Option<Gone>,
}

/// A deleted session as lists show it (see [`Journal::last_fields`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gone {
    /// The seq of its deletion.
    pub deleted_seq: u64,
    /// Its title before it was deleted.
    pub title: Option<String>,
    /// When it was last active before (see [`crate::session::Session::last_activity`]).
    pub last_activity: Option<i64>,
}

/// The top-level fields of what a session held when a sync left it in step, without its
/// requests (see [`Journal::held_fields`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HeldFields {
    /// As [`Held::last_seq`].
    pub last_seq: u64,
    /// The top-level fields, in order, `requests` among them as a `null` placeholder.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Where the last request's value is in the journal (see [`Held::sources`]).
    pub last_source: Option<(u64, Option<u32>)>,
}

/// What a session held when a sync left it in step (see [`Journal::held`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The session's newest seq then: the shape stands for the journal's state only while this
    /// is still the newest.
    pub last_seq: u64,
    /// The newest change made on each side then (not a checkpoint): what the next checkpoint
    /// names when only the file has changed since.
    pub local_seq: u64,
    pub remote_seq: u64,
    pub shape: crate::shape::Shape,
    /// Where each request's value is in the journal (seq, and index in a whole-session
    /// event), parallel to the shape's requests: how a request a log reaches into is read.
    pub sources: Vec<(u64, Option<u32>)>,
    /// How far the read it was taken from went into the file (see [`crate::provider::LogMark`]).
    pub log: Option<crate::provider::LogMark>,
}

/// Why a session's state could not be derived.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Fold(#[from] FoldError),
}

/// Whether opening may create a new journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the directory and an empty journal when there is none (commands that record).
    Create,
    /// Fail with [`JournalError::NotFound`] when there is none (commands that change a
    /// journal's history but never start one).
    Existing,
    /// As `Existing`, and open it for reading only (see `Store::open_for_reading`): commands
    /// that only read.
    Read,
}

/// An open journal.
pub struct Journal {
    store: Store,
    last_seq: u64,
    /// The hash the next record chains to, or why the last record cannot give one (a damaged
    /// journal can still be read and verified, but not appended to).
    head_hash: OnceCell<Result<[u8; 32], String>>,
    /// Batches appended through this handle.
    appends: u64,
}

impl Journal {
    /// Opens the journal in `dir`. A directory that exists, is not empty and holds no journal
    /// is refused rather than filled with journal files. A format 1 (sled) journal is converted
    /// first (see `legacy.rs`).
    pub fn open(dir: &Path, mode: OpenMode) -> Result<Journal, JournalError> {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                if !Store::exists_in(dir) && legacy::is_format_1(dir) {
                    legacy::convert(dir)?;
                }
                let has_db = Store::exists_in(dir);
                // A lock file alone is what an open that failed before creating the database
                // (a full disk, say) leaves: the directory is still ours, and empty.
                let mut others = entries.flatten().filter(|e| e.file_name() != store::LOCK_FILE);
                if !has_db && others.next().is_some() {
                    return Err(JournalError::NotAJournal(dir.to_owned()));
                }
                if !has_db && mode != OpenMode::Create {
                    return Err(JournalError::NotFound(dir.to_owned()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if mode != OpenMode::Create {
                    return Err(JournalError::NotFound(dir.to_owned()));
                }
                create_dir_durably(dir)?;
            }
            Err(e) => {
                return Err(JournalError::Io(format!("cannot read {}: {e}", dir.display())));
            }
        }
        let store = if mode == OpenMode::Read { Store::open_for_reading(dir)? } else { Store::open(dir)? };
        let last_seq = store.last_seq()?;
        Ok(Journal { store, last_seq, head_hash: OnceCell::new(), appends: 0 })
    }

    /// The hash the next record chains to (an error for a journal whose last record is damaged).
    /// Read from the last record when first asked: commands that only read never need it.
    pub fn head_hash(&self) -> Result<[u8; 32], JournalError> {
        let head = self.head_hash.get_or_init(|| match self.store.get(self.last_seq) {
            Err(e) => Err(e.to_string()),
            Ok(None) if self.last_seq == 0 => Ok(GENESIS_HASH),
            Ok(None) => Err("the last record is missing".into()),
            // The hash is in the record's last bytes; its payload is only checked to be JSON.
            Ok(Some(bytes)) => record::Fields::of(&bytes).map_err(|e| e.to_string()).and_then(|f| {
                serde_json::from_slice::<serde::de::IgnoredAny>(f.body.payload)
                    .map(|_| f.hash)
                    .map_err(|e| format!("payload is not valid JSON: {e}"))
            }),
        });
        head.clone().map_err(|reason| JournalError::Corrupt { seq: self.last_seq, reason })
    }

    /// The directory the journal lives in.
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    /// The seq of the newest record (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// How many batches this handle has appended: each was one durable commit (an fsync).
    pub fn appends(&self) -> u64 {
        self.appends
    }

    /// Appends a batch: seqs are assigned densely, each record is chained to the one before,
    /// and the whole batch becomes durable in one transaction before this returns (group
    /// commit). Either the whole batch is stored or none of it.
    pub fn append(&mut self, batch: Vec<NewChange>) -> Result<Vec<SyncChange>, JournalError> {
        let ids = random_ids(batch.len())?;
        self.append_sealed(ids.into_iter().zip(batch).collect(), &mut |_| Ok(()))
    }

    /// Appends changes recorded elsewhere (an import), each keeping its record id, timestamp and
    /// content but taking its place in this journal's chain.
    pub fn append_foreign(&mut self, records: Vec<SyncChange>) -> Result<Vec<SyncChange>, JournalError> {
        self.append_sealed(records.into_iter().map(|r| (r.id, r.to_change())).collect(), &mut |_| Ok(()))
    }

    /// Appends records exactly as they are, seqs and hashes included: they must continue this
    /// journal's chain (an import into the journal they were exported from, or an empty one).
    pub fn append_verbatim(&mut self, records: Vec<SyncChange>) -> Result<Vec<SyncChange>, JournalError> {
        let mut seq = self.last_seq;
        let mut prev = self.head_hash()?;
        for r in &records {
            seq += 1;
            if r.seq != seq || r.prev_hash != prev || !r.is_sealed() {
                return Err(JournalError::InvalidChange(format!(
                    "record {} does not continue this journal's chain at seq {seq}",
                    r.seq
                )));
            }
            prev = r.hash;
        }
        self.store_records(
            records.len(),
            records.into_iter().map(|r| {
                let b = r.encode();
                (r, b)
            }),
            &mut |_| Ok(()),
        )
    }

    /// Seals each change (its record id given) into the chain after the head, and stores the
    /// batch in one durable commit, `then` run in it once the records are in.
    fn append_sealed(
        &mut self,
        batch: Vec<(uuid::Uuid, NewChange)>,
        then: Then,
    ) -> Result<Vec<SyncChange>, JournalError> {
        let seq = self.last_seq;
        let prev = self.head_hash()?;
        let count = batch.len();
        let sealed = Sealed { batch: batch.into_iter(), seq, prev };
        if count < PIPELINE_MIN {
            return self.store_records(count, sealed, then);
        }
        // A large batch is sealed (serialized and hashed) on a second thread while this one
        // stores what is already sealed: each is about half of an append's work.
        std::thread::scope(|scope| {
            let (give, take) = std::sync::mpsc::sync_channel::<Sealed>(1);
            let (tx, rx) = std::sync::mpsc::sync_channel(PIPELINE_DEPTH);
            let sealer = std::thread::Builder::new().name("chasm-seal".into()).spawn_scoped(scope, move || {
                let Ok(sealed) = take.recv() else { return };
                for record in sealed {
                    // The storing side has stopped (an error): so does the sealing.
                    if tx.send(record).is_err() {
                        break;
                    }
                }
            });
            // Without a thread to be had, the batch is sealed here, as a small one is.
            let handed = match sealer {
                Ok(_) => give.send(sealed).map_err(|e| e.0),
                Err(_) => Err(sealed),
            };
            match handed {
                Ok(()) => self.store_records(count, rx, then),
                Err(sealed) => self.store_records(count, sealed, then),
            }
        })
    }

    /// Stores sealed records that continue the chain, durably, in one group commit, `then`
    /// run in the same transaction once they are in (and their sessions' counts updated).
    /// `count` is how many there are: a batch that ends short of it (its sealing thread gone)
    /// is not stored at all.
    fn store_records(
        &mut self,
        count: usize,
        sealed: impl IntoIterator<Item = (SyncChange, Vec<u8>)>,
        then: Then,
    ) -> Result<Vec<SyncChange>, JournalError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        // A note that everything is in step would no longer be true.
        crate::in_step::invalidate(&self.store.dir)
            .map_err(|e| JournalError::Io(format!("cannot drop {}: {e}", crate::in_step::FILE)))?;
        let mut records: Vec<SyncChange> = Vec::with_capacity(count);
        self.store.transaction(|store| {
            let mut inserting = store.inserting();
            for (r, bytes) in sealed {
                if r.session_id.is_empty() || r.session_id.len() > u16::MAX as usize {
                    return Err(JournalError::InvalidChange(format!("session id of {} bytes", r.session_id.len())));
                }
                let events = inserting.row(r.seq, &r.session_id, &std::rc::Rc::new(bytes))?;
                // Its log line, made while its payload is in hand (on this thread: a string
                // made on the sealing thread and freed on this one costs more than making it).
                store.keep_line(lines::Line::of(&r));
                records.push(r);
                // A snapshot due at this record is taken now, in the same transaction, from the
                // records in memory (while a large batch's next records are still being
                // sealed). Derived data: one that cannot be taken (a session whose events do
                // not fold) is left to a later append or `verify` and does not fail this one.
                if events.is_multiple_of(SNAPSHOT_INTERVAL) {
                    // The session's last interval of records in this batch, at most: anything
                    // older since its last snapshot is read back from the store.
                    let session_id = &records[records.len() - 1].session_id;
                    let mut fresh: Vec<&SyncChange> = (records.iter().rev())
                        .filter(|r| &r.session_id == session_id)
                        .take(SNAPSHOT_INTERVAL as usize)
                        .collect();
                    fresh.reverse();
                    if let Err(e @ JournalError::Storage(_)) = store.take_due_snapshots(session_id, events, &fresh) {
                        return Err(e);
                    }
                }
            }
            if records.len() != count {
                return Err(JournalError::Io(format!("{} of {count} records were sealed", records.len())));
            }
            let (first, last) = (&records[0], &records[records.len() - 1]);
            inserting.finish(store::head_value(last.seq, &last.hash, first.seq))?;
            then(store)
        })?;
        let last = records.last().expect("one record at least");
        self.last_seq = last.seq;
        self.head_hash = OnceCell::from(Ok(last.hash));
        self.appends += 1;
        Ok(records)
    }

    /// The record at `seq`, if there is one.
    pub fn get(&self, seq: u64) -> Result<Option<SyncChange>, JournalError> {
        match self.store.get(seq)? {
            None => Ok(None),
            Some(bytes) => decode(seq, &bytes).map(Some),
        }
    }

    /// The bytes of the records after `after` up to `upto` (see `journal-format.md`), in seq
    /// order, in one query: for readers that decode only the fields they show
    /// (`record::Fields`).
    pub fn raw_between(&self, after: u64, upto: u64) -> Result<Vec<(u64, store::Shared)>, JournalError> {
        if after >= upto {
            return Ok(Vec::new());
        }
        self.store.shared_between(after + 1, upto)
    }

    /// The stored bytes of one session's records after `after` up to `upto`, in seq order, in
    /// one query.
    pub fn session_raw(
        &self,
        session_id: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<(u64, store::Shared)>, JournalError> {
        self.store.session_records(session_id, after, upto)
    }

    /// Every record in seq order, oldest first, read a chunk at a time. A record that does not
    /// decode is an error item, not a panic.
    pub fn iter(&self) -> Records<'_> {
        self.iter_from(1)
    }

    /// [`Journal::iter`] from `seq` on: an export that continues the last one reads only the
    /// records it writes.
    pub fn iter_from(&self, seq: u64) -> Records<'_> {
        Records { store: &self.store, next: seq.max(1), last: self.last_seq, ahead: Vec::new(), read: decode }
    }

    /// Every record's id in seq order, its payload left unparsed: what an import checks a file
    /// against, in a fraction of the time of reading every record.
    pub fn record_ids(&self) -> Records<'_, uuid::Uuid> {
        fn id_of(seq: u64, bytes: &[u8]) -> Result<uuid::Uuid, JournalError> {
            record::Fields::of(bytes)
                .map(|f| uuid::Uuid::from_bytes(f.body.id))
                .map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })
        }
        Records { store: &self.store, next: 1, last: self.last_seq, ahead: Vec::new(), read: id_of }
    }

    /// One session's records in seq order, in one query.
    pub fn session_events(&self, session_id: &str) -> Result<Vec<SyncChange>, JournalError> {
        self.store.session_records(session_id, 0, u64::MAX)?.iter().map(|(seq, bytes)| decode(*seq, bytes)).collect()
    }

    /// A session as it stood right after its last event at or before `upto` (`u64::MAX`: now);
    /// `None` when it had no events by then. Reads the nearest valid snapshot and fewer than
    /// [`SNAPSHOT_INTERVAL`] events after it; the state's `events_read` says how many.
    pub fn state_at(&self, session_id: &str, upto: u64) -> Result<Option<SessionState>, StateError> {
        let snapshot = self.store.snapshot_before(session_id, upto)?;
        let after = snapshot.as_ref().map_or(0, |s| s.last_seq);
        let mut state = snapshot;
        for (seq, bytes) in self.store.session_records(session_id, after, upto)? {
            state.get_or_insert_with(SessionState::default).apply(&decode(seq, &bytes)?)?;
        }
        Ok(state)
    }

    /// A session as it stood right after its last event at or before `upto`, as compact JSON
    /// text (see [`SessionText`]); `None` when it had no events by then. Each request is copied
    /// from the record that holds it as stored, not parsed and printed again: what `replay`
    /// prints. Where a request cannot be found so, the state is rebuilt as
    /// [`Journal::state_at`] rebuilds it.
    pub fn session_text_at(&self, session_id: &str, upto: u64) -> Result<Option<SessionText>, StateError> {
        let Some(state) = self.placed_state_at(session_id, upto)? else { return Ok(None) };
        let Some(mut texts) = self.store.request_texts(session_id, &state.sources)? else {
            return Ok(self.state_at(session_id, upto)?.map(SessionText::of));
        };
        let mut pieces = Vec::with_capacity(2 * texts.len() + 1);
        let mut json = vec![b'{'];
        for (i, (key, value)) in state.session.fields().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            write_json(&mut json, key);
            json.push(b':');
            if key != REQUESTS_KEY {
                write_json(&mut json, value);
                continue;
            }
            json.push(b'[');
            for (j, text) in texts.drain(..).enumerate() {
                if j > 0 {
                    json.push(b',');
                }
                pieces.push(Text::from(std::mem::take(&mut json)));
                pieces.push(text);
            }
            json.push(b']');
        }
        json.push(b'}');
        pieces.push(Text::from(json));
        Ok(Some(SessionText { exists: state.exists, deleted_seq: state.deleted_seq, last_seq: state.last_seq, pieces }))
    }

    /// A session right after its last event at or before `upto` with its requests left unread:
    /// each is where its source says, its content empty (as a snapshot holds it). `None` when
    /// it had no events by then.
    fn placed_state_at(&self, session_id: &str, upto: u64) -> Result<Option<SessionState>, StateError> {
        let snapshot = self.store.unfilled_snapshot_before(session_id, upto)?;
        let after = snapshot.as_ref().map_or(0, |s| s.last_seq);
        let mut state = snapshot;
        // Events folded for where their requests go, not what they say (as a snapshot is).
        for (seq, bytes) in self.store.session_records(session_id, after, upto)? {
            let event = SyncChange::decode_with(&bytes, snapshot::placed_request)
                .map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })?;
            state.get_or_insert_with(SessionState::default).apply(&event)?;
        }
        Ok(state)
    }

    /// A session that is settled: its newest record is a checkpoint, so both sides held the
    /// same then and neither has changed it since. What a sync reports of it needs none of
    /// its history: whether it exists, its title and where it was synced to. Read from the
    /// nearest snapshot and at most the first request with a message; `None` when the session
    /// is not settled, or is not readable so (the full path then says why).
    pub fn settled(&self, session_id: &str) -> Result<Option<Settled>, StateError> {
        let Some(mut state) = self.placed_state_at(session_id, u64::MAX)? else { return Ok(None) };
        let Some(cp) = state.last_checkpoint.filter(|&cp| cp == state.last_seq) else { return Ok(None) };
        let Some(checkpoint) = self.get(cp)? else { return Ok(None) };
        let path = crate::fold::Checkpoint::path_of(&checkpoint.payload).map(str::to_owned);
        if !state.exists {
            let (last, deleted) = self.last_fields(session_id, true)?;
            let gone = Gone {
                // Deleted at or before its newest record, whichever reading finds it.
                deleted_seq: deleted.unwrap_or(state.last_seq),
                title: last.as_ref().and_then(crate::session::Session::display_title),
                last_activity: last.as_ref().and_then(crate::session::Session::last_activity),
            };
            return Ok(Some(Settled { exists: false, title: None, path, gone: Some(gone) }));
        }
        if !self.fill_title_request(session_id, &mut state)? {
            return Ok(None);
        }
        Ok(Some(Settled { exists: true, title: state.session.display_title(), path, gone: None }))
    }

    /// In a state whose requests were left unread (see `placed_state_at`), reads the one a
    /// title falls back on when the session has none of its own (see
    /// `Session::display_title`): the first with a message. `false` when a request is not
    /// where its source says.
    fn fill_title_request(&self, session_id: &str, state: &mut SessionState) -> Result<bool, JournalError> {
        if state.session.custom_title().is_some_and(|t| !t.trim().is_empty()) {
            return Ok(true);
        }
        for (i, source) in state.sources.iter().enumerate() {
            let Some(request) = self.placed_request(session_id, *source)? else { return Ok(false) };
            if request.message_text().is_some()
                && let Some(slot) = state.session.requests.get_mut(i)
            {
                *slot = request;
                break;
            }
        }
        Ok(true)
    }

    /// One request of a session as the record a source names holds it, or `None` when the
    /// record is missing, another session's, or does not hold a request there.
    pub fn request_at(&self, session_id: &str, source: Source) -> Result<Option<serde_json::Value>, JournalError> {
        let texts = self.store.request_texts(session_id, &[source])?;
        Ok(texts.and_then(|t| serde_json::from_slice(&t[0]).ok()))
    }

    /// The path the session's last checkpoint recorded for its file: where the last sync saw
    /// it in the provider (`None`: never checkpointed, or in no file).
    pub fn last_path(&self, session_id: &str) -> Result<Option<String>, JournalError> {
        let Some(cp) = self.store.last_checkpoint(session_id)? else { return Ok(None) };
        let record = self.get(cp)?;
        Ok(record.and_then(|r| crate::fold::Checkpoint::path_of(&r.payload).map(str::to_owned)))
    }

    /// A session's history from its merge base on (see [`Tail`]): the base from the nearest
    /// snapshot, the events since the last checkpoint. What a sync reads for a changed session,
    /// whatever the length of its history. A session never checkpointed has its base just
    /// before its first local change (see [`Tail::of`]): the events from that change on are
    /// read, none for a session only ever seen in VS Code.
    pub fn tail(&self, session_id: &str) -> Result<Tail, StateError> {
        let Some(cp) = self.store.last_checkpoint(session_id)? else {
            // Never synced: the base is implicit (see `Tail::of`), the state just before the
            // first local change — all of it, for a session only ever seen in VS Code (one
            // captured again and again): built from a snapshot, not by folding every event.
            let (first_local, remote) = self.implicit_base(session_id)?;
            let upto = first_local.map_or(u64::MAX, |seq| seq - 1);
            let base = self.state_at(session_id, upto)?;
            let after = match first_local {
                None => Vec::new(),
                Some(seq) => self
                    .store
                    .session_records(session_id, seq - 1, u64::MAX)?
                    .iter()
                    .map(|(seq, bytes)| decode(*seq, bytes))
                    .collect::<Result<_, _>>()?,
            };
            return Ok(Tail { base, checkpoint: None, after, before: (0, remote) });
        };
        let checkpoint =
            self.get(cp)?.ok_or_else(|| JournalError::Corrupt { seq: cp, reason: "a checkpoint is missing".into() })?;
        let base = self.state_at(session_id, cp)?;
        let after = self
            .store
            .session_records(session_id, cp, u64::MAX)?
            .iter()
            .map(|(seq, bytes)| decode(*seq, bytes))
            .collect::<Result<Vec<_>, _>>()?;
        // The checkpoint names the newest change of each side its sync had seen; after those
        // came only that sync's own (local) resolutions, just before the checkpoint.
        let seen = |key: &str| checkpoint.payload.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0).min(cp);
        let (local, remote) = (seen("local_seq"), seen("remote_seq"));
        let resolved = self.store.newest_change_between(session_id, Origin::Local, local, cp)?;
        let before = (resolved.max(local), remote);
        Ok(Tail { base, checkpoint: Some(checkpoint), after, before })
    }

    /// The seq of a session's first change through chasm, or checkpoint (`None`: neither):
    /// where its merge base is first set. What came before it was only ever seen in VS Code,
    /// and nothing of it can meet a change made through chasm (see [`Tail::of`]).
    pub fn first_local_seq(&self, session_id: &str) -> Result<Option<u64>, JournalError> {
        Ok(self.implicit_base(session_id)?.0)
    }

    /// Where a session never checkpointed has its implicit merge base (see [`Tail::of`]): its
    /// first local change, if any, and the newest change seen in VS Code before it (0: none).
    /// From its runs of log lines where they stand for its records, and its records' fields
    /// elsewhere, oldest first: no payload parsed, and a session only ever seen in VS Code
    /// read as a few rows.
    fn implicit_base(&self, session_id: &str) -> Result<(Option<u64>, u64), JournalError> {
        let seqs = self.session_seqs(session_id)?;
        let runs = self.session_line_runs(session_id, 0)?;
        let mut remote = 0;
        // Whether this change is the first local one; the newest remote one kept until then.
        let mut local = |seq: u64, origin: Origin, change_type: ChangeType| match origin {
            Origin::Local => true,
            Origin::Remote => {
                if change_type != ChangeType::Merge {
                    remote = seq;
                }
                false
            }
        };
        for piece in lines::plan(&seqs, &runs, false) {
            match piece {
                lines::Piece::Run(lines) => {
                    if let Some(line) = lines.iter().find(|l| local(l.seq, l.origin, l.change_type)) {
                        return Ok((Some(line.seq), remote));
                    }
                }
                lines::Piece::Records(range) => {
                    // A chunk at a time: a long session's records, rebuilt, can be many times
                    // their size on disk.
                    for chunk in seqs[range].chunks(512) {
                        let (first, last) = (chunk[0], chunk[chunk.len() - 1]);
                        for (seq, bytes) in self.store.session_records(session_id, first - 1, last)? {
                            let fields = record::Fields::of(&bytes)
                                .map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })?;
                            if local(seq, fields.body.origin, fields.body.change_type) {
                                return Ok((Some(seq), remote));
                            }
                        }
                    }
                }
            }
        }
        Ok((None, remote))
    }

    /// The seq of a session's newest record (0: none), from one step of the per-session index.
    pub fn session_last_seq(&self, session_id: &str) -> Result<u64, JournalError> {
        self.store.session_last_seq(session_id)
    }

    /// What each session's provider file looked like the last time both sides were in step,
    /// for the sessions the journal has recorded nothing for since, in one query. A sync that
    /// finds the same file skips the session without reading it. A cache, not history: a lost
    /// entry only costs a read.
    pub fn fingerprints_in_step(&self) -> Result<HashMap<String, Fingerprint>, JournalError> {
        let rows = self.store.fingerprints_with_events()?;
        let mut in_step = HashMap::with_capacity(rows.len());
        in_step.extend(rows.into_iter().filter_map(|(id, value, events)| {
            let fp = cache::decode_fingerprint(&value)?;
            (fp.events > 0 && fp.events == events).then_some((id, fp))
        }));
        Ok(in_step)
    }

    /// How many records a session has (0: none).
    pub fn session_event_count(&self, session_id: &str) -> Result<u64, JournalError> {
        Ok(self.store.session(session_id)?.map_or(0, |s| s.events))
    }

    /// What the session held when a sync last left it in step, as a [`crate::shape::Shape`],
    /// while the journal has recorded nothing newer (its `last_seq` is still the session's
    /// newest): what a sync diffs a changed file against, and the session's current fields. A
    /// cache like the fingerprints; one that cannot be read, or that is out of date, is none.
    pub fn held(&self, session_id: &str) -> Result<Option<Held>, JournalError> {
        let Some(v) = self.store.shape(session_id)? else { return Ok(None) };
        let held = if cache::is_parted(&v) {
            cache::decode_parted(&v, &self.store.shape_parts(session_id)?)
        } else {
            cache::decode_held(&v)
        };
        let Some(held) = held else { return Ok(None) };
        Ok(self.still_newest(session_id, held.last_seq)?.then_some(held))
    }

    /// [`Journal::held`]'s top-level fields and last request's place alone, without reading
    /// every request's digest: what a listing needs of each session.
    pub fn held_fields(&self, session_id: &str) -> Result<Option<HeldFields>, JournalError> {
        let Some(v) = self.store.shape(session_id)? else { return Ok(None) };
        let Some(held) = cache::decode_held_fields(&v) else { return Ok(None) };
        Ok(self.still_newest(session_id, held.last_seq)?.then_some(held))
    }

    /// Whether a kept shape stamped with `last_seq` still stands for the session: nothing has
    /// been recorded for it since.
    fn still_newest(&self, session_id: &str, last_seq: u64) -> Result<bool, JournalError> {
        Ok(last_seq > 0 && self.session_last_seq(session_id)? == last_seq)
    }

    /// Appends a batch (see [`Journal::append`]) and, in the same durable commit, records each
    /// session's fingerprint (see [`Journal::fingerprints_in_step`]) and what it held (see
    /// [`Journal::held`]), stamped with its record count and newest seq as the batch leaves
    /// them; `None` forgets one. In a transaction of their own they would be a second commit
    /// which, though made without an fsync, SQLite must fsync before folding the write-ahead
    /// log into the database at close: about a millisecond of every sync that records
    /// anything. Either both are stored or neither, so a batch that is refused leaves no
    /// fingerprint claiming the counts it would have made. With nothing to append they are
    /// written on their own, without a flush (a cache: a power cut may lose them).
    pub fn append_noting(
        &mut self,
        batch: Vec<NewChange>,
        in_step: &mut [InStep],
    ) -> Result<Vec<SyncChange>, JournalError> {
        let note = !in_step.is_empty();
        self.append_deriving(batch, note, &mut |store| note_in_step(store, in_step))
    }

    /// The session the file at `path` held when `chasm capture` last read it, if the file
    /// still has the `token` it had then and nothing has been recorded for that session
    /// since: the file is then what the journal last saw of the session in VS Code, and a
    /// capture of it would record nothing. `None`: read it. A cache like the fingerprints.
    pub fn captured_unchanged(&self, path: &[u8], token: &str) -> Result<Option<String>, JournalError> {
        let Some(note) = self.store.captured(path)?.as_deref().and_then(cache::decode_captured) else {
            return Ok(None);
        };
        let unchanged =
            note.token == token && note.events > 0 && note.events == self.session_event_count(&note.session_id)?;
        Ok(unchanged.then_some(note.session_id))
    }

    /// Appends a capture's batch (see [`Journal::append`]) and, in the same commit, notes what
    /// it read of each file, by path (see [`Journal::captured_unchanged`]), each stamped with
    /// its session's record count as the batch leaves it.
    pub fn append_capturing(
        &mut self,
        batch: Vec<NewChange>,
        mut read: Vec<(Vec<u8>, Captured)>,
    ) -> Result<Vec<SyncChange>, JournalError> {
        let note = !read.is_empty();
        self.append_deriving(batch, note, &mut |store| {
            for (_, c) in read.iter_mut() {
                c.events = store.session(&c.session_id)?.map_or(0, |s| s.events);
            }
            store.put_captured(read.iter().map(|(path, c)| (path.as_slice(), cache::encode_captured(c))))
        })
    }

    /// Appends a batch with rows derived from it written by `then` in the same durable commit;
    /// with nothing to append, `then` runs (where `note`) in a transaction of its own without
    /// a flush (a cache: a power cut may lose it).
    fn append_deriving(
        &mut self,
        batch: Vec<NewChange>,
        note: bool,
        then: Then,
    ) -> Result<Vec<SyncChange>, JournalError> {
        if batch.is_empty() {
            if note {
                self.store.derived_transaction(|store| then(store))?;
            }
            return Ok(Vec::new());
        }
        let ids = random_ids(batch.len())?;
        self.append_sealed(ids.into_iter().zip(batch).collect(), then)
    }

    /// The newest state in which a session existed — now, or just before it was deleted — and
    /// the seq of its latest deletion when it is deleted now. `None` for the state when it never
    /// held anything. What brings a deleted session back, and what names it in a listing.
    pub fn last_existing(&self, session_id: &str) -> Result<(Option<SessionState>, Option<u64>), StateError> {
        before_deletions(|upto| self.state_at(session_id, upto))
    }

    /// [`Journal::last_existing`] for a reader that wants only a session's top-level fields
    /// (its title, its dates): while the shape a sync kept is still the session's newest state,
    /// they are read from it; otherwise from the nearest snapshots with requests unread, but
    /// for the first one with a message (what a title falls back on). Nothing is rebuilt from
    /// history: `status` asks this of every session, deleted ones included, which pile up. The
    /// session returned may have no requests, or empty ones.
    ///
    /// With `activity`, a session without a `lastMessageDate` (a `.jsonl` one) also gets its
    /// last request read, so that [`crate::session::Session::last_activity`] dates it by that
    /// request rather than by its creation: one record more, for readers that show the date.
    pub fn last_fields(
        &self,
        session_id: &str,
        activity: bool,
    ) -> Result<(Option<crate::session::Session>, Option<u64>), StateError> {
        let undated = |s: &crate::session::Session| activity && s.last_message_date().is_none();
        if let Some(held) = self.held_fields(session_id)? {
            let fields = held.fields.into_iter().filter(|(k, _)| k != REQUESTS_KEY).collect();
            let mut session = crate::session::Session::from_value(serde_json::Value::Object(fields)).ok();
            if let Some(s) = session.as_mut().filter(|s| undated(s))
                && let Some((seq, index)) = held.last_source
                && let Some(request) = self.placed_request(session_id, Source { seq, index })?
            {
                s.requests.push(request);
            }
            return Ok((session, None));
        }
        let (state, deleted) = before_deletions(|upto| self.placed_state_at(session_id, upto))?;
        let Some(mut state) = state else { return Ok((None, deleted)) };
        if !self.fill_title_request(session_id, &mut state)? {
            // A request not where its source says: rebuilt as a replay would rebuild it.
            let (state, deleted) = self.last_existing(session_id)?;
            return Ok((state.map(|st| st.session), deleted));
        }
        if undated(&state.session)
            && let Some(&source) = state.sources.last()
            && let Some(request) = self.placed_request(session_id, source)?
            && let Some(slot) = state.session.requests.last_mut()
        {
            *slot = request;
        }
        Ok((Some(state.session), deleted))
    }

    /// The request a source names, as a [`crate::session::Request`]; `None` when it is not
    /// there to read (the caller keeps what it had).
    fn placed_request(
        &self,
        session_id: &str,
        source: Source,
    ) -> Result<Option<crate::session::Request>, JournalError> {
        Ok(self.request_at(session_id, source)?.and_then(|v| crate::session::Request::from_value(v).ok()))
    }

    /// The seqs of one session's records, ascending, from the per-session index.
    pub fn session_seqs(&self, session_id: &str) -> Result<Vec<u64>, JournalError> {
        self.store.session_seqs(session_id, 0, u64::MAX)
    }

    /// [`Journal::session_seqs`] from `from` on.
    pub fn session_seqs_from(&self, session_id: &str, from: u64) -> Result<Vec<u64>, JournalError> {
        self.store.session_seqs(session_id, from.saturating_sub(1), u64::MAX)
    }

    /// The seqs of a session's newest `n` records before seq `before`, ascending: what a log
    /// of its newest lines, or a graph walking back to a checkpoint, needs of a long session's
    /// index.
    pub fn newest_session_seqs(&self, session_id: &str, before: u64, n: usize) -> Result<Vec<u64>, JournalError> {
        self.store.newest_session_seqs(session_id, before, n)
    }

    /// A session's stored runs of log lines that end at `from` or later, by last seq: derived
    /// data, to be checked against its seqs before use (see [`lines::plan`]).
    pub fn session_line_runs(&self, session_id: &str, from: u64) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        self.store.lines_of(session_id, from)
    }

    /// Every session id the journal knows, sorted.
    pub fn session_ids(&self) -> Result<Vec<String>, JournalError> {
        self.store.session_ids()
    }

    /// The session ids just before and just after `id` in id order (see
    /// [`crate::short_id`]).
    pub fn ids_around(&self, id: &str) -> Result<[Option<String>; 2], JournalError> {
        self.store.ids_around(id)
    }

    /// Resolves a full session id or a unique prefix of one, as git resolves commit ids.
    pub fn resolve_session(&self, prefix: &str) -> Result<String, JournalError> {
        if prefix.is_empty() {
            return Err(JournalError::UnknownSession(prefix.to_owned()));
        }
        let mut matches: Vec<String> = self.store.sessions_where(prefix, 4)?.into_iter().map(|s| s.id).collect();
        if matches.first().is_some_and(|m| m == prefix) {
            return Ok(prefix.to_owned());
        }
        match matches.len() {
            0 => Err(JournalError::UnknownSession(prefix.to_owned())),
            1 => Ok(matches.remove(0)),
            _ => {
                let count = self.store.sessions_where(prefix, usize::MAX)?.len();
                let examples = matches.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
                Err(JournalError::AmbiguousSession { prefix: prefix.to_owned(), count, examples })
            }
        }
    }

    /// Recomputes the hash chain and checks every index against the log.
    pub fn verify(&self) -> Result<VerifyReport, JournalError> {
        verify::verify(&self.store, &crate::progress::Progress::default())
    }

    /// [`Journal::verify`], reporting how far it has got.
    pub fn verify_with(&self, progress: &crate::progress::Progress) -> Result<VerifyReport, JournalError> {
        verify::verify(&self.store, progress)
    }

    /// Packs the journal, as `git gc` packs a repository: runs of a session's consecutive
    /// records are stored compressed together in blocks, every other record stored whole that
    /// compresses is stored compressed alone, and the database is rewritten without the space
    /// that gave up. Snapshots are stored compressed too. Appends store records as they are,
    /// because compressing them on the way in cost an append about half its throughput; a
    /// journal is packed when its user asks. What any command reads is unchanged.
    pub fn pack(&mut self, progress: &crate::progress::Progress) -> Result<Packed, JournalError> {
        let size = || {
            [store::DB_FILE, store::WAL_FILE]
                .iter()
                .map(|f| std::fs::metadata(self.store.dir.join(f)).map_or(0, |m| m.len()))
                .sum::<u64>()
        };
        let bytes_before = size();
        // Before the records, so that the rewrite at the end gives their space back too.
        let captures = self.drop_dead_captures()?;
        let store::Pack { records, blocks, snapshots, lines, shapes } = self.store.pack(progress)?;
        Ok(Packed { records, blocks, snapshots, lines, shapes, captures, bytes_before, bytes_after: size() })
    }

    /// Drops the notes `capture` keeps of files (see [`Journal::captured_unchanged`]) that can
    /// never vouch for a file again: their session has had records since, or has none (a
    /// count only grows). One is kept per path ever captured, so a user who captures exports
    /// or temporary copies would otherwise pile them up for good. A note that does not read
    /// is left: it may be a later chasm's, and it costs that chasm nothing but a read.
    fn drop_dead_captures(&self) -> Result<u64, JournalError> {
        let mut dead = Vec::new();
        for (path, value) in self.store.all_captured()? {
            let Some(note) = cache::decode_captured(&value) else { continue };
            if note.events == 0 || note.events != self.session_event_count(&note.session_id)? {
                dead.push(path);
            }
        }
        if !dead.is_empty() {
            self.store.derived_transaction(|s| s.drop_captured(&dead))?;
        }
        Ok(dead.len() as u64)
    }
}

/// What [`Journal::pack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    /// Records it stored compressed, alone or in blocks.
    pub records: u64,
    /// Blocks it stored: runs of a session's records compressed together.
    pub blocks: u64,
    /// Snapshots it stored compressed.
    pub snapshots: u64,
    /// Runs of log lines it stored compressed.
    pub lines: u64,
    /// Shapes (the sync's cache of what a session held) it stored compressed.
    pub shapes: u64,
    /// Notes `capture` kept of files that could no longer vouch for them, dropped.
    pub captures: u64,
    /// The database's size on disk before and after, its write-ahead log included.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// `n` random (version 4) record ids from one read of the system's random source: a read per
/// record was a system call each, 3% of a batch's append.
fn random_ids(n: usize) -> Result<Vec<uuid::Uuid>, JournalError> {
    let mut bytes = vec![0u8; n * 16];
    getrandom::fill(&mut bytes).map_err(|e| JournalError::Io(format!("cannot read random record ids: {e}")))?;
    Ok(bytes
        .chunks_exact(16)
        .map(|b| uuid::Builder::from_random_bytes(b.try_into().expect("16 bytes")).into_uuid())
        .collect())
}

/// What [`Journal::append_noting`] records for a session: its fingerprint and what it
/// held, each `None` to forget it.
pub type InStep = (String, Option<Fingerprint>, Option<Held>);

/// Work done inside an append's transaction once its records are in.
type Then<'a> = &'a mut dyn FnMut(&Store) -> Result<(), JournalError>;

/// Records each session's fingerprint and what it held, the first stamped with its record
/// count and the second with its newest seq as the store has them now (in the caller's
/// transaction).
fn note_in_step(store: &Store, in_step: &mut [InStep]) -> Result<(), JournalError> {
    for (id, fp, held) in in_step.iter_mut() {
        if let Some(fp) = fp {
            fp.events = store.session(id)?.map_or(0, |s| s.events);
        }
        if let Some(held) = held {
            held.last_seq = store.session_last_seq(id)?;
        }
    }
    store.put_fingerprints(in_step.iter().map(|(id, fp, held)| {
        (id.as_str(), fp.as_ref().map(cache::encode_fingerprint), held.as_ref().map(cache::shaped))
    }))
}

/// Batches at least this large are sealed on a second thread (see `append_sealed`); for fewer
/// records starting it costs more than it saves.
const PIPELINE_MIN: usize = 64;

/// How many sealed records may wait to be stored: enough that neither thread waits on the
/// other's jitter, few enough to stay in the cache.
const PIPELINE_DEPTH: usize = 32;

/// Changes becoming records that continue the chain after `seq` and `prev`: each is given its
/// seq, serialized and hashed as it is taken.
struct Sealed {
    batch: std::vec::IntoIter<(uuid::Uuid, NewChange)>,
    seq: u64,
    prev: [u8; 32],
}

impl Iterator for Sealed {
    type Item = (SyncChange, Vec<u8>);

    fn next(&mut self) -> Option<Self::Item> {
        let (id, change) = self.batch.next()?;
        self.seq += 1;
        let (record, bytes) = SyncChange::seal_stored(id, change, self.seq, self.prev);
        self.prev = record.hash;
        Some((record, bytes))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.batch.size_hint()
    }
}

impl ExactSizeIterator for Sealed {}

fn decode(seq: u64, bytes: &[u8]) -> Result<SyncChange, JournalError> {
    SyncChange::decode(bytes).map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })
}

/// Creates a directory and fsyncs its parent, so the new entry survives a power cut.
fn create_dir_durably(dir: &Path) -> Result<(), JournalError> {
    std::fs::create_dir_all(dir).map_err(|e| JournalError::Io(format!("cannot create {}: {e}", dir.display())))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        store::sync_dir(parent);
    }
    Ok(())
}

/// Every record in seq order, read a chunk at a time (see [`Journal::iter`]), or what `read`
/// takes from each ([`Journal::record_ids`]).
pub struct Records<'a, T = SyncChange> {
    store: &'a Store,
    /// The next seq to read, and the last.
    next: u64,
    last: u64,
    /// Read ahead, reversed: `pop` yields the lowest.
    ahead: Vec<(u64, store::Shared)>,
    read: fn(u64, &[u8]) -> Result<T, JournalError>,
}

/// Records read from the log per step of [`Records`].
const CHUNK: u64 = 512;

impl<T> Iterator for Records<'_, T> {
    type Item = Result<T, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.ahead.is_empty() && self.next <= self.last {
            let hi = self.last.min(self.next.saturating_add(CHUNK - 1));
            match self.store.shared_between(self.next, hi) {
                Ok(rows) => self.ahead = rows.into_iter().rev().collect(),
                Err(e) => {
                    self.next = self.last + 1;
                    return Some(Err(e));
                }
            }
            self.next = hi + 1;
        }
        self.ahead.pop().map(|(seq, bytes)| (self.read)(seq, &bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::{Value, json};

    /// The walk back over deletions stops at a session never created (records of its fields
    /// alone, as an import of part of a history leaves): asked once, not once per record.
    #[test]
    fn the_walk_back_over_deletions_stops_where_nothing_was_created() {
        let asked = std::cell::Cell::new(Vec::new());
        let at = |upto: u64, exists: bool, deleted_seq: Option<u64>| {
            asked.set([asked.take(), vec![upto]].concat());
            Ok(Some(SessionState { exists, deleted_seq, last_seq: upto.min(1000), ..SessionState::default() }))
        };
        let (state, deleted) = before_deletions(|upto| at(upto, false, None)).unwrap();
        assert!(state.is_none());
        assert_eq!((deleted, asked.take()), (Some(1000), vec![u64::MAX]));
        // Deleted at 50 and never created before it: the seq before the deletion is asked too.
        let (state, deleted) = before_deletions(|upto| at(upto, false, (upto > 50).then_some(50))).unwrap();
        assert!(state.is_none());
        assert_eq!((deleted, asked.take()), (Some(50), vec![u64::MAX, 49]));
        // Deleted at 50 and there before it.
        let (state, deleted) = before_deletions(|upto| at(upto, upto < 50, (upto > 50).then_some(50))).unwrap();
        assert_eq!((state.map(|s| s.last_seq), deleted, asked.take()), (Some(49), Some(50), vec![u64::MAX, 49]));
    }

    pub(crate) fn change(session: &str, entity: &str) -> NewChange {
        NewChange {
            session_id: session.into(),
            change_type: ChangeType::Create,
            entity_type: EntityType::Message,
            entity_id: entity.into(),
            timestamp: Utc::now(),
            origin: Origin::Remote,
            provider: "vscode".into(),
            payload: json!({"n": entity}),
        }
    }

    #[test]
    fn append_assigns_dense_seqs_and_chains_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j"), OpenMode::Create).unwrap();
        let a = j.append(vec![change("s1", "a"), change("s2", "b")]).unwrap();
        let b = j.append(vec![change("s1", "c")]).unwrap();
        assert_eq!(a.iter().chain(&b).map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(a[0].prev_hash, GENESIS_HASH);
        assert_eq!(a[1].prev_hash, a[0].hash);
        assert_eq!(b[0].prev_hash, a[1].hash);
        assert_eq!(j.session_seqs("s1").unwrap(), [1, 3]);
        assert_eq!(j.session_ids().unwrap(), ["s1", "s2"]);
        assert!(j.verify().unwrap().problems.is_empty());
    }

    #[test]
    fn appends_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let first = {
            let mut j = Journal::open(&path, OpenMode::Create).unwrap();
            j.append(vec![change("s1", "a")]).unwrap()
        };
        let mut j = Journal::open(&path, OpenMode::Existing).unwrap();
        assert_eq!(j.last_seq(), 1);
        assert_eq!(j.get(1).unwrap().unwrap(), first[0]);
        let next = j.append(vec![change("s1", "b")]).unwrap();
        assert_eq!(next[0].prev_hash, first[0].hash);
    }

    /// A command that only reads leaves the journal's files as they were, even under a
    /// directory name an SQLite URI would misread.
    #[test]
    fn reading_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a j?x=1#b%41 c");
        let first = Journal::open(&path, OpenMode::Create).unwrap().append(vec![change("s1", "a")]).unwrap();
        let files = || {
            let mut names: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.file_name(), e.metadata().unwrap().modified().unwrap(), e.metadata().unwrap().len())
                })
                .collect();
            names.sort();
            names
        };
        let before = files();
        let j = Journal::open(&path, OpenMode::Read).unwrap();
        assert!(!path.join("journal.sqlite-wal").exists(), "a read-write open creates its log");
        assert_eq!((j.last_seq(), j.get(1).unwrap().unwrap()), (1, first[0].clone()));
        assert_eq!(j.head_hash().unwrap(), first[0].hash);
        drop(j);
        assert_eq!(files(), before);
        assert!(matches!(Journal::open(&dir.path().join("none"), OpenMode::Read), Err(JournalError::NotFound(_))));
    }

    /// What a writer that stopped before closing leaves (its write-ahead log, holding its last
    /// commits) is read by a reader too: the open that recovers the log serves it.
    #[test]
    fn reading_sees_commits_still_in_the_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let (live, left) = (dir.path().join("live"), dir.path().join("left"));
        Journal::open(&live, OpenMode::Create).unwrap().append(vec![change("s1", "a")]).unwrap();
        let mut j = Journal::open(&live, OpenMode::Existing).unwrap();
        let appended = j.append(vec![change("s1", "b"), change("s2", "c")]).unwrap();
        // The files as a crash would leave them: the log still holds the commits.
        std::fs::create_dir(&left).unwrap();
        for name in [store::DB_FILE, "journal.sqlite-wal"] {
            std::fs::copy(live.join(name), left.join(name)).unwrap();
        }
        assert!(std::fs::metadata(left.join("journal.sqlite-wal")).unwrap().len() > 0);
        drop(j);
        // Recovering the log is a write: not while another reader reads.
        let other_reader = std::fs::File::create(left.join(store::LOCK_FILE)).unwrap();
        other_reader.lock_shared().unwrap();
        assert!(matches!(Journal::open(&left, OpenMode::Read), Err(JournalError::Locked(_))));
        drop(other_reader);
        let j = Journal::open(&left, OpenMode::Read).unwrap();
        assert_eq!(j.last_seq(), 3);
        assert_eq!(j.get(3).unwrap().unwrap(), appended[1]);
    }

    #[test]
    fn prefixes_resolve_like_git() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j"), OpenMode::Create).unwrap();
        j.append(vec![change("abc1", "a"), change("abd2", "a"), change("ab", "a")]).unwrap();
        assert_eq!(j.resolve_session("abc").unwrap(), "abc1");
        assert_eq!(j.resolve_session("ab").unwrap(), "ab");
        assert!(matches!(j.resolve_session("a"), Err(JournalError::AmbiguousSession { count: 3, .. })));
        assert!(matches!(j.resolve_session("zz"), Err(JournalError::UnknownSession(_))));
    }

    #[test]
    fn refuses_to_take_over_a_non_empty_directory_or_open_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        assert!(matches!(Journal::open(dir.path(), OpenMode::Create), Err(JournalError::NotAJournal(_))));
        assert!(matches!(Journal::open(&dir.path().join("none"), OpenMode::Existing), Err(JournalError::NotFound(_))));
        // Only a lock file (an open that failed before creating the database): still empty.
        let left = dir.path().join("left");
        std::fs::create_dir(&left).unwrap();
        std::fs::write(left.join(store::LOCK_FILE), "").unwrap();
        assert!(matches!(Journal::open(&left, OpenMode::Existing), Err(JournalError::NotFound(_))));
        assert!(Journal::open(&left, OpenMode::Create).is_ok());
    }

    /// `status` names every session by its last fields, deleted ones included: read without
    /// rebuilding the session, they say what the rebuilt session says — title (the first
    /// request with a message, when there is no custom title), dates, and when it was deleted.
    #[test]
    fn last_fields_are_those_of_the_last_existing_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j"), OpenMode::Create).unwrap();
        let session = json!({"creationDate": 5, "requests": []});
        let mut batch = vec![NewChange { entity_type: EntityType::Session, payload: session, ..change("s", "s") }];
        for i in 0..100u64 {
            let (k, change_type) = (i % 3, if i < 3 { ChangeType::Create } else { ChangeType::Update });
            // The first request has no message: the title comes from the second.
            let message = if k == 0 { json!(null) } else { json!({"text": format!("question {k} asked at length")}) };
            let request = json!({"requestId": format!("r{k}"), "message": message, "response": [{"value": i}]});
            batch.push(NewChange {
                change_type,
                payload: json!({"index": k, "request": request}),
                ..change("s", &format!("r{k}"))
            });
        }
        let date = json!({"value": 77, "position": 1});
        batch.push(NewChange { entity_type: EntityType::Metadata, payload: date, ..change("s", "lastMessageDate") });
        j.append(batch).unwrap();
        let compare = |j: &Journal| {
            let (state, deleted) = j.last_existing("s").unwrap();
            let full = state.unwrap().session;
            let (fields, fields_deleted) = j.last_fields("s", false).unwrap();
            let fields = fields.unwrap();
            assert_eq!(fields_deleted, deleted);
            assert_eq!(fields.display_title(), full.display_title());
            assert_eq!(fields.display_title().as_deref(), Some("question 1 asked at length"));
            assert_eq!((fields.last_message_date(), fields.creation_date()), (Some(77), Some(5)));
            deleted
        };
        assert_eq!(compare(&j), None);
        let gone = NewChange {
            change_type: ChangeType::Delete,
            entity_type: EntityType::Session,
            payload: Value::Null,
            ..change("s", "s")
        };
        let seq = j.append(vec![gone]).unwrap()[0].seq;
        assert!(!j.store.snapshots_of("s").unwrap().is_empty(), "read from a snapshot");
        assert_eq!(compare(&j), Some(seq));
    }

    /// A `.jsonl` session has no `lastMessageDate`: asked for its activity, `last_fields`
    /// reads its last request, which dates it as the rebuilt session does.
    #[test]
    fn last_fields_with_activity_date_an_undated_session_by_its_last_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j"), OpenMode::Create).unwrap();
        let session = json!({"creationDate": 5, "requests": []});
        let mut batch = vec![NewChange { entity_type: EntityType::Session, payload: session, ..change("s", "s") }];
        for i in 0..70i64 {
            let request = json!({"requestId": format!("r{i}"), "timestamp": 1000 + i, "message": {"text": "q"}});
            batch.push(NewChange { payload: json!({"index": i, "request": request}), ..change("s", &format!("r{i}")) });
        }
        j.append(batch).unwrap();
        assert!(!j.store.snapshots_of("s").unwrap().is_empty(), "read from a snapshot");
        let full = j.last_existing("s").unwrap().0.unwrap().session;
        assert_eq!(full.last_activity(), Some(1069));
        let (fields, _) = j.last_fields("s", true).unwrap();
        assert_eq!(fields.unwrap().last_activity(), Some(1069));
        // Without it, no request past the title's (the first with a message) is read.
        let (fields, _) = j.last_fields("s", false).unwrap();
        assert_eq!(fields.unwrap().last_activity(), Some(1000));
    }

    #[test]
    fn a_second_open_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let _j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        assert!(matches!(Journal::open(dir.path(), OpenMode::Existing), Err(JournalError::Locked(_))));
        assert!(matches!(Journal::open(dir.path(), OpenMode::Read), Err(JournalError::Locked(_))));
    }

    /// A command that meets another chasm holding the journal briefly (a background sync
    /// round) waits for it rather than failing.
    #[test]
    fn a_lock_held_briefly_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        Journal::open(dir.path(), OpenMode::Create).unwrap();
        let held = store::lock(dir.path()).unwrap();
        let round = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        Journal::open(dir.path(), OpenMode::Existing).unwrap();
        round.join().unwrap();
    }

    /// Commands that only read run beside each other; a writer is refused while any of them
    /// reads (and they while it writes).
    #[test]
    fn readers_share_the_journal_and_writers_have_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        Journal::open(dir.path(), OpenMode::Create).unwrap().append(vec![change("s1", "a")]).unwrap();
        let first = Journal::open(dir.path(), OpenMode::Read).unwrap();
        let second = Journal::open(dir.path(), OpenMode::Read).unwrap();
        assert_eq!((first.last_seq(), second.last_seq()), (1, 1));
        assert!(matches!(Journal::open(dir.path(), OpenMode::Existing), Err(JournalError::Locked(_))));
        drop(first);
        assert!(matches!(Journal::open(dir.path(), OpenMode::Existing), Err(JournalError::Locked(_))));
        drop(second);
        Journal::open(dir.path(), OpenMode::Existing).unwrap().append(vec![change("s1", "b")]).unwrap();
    }

    /// A session of `n` events: 20 requests created, then streamed updates to them.
    fn long_session(j: &mut Journal, n: usize) -> Vec<SyncChange> {
        let mut all = Vec::new();
        let mut batch =
            vec![NewChange { entity_type: EntityType::Session, payload: json!({"requests": []}), ..change("s", "s") }];
        for i in 1..n {
            let id = format!("r{}", i % 20);
            let change_type = if i <= 20 { ChangeType::Create } else { ChangeType::Update };
            let payload = json!({"index": i % 20, "request": {"requestId": id, "response": [{"value": i}]}});
            batch.push(NewChange { change_type, payload, ..change("s", &id) });
            if batch.len() == 500 || i == n - 1 {
                all.extend(j.append(std::mem::take(&mut batch)).unwrap());
                j.append(vec![change("other", "x")]).unwrap();
            }
        }
        all
    }

    #[test]
    fn replay_of_any_point_reads_fewer_events_than_the_snapshot_interval() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let events = long_session(&mut j, 10_000);
        assert_eq!(events.len(), 10_000);
        for (i, e) in events.iter().enumerate().step_by(37).chain(events.iter().enumerate().rev().take(3)) {
            let state = j.state_at("s", e.seq).unwrap().unwrap();
            assert!(state.events_read < SNAPSHOT_INTERVAL, "{} events read at seq {}", state.events_read, e.seq);
            if i % 1000 < 37 {
                let full = crate::fold::fold(&events[..=i]).unwrap().unwrap();
                assert_eq!((&state.session, &state.ids, state.last_seq), (&full.session, &full.ids, full.last_seq));
            }
        }
        assert!(j.state_at("s", 0).unwrap().is_none());
        assert!(j.verify().unwrap().snapshots_rebuilt == 0);
    }

    /// The text replay prints is the state replay would otherwise rebuild, at every point of a
    /// history with snapshots, whole-session events, deletions and metadata.
    #[test]
    fn a_session_as_text_is_the_state_at_every_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let whole = |change_type, n: usize| NewChange {
            change_type,
            entity_type: EntityType::Session,
            payload: json!({"sessionId": "s", "title": n, "requests": [
                {"requestId": "r0", "response": [{"value": n}]}, {"requestId": "w", "x": {"y": []}}
            ], "z": null}),
            ..change("s", "s")
        };
        let mut batch = vec![whole(ChangeType::Create, 0)];
        for i in 1..300usize {
            let id = format!("r{}", i % 7);
            batch.push(match i % 23 {
                _ if i == 120 => whole(ChangeType::Update, i),
                _ if i == 200 => NewChange { change_type: ChangeType::Delete, payload: Value::Null, ..whole(ChangeType::Delete, i) },
                _ if i == 201 => whole(ChangeType::Create, i),
                5 => NewChange { change_type: ChangeType::Delete, entity_type: EntityType::Message, payload: Value::Null, ..change("s", &id) },
                7 => NewChange {
                    change_type: ChangeType::Update,
                    entity_type: EntityType::Metadata,
                    payload: json!({"value": format!("t{i}"), "position": 0}),
                    ..change("s", "title")
                },
                _ => NewChange {
                    change_type: ChangeType::Update,
                    payload: json!({"index": i % 5, "request": {"requestId": id, "response": [{"value": i, "s": "a\"b\u{e9}\n"}]}}),
                    ..change("s", &id)
                },
            });
            if i % 40 == 0 {
                j.append(std::mem::take(&mut batch)).unwrap();
                j.append(vec![change("other", "x")]).unwrap();
            }
        }
        j.append(batch).unwrap();
        assert!(j.store.snapshots_of("s").unwrap().len() >= 4);
        // The snapshots' requests are copied from their records, not rebuilt.
        for (seq, _) in j.store.snapshots_of("s").unwrap() {
            let snapshot = j.store.unfilled_snapshot_before("s", seq).unwrap().unwrap();
            assert!(j.store.request_texts("s", &snapshot.sources).unwrap().is_some(), "seq {seq}");
        }
        for seq in j.session_seqs("s").unwrap() {
            let state = j.state_at("s", seq).unwrap().unwrap();
            let text = j.session_text_at("s", seq).unwrap().unwrap();
            assert_eq!(
                (text.exists, text.deleted_seq, text.last_seq),
                (state.exists, state.deleted_seq, state.last_seq)
            );
            if state.exists {
                let value: Value =
                    serde_json::from_slice(&text.pieces.iter().flat_map(|p| p.to_vec()).collect::<Vec<u8>>()).unwrap();
                assert_eq!(value, state.session.to_value(), "seq {seq}");
                let mut laid_out = Vec::new();
                crate::pretty::pretty_to(&mut laid_out, text.pieces.iter().map(|p| &**p)).unwrap();
                assert_eq!(
                    String::from_utf8(laid_out).unwrap(),
                    serde_json::to_string_pretty(&state.session.to_value()).unwrap(),
                    "seq {seq}"
                );
            }
        }
        assert!(j.session_text_at("s", 0).unwrap().is_none());
    }

    #[test]
    fn the_tail_since_the_last_checkpoint_gives_the_views_of_the_whole_history() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let mut events = long_session(&mut j, 300);
        let merge = |local: u64, remote: u64| NewChange {
            change_type: ChangeType::Merge,
            entity_type: EntityType::Session,
            origin: Origin::Local,
            payload: crate::fold::Checkpoint::payload(local, remote, "h", Some("/p/s.json")),
            ..change("s", "s")
        };
        let local = |entity: &str, n: u64| NewChange {
            change_type: ChangeType::Update,
            origin: Origin::Local,
            payload: json!({"index": 0, "request": {"requestId": entity, "response": [{"value": n}]}}),
            ..change("s", entity)
        };
        // Never checkpointed: the tail is the whole history, split before the first local change.
        let whole = |j: &Journal| crate::fold::views(&j.session_events("s").unwrap()).unwrap();
        let check = |j: &Journal| {
            let (from_tail, from_all) = (crate::fold::views_of(j.tail("s").unwrap()).unwrap(), whole(j));
            assert_eq!(from_tail.checkpoint, from_all.checkpoint);
            for (a, b) in [
                (&from_tail.base, &from_all.base),
                (&from_tail.local, &from_all.local),
                (&from_tail.remote, &from_all.remote),
                (&from_tail.full, &from_all.full),
            ] {
                assert_eq!(a.as_ref().map(|s| (&s.session, &s.ids)), b.as_ref().map(|s| (&s.session, &s.ids)));
            }
            assert_eq!(from_tail.local_changes, from_all.local_changes);
            assert_eq!(from_tail.remote_changes, from_all.remote_changes);
            let tail = j.tail("s").unwrap();
            let all = j.session_events("s").unwrap();
            for origin in [Origin::Local, Origin::Remote] {
                assert_eq!(tail.last_seq(origin), crate::fold::newest_change(&all, origin), "{origin:?}");
            }
        };
        check(&j);
        events.extend(j.append(vec![local("r1", 1), local("r2", 2)]).unwrap());
        // A checkpoint names the newest change of each side, as a sync writes it.
        let last = events.last().unwrap().seq;
        let remote = crate::fold::newest_change(&j.session_events("s").unwrap(), Origin::Remote);
        j.append(vec![local("r3", 3), merge(last + 1, remote)]).unwrap();
        check(&j);
        // Both sides move on after the checkpoint, past a snapshot.
        long_session(&mut j, 130);
        j.append(vec![local("r4", 4)]).unwrap();
        check(&j);
        // And the tail is read from a snapshot, not folded from the first event: its base cost
        // fewer events than a snapshot interval, and only the events since follow it.
        let tail = j.tail("s").unwrap();
        assert!(tail.base.as_ref().unwrap().events_read < SNAPSHOT_INTERVAL);
        let merge_seq =
            j.session_events("s").unwrap().iter().rev().find(|e| e.change_type == ChangeType::Merge).unwrap().seq;
        assert_eq!(tail.checkpoint.as_ref().map(|c| c.seq), Some(merge_seq));
        assert!(tail.after.iter().all(|e| e.seq > merge_seq) && tail.after.len() < 200, "{}", tail.after.len());
    }

    /// A session never synced has its merge base just before its first local change: its
    /// tail is what splitting the whole history there gives, read from a snapshot and its runs
    /// of log lines rather than by folding every event — and, where the runs are gone, from
    /// its records' fields.
    #[test]
    fn a_never_synced_sessions_tail_is_its_history_split_at_the_first_local_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        long_session(&mut j, 200);
        let same_as_whole = |j: &Journal| {
            let tail = j.tail("s").unwrap();
            let whole = Tail::of(&j.session_events("s").unwrap()).unwrap();
            let state = |s: &Option<SessionState>| {
                s.as_ref().map(|s| {
                    (s.session.to_value(), s.ids.clone(), s.sources.clone(), s.exists, s.tags.clone(), s.last_seq)
                })
            };
            assert_eq!(state(&tail.base), state(&whole.base));
            let marks = |s: &Option<SessionState>| s.as_ref().map(|s| (s.deleted_seq, s.last_checkpoint));
            assert_eq!(marks(&tail.base), marks(&whole.base));
            assert!(tail.checkpoint.is_none() && whole.checkpoint.is_none());
            assert_eq!(tail.after, whole.after);
            assert_eq!(tail.before, whole.before);
            tail
        };
        // Only ever seen in VS Code: all of it is the base, from the newest snapshot.
        let tail = same_as_whole(&j);
        assert!(tail.after.is_empty() && tail.base.as_ref().unwrap().events_read < SNAPSHOT_INTERVAL);
        // A change through chasm, then VS Code's, past more snapshots: the base is the state
        // just before it.
        let tag =
            NewChange { entity_type: EntityType::Tag, origin: Origin::Local, payload: Value::Null, ..change("s", "t") };
        let first_local = j.append(vec![tag]).unwrap()[0].seq;
        long_session(&mut j, 150);
        let tail = same_as_whole(&j);
        assert_eq!(tail.after.first().map(|e| e.seq), Some(first_local));
        assert!(tail.base.as_ref().unwrap().events_read < SNAPSHOT_INTERVAL);
        // Without the runs of lines (derived data: gone, or from before they were kept).
        j.store.execute("DELETE FROM lines").unwrap();
        same_as_whole(&j);
    }

    /// A sync's fingerprints go in with its batch, in its one commit, stamped with the counts
    /// the batch leaves; a batch refused takes them with it. With nothing to append they are
    /// noted on their own, stamped with the counts as they are.
    #[test]
    fn fingerprints_noted_with_a_batch_share_its_commit_and_its_fate() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        j.append(vec![change("s", "a")]).unwrap();
        let noted = |token: &str| Fingerprint { token: token.into(), ..Fingerprint::default() };
        let held = Held {
            last_seq: 0,
            local_seq: 0,
            remote_seq: 0,
            shape: crate::shape::Shape { fields: serde_json::Map::new(), requests: Vec::new() },
            sources: Vec::new(),
            log: None,
        };
        let mut in_step = vec![("s".to_owned(), Some(noted("t1")), Some(held))];

        let refused = vec![change("s", "b"), NewChange { session_id: String::new(), ..change("s", "bad") }];
        assert!(matches!(j.append_noting(refused, &mut in_step), Err(JournalError::InvalidChange(_))));
        assert!(j.fingerprints_in_step().unwrap().is_empty());
        assert!(j.store.shape("s").unwrap().is_none());

        let commits = j.store.commits();
        j.append_noting(vec![change("s", "b"), change("t", "c"), change("s", "d")], &mut in_step).unwrap();
        assert_eq!(j.store.commits(), commits + 1, "one commit for the records and the fingerprints");
        assert_eq!(j.fingerprints_in_step().unwrap()["s"], Fingerprint { events: 3, ..noted("t1") });
        assert_eq!(j.held("s").unwrap().unwrap().last_seq, 4);

        let mut in_step = vec![("s".to_owned(), Some(noted("t2")), None)];
        j.append_noting(Vec::new(), &mut in_step).unwrap();
        assert_eq!(j.fingerprints_in_step().unwrap()["s"], Fingerprint { events: 3, ..noted("t2") });
        assert!(j.held("s").unwrap().is_none(), "None forgets what the session held");
    }

    /// What a capture read of the file at `path`, holding session `id`, with the token "t1".
    fn read(path: &str, id: &str) -> (Vec<u8>, Captured) {
        (path.as_bytes().to_vec(), Captured { token: "t1".into(), session_id: id.into(), events: 0 })
    }

    /// What a capture read goes in with its batch, in its one commit, stamped with the counts
    /// the batch leaves, and holds while the file's token and its session's count are the
    /// same; a batch refused takes the notes with it.
    #[test]
    fn a_captures_notes_share_its_commit_and_hold_until_the_session_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let refused = vec![change("s", "a"), NewChange { session_id: String::new(), ..change("s", "bad") }];
        assert!(matches!(j.append_capturing(refused, vec![read("/a", "s")]), Err(JournalError::InvalidChange(_))));
        assert_eq!(j.store.captured(b"/a").unwrap(), None);

        let commits = j.store.commits();
        j.append_capturing(vec![change("s", "a"), change("t", "b")], vec![read("/a", "s"), read("/b", "t")]).unwrap();
        assert_eq!(j.store.commits(), commits + 1, "one commit for the records and the notes");
        assert_eq!(j.captured_unchanged(b"/a", "t1").unwrap().as_deref(), Some("s"));
        assert_eq!(j.captured_unchanged(b"/b", "t1").unwrap().as_deref(), Some("t"));
        assert_eq!(j.captured_unchanged(b"/a", "t2").unwrap(), None, "another token: the file changed");
        assert_eq!(j.captured_unchanged(b"/c", "t1").unwrap(), None);

        j.append(vec![change("s", "c")]).unwrap();
        assert_eq!(j.captured_unchanged(b"/a", "t1").unwrap(), None, "recorded for since");
        assert_eq!(j.captured_unchanged(b"/b", "t1").unwrap().as_deref(), Some("t"));
        // With nothing to append, noted on their own, with the counts as they are.
        j.append_capturing(Vec::new(), vec![read("/a", "s")]).unwrap();
        assert_eq!(j.captured_unchanged(b"/a", "t1").unwrap().as_deref(), Some("s"));
        // A note for a session with no records vouches for nothing.
        j.append_capturing(Vec::new(), vec![read("/d", "none")]).unwrap();
        assert_eq!(j.captured_unchanged(b"/d", "t1").unwrap(), None);
    }

    /// gc drops the notes that can never match again (the session has had records since, or
    /// has none) and keeps the ones that still spare a read, and one it cannot read.
    #[test]
    fn gc_drops_the_capture_notes_that_can_no_longer_match() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        j.append_capturing(vec![change("s", "a"), change("t", "b")], vec![read("/a", "s"), read("/b", "t")]).unwrap();
        j.append_capturing(Vec::new(), vec![read("/d", "none")]).unwrap();
        j.append(vec![change("s", "c")]).unwrap();
        j.store.derived_transaction(|s| s.put_captured([(&b"/e"[..], b"\x07not a note".to_vec())])).unwrap();

        let packed = j.pack(&crate::progress::Progress::default()).unwrap();
        assert_eq!(packed.captures, 2, "/a (recorded for since) and /d (no records)");
        let paths: Vec<Vec<u8>> = j.store.all_captured().unwrap().into_iter().map(|(path, _)| path).collect();
        assert_eq!(paths, [b"/b".to_vec(), b"/e".to_vec()]);
        assert_eq!(j.captured_unchanged(b"/b", "t1").unwrap().as_deref(), Some("t"), "still spares a read");
        assert_eq!(j.pack(&crate::progress::Progress::default()).unwrap().captures, 0);
    }

    /// Each session a batch touches has its own count stored, batch after batch, as a new
    /// handle reads it from the journal (and `verify` finds every count right).
    #[test]
    fn each_sessions_count_is_stored_with_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let batch = |sizes: &[(&str, usize)]| {
            sizes.iter().flat_map(|&(s, n)| (0..n).map(move |i| change(s, &format!("r{i}")))).collect::<Vec<_>>()
        };
        j.append(batch(&[("a", 3), ("b", 1)])).unwrap();
        j.append(batch(&[("b", 70), ("c", 2), ("a", 1)])).unwrap();
        drop(j);
        let j = Journal::open(dir.path(), OpenMode::Existing).unwrap();
        let counts: Vec<u64> = ["a", "b", "c", "d"].iter().map(|s| j.session_event_count(s).unwrap()).collect();
        assert_eq!(counts, [4, 71, 2, 0]);
        let report = j.verify().unwrap();
        assert!(report.problems.is_empty(), "{report:?}");
    }

    #[test]
    fn a_batch_refused_part_way_leaves_no_trace_in_counts_or_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let request = |i: usize| NewChange {
            payload: json!({"index": i, "request": {"requestId": format!("r{i}")}}),
            ..change("s", &format!("r{i}"))
        };
        let batch = |from: usize, n: usize| (from..from + n).map(request).collect::<Vec<_>>();
        j.append(batch(0, 40)).unwrap();
        // 20 or 100 good records (the 100 reach the session's 64th and 128th: snapshots are
        // taken inside the transaction), then one with an empty session id: the whole batch is
        // refused, sealed in place or on a second thread.
        for n in [20, 100] {
            let mut refused = batch(40, n);
            refused.push(NewChange { session_id: String::new(), ..change("s", "bad") });
            assert!(matches!(j.append(refused), Err(JournalError::InvalidChange(_))));
            assert_eq!(j.session_event_count("s").unwrap(), 40);
            assert_eq!(j.store.snapshots_of("s").unwrap().len(), 0);
        }
        // What the store counted inside the refused batches is gone with them: the next
        // appends take their snapshots at the session's real 64th and 128th records.
        j.append(batch(40, 30)).unwrap();
        j.append(batch(70, 100)).unwrap();
        assert_eq!(j.session_event_count("s").unwrap(), 170);
        assert_eq!(j.store.snapshots_of("s").unwrap().len(), 2);
        let report = j.verify().unwrap();
        assert!(report.problems.is_empty() && report.snapshots_rebuilt == 0, "{report:?}");
    }

    #[test]
    fn a_large_batch_sealed_on_a_second_thread_stores_what_small_batches_do() {
        // Streamed updates and new requests of three sessions (two snapshots due for each
        // within the one batch), with ids and times fixed so that two journals can be compared
        // byte for byte.
        let records: Vec<SyncChange> = (0..450)
            .map(|i| {
                let (session, request) = (format!("s{}", i % 3), format!("r{}", i / 30));
                let payload =
                    json!({"index": i / 30, "request": {"requestId": request, "response": [{"value": "x".repeat(i)}]}});
                SyncChange::seal_as(
                    uuid::Uuid::from_u128(i as u128 + 1),
                    NewChange { change_type: ChangeType::Update, payload, ..change(&session, &request) },
                    0,
                    GENESIS_HASH,
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut whole = Journal::open(&dir.path().join("whole"), OpenMode::Create).unwrap();
        let mut parts = Journal::open(&dir.path().join("parts"), OpenMode::Create).unwrap();
        assert!(records.len() >= PIPELINE_MIN && 50 < PIPELINE_MIN);
        let appended = whole.append_foreign(records.clone()).unwrap();
        for part in records.chunks(50) {
            parts.append_foreign(part.to_vec()).unwrap();
        }
        assert_eq!(appended.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=450).collect::<Vec<u64>>());
        assert_eq!((whole.last_seq, whole.head_hash().unwrap()), (parts.last_seq, parts.head_hash().unwrap()));
        for seq in 1..=450 {
            assert_eq!(whole.store.get(seq).unwrap(), parts.store.get(seq).unwrap(), "record {seq}");
        }
        for session in ["s0", "s1", "s2"] {
            assert_eq!(whole.store.snapshots_of(session).unwrap().len(), 2);
            assert_eq!(whole.store.snapshots_of(session).unwrap(), parts.store.snapshots_of(session).unwrap());
            assert_eq!(whole.state_at(session, u64::MAX).unwrap(), parts.state_at(session, u64::MAX).unwrap());
        }
        // And each snapshot is what a full fold of the session gives.
        let report = whole.verify().unwrap();
        assert!(report.problems.is_empty() && report.snapshots_rebuilt == 0, "{report:?}");
    }

    #[test]
    fn snapshots_due_across_appends_and_a_reopen_match_a_full_fold() {
        let dir = tempfile::tempdir().unwrap();
        let one = |j: &mut Journal, i: usize| {
            let payload =
                json!({"index": i % 5, "request": {"requestId": format!("r{}", i % 5), "response": [{"value": i}]}});
            j.append(vec![NewChange {
                change_type: ChangeType::Update,
                payload,
                ..change("s", &format!("r{}", i % 5))
            }])
            .unwrap();
        };
        // One record per append, so each snapshot folds records of earlier appends, read back
        // from the log, across a reopen part-way.
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        for i in 0..100 {
            one(&mut j, i);
        }
        drop(j);
        let mut j = Journal::open(dir.path(), OpenMode::Existing).unwrap();
        for i in 100..300 {
            one(&mut j, i);
        }
        assert_eq!(j.store.snapshots_of("s").unwrap().len(), 4);
        assert_eq!(j.verify().unwrap().snapshots_rebuilt, 0);
    }

    #[test]
    fn a_damaged_or_missing_snapshot_is_passed_over_and_rebuilt_by_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let events = long_session(&mut j, 300);
        let at = events[250].seq;
        let good = j.state_at("s", at).unwrap().unwrap();
        let snapshots = j.store.snapshots_of("s").unwrap();
        assert_eq!(snapshots.len(), 4);
        // Damage the snapshot the replay would use (its checksum no longer holds) and drop the
        // one before it.
        let (seq, mut v) = snapshots[2].clone();
        let n = v.len();
        v[n - 3] ^= 0x20;
        j.store.put_snapshot("s", seq, &v).unwrap();
        j.store.remove_snapshot("s", snapshots[1].0).unwrap();
        let state = j.state_at("s", at).unwrap().unwrap();
        assert_eq!((&state.session, state.last_seq), (&good.session, good.last_seq));
        assert!(state.events_read >= SNAPSHOT_INTERVAL, "the damaged snapshot was not used");
        let report = j.verify().unwrap();
        assert!(report.problems.is_empty());
        // The damaged and the dropped one, and the one after, stored as a delta of the damaged.
        assert_eq!(report.snapshots_rebuilt, 3);
        assert!(j.state_at("s", at).unwrap().unwrap().events_read < SNAPSHOT_INTERVAL);
        assert_eq!(j.verify().unwrap().snapshots_rebuilt, 0);
    }

    /// A snapshot whose own checksum holds but whose record hash is not that of the record at
    /// its seq (read from the stored row, a delta here) is passed over, as is one whose seq is
    /// filed under another session.
    #[test]
    fn a_snapshot_naming_another_record_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let events = streamed_session(&mut j, 5, 30);
        let at = events[100].seq;
        let good = j.state_at("s", at).unwrap().unwrap();
        let snapshots = j.store.snapshots_of("s").unwrap();
        let (seq, mut v) = snapshots[0].clone();
        assert!(
            j.store.session_records_and_deltas("s").unwrap().1.contains(&seq),
            "the named record is stored as a delta"
        );
        assert!(j.state_at("s", at).unwrap().unwrap().events_read < SNAPSHOT_INTERVAL);
        // The hash it names comes before the checksummed body: the checksum still holds.
        v[0] ^= 1;
        j.store.put_snapshot("s", seq, &v).unwrap();
        let state = j.state_at("s", at).unwrap().unwrap();
        assert_eq!((&state.session, state.last_seq), (&good.session, good.last_seq));
        assert!(state.events_read >= SNAPSHOT_INTERVAL, "the snapshot naming another record was used");
        v[0] ^= 1;
        j.store.put_snapshot("s", seq, &v).unwrap();
        assert!(j.state_at("s", at).unwrap().unwrap().events_read < SNAPSHOT_INTERVAL);
        j.store.execute(&format!("UPDATE log SET session = session + 1 WHERE seq = {seq}")).unwrap();
        assert!(j.state_at("s", at).unwrap().unwrap().events_read >= SNAPSHOT_INTERVAL);
    }

    /// The log lines stored beside each snapshot are what the records themselves say, however
    /// the records came (one per append and read back across a reopen, or in one large
    /// batch); a damaged or missing run is passed over by readers and rebuilt by `verify`.
    #[test]
    fn stored_log_lines_say_what_the_records_say() {
        let dir = tempfile::tempdir().unwrap();
        let kinds = |i: usize| -> NewChange {
            let id = format!("r{}", i % 7);
            match i % 6 {
                0 => NewChange {
                    entity_type: EntityType::Metadata,
                    payload: json!({"value": format!("title {}", i % 3)}),
                    ..change("s", "customTitle")
                },
                1 => NewChange {
                    entity_type: EntityType::Tag,
                    origin: Origin::Local,
                    ..change("s", &format!("t{}", i % 2))
                },
                2 => NewChange { change_type: ChangeType::Merge, payload: json!({}), ..change("s", "s") },
                _ => NewChange {
                    change_type: if i < 7 { ChangeType::Create } else { ChangeType::Update },
                    payload: json!({"index": i % 7, "request": {"requestId": id, "message": {"text": format!("why {}", i % 4)},
                                    "response": vec![json!({"value": "x"}); i % 4]}}),
                    ..change("s", &id)
                },
            }
        };
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let mut records = j
            .append(vec![NewChange {
                entity_type: EntityType::Session,
                payload: json!({"requests": [], "customTitle": "A long one"}),
                ..change("s", "s")
            }])
            .unwrap();
        for i in 1..90 {
            records.extend(j.append(vec![kinds(i), change("other", "x")]).unwrap().into_iter().take(1));
        }
        drop(j);
        let mut j = Journal::open(dir.path(), OpenMode::Existing).unwrap();
        records.extend(j.append((90..300).map(kinds).collect()).unwrap());
        let runs = j.session_line_runs("s", 0).unwrap();
        // Runs end at the 64th, 128th … records (and may be stored in parts), and their lines
        // are the records', in order.
        let read: Vec<Vec<lines::Line>> = runs.iter().map(|(_, bytes)| lines::decode(bytes).unwrap()).collect();
        assert!(runs.iter().zip(&read).all(|((seq, _), lines)| lines.last().unwrap().seq == *seq));
        for k in [64, 128, 192, 256] {
            assert!(runs.iter().any(|r| r.0 == records[k - 1].seq), "a run ends at the {k}th record");
        }
        let want: Vec<lines::Line> = records[..256].iter().map(lines::Line::of).collect();
        assert_eq!(read.concat(), want);
        assert_eq!(runs.len(), 4, "a few summaries repeated: each run in one part");
        let report = j.verify().unwrap();
        assert_eq!((report.snapshots_rebuilt, report.lines_rebuilt), (0, 0), "{report:?}");

        // One run damaged, one gone: the plan reads those records instead.
        let mut bad = runs[1].1.clone();
        bad[40] ^= 1;
        j.store.put_lines("s", runs[1].0, &bad).unwrap();
        j.store.remove_lines("s", runs[2].0).unwrap();
        let seqs = j.session_seqs("s").unwrap();
        let left = j.session_line_runs("s", 0).unwrap();
        let plan: Vec<lines::Piece> = lines::plan(&seqs, &left, false).collect();
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[1], lines::Piece::Records(64..192));
        assert_eq!(plan[3], lines::Piece::Records(256..300));
        assert_eq!(j.verify().unwrap().lines_rebuilt, 2);
        assert_eq!(j.session_line_runs("s", 0).unwrap(), runs);
    }

    /// A session whose requests stream in: each created, then `versions - 1` updates, each a
    /// few words longer, appended 50 at a time.
    fn streamed_session(j: &mut Journal, requests: usize, versions: usize) -> Vec<SyncChange> {
        let mut all = Vec::new();
        let mut batch =
            vec![NewChange { entity_type: EntityType::Session, payload: json!({"requests": []}), ..change("s", "s") }];
        for r in 0..requests {
            let id = format!("r{r}");
            for v in 0..versions {
                let text = format!("{} answer", "word ".repeat(100 + v));
                let payload = json!({"index": r, "request": {"requestId": id, "response": [{"value": text}]}});
                let change_type = if v == 0 { ChangeType::Create } else { ChangeType::Update };
                batch.push(NewChange { change_type, payload, ..change("s", &id) });
                if batch.len() == 50 {
                    all.extend(j.append(std::mem::take(&mut batch)).unwrap());
                }
            }
        }
        all.extend(j.append(batch).unwrap());
        all
    }

    /// Each streamed request's last version is stored whole among its session's finals once
    /// the session moves on; replay reads the same with or without them, and verify restores
    /// them.
    #[test]
    fn finals_hold_each_finished_request_and_change_nothing_replay_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let events = streamed_session(&mut j, 12, 20);
        let finals = j.store.finals_of("s").unwrap();
        let lasts: Vec<u64> = (0..11).map(|r| events[20 * r + 20].seq).collect();
        assert_eq!(finals.iter().map(|f| f.0).collect::<Vec<_>>(), lasts, "every request but the last");
        for (seq, record) in &finals {
            assert_eq!(record, &j.get(*seq).unwrap().unwrap().encode());
        }
        let points: Vec<u64> = events.iter().map(|e| e.seq).step_by(7).chain([u64::MAX]).collect();
        let read = |j: &Journal| -> Vec<_> {
            points
                .iter()
                .map(|&p| (j.session_text_at("s", p).unwrap().map(|t| t.pieces), j.state_at("s", p).unwrap()))
                .collect()
        };
        let with = read(&j);
        drop(j);

        // A fresh store reads them into its cache in one range.
        let j = Journal::open(dir.path(), OpenMode::Read).unwrap();
        j.store.read_finals("s", lasts.iter().copied()).unwrap();
        assert!(lasts.iter().all(|&seq| j.store.cached(seq)));
        drop(j);
        // And a replay of the latest point reads its finished requests there, not a row each
        // from the log.
        for text in [true, false] {
            let j = Journal::open(dir.path(), OpenMode::Read).unwrap();
            if text {
                j.session_text_at("s", u64::MAX).unwrap().unwrap();
            } else {
                j.state_at("s", u64::MAX).unwrap().unwrap();
            }
            // At most one, for the request still streaming (it has no final yet); without
            // finals, about a row for each finished request.
            let reads = j.store.rows_read_one_at_a_time();
            assert!(reads <= 1, "{reads} rows read from the log one at a time (text: {text})");
        }

        // Gone, or damaged (a stray one, one that is not a whole record): read from the log.
        let j = Journal::open(dir.path(), OpenMode::Existing).unwrap();
        let mut wrong = finals.clone();
        wrong.remove(3);
        wrong[0].1 = vec![0xDE, 1, 1];
        wrong.push((events[5].seq, events[5].encode()));
        j.store.replace_finals("s", &wrong).unwrap();
        drop(j);
        let j = Journal::open(dir.path(), OpenMode::Read).unwrap();
        assert_eq!(read(&j), with);
        drop(j);
        let j = Journal::open(dir.path(), OpenMode::Existing).unwrap();
        assert_eq!(j.verify().unwrap().finals_rebuilt, 3);
        assert_eq!(j.store.finals_of("s").unwrap(), finals);
        assert_eq!(j.verify().unwrap().finals_rebuilt, 0);
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), OpenMode::Create).unwrap();
        j.store.execute("UPDATE meta SET value = X'00000005' WHERE key = 'format'").unwrap();
        drop(j);
        let reopened = Journal::open(dir.path(), OpenMode::Existing);
        assert!(matches!(reopened, Err(JournalError::NewerFormat { found: 5, .. })));
    }
}
