//! Log lines kept beside snapshots: what `chasm log SESSION` says of each record, stored a
//! snapshot interval at a time, clustered by session.
//!
//! A session's records lie in the log by seq, each in a page among every other session's, and
//! each line needs its record rebuilt from its delta and a few words of its payload read: for
//! a long session, reading them is most of what `log SESSION` costs. The lines of the
//! records since a session's previous snapshot are written when a snapshot is due — those
//! records are in hand then — so a session's history reads as a few rows in one place, and an
//! append pays for one more row per [`SNAPSHOT_INTERVAL`] records of a session, not for a page
//! per session it touches. A run of lines repeats few texts (a streamed request's events say
//! the same words), so each is stored once per run: about ten bytes a line.
//!
//! A run of long, all different summaries (metadata values) is stored in parts, each small
//! enough to share a page with others (see [`MAX_RUN_BYTES`]).
//!
//! Derived data, as snapshots are: each run carries a checksum of its bytes, and a reader uses
//! it only where its seqs are exactly the session's seqs over that range by the index;
//! anything else is read from the records. `verify` compares every run with its records and
//! rewrites what differs.

use std::collections::HashMap;
use std::ops::Range;

use bincode::{BorrowDecode, Encode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::record::{ChangeType, EntityType, Fields, Origin, SyncChange};
use crate::session::push_first_words;

#[cfg(doc)]
use super::SNAPSHOT_INTERVAL;

/// What a log line shows of a record, but for its session and its time relative to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub seq: u64,
    pub timestamp_ms: i64,
    pub origin: Origin,
    pub change_type: ChangeType,
    pub entity_type: EntityType,
    /// A few words on what the change did.
    pub summary: std::borrow::Cow<'a, str>,
}

impl Line<'_> {
    /// A record's line, from its stored fields (the payload read only as far as needed).
    pub(crate) fn of_fields(f: &Fields) -> Line<'static> {
        let b = &f.body;
        Line {
            seq: b.seq,
            timestamp_ms: b.timestamp_ms,
            origin: b.origin,
            change_type: b.change_type,
            entity_type: b.entity_type,
            summary: summary_of_payload(b.change_type, b.entity_type, b.entity_id, b.payload).into(),
        }
    }

    /// A record's line, from the decoded record.
    pub fn of(r: &SyncChange) -> Line<'static> {
        Line {
            seq: r.seq,
            timestamp_ms: r.timestamp.timestamp_millis(),
            origin: r.origin,
            change_type: r.change_type,
            entity_type: r.entity_type,
            summary: summary(r).into(),
        }
    }
}

/// A run of lines as stored (after a 32-byte SHA-256 of these bytes): each distinct summary
/// once, and each line as steps from the one before.
#[derive(Encode, BorrowDecode)]
struct Stored<'a> {
    summaries: Vec<&'a str>,
    lines: Vec<Packed>,
}

#[derive(Encode, BorrowDecode)]
struct Packed {
    /// Seq after the previous line's (the first: after 0).
    seq_step: u64,
    /// Milliseconds after the previous line's time (the first: since the epoch).
    ms_step: i64,
    origin: Origin,
    change_type: ChangeType,
    entity_type: EntityType,
    summary: u32,
}

/// Variable-length integers: most steps and indexes take a byte. The limit keeps a run whose
/// bytes claim a vast length from allocating it (a run is a few kilobytes).
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 1 << 20 }>()
}

/// A run's stored bytes. `lines` must be in seq order.
pub fn encode(lines: &[Line]) -> Vec<u8> {
    checksummed(&encode_body(lines, &summary_ids(lines)))
}

/// Each line's summary numbered by its first appearance in `lines`: a run is cut into parts
/// by size, and its summaries are told apart once rather than hashed again for each part.
fn summary_ids(lines: &[Line]) -> Vec<u32> {
    let mut index: HashMap<&str, u32> = HashMap::with_capacity(lines.len());
    let mut ids: Vec<u32> = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        // A streamed request's lines repeat the one before.
        let id = match i.checked_sub(1) {
            Some(before) if lines[before].summary == line.summary => ids[before],
            _ => {
                let next = index.len() as u32;
                *index.entry(&line.summary).or_insert(next)
            }
        };
        ids.push(id);
    }
    ids
}

