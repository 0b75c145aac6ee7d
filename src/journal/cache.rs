//! The stored form of the two caches a sync keeps beside the history: each session's
//! fingerprint (`fingerprints`, read for every session on every sync that is not a no-op) and
//! what it held when last in step (`shapes`, read and rewritten whole for each changed file).
//!
//! Both were JSON. A shape names each request by a SHA-256 and its file's text by an XXH3-128,
//! which JSON holds as hex strings: a shape row was nearly twice the size of what it says,
//! and a sync with 1% of a thousand sessions changed read about 350 KB of them, most
//! of that spilling into overflow pages read cold. Rows are now bincode, the digests as bytes,
//! after a tag byte (JSON rows begin with `{`) and an XXH3-64 of the body: a damaged row is a
//! cache miss, never a wrong shape (a fast hash suffices, as for a mark, since a cache guards
//! against damage, not against anyone). JSON rows left by earlier versions are still read
//! (with a mark from before XXH3 left out: that file is read whole once), and written back in
//! the binary form. In memory the digests are bytes too: a sync compares and hashes them, and
//! never shows them. A long session's shape is kept in parts (see [`Shaped`]), so that a
//! sync rewrites what changed of it rather than all of it.
//!
//! A third cache is `capture`'s: what it last read from each file it was given (`captures`),
//! in the same frame.

use bincode::{BorrowDecode, Encode};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_64;

use super::{Captured, Fingerprint, Gone, Held, HeldFields, Settled, Unsynced};
use crate::provider::LogMark;
use crate::session::unhex;
use crate::shape::Shape;

/// The first byte of a binary row (a JSON row's is `{`).
const BINARY: u8 = 1;
/// The first byte of a `fingerprints` row that says what a deleted session last held (see
/// [`Settled::gone`]); rows tagged [`BINARY`] are read as before.
const BINARY_GONE: u8 = 2;
/// The first byte of the head of a shape kept in parts (see [`Shaped::Parted`]).
const PARTED: u8 = 3;
/// The first byte of a `fingerprints` row for a session never synced (see
/// [`Fingerprint::unsynced`]): [`BINARY_GONE`]'s fields and [`Unsynced`]'s after them. Only
/// such rows take it, so that every other row stays as an earlier chasm reads it (to which
/// one of these is a miss).
const BINARY_UNSYNCED: u8 = 4;

/// Requests per `shape_parts` row: few enough that a row stays in its page (a WITHOUT ROWID
/// row over ~2 KB spills into an overflow page of its own), with VS Code's 44-character
/// request ids and every digest.
pub const PART_REQUESTS: usize = 16;

/// Variable-length integers; a row claiming a vast length is refused before it is allocated
/// (the largest shapes are a few hundred kilobytes).
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 64 << 20 }>()
}

/// Where each request's value is in the journal (see [`Held::sources`]).
type Sources = Vec<(u64, Option<u32>)>;

/// `S`, the sources: borrowed from the shape to write a row, owned when one is read.
#[derive(Encode, BorrowDecode)]
struct StoredHeld<'a, S> {
    last_seq: u64,
    local_seq: u64,
    remote_seq: u64,
    /// The shape's top-level fields as JSON (bincode cannot hold a `serde_json::Value`).
    fields: &'a str,
    requests: Vec<(&'a str, [u8; 32])>,
    sources: S,
    log: Option<StoredMark>,
}

#[derive(Encode, BorrowDecode)]
struct StoredMark {
    len: u64,
    digest: [u8; 16],
    requests: Vec<[u8; 16]>,
}

/// A shape's head: the shape without its requests, which its parts hold.
#[derive(Encode, BorrowDecode)]
struct StoredHeader<'a> {
    last_seq: u64,
    local_seq: u64,
    remote_seq: u64,
    fields: &'a str,
    /// How many requests the parts hold, in all.
    requests: u64,
    /// The last request's source (see [`HeldFields::last_source`]), for a reader of the row
    /// alone.
    last_source: Option<(u64, Option<u32>)>,
    /// The mark's length and digest, and whether the parts hold its requests' digests.
    log: Option<(u64, [u8; 16], bool)>,
    /// The XXH3-64 of the parts' bytes one after another: parts that are not the head's own
    /// (only a hand on the database leaves such) are a miss.
    parts: u64,
}

