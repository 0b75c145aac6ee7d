//! How records and snapshots are stored: whole, or as what changed since an earlier one (and,
//! once `chasm gc` has packed them, records stored whole may be compressed alone,
//! `compressed.rs`, or with their neighbours in a block, `block.rs`; [`form`] tells the four
//! apart).
//!
//! Most of a journal is the same request stored again and again as its response streams in:
//! each `message/update` carries the whole request, a few words longer. Storing such a record
//! as a delta against the previous version of the same request — the fields that differ, and
//! the payload as the bytes between the common prefix and the common suffix — takes a streamed
//! update from kilobytes to the few words it added. This is a storage encoding only: the
//! record, its bytes and its hash are what they always were, and reading a stored row gives
//! them back exactly. Snapshots are stored the same way against the session's previous one.
//!
//! A delta names its base by distance (`seq - base_seq`) and carries its depth (how many deltas
//! lie between it and a row stored whole); past [`MAX_DEPTH`] a row is stored whole, so reading
//! any record costs at most that many rows. `journal-format.md` gives every byte. Pure: no I/O.

use super::record::{ChangeType, DecodeError, EntityType, Fields, Origin};

/// The longest chain of deltas before a record is stored whole again.
pub const MAX_DEPTH: u8 = 16;

/// The first byte of a delta. A record stored whole starts with its version byte (1).
const DELTA: u8 = 0xDE;

/// What a stored row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The record's bytes as they are.
    Whole,
    /// The record's bytes compressed (see `compressed.rs`).
    Compressed,
    /// The `index`th record of the block that starts `index` seqs earlier (see `block.rs`).
    InBlock { index: u64 },
    /// A delta against the record `back` seqs earlier, `depth` deltas from a whole record.
    Delta { back: u64, depth: u8 },
}

/// Reads a stored row's form (its first bytes only).
pub fn form(stored: &[u8]) -> Result<Form, DecodeError> {
    match stored.first() {
        Some(&DELTA) => {
            let mut r = Reader(&stored[1..]);
            let back = r.varint()?;
            let depth = r.byte()?;
            if back == 0 {
                return Err(DecodeError::Body("a delta names itself as its base".into()));
            }
            Ok(Form::Delta { back, depth })
        }
        Some(&super::compressed::TAG) => Ok(Form::Compressed),
        Some(&super::block::TAG) => Ok(Form::InBlock { index: super::block::index(stored)? }),
        _ => Ok(Form::Whole),
    }
}

/// The depth of a stored row (0 when whole).
pub fn depth(stored: &[u8]) -> u8 {
    match form(stored) {
        Ok(Form::Delta { depth, .. }) => depth,
        _ => 0,
    }
}

/// Whether two records concern the same entity of the same kind (a request's versions).
pub fn same_entity(a: &[u8], b: &[u8]) -> bool {
    match (Fields::of(a), Fields::of(b)) {
        (Ok(a), Ok(b)) => (a.body.entity_type, a.body.entity_id) == (b.body.entity_type, b.body.entity_id),
        _ => false,
    }
}

/// Encodes `record` (stored bytes) as a delta against `base` (the stored bytes of an earlier
/// version of the same entity, `back` seqs before it, itself at `base_depth`). `None` when a
/// delta is not allowed (another entity, too deep, not decodable) or not smaller.
pub fn encode(base: &[u8], base_depth: u8, back: u64, record: &[u8]) -> Option<Vec<u8>> {
    if back == 0 || base_depth >= MAX_DEPTH {
        return None;
    }
    let (b, r) = (Fields::of(base).ok()?, Fields::of(record).ok()?);
    // Only versions of one entity are alike enough to pay: a request against another request
    // saves a few bytes of header at the cost of a longer chain.
    if (b.body.session_id, b.body.entity_type, b.body.entity_id)
        != (r.body.session_id, r.body.entity_type, r.body.entity_id)
    {
        return None;
    }
    let (bp, rp) = (b.body.payload, r.body.payload);
    let (prefix, suffix) = common_ends(bp, rp);
    let middle = &rp[prefix..rp.len() - suffix];

    let mut out = Vec::with_capacity(middle.len() + 128);
    put_head(&mut out, back, base_depth + 1);
    out.extend_from_slice(&r.body.id);
    put_varint(&mut out, zigzag(r.body.timestamp_ms.wrapping_sub(b.body.timestamp_ms)));
    out.push(index(ChangeType::ALL, r.body.change_type));
    out.push(index(EntityType::ALL, r.body.entity_type));
    out.push(index(Origin::ALL, r.body.origin));
    put_text(&mut out, r.body.entity_id, b.body.entity_id);
    put_text(&mut out, r.body.provider, b.body.provider);
    put_patch(&mut out, prefix, suffix, middle);
    out.extend_from_slice(&r.prev_hash);
    out.extend_from_slice(&r.hash);
    (out.len() < record.len()).then_some(out)
}

