//! `chasm capture FILE...`: record what changed in session files since the journal last saw
//! them, as `origin = remote` events.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use chrono::Utc;

use crate::diff::diff;
use crate::fold::{SessionState, remote_of};
use crate::journal::{OpenMode, Origin, SyncChange};
use crate::provider::vscode::{PROVIDER, read_session_file};

/// Record changes from VS Code chat session files (.json or .jsonl) into the journal
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Session files to read; all are read before anything is recorded, and a file that cannot
    /// be read records nothing at all
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(journal_dir: &Path, args: Args) -> Result<ExitCode> {
    // Read and validate every file before touching the journal: bad input appends nothing.
    let files = args.files.iter().map(|p| read_session_file(p)).collect::<Result<Vec<_>, _>>()?;
    for f in files.iter().filter(|f| f.torn_tail) {
        eprintln!("warning: {}: ignored an incomplete last line (VS Code may still be writing it)", f.path.display());
    }

    let mut journal = super::open_journal(journal_dir, OpenMode::Create)?;
    let now = Utc::now();
    // What the journal last saw of each session in VS Code (not its own view: a rename made
    // through chasm and not yet synced is not a change VS Code made), advanced by the changes
    // of earlier files in this run.
    let mut seen: HashMap<String, Option<SessionState>> = HashMap::new();
    let mut batch = Vec::new();
    let mut per_file = Vec::new();
    for file in &files {
        let view = match seen.remove(&file.session_id) {
            Some(view) => view,
            None => remote_of(&journal.tail(&file.session_id)?)?.into_owned(),
        };
        let changes = diff(&file.session_id, view.as_ref(), &file.session);
        let mut view = view.unwrap_or_default();
        for c in &changes {
            let change = c.clone().into_change(&file.session_id, now, Origin::Remote, PROVIDER);
            view.apply(&SyncChange::pending(change.clone(), 0))?;
            batch.push(change);
        }
        per_file.push(changes.len());
        seen.insert(file.session_id.clone(), Some(view));
    }

    let first_seq = journal.last_seq() + 1;
    let appended = journal.append(batch)?.len();
    let mut out = std::io::stdout().lock();
    let mut seq = first_seq;
    for (file, n) in files.iter().zip(per_file) {
        if n == 0 {
            writeln!(out, "{}: session {} unchanged", file.path.display(), file.session_id)?;
        } else {
            let range = if n == 1 { format!("seq {seq}") } else { format!("seq {seq}..{}", seq + n as u64 - 1) };
            writeln!(
                out,
                "{}: session {}: {n} change{} ({range})",
                file.path.display(),
                file.session_id,
                if n == 1 { "" } else { "s" }
            )?;
            seq += n as u64;
        }
    }
    if files.len() > 1 {
        writeln!(out, "recorded {appended} change{} from {} files", if appended == 1 { "" } else { "s" }, files.len())?;
    }
    Ok(ExitCode::SUCCESS)
}
