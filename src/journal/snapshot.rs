//! Per-session snapshots: the fold's state recorded every [`SNAPSHOT_INTERVAL`] events of a
//! session, so that the state at any point costs one snapshot plus fewer than that many events,
//! however long the history.
//!
//! A snapshot does not copy the requests: it names, for each, the event that holds its current
//! value (requests are most of a session's bytes, and most of them stop changing once
//! answered). Reading one therefore costs a record read per distinct event it names — bounded
//! by the session's size, not its history — and a snapshot costs tens of bytes per request.
//!
//! Snapshots are derived data. Each names the record it was taken at by that record's hash and
//! carries a checksum of its own bytes; one that fails either check, or names a record that is
//! not there, is passed over for an earlier one (ultimately the full fold), so a lost or damaged
//! snapshot costs time, never correctness. `verify` compares every snapshot with a full fold and
//! rebuilds what is missing or wrong.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::delta;
use super::lines::{self, Line};
use super::record::{Body, ChangeType, EntityType, Fields, Origin};
use super::store::{Shared, Store};
use super::{JournalError, SyncChange, Text, decode};
use crate::fold::{SessionState, Source};
use crate::session::{Request, Session};

/// A snapshot is taken at every this-many-th event of a session: replaying any point folds at
/// most `SNAPSHOT_INTERVAL - 1` events after the nearest snapshot.
pub const SNAPSHOT_INTERVAL: u64 = 64;

/// A snapshot's bytes: the hash of the record it was taken at (32) ‖ SHA-256 of the body (32) ‖
/// the body (JSON).
///
/// The body lists the session's fields, then its requests, then what changes at every
/// snapshot: consecutive snapshots of a session then share a long prefix and suffix, and the
/// store keeps most as a delta of the one before (see `Store::put_snapshot`).
fn encode(record_hash: &[u8; 32], state: &SessionState) -> Vec<u8> {
    /// Written straight to bytes, the fields in this order: a `json!` value would be a copy of
    /// everything in it, made only to be written and dropped.
    #[derive(serde::Serialize)]
    struct Encoded<'a> {
        fields: Value,
        requests: Vec<(&'a str, u64, Option<u32>)>,
        exists: bool,
        tags: &'a BTreeSet<String>,
        last_seq: u64,
        deleted_seq: Option<u64>,
        last_checkpoint: Option<u64>,
    }
    let body = Encoded {
        fields: state.session.without_requests().to_value(),
        requests: state.ids.iter().zip(&state.sources).map(|(id, s)| (id.as_str(), s.seq, s.index)).collect(),
        exists: state.exists,
        tags: &state.tags,
        last_seq: state.last_seq,
        deleted_seq: state.deleted_seq,
        last_checkpoint: state.last_checkpoint,
    };
    let body = serde_json::to_vec(&body).expect("a snapshot serializes");
    let mut out = Vec::with_capacity(64 + body.len());
    out.extend_from_slice(record_hash);
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

/// A decoded snapshot whose requests are still references.
struct Stored {
    record_hash: [u8; 32],
    state: SessionState,
}

/// Decodes a snapshot taken at `seq`, if its checksum holds. Requests are left empty; the
/// caller fills them from the records named in `state.sources`.
fn decode_snapshot(seq: u64, bytes: &[u8]) -> Option<Stored> {
    let record_hash: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let checksum = bytes.get(32..64)?;
    let body = bytes.get(64..)?;
    if Sha256::digest(body).as_slice() != checksum {
        return None;
    }
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let session = Session::from_value(v.get_mut("fields")?.take()).ok()?;
    let tags: BTreeSet<String> = serde_json::from_value(v.get_mut("tags")?.take()).ok()?;
    let (ids, sources): (Vec<String>, Vec<Source>) = v
        .get("requests")?
        .as_array()?
        .iter()
        .map(|r| {
            let id = r.get(0)?.as_str()?.to_owned();
            let seq = r.get(1)?.as_u64()?;
            let index = match r.get(2)? {
                Value::Null => None,
                i => Some(u32::try_from(i.as_u64()?).ok()?),
            };
            Some((id, Source { seq, index }))
        })
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .unzip();
    if v.get("last_seq")?.as_u64()? != seq || sources.iter().any(|s| s.seq > seq) {
        return None;
    }
    let state = SessionState {
        session,
        ids,
        sources,
        exists: v.get("exists")?.as_bool()?,
        tags,
        last_seq: seq,
        deleted_seq: v.get("deleted_seq")?.as_u64(),
        last_checkpoint: v.get("last_checkpoint")?.as_u64(),
        events_read: 0,
    };
    Some(Stored { record_hash, state })
}

/// Whether a change sets a request (what [`placed_request`] lightens).
fn is_message_set(entity_type: EntityType, change_type: ChangeType) -> bool {
    entity_type == EntityType::Message && matches!(change_type, ChangeType::Create | ChangeType::Update)
}

/// A message event's payload with its request emptied, read from the stored text without
/// parsing the request: all a snapshot needs of it is where it goes. `None` (parse it whole)
/// for other events, and for a payload the fold would refuse, so that it still does.
pub(super) fn placed_request(body: &Body) -> Option<Value> {
    if !is_message_set(body.entity_type, body.change_type) {
        return None;
    }
    placed_by_prefix(body.payload).or_else(|| placed_by_parse(body.payload))
}

/// [`placed_request`] for any payload: parsed, the request's text skipped but checked.
fn placed_by_parse(payload: &[u8]) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct Placed<'a> {
        #[serde(default)]
        index: Value,
        #[serde(borrow)]
        request: Option<&'a RawValue>,
    }
    let placed: Placed = serde_json::from_slice(payload).ok()?;
    placed.request.filter(|r| r.get().starts_with('{')).map(|_| json!({"index": placed.index, "request": {}}))
}

