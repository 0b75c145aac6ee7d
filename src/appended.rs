//! Entries appended to a session's `.jsonl` log since both sides were last in step, applied to
//! what the session held then (its [`Shape`]). Pure: requests are read through the caller's
//! `load`, and only those the entries reach into.
//!
//! VS Code appends to the log as a chat goes on: a request pushed, its response set again and
//! again as it streams. Replaying the whole log and digesting every request on each sync made
//! the cost of a sync grow with the session; applied to the shape, it grows with what changed.
//! Whatever this cannot apply exactly as a full read would (a whole new state, a line the full
//! read would refuse, ids that need the whole list to tell apart) gives `None`, and the caller
//! reads the file whole.
//!
//! A `.json` rewritten whole is settled the same way ([`crate::rewritten`]): its requests not
//! read stand in for old ones, and [`changes`] and [`title`] fill them in where needed.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::diff::{EntityChange, diff_shape};
use crate::journal::{ChangeType, EntityType};
use crate::provider::vscode::jsonl;
use crate::session::{REQUESTS_KEY, Request, Session, base_id, first_words};
use crate::shape::{Shape, request_digest};

/// The key of a stand-in for a request not read. Its value is a nonce drawn for each
/// application, so no request in a log can pass for one.
const HELD: &str = "\u{0}chasm-held";

/// A file's new content applied to a shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The session the log holds now; requests not read stand empty (see `held`).
    pub session: Session,
    /// Its shape.
    pub shape: Shape,
    /// For each request of `session`: `Some(k)` when it is request `k` of the old shape, not
    /// read and so unchanged.
    pub held: Vec<Option<usize>>,
}

/// Applies `entries` to the session `old` describes; `load(k)` gives old request `k` whole
/// (`None`: it cannot be read).
pub fn apply(old: &Shape, entries: Vec<Value>, load: &mut dyn FnMut(usize) -> Option<Value>) -> Option<Applied> {
    let nonce = uuid::Uuid::new_v4().to_string();
    // A session without requests may come from a log without the key at all (the session
    // model adds it), where a path into `requests` fails: such a session is small, read whole.
    if old.requests.is_empty() || !old.fields.contains_key(REQUESTS_KEY) {
        return None;
    }
    let fields: Map<String, Value> = old
        .fields
        .iter()
        .map(|(key, value)| {
            let value = if key == REQUESTS_KEY {
                Value::Array((0..old.requests.len()).map(|k| stand_in(&nonce, k)).collect())
            } else {
                value.clone()
            };
            (key.clone(), value)
        })
        .collect();

    let mut state = Some(Value::Object(fields));
    for entry in entries {
        if entry.get("kind").and_then(Value::as_u64) == Some(0) {
            return None;
        }
        // A path into a request (`["requests", i, …]`) needs the request itself.
        if let Some(i) = request_reached(&entry) {
            let slot = state.as_mut().and_then(|s| s.get_mut(REQUESTS_KEY)).and_then(|r| r.get_mut(i));
            if let Some(slot) = slot
                && let Some(k) = slot.as_object().and_then(|m| held_index(m, &nonce))
            {
                *slot = load(k)?;
            }
        }
        jsonl::apply(&mut state, entry).ok()?;
    }
    settle(old, state?, &nonce)
}

/// A stand-in for old request `k`, not read. `nonce` is drawn for each application, so no
/// request in a file can pass for one.
pub(crate) fn stand_in(nonce: &str, k: usize) -> Value {
    json!({HELD: nonce, "k": k})
}

/// Which old request a stand-in stands for.
fn held_index(map: &Map<String, Value>, nonce: &str) -> Option<usize> {
    if map.len() != 2 || map.get(HELD).and_then(Value::as_str) != Some(nonce) {
        return None;
    }
    map.get("k").and_then(Value::as_u64).and_then(|k| usize::try_from(k).ok())
}