/// A run's bytes after its checksum, given [`summary_ids`] for its lines: each distinct
/// summary once, in the order of first appearance.
fn encode_body(lines: &[Line], ids: &[u32]) -> Vec<u8> {
    let mut local = vec![u32::MAX; ids.iter().max().map_or(0, |&m| m as usize + 1)];
    let mut summaries = Vec::new();
    let mut packed = Vec::with_capacity(lines.len());
    let (mut seq, mut ms) = (0u64, 0i64);
    for (line, &id) in lines.iter().zip(ids) {
        let slot = &mut local[id as usize];
        if *slot == u32::MAX {
            *slot = summaries.len() as u32;
            summaries.push(&*line.summary);
        }
        packed.push(Packed {
            seq_step: line.seq.wrapping_sub(seq),
            ms_step: line.timestamp_ms.wrapping_sub(ms),
            origin: line.origin,
            change_type: line.change_type,
            entity_type: line.entity_type,
            summary: *slot,
        });
        (seq, ms) = (line.seq, line.timestamp_ms);
    }
    bincode::encode_to_vec(Stored { summaries, lines: packed }, config()).expect("encoding to a Vec")
}

/// The bytes of the distinct summaries of `lines`: less than their run's body, so a part
/// they already make too long is split without being encoded.
fn summary_bytes(lines: &[Line], ids: &[u32]) -> usize {
    let mut seen = vec![false; ids.iter().max().map_or(0, |&m| m as usize + 1)];
    lines
        .iter()
        .zip(ids)
        .filter(|(_, id)| !std::mem::replace(&mut seen[**id as usize], true))
        .map(|(l, _)| l.summary.len())
        .sum()
}

/// A run's body after its SHA-256.
fn checksummed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + body.len());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

/// How many bytes a stored run may take: a row of `lines` larger than about a quarter of a
/// page spills into an overflow page of its own, most of which would stay empty.
pub const MAX_RUN_BYTES: usize = 1900;

/// The stored runs of `lines` (in seq order) as (last seq, bytes): one, or as many halves
/// as keep each within [`MAX_RUN_BYTES`].
pub fn encode_runs(lines: &[Line]) -> Vec<(u64, Vec<u8>)> {
    let mut runs = Vec::new();
    halves(lines, &summary_ids(lines), &mut runs);
    runs
}

/// [`encode_runs`] into `runs`, `ids` the lines' [`summary_ids`]: a part is encoded only when
/// its summaries leave room, and its checksum taken only once it is kept.
fn halves(lines: &[Line], ids: &[u32], runs: &mut Vec<(u64, Vec<u8>)>) {
    let Some(last) = lines.last() else { return };
    if lines.len() == 1 || 32 + summary_bytes(lines, ids) <= MAX_RUN_BYTES {
        let body = encode_body(lines, ids);
        if lines.len() == 1 || 32 + body.len() <= MAX_RUN_BYTES {
            runs.push((last.seq, checksummed(&body)));
            return;
        }
    }
    let half = lines.len() / 2;
    halves(&lines[..half], &ids[..half], runs);
    halves(&lines[half..], &ids[half..], runs);
}

/// The lines of a stored run, if its checksum holds and it reads as one: seqs rising, every
/// summary it names there.
pub fn decode(bytes: &[u8]) -> Option<Vec<Line<'_>>> {
    let (checksum, body) = (bytes.get(..32)?, bytes.get(32..)?);
    if Sha256::digest(body).as_slice() != checksum {
        return None;
    }
    let (stored, used): (Stored, usize) = bincode::borrow_decode_from_slice(body, config()).ok()?;
    if used != body.len() {
        return None;
    }
    let (mut seq, mut ms) = (0u64, 0i64);
    stored
        .lines
        .iter()
        .map(|p| {
            seq = seq.checked_add(p.seq_step).filter(|_| p.seq_step > 0)?;
            ms = ms.wrapping_add(p.ms_step);
            Some(Line {
                seq,
                timestamp_ms: ms,
                origin: p.origin,
                change_type: p.change_type,
                entity_type: p.entity_type,
                summary: (*stored.summaries.get(p.summary as usize)?).into(),
            })
        })
        .collect()
}

/// Where a session's lines come from, in the order they are read: a stored run, or the
/// records at a range of positions in the session's seqs.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Run(Vec<Line<'a>>),
    Records(Range<usize>),
}

/// Plans reading a session's log from its seqs (ascending, by the index) and its stored runs
/// (by key, ascending), oldest first or newest first: each run whose lines are exactly the
/// seqs it covers is used; every other seq is read from its record. Lazy: a run is decoded
/// when its turn comes, so the newest lines of a long session cost its newest run.
pub fn plan<'a>(seqs: &'a [u64], runs: &'a [(u64, Vec<u8>)], newest_first: bool) -> Plan<'a> {
    Plan { seqs, runs: runs.iter(), newest_first, lo: 0, hi: seqs.len(), then: None }
}

