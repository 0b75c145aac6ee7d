//! Everything that knows how the journal is stored: one SQLite database (`journal.sqlite`) in
//! write-ahead-log mode, its tables, and the transaction that appends a batch. Keeping storage
//! behind this one module is what let it move from sled (format 1, see `legacy.rs`) to SQLite.
//!
//! Why SQLite: a command opens it in well under a millisecond whatever the journal's size (sled
//! 0.34 rewrote every free segment and fsynced on each open), a batch is one transaction that is
//! durable after one fsync of the write-ahead log and that either happens whole or not at all
//! (a full disk rolls it back instead of leaving half a batch behind), and its B-trees give the
//! per-session index and the snapshots without code of ours. It was already linked in for VS
//! Code's `state.vscdb`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use super::JournalError;
use super::block::{self, Block};
use super::cache::Shaped;
use super::compressed::{Compressor, Decompressor};
use super::delta::{self, Form, StoredSnapshot};
use super::lines::Line;
use super::record::last_hash;

/// The on-disk format this chasm writes (`meta` key `format`). Format 1 was a sled database;
/// `legacy.rs` converts it. Format 3 is format 2 with rows that may be compressed
/// (`compressed.rs`); format 4 is format 3 with records that may be stored in blocks
/// (`block.rs`).
pub const FORMAT_VERSION: u32 = 4;

/// The formats before [`FORMAT_VERSION`], which this chasm reads and writes as they are: a
/// format 2 journal is format 4 without compressed rows or blocks, a format 3 one without
/// blocks. A journal is marked 3 in the transaction that stores its first compressed row, and
/// 4 in the one that stores its first block ([`Store::pack`]), so that a chasm that cannot read
/// those refuses it with a clear message, and a journal never packed stays readable by one.
const UNPACKED_FORMAT: u32 = 2;
const COMPRESSED_FORMAT: u32 = 3;

/// The database file inside the journal directory.
pub const DB_FILE: &str = "journal.sqlite";

/// The file whose lock keeps a second process out for as long as one holds the journal.
pub const LOCK_FILE: &str = "lock";

/// SQLite's write-ahead log beside the database: present only while a read-write store is
/// open, or after one stopped without closing.
pub const WAL_FILE: &str = "journal.sqlite-wal";

/// What every open sets, reading or writing: a 16 MB page cache, and the file mapped.
const READ_PRAGMAS: &str = "PRAGMA cache_size = -16384; PRAGMA mmap_size = 4294967296;";

pub const META_FORMAT: &str = "format";
pub const META_HEAD: &str = "head";

/// The tables. `log` is a rowid table keyed by seq: appended in key order, its pages fill up
/// (a table clustered by session was tried: as many pages again, half empty, and no faster).
/// `log_by_session` is the per-session index. Sessions are numbered in `sessions` so that the
/// log and its index carry a small integer rather than the id.
const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE sessions (num INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, first_seq INTEGER NOT NULL, events INTEGER NOT NULL);
CREATE TABLE log (seq INTEGER PRIMARY KEY, session INTEGER NOT NULL, record BLOB NOT NULL);
CREATE INDEX log_by_session ON log (session, seq);
CREATE TABLE snapshots (session INTEGER NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (session, seq)) WITHOUT ROWID;
CREATE TABLE fingerprints (session BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
";

/// The key, in `shape_parts`, of a shape's head (the row [`Shaped::Parted`] names first): after
/// its parts, so that it lies beside the last one, which a sync changes most (a request added
/// or streamed), and both are written in one page.
const HEAD_PART: i64 = i64::MAX;

/// Tables added to format 2 after journals were first written in it, by name and columns. Each
/// is a cache, or is filled only by the chasm that made it, so an empty one reads as a journal
/// that never had it: they are made with the others, by a writer's open where missing, and
/// for a reader, where missing, as empty temporary tables (see [`Store::open_for_reading`]).
const LATER_TABLES: [(&str, &str); 6] = [
    ("shapes", "(session BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"),
    (
        "shape_parts",
        "(session BLOB NOT NULL, part INTEGER NOT NULL, value BLOB NOT NULL, PRIMARY KEY (session, part)) WITHOUT ROWID",
    ),
    (
        "lines",
        "(session INTEGER NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (session, seq)) WITHOUT ROWID",
    ),
    ("finals", "(key INTEGER PRIMARY KEY, record BLOB NOT NULL)"),
    ("blocks", "(first INTEGER PRIMARY KEY, frame BLOB NOT NULL)"),
    ("captures", "(path BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"),
];

/// `create` (`CREATE TABLE IF NOT EXISTS`, `CREATE TEMP TABLE`) for each later table `wanted`.
fn later_tables(create: &str, wanted: impl Fn(&str) -> bool) -> String {
    let wanted = LATER_TABLES.iter().filter(|(name, _)| wanted(name));
    wanted.map(|(name, columns)| format!("{create} {name} {columns};")).collect()
}

/// A `finals` row's key is its session's number times this, plus its seq: rowid order is then
/// each session's rows in seq order, and a row of up to a page stays in its page (a WITHOUT
/// ROWID table keyed by (session, seq) puts any row over ~2 KB in an overflow page of its own:
/// three times the pages). Seqs and session numbers past what the key holds are not stored.
const FINALS_SPAN: i64 = 1 << 40;

/// The `finals` keys of session `num`: `start..start + FINALS_SPAN`; `None` past what keys hold.
fn finals_start(num: i64) -> Option<i64> {
    num.checked_mul(FINALS_SPAN).filter(|_| num >= 0)
}

/// `meta/head` value: last seq (u64 BE) ‖ its hash ‖ the first seq of the batch that ended
/// there (u64 BE).
pub fn head_value(seq: u64, hash: &[u8; 32], batch_first: u64) -> [u8; 48] {
    let mut v = [0; 48];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..40].copy_from_slice(hash);
    v[40..].copy_from_slice(&batch_first.to_be_bytes());
    v
}

/// Decodes `meta/head`: (last seq, its hash, first seq of its batch).
pub fn parse_head(v: &[u8]) -> Option<(u64, [u8; 32], u64)> {
    if v.len() != 48 {
        return None;
    }
    let seq = u64::from_be_bytes(v[..8].try_into().ok()?);
    let hash: [u8; 32] = v[8..40].try_into().ok()?;
    let first = u64::from_be_bytes(v[40..].try_into().ok()?);
    Some((seq, hash, first))
}

/// One record ready to be stored.
pub struct Row {
    pub seq: u64,
    pub session_id: String,
    /// Shared with the record cache, which keeps what was just written for the next reads.
    pub bytes: Shared,
}

/// A session as the `sessions` table lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub first_seq: u64,
    pub events: u64,
}

/// Record bytes read recently, by seq: the bases that reading a run of delta-stored records
/// needs again and again (a session read in order finds each base here). Bounded in bytes.
#[derive(Default)]
struct Cache {
    records: HashMap<u64, Rc<Vec<u8>>>,
    order: VecDeque<u64>,
    bytes: usize,
}

/// How many bytes of records [`Cache`] holds at most.
const CACHE_BYTES: usize = 64 << 20;

impl Cache {
    fn get(&self, seq: u64) -> Option<Rc<Vec<u8>>> {
        self.records.get(&seq).cloned()
    }

    fn put(&mut self, seq: u64, bytes: Rc<Vec<u8>>) {
        if self.records.contains_key(&seq) {
            return;
        }
        self.bytes += bytes.len();
        self.records.insert(seq, bytes);
        self.order.push_back(seq);
        while self.bytes > CACHE_BYTES {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(b) = self.records.remove(&old) {
                self.bytes -= b.len();
            }
        }
    }
}

/// How many blocks a store keeps decompressed: a few, for reads that go back and forth
/// between sessions stored side by side.
const KEPT_BLOCKS: usize = 8;

/// How many log lines [`Store::keep_line`] keeps at most: a snapshot interval for each of
/// a thousand sessions.
const KEPT_LINES: usize = 64 * 1024;

/// A record's bytes, shared between the cache and its readers.
pub type Shared = Rc<Vec<u8>>;

/// Records with their seqs, ascending.
pub type Records = Vec<(u64, Shared)>;

/// A record a delta may be taken against: (seq, record bytes, depth of its stored row).
type Base = (u64, Shared, u8);

/// The open database, and the lock that makes it this process's alone.
pub struct Store {
    pub dir: PathBuf,
    conn: Connection,
    cache: RefCell<Cache>,
    /// Session ids → their numbers in `sessions`, as looked up or assigned.
    nums: RefCell<HashMap<String, i64>>,
    /// Session ids → (seq, depth) of the newest row this store wrote for them: the next
    /// append's delta base, without a query.
    last: RefCell<HashMap<String, (u64, u8)>>,
    /// Session numbers → how many records they have, as read or written by this store (it
    /// holds the journal's lock: nobody else changes them).
    events: RefCell<HashMap<i64, u64>>,
    /// Log lines of records this store wrote, by seq, until a run of lines takes them (see
    /// `lines`): made from the payloads in hand, so a due run need not read them back.
    lines: RefCell<HashMap<u64, Line<'static>>>,
    /// Made at the first compressed row read, and kept: setting one up costs more than a row.
    decompressor: RefCell<Option<Decompressor>>,
    /// The last [`KEPT_BLOCKS`] blocks read, by first seq: a session read in order reads each
    /// block once.
    blocks: RefCell<VecDeque<(u64, Rc<Block>)>>,
    /// Held (an exclusive `flock`, or a shared one for a store opened for reading) for as long
    /// as the store is open; dropped after the connection.
    _lock: File,
}

/// Maps SQLite's errors to the journal's: a full disk says so in the words a user knows.
pub(super) fn storage(e: rusqlite::Error) -> JournalError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => JournalError::Storage("No space left on the device (the disk is full)".into()),
        Some(ErrorCode::ReadOnly) => JournalError::Storage(format!("the journal is read-only: {e}")),
        _ => JournalError::Storage(e.to_string()),
    }
}

/// What opening the database in `dir` failed with: a file that is not a database is a journal
/// of a format this chasm does not know.
fn cannot_open(dir: &Path) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => JournalError::UnknownFormat(dir.to_owned()),
        _ => JournalError::Storage(format!("cannot open {}: {e}", dir.join(DB_FILE).display())),
    }
}

/// A `sessions` row whose id is not UTF-8 (chasm writes only UTF-8 ids).
fn not_utf8() -> JournalError {
    JournalError::Corrupt { seq: 0, reason: "a session id is not UTF-8".into() }
}

