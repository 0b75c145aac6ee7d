//! VS Code Copilot Chat storage: the session files in `chatSessions/`.
//!
//! Two file generations are read here: `<sessionId>.json` (one session object, `"version": 3`,
//! also the shape of panel exports) and `<sessionId>.jsonl` (the mutation log, see [`jsonl`]).

pub mod discover;
pub mod index;
pub mod json;
pub mod jsonl;
pub mod write;

use std::path::{Path, PathBuf};

use serde_json::Value;

use xxhash_rust::xxh3::Xxh3;

use crate::provider::{
    Appended, Listed, Listing, Location, LogMark, Provider, ProviderError, Pulled, Rewritten, Since,
};
use crate::session::{Session, SessionError};

/// The provider name recorded in journal events that come from VS Code.
pub const PROVIDER: &str = "vscode";

/// The longest session id accepted, in bytes.
pub const MAX_SESSION_ID_LEN: usize = 256;

/// The storage format of a session file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `<id>.json`: one whole session object.
    Json,
    /// `<id>.jsonl`: the mutation log.
    Jsonl,
}

/// A session read from a file.
#[derive(Debug, Clone)]
pub struct SessionFile {
    pub path: PathBuf,
    /// `sessionId` from the content, else the file name without its extension (VS Code names
    /// session files by id; panel exports carry no id at all).
    pub session_id: String,
    pub session: Session,
    pub format: FileFormat,
    /// A `.jsonl` whose incomplete last line was ignored (VS Code was mid-write).
    pub torn_tail: bool,
    /// For a `.jsonl`, how far the read went.
    pub mark: Option<LogMark>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Opens a file to read, then to be asked what it is: a FIFO put in a session file's place
/// after a check by name would block an ordinary open until a writer came. Opened without
/// waiting, a FIFO opens at once (and is refused by its caller); a regular file reads as ever
/// (the flag does not apply to it).
fn open_without_waiting(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

/// A session file's bytes, refused when it is not a regular file or is larger than a session
/// file may be.
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io { path: path.to_owned(), source };
    let file = open_without_waiting(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile { path: path.to_owned() });
    }
    if meta.len() > MAX_SESSION_FILE {
        return Err(ReadError::TooLarge { path: path.to_owned(), len: meta.len() });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_SESSION_FILE + 1), &mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_SESSION_FILE {
        return Err(ReadError::TooLarge { path: path.to_owned(), len: bytes.len() as u64 });
    }
    Ok(bytes)
}

fn pulled(file: SessionFile) -> Pulled {
    Pulled { session: file.session, torn_tail: file.torn_tail, mark: file.mark }
}

/// The mark of a log read up to the end of `read`.
fn mark_of(read: &[u8]) -> LogMark {
    let mut hasher = Xxh3::new();
    hasher.update(read);
    LogMark { len: read.len() as u64, digest: mark_digest(&hasher), requests: Vec::new() }
}

/// A mark's digest: the XXH3-128 of the bytes read. Not a cryptographic hash: a mark only
/// tells a file's own earlier bytes from changed ones, which nobody gains by making collide,
/// and a sync hashes every recently written file up to its mark (SHA-256, at 1.7 GB/s here
/// against XXH3's 15, was a quarter of a sync round).
fn mark_digest(hasher: &Xxh3) -> u128 {
    hasher.digest128()
}

/// The entries of a `.jsonl` after `mark`, when its bytes still begin with the ones it names.
/// A `.json` file is rewritten whole, so its only entries are none: when it still holds all the
/// bytes its mark names and no more. `None`: read it whole.
fn appended(bytes: &[u8], format: FileFormat, mark: &LogMark) -> Option<Appended> {
    if format == FileFormat::Json {
        let same = bytes.len() as u64 == mark.len && mark_of(bytes).same_bytes(mark);
        return same.then(|| Appended { entries: Vec::new(), mark: mark.clone(), torn_tail: false });
    }
    let start = usize::try_from(mark.len).ok().filter(|&len| len <= bytes.len())?;
    // The prefix is hashed once: to check it, then (the same state, carried on over what was
    // appended) for the new mark.
    let mut hasher = Xxh3::new();
    hasher.update(&bytes[..start]);
    if mark_digest(&hasher) != mark.digest {
        return None;
    }
    let mut entries = Vec::new();
    let walked = jsonl::walk(bytes, start, |entry, _| {
        entries.push(entry);
        Ok(())
    })
    .ok()?;
    hasher.update(&bytes[start..walked.consumed]);
    let mark = LogMark { len: walked.consumed as u64, digest: mark_digest(&hasher), requests: Vec::new() };
    Some(Appended { entries, mark, torn_tail: walked.torn_tail })
}

