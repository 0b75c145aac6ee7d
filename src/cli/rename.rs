//! `chasm rename`: give a session a new title; the next sync writes it to VS Code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::Value;

use super::edit::{current, record_local};
use crate::fold::metadata_payload;
use crate::journal::{ChangeType, EntityType, OpenMode};

/// Rename a session (applied to VS Code on the next sync)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session id or a unique prefix of one
    session: String,
    /// The new title
    title: String,
}

pub fn run(journal_dir: &Path, args: Args) -> Result<ExitCode> {
    // VS Code shows a title on one line, and an empty one as if there were none.
    if args.title.trim().is_empty() || args.title.chars().any(char::is_control) {
        bail!("a title must be non-empty text without control characters");
    }
    let mut journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let (id, state) = current(&journal, &args.session)?;
    if state.session.custom_title() == Some(args.title.as_str()) {
        println!("{id}: already titled {:?}", args.title);
        return Ok(ExitCode::SUCCESS);
    }
    let position = state.session.field_position("customTitle").unwrap_or(usize::MAX);
    let payload = metadata_payload(&Value::from(args.title.clone()), position);
    let seq = record_local(&mut journal, &id, ChangeType::Update, EntityType::Metadata, "customTitle", payload)?;
    println!("{id}: renamed to {:?} (seq {seq}); `chasm sync` writes it to VS Code", args.title);
    Ok(ExitCode::SUCCESS)
}
