//! `chasm log`: what happened, newest first, like `git log`.

use std::collections::HashMap;
use std::io::Write;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::style::{self, Paint};
use super::time::{Point, parse_point};
use crate::journal::lines::{self, Line, Piece, summary_of_payload};
use crate::journal::record::Fields;
use crate::journal::{ChangeType, EntityType, Journal, JournalError, OpenMode, Origin, SyncChange};

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
    /// Only changes at or after T (a seq, a time, a date or `3 hours ago`)
    #[arg(long, value_name = "T", value_parser = parse_point)]
    since: Option<Point>,
    /// Only changes at or before T (a seq, a time, a date or `3 hours ago`)
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

    fn of_line(l: &Line) -> Head {
        Head {
            seq: l.seq,
            timestamp_ms: l.timestamp_ms,
            origin: l.origin,
            change_type: l.change_type,
            entity_type: l.entity_type,
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
    /// Whether a filter may pass over lines, so that which lines `-n N` shows is known only
    /// as they are read.
    fn filtered(&self) -> bool {
        self.origin.is_some()
            || self.change_type.is_some()
            || self.entity.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    /// The oldest seq of `seqs` (a session's, ascending) that a log of its newest `limit`
    /// lines can show (`-n` shows the newest, `--reverse` or not): when nothing is filtered
    /// out, no run of lines ending before it is read (gc stores runs compressed, and `-n 20`
    /// of a long session needs one or two of its runs).
    fn newest_shown(&self, seqs: &[u64], limit: usize) -> u64 {
        match seqs.len().checked_sub(limit).and_then(|first| seqs.get(first)) {
            Some(&first) if !self.filtered() => first,
            _ => 0,
        }
    }

    /// The seqs `--since SEQ` and `--until SEQ` bound the journal's log to, so that it reads
    /// no others. (A time bounds none: records' times need not rise with their seqs, as an
    /// import keeps the times it was given.)
    fn seq_span(&self) -> RangeInclusive<u64> {
        let from = match self.since {
            Some(Point::Seq(s)) => s,
            _ => 1,
        };
        let to = match self.until {
            Some(Point::Seq(s)) => s,
            _ => u64::MAX,
        };
        from..=to
    }

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
    let journal = super::open_journal(journal_dir, OpenMode::Read)?;
    let limit = args.max_count.unwrap_or(usize::MAX);
    let session = args.session.as_deref().map(|p| journal.resolve_session(p)).transpose()?;
    // Records are printed as they are read, so memory stays bounded however long the journal:
    // newest first; or, with --reverse, oldest first — by reading forwards when every record
    // is wanted, and by holding only the newest N when -n N asks for them oldest first.
    if args.graph {
        return graph(&journal, session.as_deref(), &args, limit);
    }
    let oldest_first = args.reverse && args.max_count.is_none();
    // One session's human lines come from the runs of lines stored beside its snapshots where
    // they are whole, so its records need not be read (`--json` prints every field: records).
    let (seqs, runs) = match &session {
        Some(id) => seqs_and_runs(&journal, id, &args, limit)?,
        None => (Vec::new(), Vec::new()),
    };
    // A long session's log is a megabyte or more: written in 64 KB pieces, not 8 KB ones.
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut shown = 0;
    let mut human = Human::new(style::colour());
    let mut shorts = super::ShortIds::new(&journal);
    let mut line = Vec::new();
    // Records are read a chunk at a time (one query per chunk) and each is decoded only as far
    // as its line needs: `--json` prints every field, a human line a few words of the payload.
    for chunk in chunks(&journal, session.as_deref(), &seqs, &runs, oldest_first, limit, args.seq_span()) {
        for entry in chunk? {
            if shown >= limit {
                break;
            }
            line.clear();
            match entry {
                Entry::Line(l) => {
                    let head = Head::of_line(&l);
                    if !args.matches(&head) {
                        continue;
                    }
                    let id = shorts.of(session.as_deref().unwrap_or_default())?;
                    human.write(&mut line, &head, id, &l.summary);
                }
                Entry::Stored(seq, bytes) => {
                    let corrupt = |e: String| JournalError::Corrupt { seq, reason: e };
                    let fields = Fields::of(&bytes).map_err(|e| corrupt(e.to_string()))?;
                    let head = Head::of_fields(&fields);
                    if !args.matches(&head) {
                        continue;
                    }
                    if args.json {
                        let record = SyncChange::decode(&bytes).map_err(|e| corrupt(e.to_string()))?;
                        write!(line, "{}", json_line(&record))?;
                    } else {
                        let b = &fields.body;
                        let summary = summary_of_payload(b.change_type, b.entity_type, b.entity_id, b.payload);
                        human.write(&mut line, &head, shorts.of(b.session_id)?, &summary);
                    }
                }
            }
            shown += 1;
            line.push(b'\n');
            if args.reverse && !oldest_first {
                held.push(line.clone());
            } else {
                out.write_all(&line)?;
            }
        }
        if shown >= limit {
            break;
        }
    }
    for line in held.iter().rev() {
        out.write_all(line)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A session's stored runs of lines, by last seq.
type Runs = Vec<(u64, Vec<u8>)>;

/// A session's seqs by its index and, for human lines, its stored runs of lines, as far back
/// as its log needs them: all of them; but under `-n N` with nothing filtered out, the runs
/// that end at the oldest of its newest N seqs or later, and the seqs from the first line of
/// the oldest of those runs (so that each run is checked against the index as ever). A long
/// session's whole index was most of the time `log -n 20 SESSION` took.
fn seqs_and_runs(journal: &Journal, id: &str, args: &Args, limit: usize) -> Result<(Vec<u64>, Runs), JournalError> {
    let runs_from = |from| if args.json { Ok(Vec::new()) } else { journal.session_line_runs(id, from) };
    if args.max_count.is_none() || args.filtered() {
        let seqs = journal.session_seqs(id)?;
        let runs = runs_from(args.newest_shown(&seqs, limit))?;
        return Ok((seqs, runs));
    }
    if limit == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let newest = journal.newest_session_seqs(id, u64::MAX, limit)?;
    // Fewer than N: every seq is read already, and every run is wanted.
    let oldest = if newest.len() < limit { 0 } else { newest[0] };
    let runs = runs_from(oldest)?;
    let first_line = runs.first().and_then(|(_, bytes)| Some(lines::decode(bytes)?.first()?.seq));
    let seqs = match first_line {
        Some(from) if from < oldest => journal.session_seqs_from(id, from)?,
        _ => newest,
    };
    Ok((seqs, runs))
}

/// Records read per query.
const CHUNK: usize = 512;

/// A line to show: its record's stored bytes, or the line itself from a stored run.
enum Entry<'a> {
    Stored(u64, std::rc::Rc<Vec<u8>>),
    Line(Line<'a>),
}

/// The lines to show, newest first (or oldest first), a chunk at a time: one session's (its
/// `seqs` by the index) from its stored runs of lines and, where those do not cover it, from
/// its records; the whole journal's from its records by seq, within `span` (seqs that
/// `--since`/`--until` leave out are not read). Newest first, records are read in a first
/// chunk of `limit` (`-n 20` reads twenty rows: a packed row costs its decompression, and a
/// session's record may hold a whole session).
fn chunks<'a>(
    journal: &'a Journal,
    session: Option<&'a str>,
    seqs: &'a [u64],
    runs: &'a [(u64, Vec<u8>)],
    oldest_first: bool,
    limit: usize,
    span: RangeInclusive<u64>,
) -> Box<dyn Iterator<Item = Result<Vec<Entry<'a>>, JournalError>> + 'a> {
    let Some(id) = session else {
        // Within the seqs asked for: (`after`, `last`].
        let (after, last) = (span.start().saturating_sub(1), journal.last_seq().min(*span.end()));
        let read = move |(after, upto)| -> Result<Vec<Entry<'a>>, JournalError> {
            let mut rows: Vec<Entry> =
                journal.raw_between(after, upto)?.into_iter().map(|(seq, b)| Entry::Stored(seq, b)).collect();
            if !oldest_first {
                rows.reverse();
            }
            Ok(rows)
        };
        if oldest_first {
            let ranges = (after..last).step_by(CHUNK).map(move |from| (from, (from + CHUNK as u64).min(last)));
            return Box::new(ranges.map(read));
        }
        let first = (last.saturating_sub(limit.clamp(1, CHUNK) as u64).max(after), last);
        let ranges = std::iter::successors(Some(first), move |&(from, _)| {
            (from > after).then(|| (from.saturating_sub(CHUNK as u64).max(after), from))
        });
        return Box::new(ranges.take_while(|&(from, upto)| from < upto).map(read));
    };
    type Chunks<'a> = Box<dyn Iterator<Item = Result<Vec<Entry<'a>>, JournalError>> + 'a>;
    Box::new(lines::plan(seqs, runs, !oldest_first).flat_map(move |piece| -> Chunks<'a> {
        match piece {
            Piece::Run(mut lines) => {
                if !oldest_first {
                    lines.reverse();
                }
                Box::new(std::iter::once(Ok(lines.into_iter().map(Entry::Line).collect())))
            }
            // A range of records (positions in `seqs`), CHUNK at a time; newest first, from its
            // end in a first chunk of `limit` records, as the whole journal's.
            Piece::Records(range) => {
                let read = move |(from, to): (usize, usize)| -> Result<Vec<Entry<'a>>, JournalError> {
                    let mut rows: Vec<Entry> = (journal.session_raw(id, seqs[from] - 1, seqs[to - 1])?.into_iter())
                        .map(|(seq, b)| Entry::Stored(seq, b))
                        .collect();
                    if !oldest_first {
                        rows.reverse();
                    }
                    Ok(rows)
                };
                let Range { start, end } = range;
                if start >= end {
                    return Box::new(std::iter::empty());
                }
                if oldest_first {
                    return Box::new((start..end).step_by(CHUNK).map(move |at| (at, (at + CHUNK).min(end))).map(read));
                }
                let first = (end.saturating_sub(limit.clamp(1, CHUNK)).max(start), end);
                let ranges = std::iter::successors(Some(first), move |&(from, _)| {
                    (from > start).then(|| (from.saturating_sub(CHUNK).max(start), from))
                });
                Box::new(ranges.map(read))
            }
        }
    }))
}

