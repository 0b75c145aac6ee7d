//! `chasm replay`: a session as it stood right after any event.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};

use super::time::PointArgs;
use crate::journal::OpenMode;
use crate::pretty::pretty_to;
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
    let journal = super::open_journal(journal_dir, OpenMode::Read)?;
    let id = journal.resolve_session(&args.session)?;
    let point = args.point.point();
    let upto = match point {
        Some(p) => p.seq_in(&journal, &id)?,
        None => u64::MAX,
    };
    let point = point.map_or_else(|| "now".into(), |p| p.describe());
    let missing = |journal: &crate::journal::Journal| -> anyhow::Error {
        match journal.session_seqs(&id) {
            Ok(seqs) => anyhow!(
                "session {id} did not exist yet {point} (its history starts at seq {})",
                seqs.first().copied().unwrap_or(0)
            ),
            Err(e) => e.into(),
        }
    };
    let deleted =
        |seq: u64| anyhow!("session {id} was deleted {point} (at seq {seq}); replay --at an earlier seq to see it");
    // A session is laid out as it is written: a long one is never held whole as JSON text.
    let write = |out: &mut dyn Write| -> Result<()> {
        match args.format {
            Format::Markdown => {
                let Some(state) = journal.state_at(&id, upto)? else { return Err(missing(&journal)) };
                if !state.exists {
                    return Err(deleted(state.deleted_seq.unwrap_or(state.last_seq)));
                }
                out.write_all(transcript::markdown(&id, &state.session).as_bytes())?;
            }
            // The session's stored JSON laid out, never parsed into values: most of a long
            // session's replay was parsing it only to print it again.
            Format::Json | Format::Jsonl => {
                let Some(session) = journal.session_text_at(&id, upto)? else { return Err(missing(&journal)) };
                if !session.exists {
                    return Err(deleted(session.deleted_seq.unwrap_or(session.last_seq)));
                }
                let pieces = session.pieces.iter().map(|p| &**p);
                if args.format == Format::Json {
                    pretty_to(out, pieces)?;
                    out.write_all(b"\n")?;
                } else {
                    out.write_all(br#"{"kind":0,"v":"#)?;
                    for piece in pieces {
                        out.write_all(piece)?;
                    }
                    out.write_all(b"}\n")?;
                }
            }
        }
        Ok(())
    };
    match args.output {
        Some(path) => {
            let mut text = Vec::new();
            write(&mut text)?;
            crate::atomic::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            write(&mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
