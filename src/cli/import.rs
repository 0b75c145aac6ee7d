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

use crate::journal::{Journal, OpenMode, export};

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
    // The file is read twice, a record at a time: checked whole first, keeping only what
    // decides what to append (each record's id, seq and link), then appended. What cannot be
    // read twice (a pipe: `chasm import /dev/stdin`) is held in memory and read from there.
    let cannot_read = |e: std::io::Error| anyhow!("cannot read {path}: {e}");
    let regular = std::fs::metadata(&args.file).map_err(cannot_read)?.is_file();
    let held = if regular { None } else { Some(std::fs::read(&args.file).map_err(cannot_read)?) };
    let open = || -> Result<Box<dyn BufRead + '_>> {
        Ok(match &held {
            Some(bytes) => Box::new(&bytes[..]),
            None => Box::new(BufReader::with_capacity(1 << 16, File::open(&args.file).map_err(cannot_read)?)),
        })
    };
    // Checked before the journal is opened: a file refused creates nothing and holds no lock.
    let listed = check(&open, &path)?;
    let mut journal = super::open_journal(journal_dir, OpenMode::Create)?;
    match import(&mut journal, listed, &open, &path, settings.batch_size, progress)? {
        Imported::Nothing { total } => println!("nothing to import: the journal already has all {total} record(s)"),
        Imported::Records { added, total, first, last, continues } => println!(
            "imported {added} of {total} record(s) as seqs {first}..={last}{}",
            if continues { "" } else { " (new seqs in this journal; ids, times and content kept)" }
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// What an import did.
#[derive(Debug, PartialEq, Eq)]
enum Imported {
    /// The journal had every record of the file (`total` of them).
    Nothing { total: usize },
    /// `added` of the file's `total` records appended, as seqs `first..=last`; `continues`:
    /// stored exactly as they were, continuing this journal's chain.
    Records { added: u64, total: usize, first: u64, last: u64, continues: bool },
}

/// Checks the whole export `open` gives (every hash, every link it holds) and lists of each
/// record what decides whether and how it is appended. A file that fails is refused whole.
fn check<R: BufRead>(open: &impl Fn() -> Result<R>, path: &dyn std::fmt::Display) -> Result<Vec<Listed>> {
    let refused = |e: export::ExportError| anyhow!("{path}: refused, nothing imported: {e}");
    let mut listed = Vec::new();
    for r in export::Reader::new(open()?).map_err(refused)? {
        let r = r.map_err(refused)?;
        listed.push((r.id, r.seq, r.prev_hash));
    }
    Ok(listed)
}

/// A record as [`check`] lists it: id, seq, and the hash it links to.
type Listed = (Uuid, u64, [u8; 32]);

/// Appends the records `listed` (by [`check`]) that the journal does not have, reading the
/// export `open` gives a second time, in batches of `batch_size`, each durable before the
/// next. A file that reads differently now (changed while it was imported) stops the import
/// at the first difference, keeping the whole batches appended before it: importing it again
/// adds the rest.
fn import<R: BufRead>(
    journal: &mut Journal,
    listed: Vec<Listed>,
    open: &impl Fn() -> Result<R>,
    path: &dyn std::fmt::Display,
    batch_size: usize,
    progress: &crate::progress::Progress,
) -> Result<Imported> {
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
    let new: Vec<&Listed> = listed.iter().filter(|(id, ..)| !have.contains(id)).collect();
    let Some(&&(_, first_seq, first_link)) = new.first() else {
        return Ok(Imported::Nothing { total });
    };
    let continues = first_seq == journal.last_seq() + 1
        && first_link == journal.head_hash()?
        && new.windows(2).all(|w| w[1].1 == w[0].1 + 1);
    // In batches of `batch_size`, each durable before the next, so an import stopped half-way
    // keeps what it appended (importing again adds the rest).
    let count = new.len() as u64;
    let mut expected = new.iter().map(|(id, ..)| *id);
    let (mut added, mut seqs) = (0u64, None::<(u64, u64)>);
    let mut batch = Vec::with_capacity(batch_size.min(new.len()));
    let changed = |e: export::ExportError| anyhow!("{path} changed while it was imported: {e}");
    let mut records = export::Reader::new(open()?)
        .map_err(changed)?
        .filter(|r| r.as_ref().map_or(true, |r| !have.contains(&r.id)))
        .peekable();
    while let Some(r) = records.next() {
        let r = r.map_err(changed)?;
        if expected.next() != Some(r.id) {
            bail!("{path} changed while it was imported (record {} is not the one checked)", r.seq);
        }
        batch.push(r);
        if batch.len() == batch_size || records.peek().is_none() {
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
    Ok(Imported::Records { added, total, first, last, continues })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::journal::SyncChange;
    use crate::journal::export::tests::{chain, export};

    /// The export's header and those of its record lines whose number (from 1) `keep` keeps.
    fn lines_of(export: &[u8], keep: impl Fn(usize) -> bool) -> Vec<u8> {
        let lines = export.split_inclusive(|b| *b == b'\n').enumerate();
        lines.filter(|(n, _)| *n == 0 || keep(*n)).flat_map(|(_, line)| line.to_vec()).collect()
    }

    /// Imports `first` read the first time and `second` every time after, in batches of 4.
    fn import_changing(journal: &mut Journal, first: &[u8], second: &[u8]) -> Result<Imported> {
        let reads = Cell::new(0);
        let open = || {
            reads.set(reads.get() + 1);
            Ok(if reads.get() == 1 { first } else { second })
        };
        let listed = check(&open, &"e.jsonl")?;
        import(journal, listed, &open, &"e.jsonl", 4, &crate::progress::Progress::default())
    }

    /// A file that reads differently the second time stops the import at the difference, with
    /// the whole batches before it kept and the journal intact; importing the file again, now
    /// still, adds the rest, and the history is the source's, record for record.
    #[test]
    fn an_export_changed_between_its_two_reads_stops_the_import_and_a_second_import_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let records = chain(10);
        let whole = export(&records).into_bytes();
        // Another chain: the same seqs, other ids.
        let other = export(&chain(10)).into_bytes();
        let cases: [(&str, Vec<u8>, u64); 4] = [
            // Cut after its seventh record: the header's count no longer holds at the end.
            ("the header promises 10 records", lines_of(&whole, |n| n <= 7), 4),
            // Its seventh record gone: a gap in a whole-journal export.
            ("record 7 is missing from a whole-journal export", lines_of(&whole, |n| n != 7), 4),
            // Another journal's records: the first is not the one checked.
            ("record 1 is not the one checked", other, 0),
            // Not an export any more.
            ("not a chasm export", b"{}\n".to_vec(), 0),
        ];
        for (case, (why, changed, kept)) in cases.into_iter().enumerate() {
            let mut journal = Journal::open(&dir.path().join(format!("to-{case}")), OpenMode::Create).unwrap();
            let err = import_changing(&mut journal, &whole, &changed).unwrap_err().to_string();
            assert!(err.starts_with("e.jsonl changed while it was imported"), "{why}: {err}");
            assert!(err.contains(why), "{why}: {err}");
            assert_eq!(journal.last_seq(), kept, "{why}: only whole batches before the change are kept");
            assert!(journal.verify().unwrap().problems.is_empty(), "{why}");
            let done = import_changing(&mut journal, &whole, &whole).unwrap();
            assert_eq!(
                done,
                Imported::Records { added: 10 - kept, total: 10, first: kept + 1, last: 10, continues: true }
            );
            let imported: Vec<SyncChange> = journal.iter().map(Result::unwrap).collect();
            assert_eq!(imported, records, "{why}");
        }
    }

    /// A file that fails its check on the first read is refused whole: nothing is appended.
    #[test]
    fn an_export_that_fails_its_check_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(&dir.path().join("to"), OpenMode::Create).unwrap();
        let whole = export(&chain(10)).into_bytes();
        let cut = lines_of(&whole, |n| n <= 9);
        let err = import_changing(&mut journal, &whole[..whole.len() - 1], &whole).unwrap_err().to_string();
        assert!(err.starts_with("e.jsonl: refused, nothing imported: line 11"), "{err}");
        assert_eq!(journal.last_seq(), 0);
        let err = import_changing(&mut journal, &cut, &whole).unwrap_err().to_string();
        assert!(err.contains("refused") && err.contains("promises 10"), "{err}");
        assert_eq!(journal.last_seq(), 0);
    }
}
