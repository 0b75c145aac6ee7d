//! `chasm log`: what happened, newest first, like `git log`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::Value;

use super::style::{self, Paint};
use super::time::{Point, parse_point};
use crate::journal::record::Fields;
use crate::journal::{ChangeType, EntityType, Journal, JournalError, OpenMode, Origin, SyncChange};
/// Stored record bytes by seq, as read in one query.
type Chunk = Vec<(u64, std::rc::Rc<Vec<u8>>)>;
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

/// What the filters look at, from a decoded record or straight from its stored fields.
struct Head {
    seq: u64,
    timestamp_ms: i64,
    origin: Origin,
    change_type: ChangeType,
    entity_type: EntityType,
}

impl Head {
    fn of(r: &SyncChange) -> Head {
        Head {
            seq: r.seq,
            timestamp_ms: r.timestamp.timestamp_millis(),
            origin: r.origin,
            change_type: r.change_type,
            entity_type: r.entity_type,
        }
    }

    fn of_fields(f: &Fields) -> Head {
        let b = &f.body;
        Head {
            seq: b.seq,
            timestamp_ms: b.timestamp_ms,
            origin: b.origin,
            change_type: b.change_type,
            entity_type: b.entity_type,
        }
    }
}

impl Args {
    fn matches(&self, r: &Head) -> bool {
        self.origin.is_none_or(|o| r.origin == o)
            && self.change_type.is_none_or(|t| r.change_type == t)
            && self.entity.is_none_or(|e| r.entity_type == e)
            && self.since.is_none_or(|p| match p {
                Point::Seq(s) => r.seq >= s,
                Point::Time(t) => r.timestamp_ms >= t.timestamp_millis(),
            })
            && self.until.is_none_or(|p| match p {
                Point::Seq(s) => r.seq <= s,
                Point::Time(t) => r.timestamp_ms <= t.timestamp_millis(),
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
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut held: Vec<String> = Vec::new();
    let mut shown = 0;
    let mut when = When::new(chrono::Utc::now());
    let colour = style::colour();
    // Records are read a chunk at a time (one query per chunk) and each is decoded only as far
    // as its line needs: `--json` prints every field, a human line a few words of the payload.
    for chunk in chunks(&journal, session.as_deref(), oldest_first) {
        for (seq, bytes) in chunk? {
            if shown >= limit {
                break;
            }
            let fields = Fields::of(&bytes).map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })?;
            if !args.matches(&Head::of_fields(&fields)) {
                continue;
            }
            shown += 1;
            let line = if args.json {
                json_line(
                    &crate::journal::SyncChange::decode(&bytes)
                        .map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })?,
                )
                .to_string()
            } else {
                human_line(&fields, colour, &mut when)
            };
            if args.reverse && !oldest_first {
                held.push(line);
            } else {
                writeln!(out, "{line}")?;
            }
        }
        if shown >= limit {
            break;
        }
    }
    for line in held.iter().rev() {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Records read per query.
const CHUNK: usize = 512;

/// The records to show, newest first (or oldest first), a chunk of stored bytes at a time:
/// one session's through its index, or the whole journal's by seq.
fn chunks<'a>(
    journal: &'a Journal,
    session: Option<&'a str>,
    oldest_first: bool,
) -> Box<dyn Iterator<Item = Result<Chunk, JournalError>> + 'a> {
    let seqs: Vec<u64> = match session {
        Some(id) => match journal.session_seqs(id) {
            Ok(seqs) => seqs,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        },
        None => Vec::new(),
    };
    let last = journal.last_seq();
    let ranges: Vec<(u64, u64)> = match session {
        Some(_) => seqs.chunks(CHUNK).map(|c| (c[0] - 1, c[c.len() - 1])).collect(),
        None => {
            (0..last.div_ceil(CHUNK as u64)).map(|i| (i * CHUNK as u64, ((i + 1) * CHUNK as u64).min(last))).collect()
        }
    };
    let read = move |(after, upto): (u64, u64)| -> Result<Chunk, JournalError> {
        let mut rows = match session {
            Some(id) => journal.session_raw(id, after, upto)?,
            None => journal.raw_between(after, upto)?,
        };
        if !oldest_first {
            rows.reverse();
        }
        Ok(rows)
    };
    if oldest_first { Box::new(ranges.into_iter().map(read)) } else { Box::new(ranges.into_iter().rev().map(read)) }
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
        .filter(|l| args.matches(&Head::of(l.event)))
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

