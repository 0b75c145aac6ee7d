//! `chasm log`: what happened, newest first, like `git log`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::Value;

use super::style::{self, Paint};
use super::time::{Point, parse_point};
use crate::journal::{ChangeType, EntityType, OpenMode, Origin, SyncChange};
use crate::session::first_words;

/// Show the history of one session, or of every session, newest first
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session id or a unique prefix of one; all sessions when left out
    session: Option<String>,
    /// Only changes made on this side
    #[arg(long, value_parser = parse_origin)]
    origin: Option<Origin>,
    /// Only changes of this type (create, update, delete, merge)
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_change_type)]
    change_type: Option<ChangeType>,
    /// Only changes to this kind of entity (session, message, metadata, tag)
    #[arg(long, value_parser = parse_entity)]
    entity: Option<EntityType>,
    /// Only changes at or after T (a seq, an RFC 3339 time or a date)
    #[arg(long, value_name = "T", value_parser = parse_point)]
    since: Option<Point>,
    /// Only changes at or before T (a seq, an RFC 3339 time or a date)
    #[arg(long, value_name = "T", value_parser = parse_point)]
    until: Option<Point>,
    /// Show at most N changes (the newest N, even with --reverse)
    #[arg(short = 'n', long = "max-count", value_name = "N")]
    max_count: Option<usize>,
    /// Oldest first
    #[arg(long)]
    reverse: bool,
    /// One JSON object per line
    #[arg(long, conflicts_with = "graph")]
    json: bool,
    /// Draw the history as two lanes, local (through chasm) and remote (seen in VS Code),
    /// meeting at each sync checkpoint, with changes made on both sides marked
    #[arg(long)]
    graph: bool,
}

fn parse_origin(s: &str) -> Result<Origin, String> {
    s.parse()
}
fn parse_change_type(s: &str) -> Result<ChangeType, String> {
    s.parse()
}
fn parse_entity(s: &str) -> Result<EntityType, String> {
    s.parse()
}

impl Args {
    fn matches(&self, r: &SyncChange) -> bool {
        self.origin.is_none_or(|o| r.origin == o)
            && self.change_type.is_none_or(|t| r.change_type == t)
            && self.entity.is_none_or(|e| r.entity_type == e)
            && self.since.is_none_or(|p| match p {
                Point::Seq(s) => r.seq >= s,
                Point::Time(t) => r.timestamp >= t,
            })
            && self.until.is_none_or(|p| match p {
                Point::Seq(s) => r.seq <= s,
                Point::Time(t) => r.timestamp <= t,
            })
    }
}