/// A `shape_parts` row: each of its requests' id, digest, source and (where the mark has
/// them) text digest.
type StoredPart<'a> = Vec<(&'a str, [u8; 32], (u64, Option<u32>), Option<[u8; 16]>)>;

/// `G`: what a deleted session last held (seq of its deletion, title, last activity); `()`
/// in rows written before it was kept.
#[derive(Encode, BorrowDecode)]
struct StoredFingerprint<'a, G> {
    token: &'a str,
    events: u64,
    title: Option<&'a str>,
    settled: Option<(bool, Option<&'a str>, Option<&'a str>, G)>,
}

type StoredGone<'a> = Option<(u64, Option<&'a str>, Option<i64>)>;

/// A [`BINARY_UNSYNCED`] row: the fingerprint, then [`Unsynced`]'s fields.
#[derive(Encode, BorrowDecode)]
struct StoredUnsynced<'a> {
    fingerprint: StoredFingerprint<'a, StoredGone<'a>>,
    local_changes: u64,
    remote_changes: u64,
    exists: bool,
    last_activity: Option<i64>,
}

/// A `captures` row (tagged [`BINARY`]).
#[derive(Encode, BorrowDecode)]
struct StoredCaptured<'a> {
    token: &'a str,
    session: &'a str,
    events: u64,
}

/// A shape as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shaped {
    /// One `shapes` row: a session of up to [`PART_REQUESTS`] requests, or one whose sources
    /// or mark do not line up with its requests.
    Whole(Vec<u8>),
    /// A head and the requests, [`PART_REQUESTS`] to a part, as `shape_parts` rows (the head
    /// after the parts): a sync that changes one request of a long session, or adds one,
    /// rewrites the head and one part, in one page, instead of every request's digests (a
    /// whole shape of a few hundred requests spills into overflow pages: half of what a 1%
    /// round wrote).
    Parted(Vec<u8>, Vec<Vec<u8>>),
}

/// How a shape is stored: in parts when it has more than [`PART_REQUESTS`] requests.
pub fn shaped(held: &Held) -> Shaped {
    let n = held.shape.requests.len();
    let mark_requests = held.log.as_ref().map_or(0, |m| m.requests.len());
    if n <= PART_REQUESTS || held.sources.len() != n || (mark_requests != 0 && mark_requests != n) {
        return Shaped::Whole(encode_held(held));
    }
    let mark = held.log.as_ref().filter(|m| !m.requests.is_empty());
    let parts: Vec<Vec<u8>> = (0..n)
        .step_by(PART_REQUESTS)
        .map(|start| {
            let end = (start + PART_REQUESTS).min(n);
            let part: StoredPart = (start..end)
                .map(|i| {
                    let (id, digest) = &held.shape.requests[i];
                    (id.as_str(), *digest, held.sources[i], mark.map(|m| m.requests[i].to_be_bytes()))
                })
                .collect();
            bincode::encode_to_vec(&part, config()).expect("encoding to a Vec")
        })
        .collect();
    let fields = serde_json::to_string(&held.shape.fields).expect("JSON values serialize");
    let header = StoredHeader {
        last_seq: held.last_seq,
        local_seq: held.local_seq,
        remote_seq: held.remote_seq,
        fields: &fields,
        requests: n as u64,
        last_source: held.sources.last().copied(),
        log: held.log.as_ref().map(|m| (m.len, m.digest.to_be_bytes(), mark.is_some())),
        parts: parts_digest(&parts),
    };
    Shaped::Parted(framed_as(PARTED, &header), parts)
}

fn parts_digest(parts: &[impl AsRef<[u8]>]) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        hasher.update(p.as_ref());
    }
    hasher.digest()
}

/// Whether a shape's row is the head of one kept in parts (read them, and [`decode_parted`]).
pub fn is_parted(row: &[u8]) -> bool {
    row.first() == Some(&PARTED)
}