/// `--graph`: the marks need the whole history in order, so it is read oldest first; the
/// lines shown are filtered and limited like the plain log's. What each event changed is not
/// needed for the marks: events are held without their payloads (parsed, a journal's take
/// several times its size on disk), and only the lines shown read theirs again, for words.
fn graph(journal: &Journal, session: Option<&str>, args: &Args, limit: usize) -> Result<ExitCode> {
    // A session's seqs by its index, read once for both passes.
    let seqs = session.map(|id| journal.session_seqs(id)).transpose()?;
    let session_seqs = session.zip(seqs.as_deref());
    let events = graph_events(journal, session_seqs, args, limit)?;
    let lines = super::graph::lines(&events);
    let picked: Vec<&super::graph::Line> =
        lines.iter().rev().filter(|l| args.matches(&Head::of(l.event))).take(limit).collect();
    let mut shown = Vec::with_capacity(picked.len());
    let mut shorts = super::ShortIds::new(journal);
    // Their records read a chunk at a time, over the seqs the chunk spans.
    for chunk in picked.chunks(CHUNK) {
        let span = chunk.last().map_or(0, |l| l.event.seq)..=chunk.first().map_or(0, |l| l.event.seq);
        let words = stored_in_order(journal, session_seqs, Some(span), |seq, bytes| {
            let b = Fields::of(bytes).map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })?.body;
            Ok((seq, summary_of_payload(b.change_type, b.entity_type, b.entity_id, b.payload)))
        })?;
        let words: std::collections::HashMap<u64, String> = words.into_iter().collect();
        for l in chunk {
            let what = words.get(&l.event.seq).map_or("", String::as_str);
            let short = if session.is_none() { Some(shorts.of(&l.event.session_id)?) } else { None };
            shown.push(super::graph::render(l, what, short, style::colour()));
        }
    }
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