/// A `.json` file's bytes in parts, with each request's digest in the mark (see [`json`]);
/// `None` where they cannot be split (the whole read then says why, or reads them as ever).
fn rewritten(bytes: &[u8]) -> Option<Rewritten> {
    let split = json::split(bytes.strip_prefix(BOM).unwrap_or(bytes))?;
    let mark = LogMark { requests: split.digests(), ..mark_of(bytes) };
    Some(Rewritten { fields: split.fields, requests: split.requests, mark })
}

/// Why a session file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {source}")]
    Jsonl { path: PathBuf, source: jsonl::JsonlError },
    #[error("{path}: {source}")]
    Session { path: PathBuf, source: SessionError },
    #[error("{path}: {reason}")]
    BadSessionId { path: PathBuf, reason: String },
    #[error("{path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: {len} bytes, more than a session file may hold ({MAX_SESSION_FILE})")]
    TooLarge { path: PathBuf, len: u64 },
}

/// VS Code's chat storage under some chat dirs (see [`discover`]).
pub struct VsCode {
    pub dirs: Vec<discover::ChatDir>,
    /// What the last listing left out, set by each (`sync --watch` lists again every round).
    left_out: std::sync::Mutex<LeftOut>,
}

/// What a listing left out of the sessions it found.
#[derive(Debug, Default)]
struct LeftOut {
    /// The chat dirs it could not read (missing, unmounted, no permission): not covered until
    /// one can, for a file missing from a folder nobody could list is no sign that VS Code
    /// deleted it.
    unread: Vec<PathBuf>,
    /// For the no-op note (see [`VsCode::passed_over`]).
    passed_over: Vec<discover::PassedOver>,
    /// What [`Provider::tidy`] may remove.
    temporaries: Vec<PathBuf>,
}

impl VsCode {
    /// The chat dirs under the given roots, or under every installed flavour's User dir when
    /// there are none.
    pub fn new(roots: &[PathBuf]) -> VsCode {
        let roots = if roots.is_empty() { discover::default_user_dirs() } else { roots.to_vec() };
        VsCode::over(roots.iter().flat_map(|r| discover::chat_dirs(r)).collect())
    }

    /// Exactly these chat dirs.
    pub fn over(dirs: Vec<discover::ChatDir>) -> VsCode {
        VsCode { dirs, left_out: std::sync::Mutex::default() }
    }

    fn left_out(&self) -> std::sync::MutexGuard<'_, LeftOut> {
        // A poisoned lock only means a panic elsewhere mid-update of plain lists.
        self.left_out.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The files named like sessions that the last listing passed over whatever they hold
    /// (see [`discover::PassedOver`]).
    pub fn passed_over(&self) -> Vec<discover::PassedOver> {
        self.left_out().passed_over.clone()
    }
}

impl Provider for VsCode {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn list(&self, warnings: &mut Vec<String>) -> Vec<Listed> {
        let scan = discover::list(&self.dirs);
        warnings.extend(scan.warnings);
        *self.left_out() =
            LeftOut { unread: scan.unread, passed_over: scan.passed_over, temporaries: scan.temporaries };
        scan.found
            .into_iter()
            .map(|f| Listed {
                session_id: f.session_id,
                location: Location { path: f.path, format: f.format },
                project: f.project,
                fingerprint: f.fingerprint,
            })
            .collect()
    }

    fn unread(&self) -> Vec<PathBuf> {
        self.left_out().unread.clone()
    }

    fn other_copies(&self, _location: &Location, session_id: &str) -> Vec<PathBuf> {
        // The copies skipped with a warning: a `.json` beside a log (passed over silently) is
        // not what VS Code shows, and the one beside `location` is deleted with it.
        let left_out = self.left_out();
        let copies = left_out.passed_over.iter().filter(|p| p.warning.is_some()).map(|p| &p.path);
        copies.filter(|p| p.file_stem().is_some_and(|stem| stem == session_id)).cloned().collect()
    }