/// A shape's head and its parts, in order, read back; `None` for any that is damaged, left
/// from another write, or not understood (a cache miss).
pub fn decode_parted(row: &[u8], parts: &[Vec<u8>]) -> Option<Held> {
    let header: StoredHeader = whole(parted_body(row)?)?;
    let n = usize::try_from(header.requests).ok()?;
    if parts.len() != n.div_ceil(PART_REQUESTS) || parts_digest(parts) != header.parts {
        return None;
    }
    let with_marks = header.log.is_some_and(|(_, _, requests)| requests);
    let mut requests = Vec::with_capacity(n);
    let mut sources = Vec::with_capacity(n);
    let mut marks = Vec::with_capacity(if with_marks { n } else { 0 });
    for (k, part) in parts.iter().enumerate() {
        let part: StoredPart = whole(part)?;
        if part.len() != PART_REQUESTS.min(n - k * PART_REQUESTS) {
            return None;
        }
        for (id, digest, source, mark) in part {
            requests.push((id.to_owned(), digest));
            sources.push(source);
            match (with_marks, mark) {
                (true, Some(m)) => marks.push(u128::from_be_bytes(m)),
                (false, None) => {}
                _ => return None,
            }
        }
    }
    if sources.last().copied() != header.last_source {
        return None;
    }
    Some(Held {
        last_seq: header.last_seq,
        local_seq: header.local_seq,
        remote_seq: header.remote_seq,
        shape: Shape { fields: serde_json::from_str(header.fields).ok()?, requests },
        sources,
        log: header.log.map(|(len, digest, _)| LogMark { len, digest: u128::from_be_bytes(digest), requests: marks }),
    })
}

/// The body of a shape's head whose checksum holds.
fn parted_body(bytes: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = bytes.split_first()?;
    let (sum, body) = rest.split_first_chunk::<8>()?;
    (tag == PARTED && u64::from_le_bytes(*sum) == xxh3_64(body)).then_some(body)
}

/// A `shapes` row's bytes, whole.
pub fn encode_held(held: &Held) -> Vec<u8> {
    let requests = held.shape.requests.iter().map(|(id, d)| (id.as_str(), *d)).collect();
    let log = held.log.as_ref().map(|m| StoredMark {
        len: m.len,
        digest: m.digest.to_be_bytes(),
        requests: m.requests.iter().map(|d| d.to_be_bytes()).collect(),
    });
    let fields = serde_json::to_string(&held.shape.fields).expect("JSON values serialize");
    let stored = StoredHeld {
        last_seq: held.last_seq,
        local_seq: held.local_seq,
        remote_seq: held.remote_seq,
        fields: &fields,
        requests,
        sources: held.sources.as_slice(),
        log,
    };
    framed(&stored)
}

/// A `shapes` row read back; `None` for one damaged or not understood (a cache miss).
pub fn decode_held(bytes: &[u8]) -> Option<Held> {
    let Some(body) = body(bytes) else { return serde_json::from_slice::<JsonHeld>(bytes).ok()?.held() };
    let (stored, used): (StoredHeld<Sources>, usize) = bincode::borrow_decode_from_slice(body, config()).ok()?;
    if used != body.len() {
        return None;
    }
    let fields: Map<String, Value> = serde_json::from_str(stored.fields).ok()?;
    let requests = stored.requests.into_iter().map(|(id, d)| (id.to_owned(), d)).collect();
    let log = stored.log.map(|m| LogMark {
        len: m.len,
        digest: u128::from_be_bytes(m.digest),
        requests: m.requests.iter().map(|d| u128::from_be_bytes(*d)).collect(),
    });
    Some(Held {
        last_seq: stored.last_seq,
        local_seq: stored.local_seq,
        remote_seq: stored.remote_seq,
        shape: Shape { fields, requests },
        sources: stored.sources,
        log,
    })
}

/// A `shapes` row as versions before the binary form wrote it: JSON, each digest as hex.
#[derive(serde::Deserialize)]
struct JsonHeld {
    last_seq: u64,
    local_seq: u64,
    remote_seq: u64,
    shape: JsonShape,
    #[serde(default)]
    sources: Sources,
    #[serde(default)]
    log: Option<JsonMark>,
}

#[derive(serde::Deserialize)]
struct JsonShape {
    fields: Map<String, Value>,
    requests: Vec<(String, String)>,
}

#[derive(serde::Deserialize)]
struct JsonMark {
    len: u64,
    digest: String,
    #[serde(default)]
    requests: Vec<String>,
}

