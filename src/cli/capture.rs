//! `chasm capture FILE...`: record what changed in session files since the journal last saw
//! them, as `origin = remote` events.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;
use chrono::Utc;

use crate::diff::diff;
use crate::fold::{SessionState, remote_of};
use crate::journal::{Captured, Journal, JournalError, OpenMode, Origin, SyncChange};
use crate::provider::vscode::{PROVIDER, fingerprint_of, read_session_file};

/// Record changes from VS Code chat session files (.json or .jsonl) into the journal
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Session files to read; all are read before anything is recorded, and a file that cannot
    /// be read records nothing at all
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(journal_dir: &Path, args: Args) -> Result<ExitCode> {
    // An existing journal is opened first, for what earlier captures noted of the files: one
    // unchanged since, whose session has had nothing recorded since, is not read again (as a
    // sync skips a file by its fingerprint). A new journal is made only once every file has
    // been read: bad input leaves nothing behind.
    let journal = match Journal::open(journal_dir, OpenMode::Existing) {
        Ok(journal) => Some(journal),
        Err(JournalError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let now = Utc::now();
    let clock = SystemTime::now();
    // What the journal last saw of each session in VS Code (not its own view: a rename made
    // through chasm and not yet synced is not a change VS Code made), advanced by the changes
    // of earlier files in this run.
    let mut seen: HashMap<String, Option<SessionState>> = HashMap::new();
    // Of each session read, the note of its last file read: the file its view ends at.
    let mut notes: HashMap<String, Option<(Vec<u8>, String)>> = HashMap::new();
    let mut batch = Vec::new();
    let mut per_file = Vec::new();
    for path in &args.files {
        let stamp = stamp_of(path, clock);
        if let (Some(journal), Some((key, token))) = (&journal, &stamp) {
            // Not where an earlier file in this run changed its session's view.
            if let Some(id) = journal.captured_unchanged(key, token)?.filter(|id| !seen.contains_key(id)) {
                per_file.push((path, id, 0));
                continue;
            }
        }
        let file = read_session_file(path)?;
        if file.torn_tail {
            eprintln!("warning: {}: ignored an incomplete last line (VS Code may still be writing it)", path.display());
        }
        let id = file.session_id;
        let view = match (seen.remove(&id), &journal) {
            (Some(view), _) => view,
            (None, Some(journal)) => remote_of(&journal.tail(&id)?)?.into_owned(),
            (None, None) => None,
        };
        let changes = diff(&id, view.as_ref(), &file.session);
        let mut view = view.unwrap_or_default();
        for c in &changes {
            let change = c.clone().into_change(&id, now, Origin::Remote, PROVIDER);
            view.apply(&SyncChange::pending(change.clone(), 0))?;
            batch.push(change);
        }
        // A file read short of a torn last line holds more than what was recorded of it.
        notes.insert(id.clone(), stamp.filter(|_| !file.torn_tail));
        per_file.push((path, id.clone(), changes.len()));
        seen.insert(id, Some(view));
    }

    let mut journal = match journal {
        Some(journal) => journal,
        None => super::open_journal(journal_dir, OpenMode::Create)?,
    };
    let first_seq = journal.last_seq() + 1;
    let notes = notes.into_iter().filter_map(|(session_id, note)| {
        let (key, token) = note?;
        Some((key, Captured { token, session_id, events: 0 }))
    });
    let appended = journal.append_capturing(batch, notes.collect())?.len();
    let mut out = std::io::stdout().lock();
    let mut seq = first_seq;
    for (path, id, n) in &per_file {
        let n = *n;
        if n == 0 {
            writeln!(out, "{}: session {id} unchanged", path.display())?;
        } else {
            let range = if n == 1 { format!("seq {seq}") } else { format!("seq {seq}..{}", seq + n as u64 - 1) };
            writeln!(out, "{}: session {id}: {n} change{} ({range})", path.display(), if n == 1 { "" } else { "s" })?;
            seq += n as u64;
        }
    }
    if per_file.len() > 1 {
        let files = per_file.len();
        writeln!(out, "recorded {appended} change{} from {files} files", if appended == 1 { "" } else { "s" })?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a file's note is kept (its absolute path) and its token now (see [`fingerprint_of`]):
/// `None` for a file changed too recently to be told apart from a later change by its
/// token, or one that cannot be asked (read it, and let the read say what is wrong).
fn stamp_of(path: &Path, clock: SystemTime) -> Option<(Vec<u8>, String)> {
    let meta = std::fs::metadata(path).ok().filter(std::fs::Metadata::is_file)?;
    let token = fingerprint_of(&meta, clock)?;
    let key = std::path::absolute(path).ok()?.into_os_string().into_encoded_bytes();
    Some((key, token))
}