/// The record bytes of the delta `stored` at `seq`, given its base's record bytes.
pub fn decode(stored: &[u8], seq: u64, base: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let b = Fields::of(base)?;
    let mut r = Reader(stored.get(1..).ok_or(DecodeError::TooShort(0))?);
    r.varint()?;
    r.byte()?;
    let id: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
    let timestamp_ms = b.body.timestamp_ms.wrapping_add(unzigzag(r.varint()?));
    let change_type = pick(ChangeType::ALL, r.byte()?)?;
    let entity_type = pick(EntityType::ALL, r.byte()?)?;
    let origin = pick(Origin::ALL, r.byte()?)?;
    let entity_id = r.text(b.body.entity_id)?;
    let provider = r.text(b.body.provider)?;
    let (prefix, suffix, middle) = r.patch()?;
    let payload = patch(b.body.payload, prefix, middle, suffix)?;
    let prev_hash: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    let hash: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
    if !r.0.is_empty() {
        return Err(DecodeError::TrailingBytes(r.0.len()));
    }
    let body = super::record::Body {
        id,
        seq,
        session_id: b.body.session_id,
        change_type,
        entity_type,
        entity_id: &entity_id,
        timestamp_ms,
        origin,
        provider: &provider,
        payload: &payload,
    };
    Ok(Fields { body, prev_hash, hash }.to_bytes())
}

/// How many leading and trailing bytes `new` shares with `base` (not overlapping).
pub fn common_ends(base: &[u8], new: &[u8]) -> (usize, usize) {
    let prefix = base.iter().zip(new).take_while(|(x, y)| x == y).count();
    let room = base.len().min(new.len()) - prefix;
    let suffix = base.iter().rev().zip(new.iter().rev()).take(room).take_while(|(x, y)| x == y).count();
    (prefix, suffix)
}

/// `base`'s first `prefix` bytes, `middle`, then `base`'s last `suffix` bytes.
pub fn patch(base: &[u8], prefix: usize, middle: &[u8], suffix: usize) -> Result<Vec<u8>, DecodeError> {
    if prefix.checked_add(suffix).is_none_or(|n| n > base.len()) {
        return Err(DecodeError::Body("a delta reaches past its base".into()));
    }
    let mut out = Vec::with_capacity(prefix + middle.len() + suffix);
    out.extend_from_slice(&base[..prefix]);
    out.extend_from_slice(middle);
    out.extend_from_slice(&base[base.len() - suffix..]);
    Ok(out)
}

/// A snapshot stored whole: this tag, then its bytes.
const SNAPSHOT_WHOLE: u8 = 0;

/// The stored form of a snapshot's bytes (record hash ‖ checksum ‖ JSON): whole, or — given
/// the session's previous snapshot, `back` seqs before it, stored at `base_depth` — as the
/// JSON between the two's common prefix and suffix, when that is smaller.
pub fn encode_snapshot(snapshot: &[u8], base: Option<(&[u8], u64, u8)>) -> Vec<u8> {
    let whole = || [&[SNAPSHOT_WHOLE][..], snapshot].concat();
    let Some((base, back, base_depth)) = base.filter(|b| b.2 < MAX_DEPTH && b.1 > 0) else { return whole() };
    let (Some(head), Some(json), Some(base_json)) = (snapshot.get(..64), snapshot.get(64..), base.get(64..)) else {
        return whole();
    };
    let (prefix, suffix) = common_ends(base_json, json);
    let middle = &json[prefix..json.len() - suffix];
    let mut out = Vec::with_capacity(middle.len() + 96);
    put_head(&mut out, back, base_depth + 1);
    out.extend_from_slice(head);
    put_patch(&mut out, prefix, suffix, middle);
    if out.len() < snapshot.len() + 1 { out } else { whole() }
}