/// The events `--graph` marks, oldest first, held without their payloads: all of them; but
/// under `-n N` with nothing filtered out, the newest N and, for each of their sessions, its
/// events back to its last checkpoint before its oldest among them. A line's mark depends only
/// on its own session's events since that checkpoint (which clears what each side changed and
/// gives the session its merge base) and up to its next one, so those lines are marked as a
/// read of the whole history marks them; `log --graph -n 20` read every record of the journal.
fn graph_events(
    journal: &Journal,
    session: Option<(&str, &[u64])>,
    args: &Args,
    limit: usize,
) -> Result<Vec<SyncChange>, JournalError> {
    if args.max_count.is_none() || args.filtered() {
        return stored_in_order(journal, session, None, decode_head);
    }
    let (id, seqs) = session.map_or((None, &[][..]), |(id, seqs)| (Some(id), seqs));
    let mut events = Vec::new();
    for chunk in chunks(journal, id, seqs, &[], false, limit, 1..=u64::MAX) {
        for entry in chunk? {
            // Without runs of lines, every entry is a record.
            if let Entry::Stored(seq, bytes) = entry {
                events.push(decode_head(seq, &bytes)?);
            }
        }
        if events.len() >= limit {
            break;
        }
    }
    events.truncate(limit);
    // Newest first: each session's last event here is its oldest line.
    let mut oldest: HashMap<&str, &SyncChange> = HashMap::new();
    for event in &events {
        oldest.insert(&event.session_id, event);
    }
    let mut before = Vec::new();
    for (session, event) in oldest {
        if event.change_type != ChangeType::Merge {
            before.extend(back_to_checkpoint(journal, session, seqs, event.seq)?);
        }
    }
    events.extend(before);
    // Newest first, unless several sessions went back (a session's alone need only turning).
    if events.is_sorted_by(|a, b| a.seq > b.seq) {
        events.reverse();
    } else {
        events.sort_unstable_by_key(|e| e.seq);
    }
    Ok(events)
}