/// [`placed_request`] read from the first bytes alone, for a payload laid out as the fold
/// writes one: `{"index":N,"request":{…`. Skipping the request's text (most of the record) is
/// most of what a due snapshot costs an append. The rest is not looked at: every stored
/// payload is serde_json's compact text of a JSON object, so it is valid and its keys are
/// unique, and a request that begins with `{` is an object. (A record damaged on disk past
/// these bytes is refused where its request is read, and by `verify`, as before.)
fn placed_by_prefix(payload: &[u8]) -> Option<Value> {
    let rest = payload.strip_prefix(b"{\"index\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, rest) = rest.split_at(digits);
    // serde_json writes an integer without leading zeros; anything else is read the long way.
    if number.is_empty() || (number[0] == b'0' && digits > 1) || !rest.starts_with(b",\"request\":{") {
        return None;
    }
    let index: u64 = std::str::from_utf8(number).ok()?.parse().ok()?;
    Some(json!({"index": index, "request": {}}))
}

/// [`placed_request`] for a payload already parsed.
fn request_place(payload: &Value) -> Option<Value> {
    payload
        .get("request")
        .filter(|r| r.is_object())
        .map(|_| json!({"index": payload.get("index").cloned().unwrap_or(Value::Null), "request": {}}))
}

/// A record's fields (payload unparsed), or why they cannot be read.
fn fields(seq: u64, bytes: &[u8]) -> Result<Fields<'_>, JournalError> {
    Fields::of(bytes).map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })
}

impl Store {
    /// The record at `seq`, if it is there and belongs to `session_id`.
    fn session_record(&self, session_id: &str, seq: u64) -> Result<Option<SyncChange>, JournalError> {
        let Some(bytes) = self.get(seq)? else { return Ok(None) };
        Ok(decode(seq, &bytes).ok().filter(|r| r.session_id == session_id))
    }

