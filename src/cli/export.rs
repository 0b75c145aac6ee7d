//! `chasm export`: journal records in the portable JSON Lines form (see `journal-format.md`),
//! for a backup or to carry a history to another machine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::journal::export::{header, record_line};
use crate::journal::{OpenMode, SyncChange};

/// Write journal records as portable JSON Lines (for `chasm import`)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this session (an id or a unique prefix) [default: the whole journal]
    session: Option<String>,
    /// Only records at or after this seq (the header's `journal_last_seq` + 1 of the previous
    /// export continues it)
    #[arg(long, value_name = "SEQ")]
    since: Option<u64>,
    /// Write to FILE (atomically) instead of standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(journal_dir: &Path, args: Args, progress: &crate::progress::Progress) -> Result<ExitCode> {
    let journal = super::open_journal(journal_dir, OpenMode::Read)?;
    let since = args.since.unwrap_or(0);
    let session = args.session.as_deref().map(|p| journal.resolve_session(p)).transpose()?;
    let records: Vec<SyncChange> = match &session {
        Some(id) => journal
            .session_seqs(id)?
            .into_iter()
            .filter(|seq| *seq >= since)
            .filter_map(|seq| journal.get(seq).transpose())
            .collect::<Result<_, _>>()?,
        None => journal.iter().filter(|r| r.as_ref().map_or(true, |r| r.seq >= since)).collect::<Result<_, _>>()?,
    };
    let mut text = format!("{}\n", header(session.as_deref(), args.since, records.len(), journal.last_seq()));
    let total = records.len() as u64;
    for (n, r) in records.iter().enumerate() {
        if n % 1024 == 0 {
            progress.report("exporting records", n as u64, total);
        }
        text.push_str(&record_line(r).to_string());
        text.push('\n');
    }
    progress.report("exporting records", total, total);
    match &args.output {
        Some(path) => {
            crate::atomic::write(path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("exported {} record(s) to {}", records.len(), path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