/// A session's events before seq `before`, newest first, back to its last checkpoint among
/// them, or to its first change through chasm (before which nothing was made on both sides:
/// the graph's implicit base, as the sync's), a chunk at a time by its seqs (`known` when the
/// caller has read them all, a graph of one session; else from the index): a few first, as a
/// checkpoint is seldom more than a sync's changes away, and twice as many each time after, up
/// to [`CHUNK`]. Past the first chunk, the first change through chasm is looked up (a
/// never-synced session's history read back to its first record was most of what the graph
/// of its newest lines cost).
fn back_to_checkpoint(
    journal: &Journal,
    session: &str,
    known: &[u64],
    mut before: u64,
) -> Result<Vec<SyncChange>, JournalError> {
    let mut events = Vec::new();
    let mut step = 16;
    let mut first_local = None;
    loop {
        if step > 16 {
            let first = match first_local {
                Some(first) => first,
                None => *first_local.insert(journal.first_local_seq(session)?),
            };
            // Every change before `before` was only ever seen in VS Code.
            if first.is_none_or(|seq| seq >= before) {
                return Ok(events);
            }
        }
        let seqs = if known.is_empty() {
            journal.newest_session_seqs(session, before, step)?
        } else {
            let end = known.partition_point(|&s| s < before);
            known[end.saturating_sub(step)..end].to_vec()
        };
        let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else { return Ok(events) };
        for (seq, bytes) in journal.session_raw(session, first - 1, last)?.into_iter().rev() {
            let event = decode_head(seq, &bytes)?;
            let checkpoint = event.change_type == ChangeType::Merge;
            events.push(event);
            if checkpoint {
                return Ok(events);
            }
        }
        before = first;
        step = (step * 2).min(CHUNK);
    }
}

