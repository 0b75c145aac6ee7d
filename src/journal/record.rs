//! One journal record ([`SyncChange`]), its binary codec and its place in the hash chain.
//!
//! The stored bytes of a record are `C ‖ prev_hash ‖ hash` where `C` (the canonical record
//! bytes) is a version byte followed by the bincode encoding (fixed-width little-endian
//! integers) of every other field, and `hash = SHA-256(prev_hash ‖ C)`. The JSON payload is
//! kept as bytes inside `C`: bincode cannot decode a `serde_json::Value`, and the bytes are what
//! the hash covers. `journal-format.md` describes every byte.

use std::fmt;

use bincode::{BorrowDecode, Encode};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The version byte that starts the canonical bytes of every record this chasm writes.
pub const RECORD_VERSION: u8 = 1;

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// What happened to the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, BorrowDecode)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    /// A sync checkpoint: both sides reflect the journal up to a point.
    Merge,
}

/// What kind of thing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, BorrowDecode)]
pub enum EntityType {
    /// The session as a whole (created, deleted, replaced).
    Session,
    /// One request/response turn; `entity_id` is its request id.
    Message,
    /// One top-level field of the session; `entity_id` is the field name.
    Metadata,
    /// A chasm tag; `entity_id` is the tag.
    Tag,
}

/// Which side a change was made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, BorrowDecode)]
pub enum Origin {
    /// Made through chasm.
    Local,
    /// Observed in the provider's own storage.
    Remote,
}

macro_rules! names {
    ($ty:ty { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every value, in encoding order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),*];
            /// The lower-case name used on the command line and in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),* }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($name => Ok(<$ty>::$variant),)* _ => Err(format!("unknown value {s:?}")) }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
names!(ChangeType { Create = "create", Update = "update", Delete = "delete", Merge = "merge" });
names!(EntityType { Session = "session", Message = "message", Metadata = "metadata", Tag = "tag" });
names!(Origin { Local = "local", Remote = "remote" });

/// A change to be appended: everything but the fields the journal assigns.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    pub session_id: String,
    pub change_type: ChangeType,
    pub entity_type: EntityType,
    pub entity_id: String,
    pub timestamp: DateTime<Utc>,
    pub origin: Origin,
    pub provider: String,
    pub payload: Value,
}

/// One appended journal record.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncChange {
    pub id: Uuid,
    /// Dense position in the journal, from 1.
    pub seq: u64,
    pub session_id: String,
    pub change_type: ChangeType,
    pub entity_type: EntityType,
    pub entity_id: String,
    /// When chasm recorded the change, millisecond precision.
    pub timestamp: DateTime<Utc>,
    pub origin: Origin,
    pub provider: String,
    pub payload: Value,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// Why stored bytes are not a record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record too short ({0} bytes)")]
    TooShort(usize),
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    #[error("record body does not decode: {0}")]
    Body(String),
    #[error("{0} stray bytes after the record body")]
    TrailingBytes(usize),
    #[error("payload is not valid JSON: {0}")]
    Payload(String),
    #[error("timestamp {0} ms is out of range")]
    Timestamp(i64),
}

/// The body as encoded: field order here is the on-disk field order.
#[derive(Debug, Clone, PartialEq, Eq, Encode, BorrowDecode)]
pub(crate) struct Body<'a> {
    pub id: [u8; 16],
    pub seq: u64,
    pub session_id: &'a str,
    pub change_type: ChangeType,
    pub entity_type: EntityType,
    pub entity_id: &'a str,
    pub timestamp_ms: i64,
    pub origin: Origin,
    pub provider: &'a str,
    pub payload: &'a [u8],
}

impl Body<'_> {
    /// The length of the stored bytes these fields make: the version byte, the fixed-width
    /// fields and length prefixes (77), the strings, the payload and the two hashes.
    fn stored_len(&self) -> usize {
        77 + self.session_id.len() + self.entity_id.len() + self.provider.len() + self.payload.len() + 64
    }
}

/// A record's fields borrowed from its stored bytes, the payload left as JSON text: what the
/// storage layer delta-encodes records with, without parsing a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fields<'a> {
    pub body: Body<'a>,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl<'a> Fields<'a> {
    /// Splits stored record bytes into their fields (no hash check, no payload parse).
    pub fn of(bytes: &'a [u8]) -> Result<Fields<'a>, DecodeError> {
        let (canonical, prev_hash, hash) = split(bytes)?;
        let (body, used): (Body, usize) = bincode::borrow_decode_from_slice(&canonical[1..], config())
            .map_err(|e| DecodeError::Body(e.to_string()))?;
        if used != canonical.len() - 1 {
            return Err(DecodeError::TrailingBytes(canonical.len() - 1 - used));
        }
        Ok(Fields { body, prev_hash, hash })
    }

    /// The stored bytes these fields make: `C ‖ prev_hash ‖ hash`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.stored_len());
        out.push(RECORD_VERSION);
        bincode::encode_into_std_write(&self.body, &mut out, config()).expect("writing to a Vec cannot fail");
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.hash);
        out
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_fixed_int_encoding().with_little_endian()
}