/// What a stored snapshot is: whole (its bytes), a delta naming its base, or either of those
/// compressed (a zstd frame, as `chasm gc` stores it; see `compressed.rs`).
pub enum StoredSnapshot<'a> {
    Whole(&'a [u8]),
    Delta { back: u64, depth: u8 },
    Compressed(&'a [u8]),
}

/// Reads a stored snapshot's form.
pub fn snapshot_form(stored: &[u8]) -> Result<StoredSnapshot<'_>, DecodeError> {
    match stored.first() {
        Some(&SNAPSHOT_WHOLE) => Ok(StoredSnapshot::Whole(&stored[1..])),
        Some(&super::compressed::TAG) => Ok(StoredSnapshot::Compressed(&stored[1..])),
        Some(&DELTA) => match form(stored)? {
            Form::Delta { back, depth } => Ok(StoredSnapshot::Delta { back, depth }),
            Form::Whole | Form::Compressed | Form::InBlock { .. } => unreachable!("a delta tag reads as a delta"),
        },
        _ => Err(DecodeError::Body("a stored snapshot of unknown form".into())),
    }
}

/// The snapshot bytes of a delta `stored`, given its base's snapshot bytes.
pub fn decode_snapshot(stored: &[u8], base: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut r = Reader(stored.get(1..).ok_or(DecodeError::TooShort(0))?);
    r.varint()?;
    r.byte()?;
    let head = r.take(64)?;
    let (prefix, suffix, middle) = r.patch()?;
    if !r.0.is_empty() {
        return Err(DecodeError::TrailingBytes(r.0.len()));
    }
    let json = patch(base.get(64..).ok_or(DecodeError::TooShort(base.len()))?, prefix, middle, suffix)?;
    Ok([head, &json].concat())
}

fn index<T: PartialEq>(all: &[T], v: T) -> u8 {
    all.iter().position(|x| *x == v).expect("every value is listed") as u8
}

