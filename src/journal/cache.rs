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
//! against damage, not against anyone). JSON rows left by earlier versions are still read, and
//! a row whose digests are not the usual hex (a mark from before XXH3) is still written as
//! JSON, so that every value round-trips exactly.

use bincode::{BorrowDecode, Encode};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_64;

use super::{Fingerprint, Gone, Held, HeldFields, Settled};
use crate::provider::LogMark;
use crate::session::{hex, unhex};
use crate::shape::Shape;

/// The first byte of a binary row (a JSON row's is `{`).
const BINARY: u8 = 1;
/// The first byte of a `fingerprints` row that says what a deleted session last held (see
/// [`Settled::gone`]); rows tagged [`BINARY`] are read as before.
const BINARY_GONE: u8 = 2;

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

/// A `shapes` row's bytes.
pub fn encode_held(held: &Held) -> Vec<u8> {
    binary_held(held).unwrap_or_else(|| serde_json::to_vec(held).expect("a shape serializes"))
}

fn binary_held(held: &Held) -> Option<Vec<u8>> {
    let requests =
        held.shape.requests.iter().map(|(id, d)| Some((id.as_str(), digest_bytes(d)?))).collect::<Option<_>>()?;
    let log = match &held.log {
        None => None,
        Some(m) => Some(StoredMark {
            len: m.len,
            digest: digest_bytes(&m.digest)?,
            requests: m.requests.iter().map(|d| digest_bytes(d)).collect::<Option<_>>()?,
        }),
    };
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
    Some(framed(&stored))
}