impl JsonHeld {
    /// The row's shape; `None` when a request's digest is not a SHA-256's hex. A mark whose
    /// digest is not an XXH3-128's (the SHA-256 of the bytes, in versions before XXH3) is
    /// dropped, so the file is read whole once; its requests' digests, where not all are
    /// XXH3-128's, are dropped too, so that each request is parsed.
    fn held(self) -> Option<Held> {
        let requests = self.shape.requests.into_iter().map(|(id, d)| Some((id, unhex(&d)?))).collect::<Option<_>>()?;
        let log = self.log.and_then(|m| {
            let digest = u128::from_be_bytes(unhex(&m.digest)?);
            let requests = m.requests.iter().map(|d| unhex(d).map(u128::from_be_bytes)).collect::<Option<_>>();
            Some(LogMark { len: m.len, digest, requests: requests.unwrap_or_default() })
        });
        Some(Held {
            last_seq: self.last_seq,
            local_seq: self.local_seq,
            remote_seq: self.remote_seq,
            shape: Shape { fields: self.shape.fields, requests },
            sources: self.sources,
            log,
        })
    }
}

/// What a `shapes` row says of a session's fields alone (see [`HeldFields`]); `None` as for
/// [`decode_held`]. A listing (`status`) asks it of every session, and turning each request's
/// digest into text was most of the time [`decode_held`] took there.
pub fn decode_held_fields(bytes: &[u8]) -> Option<HeldFields> {
    if let Some(body) = parted_body(bytes) {
        let header: StoredHeader = whole(body)?;
        let fields: Map<String, Value> = serde_json::from_str(header.fields).ok()?;
        return Some(HeldFields { last_seq: header.last_seq, fields, last_source: header.last_source });
    }
    let Some(body) = body(bytes) else {
        let held = serde_json::from_slice::<JsonHeld>(bytes).ok()?.held()?;
        let fields = held.shape.fields;
        return Some(HeldFields { last_seq: held.last_seq, fields, last_source: held.sources.last().copied() });
    };
    let stored: StoredHeld<Sources> = whole(body)?;
    let fields: Map<String, Value> = serde_json::from_str(stored.fields).ok()?;
    Some(HeldFields { last_seq: stored.last_seq, fields, last_source: stored.sources.last().copied() })
}

/// A `fingerprints` row's bytes.
pub fn encode_fingerprint(fp: &Fingerprint) -> Vec<u8> {
    let fingerprint = StoredFingerprint {
        token: &fp.token,
        events: fp.events,
        title: fp.title.as_deref(),
        settled: fp.settled.as_ref().map(|s| (s.exists, s.title.as_deref(), s.path.as_deref(), stored_gone(s))),
    };
    match fp.unsynced {
        None => framed_as(BINARY_GONE, &fingerprint),
        Some(Unsynced { local_changes, remote_changes, exists, last_activity }) => {
            let stored = StoredUnsynced { fingerprint, local_changes, remote_changes, exists, last_activity };
            framed_as(BINARY_UNSYNCED, &stored)
        }
    }
}

fn stored_gone(s: &Settled) -> StoredGone<'_> {
    s.gone.as_ref().map(|g| (g.deleted_seq, g.title.as_deref(), g.last_activity))
}

/// A `fingerprints` row read back; `None` for one damaged or not understood (a cache miss).
pub fn decode_fingerprint(bytes: &[u8]) -> Option<Fingerprint> {
    let Some((tag, body)) = tagged_body(bytes) else { return serde_json::from_slice(bytes).ok() };
    let (stored, unsynced): (StoredFingerprint<StoredGone>, _) = match tag {
        BINARY_GONE => (whole(body)?, None),
        BINARY_UNSYNCED => {
            let StoredUnsynced { fingerprint, local_changes, remote_changes, exists, last_activity } = whole(body)?;
            (fingerprint, Some(Unsynced { local_changes, remote_changes, exists, last_activity }))
        }
        _ => {
            let old: StoredFingerprint<()> = whole(body)?;
            let settled = old.settled.map(|(exists, title, path, ())| (exists, title, path, None));
            (StoredFingerprint { token: old.token, events: old.events, title: old.title, settled }, None)
        }
    };
    Some(Fingerprint {
        token: stored.token.to_owned(),
        events: stored.events,
        title: stored.title.map(str::to_owned),
        settled: stored.settled.map(|(exists, title, path, gone)| Settled {
            exists,
            title: title.map(str::to_owned),
            path: path.map(str::to_owned),
            gone: gone.map(|(deleted_seq, title, last_activity)| Gone {
                deleted_seq,
                title: title.map(str::to_owned),
                last_activity,
            }),
        }),
        unsynced,
    })
}