/// SQL integers are i64; seqs and counts never come near its limit.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Whether `dir` holds a journal database.
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(DB_FILE).is_file()
    }

    /// Opens (creating if needed) the database in `dir`, which must exist, after taking the
    /// journal's lock; a second process gets [`JournalError::Locked`] (see [`lock`]).
    pub fn open(dir: &Path) -> Result<Store, JournalError> {
        let lock = lock(dir)?;
        Store::open_locked(dir, lock)
    }

    /// Opens the database in `dir` for reading only, after taking the journal's lock shared
    /// with other readers, as the commands that only read do: nothing is written, not even the
    /// write-ahead log a read-write open creates and its close checkpoints and deletes (0.2 ms
    /// of a 3 ms `replay`). With the lock held no chasm process writes meanwhile, so the
    /// database is opened as immutable (no locking, no log). Tables added since the journal was
    /// written are made empty in the connection's own memory (the next writer adds them to the
    /// journal): a reader of a journal an older chasm wrote writes nothing either, and reads
    /// one on read-only media. Where a write-ahead log with content is left (a writer stopped
    /// before it could close), it is opened as [`Store::open`] opens it, under the exclusive
    /// lock: that recovers the log.
    pub fn open_for_reading(dir: &Path) -> Result<Store, JournalError> {
        let lock = lock_shared(dir)?;
        let path = dir.join(DB_FILE);
        let wal = std::fs::metadata(dir.join(WAL_FILE)).map_or(0, |m| m.len());
        // What a read-write open would change is changed under the writers' lock (the shared
        // one let go first: `flock` may not trade one for the other in a single step).
        let read_write = |lock: File| {
            drop(lock);
            // Read without its log, the journal would look older than it is: a reader that
            // cannot take the log in says so.
            Store::open(dir).map_err(|e| match e {
                JournalError::Io(why) if wal > 0 => JournalError::Io(format!(
                    "its last commits are still in its write-ahead log ({WAL_FILE}), which only a writable open can take in: {why}"
                )),
                e => e,
            })
        };
        let Some(uri) = immutable_uri(&path).filter(|_| wal == 0) else { return read_write(lock) };
        let conn = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(cannot_open(dir))?;
        // The tables and the format in one query. A file without `meta` (a new journal, or
        // not one) is left to the read-write open, which creates it or says what is wrong.
        let found = conn.execute_batch(READ_PRAGMAS).and_then(|()| {
            conn.query_row(
                "SELECT (SELECT group_concat(name, ' ') FROM sqlite_schema WHERE type = 'table'), \
                 (SELECT value FROM meta WHERE key = ?1)",
                [META_FORMAT],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<Vec<u8>>>(1)?)),
            )
        });
        let Ok((tables, format)) = found else {
            drop(conn);
            return read_write(lock);
        };
        let store = Store::new(dir, conn, lock);
        store.check_version(format)?;
        let missing = later_tables("CREATE TEMP TABLE", |name| !tables.split(' ').any(|t| t == name));
        if !missing.is_empty() {
            store.conn.execute_batch(&format!("PRAGMA temp_store = MEMORY; {missing}")).map_err(storage)?;
        }
        Ok(store)
    }

    fn open_locked(dir: &Path, lock: File) -> Result<Store, JournalError> {
        let path = dir.join(DB_FILE);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(cannot_open(dir))?;
        // Exclusive locking before the first access keeps the write-ahead log's index in memory
        // (no `-shm` file); FULL makes every commit fsync the log: the durability point.
        conn.execute_batch(
            "PRAGMA page_size = 8192; PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 4096;",
        )
        .and_then(|()| conn.execute_batch(READ_PRAGMAS))
        .map_err(cannot_open(dir))?;
        let store = Store::new(dir, conn, lock);
        store.check_format()?;
        Ok(store)
    }

    fn new(dir: &Path, conn: Connection, lock: File) -> Store {
        // Every statement chasm runs stays prepared (rusqlite keeps 16 by default, fewer than
        // the store uses: re-preparing cost more than the queries).
        conn.set_prepared_statement_cache_capacity(64);
        Store {
            dir: dir.to_owned(),
            conn,
            cache: RefCell::default(),
            nums: RefCell::default(),
            last: RefCell::default(),
            events: RefCell::default(),
            lines: RefCell::default(),
            decompressor: RefCell::default(),
            blocks: RefCell::default(),
            _lock: lock,
        }
    }

    /// Reads the stored format version, creating the tables of a new journal.
    fn check_format(&self) -> Result<(), JournalError> {
        let has_meta: bool =
            self.conn
                .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'meta'", [], |r| r.get::<_, i64>(0))
                .map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) => JournalError::UnknownFormat(self.dir.clone()),
                _ => storage(e),
            })? > 0;
        if !has_meta {
            let empty: i64 =
                self.conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).map_err(storage)?;
            if empty != 0 {
                return Err(JournalError::UnknownFormat(self.dir.clone()));
            }
            self.transaction(|s| {
                s.conn.execute_batch(SCHEMA).map_err(storage)?;
                s.conn.execute_batch(&later_tables("CREATE TABLE", |_| true)).map_err(storage)?;
                s.conn
                    .execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        params![META_FORMAT, &FORMAT_VERSION.to_be_bytes()[..]],
                    )
                    .map_err(storage)?;
                Ok(())
            })?;
            sync_dir(&self.dir);
            return Ok(());
        }
        self.check_version(self.meta(META_FORMAT)?)?;
        self.conn.execute_batch(&later_tables("CREATE TABLE IF NOT EXISTS", |_| true)).map_err(storage)
    }

    /// Refuses a journal whose `meta` format value `v` names a format this chasm cannot read;
    /// returns the format.
    fn check_version(&self, v: Option<Vec<u8>>) -> Result<u32, JournalError> {
        let found = v
            .as_deref()
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| JournalError::UnknownFormat(self.dir.clone()))?;
        match found {
            FORMAT_VERSION | COMPRESSED_FORMAT | UNPACKED_FORMAT => Ok(found),
            f if f > FORMAT_VERSION => {
                Err(JournalError::NewerFormat { dir: self.dir.clone(), found: f, supported: FORMAT_VERSION })
            }
            _ => Err(JournalError::UnknownFormat(self.dir.clone())),
        }
    }

    /// Runs `f` in one transaction: committed (durably) when it returns `Ok`, rolled back
    /// otherwise.
    pub fn transaction<T>(&self, f: impl FnOnce(&Store) -> Result<T, JournalError>) -> Result<T, JournalError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(storage)?;
        match f(self) {
            Ok(v) => match self.conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([])) {
                Ok(_) => Ok(v),
                Err(e) => {
                    self.roll_back();
                    Err(storage(e))
                }
            },
            Err(e) => {
                self.roll_back();
                Err(e)
            }
        }
    }

    /// Undoes an open transaction, and forgets what the caches learned inside it: records and
    /// session numbers that are no longer there.
    fn roll_back(&self) {
        let _ = self.conn.execute_batch("ROLLBACK");
        *self.cache.borrow_mut() = Cache::default();
        self.nums.borrow_mut().clear();
        self.last.borrow_mut().clear();
        self.events.borrow_mut().clear();
        self.lines.borrow_mut().clear();
        self.blocks.borrow_mut().clear();
    }

    /// Keeps a stored record's log line for its session's next run of lines. Bounded: past
    /// [`KEPT_LINES`], they are dropped (and read from the records when due).
    pub fn keep_line(&self, line: Line<'static>) {
        let mut lines = self.lines.borrow_mut();
        if lines.len() >= KEPT_LINES {
            lines.clear();
        }
        lines.insert(line.seq, line);
    }

    /// A kept log line, taken out.
    pub fn take_line(&self, seq: u64) -> Option<Line<'static>> {
        self.lines.borrow_mut().remove(&seq)
    }

    /// [`Store::transaction`] for derived data (snapshots, fingerprints): committed without an
    /// fsync of its own. A power cut may lose it, never damage it; the next durable commit
    /// makes it durable too.
    pub fn derived_transaction<T>(&self, f: impl FnOnce(&Store) -> Result<T, JournalError>) -> Result<T, JournalError> {
        self.conn.execute_batch("PRAGMA synchronous = NORMAL").map_err(storage)?;
        let result = self.transaction(f);
        self.conn.execute_batch("PRAGMA synchronous = FULL").map_err(storage)?;
        result
    }

    /// A `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError> {
        self.conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(storage)
    }

    /// The newest record's seq (0 when there is none).
    pub fn last_seq(&self) -> Result<u64, JournalError> {
        let last: Option<i64> = self.conn.query_row("SELECT max(seq) FROM log", [], |r| r.get(0)).map_err(storage)?;
        Ok(last.map_or(0, |seq| seq as u64))
    }

    /// The row stored at `seq`: a record, or a delta (see `delta.rs`).
    fn stored(&self, seq: u64) -> Result<Option<Vec<u8>>, JournalError> {
        self.conn
            .prepare_cached("SELECT record FROM log WHERE seq = ?1")
            .and_then(|mut s| s.query_row([int(seq)], |r| r.get(0)).optional())
            .map_err(storage)
    }

    /// How many rows this store has read from the log one seq at a time ([`Store::stored`]): a
    /// replay that reads its requests from `finals` reads few.
    #[cfg(test)]
    pub fn rows_read_one_at_a_time(&self) -> i32 {
        let stmt = self.conn.prepare_cached("SELECT record FROM log WHERE seq = ?1").unwrap();
        stmt.get_status(rusqlite::StatementStatus::Run)
    }

    /// How many transactions this store has committed.
    #[cfg(test)]
    pub fn commits(&self) -> i32 {
        self.conn.prepare_cached("COMMIT").unwrap().get_status(rusqlite::StatementStatus::Run)
    }

    /// Whether the record cache holds `seq`.
    #[cfg(test)]
    pub fn cached(&self, seq: u64) -> bool {
        self.cache.borrow().get(seq).is_some()
    }

    /// The bytes of the record at `seq` (rebuilt from its delta when it is stored as one),
    /// through the cache.
    pub fn get(&self, seq: u64) -> Result<Option<Rc<Vec<u8>>>, JournalError> {
        if let Some(hit) = self.cache.borrow().get(seq) {
            return Ok(Some(hit));
        }
        match self.stored(seq)? {
            None => Ok(None),
            Some(stored) => self.rebuild(seq, stored).map(Some),
        }
    }

    /// The record bytes of the row `stored` at `seq`: itself, itself decompressed, its place in
    /// a block, or its delta applied to its base (read the same way, fewer than
    /// [`delta::MAX_DEPTH`] rows back). Cached.
    fn rebuild(&self, seq: u64, stored: Vec<u8>) -> Result<Rc<Vec<u8>>, JournalError> {
        let corrupt = |reason: String| JournalError::Corrupt { seq, reason };
        let bytes = match delta::form(&stored).map_err(|e| corrupt(e.to_string()))? {
            Form::Whole => Rc::new(stored),
            Form::Compressed => Rc::new(self.decompressing(seq, |d| d.decompress(&stored))?),
            Form::InBlock { index } => {
                let first = seq
                    .checked_sub(index)
                    .filter(|&first| first > 0)
                    .ok_or_else(|| corrupt(format!("its block row names a block {index} records back")))?;
                // Its prev_hash, after the block's first record: the hash of the record before
                // it, known when that was just read, otherwise at the end of its row.
                let previous = || match self.cache.borrow().get(seq - 1) {
                    Some(bytes) => last_hash(&bytes),
                    None => self.stored(seq - 1).ok().flatten().and_then(|row| last_hash(&row)),
                };
                let block = self.block(first, seq)?;
                Rc::new(block.record(&stored, previous).map_err(|e| corrupt(e.to_string()))?)
            }
            Form::Delta { back, depth } => {
                if back >= seq || depth == 0 || depth > delta::MAX_DEPTH {
                    return Err(corrupt(format!("a delta names a base {back} records back at depth {depth}")));
                }
                let base_seq = seq - back;
                if self.cache.borrow().get(base_seq).is_none() {
                    self.read_chain(seq, depth)?;
                }
                let cached = self.cache.borrow().get(base_seq);
                let base = match cached {
                    Some(hit) => hit,
                    // Not among the session's records before it: read the base it names.
                    None => {
                        let stored = self
                            .stored(base_seq)?
                            .ok_or_else(|| corrupt(format!("the base of its delta, record {base_seq}, is missing")))?;
                        // Depths fall towards the base, so a damaged row cannot send a read round
                        // in a loop.
                        if delta::depth(&stored) >= depth {
                            return Err(corrupt("a delta's base is no shallower than the delta".into()));
                        }
                        self.rebuild(base_seq, stored)?
                    }
                };
                if let Err(e) = super::record::Fields::of(&base) {
                    return Err(JournalError::Corrupt { seq: base_seq, reason: e.to_string() });
                }
                Rc::new(delta::decode(&stored, seq, &base).map_err(|e| corrupt(e.to_string()))?)
            }
        };
        self.cache.borrow_mut().put(seq, bytes.clone());
        Ok(bytes)
    }

    /// `f` with the store's decompressor (made at the first use); its error is the record at
    /// `seq`'s.
    fn decompressing<T>(
        &self,
        seq: u64,
        f: impl FnOnce(&mut Decompressor) -> Result<T, super::record::DecodeError>,
    ) -> Result<T, JournalError> {
        let corrupt = |e: super::record::DecodeError| JournalError::Corrupt { seq, reason: e.to_string() };
        let mut decompressor = self.decompressor.borrow_mut();
        let d = match &mut *decompressor {
            Some(d) => d,
            None => decompressor.insert(Decompressor::new().map_err(corrupt)?),
        };
        f(d).map_err(corrupt)
    }

    /// The block that starts at `first`, read for the record at `seq`, through the kept ones.
    fn block(&self, first: u64, seq: u64) -> Result<Rc<Block>, JournalError> {
        if let Some((_, kept)) = self.blocks.borrow().iter().find(|(f, _)| *f == first) {
            return Ok(Rc::clone(kept));
        }
        let frame: Vec<u8> = self
            .conn
            .prepare_cached("SELECT frame FROM blocks WHERE first = ?1")
            .and_then(|mut s| s.query_row([int(first)], |r| r.get(0)).optional())
            .map_err(storage)?
            .ok_or_else(|| JournalError::Corrupt {
                seq,
                reason: format!("its block, from record {first} on, is missing"),
            })?;
        let block = Rc::new(self.decompressing(seq, |d| Block::read(d, &frame))?);
        let mut kept = self.blocks.borrow_mut();
        if kept.len() >= KEPT_BLOCKS {
            kept.pop_front();
        }
        kept.push_back((first, Rc::clone(&block)));
        Ok(block)
    }

    /// Runs a query whose rows are (seq, bytes).
    fn seq_rows(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(storage)?;
        let rows =
            stmt.query_map(params, |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))).map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)
    }

    /// Reads into the cache the chain of bases below the delta at `seq` (`depth` deep): a
    /// delta's base is its session's previous record, so the chain is the session's `depth`
    /// records before it, read in one query and rebuilt oldest first.
    fn read_chain(&self, seq: u64, depth: u8) -> Result<(), JournalError> {
        let mut rows = self.seq_rows(
            "SELECT seq, record FROM log WHERE session = (SELECT session FROM log WHERE seq = ?1) \
             AND seq < ?1 ORDER BY seq DESC LIMIT ?2",
            [int(seq), i64::from(depth)],
        )?;
        // Only the rows down to the first one already known, or not a delta, are needed.
        if let Some(stop) = rows.iter().position(|(s, stored)| {
            self.cache.borrow().get(*s).is_some() || delta::form(stored).is_ok_and(|f| !matches!(f, Form::Delta { .. }))
        }) {
            rows.truncate(stop + 1);
        }
        for (s, stored) in rows.into_iter().rev() {
            if self.cache.borrow().get(s).is_none() && delta::depth(&stored) < depth {
                self.rebuild(s, stored)?;
            }
        }
        Ok(())
    }

    /// The records with seqs in `lo..=hi`, ascending, shared with the cache.
    pub fn shared_between(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Shared)>, JournalError> {
        let rows =
            self.seq_rows("SELECT seq, record FROM log WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq", [int(lo), int(hi)])?;
        rows.into_iter().map(|(seq, stored)| Ok((seq, self.rebuild(seq, stored)?))).collect()
    }

    /// Every stored row in seq order — (seq, the id of the session it is filed under, the
    /// record bytes or why they cannot be had) — handed to `f` one at a time without loading
    /// the log; `f` returns `false` to stop.
    pub fn scan(&self, mut f: impl FnMut(u64, &[u8], Result<&[u8], String>) -> bool) -> Result<(), JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT log.seq, sessions.id, log.record FROM log \
                 LEFT JOIN sessions ON sessions.num = log.session ORDER BY log.seq",
            )
            .map_err(storage)?;
        let mut rows = stmt.query([]).map_err(storage)?;
        while let Some(row) = rows.next().map_err(storage)? {
            let seq = row.get::<_, i64>(0).map_err(storage)? as u64;
            let session = row.get::<_, Option<Vec<u8>>>(1).map_err(storage)?.unwrap_or_default();
            let stored = row.get_ref(2).and_then(|v| Ok(v.as_blob()?)).map_err(storage)?;
            let record = self.rebuild(seq, stored.to_vec()).map_err(|e| match e {
                JournalError::Corrupt { reason, .. } => reason,
                other => other.to_string(),
            });
            if !f(seq, &session, record.as_ref().map(|r| r.as_slice()).map_err(String::clone)) {
                break;
            }
        }
        Ok(())
    }

    /// How many records the log holds.
    pub fn count(&self) -> Result<u64, JournalError> {
        self.conn.query_row("SELECT count(*) FROM log", [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(storage)
    }

    /// A session's number in `sessions`, if it has one.
    fn num(&self, session_id: &str) -> Result<Option<i64>, JournalError> {
        if let Some(n) = self.nums.borrow().get(session_id) {
            return Ok(Some(*n));
        }
        let n: Option<i64> = self
            .conn
            .prepare_cached("SELECT num FROM sessions WHERE id = ?1")
            .and_then(|mut s| s.query_row([session_id.as_bytes()], |r| r.get(0)).optional())
            .map_err(storage)?;
        if let Some(n) = n {
            self.nums.borrow_mut().insert(session_id.to_owned(), n);
        }
        Ok(n)
    }

    /// A session's seqs after `after` up to `upto`, ascending, from the per-session index.
    pub fn session_seqs(&self, session_id: &str, after: u64, upto: u64) -> Result<Vec<u64>, JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(Vec::new()) };
        if after >= upto {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM log WHERE session = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq")
            .map_err(storage)?;
        let rows = stmt.query_map(params![num, int(after), int(upto)], |r| r.get::<_, i64>(0)).map_err(storage)?;
        rows.map(|r| r.map(|s| s as u64)).collect::<Result<_, _>>().map_err(storage)
    }

    /// A session's newest `n` seqs before `before`, ascending, from the per-session index (read
    /// backwards, so that the newest of a long session cost what they are, not the whole index).
    pub fn newest_session_seqs(&self, session_id: &str, before: u64, n: usize) -> Result<Vec<u64>, JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(Vec::new()) };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM log WHERE session = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3")
            .map_err(storage)?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![num, int(before), limit], |r| r.get::<_, i64>(0)).map_err(storage)?;
        let mut seqs = rows.map(|r| r.map(|s| s as u64)).collect::<Result<Vec<_>, _>>().map_err(storage)?;
        seqs.reverse();
        Ok(seqs)
    }

    /// [`Store::session_records`] from the cache when it holds them all: for records this
    /// handle has just written (an append's snapshots), whose seqs alone are read.
    pub fn recent_session_records(
        &self,
        session_id: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<(u64, Shared)>, JournalError> {
        let seqs = self.session_seqs(session_id, after, upto)?;
        let cached: Option<Vec<(u64, Shared)>> = {
            let cache = self.cache.borrow();
            seqs.iter().map(|&seq| Some((seq, cache.get(seq)?))).collect()
        };
        match cached {
            Some(cached) => Ok(cached),
            None => self.session_records(session_id, after, upto),
        }
    }

    /// A session's records after `after` up to `upto`, ascending, in one query.
    pub fn session_records(&self, session_id: &str, after: u64, upto: u64) -> Result<Records, JournalError> {
        let rows = self.session_rows(session_id, after, upto)?;
        rows.into_iter().map(|(seq, stored)| Ok((seq, self.rebuild(seq, stored)?))).collect()
    }

    /// Every record of a session, ascending, with the seqs of those stored as deltas: what
    /// `verify` checks a session's derived rows against, read once.
    pub fn session_records_and_deltas(&self, session_id: &str) -> Result<(Records, Vec<u64>), JournalError> {
        let rows = self.session_rows(session_id, 0, u64::MAX)?;
        let is_delta = |stored: &[u8]| matches!(delta::form(stored), Ok(Form::Delta { .. }));
        let deltas = rows.iter().filter(|(_, stored)| is_delta(stored)).map(|(seq, _)| *seq).collect();
        let records = rows.into_iter().map(|(seq, stored)| Ok((seq, self.rebuild(seq, stored)?)));
        Ok((records.collect::<Result<_, JournalError>>()?, deltas))
    }

    /// A session's stored rows (records, or deltas) after `after` up to `upto`, ascending.
    fn session_rows(&self, session_id: &str, after: u64, upto: u64) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(Vec::new()) };
        if after >= upto {
            return Ok(Vec::new());
        }
        self.seq_rows(
            "SELECT seq, record FROM log WHERE session = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq",
            params![num, int(after), int(upto)],
        )
    }

    /// The seq of a session's newest record (0: none).
    pub fn session_last_seq(&self, session_id: &str) -> Result<u64, JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(0) };
        self.conn
            .prepare_cached("SELECT max(seq) FROM log WHERE session = ?1")
            .and_then(|mut s| s.query_row([num], |r| r.get::<_, Option<i64>>(0)))
            .map(|s| s.map_or(0, |s| s as u64))
            .map_err(storage)
    }

    /// One session's row in the `sessions` table.
    pub fn session(&self, session_id: &str) -> Result<Option<SessionRow>, JournalError> {
        self.conn
            .prepare_cached("SELECT first_seq, events FROM sessions WHERE id = ?1")
            .and_then(|mut s| {
                s.query_row([session_id.as_bytes()], |r| {
                    Ok(SessionRow {
                        id: session_id.to_owned(),
                        first_seq: r.get::<_, i64>(0)? as u64,
                        events: r.get::<_, i64>(1)? as u64,
                    })
                })
                .optional()
            })
            .map_err(storage)
    }

    /// The `sessions` table, ordered by id bytes; ids that are not UTF-8 are an error.
    pub fn sessions(&self) -> Result<Vec<SessionRow>, JournalError> {
        self.sessions_where("", usize::MAX)
    }

    /// Every session's id, in id order: from the index on ids alone (a sync reads them every
    /// round; [`Store::sessions`] would look each row up in the table for counts it drops).
    pub fn session_ids(&self) -> Result<Vec<String>, JournalError> {
        let mut stmt = self.conn.prepare_cached("SELECT id FROM sessions ORDER BY id").map_err(storage)?;
        let mut rows = stmt.query([]).map_err(storage)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(storage)? {
            let id = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(storage)?;
            out.push(String::from_utf8(id.to_vec()).map_err(|_| not_utf8())?);
        }
        Ok(out)
    }

    /// The session ids just before and just after `id` in id order (whether or not `id` is
    /// one): the ids sharing the longest prefix with it are among them.
    pub fn ids_around(&self, id: &str) -> Result<[Option<String>; 2], JournalError> {
        let mut around = [None, None];
        for (slot, sql) in around.iter_mut().zip([
            "SELECT id FROM sessions WHERE id < ?1 ORDER BY id DESC LIMIT 1",
            "SELECT id FROM sessions WHERE id > ?1 ORDER BY id LIMIT 1",
        ]) {
            let mut stmt = self.conn.prepare_cached(sql).map_err(storage)?;
            let mut rows = stmt.query([id.as_bytes()]).map_err(storage)?;
            if let Some(row) = rows.next().map_err(storage)? {
                let other = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(storage)?;
                *slot = Some(String::from_utf8(other.to_vec()).map_err(|_| not_utf8())?);
            }
        }
        Ok(around)
    }

    /// Up to `limit` sessions whose ids start with `prefix`, in id order.
    pub fn sessions_where(&self, prefix: &str, limit: usize) -> Result<Vec<SessionRow>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, first_seq, events FROM sessions WHERE id >= ?1 ORDER BY id")
            .map_err(storage)?;
        let mut rows = stmt.query([prefix.as_bytes()]).map_err(storage)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(storage)? {
            let id = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(storage)?;
            if !id.starts_with(prefix.as_bytes()) || out.len() >= limit {
                break;
            }
            let id = String::from_utf8(id.to_vec()).map_err(|_| not_utf8())?;
            out.push(SessionRow {
                id,
                first_seq: row.get::<_, i64>(1).map_err(storage)? as u64,
                events: row.get::<_, i64>(2).map_err(storage)? as u64,
            });
        }
        Ok(out)
    }

    /// Stores a batch of records, their sessions' rows and the new head, inside the caller's
    /// transaction (see [`Store::transaction`]). Each record is stored as a delta against its
    /// session's previous record when that is smaller (see `delta.rs`).
    pub fn insert(&self, rows: &[Row], head: [u8; 48]) -> Result<(), JournalError> {
        let mut inserting = self.inserting();
        for row in rows {
            inserting.row(row.seq, &row.session_id, &row.bytes)?;
        }
        inserting.finish(head)
    }

    /// [`Store::insert`] a row at a time, for a caller that has the rows one by one (an append
    /// stores each record while the next is being sealed).
    pub fn inserting(&self) -> Inserting<'_> {
        Inserting { store: self, counts: HashMap::new() }
    }

    /// A session's number, numbering it (first seen at `first_seq`, no events yet) when new.
    fn num_or_new(&self, session_id: &str, first_seq: u64) -> Result<i64, JournalError> {
        if let Some(n) = self.num(session_id)? {
            return Ok(n);
        }
        self.conn
            .prepare_cached("INSERT INTO sessions (id, first_seq, events) VALUES (?1, ?2, 0)")
            .and_then(|mut s| s.execute(params![session_id.as_bytes(), int(first_seq)]))
            .map_err(storage)?;
        let n = self.conn.last_insert_rowid();
        self.nums.borrow_mut().insert(session_id.to_owned(), n);
        self.events.borrow_mut().insert(n, 0);
        Ok(n)
    }

    /// How many records the session numbered `num` has.
    fn events_of(&self, num: i64) -> Result<u64, JournalError> {
        if let Some(n) = self.events.borrow().get(&num) {
            return Ok(*n);
        }
        let n: i64 = self
            .conn
            .prepare_cached("SELECT events FROM sessions WHERE num = ?1")
            .and_then(|mut s| s.query_row([num], |r| r.get(0)))
            .map_err(storage)?;
        self.events.borrow_mut().insert(num, n as u64);
        Ok(n as u64)
    }

    /// A session's newest stored record as a delta base.
    fn base_for(&self, session_id: &str) -> Result<Option<Base>, JournalError> {
        let known = self.last.borrow().get(session_id).copied();
        if let Some((seq, depth)) = known
            && let Some(bytes) = self.cache.borrow().get(seq)
        {
            return Ok(Some((seq, bytes, depth)));
        }
        let seq = self.session_last_seq(session_id)?;
        if seq == 0 {
            return Ok(None);
        }
        let Some(stored) = self.stored(seq)? else { return Ok(None) };
        let depth = delta::depth(&stored);
        // A base that cannot be read is no base: the record is stored whole.
        Ok(self.rebuild(seq, stored).ok().map(|bytes| (seq, bytes, depth)))
    }

    /// The hash of the record at `seq` when its row is filed under `session_id`: the row's last
    /// 32 bytes, whatever its form (see `journal-format.md`), so that checking what a snapshot
    /// names reads one row, not the delta chain or the block behind it.
    pub fn filed_hash(&self, session_id: &str, seq: u64) -> Result<Option<[u8; 32]>, JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(None) };
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT session, record FROM log WHERE seq = ?1")
            .and_then(|mut s| s.query_row([int(seq)], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(storage)?;
        Ok(row.filter(|(filed, _)| *filed == num).and_then(|(_, stored)| {
            // At least a first byte and an index (a block row's) or the previous hash before it.
            last_hash(&stored).filter(|_| stored.len() >= 2 + 32)
        }))
    }

    /// The newest snapshot of a session taken at or before `upto`: (seq, bytes). The bytes are
    /// empty when the row cannot be rebuilt (its base gone or damaged): a snapshot that fails
    /// its checks, passed over like any other.
    pub fn snapshot_at_or_before(&self, session_id: &str, upto: u64) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(None) };
        // The snapshot and those before it that its delta chain may name, in one query.
        let rows = self.seq_rows(
            "SELECT seq, body FROM snapshots WHERE session = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT ?3",
            params![num, int(upto), i64::from(delta::MAX_DEPTH) + 1],
        )?;
        match rows.first() {
            None => Ok(None),
            Some((seq, stored)) => {
                Ok(Some((*seq, self.snapshot_bytes_among(num, *seq, stored, delta::MAX_DEPTH, &rows)?)))
            }
        }
    }

    /// Every snapshot of a session, by seq, rebuilt (empty bytes: cannot be, see above).
    pub fn snapshots_of(&self, session_id: &str) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(Vec::new()) };
        let rows = self.seq_rows("SELECT seq, body FROM snapshots WHERE session = ?1 ORDER BY seq", [num])?;
        rows.into_iter()
            .map(|(seq, stored)| Ok((seq, self.snapshot_bytes(num, seq, &stored, delta::MAX_DEPTH)?)))
            .collect()
    }

    /// One stored snapshot row.
    fn snapshot_row(&self, num: i64, seq: u64) -> Result<Option<Vec<u8>>, JournalError> {
        self.conn
            .prepare_cached("SELECT body FROM snapshots WHERE session = ?1 AND seq = ?2")
            .and_then(|mut s| s.query_row(params![num, int(seq)], |r| r.get(0)).optional())
            .map_err(storage)
    }

    /// A stored snapshot row's bytes: itself, or its delta applied to the snapshot it names
    /// (whose depth must be lower, at most `depth_left`). Empty when it cannot be rebuilt.
    fn snapshot_bytes(&self, num: i64, seq: u64, stored: &[u8], depth_left: u8) -> Result<Vec<u8>, JournalError> {
        self.snapshot_bytes_among(num, seq, stored, depth_left, &[])
    }

    /// [`Store::snapshot_bytes`], taking the rows it names from `read` (rows already read, by
    /// seq) where they are there.
    fn snapshot_bytes_among(
        &self,
        num: i64,
        seq: u64,
        stored: &[u8],
        depth_left: u8,
        read: &[(u64, Vec<u8>)],
    ) -> Result<Vec<u8>, JournalError> {
        let Some(stored) = self.snapshot_unpacked(seq, stored) else { return Ok(Vec::new()) };
        match delta::snapshot_form(&stored) {
            Err(_) | Ok(StoredSnapshot::Compressed(_)) => Ok(Vec::new()),
            Ok(StoredSnapshot::Whole(bytes)) => Ok(bytes.to_vec()),
            Ok(StoredSnapshot::Delta { back, depth }) => {
                if back == 0 || back > seq || depth == 0 || depth > depth_left {
                    return Ok(Vec::new());
                }
                let base_seq = seq - back;
                let base = match read.iter().find(|(s, _)| *s == base_seq) {
                    Some((_, row)) => self.snapshot_bytes_among(num, base_seq, row, depth - 1, read)?,
                    None => {
                        let Some(row) = self.snapshot_row(num, base_seq)? else { return Ok(Vec::new()) };
                        self.snapshot_bytes_among(num, base_seq, &row, depth - 1, read)?
                    }
                };
                Ok(delta::decode_snapshot(&stored, &base).unwrap_or_default())
            }
        }
    }

    /// A stored snapshot row as a snapshot whole or a delta: itself, or, compressed by
    /// `chasm gc`, what it holds (one layer: a compressed row in a compressed row is damage).
    /// `None` when it does not decompress.
    fn snapshot_unpacked<'a>(&self, seq: u64, stored: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match delta::snapshot_form(stored) {
            Ok(StoredSnapshot::Compressed(frame)) => self
                .decompressing(seq, |d| d.unframe(frame, "a compressed snapshot", 0))
                .ok()
                .filter(|inner| inner.first() != Some(&super::compressed::TAG))
                .map(Cow::Owned),
            _ => Some(Cow::Borrowed(stored)),
        }
    }

    /// Stores (or replaces) a snapshot: as a delta of the session's previous snapshot when that
    /// is smaller (see `delta::encode_snapshot`).
    pub fn put_snapshot(&self, session_id: &str, seq: u64, body: &[u8]) -> Result<(), JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(()) };
        let previous = self.seq_rows(
            "SELECT seq, body FROM snapshots WHERE session = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT 1",
            params![num, int(seq)],
        )?;
        let base = match previous.into_iter().next() {
            // Decompressed once (gc may have compressed it), for its depth and its bytes; one
            // that does not decompress is no base, and the snapshot is stored whole.
            Some((base_seq, stored)) => match self.snapshot_unpacked(base_seq, &stored) {
                Some(unpacked) => {
                    let depth = match delta::snapshot_form(&unpacked) {
                        Ok(StoredSnapshot::Delta { depth, .. }) => depth,
                        _ => 0,
                    };
                    let bytes = self.snapshot_bytes(num, base_seq, &unpacked, delta::MAX_DEPTH)?;
                    (!bytes.is_empty()).then_some((bytes, seq - base_seq, depth))
                }
                None => None,
            },
            None => None,
        };
        let stored = delta::encode_snapshot(body, base.as_ref().map(|(b, back, d)| (b.as_slice(), *back, *d)));
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO snapshots (session, seq, body) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![num, int(seq), stored]))
            .map(|_| ())
            .map_err(storage)
    }

    /// Removes one snapshot.
    pub fn remove_snapshot(&self, session_id: &str, seq: u64) -> Result<(), JournalError> {
        self.remove_row("DELETE FROM snapshots WHERE session = ?1 AND seq = ?2", session_id, seq)
    }

    /// Runs a `DELETE` of one derived row keyed by (session number, seq).
    fn remove_row(&self, sql: &str, session_id: &str, seq: u64) -> Result<(), JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(()) };
        self.conn.prepare_cached(sql).and_then(|mut s| s.execute(params![num, int(seq)])).map(|_| ()).map_err(storage)
    }

    /// Stores (or replaces) a run of a session's log lines, keyed by its last seq (see
    /// `lines`).
    pub fn put_lines(&self, session_id: &str, seq: u64, body: &[u8]) -> Result<(), JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(()) };
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO lines (session, seq, body) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![num, int(seq), body]))
            .map(|_| ())
            .map_err(storage)
    }

    /// Stores the whole record at `seq` in `finals` (see [`Inserting::row`]).
    fn put_final(&self, num: i64, seq: u64, record: &[u8]) -> Result<(), JournalError> {
        let Some(start) = finals_start(num).filter(|_| int(seq) < FINALS_SPAN) else { return Ok(()) };
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO finals (key, record) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![start + int(seq), record]))
            .map(|_| ())
            .map_err(storage)
    }

    /// A session's `finals` rows with seqs in `lo..=hi`: (seq, record), by seq.
    fn finals_between(&self, session_id: &str, lo: u64, hi: u64) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let Some(start) = self.num(session_id)?.and_then(finals_start) else { return Ok(Vec::new()) };
        let (lo, hi) = (int(lo).min(FINALS_SPAN - 1), int(hi).min(FINALS_SPAN - 1));
        self.seq_rows(
            "SELECT key - ?1, record FROM finals WHERE key BETWEEN ?2 AND ?3 ORDER BY key",
            params![start, start + lo, start + hi],
        )
    }

    /// Every final version a session has in `finals`, by seq.
    pub fn finals_of(&self, session_id: &str) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        self.finals_between(session_id, 0, u64::MAX)
    }

    /// Makes a session's `finals` the given (seq, record) rows.
    pub fn replace_finals(&self, session_id: &str, finals: &[(u64, Vec<u8>)]) -> Result<(), JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(()) };
        let Some(start) = finals_start(num) else { return Ok(()) };
        self.conn
            .execute("DELETE FROM finals WHERE key BETWEEN ?1 AND ?2", [start, start + (FINALS_SPAN - 1)])
            .map_err(storage)?;
        finals.iter().try_for_each(|(seq, record)| self.put_final(num, *seq, record))
    }

    /// Puts in the record cache those of `seqs` (in any order, repeats allowed) that the
    /// session has in `finals`, read as one range of its own rows: a session's requests, which
    /// a snapshot names, are then read from a few pages instead of a page each across the log.
    pub fn read_finals(&self, session_id: &str, seqs: impl IntoIterator<Item = u64>) -> Result<(), JournalError> {
        let mut want: Vec<u64> = {
            let cache = self.cache.borrow();
            seqs.into_iter().filter(|&seq| cache.get(seq).is_none()).collect()
        };
        want.sort_unstable();
        want.dedup();
        let (Some(&lo), Some(&hi)) = (want.first(), want.last()) else { return Ok(()) };
        let rows = self.finals_between(session_id, lo, hi)?;
        let mut cache = self.cache.borrow_mut();
        for (seq, record) in rows {
            // Only a record stored whole is one: anything else is passed over (and read from the log).
            if want.binary_search(&seq).is_ok() && delta::form(&record).is_ok_and(|f| f == Form::Whole) {
                cache.put(seq, Rc::new(record));
            }
        }
        Ok(())
    }

    /// Every stored run of a session's log lines that ends at `from` or later, by last seq.
    pub fn lines_of(&self, session_id: &str, from: u64) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
        let Some(num) = self.num(session_id)? else { return Ok(Vec::new()) };
        let rows = self.seq_rows(
            "SELECT seq, body FROM lines WHERE session = ?1 AND seq >= ?2 ORDER BY seq",
            params![num, int(from)],
        )?;
        Ok(rows.into_iter().map(|(seq, row)| (seq, self.unpacked_row(row))).collect())
    }

    /// Stores compressed what appends stored whole: runs of a session's consecutive records
    /// together in blocks (see `block.rs`), the others alone where they compress (see
    /// `compressed.rs`); rows a pack compressed alone join a block when a run takes them. A
    /// chunk of rows to a transaction, compressed on two threads; then rewrites the database
    /// without the space the rows gave up. Returns how many rows it stored compressed, and in
    /// how many blocks.
    ///
    /// A storage encoding only: every record reads back the same, so nothing derived from the
    /// log changes. A chunk lost to a power cut leaves its rows as they were (a block and the
    /// rows that name it are written in one transaction), so the chunks commit without waiting
    /// for the disk; the rewrite is SQLite's `VACUUM`, which replaces the database whole or not
    /// at all.
    pub fn pack(&self, progress: &crate::progress::Progress) -> Result<Pack, JournalError> {
        // A chunk: 4,096 rows, or as many as make 32 MB (a record may hold a whole session),
        // whichever comes first.
        self.pack_in_chunks(progress, 4096, 32 << 20)
    }

    fn pack_in_chunks(
        &self,
        progress: &crate::progress::Progress,
        chunk_rows: usize,
        chunk_bytes: usize,
    ) -> Result<Pack, JournalError> {
        let total = self.count()?;
        let mut format = self.check_version(self.meta(META_FORMAT)?)?;
        let (mut after, mut packed, mut blocks) = (0i64, 0u64, 0u64);
        loop {
            let rows = self.packable_rows(after, chunk_rows, chunk_bytes)?;
            let Some(last) = rows.last().map(|r| r.seq) else { break };
            after = int(last);
            let writes = plan_pack(&rows);
            let needed = writes.iter().map(|w| if w.block.is_some() { FORMAT_VERSION } else { COMPRESSED_FORMAT });
            let needed = needed.max().unwrap_or(format);
            self.derived_transaction(|s| {
                if needed > format {
                    s.conn
                        .execute(
                            "UPDATE meta SET value = ?2 WHERE key = ?1",
                            params![META_FORMAT, &needed.to_be_bytes()[..]],
                        )
                        .map_err(storage)?;
                }
                let mut update = s.conn.prepare_cached("UPDATE log SET record = ?2 WHERE seq = ?1").map_err(storage)?;
                // A block is never replaced: one already stored under a run's first seq (no row
                // names it; only a hand on the database leaves one) keeps the run's rows as
                // they are, where a failed insert would fail every later gc.
                let mut insert = (s.conn)
                    .prepare_cached("INSERT INTO blocks (first, frame) VALUES (?1, ?2) ON CONFLICT (first) DO NOTHING")
                    .map_err(storage)?;
                for w in &writes {
                    if let Some(frame) = &w.block
                        && insert.execute(params![int(w.rows[0].0), frame]).map_err(storage)? == 0
                    {
                        continue;
                    }
                    for (seq, row) in &w.rows {
                        update.execute(params![int(*seq), row]).map_err(storage)?;
                    }
                    packed += w.rows.len() as u64;
                    blocks += u64::from(w.block.is_some());
                }
                Ok(())
            })?;
            format = format.max(needed);
            progress.report("compressing records", last, total);
        }
        progress.report("compressing snapshots", 0, 1);
        let snapshots = self.pack_derived(Derived::Snapshots, chunk_rows)?;
        progress.report("compressing the caches", 0, 1);
        let lines = self.pack_derived(Derived::Lines, chunk_rows)?;
        let shapes = self.pack_derived(Derived::Shapes, chunk_rows)?;
        let free: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0)).map_err(storage)?;
        if packed > 0 || snapshots > 0 || lines > 0 || shapes > 0 || free > 0 {
            progress.report("giving the space back", 0, 1);
            self.conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);").map_err(storage)?;
        }
        Ok(Pack { records: packed, blocks, snapshots, lines, shapes })
    }

    /// The next chunk of rows after `after` that a pack may store otherwise: those stored whole
    /// (they start with the record version byte) or compressed alone, with their records. A
    /// compressed row that does not read is left out, as it is, for `verify` to name.
    fn packable_rows(&self, after: i64, chunk_rows: usize, chunk_bytes: usize) -> Result<Vec<Packable>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, session, record FROM log WHERE seq > ?1 \
                 AND substr(record, 1, 1) IN (X'01', X'C5') ORDER BY seq",
            )
            .map_err(storage)?;
        let mut found = stmt.query([after]).map_err(storage)?;
        let (mut rows, mut bytes) = (Vec::new(), 0);
        while rows.len() < chunk_rows && bytes < chunk_bytes {
            let Some(row) = found.next().map_err(storage)? else { break };
            let seq = row.get::<_, i64>(0).map_err(storage)? as u64;
            let session = row.get::<_, i64>(1).map_err(storage)?;
            let stored: Vec<u8> = row.get(2).map_err(storage)?;
            let stored_len = stored.len();
            bytes += stored_len;
            let compressed = stored.first() == Some(&super::compressed::TAG);
            let record = match compressed {
                true => self.decompressing(seq, |d| d.decompress(&stored)).ok(),
                false => Some(stored),
            };
            // Shorter than its hashes, a row stored whole is damaged: left as it is too.
            let Some(record) = record.filter(|r| r.len() > 64) else { continue };
            rows.push(Packable { seq, session, record, stored_len, compressed });
        }
        Ok(rows)
    }

    /// Stores compressed each row of a derived table that compresses and is not yet: an older
    /// chasm passes over a row it cannot read, as it does any damaged derived row, and
    /// `verify` rewrites it. A WITHOUT ROWID row of more than ~2 KB takes an overflow page of
    /// its own, so a snapshot of a few KB took three times its bytes; compressed, most fit in
    /// their page. Runs of log lines (kept under that size) and shapes (a few hundred bytes to
    /// tens of KB, a digest or two per request) take about half and four fifths of their bytes.
    /// Returns how many rows it stored compressed.
    fn pack_derived(&self, table: Derived, chunk_rows: usize) -> Result<u64, JournalError> {
        use rusqlite::types::Value;
        let (name, keys, body) = table.columns();
        let n = keys.len();
        let cols = keys.join(", ");
        let holes = (1..=n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        let select = format!(
            "SELECT {cols}, {body} FROM {name} WHERE ({cols}) > ({holes}) AND length({body}) >= ?{} \
             AND substr({body}, 1, 1) != X'C5' ORDER BY {cols} LIMIT ?{}",
            n + 1,
            n + 2
        );
        let matching = keys.iter().enumerate().map(|(i, k)| format!("{k} = ?{}", i + 1)).collect::<Vec<_>>();
        let update = format!("UPDATE {name} SET {body} = ?{} WHERE {}", n + 1, matching.join(" AND "));
        // Before every key: SQLite orders integers before any blob, and every key here is one
        // or the other.
        let (mut after, mut packed) = (vec![Value::Integer(i64::MIN); n], 0u64);
        loop {
            let rows: Vec<(Vec<Value>, Vec<u8>)> = {
                let mut stmt = self.conn.prepare_cached(&select).map_err(storage)?;
                let bounds = [Value::Integer(super::compressed::MIN_LEN as i64), Value::Integer(chunk_rows as i64)];
                let found = stmt
                    .query_map(rusqlite::params_from_iter(after.iter().chain(&bounds)), |r| {
                        Ok(((0..n).map(|i| r.get(i)).collect::<Result<_, _>>()?, r.get(n)?))
                    })
                    .map_err(storage)?;
                found.collect::<Result<_, _>>().map_err(storage)?
            };
            let Some((last, _)) = rows.last() else { break };
            after = last.clone();
            let compressed = on_two_threads(&rows, |(_, body)| body.len(), |c, (_, body)| c.compress_row(body));
            self.derived_transaction(|s| {
                let mut update = s.conn.prepare_cached(&update).map_err(storage)?;
                for ((key, _), row) in rows.iter().zip(&compressed) {
                    if let Some(row) = row {
                        let row: &dyn rusqlite::ToSql = row;
                        let values: Vec<&dyn rusqlite::ToSql> = key.iter().map(|k| k as _).chain([row]).collect();
                        update.execute(&values[..]).map_err(storage)?;
                        packed += 1;
                    }
                }
                Ok(())
            })?;
        }
        Ok(packed)
    }

    /// A row of `lines` or `shapes` as it was written: `chasm gc` may have stored it compressed
    /// ([`Store::pack_derived`]). A row that starts as a compressed one but does not
    /// decompress is returned as it is: a run of lines whose checksum happens to start with
    /// that byte, or damage, which the row's own check then refuses.
    fn unpacked_row(&self, stored: Vec<u8>) -> Vec<u8> {
        if stored.first() != Some(&super::compressed::TAG) {
            return stored;
        }
        let inner = self.decompressing(0, |d| d.unframe(&stored[1..], "a compressed row of derived data", 0));
        inner.ok().filter(|inner| inner.first() != Some(&super::compressed::TAG)).unwrap_or(stored)
    }

    /// Removes one run of log lines.
    pub fn remove_lines(&self, session_id: &str, seq: u64) -> Result<(), JournalError> {
        self.remove_row("DELETE FROM lines WHERE session = ?1 AND seq = ?2", session_id, seq)
    }

    /// Every cached fingerprint's bytes, by session, with the session's record count now.
    pub fn fingerprints_with_events(&self) -> Result<Vec<(String, Vec<u8>, u64)>, JournalError> {
        // Two scans joined here: SQLite's join looks every row of one table up in the other's
        // index, twice the time of reading both (0.59 against 0.30 ms over 1,000 sessions).
        // As in SQL, an id that is not a BLOB (only a hand on the database makes one) joins
        // nothing: a cache miss, not an error.
        let mut events = HashMap::new();
        let mut stmt = self.conn.prepare_cached("SELECT id, events FROM sessions").map_err(storage)?;
        let mut rows = stmt.query([]).map_err(storage)?;
        while let Some(r) = rows.next().map_err(storage)? {
            if let rusqlite::types::ValueRef::Blob(id) = r.get_ref(0).map_err(storage)? {
                events.insert(id.to_vec(), r.get::<_, i64>(1).map_err(storage)? as u64);
            }
        }
        let mut stmt = self.conn.prepare_cached("SELECT session, value FROM fingerprints").map_err(storage)?;
        let mut rows = stmt.query([]).map_err(storage)?;
        let mut out = Vec::with_capacity(events.len());
        while let Some(r) = rows.next().map_err(storage)? {
            let rusqlite::types::ValueRef::Blob(id) = r.get_ref(0).map_err(storage)? else { continue };
            if let Some(&events) = events.get(id) {
                out.push((String::from_utf8_lossy(id).into_owned(), r.get(1).map_err(storage)?, events));
            }
        }
        Ok(out)
    }

    /// A cached shape's row (kept apart from the fingerprint, which every sync reads for every
    /// session, while a shape is read only for a changed file): the `shapes` row of one kept
    /// whole, or the head of one kept in parts (see [`Store::shape_parts`]).
    pub fn shape(&self, session_id: &str) -> Result<Option<Vec<u8>>, JournalError> {
        let key = session_id.as_bytes();
        match self.cached_value("SELECT value FROM shapes WHERE session = ?1", [key])? {
            Some(row) => Ok(Some(self.unpacked_row(row))),
            None => self.cached_value(
                "SELECT value FROM shape_parts WHERE session = ?1 AND part = ?2",
                params![key, HEAD_PART],
            ),
        }
    }

    /// The parts of a shape kept in parts (see [`crate::journal::cache::Shaped`]), in order.
    pub fn shape_parts(&self, session_id: &str) -> Result<Vec<Vec<u8>>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT value FROM shape_parts WHERE session = ?1 AND part >= 0 AND part < ?2 ORDER BY part",
            )
            .map_err(storage)?;
        let rows = stmt.query_map(params![session_id.as_bytes(), HEAD_PART], |r| r.get(0)).map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)
    }

    /// The one value `sql` selects with `params`, if any, by a statement kept prepared.
    fn cached_value(&self, sql: &str, params: impl rusqlite::Params) -> Result<Option<Vec<u8>>, JournalError> {
        self.conn.prepare_cached(sql).and_then(|mut s| s.query_row(params, |r| r.get(0)).optional()).map_err(storage)
    }

    /// What `capture` noted of the file at `path` (see [`crate::journal::Captured`]).
    pub fn captured(&self, path: &[u8]) -> Result<Option<Vec<u8>>, JournalError> {
        self.cached_value("SELECT value FROM captures WHERE path = ?1", [path])
    }

    /// Every note `capture` has kept, path and value, in path order.
    pub fn all_captured(&self) -> Result<Vec<PathNote>, JournalError> {
        let mut stmt = self.conn.prepare_cached("SELECT path, value FROM captures ORDER BY path").map_err(storage)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(storage)?;
        rows.collect::<Result<_, _>>().map_err(storage)
    }

    /// Removes `capture`'s notes of these paths. Inside the caller's transaction.
    pub fn drop_captured(&self, paths: &[Vec<u8>]) -> Result<(), JournalError> {
        let mut drop = self.conn.prepare_cached("DELETE FROM captures WHERE path = ?1").map_err(storage)?;
        for path in paths {
            drop.execute([path]).map_err(storage)?;
        }
        Ok(())
    }

    /// Stores `capture`'s notes, by path. Inside the caller's transaction.
    pub fn put_captured<'a>(&self, rows: impl IntoIterator<Item = (&'a [u8], Vec<u8>)>) -> Result<(), JournalError> {
        let mut put = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO captures (path, value) VALUES (?1, ?2)")
            .map_err(storage)?;
        for (path, value) in rows {
            put.execute(params![path, value]).map_err(storage)?;
        }
        Ok(())
    }

    /// Stores fingerprints and shapes; `None` removes one. Inside the caller's transaction. Of a
    /// shape kept in parts, only the parts that differ from those stored are written.
    pub fn put_fingerprints<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, Option<Vec<u8>>, Option<Shaped>)>,
    ) -> Result<(), JournalError> {
        let prepare = |sql| self.conn.prepare_cached(sql).map_err(storage);
        let mut put = prepare("INSERT OR REPLACE INTO fingerprints (session, value) VALUES (?1, ?2)")?;
        let mut del = prepare("DELETE FROM fingerprints WHERE session = ?1")?;
        let mut put_shape = prepare("INSERT OR REPLACE INTO shapes (session, value) VALUES (?1, ?2)")?;
        let mut del_shape = prepare("DELETE FROM shapes WHERE session = ?1")?;
        let mut stored_parts = prepare("SELECT part, value FROM shape_parts WHERE session = ?1")?;
        let mut put_part = prepare("INSERT OR REPLACE INTO shape_parts (session, part, value) VALUES (?1, ?2, ?3)")?;
        let mut del_part = prepare("DELETE FROM shape_parts WHERE session = ?1 AND part = ?2")?;
        for (id, value, shape) in entries {
            let key = id.as_bytes();
            match value {
                Some(v) => put.execute(params![key, v]),
                None => del.execute([key]),
            }
            .map_err(storage)?;
            // What `shape_parts` should hold for the session: nothing, or the head and the parts.
            let parts: Vec<(i64, Vec<u8>)> = match shape {
                Some(Shaped::Whole(v)) => {
                    put_shape.execute(params![key, v]).map_err(storage)?;
                    Vec::new()
                }
                Some(Shaped::Parted(head, parts)) => {
                    del_shape.execute([key]).map_err(storage)?;
                    let parts = parts.into_iter().enumerate().map(|(k, p)| (k as i64, p));
                    parts.chain([(HEAD_PART, head)]).collect()
                }
                None => {
                    del_shape.execute([key]).map_err(storage)?;
                    Vec::new()
                }
            };
            let mut stored: HashMap<i64, Vec<u8>> = stored_parts
                .query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(storage)?;
            for (k, part) in parts {
                if stored.remove(&k).as_ref() != Some(&part) {
                    put_part.execute(params![key, k, part]).map_err(storage)?;
                }
            }
            for k in stored.into_keys() {
                del_part.execute(params![key, k]).map_err(storage)?;
            }
        }
        Ok(())
    }

    /// SQLite's `integrity_check`: the first thing it finds wrong with the database's pages or
    /// indexes, if anything.
    pub fn integrity_problem(&self) -> Result<Option<String>, JournalError> {
        let first: String = self.conn.query_row("PRAGMA integrity_check(1)", [], |r| r.get(0)).map_err(storage)?;
        Ok((first != "ok").then_some(first))
    }

    /// Runs raw SQL: for tests that damage a journal on purpose.
    #[cfg(test)]
    pub fn execute(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.execute_batch(sql)
    }
}

