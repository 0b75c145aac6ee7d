//! `chasm conflicts`: the conflicts the next sync would leave for `chasm resolve`, from the same
//! dry-run sync `status` runs. Nothing is written.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::RootArgs;
use super::status::survey;
use crate::config::Settings;
use crate::journal::OpenMode;
use crate::merge::Strategy;
use crate::sync::Status;

/// List the conflicts waiting for `chasm resolve`
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    roots: RootArgs,
    /// The strategy the next sync would use (conflicts it settles are not listed) [default:
    /// the configured one]
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
    /// One JSON object per conflict
    #[arg(long)]
    json: bool,
}

pub fn run(journal_dir: &Path, args: Args, settings: &Settings) -> Result<ExitCode> {
    let mut journal = super::open_journal(journal_dir, OpenMode::Read)?;
    let report = survey(&mut journal, &args.roots, settings, args.strategy.unwrap_or(settings.strategy))?;
    // Conflicts are named, and settled, where the session's file is: one outside the storage
    // this run covers is only counted, as `status` shows it.
    for s in report.sessions.iter().filter(|s| s.status == Status::Conflict && s.location.is_none()) {
        eprintln!(
            "warning: {} has conflicts, but its file is not in the VS Code storage this run covers; give --root where it is",
            s.session_id
        );
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut shorts = super::ShortIds::new(&journal);
    for s in &report.sessions {
        for c in &s.conflicts {
            if args.json {
                writeln!(out, "{}", super::conflict_json(c))?;
            } else {
                let short = shorts.of(&s.session_id)?;
                writeln!(
                    out,
                    "{}  {:<16}  {short:<8}  {} {}: local {} / VS Code {}",
                    c.id,
                    c.kind.as_str(),
                    c.entity_type,
                    c.entity_id,
                    super::describe(c.local.as_ref()),
                    super::describe(c.remote.as_ref())
                )?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
