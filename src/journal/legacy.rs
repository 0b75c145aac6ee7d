//! Format 1 journals — sled 0.34 databases — and their one-way conversion to the current
//! format. This is the only module that still knows sled.
//!
//! The conversion copies every record's bytes as they are, so hashes, the chain and record ids
//! are unchanged and `chasm verify` checks the result as it checked the original. Derived data
//! (indexes, snapshots, fingerprints) is rebuilt, not copied. The new database is built under a
//! temporary name and renamed into place only when complete; the sled files are then moved into
//! `format-1/` beside it, untouched, for the user to delete when they are satisfied.

use std::path::Path;

use super::record::{GENESIS_HASH, SyncChange};
use super::store::{self, Row, Store};
use super::{JournalError, decode};

/// Where the format 1 files go once converted.
pub const BACKUP_DIR: &str = "format-1";

/// The sled files of a format 1 journal.
const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];

/// Whether `dir` holds a format 1 (sled) journal.
pub fn is_format_1(dir: &Path) -> bool {
    dir.join("conf").is_file() && dir.join("db").is_file()
}

/// Converts the format 1 journal in `dir` to the current format, in place. A damaged record
/// stops the conversion with an error naming it, before anything is moved.
pub fn convert(dir: &Path) -> Result<u64, JournalError> {
    // The journal's lock, held throughout: a second chasm is told the journal is busy rather
    // than finding it half converted.
    let _lock = store::lock(dir)?;
    if Store::exists_in(dir) {
        return Ok(0);
    }
    let db = sled::Config::new().path(dir).open().map_err(|e| match &e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            JournalError::Locked(dir.to_owned())
        }
        _ => JournalError::Storage(format!("cannot open the format 1 journal in {}: {e}", dir.display())),
    })?;
    let sled_err = |e: sled::Error| JournalError::Storage(format!("reading the format 1 journal: {e}"));
    let meta = db.open_tree("meta").map_err(sled_err)?;
    let log = db.open_tree("log").map_err(sled_err)?;
    match meta.get("format").map_err(sled_err)? {
        Some(v) if v.as_ref() == 1u32.to_be_bytes() => {}
        None if log.is_empty() => {}
        _ => return Err(JournalError::UnknownFormat(dir.to_owned())),
    }

    let building = dir.join("converting");
    if building.exists() {
        std::fs::remove_dir_all(&building)
            .map_err(|e| JournalError::Io(format!("cannot remove {}: {e}", building.display())))?;
    }
    std::fs::create_dir(&building)
        .map_err(|e| JournalError::Io(format!("cannot create {}: {e}", building.display())))?;
    // The old head goes over as it was, so that `verify` still sees records cut off the end.
    let head = meta.get("head").map_err(sled_err)?.and_then(|v| match v.len() {
        48 => <[u8; 48]>::try_from(v.as_ref()).ok(),
        40 => {
            let seq = u64::from_be_bytes(v[..8].try_into().ok()?);
            Some(store::head_value(seq, &v[8..40].try_into().ok()?, seq))
        }
        _ => None,
    });
    let converted = copy_records(&log, head, &building);
    drop(db);
    let converted = match converted {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&building);
            return Err(e);
        }
    };

    let backup = dir.join(BACKUP_DIR);
    std::fs::create_dir_all(&backup)
        .map_err(|e| JournalError::Io(format!("cannot create {}: {e}", backup.display())))?;
    std::fs::rename(building.join(store::DB_FILE), dir.join(store::DB_FILE))
        .map_err(|e| JournalError::Io(format!("cannot move the converted journal into place: {e}")))?;
    let _ = std::fs::remove_dir_all(&building);
    store::sync_dir(dir);
    let names = std::fs::read_dir(dir).map_err(|e| JournalError::Io(format!("cannot read {}: {e}", dir.display())))?;
    for entry in names.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if SLED_FILES.contains(&name.as_ref()) || name.starts_with("snap.") {
            std::fs::rename(entry.path(), backup.join(&*name))
                .map_err(|e| JournalError::Io(format!("cannot move {name} into {BACKUP_DIR}/: {e}")))?;
        }
    }
    store::sync_dir(dir);
    Ok(converted)
}