/// How long a command waits for the journal's lock while another chasm holds it before
/// saying the journal is locked. A background sync round holds it for tens of milliseconds; a
/// command that meets one waits it out instead of failing, as cargo waits for its package
/// cache. The lock is also held, for a moment, by a child another thread of the same process
/// is starting (between its fork and exec the child holds a copy of every descriptor, the lock
/// file's among them, and `flock` belongs to the file description): without the wait, a
/// program that spawns processes while it opens journals sees the lock held by itself.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Takes the journal directory's lock for a command that may write: an exclusive `flock` on
/// its lock file, held until the returned file is dropped. A lock held elsewhere (by a writer
/// or a reader) for longer than [`LOCK_WAIT`] is [`JournalError::Locked`].
pub fn lock(dir: &Path) -> Result<File, JournalError> {
    take_lock(dir, true)
}

/// Takes the journal directory's lock for a command that only reads: a shared `flock`, so that
/// readers run beside each other (a `log` beside a `replay`) while no writer runs beside any.
fn lock_shared(dir: &Path) -> Result<File, JournalError> {
    take_lock(dir, false)
}

fn take_lock(dir: &Path, exclusive: bool) -> Result<File, JournalError> {
    let lock_path = dir.join(LOCK_FILE);
    let cannot_open = |e: std::io::Error| JournalError::Io(format!("cannot open {}: {e}", lock_path.display()));
    let lock = match OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path) {
        Ok(lock) => lock,
        // A journal on read-only media (a backup, a file-system snapshot) is still read: its
        // lock file, which every journal has, is locked as it is (a shared `flock` needs no
        // write access).
        Err(e)
            if !exclusive
                && matches!(
                    e.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
        {
            File::open(&lock_path).map_err(|_| cannot_open(e))?
        }
        Err(e) => return Err(cannot_open(e)),
    };
    let deadline = Instant::now() + LOCK_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let taken = if exclusive { lock.try_lock() } else { lock.try_lock_shared() };
        match taken {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(JournalError::Locked(dir.to_owned())),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(JournalError::Io(format!("cannot lock {}: {e}", lock_path.display())));
            }
        }
    }
}

