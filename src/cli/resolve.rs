//! `chasm resolve`: settle one conflict, then sync that session.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::RootArgs;
use super::status::survey;
use super::sync::{conclude, print_report};
use crate::config::Settings;
use crate::journal::OpenMode;
use crate::merge::{Strategy, Take};
use crate::sync::{Options, sync};

/// Settle a conflict listed by `chasm conflicts`, then sync its session
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The conflict id (or a unique prefix of it)
    conflict: String,
    /// Which version to keep: local (the journal's), remote (VS Code's), both (VS Code's in
    /// place and the local one as a new session), merge (combine where possible)
    #[arg(long, value_enum)]
    take: Take,
    #[command(flatten)]
    roots: RootArgs,
    /// The strategy for the session's other conflicts [default: the configured one]
    #[arg(long, value_enum)]
    strategy: Option<Strategy>,
}

pub fn run(journal_dir: &Path, args: Args, settings: &Settings) -> Result<ExitCode> {
    let mut journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let report = survey(&mut journal, &args.roots, settings, Strategy::Manual)?;
    let matches: Vec<_> =
        report.sessions.iter().flat_map(|s| s.conflicts.iter()).filter(|c| c.id.starts_with(&args.conflict)).collect();
    let conflict = match matches.as_slice() {
        [one] => (*one).clone(),
        [] => bail!(
            "no conflict {} (run `chasm conflicts` to list them; ids change when either side changes)",
            args.conflict
        ),
        _ => bail!("{} matches {} conflicts; give more of the id", args.conflict, matches.len()),
    };
    let opts = Options {
        strategy: args.strategy.unwrap_or(settings.strategy),
        dry_run: false,
        max_delete: usize::MAX,
        overrides: HashMap::from([(conflict.id.clone(), args.take)]),
        only: Some(conflict.session_id.clone()),
        ..Options::default()
    };
    let report = sync(&mut journal, &args.roots.provider(settings), &opts)?;
    print_report(&report, false, false)?;
    Ok(conclude(&report, false))
}
