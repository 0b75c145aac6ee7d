//! Everything that knows the journal lives in sled: tree names, key encodings, the transaction
//! that appends a batch, and the flush-then-fsync durability point. Keeping sled behind this
//! one module means another engine could replace it without touching the rest of chasm.

use std::fs::File;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::JournalError;

/// The on-disk format this chasm reads and writes (meta key `format`).
pub const FORMAT_VERSION: u32 = 1;

pub const TREE_META: &str = "meta";
pub const TREE_LOG: &str = "log";
pub const TREE_SESSION_LOG: &str = "session_log";
pub const TREE_SESSIONS: &str = "sessions";
/// Derived per-session snapshots (see `snapshot.rs`); keys as in `session_log`.
pub const TREE_SNAPSHOTS: &str = "snapshots";
/// A cache of what each session's provider file looked like when it was last in step (see
/// `Journal::fingerprint`); keys are session ids. Not part of the history.
pub const TREE_FINGERPRINTS: &str = "fingerprints";

pub const META_FORMAT: &[u8] = b"format";
pub const META_HEAD: &[u8] = b"head";

/// `log` key: the seq, big-endian, so sled's byte order is seq order.
pub fn log_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Decodes a `log` key.
pub fn parse_log_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// The prefix of one session's `session_log` keys: the id's length (u16 BE) then its bytes. The
/// length makes the prefix unambiguous: no id's prefix is another id's prefix.
pub fn session_prefix(session_id: &str) -> Vec<u8> {
    let len = u16::try_from(session_id.len()).expect("session ids are validated to fit a u16");
    let mut key = Vec::with_capacity(2 + session_id.len() + 8);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(session_id.as_bytes());
    key
}

/// `session_log` key: [`session_prefix`] then the seq, big-endian.
pub fn session_log_key(session_id: &str, seq: u64) -> Vec<u8> {
    let mut key = session_prefix(session_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Decodes a `session_log` key into (session id, seq).
pub fn parse_session_log_key(key: &[u8]) -> Option<(String, u64)> {
    let len = u16::from_be_bytes(key.get(..2)?.try_into().ok()?) as usize;
    let id = key.get(2..2 + len)?;
    let seq = key.get(2 + len..)?;
    Some((String::from_utf8(id.to_vec()).ok()?, u64::from_be_bytes(seq.try_into().ok()?)))
}

/// `meta/head` value: last seq (u64 BE) ‖ its hash ‖ the first seq of the batch that ended
/// there (u64 BE), so that an append that failed part-way can be found and rolled back.
pub fn head_value(seq: u64, hash: &[u8; 32], batch_first: u64) -> [u8; 48] {
    let mut v = [0; 48];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..40].copy_from_slice(hash);
    v[40..].copy_from_slice(&batch_first.to_be_bytes());
    v
}

/// Decodes `meta/head`: (last seq, its hash, first seq of its batch). A 40-byte head (written
/// before batches were recorded) counts as a batch of one.
pub fn parse_head(v: &[u8]) -> Option<(u64, [u8; 32], u64)> {
    if v.len() != 40 && v.len() != 48 {
        return None;
    }
    let seq = u64::from_be_bytes(v[..8].try_into().ok()?);
    let hash: [u8; 32] = v[8..40].try_into().ok()?;
    let first = if v.len() == 48 { u64::from_be_bytes(v[40..].try_into().ok()?) } else { seq };
    Some((seq, hash, first))
}

/// One record ready to be stored.
pub struct Row {
    pub seq: u64,
    pub session_id: String,
    pub bytes: Vec<u8>,
}

/// The open sled database and its trees.
///
/// The handles are dropped by hand: sled flushes on drop, and after a failed write (a full
/// disk) that flush waits forever for a write that will never succeed. A store that saw a
/// write fail is poisoned and lets its handles go without flushing; what was acknowledged is
/// already durable, and sled's recovery drops the unfinished rest on the next open.
pub struct Store {
    pub dir: PathBuf,
    db: ManuallyDrop<sled::Db>,
    pub meta: ManuallyDrop<sled::Tree>,
    pub log: ManuallyDrop<sled::Tree>,
    pub session_log: ManuallyDrop<sled::Tree>,
    pub sessions: ManuallyDrop<sled::Tree>,
    pub snapshots: ManuallyDrop<sled::Tree>,
    pub fingerprints: ManuallyDrop<sled::Tree>,
    /// sled's data file, kept open to `sync_all` after each flush.
    db_file: File,
    poisoned: AtomicBool,
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.poisoned.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: each handle is dropped exactly once, here, and the store is gone after.
        unsafe {
            ManuallyDrop::drop(&mut self.meta);
            ManuallyDrop::drop(&mut self.log);
            ManuallyDrop::drop(&mut self.session_log);
            ManuallyDrop::drop(&mut self.sessions);
            ManuallyDrop::drop(&mut self.snapshots);
            ManuallyDrop::drop(&mut self.fingerprints);
            ManuallyDrop::drop(&mut self.db);
        }
    }
}