/// Fsyncs a directory so that a file just created in it survives a power cut. Directories
/// cannot be opened for syncing on every platform; a failure is not an error.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// An SQLite URI that opens `path` read-only as immutable, its bytes percent-encoded (a path
/// may hold `?`, `#` or `%`). `None` where paths are not plain bytes (there the read-write open
/// serves readers too).
#[cfg(unix)]
fn immutable_uri(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

#[cfg(not(unix))]
fn immutable_uri(_path: &Path) -> Option<String> {
    None
}

/// What [`Store::pack`] stored compressed: records (alone or in blocks), blocks, snapshots,
/// runs of log lines, shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pack {
    pub records: u64,
    pub blocks: u64,
    pub snapshots: u64,
    pub lines: u64,
    pub shapes: u64,
}

/// A `captures` row: a file's path (the operating system's bytes) and the note kept of it.
pub type PathNote = (Vec<u8>, Vec<u8>);

/// A table of derived rows [`Store::pack_derived`] stores compressed.
#[derive(Debug, Clone, Copy)]
enum Derived {
    Snapshots,
    Lines,
    Shapes,
}

impl Derived {
    /// Its name, its key's columns and its row's column.
    fn columns(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            Derived::Snapshots => ("snapshots", &["session", "seq"], "body"),
            Derived::Lines => ("lines", &["session", "seq"], "body"),
            Derived::Shapes => ("shapes", &["session"], "value"),
        }
    }
}

