//! `chasm import`: append the records of an export that the journal does not have yet.
//!
//! The whole file is checked first (every hash, every chain link it holds); a file that fails
//! is refused whole, naming the first bad record, and nothing is appended. It is then read
//! again to append: an export of a million records is never in memory whole. Records the
//! journal already has (by record id) are skipped, so importing a file twice adds nothing.
//! Records that continue this journal's own chain (an import into an empty journal, or into
//! the journal they came from) are stored exactly as they are; others take new seqs here,
//! keeping their id, time and content.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use uuid::Uuid;

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
    let path = args.file.display();
    let refused = |e: export::ExportError| anyhow!("{path}: refused, nothing imported: {e}");
    // The file is read twice, a record at a time: checked whole first, keeping only what
    // decides what to append (each record's id, seq and link), then appended. What cannot be
    // read twice (a pipe: `chasm import /dev/stdin`) is held in memory and read from there.
    let cannot_read = |e: std::io::Error| anyhow!("cannot read {path}: {e}");
    let regular = std::fs::metadata(&args.file).map_err(cannot_read)?.is_file();
    let held = if regular { None } else { Some(std::fs::read(&args.file).map_err(cannot_read)?) };
    let read = || -> Result<export::Reader<Box<dyn BufRead + '_>>> {
        let input: Box<dyn BufRead> = match &held {
            Some(bytes) => Box::new(&bytes[..]),
            None => Box::new(BufReader::with_capacity(1 << 16, File::open(&args.file).map_err(cannot_read)?)),
        };
        export::Reader::new(input).map_err(refused)
    };
    let mut listed: Vec<(Uuid, u64, [u8; 32])> = Vec::new();
    for r in read()? {
        let r = r.map_err(refused)?;
        listed.push((r.id, r.seq, r.prev_hash));
    }
    let mut journal = super::open_journal(journal_dir, OpenMode::Create)?;
    let mut have = HashSet::new();
    let known = journal.last_seq();
    for (n, id) in journal.record_ids().enumerate() {
        if n % 4096 == 0 {
            progress.report("reading the journal", n as u64, known);
        }
        have.insert(id?);
    }
    progress.report("reading the journal", known, known);
    let total = listed.len();
    let new: Vec<&(Uuid, u64, [u8; 32])> = listed.iter().filter(|(id, ..)| !have.contains(id)).collect();
    let Some(&&(_, first_seq, first_link)) = new.first() else {
        println!("nothing to import: the journal already has all {total} record(s)");
        return Ok(ExitCode::SUCCESS);
    };
    let continues = first_seq == journal.last_seq() + 1
        && first_link == journal.head_hash()?
        && new.windows(2).all(|w| w[1].1 == w[0].1 + 1);
    // In batches of `batch_size`, each durable before the next, so an import stopped half-way
    // keeps what it appended (importing again adds the rest).
    let count = new.len() as u64;
    let mut expected = new.iter().map(|(id, ..)| *id);
    let (mut added, mut seqs) = (0u64, None::<(u64, u64)>);
    let mut batch = Vec::with_capacity(settings.batch_size.min(new.len()));
    let mut records = read()?.filter(|r| r.as_ref().map_or(true, |r| !have.contains(&r.id))).peekable();
    while let Some(r) = records.next() {
        let r = r.map_err(|e| anyhow!("{path} changed while it was imported: {e}"))?;
        if expected.next() != Some(r.id) {
            bail!("{path} changed while it was imported (record {} is not the one checked)", r.seq);
        }
        batch.push(r);
        if batch.len() == settings.batch_size || records.peek().is_none() {
            let batch = std::mem::take(&mut batch);
            let stored = if continues { journal.append_verbatim(batch)? } else { journal.append_foreign(batch)? };
            added += stored.len() as u64;
            if let (Some(first), Some(last)) = (stored.first(), stored.last()) {
                seqs = Some((seqs.map_or(first.seq, |s| s.0), last.seq));
            }
            progress.report("importing records", added, count);
        }
    }
    let Some((first, last)) = seqs.filter(|_| added == count) else {
        bail!("{path} changed while it was imported ({added} of {count} new records appended; import it again)");
    };
    println!(
        "imported {added} of {total} record(s) as seqs {first}..={last}{}",
        if continues { "" } else { " (new seqs in this journal; ids, times and content kept)" }
    );
    Ok(ExitCode::SUCCESS)
}
