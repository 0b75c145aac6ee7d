//! The command line: one module per command, and the few helpers they share. This is the only
//! layer that prints, and the only one that uses `anyhow`.

mod capture;
mod config;
mod conflicts;
mod delete;
mod diff;
mod edit;
mod export;
mod gc;
mod graph;
mod import;
mod log;
mod rename;
mod replay;
mod resolve;
mod restore;
mod status;
mod style;
mod sync;
mod tag;
mod time;
mod verify;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::journal::{Journal, OpenMode};

/// chasm keeps a durable, auditable history of your AI chat sessions.
#[derive(Debug, Parser)]
#[command(name = "chasm", version, about, max_term_width = 100)]
pub struct Cli {
    /// The journal directory [default: $CHASM_JOURNAL, else the platform data dir, e.g.
    /// ~/.local/share/chasm/journal]
    #[arg(long, global = true, value_name = "DIR")]
    pub journal: Option<PathBuf>,

    /// No progress lines on stderr
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    /// The config file [default: $CHASM_CONFIG, else the platform config dir, e.g.
    /// ~/.config/chasm/config.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Capture(capture::Args),
    Log(log::Args),
    Replay(replay::Args),
    Verify(verify::Args),
    Gc(gc::Args),
    Sync(sync::Args),
    Status(status::Args),
    Conflicts(conflicts::Args),
    Resolve(resolve::Args),
    Restore(restore::Args),
    Rename(rename::Args),
    Tag(tag::Args),
    /// Remove a tag from a session
    Untag(tag::Args),
    Delete(delete::Args),
    Diff(diff::Args),
    Export(export::Args),
    Import(import::Args),
    Config(config::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions {
        shell: clap_complete::Shell,
    },
}

/// The VS Code storage a command works on.
#[derive(Debug, Clone, clap::Args)]
pub struct RootArgs {
    /// VS Code storage to sync (repeatable): a User dir, a workspaceStorage dir, or a chat
    /// folder [default: the User dirs of Code, Code - Insiders and VSCodium]
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
}

impl RootArgs {
    /// The storage to work on: `--root` flags, else the configured roots, else the usual User
    /// dirs.
    fn provider(&self, settings: &crate::config::Settings) -> crate::provider::vscode::VsCode {
        let roots = if self.roots.is_empty() { &settings.roots } else { &self.roots };
        let provider = crate::provider::vscode::VsCode::new(roots);
        // Nothing to sync is rarely what was meant: VS Code elsewhere (a portable install, a
        // remote), or a root mistyped.
        if provider.dirs.is_empty() {
            let place = match roots.as_slice() {
                [] => "in the usual places".to_owned(),
                roots => {
                    format!("under {}", roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", "))
                }
            };
            eprintln!(
                "warning: no VS Code chat folders found {place}; give --root DIR (a User dir or a chat folder), or set it with `chasm config set roots DIR`"
            );
        }
        provider
    }
}

/// A conflict, for `--json`.
fn conflict_json(c: &crate::merge::Conflict) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "session_id": c.session_id,
        "kind": c.kind.as_str(),
        "entity_type": c.entity_type.as_str(),
        "entity_id": c.entity_id,
        "local": c.local,
        "remote": c.remote,
    })
}

/// A few words on one side of a conflict.
fn describe(v: Option<&serde_json::Value>) -> String {
    match v {
        None => "deleted".into(),
        Some(serde_json::Value::String(s)) => format!("{:?}", crate::session::first_words(s, 40)),
        Some(serde_json::Value::Array(items)) => format!("{} request(s)", items.len()),
        // A whole session (one side of a `deletion` conflict): by its title, not its JSON.
        Some(v) if v.get("requests").is_some_and(serde_json::Value::is_array) => {
            let requests = v["requests"].as_array().map_or(0, Vec::len);
            let title = crate::session::Session::from_value(v.clone()).ok().and_then(|s| s.display_title());
            match title {
                Some(t) => format!("the session {:?} ({requests} request(s))", crate::session::first_words(&t, 40)),
                None => format!("the session ({requests} request(s))"),
            }
        }
        Some(v) => match v.get("message").and_then(|m| m.get("text")).and_then(serde_json::Value::as_str) {
            Some(text) => format!(
                "{:?} ({} response parts)",
                crate::session::first_words(text, 30),
                v.get("response").and_then(serde_json::Value::as_array).map_or(0, Vec::len)
            ),
            None => crate::session::first_words(&v.to_string(), 40),
        },
    }
}