/// A row a pack may store otherwise: see [`Store::packable_rows`].
struct Packable {
    seq: u64,
    session: i64,
    /// The record's bytes.
    record: Vec<u8>,
    /// How many bytes its row takes now.
    stored_len: usize,
    /// Whether its row is compressed alone already.
    compressed: bool,
}

/// What a pack writes for some rows: their new rows, and the block they name (keyed by the
/// first row's seq).
struct PackWrite {
    block: Option<Vec<u8>>,
    rows: Vec<(u64, Vec<u8>)>,
}

/// What a pack writes for a chunk of rows: each run of them (see [`block::runs`]) as a block,
/// where that saves an eighth of their rows' bytes, and each other row stored whole compressed
/// alone, where that does.
fn plan_pack(rows: &[Packable]) -> Vec<PackWrite> {
    let shapes: Vec<(u64, i64, usize, bool)> = (rows.iter().enumerate())
        .map(|(i, r)| {
            let chained = i > 0 && block::continues(&rows[i - 1].record, &r.record);
            (r.seq, r.session, r.record.len(), chained)
        })
        .collect();
    // Runs, and single rows between them.
    let mut work: Vec<Range<usize>> = Vec::new();
    let mut next = 0;
    for run in block::runs(&shapes) {
        work.extend((next..run.start).map(|i| i..i + 1));
        next = run.end;
        work.push(run);
    }
    work.extend((next..rows.len()).map(|i| i..i + 1));
    work.retain(|w| w.len() > 1 || !rows[w.start].compressed);
    let frames = on_two_threads(
        &work,
        |w| rows[w.clone()].iter().map(|r| r.record.len()).sum(),
        |c, w| match w.len() {
            1 => c.compress(&rows[w.start].record),
            _ => block::compress(c, &rows[w.clone()].iter().map(|r| r.record.as_slice()).collect::<Vec<_>>()),
        },
    );
    let mut writes = Vec::new();
    for (w, frame) in work.into_iter().zip(frames) {
        let Some(frame) = frame else { continue };
        if w.len() == 1 {
            writes.push(PackWrite { block: None, rows: vec![(rows[w.start].seq, frame)] });
            continue;
        }
        let members = &rows[w];
        let new_rows: Vec<(u64, Vec<u8>)> =
            members.iter().enumerate().map(|(i, r)| (r.seq, block::row(i as u64, &r.record))).collect();
        let before: usize = members.iter().map(|r| r.stored_len).sum();
        let after = frame.len() + new_rows.iter().map(|(_, row)| row.len()).sum::<usize>();
        if after <= before - before / 8 {
            writes.push(PackWrite { block: Some(frame), rows: new_rows });
        }
    }
    writes
}