/// See [`plan`].
pub struct Plan<'a> {
    seqs: &'a [u64],
    runs: std::slice::Iter<'a, (u64, Vec<u8>)>,
    newest_first: bool,
    /// Positions in `seqs` not yet planned.
    lo: usize,
    hi: usize,
    /// A run found after a range of records before it (in reading order).
    then: Option<Piece<'a>>,
}

impl<'a> Plan<'a> {
    /// A run's lines and their first position in `seqs`, if they are exactly the seqs there,
    /// within what is not yet planned.
    fn fit(&self, bytes: &'a [u8]) -> Option<(usize, Vec<Line<'a>>)> {
        let lines = decode(bytes)?;
        let start = self.seqs.binary_search(&lines.first()?.seq).ok()?;
        let end = start + lines.len();
        let fits = start >= self.lo
            && end <= self.hi
            && self.seqs[start..end].iter().zip(&lines).all(|(seq, line)| *seq == line.seq);
        fits.then_some((start, lines))
    }
}

impl<'a> Iterator for Plan<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        if let Some(piece) = self.then.take() {
            return Some(piece);
        }
        loop {
            let run = if self.newest_first { self.runs.next_back() } else { self.runs.next() };
            let Some((_, bytes)) = run else {
                let rest = self.lo..self.hi;
                self.lo = self.hi;
                return (!rest.is_empty()).then_some(Piece::Records(rest));
            };
            let Some((start, lines)) = self.fit(bytes) else { continue };
            let end = start + lines.len();
            let gap = if self.newest_first {
                let gap = end..self.hi;
                self.hi = start;
                gap
            } else {
                let gap = self.lo..start;
                self.lo = end;
                gap
            };
            if gap.is_empty() {
                return Some(Piece::Run(lines));
            }
            self.then = Some(Piece::Run(lines));
            return Some(Piece::Records(gap));
        }
    }
}

/// A few words on what a change did.
pub fn summary(r: &SyncChange) -> String {
    summarize(r.change_type, r.entity_type, &r.entity_id, &Gist::of_value(&r.payload))
}

/// [`summary`] from a stored payload: read only as far as the words need when it has the
/// usual shape, parsed whole otherwise.
pub fn summary_of_payload(change_type: ChangeType, entity_type: EntityType, entity_id: &str, payload: &[u8]) -> String {
    match serde_json::from_slice::<Object<Peek>>(payload) {
        Ok(Object(peek)) => summarize(change_type, entity_type, entity_id, &peek.gist()),
        Err(_) => {
            let value: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
            summarize(change_type, entity_type, entity_id, &Gist::of_value(&value))
        }
    }
}

/// The few parts of a payload a summary shows.
#[derive(Default)]
struct Gist<'a> {
    index: Option<u64>,
    /// The request's message text, when the payload has a request.
    request: Option<Option<&'a str>>,
    /// How many parts the request's response has.
    parts: Option<usize>,
    value: Option<&'a Value>,
    custom_title: Option<&'a str>,
}

impl Gist<'_> {
    fn of_value(p: &Value) -> Gist<'_> {
        let request = field(p, "request");
        Gist {
            index: field(p, "index").and_then(Value::as_u64),
            request: request.map(|q| field(q, "message").and_then(|m| field(m, "text")).and_then(Value::as_str)),
            parts: request.and_then(|q| field(q, "response")).and_then(Value::as_array).map(Vec::len),
            value: field(p, "value"),
            custom_title: field(p, "customTitle").and_then(Value::as_str),
        }
    }
}

/// A field of a JSON object, found by comparing keys (`Value::get` without the hashing): a
/// payload holds a few keys, and a line is made for every record appended.
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?.iter().find_map(|(k, v)| (k == key).then_some(v))
}

/// The same parts read from payload JSON without building the rest: a streamed request is
/// kilobytes of JSON of which a line needs its first words and how many parts its response
/// has. Fails when the payload's shape is not the usual one (and the whole payload decides).
#[derive(Default, serde::Deserialize)]
struct Peek {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    request: Option<Object<PeekRequest>>,
    /// Present, even as `null`, or absent.
    #[serde(default, deserialize_with = "present")]
    value: Option<Value>,
    #[serde(default, rename = "customTitle")]
    custom_title: Option<String>,
}