/// The `--json` form of a record (the schema is in the README): the same object as a line of
/// `chasm export`.
pub fn json_line(r: &SyncChange) -> Value {
    crate::journal::export::record_line(r)
}

/// [`style::when`] for a run of lines. Records come in bursts (one sync records a session's
/// changes in the same second), and the records of a second read the same: the text is made
/// once per second shown and seconds ago, not once per line.
struct When {
    now: chrono::DateTime<chrono::Utc>,
    key: Option<(i64, i64)>,
    text: String,
}

impl When {
    fn new(now: chrono::DateTime<chrono::Utc>) -> When {
        When { now, key: None, text: String::new() }
    }

    fn of(&mut self, timestamp_ms: i64) -> &str {
        let t = chrono::DateTime::from_timestamp_millis(timestamp_ms).unwrap_or_default();
        let key = (t.timestamp(), (self.now - t).num_seconds());
        if self.key != Some(key) {
            self.text = style::when(&t, &self.now);
            self.key = Some(key);
        }
        &self.text
    }
}

fn human_line(f: &Fields, colour: bool, when: &mut When) -> String {
    let b = &f.body;
    let when = when.of(b.timestamp_ms);
    let short: String = b.session_id.chars().take(8).collect();
    let what = format!("{}/{}", b.change_type, b.entity_type);
    let origin = format!("{:<6}", b.origin.as_str());
    let origin = style::paint(colour, if b.origin == Origin::Local { Paint::Cyan } else { Paint::Yellow }, &origin);
    let summary = match Peek::of(b.payload) {
        Some(peek) => summarize(b.change_type, b.entity_type, b.entity_id, &peek),
        None => {
            let payload: Value = serde_json::from_slice(b.payload).unwrap_or(Value::Null);
            summarize(b.change_type, b.entity_type, b.entity_id, &Peek::from_value(&payload))
        }
    };
    format!("{:>6}  {when}  {origin}  {what:<15}  {short:<8}  {summary}", b.seq)
}

/// The few parts of a payload a log line shows, read without building the rest: a streamed
/// request is kilobytes of JSON of which a line needs its first words and how many parts its
/// response has.
#[derive(Default, serde::Deserialize)]
struct Peek {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    request: Option<PeekRequest>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default, rename = "customTitle")]
    custom_title: Option<String>,
}

#[derive(Default, serde::Deserialize)]
struct PeekRequest {
    #[serde(default)]
    message: Option<PeekMessage>,
    #[serde(default)]
    response: Option<Count>,
}

#[derive(Default, serde::Deserialize)]
struct PeekMessage {
    #[serde(default)]
    text: Option<String>,
}

/// The length of a JSON array, its elements skipped unread.
#[derive(Default)]
struct Count(usize);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(Counter)
    }
}

impl Peek {
    /// Reads the parts from payload JSON; `None` when its shape is not the usual one.
    fn of(payload: &[u8]) -> Option<Peek> {
        serde_json::from_slice(payload).ok()
    }

    /// The same parts from a parsed payload, whatever its shape.
    fn from_value(p: &Value) -> Peek {
        let request = p.get("request").map(|q| PeekRequest {
            message: Some(PeekMessage {
                text: q.get("message").and_then(|m| m.get("text")).and_then(Value::as_str).map(str::to_owned),
            }),
            response: q.get("response").and_then(Value::as_array).map(|a| Count(a.len())),
        });
        Peek {
            index: p.get("index").and_then(Value::as_u64),
            request,
            value: p.get("value").cloned(),
            custom_title: p.get("customTitle").and_then(Value::as_str).map(str::to_owned),
        }
    }
}

/// A few words on what the change did.
fn summary(r: &SyncChange) -> String {
    summarize(r.change_type, r.entity_type, &r.entity_id, &Peek::from_value(&r.payload))
}