/// `f` over each of `items` with a compressor, those past half the items' weight on a second
/// thread. Without a compressor (no memory), `None` for all.
fn on_two_threads<T: Sync>(
    items: &[T],
    weight: impl Fn(&T) -> usize,
    f: impl Fn(&mut Compressor, &T) -> Option<Vec<u8>> + Sync,
) -> Vec<Option<Vec<u8>>> {
    let half = |items: &[T]| -> Vec<Option<Vec<u8>>> {
        let mut c = Compressor::new();
        items.iter().map(|item| c.as_mut().and_then(|c| f(c, item))).collect()
    };
    let total: usize = items.iter().map(&weight).sum();
    let mut seen = 0;
    let split = items.iter().take_while(|item| {
        seen += weight(item);
        seen * 2 <= total
    });
    let (first, second) = items.split_at(split.count());
    std::thread::scope(|scope| {
        let other = std::thread::Builder::new().spawn_scoped(scope, || half(second));
        let mut out = half(first);
        match other.map(|h| h.join()) {
            Ok(Ok(rest)) => out.extend(rest),
            _ => out.extend(half(second)),
        }
        out
    })
}

/// Rows being stored in the caller's transaction: see [`Store::insert`].
pub struct Inserting<'s> {
    store: &'s Store,
    /// Session ids → (their number, their record count with the rows stored so far).
    counts: HashMap<String, (i64, u64)>,
}

