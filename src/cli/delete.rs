//! `chasm delete`: delete a session; the next sync removes it from VS Code. Its history stays
//! in the journal and `chasm replay --at` still shows it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::Value;

use super::edit::{current, record_local};
use crate::journal::{ChangeType, EntityType, OpenMode};

/// Delete a session (removed from VS Code on the next sync; its history is kept)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session id or a unique prefix of one
    session: String,
}

pub fn run(journal_dir: &Path, args: Args) -> Result<ExitCode> {
    let mut journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let (id, _) = current(&journal, &args.session)?;
    let seq = record_local(&mut journal, &id, ChangeType::Delete, EntityType::Session, &id, Value::Null)?;
    println!(
        "{id}: deleted (seq {seq}); `chasm sync` removes it from VS Code, `chasm replay --at {}` shows it",
        seq - 1
    );
    Ok(ExitCode::SUCCESS)
}