    fn covers(&self, location: &Location) -> bool {
        let Some(parent) = location.path.parent() else { return false };
        self.dirs.iter().any(|d| d.path == parent) && !self.left_out().unread.iter().any(|d| d == parent)
    }

    fn pull(&self, location: &Location) -> Result<Pulled, ProviderError> {
        Ok(pulled(read_session_file(&location.path)?))
    }

    fn pull_since(&self, location: &Location, mark: &LogMark) -> Result<Since, ProviderError> {
        let bytes = read_file(&location.path)?;
        if let Some(appended) = appended(&bytes, location.format, mark) {
            return Ok(Since::Appended(appended));
        }
        if location.format == FileFormat::Json
            && let Some(rewritten) = rewritten(&bytes)
        {
            return Ok(Since::Rewritten(rewritten));
        }
        Ok(Since::Whole(pulled(session_file_of(&location.path, bytes)?)))
    }

    fn push(&self, location: &Location, session: &Session, expected: Option<&Session>) -> Result<(), ProviderError> {
        Ok(write::write_session(&location.path, location.format, session, expected)?)
    }

    fn delete(&self, location: &Location, expected: Option<&Session>) -> Result<(), ProviderError> {
        Ok(write::delete_session(&location.path, location.format, expected)?)
    }

    fn ensure_listed(
        &self,
        location: &Location,
        session_id: &str,
        session: &Session,
    ) -> Result<Listing, ProviderError> {
        let Some(db) = location.path.parent().and_then(index::state_db_for) else { return Ok(Listing::NoList) };
        Ok(match index::register(&db, session_id, session)? {
            // The count only advises: listed is listed, whatever it can tell.
            index::Registered::Added => match index::newer_listed(&db, session_id).unwrap_or(0) {
                newer if newer >= index::VSCODE_KEEPS_LISTED => {
                    Listing::AddedUntilTrimmed { newer, kept: index::VSCODE_KEEPS_LISTED }
                }
                _ => Listing::Added,
            },
            index::Registered::AlreadyListed => Listing::AlreadyListed,
            index::Registered::NoDatabase | index::Registered::NotListed => Listing::NoList,
        })
    }

    fn refresh_listing(&self, location: &Location, session_id: &str, session: &Session) -> Result<bool, ProviderError> {
        let Some(db) = location.path.parent().and_then(index::state_db_for) else { return Ok(false) };
        Ok(index::refresh(&db, session_id, session)? == index::Registered::Added)
    }

    fn ensure_unlisted(&self, location: &Location, session_id: &str) -> Result<bool, ProviderError> {
        let Some(db) = location.path.parent().and_then(index::state_db_for) else { return Ok(false) };
        Ok(index::unregister(&db, session_id)?)
    }

    fn tidy(&self) -> usize {
        let temporaries = std::mem::take(&mut self.left_out().temporaries);
        crate::atomic::remove_stale_temporaries(temporaries.iter().map(PathBuf::as_path))
    }

    fn location_for_new(&self, near: &Location, session_id: &str) -> Location {
        let ext = match near.format {
            FileFormat::Json => "json",
            FileFormat::Jsonl => "jsonl",
        };
        Location { path: near.path.with_file_name(format!("{session_id}.{ext}")), format: near.format }
    }
}

/// The largest session file read, so that memory stays bounded whatever a folder holds (real
/// sessions run to a few megabytes; one with large tool outputs to tens).
pub const MAX_SESSION_FILE: u64 = 512 << 20;

/// Reads a `.json` or `.jsonl` session file (by extension; anything else is read as `.json`).
/// Only a regular file is read: a FIFO or device named like a session would block or never end.
pub fn read_session_file(path: &Path) -> Result<SessionFile, ReadError> {
    session_file_of(path, read_file(path)?)
}