/// A record without its payload: what the graph's marks need.
fn decode_head(seq: u64, bytes: &[u8]) -> Result<SyncChange, JournalError> {
    SyncChange::decode_with(bytes, |_| Some(serde_json::Value::Null))
        .map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })
}

/// The `--json` form of a record (the schema is in the README): the same object as a line of
/// `chasm export`.
pub fn json_line(r: &SyncChange) -> crate::journal::export::RecordLine<'_> {
    crate::journal::export::record_line(r)
}

/// What `read` takes from each stored record of a session (given with its seqs, ascending)
/// or of the journal, oldest first, within `span` of seqs if given, read a chunk at a time.
fn stored_in_order<T>(
    journal: &Journal,
    session: Option<(&str, &[u64])>,
    span: Option<std::ops::RangeInclusive<u64>>,
    read: impl Fn(u64, &[u8]) -> Result<T, JournalError>,
) -> Result<Vec<T>, JournalError> {
    let (from, to) = span.map_or((1, journal.last_seq()), |s| (*s.start(), *s.end()));
    // Pieces of up to CHUNK records: by seq for the journal, by the session's own seqs for one.
    let pieces: Vec<(u64, u64)> = match session {
        Some((_, seqs)) => {
            let within = &seqs[seqs.partition_point(|&s| s < from)..seqs.partition_point(|&s| s <= to)];
            within.chunks(CHUNK).map(|c| (c[0] - 1, c[c.len() - 1])).collect()
        }
        None => {
            (from.saturating_sub(1)..to).step_by(CHUNK).map(|after| (after, to.min(after + CHUNK as u64))).collect()
        }
    };
    let mut out = Vec::new();
    for (after, upto) in pieces {
        let rows = match session {
            Some((id, _)) => journal.session_raw(id, after, upto)?,
            None => journal.raw_between(after, upto)?,
        };
        for (seq, bytes) in rows {
            out.push(read(seq, &bytes)?);
        }
    }
    Ok(out)
}

/// [`style::when`] for a run of lines. Records come in bursts (one sync records a session's
/// changes in the same second), and the records of a second read the same: the text is made
/// once per second shown and seconds ago, not once per line.
struct When {
    now: chrono::DateTime<chrono::Utc>,
    /// The millisecond last asked for, and the (second, seconds ago) its text was made for.
    last_ms: Option<i64>,
    key: Option<(i64, i64)>,
    text: String,
}

impl When {
    fn new(now: chrono::DateTime<chrono::Utc>) -> When {
        When { now, last_ms: None, key: None, text: String::new() }
    }

    fn of(&mut self, timestamp_ms: i64) -> &str {
        if self.last_ms == Some(timestamp_ms) {
            return &self.text;
        }
        let t = chrono::DateTime::from_timestamp_millis(timestamp_ms).unwrap_or_default();
        let key = (t.timestamp(), (self.now - t).num_seconds());
        if self.key != Some(key) {
            self.text = style::when(&t, &self.now);
            self.key = Some(key);
        }
        self.last_ms = Some(timestamp_ms);
        &self.text
    }
}

/// Writes human lines: seq, time, side, what changed, the session's first characters, and a
/// few words on the change. Tens of thousands of lines are written for a long session, so
/// what repeats (the sides, painted or not) is made once, and the rest is copied in.
struct Human {
    when: When,
    /// "local " and "remote", painted when colour is on.
    sides: [String; 2],
}

impl Human {
    fn new(colour: bool) -> Human {
        Human {
            when: When::new(chrono::Utc::now()),
            sides: [style::paint(colour, Paint::Cyan, "local "), style::paint(colour, Paint::Yellow, "remote")],
        }
    }

