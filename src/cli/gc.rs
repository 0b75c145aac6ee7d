//! `chasm gc`: pack the journal, as `git gc` packs a repository.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::journal::OpenMode;

/// Pack the journal: store its records compressed and give the space back to the disk
///
/// Records are appended as they are, for speed; this stores runs of a session's records
/// compressed together in blocks, and each other record that compresses alone, as zstd frames,
/// then the derived rows kept beside them (snapshots, runs of log lines, the sync's shapes),
/// and rewrites the database without the space that freed; notes `capture` kept of files that
/// can no longer spare a read are dropped. Every command reads the same history afterwards.
/// It holds the journal for its length (about 2 s for a journal of 300 MB), and needs free
/// space for a copy of the database while it rewrites it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the result as one JSON object
    #[arg(long)]
    json: bool,
}

pub fn run(journal_dir: &Path, args: Args, progress: &crate::progress::Progress) -> Result<ExitCode> {
    let mut journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let packed = journal.pack(progress)?;
    drop(journal);
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = json!({
            "records_compressed": packed.records,
            "blocks": packed.blocks,
            "snapshots_compressed": packed.snapshots,
            "line_runs_compressed": packed.lines,
            "shapes_compressed": packed.shapes,
            "capture_notes_dropped": packed.captures,
            "bytes_before": packed.bytes_before,
            "bytes_after": packed.bytes_after,
        });
        writeln!(out, "{value}")?;
    } else {
        let mb = |b: u64| b as f64 / 1e6;
        // Said only when there were some: most journals never see a `capture`.
        let notes = match packed.captures {
            0 => String::new(),
            n => format!("; {n} stale capture note(s) dropped"),
        };
        writeln!(
            out,
            "gc: {} record(s) compressed (runs of them in {} block(s)), {} snapshot(s), {} run(s) of log lines, \
             {} shape(s){notes}; journal {:.1} MB -> {:.1} MB",
            packed.records,
            packed.blocks,
            packed.snapshots,
            packed.lines,
            packed.shapes,
            mb(packed.bytes_before),
            mb(packed.bytes_after)
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