fn pick<T: Copy>(all: &[T], i: u8) -> Result<T, DecodeError> {
    all.get(i as usize).copied().ok_or_else(|| DecodeError::Body(format!("unknown enum value {i} in a delta")))
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A delta's first bytes: its tag, the distance back to its base, its depth.
fn put_head(out: &mut Vec<u8>, back: u64, depth: u8) {
    out.push(DELTA);
    put_varint(out, back);
    out.push(depth);
}

/// The changed middle of a payload or JSON: prefix and suffix lengths, then the middle bytes.
fn put_patch(out: &mut Vec<u8>, prefix: usize, suffix: usize, middle: &[u8]) {
    put_varint(out, prefix as u64);
    put_varint(out, suffix as u64);
    put_varint(out, middle.len() as u64);
    out.extend_from_slice(middle);
}

/// A LEB128 varint, as deltas and blocks (`block.rs`) write their numbers.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A string the same as the base's: 0; otherwise its length + 1, then its bytes.
fn put_text(out: &mut Vec<u8>, text: &str, base: &str) {
    if text == base {
        out.push(0);
    } else {
        put_varint(out, text.len() as u64 + 1);
        out.extend_from_slice(text.as_bytes());
    }
}

/// Reads what deltas, snapshots and blocks wrote, refusing what ends early.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError::Body("a stored row ends early".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Body("a varint in a stored row is too long".into()))
    }

    pub(super) fn len(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.varint()?).map_err(|_| DecodeError::Body("a length in a stored row is too large".into()))
    }

    /// What [`put_patch`] wrote: (prefix, suffix, middle).
    fn patch(&mut self) -> Result<(usize, usize, &'a [u8]), DecodeError> {
        let (prefix, suffix, n) = (self.len()?, self.len()?, self.len()?);
        Ok((prefix, suffix, self.take(n)?))
    }

    fn text(&mut self, base: &str) -> Result<String, DecodeError> {
        match self.len()? {
            0 => Ok(base.to_owned()),
            n => String::from_utf8(self.take(n - 1)?.to_vec())
                .map_err(|_| DecodeError::Body("a string in a delta is not UTF-8".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::SyncChange;
    use crate::journal::tests::change;
    use proptest::prelude::*;
    use serde_json::json;

    fn sealed(session: &str, entity: &str, payload: serde_json::Value, seq: u64) -> Vec<u8> {
        let c = crate::journal::NewChange { payload, ..change(session, entity) };
        SyncChange::seal_stored(uuid::Uuid::new_v4(), c, seq, [seq as u8; 32]).1
    }

    #[test]
    fn a_streamed_update_is_stored_as_the_words_it_added() {
        let text = "word ".repeat(300);
        let base = sealed("s", "r1", json!({"index": 0, "request": {"response": [{"value": text}], "done": false}}), 7);
        let next = sealed(
            "s",
            "r1",
            json!({"index": 0, "request": {"response": [{"value": text + "more"}], "done": false}}),
            9,
        );
        let delta = encode(&base, 3, 2, &next).unwrap();
        assert!(delta.len() < 120, "{} bytes", delta.len());
        assert_eq!(form(&delta).unwrap(), Form::Delta { back: 2, depth: 4 });
        let rebuilt = decode(&delta, 9, &base).unwrap();
        assert_eq!(rebuilt, next);
        assert_eq!(rebuilt.capacity(), rebuilt.len(), "allocated once, to size");
    }

    #[test]
    fn deltas_are_refused_across_sessions_and_entities_and_past_the_depth_limit() {
        let a = sealed("s", "r1", json!({"a": 1}), 1);
        let b = sealed("t", "r1", json!({"a": 1}), 2);
        assert!(encode(&a, 0, 1, &b).is_none());
        assert!(encode(&a, 0, 1, &sealed("s", "r2", json!({"a": 1}), 2)).is_none());
        let c = sealed("s", "r1", json!({"a": 1}), 2);
        assert!(encode(&a, MAX_DEPTH, 1, &c).is_none());
        assert_eq!(form(&a).unwrap(), Form::Whole);
    }

    #[test]
    fn damaged_deltas_are_errors_not_panics() {
        let base = sealed("s", "r1", json!({"v": "x".repeat(200)}), 1);
        let next = sealed("s", "r1", json!({"v": "x".repeat(201)}), 2);
        let delta = encode(&base, 0, 1, &next).unwrap();
        for cut in 0..delta.len() {
            let _ = decode(&delta[..cut], 2, &base);
            let _ = form(&delta[..cut]);
        }
        let mut bad = delta.clone();
        for i in 0..bad.len() {
            bad[i] ^= 0xff;
            let _ = decode(&bad, 2, &base);
            bad[i] ^= 0xff;
        }
        assert!(decode(&delta, 2, &sealed("s", "r1", json!(1), 1)).is_err(), "a base too short for the delta");
    }

    proptest! {
        #[test]
        fn every_delta_decodes_to_the_record(
            a in "[a-z ]{0,80}", b in "[a-z ]{0,80}", entity in "r[0-9]", ts in -5i64..5, back in 1u64..100,
        ) {
            let base = sealed("s", "r1", json!({"text": a, "n": 1}), 10);
            let mut c = crate::journal::NewChange { payload: json!({"text": b, "n": 2}), ..change("s", &entity) };
            c.timestamp += chrono::Duration::milliseconds(ts * 1000);
            let next = SyncChange::seal_stored(uuid::Uuid::new_v4(), c, 10 + back, [1; 32]).1;
            if let Some(delta) = encode(&base, 0, back, &next) {
                prop_assert_eq!(decode(&delta, 10 + back, &base).unwrap(), next);
            }
        }
    }
}
