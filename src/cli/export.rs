//! `chasm export`: journal records in the portable JSON Lines form (see `journal-format.md`),
//! for a backup or to carry a history to another machine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::journal::OpenMode;
use crate::journal::export::{header, record_line};

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
    let since = args.since.unwrap_or(0).max(1);
    let session = args.session.as_deref().map(|p| journal.resolve_session(p)).transpose()?;
    // Counted first (the header says how many follow), then read and written one at a time:
    // a journal of a million records is never in memory whole, nor a list of its seqs (a
    // session's are listed, from its index).
    let last = journal.last_seq();
    let listed: Option<Vec<u64>> = match &session {
        Some(id) => Some(journal.session_seqs(id)?.into_iter().filter(|seq| *seq >= since).collect()),
        None => None,
    };
    let total = listed.as_ref().map_or((last + 1).saturating_sub(since), |seqs| seqs.len() as u64);
    let write = |out: &mut dyn Write| -> Result<()> {
        writeln!(out, "{}", header(session.as_deref(), args.since, total, last))?;
        let mut records = journal.iter_from(since);
        let seqs: Box<dyn Iterator<Item = u64>> = match &listed {
            Some(seqs) => Box::new(seqs.iter().copied()),
            None => Box::new(since..=last),
        };
        for (n, seq) in seqs.enumerate() {
            if n % 1024 == 0 {
                progress.report("exporting records", n as u64, total);
            }
            let record = match session {
                Some(_) => journal.get(seq)?,
                None => records.next().transpose()?,
            };
            let record = record
                .filter(|r| r.seq == seq)
                .with_context(|| format!("record {seq} is missing from the journal (`chasm verify` checks it)"))?;
            // As an io::Error again, so that a reader that stops early (`| head`) is no failure.
            serde_json::to_writer(&mut *out, &record_line(&record)).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        progress.report("exporting records", total, total);
        Ok(())
    };
    match &args.output {
        Some(path) => {
            crate::atomic::write_with(path, write).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("exported {total} record(s) to {}", path.display());
        }
        None => {
            let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
            write(&mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
