//! `chasm sync`: keep the journal and VS Code's chat storage in step, both ways.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::{RootArgs, conflict_json};
use crate::config::Settings;
use crate::in_step;
use crate::merge::Strategy;
use crate::progress::Progress;
use crate::sync::{Action, Options, Report, SessionSync};

/// Exit status when conflicts wait for `chasm resolve`.
pub const EXIT_CONFLICTS: u8 = 3;
/// Exit status when some sessions could not be synced (the others were), as rsync's 23 for a
/// partial transfer: a script or a scheduled sync must not read it as success.
pub const EXIT_FAILED: u8 = 4;

/// Sync the journal with VS Code's chat sessions, both ways
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    roots: RootArgs,
    /// How conflicts are settled [default: the configured strategy, else auto_merge]
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
    /// Report what would happen; write nothing anywhere
    #[arg(long)]
    dry_run: bool,
    /// Abort before deleting more than N sessions on either side [default: the configured
    /// max_delete, else 10]
    #[arg(long, value_name = "N")]
    max_delete: Option<usize>,
    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
    /// Keep syncing: a round every interval, and sooner when a session file changes; stop with
    /// Ctrl-C (the round under way finishes first)
    #[arg(long, conflicts_with = "dry_run")]
    pub watch: bool,
    /// Seconds between rounds with --watch [default: the configured interval, else 300]
    #[arg(long, value_name = "SECS", requires = "watch", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval: Option<u64>,
}

impl Args {
    pub fn json(&self) -> bool {
        self.json
    }

    pub fn provider(&self, settings: &Settings) -> crate::provider::vscode::VsCode {
        self.roots.provider(settings)
    }
}

pub fn run(journal_dir: &Path, args: Args, settings: &Settings, progress: &Progress) -> Result<ExitCode> {
    if args.watch {
        return super::watch::run(journal_dir, &args, settings);
    }
    let provider = args.roots.provider(settings);
    let report = round(journal_dir, &provider, &args, settings, progress)?;
    print_report(&report, args.dry_run, args.json)?;
    if progress.is_on()
        && let Some(hint) = pack_hint(&report)
    {
        eprintln!("hint: {hint}");
    }
    Ok(conclude(&report, args.dry_run))
}

/// A sync that recorded this many records (a first sync of a few hundred sessions) is told of
/// `chasm gc`: appends store records as they are, and packing them takes such a journal to about
/// a quarter.
const PACK_HINT_RECORDS: usize = 10_000;

/// What a person who just ran a large sync should know of `chasm gc`, as git says when it packs.
fn pack_hint(report: &Report) -> Option<String> {
    (report.appended >= PACK_HINT_RECORDS).then(|| {
        format!("{} records recorded; `chasm gc` stores them compressed (about a quarter of the size)", report.appended)
    })
}

/// One sync as the command line asks for it (see [`in_step::round`]).
pub fn round(
    journal_dir: &Path,
    provider: &crate::provider::vscode::VsCode,
    args: &Args,
    settings: &Settings,
    progress: &Progress,
) -> Result<Report> {
    let opts = Options {
        strategy: args.strategy.unwrap_or(settings.strategy),
        dry_run: args.dry_run,
        max_delete: args.max_delete.unwrap_or(settings.max_delete),
        progress: progress.clone(),
        ..Options::default()
    };
    Ok(in_step::round(journal_dir, provider, &opts)?)
}

