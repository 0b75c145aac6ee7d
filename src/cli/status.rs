//! `chasm status`: where sessions stand, derived from the fold since each session's last
//! checkpoint and a read of VS Code's files. Nothing is written.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::Value;

use super::RootArgs;
use super::style::{self, Paint};
use super::sync::session_json;
use super::time::rfc3339;
use crate::config::Settings;
use crate::journal::{Fingerprint, Gone, Journal, OpenMode};
use crate::merge::Strategy;
use crate::provider::vscode::index;
use crate::session::Session;
use crate::sync::{Options, Report, SessionSync, Status, sync, sync_noted};

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
    /// Also list sessions VS Code no longer has: deleted there, or dropped from its index
    #[arg(long)]
    all: bool,
}

/// Whether VS Code still shows a session.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presence {
    /// In VS Code's storage and listed (or no index to say otherwise).
    Present,
    /// The file is there, but VS Code's index no longer lists it, so VS Code does not show it.
    Hidden,
    /// Deleted (in VS Code or by chasm); the journal keeps its history.
    Deleted { seq: u64 },
    /// Only ever in the journal (captured from a file outside VS Code's storage).
    JournalOnly,
}

impl Presence {
    fn as_str(&self) -> &'static str {
        match self {
            Presence::Present => "present",
            Presence::Hidden => "hidden",
            Presence::Deleted { .. } => "deleted",
            Presence::JournalOnly => "journal_only",
        }
    }
}

/// Whether VS Code has written the file of a session the journal holds deleted again since:
/// the next sync brings it back, so it is not gone. (A deletion made through chasm and not yet
/// pushed leaves the file with no change in VS Code: deleted, as the user asked.)
fn written_again(s: &SessionSync) -> bool {
    s.remote_changes > 0 && s.location.as_ref().is_some_and(|l| l.path.is_file())
}

/// Where a session stands in VS Code, and its last title and activity (ms) the journal has
/// (`dates`: the activity too, see [`Journal::last_fields`]; neither for a session in step
/// with its file when no date is asked, whose title the sync has). `note`: what the last sync
/// noted of it while it has the same records (see [`Fingerprint`]): a session found settled
/// and deleted, or never synced, is shown from it, which spares reading its history.
fn presence(
    journal: &Journal,
    s: &SessionSync,
    note: Option<&Fingerprint>,
    dates: bool,
    listed: &mut HashMap<PathBuf, Option<BTreeSet<String>>>,
    warnings: &mut Vec<String>,
) -> Result<(Presence, Option<String>, Option<i64>)> {
    if let Some(gone) = note.and_then(settled_gone).flatten().filter(|_| !written_again(s)) {
        return Ok((Presence::Deleted { seq: gone.deleted_seq }, gone.title.clone(), gone.last_activity));
    }
    // Never synced, and there: the sync took its title from the note, the date is in it. (The
    // title returned is only a fallback for the sync's.) One deleted, or never created, is
    // shown from what it last held, as before.
    if let Some(unsynced) = note.and_then(|n| n.unsynced).filter(|u| u.exists && s.location.is_none()) {
        return Ok((Presence::JournalOnly, None, unsynced.last_activity));
    }
    // A file the sync listed a moment ago (it carries the fingerprint the listing took) is not
    // looked up again.
    let file = s.location.as_ref().filter(|l| s.fingerprint.is_some() || l.path.is_file());
    // In step, with its file there: the checkpoint the file agrees with holds the session (a
    // file standing where the journal last has it deleted is a change of VS Code's), and the
    // sync has its title. The journal is asked only for a date, which plain status does not
    // show: reading every session's last fields was about 40% of its time.
    let (title, date) = if s.status == Status::Synced && s.title.is_some() && !dates && file.is_some() {
        (None, None)
    } else {
        let (last, deleted) = journal.last_fields(&s.session_id, dates)?;
        let title = last.as_ref().and_then(Session::display_title);
        let date = last.as_ref().and_then(Session::last_activity);
        if let Some(seq) = deleted.filter(|_| !written_again(s)) {
            return Ok((Presence::Deleted { seq }, title, date));
        }
        (title, date)
    };
    let Some(loc) = file else {
        return Ok((if s.location.is_none() { Presence::JournalOnly } else { Presence::Present }, title, date));
    };
    let Some(db) = loc.path.parent().and_then(index::state_db_for) else {
        return Ok((Presence::Present, title, date));
    };
    let ids = listed.entry(db.clone()).or_insert_with(|| match index::listed_ids(&db) {
        Ok(ids) => ids,
        Err(e) => {
            warnings.push(format!("cannot tell which sessions VS Code lists: {e}"));
            None
        }
    });
    let hidden = ids.as_ref().is_some_and(|ids| !ids.contains(&s.session_id));
    Ok((if hidden { Presence::Hidden } else { Presence::Present }, title, date))
}

/// A session a sync found settled and deleted (with what `--all` shows of it, when noted).
fn settled_gone(note: &Fingerprint) -> Option<Option<&Gone>> {
    note.settled.as_ref().filter(|s| !s.exists).map(|s| s.gone.as_ref())
}