fn summarize(change_type: ChangeType, entity_type: EntityType, entity_id: &str, p: &Peek) -> String {
    let request_words = || {
        let text = p.request.as_ref().and_then(|q| q.message.as_ref()).and_then(|m| m.text.as_deref()).unwrap_or("");
        let index = p.index.map(|i| format!("#{} ", i + 1)).unwrap_or_default();
        if text.trim().is_empty() {
            format!("{index}{entity_id}")
        } else {
            format!("{index}\"{}\"", first_words(text, 60))
        }
    };
    match (entity_type, change_type) {
        (_, ChangeType::Merge) => "checkpoint".into(),
        (EntityType::Session, ChangeType::Create) => {
            let title = p.custom_title.as_deref().map(|t| format!(" \"{}\"", first_words(t, 60)));
            format!("new session{}", title.unwrap_or_default())
        }
        (EntityType::Session, ChangeType::Update) => "replaced the whole session".into(),
        (EntityType::Session, ChangeType::Delete) => "deleted the session".into(),
        (EntityType::Message, ChangeType::Create) => format!("added {}", request_words()),
        (EntityType::Message, ChangeType::Update) => {
            let parts = p.request.as_ref().and_then(|q| q.response.as_ref()).map_or(0, |c| c.0);
            format!("changed {} ({parts} response part{})", request_words(), if parts == 1 { "" } else { "s" })
        }
        (EntityType::Message, ChangeType::Delete) => format!("removed request {entity_id}"),
        (EntityType::Metadata, ChangeType::Delete) => format!("removed field {entity_id}"),
        (EntityType::Metadata, _) => {
            let value = p.value.as_ref().map(|v| match v {
                Value::String(s) => format!("\"{}\"", first_words(s, 50)),
                other => first_words(&other.to_string(), 50),
            });
            format!("{entity_id} = {}", value.unwrap_or_default())
        }
        (EntityType::Tag, ChangeType::Delete) => format!("untagged \"{entity_id}\""),
        (EntityType::Tag, _) => format!("tagged \"{entity_id}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Made once per second, the time reads as it would made for each line: the same local
    /// time, and the same "ago" even where a second's records straddle one.
    #[test]
    fn the_time_of_a_line_is_the_one_style_gives_it() {
        let now = chrono::DateTime::from_timestamp_millis(1_764_000_010_400).unwrap();
        let mut when = When::new(now);
        let times = [1_764_000_005_100i64, 1_764_000_005_300, 1_764_000_005_600, 1_764_000_005_900, 1_764_000_009_000];
        for ms in times.into_iter().chain(times.into_iter().rev()).chain([1_764_000_100_000, 1_700_000_000_000]) {
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
            assert_eq!(when.of(ms), style::when(&t, &now), "{ms}");
        }
    }

    /// The summary from a partial parse is the one from the whole payload, whatever its shape.
    #[test]
    fn a_line_read_from_part_of_the_payload_says_what_the_whole_payload_says() {
        let cases = [
            (
                ChangeType::Update,
                EntityType::Message,
                json!({"index": 2, "request": {"message": {"text": "why so slow"}, "response": [1, {"a": [2]}], "x": "y"}}),
                "changed #3 \"why so slow\" (2 response parts)",
            ),
            (ChangeType::Update, EntityType::Metadata, json!({"value": "Title", "position": 0}), "r = \"Title\""),
            (ChangeType::Create, EntityType::Session, json!({"requests": [], "customTitle": "T"}), "new session \"T\""),
            // Shapes the partial parse refuses: the whole payload decides.
            (ChangeType::Create, EntityType::Message, json!({"index": -1, "request": {"message": "odd"}}), "added r"),
            (ChangeType::Delete, EntityType::Message, Value::Null, "removed request r"),
        ];
        for (change_type, entity_type, payload, want) in cases {
            let bytes = serde_json::to_vec(&payload).unwrap();
            let peek = Peek::of(&bytes).unwrap_or_else(|| Peek::from_value(&payload));
            let partial = summarize(change_type, entity_type, "r", &peek);
            let whole = summarize(change_type, entity_type, "r", &Peek::from_value(&payload));
            assert_eq!((partial.as_str(), whole.as_str()), (want, want));
        }
    }
}