/// SHA-256(prev_hash ‖ canonical record bytes): the link of the chain.
pub fn chain_hash(prev_hash: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical);
    h.finalize().into()
}

impl SyncChange {
    /// Builds the record that follows `prev_hash` at `seq`, computing its hash. Timestamps are
    /// kept to the millisecond, as stored.
    pub fn seal(change: NewChange, seq: u64, prev_hash: [u8; 32]) -> SyncChange {
        SyncChange::seal_as(Uuid::new_v4(), change, seq, prev_hash)
    }

    /// [`SyncChange::seal`] keeping a record id given elsewhere: an imported record placed in
    /// another chain is the same change, and its id is how an import knows it has it.
    pub fn seal_as(id: Uuid, change: NewChange, seq: u64, prev_hash: [u8; 32]) -> SyncChange {
        SyncChange::seal_stored(id, change, seq, prev_hash).0
    }

    /// [`SyncChange::seal_as`] that also returns the stored bytes, so an append serializes the
    /// payload once rather than once for the hash and again for storage.
    pub fn seal_stored(id: Uuid, change: NewChange, seq: u64, prev_hash: [u8; 32]) -> (SyncChange, Vec<u8>) {
        let mut record = SyncChange { id, prev_hash, ..SyncChange::pending(change, seq) };
        let mut bytes = record.canonical_bytes();
        record.hash = chain_hash(&prev_hash, &bytes);
        bytes.extend_from_slice(&prev_hash);
        bytes.extend_from_slice(&record.hash);
        (record, bytes)
    }

    /// The record a change will be at `seq`, as far as a fold can tell: its timestamp kept to
    /// the millisecond, as stored, but no id and no place in a chain (hashing needs the
    /// payload serialized). What a sync plans with before it appends.
    pub fn pending(change: NewChange, seq: u64) -> SyncChange {
        let timestamp =
            Utc.timestamp_millis_opt(change.timestamp.timestamp_millis()).single().unwrap_or(change.timestamp);
        SyncChange {
            id: Uuid::nil(),
            seq,
            session_id: change.session_id,
            change_type: change.change_type,
            entity_type: change.entity_type,
            entity_id: change.entity_id,
            timestamp,
            origin: change.origin,
            provider: change.provider,
            payload: change.payload,
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    /// `C`: the version byte and the encoded body, what the hash covers after `prev_hash`.
    ///
    /// Allocated once at its final size, room for the two hashes that follow it included: the
    /// payload is written into a buffer kept for the next record (a fresh one grew five times
    /// for a typical request) and copied in.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        thread_local! {
            static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PAYLOAD.with_borrow_mut(|payload| {
            payload.clear();
            serde_json::to_writer(&mut *payload, &self.payload).expect("a JSON value always serializes");
            let body = Body {
                id: *self.id.as_bytes(),
                seq: self.seq,
                session_id: &self.session_id,
                change_type: self.change_type,
                entity_type: self.entity_type,
                entity_id: &self.entity_id,
                timestamp_ms: self.timestamp.timestamp_millis(),
                origin: self.origin,
                provider: &self.provider,
                payload,
            };
            let mut out = Vec::with_capacity(body.stored_len());
            out.push(RECORD_VERSION);
            bincode::encode_into_std_write(body, &mut out, config()).expect("writing to a Vec cannot fail");
            // One very large request is not worth keeping the room for.
            if payload.capacity() > 1 << 20 {
                *payload = Vec::new();
            }
            out
        })
    }

    /// The stored bytes: `C ‖ prev_hash ‖ hash`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.canonical_bytes();
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.hash);
        out
    }

    /// Decodes stored bytes. Does not check the hash: see [`SyncChange::hash_matches`].
    pub fn decode(bytes: &[u8]) -> Result<SyncChange, DecodeError> {
        SyncChange::decode_with(bytes, |_| None)
    }

    /// [`SyncChange::decode`] with the payload `payload` gives in place of the stored one, where
    /// it gives one: for readers that need less than the whole payload and can say so without
    /// parsing it all.
    pub(crate) fn decode_with(
        bytes: &[u8],
        payload: impl FnOnce(&Body) -> Option<Value>,
    ) -> Result<SyncChange, DecodeError> {
        let Fields { body, prev_hash, hash } = Fields::of(bytes)?;
        let payload = match payload(&body) {
            Some(v) => v,
            None => serde_json::from_slice(body.payload).map_err(|e| DecodeError::Payload(e.to_string()))?,
        };
        let timestamp =
            Utc.timestamp_millis_opt(body.timestamp_ms).single().ok_or(DecodeError::Timestamp(body.timestamp_ms))?;
        Ok(SyncChange {
            id: Uuid::from_bytes(body.id),
            seq: body.seq,
            session_id: body.session_id.to_owned(),
            change_type: body.change_type,
            entity_type: body.entity_type,
            entity_id: body.entity_id.to_owned(),
            timestamp,
            origin: body.origin,
            provider: body.provider.to_owned(),
            payload,
            prev_hash,
            hash,
        })
    }

    /// The record with a `null` payload: its fields, without copying what it carries.
    pub(crate) fn without_payload(&self) -> SyncChange {
        SyncChange {
            id: self.id,
            seq: self.seq,
            session_id: self.session_id.clone(),
            change_type: self.change_type,
            entity_type: self.entity_type,
            entity_id: self.entity_id.clone(),
            timestamp: self.timestamp,
            origin: self.origin,
            provider: self.provider.clone(),
            payload: Value::Null,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }

    /// The change this record carries, without what the journal assigned.
    pub fn to_change(&self) -> NewChange {
        NewChange {
            session_id: self.session_id.clone(),
            change_type: self.change_type,
            entity_type: self.entity_type,
            entity_id: self.entity_id.clone(),
            timestamp: self.timestamp,
            origin: self.origin,
            provider: self.provider.clone(),
            payload: self.payload.clone(),
        }
    }

    /// Whether the record's hash is the one its content and `prev_hash` give.
    pub fn is_sealed(&self) -> bool {
        chain_hash(&self.prev_hash, &self.canonical_bytes()) == self.hash
    }

    /// Whether stored bytes carry the hash their content and `prev_hash` give.
    pub fn hash_matches(bytes: &[u8]) -> Result<bool, DecodeError> {
        let (canonical, prev_hash, hash) = split(bytes)?;
        Ok(chain_hash(&prev_hash, canonical) == hash)
    }
}

