//! A session reduced to what a diff needs to know about the old side: its top-level fields and,
//! for each request, its entity id and a digest of its content. Pure, no I/O.
//!
//! A sync keeps the shape of each session it leaves in step (beside the file's fingerprint).
//! When the file changes later and the journal has nothing newer, the journal's view of the
//! session *is* that shape, so the file can be diffed against it without rebuilding the session
//! from the journal: on a long session that rebuild, not the file, was most of a sync's cost.
//! [`crate::diff::diff_shape`] gives exactly the changes [`crate::diff::diff`] gives against
//! the state the shape was taken from.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::fold::SessionState;
use crate::session::{
    REQUESTS_KEY, Request, SESSION_HASH_DOMAIN, Session, entity_ids, hex_into, write_canonical_object,
};

/// Domain prefix of a request's digest.
const REQUEST_DOMAIN: &[u8] = b"chasm/request/v1\0";

/// What a session held, in digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The top-level fields verbatim and in order (they are small: ids, dates, a title), with
    /// `requests` as a `null` placeholder for where the requests go.
    pub fields: Map<String, Value>,
    /// Each request's entity id and [`request_digest`], in order.
    pub requests: Vec<(String, [u8; 32])>,
}

impl Shape {
    /// The shape of a session.
    pub fn of(session: &Session) -> Shape {
        let fields = session.fields().map(|(k, v)| (k.to_owned(), v.clone())).collect();
        let ids = entity_ids(&session.requests);
        let requests = ids.into_iter().zip(&session.requests).map(|(id, r)| (id, request_digest(r))).collect();
        Shape { fields, requests }
    }

    /// The shape of the journal's state of a session, under the entity ids the journal holds.
    pub fn of_state(state: &SessionState) -> Shape {
        let fields = state.session.fields().map(|(k, v)| (k.to_owned(), v.clone())).collect();
        let digests = state.session.requests.iter().map(request_digest);
        Shape { fields, requests: state.ids.iter().cloned().zip(digests).collect() }
    }

    /// The top-level fields other than `requests`, in order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().filter(|(k, _)| *k != REQUESTS_KEY).map(|(k, v)| (k.as_str(), v))
    }

    /// A top-level field other than `requests`.
    pub fn field(&self, key: &str) -> Option<&Value> {
        if key == REQUESTS_KEY { None } else { self.fields.get(key) }
    }

    /// The session's content hash ([`Session::content_hash`]) from its shape alone.
    pub fn content_hash(&self) -> [u8; 32] {
        content_hash(self.metadata(), self.requests.iter().map(|(_, d)| *d))
    }
}

/// SHA-256 of a request's canonical JSON: equal for two requests exactly when they are equal as
/// JSON values (field order aside, which carries no meaning).
pub fn request_digest(request: &Request) -> [u8; 32] {
    let mut buf = Vec::with_capacity(4096);
    write_canonical_object(request.fields().iter().map(|(k, v)| (k.as_str(), v)), &mut buf);
    let mut hasher = Sha256::new();
    hasher.update(REQUEST_DOMAIN);
    hasher.update(&buf);
    hasher.finalize().into()
}

/// The content hash over top-level fields (`requests` aside) and the requests' digests, each
/// as its hex text: see [`Session::content_hash`].
pub(crate) fn content_hash<'a>(
    metadata: impl Iterator<Item = (&'a str, &'a Value)>,
    digests: impl Iterator<Item = [u8; 32]>,
) -> [u8; 32] {
    let mut buf = Vec::new();
    write_canonical_object(metadata, &mut buf);
    let mut hasher = Sha256::new();
    hasher.update(SESSION_HASH_DOMAIN);
    hasher.update(&buf);
    let mut text = [0; 65];
    text[0] = b'\n';
    for d in digests {
        hex_into(&d, &mut text[1..]);
        hasher.update(text);
    }
    hasher.finalize().into()
}