fn storage(e: sled::Error) -> JournalError {
    JournalError::Storage(e.to_string())
}

impl Store {
    /// Opens (creating if needed) the sled database in `dir`, which must exist.
    pub fn open(dir: &Path) -> Result<Store, JournalError> {
        let db = sled::Config::new().path(dir).open().map_err(|e| match &e {
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                JournalError::Locked(dir.to_owned())
            }
            _ => JournalError::Storage(format!("cannot open {}: {e}", dir.display())),
        })?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let (meta, log, session_log, sessions) =
            (tree(TREE_META)?, tree(TREE_LOG)?, tree(TREE_SESSION_LOG)?, tree(TREE_SESSIONS)?);
        let (snapshots, fingerprints) = (tree(TREE_SNAPSHOTS)?, tree(TREE_FINGERPRINTS)?);
        let db_file = File::open(dir.join("db"))
            .map_err(|e| JournalError::Io(format!("cannot open {}: {e}", dir.join("db").display())))?;
        Ok(Store {
            dir: dir.to_owned(),
            db: ManuallyDrop::new(db),
            meta: ManuallyDrop::new(meta),
            log: ManuallyDrop::new(log),
            session_log: ManuallyDrop::new(session_log),
            sessions: ManuallyDrop::new(sessions),
            snapshots: ManuallyDrop::new(snapshots),
            fingerprints: ManuallyDrop::new(fingerprints),
            db_file,
            poisoned: AtomicBool::new(false),
        })
    }

    /// Reads the stored format version, writing [`FORMAT_VERSION`] into a new journal.
    pub fn check_format(&self) -> Result<(), JournalError> {
        match self.meta.get(META_FORMAT).map_err(storage)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| JournalError::UnknownFormat(self.dir.clone()))?;
                if found == FORMAT_VERSION {
                    Ok(())
                } else if found > FORMAT_VERSION {
                    Err(JournalError::NewerFormat { dir: self.dir.clone(), found, supported: FORMAT_VERSION })
                } else {
                    Err(JournalError::UnknownFormat(self.dir.clone()))
                }
            }
            None if self.log.is_empty() && self.session_log.is_empty() && self.sessions.is_empty() => {
                self.meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes()).map_err(storage)?;
                self.sync()
            }
            None => Err(JournalError::UnknownFormat(self.dir.clone())),
        }
    }

    /// The last record's (seq, stored bytes), if any.
    pub fn last(&self) -> Result<Option<(u64, sled::IVec)>, JournalError> {
        match self.log.last().map_err(storage)? {
            None => Ok(None),
            Some((k, v)) => {
                let seq = parse_log_key(&k)
                    .ok_or_else(|| JournalError::Corrupt { seq: 0, reason: "a log key is not 8 bytes".into() })?;
                Ok(Some((seq, v)))
            }
        }
    }

    /// Writes a batch of records and their index entries in one transaction, then makes it
    /// durable with a single flush: the group commit.
    pub fn append(&self, rows: &[Row], head: [u8; 48]) -> Result<(), JournalError> {
        let result: Result<(), TransactionError<()>> = (&*self.meta, &*self.log, &*self.session_log, &*self.sessions)
            .transaction(|(meta, log, session_log, sessions)| {
                for row in rows {
                    log.insert(&log_key(row.seq)[..], row.bytes.as_slice())?;
                    session_log.insert(session_log_key(&row.session_id, row.seq), &[] as &[u8])?;
                    if sessions.get(row.session_id.as_bytes())?.is_none() {
                        sessions.insert(row.session_id.as_bytes(), &log_key(row.seq)[..])?;
                    }
                }
                meta.insert(META_HEAD, &head[..])?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        result.map_err(|e| {
            let reason = match e {
                TransactionError::Storage(e) => e.to_string(),
                TransactionError::Abort(()) => "aborted".into(),
            };
            self.poison(JournalError::Storage(format!("append failed: {reason}")))
        })?;
        self.sync()
    }

    /// Writes what sled buffers, without the fsync that makes it survive a power cut: enough for
    /// derived data, which is rebuilt when lost.
    pub fn db_flush(&self) -> Result<(), JournalError> {
        self.db.flush().map(|_| ()).map_err(|e| self.poison(storage(e)))
    }

    /// sled's `flush` ends in `sync_file_range` on Linux, which survives a killed process but
    /// not a power cut; `sync_all` on its data file afterwards makes the write durable.
    fn sync(&self) -> Result<(), JournalError> {
        self.db.flush().map_err(|e| self.poison(storage(e)))?;
        self.db_file.sync_all().map_err(|e| self.poison(JournalError::Io(format!("cannot sync the journal: {e}"))))
    }

    /// Finds the remains of an append that failed part-way: sled does not undo a transaction
    /// whose write failed (a full disk), so some of its records or index entries may be there
    /// after a reopen. Returns the seqs of that batch (and anything after it). An append that
    /// completed is never included: its batch is whole and its last record carries the hash the
    /// head names. (A log whose tail was cut or altered looks the same; that is why removing
    /// them is left to an explicit `verify --repair`.)
    pub fn incomplete_append(&self) -> Result<Option<(u64, u64)>, JournalError> {
        let max = match self.log.last().map_err(storage)? {
            Some((k, _)) => parse_log_key(&k).unwrap_or(0),
            None => 0,
        };
        let head = self.meta.get(META_HEAD).map_err(storage)?;
        let head = head.as_deref().and_then(parse_head);
        let from = match head {
            None if max == 0 => return Ok(None),
            None => 1,
            Some((last, hash, first)) => {
                // One range walk rather than a lookup per seq: this runs on every open, and the
                // last batch of a first sync holds every session's history.
                let whole =
                    first <= last && self.log.range(log_key(first)..=log_key(last)).count() as u64 == last - first + 1;
                let ends_right = self
                    .log
                    .get(log_key(last))
                    .map_err(storage)?
                    .and_then(|b| super::SyncChange::decode(&b).ok())
                    .is_some_and(|r| r.hash == hash);
                if !(whole && ends_right) {
                    first
                } else if max > last {
                    last + 1
                } else {
                    return Ok(None);
                }
            }
        };
        Ok(Some((from, max.max(head.map_or(0, |h| h.0)))))
    }

    /// Removes records `from..=to` and everything derived from them, and points the head at
    /// the record before: the undoing of an append that never completed.
    pub fn roll_back(&self, from: u64, to: u64) -> Result<(), JournalError> {
        for seq in from..=to {
            self.log.remove(log_key(seq)).map_err(storage)?;
        }
        self.remove_snapshots_between(from, to)?;
        let stray: Vec<(String, u64)> = self
            .session_log
            .iter()
            .keys()
            .filter_map(|k| k.ok().and_then(|k| parse_session_log_key(&k)))
            .filter(|(_, seq)| (from..=to).contains(seq))
            .collect();
        for (sid, seq) in stray {
            self.session_log.remove(session_log_key(&sid, seq)).map_err(storage)?;
        }
        let firsts: Vec<sled::IVec> = self
            .sessions
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| parse_log_key(v).is_some_and(|seq| (from..=to).contains(&seq)))
            .map(|(k, _)| k)
            .collect();
        for sid in firsts {
            // The session may have records before the rolled-back ones: its first is the
            // lowest left in its index.
            let prefix = session_prefix(&String::from_utf8_lossy(&sid));
            match self.session_log.scan_prefix(&prefix).keys().next() {
                Some(k) => {
                    let seq = parse_session_log_key(&k.map_err(storage)?).map_or(0, |(_, seq)| seq);
                    self.sessions.insert(&sid, &log_key(seq)[..]).map_err(storage)?;
                }
                None => {
                    self.sessions.remove(&sid).map_err(storage)?;
                }
            }
        }
        if from <= 1 {
            self.meta.remove(META_HEAD).map_err(storage)?;
        } else {
            let prev = self
                .log
                .get(log_key(from - 1))
                .map_err(storage)?
                .and_then(|b| super::SyncChange::decode(&b).ok())
                .ok_or_else(|| JournalError::Corrupt {
                    seq: from - 1,
                    reason: "missing before a failed append".into(),
                })?;
            self.meta.insert(META_HEAD, &head_value(from - 1, &prev.hash, from - 1)[..]).map_err(storage)?;
        }
        self.sync()
    }

    /// Removes every snapshot taken at a seq in `from..=to`, in one pass over the snapshots.
    fn remove_snapshots_between(&self, from: u64, to: u64) -> Result<(), JournalError> {
        let stale: Vec<sled::IVec> = self
            .snapshots
            .iter()
            .keys()
            .filter_map(Result::ok)
            .filter(|k| parse_session_log_key(k).is_some_and(|(_, s)| (from..=to).contains(&s)))
            .collect();
        for k in stale {
            self.snapshots.remove(k).map_err(storage)?;
        }
        Ok(())
    }

    /// Marks the store as having seen a failed write (see [`Store`]) and passes the error on.
    fn poison(&self, e: JournalError) -> JournalError {
        self.poisoned.store(true, Ordering::Relaxed);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_log_keys_round_trip_and_sort_by_seq() {
        let k = session_log_key("abc", 258);
        assert_eq!(k, [0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(parse_session_log_key(&k), Some(("abc".into(), 258)));
        assert!(session_log_key("abc", 9) < session_log_key("abc", 10));
        // An id that extends another never shares its prefix.
        assert!(!session_log_key("abcd", 1).starts_with(&session_prefix("abc")));
        assert_eq!(parse_session_log_key(&[0, 9, b'a']), None);
    }
}