/// Copies every record of the sled `log` tree, in order and checking the chain, into a new
/// store in `building`, ending with the old `head` when there was one; returns the last seq.
fn copy_records(log: &sled::Tree, head: Option<[u8; 48]>, building: &Path) -> Result<u64, JournalError> {
    let sled_err = |e: sled::Error| JournalError::Storage(format!("reading the format 1 journal: {e}"));
    let new = Store::open(building)?;
    let mut batch: Vec<Row> = Vec::new();
    let (mut seq, mut prev, mut first) = (0u64, GENESIS_HASH, 1u64);
    let flush = |batch: &mut Vec<Row>, seq: u64, prev: &[u8; 32], first: u64, last: bool| {
        let value = match head {
            Some(h) if last => h,
            _ => store::head_value(seq, prev, first),
        };
        new.transaction(|s| s.insert(batch, value))?;
        batch.clear();
        Ok::<_, JournalError>(())
    };
    for item in log.iter() {
        let (_, bytes) = item.map_err(sled_err)?;
        let record: SyncChange = decode(seq + 1, &bytes)?;
        if record.seq != seq + 1 || record.prev_hash != prev {
            return Err(JournalError::Corrupt {
                seq: seq + 1,
                reason: "the format 1 journal's chain is broken here; it was not converted".into(),
            });
        }
        seq = record.seq;
        prev = record.hash;
        if batch.is_empty() {
            first = seq;
        }
        batch.push(Row { seq, session_id: record.session_id, bytes: std::rc::Rc::new(bytes.to_vec()) });
        if batch.len() == 10_000 {
            flush(&mut batch, seq, &prev, first, false)?;
        }
    }
    if !batch.is_empty() || head.is_some() {
        flush(&mut batch, seq, &prev, first, true)?;
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, OpenMode};

    /// Writes a format 1 journal as chasm 0.1 did: records under big-endian seqs in `log`, the
    /// format and head in `meta`.
    fn format_1(dir: &Path, records: &[SyncChange]) {
        let db = sled::open(dir).unwrap();
        let (meta, log) = (db.open_tree("meta").unwrap(), db.open_tree("log").unwrap());
        meta.insert("format", &1u32.to_be_bytes()).unwrap();
        for r in records {
            log.insert(r.seq.to_be_bytes(), r.encode()).unwrap();
        }
        db.flush().unwrap();
    }

    /// Opens the journal once sled has let go of its lock (a moment after its database is
    /// dropped).
    fn open_after_sled(dir: &Path) -> Result<Journal, JournalError> {
        for _ in 0..200 {
            match Journal::open(dir, OpenMode::Existing) {
                Err(JournalError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(20)),
                other => return other,
            }
        }
        Journal::open(dir, OpenMode::Existing)
    }

    fn history() -> Vec<SyncChange> {
        let mut prev = GENESIS_HASH;
        (1..=70)
            .map(|seq| {
                let session = if seq % 3 == 0 { "b" } else { "a" };
                let r = SyncChange::seal(crate::journal::tests::change(session, &format!("e{seq}")), seq, prev);
                prev = r.hash;
                r
            })
            .collect()
    }

    #[test]
    fn a_format_1_journal_is_converted_with_every_record_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let records = history();
        format_1(dir.path(), &records);
        let j = open_after_sled(dir.path()).unwrap();
        assert_eq!(j.iter().collect::<Result<Vec<_>, _>>().unwrap(), records);
        assert_eq!(j.session_seqs("b").unwrap(), (1..=23).map(|i| i * 3).collect::<Vec<_>>());
        let report = j.verify().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(dir.path().join(BACKUP_DIR).join("db").is_file());
        assert!(!is_format_1(dir.path()));
    }

    #[test]
    fn a_broken_format_1_journal_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = history();
        records.remove(10);
        format_1(dir.path(), &records);
        let err = open_after_sled(dir.path()).err().unwrap();
        assert!(matches!(err, JournalError::Corrupt { seq: 11, .. }), "{err}");
        assert!(is_format_1(dir.path()) && !Store::exists_in(dir.path()));
    }
}
