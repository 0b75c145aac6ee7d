//! Everything that knows the journal lives in sled: tree names, key encodings, the transaction
//! that appends a batch, and the flush-then-fsync durability point. Keeping sled behind this
//! one module means another engine could replace it without touching the rest of chasm.

use std::fs::File;
use std::path::{Path, PathBuf};

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

/// `meta/head` value: last seq (u64 BE) ‖ its hash.
pub fn head_value(seq: u64, hash: &[u8; 32]) -> [u8; 40] {
    let mut v = [0; 40];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..].copy_from_slice(hash);
    v
}

/// One record ready to be stored.
pub struct Row {
    pub seq: u64,
    pub session_id: String,
    pub bytes: Vec<u8>,
}

/// The open sled database and its trees.
pub struct Store {
    pub dir: PathBuf,
    db: sled::Db,
    pub meta: sled::Tree,
    pub log: sled::Tree,
    pub session_log: sled::Tree,
    pub sessions: sled::Tree,
    pub snapshots: sled::Tree,
    /// sled's data file, kept open to `sync_all` after each flush.
    db_file: File,
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
        let (meta, log, session_log, sessions, snapshots) =
            (tree(TREE_META)?, tree(TREE_LOG)?, tree(TREE_SESSION_LOG)?, tree(TREE_SESSIONS)?, tree(TREE_SNAPSHOTS)?);
        let db_file = File::open(dir.join("db"))
            .map_err(|e| JournalError::Io(format!("cannot open {}: {e}", dir.join("db").display())))?;
        Ok(Store { dir: dir.to_owned(), db, meta, log, session_log, sessions, snapshots, db_file })
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
    pub fn append(&self, rows: &[Row], head: [u8; 40]) -> Result<(), JournalError> {
        let result: Result<(), TransactionError<()>> = (&self.meta, &self.log, &self.session_log, &self.sessions)
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
        result.map_err(|e| JournalError::Storage(format!("append failed: {e:?}")))?;
        self.sync()
    }

    /// Writes what sled buffers, without the fsync that makes it survive a power cut: enough for
    /// derived data, which is rebuilt when lost.
    pub fn db_flush(&self) -> Result<(), JournalError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }

    /// sled's `flush` ends in `sync_file_range` on Linux, which survives a killed process but
    /// not a power cut; `sync_all` on its data file afterwards makes the write durable.
    fn sync(&self) -> Result<(), JournalError> {
        self.db.flush().map_err(storage)?;
        self.db_file.sync_all().map_err(|e| JournalError::Io(format!("cannot sync the journal: {e}")))
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