    /// Fills a decoded snapshot's requests from the records its sources name; `None` when one
    /// is missing or does not hold the request named.
    fn materialize(&self, session_id: &str, mut state: SessionState) -> Result<Option<SessionState>, JournalError> {
        let mut records: HashMap<u64, Option<SyncChange>> = HashMap::new();
        let mut requests = Vec::with_capacity(state.sources.len());
        self.read_finals(session_id, state.sources.iter().map(|s| s.seq))?;
        for source in &state.sources {
            let record = match records.entry(source.seq) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(self.session_record(session_id, source.seq)?),
            };
            let Some(record) = record.as_mut() else { return Ok(None) };
            // Each (record, index) holds one request, so its value is moved out, not copied.
            let value = match source.index {
                None => record.payload.get_mut("request"),
                Some(i) => record.payload.get_mut("requests").and_then(|r| r.get_mut(i as usize)),
            };
            match value.map(Value::take).map(Request::from_value) {
                Some(Ok(request)) => requests.push(request),
                _ => return Ok(None),
            }
        }
        state.session.requests = requests;
        Ok(Some(state))
    }

    /// The newest snapshot of a session at or before `upto` that passes its own checks: its
    /// checksum holds, and the record it names is in the log, filed under this session, with
    /// the hash it carries (read from the stored row, its delta chain not followed). Requests
    /// left to fill.
    fn checked_snapshot(&self, session_id: &str, upto: u64) -> Result<Option<Stored>, JournalError> {
        let mut upto = upto;
        while let Some((seq, v)) = self.snapshot_at_or_before(session_id, upto)? {
            let stored = decode_snapshot(seq, &v);
            let named = match &stored {
                Some(s) => self.filed_hash(session_id, seq)? == Some(s.record_hash),
                None => false,
            };
            if named {
                return Ok(stored);
            }
            let Some(before) = seq.checked_sub(1) else { break };
            upto = before;
        }
        Ok(None)
    }

    /// The newest valid snapshot of a session at or before `upto`: one that passes its checks
    /// (see [`Store::checked_snapshot`]) and whose requests are all found.
    pub(super) fn snapshot_before(&self, session_id: &str, upto: u64) -> Result<Option<SessionState>, JournalError> {
        let mut upto = upto;
        while let Some(stored) = self.checked_snapshot(session_id, upto)? {
            let seq = stored.state.last_seq;
            if let Some(state) = self.materialize(session_id, stored.state)? {
                return Ok(Some(state));
            }
            let Some(before) = seq.checked_sub(1) else { break };
            upto = before;
        }
        Ok(None)
    }

    /// The newest snapshot at or before `upto` that passes its own checks, its requests left as
    /// empty placeholders (the sources say where each one is): for readers that copy requests
    /// as stored text instead of parsing them ([`Store::request_texts`]).
    pub(super) fn unfilled_snapshot_before(
        &self,
        session_id: &str,
        upto: u64,
    ) -> Result<Option<SessionState>, JournalError> {
        Ok(self.checked_snapshot(session_id, upto)?.map(|stored| {
            let mut state = stored.state;
            state.session.requests = vec![Request::empty(); state.ids.len()];
            state
        }))
    }

    /// The JSON text of each request the sources name, as stored (not parsed into values);
    /// `None` when a record is missing, belongs to another session, or does not hold the
    /// request named.
    pub(super) fn request_texts(
        &self,
        session_id: &str,
        sources: &[Source],
    ) -> Result<Option<Vec<Text>>, JournalError> {
        #[derive(serde::Deserialize)]
        struct Message<'a> {
            #[serde(borrow)]
            request: &'a RawValue,
        }
        #[derive(serde::Deserialize)]
        struct Whole<'a> {
            #[serde(borrow)]
            requests: Vec<&'a RawValue>,
        }
        let mut texts: Vec<Option<Text>> = vec![None; sources.len()];
        // Each record is read and scanned once, however many requests it holds.
        let mut order: Vec<usize> = (0..sources.len()).collect();
        order.sort_by_key(|&i| sources[i].seq);
        self.read_finals(session_id, sources.iter().map(|s| s.seq))?;
        let mut at = 0;
        while at < order.len() {
            let seq = sources[order[at]].seq;
            let same = order[at..].iter().take_while(|&&i| sources[i].seq == seq).count();
            let Some(bytes) = self.get(seq)? else { return Ok(None) };
            let Ok(fields) = Fields::of(&bytes) else { return Ok(None) };
            if fields.body.session_id != session_id {
                return Ok(None);
            }
            let payload = fields.body.payload;
            let whole = if sources[order[at]].index.is_some() {
                match serde_json::from_slice::<Whole>(payload) {
                    Ok(w) => Some(w.requests),
                    Err(_) => return Ok(None),
                }
            } else {
                None
            };
            for &i in &order[at..at + same] {
                let text = match (sources[i].index, &whole) {
                    (Some(k), Some(all)) => all.get(k as usize).map(|r| r.get()),
                    (None, _) => serde_json::from_slice::<Message>(payload).ok().map(|m| m.request.get()),
                    (Some(_), None) => None,
                };
                match text.filter(|t| t.trim_start().starts_with('{')) {
                    // Borrowed from the payload, which lies within the record's bytes: shared
                    // with the record, not copied out of it.
                    Some(t) => {
                        let at = (t.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize);
                        texts[i] = Some(match at.checked_add(t.len()).filter(|&end| end <= bytes.len()) {
                            Some(end) => Text::within(Rc::clone(&bytes), at..end),
                            None => Text::from(t.as_bytes().to_vec()),
                        });
                    }
                    None => return Ok(None),
                }
            }
            at += same;
        }
        Ok(texts.into_iter().collect())
    }

    /// The seq of a session's last checkpoint: from its newest valid snapshot and the records
    /// after it (read without parsing their payloads), so no request is materialized.
    pub(super) fn last_checkpoint(&self, session_id: &str) -> Result<Option<u64>, JournalError> {
        let (after, mut checkpoint) = match self.checked_snapshot(session_id, u64::MAX)? {
            Some(s) => (s.state.last_seq, s.state.last_checkpoint),
            None => (0, None),
        };
        for (seq, bytes) in self.session_records(session_id, after, u64::MAX)? {
            if fields(seq, &bytes)?.body.change_type == ChangeType::Merge {
                checkpoint = Some(seq);
            }
        }
        Ok(checkpoint)
    }

    /// The seq of a session's newest change of `origin` (not a checkpoint) after `after` up to
    /// `upto` (0: none), reading the records between without parsing their payloads.
    pub(super) fn newest_change_between(
        &self,
        session_id: &str,
        origin: Origin,
        after: u64,
        upto: u64,
    ) -> Result<u64, JournalError> {
        let mut newest = 0;
        for (seq, bytes) in self.session_records(session_id, after, upto)? {
            let body = fields(seq, &bytes)?.body;
            if body.origin == origin && body.change_type != ChangeType::Merge {
                newest = seq;
            }
        }
        Ok(newest)
    }

    /// Stores the snapshots a session is due after new records: one at every
    /// [`SNAPSHOT_INTERVAL`]-th event of the session, with the run of log lines of the events
    /// since the one before (see `lines`). Called inside the append's transaction,
    /// once the record that makes one due is inserted; free when none is due. `events` is the
    /// session's record count with it; `fresh` are the newest records of this session in the
    /// append, in seq order, that one last: they are folded from memory, and any older since
    /// the last snapshot are read back. A session whose events do not fold gets none.
    pub(super) fn take_due_snapshots(
        &self,
        session_id: &str,
        events: u64,
        fresh: &[&SyncChange],
    ) -> Result<usize, JournalError> {
        let before = events.saturating_sub(fresh.len() as u64);
        if events / SNAPSHOT_INTERVAL == before / SNAPSHOT_INTERVAL {
            return Ok(0);
        }
        // A snapshot names requests by where they are, so none is read or copied: the base's
        // are left unfilled, and each message event is folded without its request's content.
        let base = self.unfilled_snapshot_before(session_id, u64::MAX)?;
        let after = base.as_ref().map_or(0, |s| s.last_seq);
        let mut state = base.unwrap_or_default();
        let mut taken = 0;
        let first_fresh = fresh.first().map_or(u64::MAX, |r| r.seq);
        let earlier = self.recent_session_records(session_id, after, first_fresh.saturating_sub(1))?;
        let mut records: Vec<Cow<SyncChange>> = Vec::with_capacity(earlier.len() + fresh.len());
        // Each record's log line too: the lines since the last snapshot are stored with the
        // next one (see `lines`).
        let mut lines: Vec<Line> = Vec::with_capacity(records.capacity());
        for (seq, bytes) in &earlier {
            match self.take_line(*seq) {
                Some(line) => lines.push(line),
                None => match Fields::of(bytes) {
                    Ok(f) => lines.push(Line::of_fields(&f)),
                    Err(_) => return Ok(0),
                },
            }
            match SyncChange::decode_with(bytes, placed_request) {
                Ok(r) if r.seq == *seq => records.push(Cow::Owned(r)),
                _ => return Ok(0),
            }
        }
        for &record in fresh.iter().filter(|r| r.seq > after) {
            lines.push(self.take_line(record.seq).unwrap_or_else(|| Line::of(record)));
            let placed = is_message_set(record.entity_type, record.change_type).then(|| request_place(&record.payload));
            records.push(match placed.flatten() {
                Some(payload) => Cow::Owned(SyncChange { payload, ..record.without_payload() }),
                None => Cow::Borrowed(record),
            });
        }
        for (i, record) in records.iter().enumerate() {
            if state.apply(record).is_err() {
                return Ok(taken);
            }
            if (i as u64 + 1).is_multiple_of(SNAPSHOT_INTERVAL) {
                self.put_snapshot(session_id, record.seq, &encode(&record.hash, &state))?;
                for (seq, bytes) in lines::encode_runs(&lines[i + 1 - SNAPSHOT_INTERVAL as usize..=i]) {
                    self.put_lines(session_id, seq, &bytes)?;
                }
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// Checks one session's `finals` (see `Inserting::row`) against its records, given as
    /// (seq, bytes) in seq order with the seqs of those stored as deltas (ascending), and
    /// rewrites them where they differ: each version stored as a delta after which the session
    /// moved on to another entity has its record there, and nothing else does. Returns how many
    /// rows had to change.
    pub(super) fn rebuild_finals(
        &self,
        session_id: &str,
        records: &[(u64, Shared)],
        deltas: &[u64],
    ) -> Result<usize, JournalError> {
        let want: Vec<(u64, Vec<u8>)> = records
            .windows(2)
            .filter(|pair| deltas.binary_search(&pair[0].0).is_ok() && !delta::same_entity(&pair[0].1, &pair[1].1))
            .map(|pair| (pair[0].0, pair[0].1.to_vec()))
            .collect();
        let have = self.finals_of(session_id)?;
        let changed = differing(&have, &want);
        if changed > 0 {
            self.derived_transaction(|store| store.replace_finals(session_id, &want))?;
        }
        Ok(changed)
    }

    /// Checks one session's snapshots and runs of log lines against a full fold of its
    /// `records` (in seq order) and rewrites each set where it differs: wrong ones replaced,
    /// missing ones added, stray ones removed. Returns how many snapshots, and how many runs,
    /// had to change.
    pub(super) fn rebuild_snapshots(
        &self,
        session_id: &str,
        records: &[SyncChange],
    ) -> Result<(usize, usize), JournalError> {
        let mut want: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut want_lines: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut state = SessionState::default();
        for (i, record) in records.iter().enumerate() {
            if state.apply(record).is_err() {
                break;
            }
            if (i as u64 + 1).is_multiple_of(SNAPSHOT_INTERVAL) {
                want.push((record.seq, encode(&record.hash, &state)));
                let run: Vec<Line> = records[i + 1 - SNAPSHOT_INTERVAL as usize..=i].iter().map(Line::of).collect();
                want_lines.extend(lines::encode_runs(&run));
            }
        }
        let have = self.snapshots_of(session_id)?;
        let have_lines = self.lines_of(session_id, 0)?;
        let changed = (differing(&have, &want), differing(&have_lines, &want_lines));
        // Only a set that differs is rewritten: a journal from before runs of lines existed
        // gains them without its snapshots being written again.
        if changed != (0, 0) {
            self.derived_transaction(|store| {
                if changed.0 > 0 {
                    for (seq, _) in &have {
                        store.remove_snapshot(session_id, *seq)?;
                    }
                    for (seq, bytes) in &want {
                        store.put_snapshot(session_id, *seq, bytes)?;
                    }
                }
                if changed.1 > 0 {
                    for (seq, _) in &have_lines {
                        store.remove_lines(session_id, *seq)?;
                    }
                    for (seq, bytes) in &want_lines {
                        store.put_lines(session_id, *seq, bytes)?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(changed)
    }
}

/// How many keys two sets of (seq, bytes) rows differ at.
fn differing(have: &[(u64, Vec<u8>)], want: &[(u64, Vec<u8>)]) -> usize {
    let seqs: BTreeSet<u64> = have.iter().chain(want).map(|(seq, _)| *seq).collect();
    seqs.iter().filter(|seq| have.iter().find(|h| h.0 == **seq) != want.iter().find(|w| w.0 == **seq)).count()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_a_damaged_one_is_refused() {
        let mut state = SessionState {
            session: Session::from_value(json!({"sessionId": "s", "requests": [{"requestId": "r1"}]})).unwrap(),
            ids: vec!["r1".into()],
            sources: vec![Source { seq: 3, index: Some(0) }],
            exists: true,
            last_seq: 7,
            last_checkpoint: Some(5),
            ..SessionState::default()
        };
        state.tags.insert("t".into());
        let bytes = encode(&[9; 32], &state);
        // The body's fields in the order the store's deltas between snapshots count on.
        let body = json!({"fields": {"sessionId": "s", "requests": []}, "requests": [["r1", 3, 0]], "exists": true,
                          "tags": ["t"], "last_seq": 7, "deleted_seq": null, "last_checkpoint": 5});
        assert_eq!(String::from_utf8_lossy(&bytes[64..]), body.to_string());
        let stored = decode_snapshot(7, &bytes).unwrap();
        let mut back = stored.state;
        back.session.requests = state.session.requests.clone();
        assert_eq!((stored.record_hash, &back), ([9; 32], &state));
        assert!(decode_snapshot(8, &bytes).is_none(), "taken at another seq");
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode_snapshot(7, &flipped).is_none());
        assert!(decode_snapshot(7, &bytes[..40]).is_none());
    }

    fn index() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            any::<u64>().prop_map(|n| Some(json!(n))),
            (0u64..200).prop_map(|n| Some(json!(n))),
            any::<i64>().prop_map(|n| Some(json!(n))),
            (-1e6f64..1e6).prop_map(|f| Some(json!(f))),
            "[0-9]{0,3}".prop_map(|s| Some(json!(s))),
            Just(Some(Value::Null)),
            Just(None),
        ]
    }

    fn request() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            ("[a-z\"{}]{0,8}", any::<u32>()).prop_map(|(t, n)| Some(json!({"requestId": t, "n": n, "r": [{"v": t}]}))),
            Just(Some(json!({}))),
            Just(Some(json!([{"a": 1}]))),
            Just(Some(json!("{\"not\": \"an object\"}"))),
            Just(Some(Value::Null)),
            Just(None),
        ]
    }

    proptest! {
        /// Reading a payload's first bytes places its request as parsing it does, whatever
        /// serde_json wrote: keys in any order, other keys beside them, any value for either.
        #[test]
        fn placing_by_prefix_agrees_with_parsing(
            index in index(),
            request in request(),
            request_first in any::<bool>(),
            extra in proptest::option::of("[a-z]{1,6}"),
        ) {
            let mut map = serde_json::Map::new();
            let mut fields = vec![("index", index.clone()), ("request", request.clone())];
            if request_first {
                fields.reverse();
            }
            for (key, value) in fields {
                if let Some(value) = value {
                    map.insert(key.into(), value);
                }
            }
            if let Some(extra) = extra.filter(|e| e != "index" && e != "request") {
                map.insert(extra, json!(1));
            }
            let bytes = serde_json::to_vec(&Value::Object(map.clone())).unwrap();
            let parsed = placed_by_parse(&bytes);
            if let Some(placed) = placed_by_prefix(&bytes) {
                prop_assert_eq!(Some(placed), parsed);
            }
            // The layout the fold writes (a whole number, then an object) is always read so.
            let folds = matches!((&index, &request), (Some(Value::Number(n)), Some(Value::Object(_))) if n.is_u64());
            if folds && !request_first && map.len() == 2 {
                prop_assert!(placed_by_prefix(&bytes).is_some());
            }
        }
    }
}