impl Inserting<'_> {
    /// Stores one row, as a delta against its session's previous one when that is smaller.
    /// Returns the session's record count with it.
    pub fn row(&mut self, seq: u64, session_id: &str, bytes: &Shared) -> Result<u64, JournalError> {
        let mut log = self
            .store
            .conn
            .prepare_cached("INSERT INTO log (session, seq, record) VALUES (?1, ?2, ?3)")
            .map_err(storage)?;
        let num = match self.counts.get(session_id) {
            Some((num, _)) => *num,
            None => self.store.num_or_new(session_id, seq)?,
        };
        // The base: the session's newest record so far (remembered as it is written).
        let base = self.store.base_for(session_id)?;
        let same_entity = base.as_ref().is_some_and(|(_, base, _)| delta::same_entity(base, bytes));
        // When the session moves on to another entity (the next request after a response
        // finished streaming), the previous entity's last version, a delta, is also stored
        // whole in `finals`, among its session's: it is what a snapshot will name as the
        // request's value, and a replay reads a session's requests from one place there
        // instead of a row each across the log (and a chain behind each).
        if let Some((base_seq, base, depth)) = &base
            && *depth > 0
            && !same_entity
        {
            self.store.put_final(num, *base_seq, base)?;
        }
        let stored = base
            .as_ref()
            .filter(|_| same_entity)
            .and_then(|(base_seq, base, depth)| delta::encode(base, *depth, seq - base_seq, bytes));
        let depth = stored.as_deref().map_or(0, delta::depth);
        log.execute(params![num, int(seq), stored.as_deref().unwrap_or(bytes)]).map_err(storage)?;
        self.store.cache.borrow_mut().put(seq, Rc::clone(bytes));
        let mut last = self.store.last.borrow_mut();
        match last.get_mut(session_id) {
            Some(newest) => *newest = (seq, depth),
            None => {
                last.insert(session_id.to_owned(), (seq, depth));
            }
        }
        drop(last);
        match self.counts.get_mut(session_id) {
            Some((_, n)) => {
                *n += 1;
                Ok(*n)
            }
            None => {
                let n = self.store.events_of(num)? + 1;
                self.counts.insert(session_id.to_owned(), (num, n));
                Ok(n)
            }
        }
    }

    /// Stores the new head and each touched session's count.
    pub fn finish(self, head: [u8; 48]) -> Result<(), JournalError> {
        // One prepared update by rowid for each session touched. A single statement joining a
        // JSON list of them (json_each, each value read by path) cost more: 5% more of the
        // storing thread's instructions at batch 256 over 97 sessions.
        let mut update =
            self.store.conn.prepare_cached("UPDATE sessions SET events = ?2 WHERE num = ?1").map_err(storage)?;
        for (num, n) in self.counts.values() {
            update.execute(params![num, int(*n)]).map_err(storage)?;
        }
        self.store.events.borrow_mut().extend(self.counts.into_values());
        self.store
            .conn
            .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![META_HEAD, &head[..]]))
            .map_err(storage)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal written before one of the later tables existed is read as it is: the reader
    /// finds the table empty (no "no such table"), the records as they were, and writes nothing
    /// (so a backup on read-only media reads too); the next writer adds the table to the journal.
    #[test]
    fn reading_a_journal_without_a_later_table_writes_nothing() {
        use crate::journal::{Journal, OpenMode};
        let in_main = |c: &Connection, table: &str| -> bool {
            let q = "SELECT count(*) FROM main.sqlite_schema WHERE type = 'table' AND name = ?1";
            c.query_row(q, [table], |r| r.get::<_, i64>(0)).unwrap() == 1
        };
        for (table, _) in LATER_TABLES {
            let dir = tempfile::tempdir().unwrap();
            let mut j = Journal::open(dir.path(), OpenMode::Create).unwrap();
            let change = crate::journal::tests::change;
            let records = j.append(vec![change("s1", "a"), change("s1", "b")]).unwrap();
            drop(j);
            let raw = Connection::open(dir.path().join(DB_FILE)).unwrap();
            raw.execute_batch(&format!("DROP TABLE {table}")).unwrap();
            drop(raw);
            let before = std::fs::read(dir.path().join(DB_FILE)).unwrap();

            let j = Journal::open(dir.path(), OpenMode::Read).unwrap();
            assert!(!in_main(&j.store.conn, table), "{table} made in the journal by a reader");
            let rows = j.store.conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0));
            assert_eq!(rows.unwrap(), 0, "{table}");
            assert_eq!((j.get(1).unwrap(), j.get(2).unwrap()), (Some(records[0].clone()), Some(records[1].clone())));
            assert_eq!(j.session_events("s1").unwrap(), records);
            drop(j);
            assert!(std::fs::read(dir.path().join(DB_FILE)).unwrap() == before, "{table}: the journal was written");
            assert!(!dir.path().join(WAL_FILE).exists());

            let j = Journal::open(dir.path(), OpenMode::Existing).unwrap();
            assert!(in_main(&j.store.conn, table), "{table} not made by a writer");
        }
    }

    /// Each fingerprint comes with its session's record count; one whose session has no
    /// records, or whose key is not the BLOB chasm writes (only a hand on the database makes
    /// one), joins nothing, as in SQL: a cache miss, not an error.
    #[test]
    fn fingerprints_come_with_their_sessions_counts_and_strays_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        let change = crate::journal::tests::change;
        j.append(vec![change("a", "r1"), change("b", "r1"), change("a", "r2")]).unwrap();
        let fp = |s: &'static str| (s, Some(s.as_bytes().to_vec()), None);
        j.store.put_fingerprints([fp("a"), fp("b"), fp("gone")]).unwrap();
        j.store.conn.execute("INSERT INTO fingerprints (session, value) VALUES ('b', x'00')", []).unwrap();
        let mut rows = j.store.fingerprints_with_events().unwrap();
        rows.sort();
        assert_eq!(rows, [("a".to_owned(), b"a".to_vec(), 2), ("b".to_owned(), b"b".to_vec(), 1)]);
    }

    /// A shape kept in parts is written part by part: a request added or changed rewrites the
    /// head and the part that holds it, nothing else; a shorter shape takes its extra parts
    /// away, and one stored whole, or none, all of them and the head.
    #[test]
    fn a_shape_in_parts_rewrites_only_the_parts_that_changed() {
        use crate::journal::cache::{PART_REQUESTS, Shaped, shaped};
        let dir = tempfile::tempdir().unwrap();
        let j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        let held = |n: usize, changed: usize| crate::journal::Held {
            last_seq: 7,
            local_seq: 0,
            remote_seq: 7,
            shape: crate::shape::Shape {
                fields: serde_json::Map::new(),
                requests: (0..n).map(|i| (format!("r{i}"), [u8::from(i == changed); 32])).collect(),
            },
            sources: (0..n as u64).map(|i| (i + 1, None)).collect(),
            log: None,
        };
        let put = |h: Option<Shaped>| {
            let before = j.store.conn.total_changes();
            j.store.put_fingerprints([("s", None, h)]).unwrap();
            j.store.conn.total_changes() - before
        };
        let parts = || j.store.shape_parts("s").unwrap();
        let n = 3 * PART_REQUESTS + 2;
        assert!(matches!(shaped(&held(n, n)), Shaped::Parted(_, ref p) if p.len() == 4));
        // Everything the first time: the head and four parts.
        assert_eq!(put(Some(shaped(&held(n, n)))), 1 + 4);
        let first = parts();
        // One request of the second part changed: the head and that part.
        assert_eq!(put(Some(shaped(&held(n, PART_REQUESTS + 3)))), 1 + 1);
        let second = parts();
        assert_eq!((first[0] == second[0], first[1] == second[1], first[2..] == second[2..]), (true, false, true));
        // One request added: the head and the last part.
        assert_eq!(put(Some(shaped(&held(n + 1, PART_REQUESTS + 3)))), 1 + 1);
        // Two parts fewer: the head, the new last part, and two taken away.
        assert_eq!(put(Some(shaped(&held(2 * PART_REQUESTS - 1, PART_REQUESTS + 3)))), 1 + 1 + 2);
        assert_eq!(parts().len(), 2);
        let back = crate::journal::cache::decode_parted(&j.store.shape("s").unwrap().unwrap(), &parts());
        assert_eq!(back, Some(held(2 * PART_REQUESTS - 1, PART_REQUESTS + 3)));
        // Whole (a `shapes` row), or none: no part left, nor the head.
        assert!(matches!(shaped(&held(PART_REQUESTS, 0)), Shaped::Whole(_)));
        assert_eq!(put(Some(shaped(&held(PART_REQUESTS, 0)))), 1 + 2 + 1);
        let rows = j.store.seq_rows("SELECT part, value FROM shape_parts", []).unwrap();
        assert!(rows.is_empty());
        assert_eq!(
            crate::journal::cache::decode_held(&j.store.shape("s").unwrap().unwrap()),
            Some(held(PART_REQUESTS, 0))
        );
        // In parts again: the `shapes` row goes, the head and parts come.
        assert_eq!(put(Some(shaped(&held(n, n)))), 1 + 4 + 1);
        assert!(crate::journal::cache::is_parted(&j.store.shape("s").unwrap().unwrap()));
        assert_eq!(put(None), 4 + 1);
        assert!(parts().is_empty() && j.store.shape("s").unwrap().is_none());
    }

    #[test]
    fn heads_round_trip() {
        let v = head_value(258, &[7; 32], 200);
        assert_eq!(parse_head(&v), Some((258, [7; 32], 200)));
        assert_eq!(parse_head(&v[..40]), None);
    }

    #[test]
    fn streamed_versions_are_deltas_and_the_last_before_another_entity_is_also_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        let text = "word ".repeat(200);
        let version = |entity: &str, n: usize| crate::journal::NewChange {
            payload: serde_json::json!({"index": 0, "request": {"requestId": entity, "response": [{"value": format!("{text}{}", "more ".repeat(n))}]}}),
            ..crate::journal::tests::change("s", entity)
        };
        // Five versions of r1 in one append, three more in another, then r2.
        j.append((0..5).map(|n| version("r1", n)).collect()).unwrap();
        j.append((5..8).map(|n| version("r1", n)).collect()).unwrap();
        let appended = j.append(vec![version("r2", 0)]).unwrap();
        let forms: Vec<Form> =
            (1..=9).map(|seq| delta::form(&j.store.stored(seq).unwrap().unwrap()).unwrap()).collect();
        assert_eq!(forms[0], Form::Whole);
        assert!(forms[1..7].iter().all(|f| matches!(f, Form::Delta { back: 1, .. })), "{forms:?}");
        assert!(matches!(forms[7], Form::Delta { back: 1, .. }), "{forms:?}");
        // r1's last version, once r2 began, is also stored whole among the session's finals.
        assert_eq!(j.store.finals_of("s").unwrap(), [(8, j.store.get(8).unwrap().unwrap().to_vec())]);
        // Every record reads back exactly, from a fresh store as from the cache.
        let all: Vec<_> = j.iter().collect::<Result<_, _>>().unwrap();
        drop(j);
        let j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Existing).unwrap();
        assert_eq!(j.iter().collect::<Result<Vec<_>, _>>().unwrap(), all);
        assert_eq!(all[8], appended[0]);
        assert!(j.verify().unwrap().problems.is_empty());
    }

    /// A session's requests, each a record of a kilobyte and more: what a first sync stores.
    fn requests(n: usize) -> Vec<crate::journal::NewChange> {
        (0..n).map(|i| request("s", i)).collect()
    }

    /// Request `i` of `session`.
    fn request(session: &str, i: usize) -> crate::journal::NewChange {
        crate::journal::NewChange {
            payload: serde_json::json!({"index": i, "request": {"requestId": format!("r{i}"),
                "response": [{"value": "the borrow checker says the value moved here; ".repeat(20 + i)}]}}),
            ..crate::journal::tests::change(session, &format!("r{i}"))
        }
    }

    fn stored_form(j: &crate::journal::Journal, seq: u64) -> Form {
        delta::form(&j.store.stored(seq).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn a_pack_stores_runs_in_blocks_and_others_alone_and_they_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        // One batch sealed on a second thread, then small ones sealed as they are stored: one
        // session's records one after another, as a first sync stores them.
        let mut appended = j.append(requests(70)).unwrap();
        for change in requests(73).split_off(70) {
            appended.extend(j.append(vec![change]).unwrap());
        }
        // A streamed response: its versions are deltas, which a pack leaves as they are.
        let streamed = |n: usize| crate::journal::NewChange {
            change_type: crate::journal::ChangeType::Update,
            payload: serde_json::json!({"index": 72, "request": {"requestId": "r72",
                "response": [{"value": format!("{}{}", "the borrow checker says the value moved here; ".repeat(92), "more ".repeat(n))}]}}),
            ..crate::journal::tests::change("s", "r72")
        };
        appended.extend(j.append((1..4).map(streamed).collect()).unwrap());
        // Another session's request, alone between its neighbours; then a short record.
        appended.extend(j.append(vec![request("t", 5)]).unwrap());
        appended.extend(
            j.append(vec![crate::journal::NewChange {
                payload: serde_json::json!({"index": 73, "request": {"requestId": "r73", "response": []}}),
                ..crate::journal::tests::change("s", "r73")
            }])
            .unwrap(),
        );
        assert!(appended.iter().all(|r| matches!(stored_form(&j, r.seq), Form::Whole | Form::Delta { .. })));
        let stored_bytes = |j: &crate::journal::Journal| -> usize {
            let rows: i64 = j.store.conn.query_row("SELECT sum(length(record)) FROM log", [], |r| r.get(0)).unwrap();
            let blocks: Option<i64> =
                j.store.conn.query_row("SELECT sum(length(frame)) FROM blocks", [], |r| r.get(0)).unwrap();
            (rows + blocks.unwrap_or(0)) as usize
        };
        let before = stored_bytes(&j);
        let packed = j.pack(&crate::progress::Progress::default()).unwrap();
        assert_eq!((packed.records, packed.blocks), (74, 2), "{packed:?}");
        assert!(packed.bytes_after < packed.bytes_before, "{packed:?}");
        assert!(stored_bytes(&j) < before / 4, "{} of {before}", stored_bytes(&j));
        // The 73 requests in two blocks of consecutive records, cut at the block size.
        let indexes: Vec<u64> = (1..=73)
            .map(|seq| match stored_form(&j, seq) {
                Form::InBlock { index } => index,
                other => panic!("record {seq} is {other:?}"),
            })
            .collect();
        let second = indexes.iter().rposition(|&i| i == 0).unwrap();
        assert!(second > 1 && indexes.iter().enumerate().all(|(i, &x)| x == (i % second) as u64), "{indexes:?}");
        for r in &appended[..73] {
            // Its hash is where every row keeps it.
            assert_eq!(j.store.filed_hash("s", r.seq).unwrap(), Some(r.hash));
        }
        assert!((74..=76).all(|seq| matches!(stored_form(&j, seq), Form::Delta { .. })));
        assert_eq!(stored_form(&j, 77), Form::Compressed);
        assert_eq!(stored_form(&j, 78), Form::Whole);
        // A second pack finds nothing to do.
        assert_eq!(j.pack(&crate::progress::Progress::default()).unwrap().records, 0);
        // From a fresh store (nothing cached), every way of reading gives the records back.
        drop(j);
        let j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Read).unwrap();
        assert_eq!(j.get(40).unwrap().as_ref(), Some(&appended[39]));
        assert_eq!(j.get(75).unwrap().as_ref(), Some(&appended[74]));
        assert_eq!(j.iter().collect::<Result<Vec<_>, _>>().unwrap(), appended);
        assert!(j.state_at("s", u64::MAX).unwrap().is_some());
        drop(j);
        let j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Existing).unwrap();
        let report = j.verify().unwrap();
        assert!(report.problems.is_empty() && report.snapshots_rebuilt == 0, "{report:?}");
    }

    #[test]
    fn a_pack_goes_through_every_chunk_and_a_later_one_takes_rows_compressed_alone_into_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        // Chunks of three rows: three blocks, and the tenth row alone.
        let progress = crate::progress::Progress::default();
        let mut appended = j.append(requests(10)).unwrap();
        let pack = j.store.pack_in_chunks(&progress, 3, usize::MAX).unwrap();
        assert_eq!((pack.records, pack.blocks), (10, 3));
        assert_eq!(stored_form(&j, 10), Form::Compressed);
        // Then, for ten more records, chunks of as many as make 2 KB: the tenth joins a block.
        appended.extend(j.append(requests(10)).unwrap());
        let Pack { records, blocks, .. } = j.store.pack_in_chunks(&progress, usize::MAX, 2048).unwrap();
        assert!(records == 11 && blocks >= 5, "{records} records in {blocks} blocks");
        assert!(appended.iter().all(|r| matches!(stored_form(&j, r.seq), Form::InBlock { .. })));
        drop(j);
        let j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Read).unwrap();
        assert_eq!(j.iter().collect::<Result<Vec<_>, _>>().unwrap(), appended);
    }

    #[test]
    fn a_pack_stores_snapshots_compressed_and_every_point_replays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        // Three snapshots due (at 64, 128, 192): the first stored whole, the others as deltas.
        j.append((0..200).map(|i| request("s", i % 40)).collect()).unwrap();
        let snapshots = j.store.snapshots_of("s").unwrap();
        assert_eq!(snapshots.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [64, 128, 192]);
        let states: Vec<_> = (1..=200).map(|at| j.state_at("s", at).unwrap()).collect();
        let pack = j.store.pack(&crate::progress::Progress::default()).unwrap();
        assert_eq!(pack.snapshots, 3, "{pack:?}");
        let rows = j.store.seq_rows("SELECT seq, body FROM snapshots ORDER BY seq", []).unwrap();
        assert!(rows.iter().all(|(_, row)| row[0] == super::super::compressed::TAG));
        // Read back from a fresh store: the same snapshots, and every point the same.
        drop(j);
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Existing).unwrap();
        assert_eq!(j.store.snapshots_of("s").unwrap(), snapshots);
        assert_eq!((1..=200).map(|at| j.state_at("s", at).unwrap()).collect::<Vec<_>>(), states);
        // The next snapshot is stored against a compressed one; a second pack compresses it only.
        j.append((0..64).map(|i| request("s", i % 40)).collect()).unwrap();
        assert_eq!(j.store.snapshots_of("s").unwrap().len(), 4);
        let newest = j.store.seq_rows("SELECT seq, body FROM snapshots WHERE seq = 256", []).unwrap();
        assert!(matches!(delta::snapshot_form(&newest[0].1), Ok(StoredSnapshot::Delta { back: 64, depth: 3 })));
        assert_eq!(j.store.pack(&crate::progress::Progress::default()).unwrap().snapshots, 1);
        let report = j.verify().unwrap();
        assert!(report.problems.is_empty() && report.snapshots_rebuilt == 0, "{report:?}");
    }

    /// The sync's shapes and the runs of log lines are stored compressed by a pack and read
    /// back as they were written: the next sync still diffs a changed file against the shape
    /// (none is a cache miss, a full read of the session), and `log SESSION` still reads the
    /// runs (none is a read of every record).
    #[test]
    fn a_pack_stores_shapes_and_runs_of_lines_compressed_and_they_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        // A shape kept whole (one kept in parts has no row large enough to compress).
        let n = super::super::cache::PART_REQUESTS as u64;
        let ids: Vec<String> = (0..n).map(|i| format!("request_{i:08x}-0000")).collect();
        let digest = |i: usize| <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(i.to_le_bytes()));
        let held = crate::journal::Held {
            last_seq: 0,
            local_seq: 0,
            remote_seq: 0,
            shape: crate::shape::Shape {
                fields:
                    serde_json::json!({"customTitle": "Why the borrow checker says the value moved", "requests": null,
                        "inputState": {"inputText": "why does the value move here ".repeat(40)}})
                    .as_object()
                    .unwrap()
                    .clone(),
                requests: ids.iter().enumerate().map(|(i, id)| (id.clone(), digest(i))).collect(),
            },
            sources: (0..n).map(|i| (i + 1, None)).collect(),
            log: None,
        };
        let fingerprint = crate::journal::Fingerprint { token: "t".into(), ..Default::default() };
        let mut in_step = vec![("s".to_owned(), Some(fingerprint), Some(held))];
        j.append_noting((0..200).map(|i| request("s", i % 40)).collect(), &mut in_step).unwrap();
        let (shape, runs) = (j.store.shape("s").unwrap().unwrap(), j.store.lines_of("s", 0).unwrap());
        let held = j.held("s").unwrap().unwrap();
        assert_eq!(runs.len(), 3, "a run with each snapshot");

        let pack = j.store.pack(&crate::progress::Progress::default()).unwrap();
        assert_eq!((pack.lines, pack.shapes), (3, 1), "{pack:?}");
        let stored = |sql: &str| j.store.seq_rows(sql, []).unwrap();
        let rows = [stored("SELECT seq, body FROM lines"), stored("SELECT 0, value FROM shapes")].concat();
        assert!(rows.iter().all(|(_, row)| row[0] == super::super::compressed::TAG), "{rows:?}");
        // Read back from a fresh store: the same bytes, and the shape still in step.
        drop(j);
        let j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Existing).unwrap();
        assert_eq!((j.store.shape("s").unwrap().unwrap(), j.store.lines_of("s", 0).unwrap()), (shape, runs.clone()));
        assert_eq!(j.held("s").unwrap(), Some(held));
        let report = j.verify().unwrap();
        assert!(report.problems.is_empty() && report.lines_rebuilt == 0, "{report:?}");
        // A second pack finds nothing more to compress; a shape the next sync writes is stored
        // as it is, until the next pack.
        let again = j.store.pack(&crate::progress::Progress::default()).unwrap();
        assert_eq!((again.lines, again.shapes), (0, 0), "{again:?}");

        // A row that starts with the compressed rows' byte but holds no frame (a run whose
        // checksum starts with that byte) comes back as it is, for the run's own checks.
        let mut plain = runs[0].1.clone();
        plain[0] = super::super::compressed::TAG;
        j.store.put_lines("s", runs[0].0, &plain).unwrap();
        assert_eq!(j.store.lines_of("s", 0).unwrap()[0].1, plain);
    }

    #[test]
    fn a_damaged_compressed_row_is_reported_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        // Sessions in turn: no runs, each row compressed alone.
        j.append(vec![request("s", 1), request("t", 2), request("s", 3)]).unwrap();
        j.pack(&crate::progress::Progress::default()).unwrap();
        let mut row = j.store.stored(2).unwrap().unwrap();
        assert_eq!(row[0], super::super::compressed::TAG);
        let middle = row.len() / 2;
        row[middle] ^= 0xFF;
        j.store.conn.execute("UPDATE log SET record = ?1 WHERE seq = 2", [&row]).unwrap();
        drop(j);
        let j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Existing).unwrap();
        assert!(matches!(j.get(2), Err(JournalError::Corrupt { seq: 2, .. })));
        let report = j.verify().unwrap();
        assert_eq!(report.first_problem().map(|p| p.seq), Some(2), "{report:?}");
    }

    #[test]
    fn a_damaged_or_missing_block_is_reported_for_each_of_its_records_and_a_second_pack_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        j.append(vec![request("t", 0)]).unwrap();
        j.append(requests(3)).unwrap();
        assert_eq!(j.pack(&crate::progress::Progress::default()).unwrap().blocks, 1);
        let mut frame: Vec<u8> =
            j.store.conn.query_row("SELECT frame FROM blocks WHERE first = 2", [], |r| r.get(0)).unwrap();
        let middle = frame.len() / 2;
        frame[middle] ^= 0xFF;
        j.store.conn.execute("UPDATE blocks SET frame = ?1 WHERE first = 2", [&frame]).unwrap();
        drop(j);
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Existing).unwrap();
        assert!(j.get(1).unwrap().is_some());
        for seq in 2..=4 {
            assert!(matches!(j.get(seq), Err(JournalError::Corrupt { seq: s, .. }) if s == seq), "record {seq}");
        }
        assert_eq!(j.verify().unwrap().first_problem().map(|p| p.seq), Some(2));
        // A pack leaves the rows that name it as they are: the damage stays where verify finds it.
        assert_eq!(j.pack(&crate::progress::Progress::default()).unwrap().records, 0);
        j.store.conn.execute("DELETE FROM blocks", []).unwrap();
        let Err(JournalError::Corrupt { seq: 3, reason }) = j.get(3) else { panic!("a missing block read") };
        assert!(reason.contains("block, from record 2 on, is missing"), "{reason}");
    }

    /// A block no row names (left by a hand on the database: rows put back whole) is never
    /// replaced, and does not stop a later pack: the run it would take stays as it is.
    #[test]
    fn a_pack_meeting_a_block_already_stored_leaves_that_run_and_packs_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        let appended = j.append(requests(3)).unwrap();
        assert_eq!(j.pack(&crate::progress::Progress::default()).unwrap().blocks, 1);
        let frame = |j: &crate::journal::Journal| -> Vec<u8> {
            j.store.conn.query_row("SELECT frame FROM blocks WHERE first = 1", [], |r| r.get(0)).unwrap()
        };
        let stray = frame(&j);
        for r in &appended {
            j.store.conn.execute("UPDATE log SET record = ?2 WHERE seq = ?1", params![int(r.seq), r.encode()]).unwrap();
        }
        drop(j);
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Existing).unwrap();
        let more = j.append((3..6).map(|i| request("t", i)).collect()).unwrap();
        let packed = j.pack(&crate::progress::Progress::default()).unwrap();
        assert_eq!((packed.records, packed.blocks), (3, 1), "{packed:?}");
        assert_eq!(frame(&j), stray, "never replaced");
        assert!((1..=3).all(|seq| stored_form(&j, seq) == Form::Whole));
        assert!(more.iter().all(|r| matches!(stored_form(&j, r.seq), Form::InBlock { .. })));
        let all: Vec<_> = appended.into_iter().chain(more).collect();
        assert_eq!(j.iter().collect::<Result<Vec<_>, _>>().unwrap(), all);
        assert!(j.verify().unwrap().problems.is_empty());
    }

    #[test]
    fn older_formats_are_read_and_written_as_they_are_and_marked_by_the_pack_that_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Create).unwrap();
        let first = j.append(vec![crate::journal::tests::change("s", "a")]).unwrap();
        j.store.execute("UPDATE meta SET value = X'00000002' WHERE key = 'format'").unwrap();
        drop(j);
        let format = |j: &crate::journal::Journal| j.store.meta(META_FORMAT).unwrap().unwrap();
        let j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Read).unwrap();
        assert_eq!(j.iter().collect::<Result<Vec<_>, _>>().unwrap(), first);
        assert_eq!(format(&j), 2u32.to_be_bytes());
        drop(j);
        // A record compressed alone: format 3.
        let mut j = crate::journal::Journal::open(dir.path(), crate::journal::OpenMode::Existing).unwrap();
        j.append(vec![request("t", 1)]).unwrap();
        assert_eq!(format(&j), 2u32.to_be_bytes());
        j.pack(&crate::progress::Progress::default()).unwrap();
        assert_eq!(format(&j), COMPRESSED_FORMAT.to_be_bytes());
        assert_eq!(stored_form(&j, 2), Form::Compressed);
        // A block: format 4.
        j.append(vec![request("t", 2)]).unwrap();
        j.pack(&crate::progress::Progress::default()).unwrap();
        assert_eq!(format(&j), FORMAT_VERSION.to_be_bytes());
        assert_eq!(stored_form(&j, 3), Form::InBlock { index: 1 });
        assert!(j.verify().unwrap().problems.is_empty());
    }

    #[test]
    fn a_prefix_lists_only_sessions_that_start_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rows: Vec<Row> = ["ab", "abc", "abd", "b"]
            .iter()
            .enumerate()
            .map(|(i, id)| Row { seq: i as u64 + 1, session_id: (*id).into(), bytes: Rc::new(vec![0]) })
            .collect();
        store.transaction(|s| s.insert(&rows, head_value(4, &[0; 32], 1))).unwrap();
        let ids = |p: &str, n| store.sessions_where(p, n).unwrap().into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids("ab", 10), ["ab", "abc", "abd"]);
        assert_eq!(ids("abc", 10), ["abc"]);
        assert_eq!(ids("ab", 2), ["ab", "abc"]);
        assert_eq!(ids("c", 10), Vec::<String>::new());
        assert_eq!(store.session_seqs("abc", 0, u64::MAX).unwrap(), [2]);
    }
}
