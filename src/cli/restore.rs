//! `chasm restore`: bring a session back to how it stood at an earlier point, as new history.
//!
//! Like `jj op restore`, nothing is rewritten: the restore appends the local changes that turn
//! the session's current state into the chosen one, so the restore itself shows in `chasm log`
//! and is undone by restoring to the seq before it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use chrono::Utc;

use super::RootArgs;
use super::sync::{conclude, print_report};
use super::time::PointArgs;
use crate::config::Settings;
use crate::diff::{EntityChange, restore};
use crate::fold::SessionState;
use crate::journal::{ChangeType, EntityType, Journal, NewChange, OpenMode, Origin};
use crate::provider::vscode::PROVIDER;
use crate::provider::{Listing, Provider};
use crate::sync::{Options, home_of, placed_session, sync, until_trimmed};

/// Restore a session as it stood at an earlier point (recorded as new, local history)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session id or a unique prefix of one
    session: String,
    // Where in its history; left out, the latest point at which the session existed, which
    // brings back a deleted or hidden session.
    #[command(flatten)]
    point: PointArgs,
    /// Create a copy under a new session id instead, beside the original in VS Code
    #[arg(long)]
    as_new: bool,
    /// Write the result to VS Code now rather than at the next sync
    #[arg(long)]
    push: bool,
    #[command(flatten)]
    roots: RootArgs,
}

pub fn run(journal_dir: &Path, args: Args, settings: &Settings) -> Result<ExitCode> {
    let mut journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let id = journal.resolve_session(&args.session)?;
    let Some(current) = journal.state_at(&id, u64::MAX)? else { bail!("no session matches {:?}", args.session) };
    let (target, point) = match args.point.point() {
        Some(p) => {
            let seq = p.seq_in(&journal, &id)?;
            match journal.state_at(&id, seq)? {
                Some(state) => (state, p.describe()),
                None => bail!("session {id} did not exist yet {}", p.describe()),
            }
        }
        None => match journal.last_existing(&id)? {
            (Some(state), None) => (state, "now".to_owned()),
            (Some(state), Some(deleted)) => {
                let point = format!("before its deletion at seq {deleted} (seq {})", state.last_seq);
                (state, point)
            }
            (None, _) => bail!("session {id} never held any content to restore"),
        },
    };
    if args.as_new {
        return restore_as_new(&mut journal, &args.roots.provider(settings), &id, target, &point);
    }

    let changes = restore(&id, Some(&current), &target);
    let now = Utc::now();
    let batch: Vec<NewChange> = changes.into_iter().map(|c| c.into_change(&id, now, Origin::Local, PROVIDER)).collect();
    if batch.is_empty() {
        println!("{id} already stands as it did {point}; nothing to restore");
        if !args.push {
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        let records = journal.append(batch)?;
        let (first, last) = (records[0].seq, records[records.len() - 1].seq);
        println!(
            "restored {id} to how it stood {point}: {} change(s) recorded as seqs {first}..={last} (undo: `chasm restore {id} --at {}`)",
            records.len(),
            first - 1
        );
    }
    if !args.push {
        println!("`chasm sync` writes it to VS Code (or restore with --push)");
        return Ok(ExitCode::SUCCESS);
    }
    // Only now is VS Code's storage needed (and its absence worth a warning).
    let provider = args.roots.provider(settings);
    let report =
        sync(&mut journal, &provider, &Options { only: Some(id.clone()), max_delete: 1, ..Options::default() })?;
    print_report(&report, false, false)?;
    // Brought back or not, the session is only seen in VS Code once its index lists it (the
    // sync has listed a file it wrote anew; a file that was there may still be unlisted).
    let listed_by_sync = report.sessions.iter().any(|s| s.session_id == id && s.listed);
    if let Some(state) = journal.state_at(&id, u64::MAX)?.filter(|s| s.exists && !listed_by_sync)
        && let Some(home) = home_of(&journal, &id)?.filter(|l| l.path.is_file() && provider.covers(l))
    {
        match provider.ensure_listed(&home, &id, &state.session) {
            Ok(Listing::Added) => println!("{id} is listed in VS Code's chat history again"),
            Ok(Listing::AddedUntilTrimmed { newer, kept }) => eprintln!("warning: {}", until_trimmed(&id, newer, kept)),
            Ok(_) => {}
            Err(e) => bail!(
                "{id} was written to {}, but VS Code will not list it yet: {e}; close VS Code and run this command again",
                home.path.display()
            ),
        }
    }
    Ok(conclude(&report, false))
}

fn restore_as_new(
    journal: &mut Journal,
    provider: &dyn Provider,
    id: &str,
    mut target: SessionState,
    point: &str,
) -> Result<ExitCode> {
    if !target.exists {
        bail!("session {id} was deleted {point}; give an earlier --at to copy it");
    }
    let new_id = uuid::Uuid::new_v4().to_string();
    target.session = target.session.as_copy(&new_id, "restored");
    let now = Utc::now();
    let mut batch = Vec::new();
    let home = home_of(journal, id)?.filter(|l| provider.covers(l));
    let placed = match home {
        Some(home) => {
            let loc = provider.location_for_new(&home, &new_id);
            provider.push(&loc, &target.session, None)?;
            batch.extend(placed_session(&new_id, &target.session, &loc, journal.last_seq() + 1, provider.name()));
            Some(loc)
        }
        None => {
            batch.extend(
                crate::diff::diff(&new_id, None, &target.session)
                    .into_iter()
                    .map(|c| c.into_change(&new_id, now, Origin::Local, provider.name())),
            );
            None
        }
    };
    // The copy carries the original's tags too.
    batch.extend(target.tags.iter().map(|tag| {
        let change = EntityChange {
            change_type: ChangeType::Create,
            entity_type: EntityType::Tag,
            entity_id: tag.clone(),
            payload: serde_json::Value::Null,
        };
        change.into_change(&new_id, now, Origin::Local, provider.name())
    }));
    journal.append(batch)?;
    match placed {
        Some(loc) => {
            println!("created {new_id} from {id} as it stood {point}; written to {}", loc.path.display());
            if let Err(e) = provider.ensure_listed(&loc, &new_id, &target.session) {
                bail!(
                    "{new_id} was written, but VS Code will not list it yet: {e}; close VS Code and run `chasm restore {new_id} --push`"
                );
            }
        }
        None => println!(
            "created {new_id} from {id} as it stood {point}, in the journal only: {id} has no place in VS Code's storage under these roots to put the copy beside"
        ),
    }
    Ok(ExitCode::SUCCESS)
}