/// The hash a record's bytes end with: their last 32 bytes. Every stored row ends with its
/// record's hash too, whatever its form (`journal-format.md`, *Stored rows*), so a reader can
/// name a record without rebuilding it. `None` for fewer than 32 bytes.
pub fn last_hash(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.get(bytes.len().checked_sub(32)?..)?.try_into().ok()
}

/// Stored bytes cut into (canonical bytes, prev_hash, hash).
type Parts<'a> = (&'a [u8], [u8; 32], [u8; 32]);

fn split(bytes: &[u8]) -> Result<Parts<'_>, DecodeError> {
    if bytes.len() < 1 + 64 {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    let (canonical, hashes) = bytes.split_at(bytes.len() - 64);
    if canonical[0] != RECORD_VERSION {
        return Err(DecodeError::UnknownVersion(canonical[0]));
    }
    let prev_hash: [u8; 32] = hashes[..32].try_into().expect("32 bytes");
    let hash: [u8; 32] = hashes[32..].try_into().expect("32 bytes");
    Ok((canonical, prev_hash, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn change(payload: Value) -> NewChange {
        NewChange {
            session_id: "s-1".into(),
            change_type: ChangeType::Update,
            entity_type: EntityType::Message,
            entity_id: "request_1".into(),
            timestamp: Utc.timestamp_millis_opt(1_770_580_257_491).unwrap(),
            origin: Origin::Remote,
            provider: "vscode".into(),
            payload,
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let r = SyncChange::seal(change(json!({"index": 0, "request": {"b": 1.50, "a": "é"}})), 7, [9; 32]);
        let bytes = r.encode();
        assert_eq!(SyncChange::decode(&bytes).unwrap(), r);
        assert!(SyncChange::hash_matches(&bytes).unwrap());
        assert_eq!(bytes[0], RECORD_VERSION);
        // seq is at a fixed offset: version byte + 16-byte id.
        assert_eq!(&bytes[17..25], &7u64.to_le_bytes());
    }

    #[test]
    fn any_flipped_byte_breaks_the_hash_or_the_decode() {
        let bytes = SyncChange::seal(change(json!({"x": [1, 2, 3]})), 1, GENESIS_HASH).encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let ok = matches!(SyncChange::hash_matches(&bad), Ok(true));
            assert!(!ok, "flipping byte {i} went unnoticed");
        }
    }

    #[test]
    fn names_parse_back() {
        for t in ChangeType::ALL {
            assert_eq!(t.as_str().parse::<ChangeType>().unwrap(), *t);
        }
        for t in EntityType::ALL {
            assert_eq!(t.as_str().parse::<EntityType>().unwrap(), *t);
        }
        for t in Origin::ALL {
            assert_eq!(t.as_str().parse::<Origin>().unwrap(), *t);
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SyncChange::decode(&bytes);
            let _ = SyncChange::hash_matches(&bytes);
        }

        #[test]
        fn round_trip_any_strings(sid in "\\PC{1,40}", eid in "\\PC{0,40}", text in "\\PC{0,200}", seq in 1u64..u64::MAX, ms in -8_000_000_000_000i64..8_000_000_000_000i64) {
            let mut c = change(json!({"text": text}));
            c.session_id = sid;
            c.entity_id = eid;
            c.timestamp = Utc.timestamp_millis_opt(ms).unwrap();
            let (r, stored) = SyncChange::seal_stored(Uuid::new_v4(), c, seq, [3; 32]);
            prop_assert_eq!(&stored, &r.encode());
            // Stored bytes are allocated at their final length, not grown to it.
            prop_assert_eq!(Fields::of(&stored).unwrap().body.stored_len(), stored.len());
            prop_assert_eq!(SyncChange::decode(&stored).unwrap(), r);
        }
    }
}
