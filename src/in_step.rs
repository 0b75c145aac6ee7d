//! The no-op fast path: a note kept beside the journal saying that, at the end of the last sync,
//! every session was in step, with each session file's fingerprint as that sync saw it.
//!
//! A background sync runs every few seconds and almost always finds nothing to do. With the
//! note, such a sync lists the chat folders, stats each file and compares: when the folders,
//! the files and their fingerprints are all as noted, nothing changed on either side and the
//! journal is not even opened. Anything else — a new, changed or vanished file, a flag the note
//! was not written for — takes the full sync.
//!
//! The journal drops the note (durably) before every change it makes, so a note that exists
//! was written after the journal's last change: a change made through chasm, or an import, always
//! leads to a full sync. The note is a cache; deleting it costs one full sync.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::provider::vscode::{VsCode, fingerprint_of};

/// The note's file name inside the journal directory.
pub const FILE: &str = "in-step.json";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Note {
    version: u32,
    /// The chat folders the sync covered, in order.
    dirs: Vec<PathBuf>,
    /// Every session file in them (its path), with its fingerprint.
    files: HashMap<String, String>,
}

/// Writes the note (atomically) after a sync that left everything in step.
pub fn record(journal_dir: &Path, provider: &VsCode, files: BTreeMap<PathBuf, String>) -> io::Result<()> {
    // A path that is not UTF-8 is left out: such a file is then "new" to every fast-path check,
    // which takes the full sync.
    let files = files.into_iter().filter_map(|(p, t)| Some((p.into_os_string().into_string().ok()?, t))).collect();
    let note = Note { version: 1, dirs: provider.dirs.iter().map(|d| d.path.clone()).collect(), files };
    crate::atomic::write(&journal_dir.join(FILE), &serde_json::to_vec(&note).expect("a note serializes"))
}

/// Whether everything is as the note says: the same folders, the same session files, each with
/// the fingerprint noted. Any doubt (no note, an unreadable folder, a file too fresh to
/// fingerprint) is a `false`.
pub fn holds(journal_dir: &Path, provider: &VsCode) -> bool {
    let Ok(bytes) = std::fs::read(journal_dir.join(FILE)) else { return false };
    let Ok(note) = serde_json::from_slice::<Note>(&bytes) else { return false };
    if note.version != 1 || !note.dirs.iter().eq(provider.dirs.iter().map(|d| &d.path)) {
        return false;
    }
    // A listing and one stat per file, relative to the open folder: this runs every few seconds.
    let now = std::time::SystemTime::now();
    let mut seen = 0;
    for dir in &note.dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { return false };
        for entry in entries {
            let Ok(entry) = entry else { return false };
            let path = entry.path();
            if !matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "jsonl")) {
                continue;
            }
            let Some(token) = path.to_str().and_then(|p| note.files.get(p)) else { return false };
            // A link is fingerprinted by what it points to, as the provider does.
            let meta = match entry.file_type() {
                Ok(t) if t.is_symlink() => std::fs::metadata(&path),
                Ok(_) => entry.metadata(),
                Err(e) => Err(e),
            };
            match meta.ok().and_then(|m| fingerprint_of(&m, now)) {
                Some(t) if &t == token => seen += 1,
                _ => return false,
            }
        }
    }
    seen == note.files.len()
}

/// Drops the note, durably, before the journal changes. Cheap when there is none.
pub fn invalidate(journal_dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(journal_dir.join(FILE)) {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(journal_dir) {
                d.sync_all()?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