    /// A line; `short` is the session's id as lists show it (see [`crate::short_id`]).
    fn write(&mut self, out: &mut Vec<u8>, head: &Head, short: &str, summary: &str) {
        push_right(out, head.seq, 6);
        out.extend_from_slice(b"  ");
        out.extend_from_slice(self.when.of(head.timestamp_ms).as_bytes());
        out.extend_from_slice(b"  ");
        out.extend_from_slice(self.sides[usize::from(head.origin == Origin::Remote)].as_bytes());
        out.extend_from_slice(b"  ");
        let (change, entity) = (head.change_type.as_str(), head.entity_type.as_str());
        out.extend_from_slice(change.as_bytes());
        out.push(b'/');
        out.extend_from_slice(entity.as_bytes());
        push_spaces(out, 15usize.saturating_sub(change.len() + 1 + entity.len()) + 2);
        out.extend_from_slice(short.as_bytes());
        push_spaces(out, 8usize.saturating_sub(short.chars().count()) + 2);
        out.extend_from_slice(summary.as_bytes());
    }
}

fn push_spaces(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, b' ');
}

/// `n` in decimal, right-aligned in `width` columns (as `{:>width$}` writes it).
fn push_right(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push_spaces(out, width.saturating_sub(digits.len() - at));
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Args {
        #[derive(clap::Parser)]
        struct Log {
            #[command(flatten)]
            args: Args,
        }
        <Log as clap::Parser>::parse_from(std::iter::once("log").chain(words.iter().copied())).args
    }

    /// `-n N` reads only the runs of lines that can hold the newest N; with a filter, which
    /// may pass over any number of lines, or asking for more than there are, every run.
    #[test]
    fn a_limited_log_reads_the_runs_it_can_show_from() {
        let seqs = [3, 5, 9, 12, 20];
        assert_eq!(args(&["-n", "2"]).newest_shown(&seqs, 2), 12);
        assert_eq!(args(&["-n", "2", "--reverse"]).newest_shown(&seqs, 2), 12);
        assert_eq!(args(&["-n", "5"]).newest_shown(&seqs, 5), 3);
        assert_eq!(args(&["-n", "9"]).newest_shown(&seqs, 9), 0);
        assert_eq!(args(&["-n", "0"]).newest_shown(&seqs, 0), 0);
        assert_eq!(args(&["-n", "2", "--origin", "local"]).newest_shown(&seqs, 2), 0);
        assert_eq!(args(&["-n", "2", "--since", "4"]).newest_shown(&seqs, 2), 0);
    }

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

    /// A line lays out as the format string it replaced would lay it out.
    #[test]
    fn a_human_line_is_laid_out_in_columns() {
        let mut human = Human::new(false);
        for (seq, origin, change_type, entity_type, session) in [
            (7, Origin::Local, ChangeType::Create, EntityType::Tag, "abc"),
            (1_234_567, Origin::Remote, ChangeType::Update, EntityType::Metadata, "ééééééééé-long-id"),
            (u64::MAX, Origin::Remote, ChangeType::Merge, EntityType::Session, ""),
        ] {
            let head = Head { seq, timestamp_ms: 1_764_000_005_100, origin, change_type, entity_type };
            let mut out = Vec::new();
            human.write(&mut out, &head, crate::short_id::cut(session, 8), "said");
            let when = human.when.of(head.timestamp_ms).to_owned();
            let short: String = session.chars().take(8).collect();
            let what = format!("{change_type}/{entity_type}");
            let want = format!("{seq:>6}  {when}  {:<6}  {what:<15}  {short:<8}  said", origin.as_str());
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    /// A session's lines come from its stored runs where they cover it, in either order, and
    /// only the records after the last run are read; the whole journal's come from records.
    #[test]
    fn a_sessions_lines_come_from_its_runs_and_only_the_rest_from_records() {
        use crate::journal::{NewChange, SNAPSHOT_INTERVAL};
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(dir.path(), OpenMode::Create).unwrap();
        let change = |session: &str, i: usize| NewChange {
            session_id: session.into(),
            change_type: ChangeType::Update,
            entity_type: EntityType::Metadata,
            entity_id: "customTitle".into(),
            timestamp: chrono::Utc::now(),
            origin: Origin::Remote,
            provider: "vscode".into(),
            payload: serde_json::json!({"value": format!("title {}", i % 3)}),
        };
        let events = 2 * SNAPSHOT_INTERVAL as usize + 10;
        for i in 0..events {
            journal.append(vec![change("s", i), change("other", i)]).unwrap();
        }
        let seqs = journal.session_seqs("s").unwrap();
        let runs = journal.session_line_runs("s", 0).unwrap();
        let count = |session, oldest_first| {
            let (mut lines, mut stored) = (Vec::new(), Vec::new());
            for chunk in chunks(&journal, session, &seqs, &runs, oldest_first, usize::MAX, 1..=u64::MAX) {
                for entry in chunk.unwrap() {
                    match entry {
                        Entry::Line(l) => lines.push(l.seq),
                        Entry::Stored(seq, _) => stored.push(seq),
                    }
                }
            }
            (lines.len(), stored)
        };
        let tail = seqs[2 * SNAPSHOT_INTERVAL as usize..].to_vec();
        assert_eq!(count(Some("s"), true), (2 * SNAPSHOT_INTERVAL as usize, tail.clone()));
        let newest_first = count(Some("s"), false);
        assert_eq!(newest_first.0, 2 * SNAPSHOT_INTERVAL as usize);
        assert_eq!(newest_first.1, tail.into_iter().rev().collect::<Vec<_>>());
        assert_eq!(count(None, true), (0, (1..=2 * events as u64).collect()));
        // The whole journal newest first under `-n 20`: twenty records first, then the rest.
        let sizes: Vec<usize> =
            chunks(&journal, None, &[], &[], false, 20, 1..=u64::MAX).map(|c| c.unwrap().len()).collect();
        assert_eq!(sizes, [20, 2 * events - 20], "the rest fits in one chunk of {CHUNK}");
        let newest: Vec<u64> = (chunks(&journal, None, &[], &[], false, 20, 1..=u64::MAX).flat_map(|c| c.unwrap()))
            .map(|e| match e {
                Entry::Stored(seq, _) => seq,
                Entry::Line(l) => l.seq,
            })
            .collect();
        assert_eq!(newest, (1..=2 * events as u64).rev().collect::<Vec<_>>());
        // `--since 5 --until 9` reads those seqs and no others, in either order.
        let within = |oldest_first| -> Vec<u64> {
            (chunks(&journal, None, &[], &[], oldest_first, usize::MAX, 5..=9).flat_map(|c| c.unwrap()))
                .map(|e| if let Entry::Stored(seq, _) = e { seq } else { 0 })
                .collect()
        };
        assert_eq!(within(false), [9, 8, 7, 6, 5]);
        assert_eq!(within(true), [5, 6, 7, 8, 9]);
        let beyond = chunks(&journal, None, &[], &[], false, 20, RangeInclusive::new(9, 5));
        assert_eq!(beyond.flat_map(|c| c.unwrap()).count(), 0);
        // A session's records where no run covers them (`--json`, or `-n 3` past the newest
        // run) alike: the newest first, in a first chunk of the limit's size.
        let session = |limit| -> (Vec<usize>, Vec<u64>) {
            let chunks: Vec<Vec<u64>> = chunks(&journal, Some("s"), &seqs, &[], false, limit, 1..=u64::MAX)
                .map(|c| c.unwrap().into_iter().map(|e| if let Entry::Stored(seq, _) = e { seq } else { 0 }).collect())
                .collect();
            (chunks.iter().map(Vec::len).collect(), chunks.concat())
        };
        let all: Vec<u64> = seqs.iter().rev().copied().collect();
        assert_eq!(session(3), (vec![3, events - 3], all.clone()));
        assert_eq!(session(usize::MAX), (vec![events], all));
    }
}
