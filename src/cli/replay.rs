//! `chasm replay`: a session as it stood right after any event.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::time::PointArgs;
use crate::journal::OpenMode;
use crate::pretty::pretty;
use crate::transcript;

/// Show a session as it stood at any point in its history
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session id or a unique prefix of one
    session: String,
    // Where in its history; the latest when left out.
    #[command(flatten)]
    point: PointArgs,
    /// json: a VS Code session file; jsonl: a VS Code mutation log; markdown: a transcript
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Write to FILE (atomically) instead of standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Json,
    Jsonl,
    Markdown,
}

pub fn run(journal_dir: &Path, args: Args) -> Result<ExitCode> {
    let journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let id = journal.resolve_session(&args.session)?;
    let point = args.point.point();
    let upto = match point {
        Some(p) => p.seq_in(&journal, &id)?,
        None => u64::MAX,
    };
    let point = point.map_or_else(|| "now".into(), |p| p.describe());
    let missing = |journal: &crate::journal::Journal| -> Result<ExitCode> {
        let first = journal.session_seqs(&id)?.first().copied().unwrap_or(0);
        bail!("session {id} did not exist yet {point} (its history starts at seq {first})");
    };
    let deleted = |seq: u64| -> Result<ExitCode> {
        bail!("session {id} was deleted {point} (at seq {seq}); replay --at an earlier seq to see it");
    };
    let text = match args.format {
        Format::Markdown => {
            let Some(state) = journal.state_at(&id, upto)? else { return missing(&journal) };
            if !state.exists {
                return deleted(state.deleted_seq.unwrap_or(state.last_seq));
            }
            transcript::markdown(&id, &state.session).into_bytes()
        }
        // The session's stored JSON laid out, never parsed into values: most of a long
        // session's replay was parsing it only to print it again.
        Format::Json | Format::Jsonl => {
            let Some(session) = journal.session_text_at(&id, upto)? else { return missing(&journal) };
            if !session.exists {
                return deleted(session.deleted_seq.unwrap_or(session.last_seq));
            }
            if args.format == Format::Json {
                let mut text = pretty(&session.json);
                text.push(b'\n');
                text
            } else {
                [&br#"{"kind":0,"v":"#[..], &session.json, b"}\n"].concat()
            }
        }
    };
    match args.output {
        Some(path) => crate::atomic::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&text)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