#[derive(Default, serde::Deserialize)]
struct PeekRequest {
    #[serde(default)]
    message: Option<Object<PeekMessage>>,
    #[serde(default)]
    response: Option<Count>,
}

#[derive(Default, serde::Deserialize)]
struct PeekMessage {
    #[serde(default)]
    text: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// A struct read from a JSON object only: serde's derived structs also read arrays (as their
/// fields in order), where a lookup by key finds nothing.
struct Object<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Object<T>, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(Fields(std::marker::PhantomData))
    }
}

impl Peek {
    fn gist(&self) -> Gist<'_> {
        Gist {
            index: self.index,
            request: self.request.as_ref().map(|q| q.0.message.as_ref().and_then(|m| m.0.text.as_deref())),
            parts: self.request.as_ref().and_then(|q| q.0.response.as_ref()).map(|c| c.0),
            value: self.value.as_ref(),
            custom_title: self.custom_title.as_deref(),
        }
    }
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

fn summarize(change_type: ChangeType, entity_type: EntityType, entity_id: &str, p: &Gist) -> String {
    use std::fmt::Write;
    // One string written in place: a line is made for every record appended.
    let mut s = String::with_capacity(96);
    let quoted = |s: &mut String, text: &str, max: usize| {
        s.push('"');
        push_first_words(s, text, max);
        s.push('"');
    };
    let request_words = |s: &mut String| {
        let text = p.request.flatten().unwrap_or("");
        if let Some(i) = p.index {
            let _ = write!(s, "#{} ", i + 1);
        }
        if text.trim().is_empty() { s.push_str(entity_id) } else { quoted(s, text, 60) }
    };
    match (entity_type, change_type) {
        (_, ChangeType::Merge) => s.push_str("checkpoint"),
        (EntityType::Session, ChangeType::Create) => {
            s.push_str("new session");
            if let Some(title) = p.custom_title {
                s.push(' ');
                quoted(&mut s, title, 60);
            }
        }
        (EntityType::Session, ChangeType::Update) => s.push_str("replaced the whole session"),
        (EntityType::Session, ChangeType::Delete) => s.push_str("deleted the session"),
        (EntityType::Message, ChangeType::Create) => {
            s.push_str("added ");
            request_words(&mut s);
        }
        (EntityType::Message, ChangeType::Update) => {
            let parts = p.parts.unwrap_or(0);
            s.push_str("changed ");
            request_words(&mut s);
            let _ = write!(s, " ({parts} response part{})", if parts == 1 { "" } else { "s" });
        }
        (EntityType::Message, ChangeType::Delete) => {
            s.push_str("removed request ");
            s.push_str(entity_id);
        }
        (EntityType::Metadata, ChangeType::Delete) => {
            s.push_str("removed field ");
            s.push_str(entity_id);
        }
        (EntityType::Metadata, _) => {
            s.push_str(entity_id);
            s.push_str(" = ");
            match p.value {
                Some(Value::String(v)) => quoted(&mut s, v, 50),
                Some(other) => push_first_words(&mut s, &other.to_string(), 50),
                None => {}
            }
        }
        (EntityType::Tag, ChangeType::Delete) => {
            let _ = write!(s, "untagged \"{entity_id}\"");
        }
        (EntityType::Tag, _) => {
            let _ = write!(s, "tagged \"{entity_id}\"");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

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
            let partial = summary_of_payload(change_type, entity_type, "r", &bytes);
            let whole = summarize(change_type, entity_type, "r", &Gist::of_value(&payload));
            assert_eq!((partial.as_str(), whole.as_str()), (want, want));
        }
    }

    fn line(seq: u64, ms: i64, summary: &str) -> Line<'static> {
        Line {
            seq,
            timestamp_ms: ms,
            origin: Origin::Remote,
            change_type: ChangeType::Update,
            entity_type: EntityType::Message,
            summary: summary.to_owned().into(),
        }
    }

    #[test]
    fn a_damaged_run_is_refused() {
        let bytes = encode(&[line(3, 10, "a"), line(9, 5, "b"), line(12, 5, "a")]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert_eq!(decode(&bad), None, "byte {i}");
        }
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(&[]), None);
    }

    /// A run is used only where it matches the index exactly; the rest comes from records,
    /// in either order.
    #[test]
    fn a_plan_uses_the_runs_that_fit_and_records_for_the_rest() {
        let seqs = [2, 5, 7, 9, 11, 14, 20];
        let run = |s: &[u64]| encode(&s.iter().map(|&q| line(q, 0, "x")).collect::<Vec<_>>());
        let lines = |s: &[u64]| s.iter().map(|&q| line(q, 0, "x")).collect::<Vec<_>>();
        let runs = vec![
            (5, run(&[2, 5])),
            (9, run(&[7, 8, 9])), // names a seq the index does not have
            (14, run(&[11, 14])), // leaves 7 and 9 to the records
            (14, vec![1, 2, 3]),  // damaged
            (20, run(&[20, 21])), // runs past the index
        ];
        let oldest: Vec<Piece> = plan(&seqs, &runs, false).collect();
        assert_eq!(
            oldest,
            [Piece::Run(lines(&[2, 5])), Piece::Records(2..4), Piece::Run(lines(&[11, 14])), Piece::Records(6..7)]
        );
        let mut newest: Vec<Piece> = plan(&seqs, &runs, true).collect();
        newest.reverse();
        assert_eq!(newest, oldest);
        assert_eq!(plan(&seqs, &[], true).collect::<Vec<_>>(), [Piece::Records(0..7)]);
        assert_eq!(plan(&[], &runs, false).count(), 0);
        // Overlapping runs: the first met in reading order is used, and never both.
        let overlapping = vec![(9, run(&[5, 7, 9])), (11, run(&[9, 11]))];
        assert_eq!(
            plan(&seqs, &overlapping, false).collect::<Vec<_>>(),
            [Piece::Records(0..1), Piece::Run(lines(&[5, 7, 9])), Piece::Records(4..7)]
        );
        assert_eq!(
            plan(&seqs, &overlapping, true).collect::<Vec<_>>(),
            [Piece::Records(5..7), Piece::Run(lines(&[9, 11])), Piece::Records(0..3)]
        );
    }

    /// Runs of many long summaries are stored in parts that fit beside others in a page, and
    /// read back as the lines they were made of.
    #[test]
    fn long_runs_are_stored_in_parts() {
        let long: Vec<Line> = (1..=64).map(|i| line(i * 3, i as i64, &format!("{i} {}", "word ".repeat(12)))).collect();
        let runs = encode_runs(&long);
        assert!(runs.len() > 1 && runs.iter().all(|(_, b)| b.len() <= MAX_RUN_BYTES), "{}", runs.len());
        let read: Vec<Line> = runs.iter().flat_map(|(_, b)| decode(b).unwrap()).collect();
        assert_eq!(read, long);
        assert!(runs.iter().all(|(seq, b)| decode(b).unwrap().last().unwrap().seq == *seq));
        // A run too large to read back (a summary naming a vast entity id) is written, and
        // refused when read: its records are read instead.
        let vast = [line(1, 0, &"x".repeat(2 << 20))];
        let runs = encode_runs(&vast);
        assert_eq!((runs.len(), decode(&runs[0].1)), (1, None));
        let short: Vec<Line> = (1..=64).map(|i| line(i, 0, "the same words")).collect();
        assert_eq!(encode_runs(&short).len(), 1);
        assert!(encode_runs(&[]).is_empty());
    }

    fn any_line() -> impl Strategy<Value = (u64, i64, u8, String)> {
        (1u64..u64::MAX / 4096, any::<i64>(), 0u8..32, "\\PC{0,30}")
    }

    /// Payloads of any shape, built from the keys a summary reads.
    fn payload() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "\\PC{0,12}( \\PC{0,12}){0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            let key = prop_oneof![
                Just("index"),
                Just("request"),
                Just("message"),
                Just("text"),
                Just("response"),
                Just("value"),
                Just("customTitle"),
                Just("other"),
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::vec((key, inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            ]
        })
    }

    proptest! {
        /// The words a line keeps, made from the payload in hand at append, are those made
        /// from its stored bytes as `log` reads them: whatever the payload's shape.
        #[test]
        fn a_summary_from_the_payload_is_the_one_from_its_bytes(
            payload in payload(),
            kind in 0usize..16,
        ) {
            let (change_type, entity_type) = (ChangeType::ALL[kind % 4], EntityType::ALL[kind / 4]);
            let bytes = serde_json::to_vec(&payload).unwrap();
            prop_assert_eq!(
                summary_of_payload(change_type, entity_type, "e", &bytes),
                summarize(change_type, entity_type, "e", &Gist::of_value(&payload))
            );
        }

        /// A summary written in place says exactly what one put together from `format!` and
        /// [`first_words`] says (the way it was first written), for any payload and text.
        #[test]
        fn a_summary_is_the_text_it_always_was(
            payload in payload(),
            kind in 0usize..16,
            entity_id in "\\PC{0,12}",
        ) {
            use crate::session::first_words;
            fn formatted(change_type: ChangeType, entity_type: EntityType, entity_id: &str, p: &Gist) -> String {
                let request_words = || {
                    let text = p.request.flatten().unwrap_or("");
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
                        let title = p.custom_title.map(|t| format!(" \"{}\"", first_words(t, 60)));
                        format!("new session{}", title.unwrap_or_default())
                    }
                    (EntityType::Session, ChangeType::Update) => "replaced the whole session".into(),
                    (EntityType::Session, ChangeType::Delete) => "deleted the session".into(),
                    (EntityType::Message, ChangeType::Create) => format!("added {}", request_words()),
                    (EntityType::Message, ChangeType::Update) => {
                        let parts = p.parts.unwrap_or(0);
                        format!("changed {} ({parts} response part{})", request_words(), if parts == 1 { "" } else { "s" })
                    }
                    (EntityType::Message, ChangeType::Delete) => format!("removed request {entity_id}"),
                    (EntityType::Metadata, ChangeType::Delete) => format!("removed field {entity_id}"),
                    (EntityType::Metadata, _) => {
                        let value = p.value.map(|v| match v {
                            Value::String(s) => format!("\"{}\"", first_words(s, 50)),
                            other => first_words(&other.to_string(), 50),
                        });
                        format!("{entity_id} = {}", value.unwrap_or_default())
                    }
                    (EntityType::Tag, ChangeType::Delete) => format!("untagged \"{entity_id}\""),
                    (EntityType::Tag, _) => format!("tagged \"{entity_id}\""),
                }
            }
            let (change_type, entity_type) = (ChangeType::ALL[kind % 4], EntityType::ALL[kind / 4]);
            let gist = Gist::of_value(&payload);
            prop_assert_eq!(
                summarize(change_type, entity_type, &entity_id, &gist),
                formatted(change_type, entity_type, &entity_id, &gist)
            );
        }

        /// Bytes that are not a run — even with a checksum that holds — are refused, never a
        /// panic or a vast allocation.
        #[test]
        fn any_bytes_decode_or_are_refused(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = Sha256::digest(&body).to_vec();
            bytes.extend_from_slice(&body);
            let _ = decode(&bytes);
            let _ = decode(&body);
        }

        /// Runs are cut where encoding each half in turn would cut them: the sizes are
        /// bounded and the summaries numbered once, but the bytes are those of the plain
        /// definition, so a journal's runs read and `verify` the same either way.
        #[test]
        fn runs_are_cut_as_halving_by_encoded_size_cuts_them(
            parts in proptest::collection::vec((1u64..100, 0usize..6, 1usize..120), 1..100),
        ) {
            fn plain(lines: &[Line]) -> Vec<(u64, Vec<u8>)> {
                let Some(last) = lines.last() else { return Vec::new() };
                let bytes = encode(lines);
                if bytes.len() <= MAX_RUN_BYTES || lines.len() == 1 {
                    return vec![(last.seq, bytes)];
                }
                let (older, newer) = lines.split_at(lines.len() / 2);
                let mut runs = plain(older);
                runs.extend(plain(newer));
                runs
            }
            let mut seq = 0;
            let lines: Vec<Line> = parts
                .iter()
                .map(|&(step, text, len)| {
                    seq += step;
                    line(seq, seq as i64, &format!("{text} {}", "w".repeat(len)))
                })
                .collect();
            prop_assert_eq!(encode_runs(&lines), plain(&lines));
        }

        /// Any run of lines in seq order reads back as written.
        #[test]
        fn a_run_round_trips(steps in proptest::collection::vec(any_line(), 0..80)) {
            let mut seq = 0;
            let lines: Vec<Line> = steps
                .iter()
                .map(|(step, ms, kind, summary)| {
                    seq += step;
                    Line {
                        seq,
                        timestamp_ms: *ms,
                        origin: Origin::ALL[*kind as usize % 2],
                        change_type: ChangeType::ALL[(*kind as usize / 2) % 4],
                        entity_type: EntityType::ALL[(*kind as usize / 8) % 4],
                        summary: summary.clone().into(),
                    }
                })
                .collect();
            let bytes = encode(&lines);
            prop_assert_eq!(decode(&bytes), Some(lines));
        }
    }
}