/// A dry-run sync: what the next sync would find.
pub fn survey(journal: &mut Journal, roots: &RootArgs, settings: &Settings, strategy: Strategy) -> Result<Report> {
    Ok(sync(journal, &roots.provider(settings), &survey_options(strategy))?)
}

/// A dry run that may report any number of deletions: nothing is deleted.
fn survey_options(strategy: Strategy) -> Options {
    Options { strategy, dry_run: true, max_delete: usize::MAX, ..Options::default() }
}

pub fn run(journal_dir: &Path, args: Args, settings: &Settings) -> Result<ExitCode> {
    let mut journal = super::open_journal(journal_dir, OpenMode::Read)?;
    // What the last sync noted of each session: the survey reads its files against them, and
    // sessions found settled or never synced are shown from them.
    let notes = journal.fingerprints_in_step()?;
    let opts = survey_options(Strategy::AutoMerge);
    let mut report = sync_noted(&mut journal, &args.roots.provider(settings), &opts, &notes)?;
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
    // A date is shown in JSON, and beside a deleted session (listed with --all, or asked for).
    let dates = args.json || args.all || args.session.is_some();
    // Plain status lists no deleted session (but one in conflict). Those a sync found settled
    // and gone, with no record since, are known gone from its cache, with what `--all` shows of
    // them: deleted sessions pile up, and reading what each last held costs a snapshot and its
    // records.
    let hide_deleted = !args.all && args.session.is_none();
    let mut listed = HashMap::new();
    let mut warnings = report.warnings.clone();
    let mut rows = Vec::new();
    for s in &report.sessions {
        let note = notes.get(&s.session_id);
        if hide_deleted && note.and_then(settled_gone).is_some() && !written_again(s) {
            continue;
        }
        let (presence, title, date) = presence(&journal, s, note, dates, &mut listed, &mut warnings)?;
        // A deletion in conflict with a change on the other side waits for the user: shown.
        if matches!(presence, Presence::Deleted { .. }) && hide_deleted && s.status != Status::Conflict {
            continue;
        }
        rows.push((s, presence, title, date));
    }
    let mut err = std::io::stderr().lock();
    for w in &warnings {
        writeln!(err, "warning: {}", w.replace('\n', " "))?;
    }
    // Told apart from every session either side knows, as `status PREFIX` and `restore` need.
    let mut ids: Vec<&str> = report.sessions.iter().map(|s| s.session_id.as_str()).collect();
    let in_journal = journal.session_ids()?;
    ids.extend(in_journal.iter().map(String::as_str));
    ids.sort_unstable();
    ids.dedup();
    let shorts: HashMap<&str, &str> = ids.iter().copied().zip(crate::short_id::of_sorted(&ids)).collect();
    let width = rows.iter().map(|(s, ..)| shorts[s.session_id.as_str()].chars().count()).max().unwrap_or(0);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let colour = style::colour();
    for (s, presence, title, date) in rows {
        let last_title = s.title.clone().or(title);
        let last_date = date.and_then(chrono::DateTime::from_timestamp_millis).map(|t| rfc3339(&t));
        if args.json {
            let mut v = session_json(s);
            v["presence"] = Value::from(presence.as_str());
            v["last_title"] = Value::from(last_title);
            v["last_message_date"] = Value::from(last_date);
            if let Presence::Deleted { seq } = presence {
                v["deleted_seq"] = Value::from(seq);
            }
            writeln!(out, "{v}")?;
            continue;
        }
        let short = shorts[s.session_id.as_str()];
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
        let restore_hint = format!("`chasm restore {short} --push` brings it back");
        let mut state = s.status.as_str();
        match presence {
            Presence::Present => {}
            Presence::JournalOnly => detail.push("not in VS Code's storage".into()),
            Presence::Hidden => {
                // Nearly always trimmed for its age: listed again, it lasts until VS Code next
                // trims its list unless fewer are newer by then (the restore says which).
                detail.push(format!(
                    "hidden: VS Code's index no longer lists it (VS Code keeps its newest {}); `chasm restore {short} --push` lists it again",
                    index::VSCODE_KEEPS_LISTED
                ));
            }
            // Deleted on one side and changed on the other: a conflict to settle first (taking
            // the changed side brings it back), so it is listed as one.
            Presence::Deleted { seq } if s.status == Status::Conflict => {
                detail.push(format!("deleted at seq {seq}, changed on the other side; see `chasm conflicts`"));
            }
            Presence::Deleted { seq } => {
                state = "deleted";
                if let Some(date) = &last_date {
                    detail.push(format!("last message {date}"));
                }
                detail.push(format!("deleted at seq {seq}; {restore_hint}"));
            }
        }
        if let Some(e) = &s.error {
            detail.push(e.clone());
        }
        let detail = if detail.is_empty() { String::new() } else { format!("  ({})", detail.join(", ")) };
        let paint = match state {
            "synced" => Paint::Green,
            "conflict" | "error" => Paint::Red,
            "deleted" => Paint::Dim,
            _ => Paint::Yellow,
        };
        let state = style::paint(colour, paint, &format!("{state:<12}"));
        writeln!(out, "{state}  {short:<width$}  {}{detail}", last_title.as_deref().unwrap_or(""))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