/// The session a value holds, where stand-ins take the place of old requests not read, with
/// its shape: each request read is digested, each stand-in keeps its old id and digest. `None`
/// when it is not a session, or its ids need the whole list to tell apart.
pub(crate) fn settle(old: &Shape, state: Value, nonce: &str) -> Option<Applied> {
    let mut session = Session::from_value(state).ok()?;
    let held: Vec<Option<usize>> = session.requests.iter().map(|r| held_index(r.fields(), nonce)).collect();

    let mut requests = Vec::with_capacity(held.len());
    let mut seen = HashSet::new();
    for (request, h) in session.requests.iter().zip(&held) {
        let (id, digest) = match h {
            Some(k) => old.requests.get(*k)?.clone(),
            None => (base_id(request), request_digest(request)),
        };
        // Ids are the requests' own only while none repeats (`entity_ids` numbers repeats).
        if id.contains('#') || !seen.insert(id.clone()) {
            return None;
        }
        requests.push((id, digest));
    }
    for (request, h) in session.requests.iter_mut().zip(&held) {
        if h.is_some() {
            *request = Request::empty();
        }
    }
    let shape = Shape { fields: session.fields().map(|(k, v)| (k.to_owned(), v.clone())).collect(), requests };
    Some(Applied { session, shape, held })
}

/// The changes from the old shape to what was applied: [`diff_shape`]'s, with a request that
/// was not read filled in where a change carries it (one moved by a removal before it).
pub fn changes(
    old: &Shape,
    applied: &Applied,
    load: &mut dyn FnMut(usize) -> Option<Value>,
) -> Option<Vec<EntityChange>> {
    let mut changes = diff_shape(old, &applied.session, &applied.shape);
    for change in &mut changes {
        if change.entity_type != EntityType::Message || change.change_type == ChangeType::Delete {
            continue;
        }
        let index = change.payload.get("index").and_then(Value::as_u64).and_then(|i| usize::try_from(i).ok())?;
        if let Some(k) = applied.held.get(index).copied().flatten() {
            change.payload["request"] = load(k)?;
        }
    }
    Some(changes)
}

/// The session's title for people, as [`Session::display_title`] gives it, reading a request
/// not read so far only when the title comes from it.
pub fn title(applied: &Applied, load: &mut dyn FnMut(usize) -> Option<Value>) -> Option<String> {
    if let Some(t) = applied.session.custom_title().filter(|t| !t.trim().is_empty()) {
        return Some(t.to_owned());
    }
    applied.session.requests.iter().zip(&applied.held).find_map(|(request, held)| match held {
        Some(k) => {
            let request = Request::from_value(load(*k)?).ok()?;
            request.message_text().map(|t| first_words(t, 60))
        }
        None => request.message_text().map(|t| first_words(t, 60)),
    })
}