/// How a sync ends: [`EXIT_FAILED`], after one `error:` line, when a session failed (it
/// outranks waiting conflicts, which the report lists anyway); [`EXIT_CONFLICTS`] when
/// conflicts wait; 0 when everything converged or was only deferred (VS Code was writing it).
pub fn conclude(report: &Report, dry_run: bool) -> ExitCode {
    match count(report, Action::Failed) {
        0 if report.sessions.iter().any(|s| s.action == Action::Conflicted) => ExitCode::from(EXIT_CONFLICTS),
        0 => ExitCode::SUCCESS,
        n => {
            let sessions = if n == 1 { "session" } else { "sessions" };
            if dry_run {
                eprintln!("error: {n} {sessions} cannot be synced (see above)");
            } else {
                eprintln!("error: {n} {sessions} could not be synced (see above); each sync tries again");
            }
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn count(report: &Report, action: Action) -> usize {
    report.sessions.iter().filter(|s| s.action == action).count()
}

/// Prints a sync report: a line per session that changed and a summary, or one JSON object.
pub fn print_report(report: &Report, dry_run: bool, as_json: bool) -> Result<()> {
    let mut err = std::io::stderr().lock();
    for w in &report.warnings {
        writeln!(err, "warning: {}", w.replace('\n', " "))?;
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        let sessions: Vec<_> = report.sessions.iter().filter(|s| s.action != Action::None).map(session_json).collect();
        let value = json!({
            "dry_run": dry_run,
            "pulled": count(report, Action::Pulled),
            "pushed": count(report, Action::Pushed),
            "merged": count(report, Action::Merged),
            "conflicted": count(report, Action::Conflicted),
            "deferred": count(report, Action::Deferred),
            "failed": count(report, Action::Failed),
            "appended": report.appended,
            "files_written": report.files_written,
            "sessions": sessions,
            "warnings": report.warnings,
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    // Told apart from every session the round saw (the journal is closed by now).
    let mut ids: Vec<&str> = report.sessions.iter().map(|s| s.session_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let shorts: std::collections::HashMap<&str, &str> =
        ids.iter().copied().zip(crate::short_id::of_sorted(&ids)).collect();
    for s in report.sessions.iter().filter(|s| s.action != Action::None) {
        let short = shorts[s.session_id.as_str()];
        let mut line = format!("{:<10}  {short:<8}  {}", s.action.as_str(), s.title.as_deref().unwrap_or(""));
        if s.deleted {
            line.push_str("  (deleted)");
        }
        if !s.conflicts.is_empty() {
            line.push_str(&format!("  — {} conflict(s), see `chasm conflicts`", s.conflicts.len()));
        }
        if s.listed {
            line.push_str("  — listed in VS Code's chat history again");
        }
        if let Some(copy) = &s.copy {
            line.push_str(&format!("  — local version kept as {copy}"));
        }
        if let Some(e) = &s.error {
            line.push_str(&format!("  — {e}"));
        }
        writeln!(out, "{line}")?;
    }
    writeln!(out, "{}", summary_line(report, dry_run))?;
    Ok(())
}

/// The one-line summary of a sync: `sync: 1 pulled, 0 pushed, 0 merged, 0 conflicted`, and
/// how many were deferred or failed when any were.
pub fn summary_line(report: &Report, dry_run: bool) -> String {
    format!(
        "{}{} pulled, {} pushed, {} merged, {} conflicted{}",
        if dry_run { "dry run (nothing written): " } else { "sync: " },
        count(report, Action::Pulled),
        count(report, Action::Pushed),
        count(report, Action::Merged),
        count(report, Action::Conflicted),
        [(Action::Deferred, "deferred"), (Action::Failed, "failed")]
            .into_iter()
            .map(|(action, word)| match count(report, action) {
                0 => String::new(),
                n => format!(", {n} {word}"),
            })
            .collect::<String>()
    )
}

/// A session's part in a sync or its status, for `--json`.
pub fn session_json(s: &SessionSync) -> serde_json::Value {
    json!({
        "session_id": s.session_id,
        "title": s.title,
        "status": s.status.as_str(),
        "action": s.action.as_str(),
        "local_changes": s.local_changes,
        "remote_changes": s.remote_changes,
        "path": s.location.as_ref().map(|l| l.path.to_string_lossy().into_owned()),
        "conflicts": s.conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
        "copy": s.copy,
        "deleted": s.deleted,
        "listed": s.listed,
        "error": s.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_sync_is_told_of_gc() {
        let report = |appended| Report { appended, ..Report::default() };
        assert_eq!(pack_hint(&report(PACK_HINT_RECORDS - 1)), None);
        assert!(pack_hint(&report(90_365)).is_some_and(|h| h.starts_with("90365 records") && h.contains("chasm gc")));
    }
}