/// A `captures` row (see [`Captured`]).
pub fn encode_captured(c: &Captured) -> Vec<u8> {
    framed(&StoredCaptured { token: &c.token, session: &c.session_id, events: c.events })
}

/// A `captures` row read back; `None` for one damaged or not understood (a cache miss).
pub fn decode_captured(bytes: &[u8]) -> Option<Captured> {
    let stored: StoredCaptured = whole(body(bytes)?)?;
    Some(Captured { token: stored.token.to_owned(), session_id: stored.session.to_owned(), events: stored.events })
}

/// A row's body decoded, all of it.
fn whole<'a, T: BorrowDecode<'a, ()>>(body: &'a [u8]) -> Option<T> {
    let (stored, used): (T, usize) = bincode::borrow_decode_from_slice(body, config()).ok()?;
    (used == body.len()).then_some(stored)
}

/// Tag ‖ XXH3-64 of the body (little-endian) ‖ body.
fn framed(stored: &impl Encode) -> Vec<u8> {
    framed_as(BINARY, stored)
}

fn framed_as(tag: u8, stored: &impl Encode) -> Vec<u8> {
    let body = bincode::encode_to_vec(stored, config()).expect("encoding to a Vec");
    let mut out = Vec::with_capacity(9 + body.len());
    out.push(tag);
    out.extend_from_slice(&xxh3_64(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The body of a binary row whose checksum holds; `None` for anything else (a JSON row, or a
/// damaged one, which JSON then refuses too).
fn body(bytes: &[u8]) -> Option<&[u8]> {
    tagged_body(bytes).filter(|(tag, _)| *tag == BINARY).map(|(_, body)| body)
}

/// [`body`] of a row with either binary tag, and the tag.
fn tagged_body(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    let (sum, body) = rest.split_first_chunk::<8>()?;
    (matches!(tag, BINARY | BINARY_GONE | BINARY_UNSYNCED) && u64::from_le_bytes(*sum) == xxh3_64(body))
        .then_some((tag, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::hex;
    use proptest::prelude::*;
    use serde_json::json;

    /// A `shapes` row as versions before the binary form wrote it, its digests' hex in
    /// upper case where `upper` says.
    fn json_row(held: &Held, upper: bool) -> Vec<u8> {
        let hex = |b: &[u8]| if upper { hex(b).to_uppercase() } else { hex(b) };
        let mark = held.log.as_ref().map(|m| {
            let requests: Vec<String> = m.requests.iter().map(|d| hex(&d.to_be_bytes())).collect();
            json!({"len": m.len, "digest": hex(&m.digest.to_be_bytes()), "requests": requests})
        });
        let requests: Vec<(&str, String)> = held.shape.requests.iter().map(|(id, d)| (id.as_str(), hex(d))).collect();
        serde_json::to_vec(&json!({
            "last_seq": held.last_seq,
            "local_seq": held.local_seq,
            "remote_seq": held.remote_seq,
            "shape": {"fields": held.shape.fields, "requests": requests},
            "sources": held.sources,
            "log": mark,
        }))
        .unwrap()
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[1-9][0-9]{0,29}(\\.[0-9]{1,5})?".prop_map(|n| serde_json::from_str(&n).unwrap()),
            ".{0,20}".prop_map(Value::String),
        ]
    }

    fn held() -> impl Strategy<Value = Held> {
        let fields = proptest::collection::vec((".{0,8}", value()), 0..5).prop_map(|kv| kv.into_iter().collect());
        let requests = proptest::collection::vec((".{0,24}", any::<[u8; 32]>()), 0..6);
        let sources = proptest::collection::vec((any::<u64>(), any::<Option<u32>>()), 0..6);
        let log = proptest::option::of((any::<u64>(), any::<u128>(), proptest::collection::vec(any::<u128>(), 0..6)));
        (any::<[u64; 3]>(), fields, requests, sources, log).prop_map(|(seqs, fields, requests, sources, log)| Held {
            last_seq: seqs[0],
            local_seq: seqs[1],
            remote_seq: seqs[2],
            shape: Shape { fields, requests },
            sources,
            log: log.map(|(len, digest, requests)| LogMark { len, digest, requests }),
        })
    }

    /// A shape as a sync keeps one: sources beside every request, and a mark with every
    /// request's text digest or none; long enough, often, to be kept in parts.
    fn aligned_held() -> impl Strategy<Value = Held> {
        (held(), 0..3 * PART_REQUESTS + 3, any::<bool>(), any::<u64>()).prop_map(|(mut held, n, marks, seed)| {
            let mut next = seed;
            let mut step = || {
                next = next.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                next
            };
            held.shape.requests = (0..n).map(|i| (format!("request_{i}"), [step() as u8; 32])).collect();
            held.sources = (0..n).map(|_| (step() % 1000, (step() % 3 == 0).then_some(step() as u32))).collect();
            if let Some(m) = held.log.as_mut() {
                m.requests = if marks { (0..n).map(|_| u128::from(step())).collect() } else { Vec::new() };
            }
            held
        })
    }

    fn read_back(shaped: &Shaped) -> Option<Held> {
        match shaped {
            Shaped::Whole(row) => decode_held(row),
            Shaped::Parted(row, parts) => decode_parted(row, parts),
        }
    }

    fn fingerprint() -> impl Strategy<Value = Fingerprint> {
        let gone = proptest::option::of((any::<u64>(), proptest::option::of(".{0,10}"), any::<Option<i64>>()))
            .prop_map(|g| g.map(|(deleted_seq, title, last_activity)| Gone { deleted_seq, title, last_activity }));
        let settled = proptest::option::of((
            any::<bool>(),
            proptest::option::of(".{0,10}"),
            proptest::option::of(".{0,10}"),
            gone,
        ));
        let unsynced = proptest::option::of((any::<u64>(), any::<u64>(), any::<bool>(), any::<Option<i64>>()))
            .prop_map(|u| {
                u.map(|(local_changes, remote_changes, exists, last_activity)| Unsynced {
                    local_changes,
                    remote_changes,
                    exists,
                    last_activity,
                })
            });
        (".{0,40}", any::<u64>(), proptest::option::of(".{0,20}"), settled, unsynced).prop_map(
            |(token, events, title, settled, unsynced)| Fingerprint {
                token,
                events,
                title,
                settled: settled.map(|(exists, title, path, gone)| Settled { exists, title, path, gone }),
                unsynced,
            },
        )
    }

    proptest! {
        #[test]
        fn a_shape_reads_back_as_it_was_written(held in held()) {
            prop_assert_eq!(decode_held(&encode_held(&held)), Some(held));
        }

        /// What earlier versions wrote is read as they read it, whatever the case of its hex.
        #[test]
        fn a_json_shape_row_is_still_read(held in held(), upper: bool) {
            prop_assert_eq!(decode_held(&json_row(&held, upper)), Some(held));
        }

        /// A row's fields read alone are the fields of the shape it holds, from either form.
        #[test]
        fn a_shapes_fields_read_alone_are_its_fields(held in held()) {
            let fields = HeldFields {
                last_seq: held.last_seq,
                fields: held.shape.fields.clone(),
                last_source: held.sources.last().copied(),
            };
            prop_assert_eq!(decode_held_fields(&encode_held(&held)), Some(fields.clone()));
            prop_assert_eq!(decode_held_fields(&json_row(&held, false)), Some(fields));
        }

        /// A shape reads back as it was stored, whole or in parts, and its fields alone from
        /// its row alone; one of more than [`PART_REQUESTS`] requests is kept in parts.
        #[test]
        fn a_shape_reads_back_whole_or_in_parts(held in aligned_held()) {
            let stored = shaped(&held);
            prop_assert_eq!(matches!(stored, Shaped::Parted(..)), held.shape.requests.len() > PART_REQUESTS);
            prop_assert_eq!(read_back(&stored), Some(held.clone()));
            let row = match &stored { Shaped::Whole(row) | Shaped::Parted(row, _) => row };
            let fields = HeldFields {
                last_seq: held.last_seq,
                fields: held.shape.fields.clone(),
                last_source: held.sources.last().copied(),
            };
            prop_assert_eq!(decode_held_fields(row), Some(fields));
            // A shape whose sources or mark do not line up with its requests is kept whole.
            let mut odd = held.clone();
            odd.sources.push((1, None));
            prop_assert!(matches!(shaped(&odd), Shaped::Whole(_)));
            prop_assert_eq!(read_back(&shaped(&odd)), Some(odd));
        }

        /// Parts that are not the row's own (one missing, one more, two swapped, one from
        /// another write, a byte changed) are a miss, never another shape.
        #[test]
        fn parts_that_are_not_the_rows_own_are_a_miss(
            held in aligned_held(),
            other in aligned_held(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let Shaped::Parted(row, parts) = shaped(&held) else { return Ok(()) };
            let mut missing = parts.clone();
            missing.pop();
            prop_assert_eq!(decode_parted(&row, &missing), None);
            let mut more = parts.clone();
            more.push(parts[0].clone());
            prop_assert_eq!(decode_parted(&row, &more), None);
            let mut swapped = parts.clone();
            swapped.swap(0, 1);
            prop_assume!(swapped != parts);
            prop_assert_eq!(decode_parted(&row, &swapped), None);
            if let Shaped::Parted(_, theirs) = shaped(&other) {
                let mut mixed = parts.clone();
                mixed[0] = theirs[0].clone();
                prop_assume!(mixed != parts);
                prop_assert_eq!(decode_parted(&row, &mixed), None);
            }
            let mut damaged = parts.clone();
            let k = at.index(damaged.len());
            let i = at.index(damaged[k].len());
            damaged[k][i] ^= flip;
            prop_assert_eq!(decode_parted(&row, &damaged), None);
            let mut row = row;
            let i = at.index(row.len());
            row[i] ^= flip;
            prop_assert_eq!(decode_parted(&row, &parts), None);
        }

        #[test]
        fn a_fingerprint_reads_back_as_it_was_written(fp in fingerprint()) {
            let row = encode_fingerprint(&fp);
            // Only a never-synced session's note takes the new tag: an earlier chasm reads
            // every other row as before.
            prop_assert_eq!(row[0] == BINARY_GONE, fp.unsynced.is_none());
            prop_assert_eq!(decode_fingerprint(&row), Some(fp.clone()));
            prop_assert_eq!(decode_fingerprint(&serde_json::to_vec(&fp).unwrap()), Some(fp));
        }

        /// What `capture` noted of a file reads back as written; any change to its bytes is a
        /// miss.
        #[test]
        fn a_capture_note_reads_back_and_a_damaged_one_is_a_miss(
            token in ".{0,40}",
            session_id in ".{0,50}",
            events in any::<u64>(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let note = Captured { token, session_id, events };
            let mut row = encode_captured(&note);
            prop_assert_eq!(decode_captured(&row), Some(note));
            let at = at.index(row.len());
            row[at] ^= flip;
            prop_assert_eq!(decode_captured(&row), None);
        }

        /// A row written before deleted sessions' last fields were kept reads as it did.
        #[test]
        fn a_fingerprint_row_without_gone_is_still_read(mut fp in fingerprint()) {
            if let Some(s) = fp.settled.as_mut() {
                s.gone = None;
            }
            fp.unsynced = None;
            let old = framed(&StoredFingerprint {
                token: &fp.token,
                events: fp.events,
                title: fp.title.as_deref(),
                settled: fp.settled.as_ref().map(|s| (s.exists, s.title.as_deref(), s.path.as_deref(), ())),
            });
            prop_assert_eq!(decode_fingerprint(&old), Some(fp));
        }

        /// Any change to a row's bytes is a cache miss, not another shape.
        #[test]
        fn a_damaged_row_is_a_miss(held in held(), at in any::<prop::sample::Index>(), flip in 1u8..) {
            let mut bytes = encode_held(&held);
            prop_assume!(bytes[0] == BINARY);
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            prop_assert_eq!(decode_held(&bytes), None);
            prop_assert_eq!(decode_held_fields(&bytes), None);
        }

        /// Any bytes, and any body under a checksum that holds (which bincode then reads): a
        /// row or a miss, never a panic or a vast allocation.
        #[test]
        fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_held(&bytes);
            let _ = decode_fingerprint(&bytes);
            let _ = decode_captured(&bytes);
            let mut framed = vec![BINARY];
            framed.extend_from_slice(&xxh3_64(&bytes).to_le_bytes());
            framed.extend_from_slice(&bytes);
            let _ = decode_held(&framed);
            let _ = decode_held_fields(&framed);
            let _ = decode_fingerprint(&framed);
            let _ = decode_captured(&framed);
            framed[0] = BINARY_GONE;
            let _ = decode_fingerprint(&framed);
        }

        /// A head that holds (its checksum, and its parts' digest over the parts given) over
        /// parts of any bytes, claiming any number of requests: a shape or a miss, never a
        /// panic or an allocation the parts do not pay for.
        #[test]
        fn any_parts_under_a_head_that_holds_decode_or_are_refused(
            parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..120), 0..4),
            requests in prop_oneof![0u64..70, any::<u64>()],
            log in proptest::option::of((any::<u64>(), any::<[u8; 16]>(), any::<bool>())),
        ) {
            let head = framed_as(PARTED, &StoredHeader {
                last_seq: 1,
                local_seq: 0,
                remote_seq: 1,
                fields: "{}",
                requests,
                last_source: None,
                log,
                parts: parts_digest(&parts),
            });
            let _ = decode_parted(&head, &parts);
            prop_assert!(decode_held_fields(&head).is_some());
        }
    }

    #[test]
    fn the_usual_shape_takes_little_more_than_half_its_json() {
        let held = Held {
            last_seq: 38_700,
            local_seq: 38_600,
            remote_seq: 38_700,
            shape: Shape {
                fields: serde_json::from_str(r#"{"version":3,"sessionId":"0035d2e7","requests":null}"#).unwrap(),
                requests: (0..300).map(|i| (format!("request_{i:08x}-{i:04}"), [i as u8; 32])).collect(),
            },
            sources: (0..300).map(|i| (38_000 + i, None)).collect(),
            log: Some(LogMark { len: 974_190, digest: 7, requests: (0..300).collect() }),
        };
        let (binary, json) = (encode_held(&held), json_row(&held, false));
        assert_eq!(binary[0], BINARY);
        assert!(binary.len() * 100 < json.len() * 55, "{} bytes against JSON's {}", binary.len(), json.len());
        assert_eq!(decode_held(&binary), Some(held));
    }

    /// A JSON row from before XXH3 marks holds the SHA-256 of the file's bytes: its mark is
    /// left out (the file is read whole once), the rest read as it is. A mark whose requests'
    /// digests are not all XXH3-128's keeps none (each request is parsed), and a request
    /// digest that is not a SHA-256's makes the row a miss.
    #[test]
    fn json_rows_whose_digests_are_of_other_widths() {
        let held = Held {
            last_seq: 9,
            local_seq: 8,
            remote_seq: 9,
            shape: Shape { fields: Map::new(), requests: vec![("r1".into(), [1; 32]), ("r2".into(), [2; 32])] },
            sources: vec![(3, None), (9, Some(0))],
            log: Some(LogMark { len: 40, digest: 5, requests: vec![1, 2] }),
        };
        let row = |edit: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_slice(&json_row(&held, false)).unwrap();
            edit(&mut v);
            decode_held(&serde_json::to_vec(&v).unwrap())
        };
        let sha256_mark = row(&|v| v["log"]["digest"] = json!(hex(&[5; 32])));
        assert_eq!(sha256_mark, Some(Held { log: None, ..held.clone() }));
        let short_requests = row(&|v| v["log"]["requests"][1] = json!("02"));
        let bytes_only = held.log.as_ref().map(LogMark::bytes_only);
        assert_eq!(short_requests, Some(Held { log: bytes_only, ..held.clone() }));
        assert_eq!(row(&|v| v["shape"]["requests"][0][1] = json!(hex(&[1; 16]))), None);
        assert_eq!(row(&|v| v["shape"]["requests"][0][1] = json!("g".repeat(64))), None);
        assert_eq!(row(&|_| ()), Some(held));
    }
}