pub fn run(journal_dir: &Path, args: Args) -> Result<ExitCode> {
    let journal = super::open_journal(journal_dir, OpenMode::Existing)?;
    let limit = args.max_count.unwrap_or(usize::MAX);
    let session = args.session.as_deref().map(|p| journal.resolve_session(p)).transpose()?;
    // Records are printed as they are read, so memory stays bounded however long the journal:
    // newest first; or, with --reverse, oldest first — by reading forwards when every record
    // is wanted, and by holding only the newest N when -n N asks for them oldest first.
    if args.graph {
        return graph(&journal, session.as_deref(), &args, limit);
    }
    let oldest_first = args.reverse && args.max_count.is_none();
    let seqs: Box<dyn Iterator<Item = u64>> = match &session {
        Some(id) => {
            let seqs = journal.session_seqs(id)?;
            if oldest_first { Box::new(seqs.into_iter()) } else { Box::new(seqs.into_iter().rev()) }
        }
        None if oldest_first => Box::new(1..=journal.last_seq()),
        None => Box::new((1..=journal.last_seq()).rev()),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut held: Vec<SyncChange> = Vec::new();
    let mut shown = 0;
    for seq in seqs {
        if shown >= limit {
            break;
        }
        let Some(r) = journal.get(seq)? else { continue };
        if !args.matches(&r) {
            continue;
        }
        shown += 1;
        if args.reverse && !oldest_first {
            held.push(r);
        } else {
            write_record(&mut out, &r, args.json)?;
        }
    }
    for r in held.iter().rev() {
        write_record(&mut out, r, args.json)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `--graph`: the marks need the whole history in order, so it is read oldest first; the
/// lines shown are filtered and limited like the plain log's.
fn graph(journal: &crate::journal::Journal, session: Option<&str>, args: &Args, limit: usize) -> Result<ExitCode> {
    let events: Vec<SyncChange> = match session {
        Some(id) => journal.session_events(id)?,
        None => (1..=journal.last_seq()).filter_map(|seq| journal.get(seq).transpose()).collect::<Result<_, _>>()?,
    };
    let lines = super::graph::lines(&events);
    let mut shown: Vec<String> = lines
        .iter()
        .rev()
        .filter(|l| args.matches(l.event))
        .take(limit)
        .map(|l| super::graph::render(l, &summary(l.event), session.is_none(), style::colour()))
        .collect();
    if args.reverse {
        shown.reverse();
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{:>6}  L R  {:<19}  (L: changed through chasm; R: seen in VS Code)", "seq", "time")?;
    for line in shown {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn write_record(out: &mut impl Write, r: &SyncChange, json: bool) -> std::io::Result<()> {
    if json {
        writeln!(out, "{}", json_line(r))
    } else {
        writeln!(out, "{}", human_line(r, style::colour(), &chrono::Utc::now()))
    }
}

/// The `--json` form of a record (the schema is in the README): the same object as a line of
/// `chasm export`.
pub fn json_line(r: &SyncChange) -> Value {
    crate::journal::export::record_line(r)
}

fn human_line(r: &SyncChange, colour: bool, now: &chrono::DateTime<chrono::Utc>) -> String {
    let when = style::when(&r.timestamp, now);
    let short: String = r.session_id.chars().take(8).collect();
    let what = format!("{}/{}", r.change_type, r.entity_type);
    let origin = format!("{:<6}", r.origin.as_str());
    let origin = style::paint(colour, if r.origin == Origin::Local { Paint::Cyan } else { Paint::Yellow }, &origin);
    format!("{:>6}  {when}  {origin}  {what:<15}  {short:<8}  {}", r.seq, summary(r))
}

/// A few words on what the change did.
fn summary(r: &SyncChange) -> String {
    let p = &r.payload;
    let request_words = || {
        let text = p
            .get("request")
            .and_then(|q| q.get("message"))
            .and_then(|m| m.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let index = p.get("index").and_then(Value::as_u64).map(|i| format!("#{} ", i + 1)).unwrap_or_default();
        if text.trim().is_empty() {
            format!("{index}{}", r.entity_id)
        } else {
            format!("{index}\"{}\"", first_words(text, 60))
        }
    };
    match (r.entity_type, r.change_type) {
        (_, ChangeType::Merge) => "checkpoint".into(),
        (EntityType::Session, ChangeType::Create) => {
            let title = p.get("customTitle").and_then(Value::as_str).map(|t| format!(" \"{}\"", first_words(t, 60)));
            format!("new session{}", title.unwrap_or_default())
        }
        (EntityType::Session, ChangeType::Update) => "replaced the whole session".into(),
        (EntityType::Session, ChangeType::Delete) => "deleted the session".into(),
        (EntityType::Message, ChangeType::Create) => format!("added {}", request_words()),
        (EntityType::Message, ChangeType::Update) => {
            let parts =
                p.get("request").and_then(|q| q.get("response")).and_then(Value::as_array).map(Vec::len).unwrap_or(0);
            format!("changed {} ({parts} response part{})", request_words(), if parts == 1 { "" } else { "s" })
        }
        (EntityType::Message, ChangeType::Delete) => format!("removed request {}", r.entity_id),
        (EntityType::Metadata, ChangeType::Delete) => format!("removed field {}", r.entity_id),
        (EntityType::Metadata, _) => {
            let value = p.get("value").map(|v| match v {
                Value::String(s) => format!("\"{}\"", first_words(s, 50)),
                other => first_words(&other.to_string(), 50),
            });
            format!("{} = {}", r.entity_id, value.unwrap_or_default())
        }
        (EntityType::Tag, ChangeType::Delete) => format!("untagged \"{}\"", r.entity_id),
        (EntityType::Tag, _) => format!("tagged \"{}\"", r.entity_id),
    }
}