/// A `shapes` row read back; `None` for one damaged or not understood (a cache miss).
pub fn decode_held(bytes: &[u8]) -> Option<Held> {
    let Some(body) = body(bytes) else { return serde_json::from_slice(bytes).ok() };
    let (stored, used): (StoredHeld<Sources>, usize) = bincode::borrow_decode_from_slice(body, config()).ok()?;
    if used != body.len() {
        return None;
    }
    let fields: Map<String, Value> = serde_json::from_str(stored.fields).ok()?;
    let requests = stored.requests.into_iter().map(|(id, d)| (id.to_owned(), hex(&d))).collect();
    let log = stored.log.map(|m| LogMark {
        len: m.len,
        digest: hex(&m.digest),
        requests: m.requests.iter().map(|d| hex(d)).collect(),
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

/// What a `shapes` row says of a session's fields alone (see [`HeldFields`]); `None` as for
/// [`decode_held`]. A listing (`status`) asks it of every session, and turning each request's
/// digest into text was most of the time [`decode_held`] took there.
pub fn decode_held_fields(bytes: &[u8]) -> Option<HeldFields> {
    let Some(body) = body(bytes) else {
        let held: Held = serde_json::from_slice(bytes).ok()?;
        let fields = held.shape.fields;
        return Some(HeldFields { last_seq: held.last_seq, fields, last_source: held.sources.last().copied() });
    };
    let stored: StoredHeld<Sources> = whole(body)?;
    let fields: Map<String, Value> = serde_json::from_str(stored.fields).ok()?;
    Some(HeldFields { last_seq: stored.last_seq, fields, last_source: stored.sources.last().copied() })
}

/// A `fingerprints` row's bytes.
pub fn encode_fingerprint(fp: &Fingerprint) -> Vec<u8> {
    framed_as(
        BINARY_GONE,
        &StoredFingerprint {
            token: &fp.token,
            events: fp.events,
            title: fp.title.as_deref(),
            settled: fp.settled.as_ref().map(|s| (s.exists, s.title.as_deref(), s.path.as_deref(), stored_gone(s))),
        },
    )
}

fn stored_gone(s: &Settled) -> StoredGone<'_> {
    s.gone.as_ref().map(|g| (g.deleted_seq, g.title.as_deref(), g.last_activity))
}

/// A `fingerprints` row read back; `None` for one damaged or not understood (a cache miss).
pub fn decode_fingerprint(bytes: &[u8]) -> Option<Fingerprint> {
    let Some((tag, body)) = tagged_body(bytes) else { return serde_json::from_slice(bytes).ok() };
    let stored: StoredFingerprint<StoredGone> = match tag {
        BINARY_GONE => whole(body)?,
        _ => {
            let old: StoredFingerprint<()> = whole(body)?;
            let settled = old.settled.map(|(exists, title, path, ())| (exists, title, path, None));
            StoredFingerprint { token: old.token, events: old.events, title: old.title, settled }
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
    })
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
    (matches!(tag, BINARY | BINARY_GONE) && u64::from_le_bytes(*sum) == xxh3_64(body)).then_some((tag, body))
}

/// The bytes of a digest written as [`hex`] writes them (lowercase, the full width): the only
/// text a binary row may stand for, so that it reads back as the same string.
fn digest_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    unhex(s).filter(|_| !s.bytes().any(|b| b.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex_of(len: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<u8>(), len).prop_map(|b| hex(&b))
    }

    /// A digest as a row may hold one: mostly the usual hex, sometimes anything else.
    fn digest(len: usize) -> impl Strategy<Value = String> {
        prop_oneof![8 => hex_of(len), 1 => ".{0,70}", 1 => hex_of(len).prop_map(|h| h.to_uppercase())]
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
        let requests = proptest::collection::vec((".{0,24}", digest(32)), 0..6);
        let sources = proptest::collection::vec((any::<u64>(), any::<Option<u32>>()), 0..6);
        let log = proptest::option::of((any::<u64>(), digest(16), proptest::collection::vec(digest(16), 0..6)));
        (any::<[u64; 3]>(), fields, requests, sources, log).prop_map(|(seqs, fields, requests, sources, log)| Held {
            last_seq: seqs[0],
            local_seq: seqs[1],
            remote_seq: seqs[2],
            shape: Shape { fields, requests },
            sources,
            log: log.map(|(len, digest, requests)| LogMark { len, digest, requests }),
        })
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
        (".{0,40}", any::<u64>(), proptest::option::of(".{0,20}"), settled).prop_map(
            |(token, events, title, settled)| Fingerprint {
                token,
                events,
                title,
                settled: settled.map(|(exists, title, path, gone)| Settled { exists, title, path, gone }),
            },
        )
    }

    proptest! {
        #[test]
        fn a_shape_reads_back_as_it_was_written(held in held()) {
            prop_assert_eq!(decode_held(&encode_held(&held)), Some(held));
        }

        /// What earlier versions wrote is read as they read it.
        #[test]
        fn a_json_shape_row_is_still_read(held in held()) {
            prop_assert_eq!(decode_held(&serde_json::to_vec(&held).unwrap()), Some(held));
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
            prop_assert_eq!(decode_held_fields(&serde_json::to_vec(&held).unwrap()), Some(fields));
        }

        #[test]
        fn a_fingerprint_reads_back_as_it_was_written(fp in fingerprint()) {
            prop_assert_eq!(decode_fingerprint(&encode_fingerprint(&fp)), Some(fp.clone()));
            prop_assert_eq!(decode_fingerprint(&serde_json::to_vec(&fp).unwrap()), Some(fp));
        }

        /// A row written before deleted sessions' last fields were kept reads as it did.
        #[test]
        fn a_fingerprint_row_without_gone_is_still_read(mut fp in fingerprint()) {
            if let Some(s) = fp.settled.as_mut() {
                s.gone = None;
            }
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
            let mut framed = vec![BINARY];
            framed.extend_from_slice(&xxh3_64(&bytes).to_le_bytes());
            framed.extend_from_slice(&bytes);
            let _ = decode_held(&framed);
            let _ = decode_held_fields(&framed);
            let _ = decode_fingerprint(&framed);
            framed[0] = BINARY_GONE;
            let _ = decode_fingerprint(&framed);
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
                requests: (0..300).map(|i| (format!("request_{i:08x}-{i:04}"), hex(&[i as u8; 32]))).collect(),
            },
            sources: (0..300).map(|i| (38_000 + i, None)).collect(),
            log: Some(LogMark {
                len: 974_190,
                digest: hex(&[7; 16]),
                requests: (0..300).map(|i| hex(&[i as u8; 16])).collect(),
            }),
        };
        let (binary, json) = (encode_held(&held), serde_json::to_vec(&held).unwrap());
        assert_eq!(binary[0], BINARY);
        assert!(binary.len() * 100 < json.len() * 55, "{} bytes against JSON's {}", binary.len(), json.len());
        assert_eq!(decode_held(&binary), Some(held));
    }

    #[test]
    fn only_lowercase_hex_of_the_full_width_is_taken_as_bytes() {
        assert_eq!(digest_bytes::<2>("0aff"), Some([0x0a, 0xff]));
        for s in ["0AFF", "0af", "0aff0", "0agf", "+aff", "é0a"] {
            assert_eq!(digest_bytes::<2>(s), None, "{s}");
        }
    }
}