/// The request index an entry's key path reaches into (`["requests", i, …]`, at least one
/// step past the request).
fn request_reached(entry: &Value) -> Option<usize> {
    let path = entry.get("k")?.as_array()?;
    if path.len() < 3 || path[0].as_str() != Some(REQUESTS_KEY) {
        return None;
    }
    path[1].as_u64().and_then(|i| usize::try_from(i).ok())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::diff::diff;
    use crate::fold::fold;
    use crate::journal::{Origin, SyncChange};
    use proptest::prelude::*;

    fn request(id: u8, text: &str) -> Value {
        json!({"requestId": format!("r{id}"), "message": {"text": text}, "response": [{"value": text}]})
    }

    fn session(n: u8) -> Session {
        let requests: Vec<Value> = (0..n).map(|i| request(i, &format!("q{i}"))).collect();
        Session::from_value(json!({"version": 3, "title": "t", "requests": requests, "inputState": {"inputText": ""}}))
            .unwrap()
    }

    /// Entries of the kinds VS Code writes, and some it would not.
    fn arb_entry() -> impl Strategy<Value = Value> {
        prop_oneof![
            (0u8..40, "[a-z]{1,6}").prop_map(|(id, t)| json!({"kind": 2, "k": ["requests"], "v": [request(id, &t)]})),
            (0u8..8, 0u8..40)
                .prop_map(|(i, id)| json!({"kind": 2, "k": ["requests"], "i": i, "v": [request(id, "x")]})),
            (0u8..8, "[a-z]{1,6}")
                .prop_map(|(i, t)| json!({"kind": 1, "k": ["requests", i, "response"], "v": [{"value": t}]})),
            (0u8..8, "[a-z]{1,6}")
                .prop_map(|(i, t)| json!({"kind": 1, "k": ["requests", i, "message", "text"], "v": t})),
            (0u8..8, 0u8..40).prop_map(|(i, id)| json!({"kind": 1, "k": ["requests", i], "v": request(id, "set")})),
            (0u8..8).prop_map(|i| json!({"kind": 3, "k": ["requests", i, "response"]})),
            "[a-z]{0,6}".prop_map(|t| json!({"kind": 1, "k": ["inputState", "inputText"], "v": t})),
            "[a-z]{0,6}".prop_map(|t| json!({"kind": 1, "k": ["title"], "v": t})),
            Just(json!({"kind": 3, "k": ["title"]})),
            Just(json!({"kind": 1, "k": ["requests"], "v": [request(1, "all new")]})),
            Just(json!({"kind": 0, "v": {"requests": []}})),
            Just(json!({"kind": 3, "k": ["requests", 0]})),
        ]
    }

    /// The journal's state of a session first seen as `s`.
    pub(crate) fn state_of(s: &Session) -> crate::fold::SessionState {
        let events: Vec<SyncChange> = diff("s", None, s)
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                SyncChange::seal(
                    c.into_change("s", chrono::Utc::now(), Origin::Remote, "vscode"),
                    i as u64 + 1,
                    [0; 32],
                )
            })
            .collect();
        fold(&events).unwrap().unwrap()
    }

    proptest! {
        /// Applied to the shape, the entries give the shape and the changes a full read of the
        /// log gives; and where the full read refuses the log, they are not applied either.
        #[test]
        fn applying_to_the_shape_is_reading_the_whole_log(n in 0u8..6, entries in prop::collection::vec(arb_entry(), 0..6)) {
            let old = session(n);
            let mut text = jsonl::initial_line(&old.to_value());
            for e in &entries {
                text.push_str(&format!("{e}\n"));
            }
            let full = jsonl::read(text.as_bytes()).ok().and_then(|log| Session::from_value(log.state).ok());
            let shape = Shape::of(&old);
            let mut loads = 0;
            let mut load = |k: usize| {
                loads += 1;
                old.requests.get(k).map(Request::to_value)
            };
            let applied = apply(&shape, entries.clone(), &mut load);
            let plain = entries.iter().all(|e| e["kind"] != 0 && e["k"].as_array().is_none_or(|k| k.len() != 2 || e["kind"] != 3));
            match (&full, applied) {
                (None, applied) => prop_assert!(applied.is_none()),
                (Some(full), None) => {
                    // Only what this leaves to a whole read: a new whole state, repeated ids, a
                    // session that had no requests.
                    let ids = crate::session::entity_ids(&full.requests);
                    prop_assert!(!plain || n == 0 || ids.iter().any(|id| id.contains('#')), "{entries:?}");
                }
                (Some(full), Some(applied)) => {
                    prop_assert_eq!(&applied.shape, &Shape::of(full));
                    let mut load = |k: usize| old.requests.get(k).map(Request::to_value);
                    let changes = changes(&shape, &applied, &mut load).unwrap();
                    prop_assert_eq!(changes, diff("s", Some(&state_of(&old)), full));
                }
            }
        }
    }

    #[test]
    fn a_push_reads_no_request_and_a_streamed_response_reads_one() {
        let old = session(5);
        let shape = Shape::of(&old);
        let mut read = Vec::new();
        let mut load = |k: usize| {
            read.push(k);
            old.requests.get(k).map(Request::to_value)
        };
        let entries = vec![
            json!({"kind": 2, "k": ["requests"], "v": [request(9, "new")]}),
            json!({"kind": 1, "k": ["requests", 2, "response"], "v": [{"value": "streamed"}]}),
            json!({"kind": 1, "k": ["inputState", "inputText"], "v": "typing"}),
        ];
        let applied = apply(&shape, entries, &mut load).unwrap();
        assert_eq!(read, vec![2]);
        assert_eq!(applied.held, vec![Some(0), Some(1), None, Some(3), Some(4), None]);
        let changes = changes(&shape, &applied, &mut |k| old.requests.get(k).map(Request::to_value)).unwrap();
        let what: Vec<(&str, ChangeType)> = changes.iter().map(|c| (c.entity_id.as_str(), c.change_type)).collect();
        assert_eq!(
            what,
            vec![("inputState", ChangeType::Update), ("r2", ChangeType::Update), ("r9", ChangeType::Create)]
        );
    }
}