/// The session in a file's bytes.
fn session_file_of(path: &Path, bytes: Vec<u8>) -> Result<SessionFile, ReadError> {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("jsonl") => FileFormat::Jsonl,
        _ => FileFormat::Json,
    };
    let text = bytes.strip_prefix(BOM).unwrap_or(&bytes);
    let (value, torn_tail, mark) = match format {
        // In parts where it can be (to note each request's digest), else whole.
        FileFormat::Json => match json::split(text).and_then(|split| Some((split.digests(), split.into_value()?))) {
            Some((requests, value)) => (value, false, Some(LogMark { requests, ..mark_of(&bytes) })),
            None => {
                let value: Value =
                    serde_json::from_slice(text).map_err(|source| ReadError::Json { path: path.to_owned(), source })?;
                (value, false, Some(mark_of(&bytes)))
            }
        },
        FileFormat::Jsonl => {
            let log = jsonl::read(text).map_err(|source| ReadError::Jsonl { path: path.to_owned(), source })?;
            let len = bytes.len() - text.len() + log.consumed;
            (log.state, log.torn_tail, Some(mark_of(&bytes[..len])))
        }
    };
    let session = Session::from_value(value).map_err(|source| ReadError::Session { path: path.to_owned(), source })?;
    let session_id = match session.session_id() {
        Some(id) => id.to_owned(),
        None => path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned(),
    };
    validate_session_id(&session_id).map_err(|reason| ReadError::BadSessionId { path: path.to_owned(), reason })?;
    Ok(SessionFile { path: path.to_owned(), session_id, session, format, torn_tail, mark })
}

/// Checks that a session id is safe to use as a file name and to show in a terminal: not empty,
/// at most [`MAX_SESSION_ID_LEN`] bytes, no path separators, no `..`, no control characters.
pub fn validate_session_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("empty session id".into());
    }
    if id.len() > MAX_SESSION_ID_LEN {
        return Err(format!("session id longer than {MAX_SESSION_ID_LEN} bytes"));
    }
    if id == "." || id == ".." || id.contains("..") {
        return Err(format!("session id {id:?} contains `..`"));
    }
    if id.chars().any(|c| c == '/' || c == '\\' || c == ':' || c.is_control()) {
        return Err(format!("session id {id:?} contains a path separator or control character"));
    }
    Ok(())
}

/// How long a file must have been still for its fingerprint to be trusted: long enough that no
/// later write can be stamped with the modification time it has now. File systems that keep
/// fractions of a second (ext4, XFS, Btrfs, APFS, NTFS, exFAT's 10 ms) stamp a write from a
/// clock at most a scheduler tick (≤ 10 ms) behind the one `now` is read from; one that keeps
/// whole seconds (FAT's two, HFS+'s one) shows it in a time with no fraction, and so does a
/// time copied from such a file system, which is given [`SETTLE_WHOLE_SECONDS`]. Git's
/// "racily clean" entries are the same problem; it compares with its index's own time instead.
pub const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);
/// [`SETTLE`] for a modification time in whole seconds.
pub const SETTLE_WHOLE_SECONDS: std::time::Duration = std::time::Duration::from_secs(2);

/// A file's fingerprint from its metadata (size, mtime, inode), as of `now`; `None` for a file
/// changed within the last [`SETTLE`], which may change again within the same mtime tick and is
/// read (the content-hash path) until it has been still for that long.
pub fn fingerprint_of(meta: &std::fs::Metadata, now: std::time::SystemTime) -> Option<String> {
    let mut token = String::with_capacity(48);
    write_fingerprint(meta, now, &mut token).then_some(token)
}

