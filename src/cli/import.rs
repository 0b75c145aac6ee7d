//! `chasm import`: append the records of an export that the journal does not have yet.
//!
//! The whole file is checked first (every hash, every chain link it holds); a file that fails
//! is refused whole, naming the first bad record, and nothing is appended. Records the journal
//! already has (by record id) are skipped, so importing a file twice adds nothing. Records that
//! continue this journal's own chain (an import into an empty journal, or into the journal they
//! came from) are stored exactly as they are; others take new seqs here, keeping their id,
//! time and content.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::journal::{OpenMode, export};

/// Append the records of an export that this journal does not have yet
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A file written by `chasm export`
    file: PathBuf,
}

pub fn run(
    journal_dir: &Path,
    args: Args,
    settings: &crate::config::Settings,
    progress: &crate::progress::Progress,
) -> Result<ExitCode> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", args.file.display()))?;
    let records = match export::parse(&text) {
        Ok(r) => r,
        Err(e) => bail!("{}: refused, nothing imported: {e}", args.file.display()),
    };
    let mut journal = super::open_journal(journal_dir, OpenMode::Create)?;
    let mut have = HashSet::new();
    let known = journal.last_seq();
    for (n, r) in journal.iter().enumerate() {
        if n % 4096 == 0 {
            progress.report("reading the journal", n as u64, known);
        }
        have.insert(r?.id);
    }
    progress.report("reading the journal", known, known);
    let total = records.len();
    let new: Vec<_> = records.into_iter().filter(|r| !have.contains(&r.id)).collect();
    if new.is_empty() {
        println!("nothing to import: the journal already has all {total} record(s)");
        return Ok(ExitCode::SUCCESS);
    }
    let continues = new[0].seq == journal.last_seq() + 1
        && new[0].prev_hash == journal.head_hash()?
        && new.windows(2).all(|w| w[1].seq == w[0].seq + 1);
    // In batches of `batch_size`, each durable before the next, so an import stopped half-way
    // keeps what it appended (importing again adds the rest).
    let count = new.len() as u64;
    let mut added = Vec::with_capacity(new.len());
    let mut batches = new.into_iter().peekable();
    while batches.peek().is_some() {
        let batch: Vec<_> = batches.by_ref().take(settings.batch_size).collect();
        let stored = if continues { journal.append_verbatim(batch)? } else { journal.append_foreign(batch)? };
        added.extend(stored.into_iter().map(|r| r.seq));
        progress.report("importing records", added.len() as u64, count);
    }
    println!(
        "imported {} of {total} record(s) as seqs {}..={}{}",
        added.len(),
        added[0],
        added[added.len() - 1],
        if continues { "" } else { " (new seqs in this journal; ids, times and content kept)" }
    );
    Ok(ExitCode::SUCCESS)
}
