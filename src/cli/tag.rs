//! `chasm tag` and `chasm untag`: chasm's own labels on sessions (kept in the journal only).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::Value;

use super::edit::{current, record_local};
use crate::journal::{ChangeType, EntityType, OpenMode};

/// Add a tag to a session
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session id or a unique prefix of one
    session: String,
    /// The tag
    tag: String,
}

pub fn run(journal_dir: &Path, args: Args, add: bool) -> Result<ExitCode> {
    let tag = args.tag.trim();
    if tag.is_empty() || tag.chars().any(char::is_control) {
        bail!("a tag must be non-empty text without control characters");
    }
    let mut journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let (id, state) = current(&journal, &args.session)?;
    if state.tags.contains(tag) == add {
        println!("{id}: {} tagged {tag:?}", if add { "already" } else { "not" });
        return Ok(ExitCode::SUCCESS);
    }
    let change = if add { ChangeType::Create } else { ChangeType::Delete };
    let seq = record_local(&mut journal, &id, change, EntityType::Tag, tag, Value::Null)?;
    println!("{id}: {} {tag:?} (seq {seq})", if add { "tagged" } else { "untagged" });
    Ok(ExitCode::SUCCESS)
}