/// [`fingerprint_of`] written to the end of `out`, for a caller comparing many (the no-op
/// sync): `false`, and nothing written, when the file has no fingerprint yet.
pub fn write_fingerprint(meta: &std::fs::Metadata, now: std::time::SystemTime, out: &mut String) -> bool {
    use std::fmt::Write;
    let Ok(modified) = meta.modified() else { return false };
    let Ok(mtime) = modified.duration_since(std::time::UNIX_EPOCH) else { return false };
    let settle = if mtime.subsec_nanos() == 0 { SETTLE_WHOLE_SECONDS } else { SETTLE };
    // A time ahead of `now` (another machine's clock, on a network share) is never trusted.
    if now.duration_since(modified).map_or(true, |age| age < settle) {
        return false;
    }
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    // Nanoseconds since 1970 fit a u64 until 2554, and a u64 is formatted far faster than a
    // u128; the digits are the same.
    let _ = match u64::try_from(mtime.as_nanos()) {
        Ok(nanos) => write!(out, "{}:{nanos}:{inode}", meta.len()),
        Err(_) => write!(out, "{}:{}:{inode}", meta.len(), mtime.as_nanos()),
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO in a session file's place (swapped in after the listing saw a file) is opened
    /// without waiting for a writer and refused: a read never hangs on one.
    #[cfg(unix)]
    #[test]
    fn a_fifo_is_opened_without_waiting_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("s.json");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let opened = open_without_waiting(&path).map(|f| f.metadata().unwrap().is_file());
            tx.send((opened.ok(), read_file(&path).err().map(|e| e.to_string()))).unwrap();
        });
        let (opened, read) = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the open waited for a writer");
        assert_eq!(opened, Some(false));
        assert!(read.unwrap().ends_with("not a regular file"));
    }

    /// A file is trusted by its fingerprint once it has been still for longer than a later
    /// write's time could be stamped the same: a tenth of a second where times have fractions,
    /// two seconds where they are whole (FAT, HFS+, or copied from there), never when ahead.
    #[test]
    fn a_fingerprint_waits_for_the_file_to_settle_for_its_clock() {
        use std::time::{Duration, SystemTime, UNIX_EPOCH};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.json");
        std::fs::write(&file, "{}").unwrap();
        let now = UNIX_EPOCH + Duration::new(1_764_000_000, 500_000_000);
        let trusted = |modified: SystemTime| {
            std::fs::File::options().write(true).open(&file).unwrap().set_modified(modified).unwrap();
            fingerprint_of(&std::fs::metadata(&file).unwrap(), now).is_some()
        };
        assert!(trusted(now - Duration::from_millis(150)));
        assert!(!trusted(now - Duration::from_millis(50)));
        // A whole second: trusted only after two.
        assert!(!trusted(now - Duration::from_millis(1500)));
        assert!(trusted(now - Duration::from_millis(2500)));
        assert!(!trusted(now + Duration::from_millis(500)));
        // The token names size, time to the nanosecond and inode: a change of any is seen.
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(now - Duration::from_secs(60)).unwrap();
        let token = fingerprint_of(&std::fs::metadata(&file).unwrap(), now).unwrap();
        assert!(token.starts_with("2:1763999940500000000:"), "{token}");
    }

    /// A read's mark lets the next read take only what was appended, and nothing else: a file
    /// rewritten, cut short or changed before the mark is read whole.
    #[test]
    fn a_mark_reads_what_was_appended_and_refuses_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("s.jsonl");
        let first = b"\xEF\xBB\xBF{\"kind\":0,\"v\":{\"requests\":[]}}\n";
        std::fs::write(&log, first).unwrap();
        let mark = read_session_file(&log).unwrap().mark.unwrap();
        assert_eq!(mark.len, first.len() as u64);
        let since = |bytes: &[u8], mark: &LogMark| appended(bytes, FileFormat::Jsonl, mark);

        let line = b"{\"kind\":1,\"k\":[\"title\"],\"v\":\"t\"}\n";
        let next = since(&[&first[..], line, b"{\"kind\":1,"].concat(), &mark).unwrap();
        assert_eq!(next.entries, vec![serde_json::json!({"kind": 1, "k": ["title"], "v": "t"})]);
        assert!(next.torn_tail, "a line still being written is left for next time");
        assert_eq!(next.mark.len, (first.len() + line.len()) as u64);
        assert_eq!(next.mark, mark_of(&[&first[..], line].concat()), "the mark a whole read of those bytes has");
        // Nothing new: no entries, the same mark.
        let again = since(&[&first[..], line].concat(), &next.mark).unwrap();
        assert!(again.entries.is_empty() && again.mark == next.mark);

        // Rewritten (VS Code compacting), cut short, or changed before the mark: none.
        assert!(since(b"{\"kind\":0,\"v\":{\"requests\":[],\"title\":\"t\"}}\n", &next.mark).is_none());
        assert!(since(&first[..10], &mark).is_none());
        let mut changed = first.to_vec();
        changed[12] ^= 1;
        assert!(since(&[&changed[..], line].concat(), &mark).is_none());
        // A line after the mark that a whole read would refuse: none either.
        assert!(since(&[&first[..], b"not json\n"].concat(), &mark).is_none());
    }

    #[test]
    fn a_json_file_has_nothing_appended_while_it_holds_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.json");
        std::fs::write(&file, b"{\"requests\":[]}").unwrap();
        let mark = read_session_file(&file).unwrap().mark.unwrap();
        let same = appended(b"{\"requests\":[]}", FileFormat::Json, &mark).unwrap();
        assert!(same.entries.is_empty() && same.mark == mark);
        // Longer, or the same length and other bytes: read whole.
        assert!(appended(b"{\"requests\":[]} ", FileFormat::Json, &mark).is_none());
        assert!(appended(b"{\"requests\":[1]}", FileFormat::Json, &mark).is_none());
    }

    /// A `.json` read whole notes each request's digest in its mark; rewritten, it is read in
    /// parts, the digests of the requests whose text is unchanged the same as before. One
    /// that cannot be split is read whole, as ever.
    #[test]
    fn a_rewritten_json_is_read_in_parts_with_its_requests_digests() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.json");
        let location = Location { path: file.clone(), format: FileFormat::Json };
        let text = |requests: &[&str]| {
            let requests: Vec<Value> = requests.iter().map(|r| serde_json::json!({"requestId": r})).collect();
            serde_json::to_string_pretty(&serde_json::json!({"version": 3, "requests": requests, "sessionId": "s"}))
                .unwrap()
        };
        std::fs::write(&file, text(&["a", "b"])).unwrap();
        let mark = read_session_file(&file).unwrap().mark.unwrap();
        assert_eq!(mark.requests.len(), 2);
        let vscode = VsCode::over(Vec::new());
        let same = vscode.pull_since(&location, &mark).unwrap();
        assert!(matches!(same, Since::Appended(a) if a.entries.is_empty() && a.mark == mark), "unchanged");

        std::fs::write(&file, text(&["a", "c", "b"])).unwrap();
        let Since::Rewritten(rewritten) = vscode.pull_since(&location, &mark).unwrap() else { panic!("not in parts") };
        let digests = &rewritten.mark.requests;
        assert_eq!((&digests[0], &digests[2]), (&mark.requests[0], &mark.requests[1]));
        assert!(!mark.requests.contains(&digests[1]));
        assert_eq!(rewritten.requests[1].get().split_whitespace().collect::<String>(), r#"{"requestId":"c"}"#);
        assert_eq!(rewritten.fields.keys().collect::<Vec<_>>(), ["version", "requests", "sessionId"]);
        assert!(rewritten.mark.same_bytes(&read_session_file(&file).unwrap().mark.unwrap()));

        // No `requests` array: read whole, which gives the session the model makes of it.
        std::fs::write(&file, r#"{"sessionId": "s"}"#).unwrap();
        assert!(matches!(vscode.pull_since(&location, &mark).unwrap(), Since::Whole(_)));
    }

    /// A mark whose digest is not that of the file's bytes up to its length (those bytes were
    /// changed since) means a whole read, never a read from where it ended.
    #[test]
    fn a_mark_of_other_bytes_means_a_whole_read() {
        let first = b"{\"kind\":0,\"v\":{\"requests\":[]}}\n";
        let line = b"{\"kind\":1,\"k\":[\"title\"],\"v\":\"t\"}\n";
        let other = LogMark { digest: mark_of(first).digest ^ 1, ..mark_of(first) };
        assert!(appended(&[&first[..], line].concat(), FileFormat::Jsonl, &other).is_none());
        assert!(appended(first, FileFormat::Json, &other).is_none());
        assert!(appended(&[&first[..], line].concat(), FileFormat::Jsonl, &mark_of(first)).is_some());
        assert!(appended(first, FileFormat::Json, &mark_of(first)).is_some());
    }

    #[test]
    fn session_ids_that_could_escape_a_directory_are_refused() {
        for bad in ["", "..", "a/../b", "a/b", "a\\b", "c:x", "a\0b", "a\nb", &"x".repeat(257)] {
            assert!(validate_session_id(bad).is_err(), "{bad:?}");
        }
        for good in ["7de89a80-6d93-43e7-be0a-0a9afe980198", "02-panel-2024-07-legacy", "a.b"] {
            assert!(validate_session_id(good).is_ok(), "{good:?}");
        }
    }
}
