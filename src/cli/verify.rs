//! `chasm verify`: recompute the hash chain and check the indexes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::json;

use crate::journal::OpenMode;

/// Check that the journal's history is intact: recompute every hash and check every index
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
}

pub fn run(journal_dir: &Path, args: Args, progress: &crate::progress::Progress) -> Result<ExitCode> {
    let journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let report = journal.verify_with(progress)?;
    progress.report("checking records", 1, 1);
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = json!({
            "ok": report.problems.is_empty(),
            "records": report.records,
            "sessions": report.sessions,
            "first_bad_seq": report.first_problem().map(|p| p.seq),
            "snapshots_rebuilt": report.snapshots_rebuilt,
            "lines_rebuilt": report.lines_rebuilt,
            "finals_rebuilt": report.finals_rebuilt,
            "problems": report.problems.iter().map(|p| json!({"seq": p.seq, "reason": p.reason})).collect::<Vec<_>>(),
        });
        writeln!(out, "{value}")?;
    } else if report.problems.is_empty() {
        if report.snapshots_rebuilt > 0 {
            writeln!(
                out,
                "rebuilt {} snapshot(s) that did not match the log (derived data)",
                report.snapshots_rebuilt
            )?;
        }
        if report.lines_rebuilt > 0 {
            writeln!(
                out,
                "rebuilt {} run(s) of log lines that did not match the log (derived data)",
                report.lines_rebuilt
            )?;
        }
        if report.finals_rebuilt > 0 {
            writeln!(
                out,
                "rewrote {} stored final version(s) of requests that did not match the log (derived data)",
                report.finals_rebuilt
            )?;
        }
        let s = |n: u64| if n == 1 { "" } else { "s" };
        writeln!(
            out,
            "ok: {} record{} in {} session{}; hash chain intact; indexes consistent",
            report.records,
            s(report.records),
            report.sessions,
            s(report.sessions)
        )?;
    } else {
        for p in report.problems.iter().take(20) {
            writeln!(out, "seq {}: {}", p.seq, p.reason)?;
        }
    }
    out.flush()?;
    if let Some(first) = report.first_problem() {
        bail!("journal verification failed at seq {}: {}", first.seq, first.reason);
    }
    Ok(ExitCode::SUCCESS)
}