/// A path from the environment; an empty variable counts as unset.
fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Runs a parsed command line.
pub fn run(mut cli: Cli) -> Result<ExitCode> {
    cli.config = cli.config.or_else(|| env_path("CHASM_CONFIG"));
    cli.journal = cli.journal.or_else(|| env_path("CHASM_JOURNAL"));
    let config_file = cli.config.clone();
    let progress = style::progress(cli.quiet);
    let settings = || -> Result<crate::config::Settings> { Ok(crate::config::load(config_file.as_deref())?.settings) };
    match cli.command {
        Command::Config(args) => return config::run(cli.config.as_deref(), args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "chasm", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let journal_dir = match cli.journal {
        Some(dir) => dir,
        None => default_journal_dir().context("cannot find a data directory for the journal; pass --journal DIR")?,
    };
    match cli.command {
        Command::Capture(args) => capture::run(&journal_dir, args),
        Command::Log(args) => log::run(&journal_dir, args),
        Command::Replay(args) => replay::run(&journal_dir, args),
        Command::Verify(args) => verify::run(&journal_dir, args, &progress),
        Command::Gc(args) => gc::run(&journal_dir, args, &progress),
        Command::Sync(args) => sync::run(&journal_dir, args, &settings()?, &progress),
        Command::Status(args) => status::run(&journal_dir, args, &settings()?),
        Command::Conflicts(args) => conflicts::run(&journal_dir, args, &settings()?),
        Command::Resolve(args) => resolve::run(&journal_dir, args, &settings()?),
        Command::Restore(args) => restore::run(&journal_dir, args, &settings()?),
        Command::Rename(args) => rename::run(&journal_dir, args),
        Command::Tag(args) => tag::run(&journal_dir, args, true),
        Command::Untag(args) => tag::run(&journal_dir, args, false),
        Command::Delete(args) => delete::run(&journal_dir, args),
        Command::Diff(args) => diff::run(&journal_dir, args),
        Command::Export(args) => export::run(&journal_dir, args, &progress),
        Command::Import(args) => import::run(&journal_dir, args, &settings()?, &progress),
        Command::Config(_) | Command::Completions { .. } => unreachable!("handled before the journal is located"),
    }
}

/// The error and its causes on one line, each cause once: library errors already name their
/// source in their own message, so a cause whose text the line already holds is left out.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace(['\n', '\r'], " ")
}

/// Whether an error is stdout closing early (`chasm log | head`): not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Short session ids for lines printed one at a time (`log`, its graph, `conflicts`), each told
/// from every session the journal knows (see [`crate::short_id`]) by one lookup of its
/// neighbours.
struct ShortIds<'j> {
    journal: &'j Journal,
    known: std::collections::HashMap<String, usize>,
    /// The last id asked for, and its length: a log's lines come in runs of one session.
    last: (String, usize),
}

impl<'j> ShortIds<'j> {
    fn new(journal: &'j Journal) -> ShortIds<'j> {
        ShortIds { journal, known: std::collections::HashMap::new(), last: (String::new(), 0) }
    }

    fn of<'a>(&mut self, id: &'a str) -> Result<&'a str, crate::journal::JournalError> {
        if self.last.0 == id {
            return Ok(crate::short_id::cut(id, self.last.1));
        }
        let len = match self.known.get(id) {
            Some(&len) => len,
            None => {
                let around = self.journal.ids_around(id)?;
                let len = crate::short_id::len_among(id, around.iter().flatten().map(String::as_str));
                self.known.insert(id.to_owned(), len);
                len
            }
        };
        self.last.0.clear();
        self.last.0.push_str(id);
        self.last.1 = len;
        Ok(crate::short_id::cut(id, len))
    }
}

fn open_journal(dir: &std::path::Path, mode: OpenMode) -> Result<Journal> {
    Ok(Journal::open(dir, mode)?)
}

/// `$XDG_DATA_HOME/chasm/journal` or `~/.local/share/chasm/journal` on Linux and the BSDs,
/// `~/Library/Application Support/chasm/journal` on macOS, `%APPDATA%\chasm\journal` on Windows.
fn default_journal_dir() -> Option<PathBuf> {
    Some(crate::config::chasm_dir("XDG_DATA_HOME", &[".local", "share"])?.join("journal"))
}
