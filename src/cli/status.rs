//! `chasm status` and `chasm conflicts`: where sessions stand, derived from the fold since each
//! session's last checkpoint and a read of VS Code's files. Nothing is written.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::RootArgs;
use super::sync::session_json;
use crate::journal::{Journal, OpenMode};
use crate::merge::Strategy;
use crate::sync::{Options, Report, sync};

/// Show whether each session is synced, ahead on one side, or in conflict
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this session (an id or a unique prefix)
    session: Option<String>,
    #[command(flatten)]
    roots: RootArgs,
    /// One JSON object per session
    #[arg(long)]
    json: bool,
}

/// List the conflicts waiting for `chasm resolve`
#[derive(Debug, clap::Args)]
pub struct ConflictsArgs {
    #[command(flatten)]
    roots: RootArgs,
    /// The strategy the next sync would use (conflicts it settles are not listed)
    #[arg(long, value_enum, default_value_t = Strategy::AutoMerge)]
    strategy: Strategy,
    /// One JSON object per conflict
    #[arg(long)]
    json: bool,
}

/// A dry-run sync: what the next sync would find.
pub fn survey(journal: &mut Journal, roots: &RootArgs, strategy: Strategy) -> Result<Report> {
    let opts = Options { strategy, dry_run: true, max_delete: usize::MAX, ..Options::default() };
    Ok(sync(journal, &roots.provider(), &opts)?)
}

pub fn run(journal_dir: &Path, args: Args) -> Result<ExitCode> {
    let mut journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let mut report = survey(&mut journal, &args.roots, Strategy::AutoMerge)?;
    if let Some(prefix) = &args.session {
        // Sessions VS Code has and the journal does not yet count too.
        report.sessions.retain(|s| s.session_id.starts_with(prefix.as_str()));
        if let Some(exact) = report.sessions.iter().position(|s| &s.session_id == prefix) {
            report.sessions = vec![report.sessions.swap_remove(exact)];
        }
        match report.sessions.len() {
            0 => bail!("no session matches {prefix:?}"),
            1 => {}
            n => bail!("{prefix:?} matches {n} sessions; give more of the id"),
        }
    }
    let mut err = std::io::stderr().lock();
    for w in &report.warnings {
        writeln!(err, "warning: {}", w.replace('\n', " "))?;
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for s in &report.sessions {
        if args.json {
            writeln!(out, "{}", session_json(s))?;
            continue;
        }
        let short: String = s.session_id.chars().take(8).collect();
        let mut detail = Vec::new();
        if s.local_changes > 0 {
            detail.push(format!("{} local", s.local_changes));
        }
        if s.remote_changes > 0 {
            detail.push(format!("{} in VS Code", s.remote_changes));
        }
        if !s.conflicts.is_empty() {
            detail.push(format!("{} conflict(s)", s.conflicts.len()));
        }
        if s.location.is_none() {
            detail.push("not in VS Code's storage".into());
        }
        if let Some(e) = &s.error {
            detail.push(e.clone());
        }
        let detail = if detail.is_empty() { String::new() } else { format!("  ({})", detail.join(", ")) };
        writeln!(out, "{:<12}  {short:<8}  {}{detail}", s.status.as_str(), s.title.as_deref().unwrap_or(""))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_conflicts(journal_dir: &Path, args: ConflictsArgs) -> Result<ExitCode> {
    let mut journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let report = survey(&mut journal, &args.roots, args.strategy)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for s in &report.sessions {
        for c in &s.conflicts {
            if args.json {
                writeln!(out, "{}", super::conflict_json(c))?;
            } else {
                let short: String = s.session_id.chars().take(8).collect();
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
