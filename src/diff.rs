//! The diff: what changed between the journal's view of a session and a session read from a
//! file, as entity-level changes. Pure, no I/O.
//!
//! The changes are built so that folding them onto the old state gives exactly the new session,
//! field order included (a property test below holds this for arbitrary sessions):
//!
//! 1. metadata fields that disappeared (`metadata/delete`), then fields that are new or changed
//!    (`metadata/update`, carrying their position in the new field order, where the fold inserts
//!    a new field; fields the journal already has keep their place);
//! 2. requests that disappeared (`message/delete`), then, walking the new list in order, every
//!    request that is new, changed, or no longer at its position (`message/create` or
//!    `message/update`, carrying its index in the new list).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::fold::{SessionState, message_payload, message_payload_of, metadata_payload};
use crate::journal::{ChangeType, EntityType, NewChange, Origin};
use crate::session::{Request, Session, entity_ids};
use crate::shape::Shape;

/// One entity-level change, before the journal gives it a seq.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityChange {
    pub change_type: ChangeType,
    pub entity_type: EntityType,
    pub entity_id: String,
    pub payload: Value,
}

impl EntityChange {
    /// The journal change for this entity change, made on `origin` at `timestamp`.
    pub fn into_change(self, session_id: &str, timestamp: DateTime<Utc>, origin: Origin, provider: &str) -> NewChange {
        NewChange {
            session_id: session_id.to_owned(),
            change_type: self.change_type,
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            timestamp,
            origin,
            provider: provider.to_owned(),
            payload: self.payload,
        }
    }
}

/// The changes that turn `old` (the journal's view, `None` for a session it has never seen)
/// into `new`. An existing, unchanged session gives no changes; a session the journal does not
/// have (or has as deleted) starts with `session/create`.
pub fn diff(session_id: &str, old: Option<&SessionState>, new: &Session) -> Vec<EntityChange> {
    match old {
        Some(state) if state.exists => changes(state, new, &entity_ids(&new.requests)),
        _ => creation(session_id, new.clone()),
    }
}

/// [`diff`] against no session: the changes that create `new`, taking its requests rather
/// than copying them (a first sync records every session this way).
pub fn creation(session_id: &str, mut new: Session) -> Vec<EntityChange> {
    let requests = std::mem::take(&mut new.requests);
    let ids = entity_ids(&requests);
    let mut out = Vec::with_capacity(1 + requests.len());
    out.push(EntityChange {
        change_type: ChangeType::Create,
        entity_type: EntityType::Session,
        entity_id: session_id.to_owned(),
        payload: new.to_value(),
    });
    for (index, (id, request)) in ids.iter().zip(requests).enumerate() {
        out.push(message(ChangeType::Create, id, message_payload_of(index, request)));
    }
    out
}

/// [`diff`] against an existing session known only by its [`Shape`]; `new_shape` is `new`'s,
/// and names its requests (so a request of `new` whose content was not read may stand empty
/// where the shapes say it did not change; nothing is taken from it but its place). Gives the
/// same changes as [`diff`] against the state the old shape was taken from.
pub fn diff_shape(old: &Shape, new: &Session, new_shape: &Shape) -> Vec<EntityChange> {
    let digests: HashMap<&str, &[u8; 32]> = old.requests.iter().map(|(id, d)| (id.as_str(), d)).collect();
    let ids: Vec<String> = new_shape.requests.iter().map(|(id, _)| id.clone()).collect();
    changes(&ShapeSide { shape: old, new: new_shape, digests }, new, &ids)
}

/// What [`changes`] needs of the old side of a diff.
trait OldSide {
    fn metadata(&self) -> impl Iterator<Item = (&str, &Value)>;
    fn field(&self, key: &str) -> Option<&Value>;
    fn ids(&self) -> impl Iterator<Item = &str>;
    /// Whether the old side holds `request` (the new side's request `index`) under `id` as is.
    fn holds(&self, id: &str, index: usize, request: &Request) -> bool;
}

impl OldSide for SessionState {
    fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.session.metadata()
    }
    fn field(&self, key: &str) -> Option<&Value> {
        self.session.field(key)
    }
    fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }
    fn holds(&self, id: &str, _index: usize, request: &Request) -> bool {
        self.request(id) == Some(request)
    }
}

struct ShapeSide<'a> {
    shape: &'a Shape,
    new: &'a Shape,
    digests: HashMap<&'a str, &'a [u8; 32]>,
}

impl OldSide for ShapeSide<'_> {
    fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.shape.metadata()
    }
    fn field(&self, key: &str) -> Option<&Value> {
        self.shape.field(key)
    }
    fn ids(&self) -> impl Iterator<Item = &str> {
        self.shape.requests.iter().map(|(id, _)| id.as_str())
    }
    fn holds(&self, id: &str, index: usize, _request: &Request) -> bool {
        self.digests.get(id).is_some_and(|d| **d == self.new.requests[index].1)
    }
}

/// The changes from an existing old side to `new`, whose requests have the entity ids
/// `new_ids` (see the module comment for their order).
fn changes(old: &impl OldSide, new: &Session, new_ids: &[String]) -> Vec<EntityChange> {
    let mut out = Vec::new();
    for (key, _) in old.metadata() {
        if new.field(key).is_none() {
            out.push(EntityChange {
                change_type: ChangeType::Delete,
                entity_type: EntityType::Metadata,
                entity_id: key.to_owned(),
                payload: Value::Null,
            });
        }
    }
    for (key, value) in new.metadata() {
        if old.field(key) != Some(value) {
            let position = new.field_position(key).expect("a field of the session");
            out.push(EntityChange {
                change_type: ChangeType::Update,
                entity_type: EntityType::Metadata,
                entity_id: key.to_owned(),
                payload: metadata_payload(value, position),
            });
        }
    }

    let new_index: HashMap<&str, usize> = new_ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut current: Vec<&str> = Vec::new();
    for id in old.ids() {
        if new_index.contains_key(id) {
            current.push(id);
        } else {
            out.push(message(ChangeType::Delete, id, Value::Null));
        }
    }
    // `current` mirrors the fold's request order as the changes so far leave it; after handling
    // new index i, its first i + 1 entries are the new list's.
    for (index, (id, request)) in new_ids.iter().zip(&new.requests).enumerate() {
        // Ids are unique, and most requests are where they were: look there first, so that a
        // session of n requests costs n comparisons rather than n²/2.
        let at =
            if current.get(index) == Some(&id.as_str()) { Some(index) } else { current.iter().position(|x| x == id) };
        match at {
            None => {
                out.push(message(ChangeType::Create, id, message_payload(index, request)));
                current.insert(index, id);
            }
            Some(at) => {
                if !(at == index && old.holds(id, index, request)) {
                    out.push(message(ChangeType::Update, id, message_payload(index, request)));
                    current.remove(at);
                    current.insert(index, id);
                }
            }
        }
    }
    out
}

/// The changes that turn `current` (`None`: no history) into `target`, tags included: what a
/// restore records. A target where the session did not exist deletes it.
pub fn restore(session_id: &str, current: Option<&SessionState>, target: &SessionState) -> Vec<EntityChange> {
    let mut out = Vec::new();
    let current_exists = current.is_some_and(|c| c.exists);
    if target.exists {
        out = diff(session_id, current, &target.session);
    } else if current_exists {
        out.push(EntityChange {
            change_type: ChangeType::Delete,
            entity_type: EntityType::Session,
            entity_id: session_id.to_owned(),
            payload: Value::Null,
        });
    }
    let none = std::collections::BTreeSet::new();
    let tags = current.map_or(&none, |c| &c.tags);
    let tag = |change_type, t: &String| EntityChange {
        change_type,
        entity_type: EntityType::Tag,
        entity_id: t.clone(),
        payload: Value::Null,
    };
    out.extend(tags.difference(&target.tags).map(|t| tag(ChangeType::Delete, t)));
    out.extend(target.tags.difference(tags).map(|t| tag(ChangeType::Create, t)));
    out
}

/// What differs between two states of a session, for people: `chasm diff`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub existed_before: bool,
    pub exists_after: bool,
    /// (field, before, after); `None`: absent.
    pub fields: Vec<(String, Option<Value>, Option<Value>)>,
    pub added: Vec<(String, Request)>,
    pub removed: Vec<(String, Request)>,
    /// (entity id, before, after, the request keys that differ).
    pub changed: Vec<(String, Request, Request, Vec<String>)>,
    /// Tags are chasm's own, not the session's, but a user asking what changed means them too.
    pub tags_added: Vec<String>,
    pub tags_removed: Vec<String>,
}

impl Summary {
    pub fn is_empty(&self) -> bool {
        self.existed_before == self.exists_after
            && self.fields.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.tags_added.is_empty()
            && self.tags_removed.is_empty()
    }
}

/// Compares two states (`None` or deleted: no session) request by request and field by field.
pub fn summarize(before: Option<&SessionState>, after: Option<&SessionState>) -> Summary {
    let live = |s: Option<&SessionState>| s.filter(|s| s.exists).cloned();
    let (before, after) = (live(before), live(after));
    let empty = SessionState::default();
    let (b, a) = (before.as_ref().unwrap_or(&empty), after.as_ref().unwrap_or(&empty));
    let mut out = Summary { existed_before: before.is_some(), exists_after: after.is_some(), ..Summary::default() };
    for (key, value) in b.session.metadata() {
        if a.session.field(key).is_none() {
            out.fields.push((key.to_owned(), Some(value.clone()), None));
        }
    }
    for (key, value) in a.session.metadata() {
        let old = b.session.field(key);
        if old != Some(value) {
            out.fields.push((key.to_owned(), old.cloned(), Some(value.clone())));
        }
    }
    for (id, request) in b.ids.iter().zip(&b.session.requests) {
        if a.request(id).is_none() {
            out.removed.push((id.clone(), request.clone()));
        }
    }
    for (id, request) in a.ids.iter().zip(&a.session.requests) {
        match b.request(id) {
            None => out.added.push((id.clone(), request.clone())),
            Some(old) if old != request => {
                let (ov, nv) = (old.to_value(), request.to_value());
                let (ov, nv) =
                    (ov.as_object().cloned().unwrap_or_default(), nv.as_object().cloned().unwrap_or_default());
                let mut keys: Vec<String> =
                    nv.iter().filter(|(k, v)| ov.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
                keys.extend(ov.keys().filter(|k| !nv.contains_key(*k)).cloned());
                out.changed.push((id.clone(), old.clone(), request.clone(), keys));
            }
            Some(_) => {}
        }
    }
    out.tags_added = a.tags.difference(&b.tags).cloned().collect();
    out.tags_removed = b.tags.difference(&a.tags).cloned().collect();
    out
}

fn message(change_type: ChangeType, id: &str, payload: Value) -> EntityChange {
    EntityChange { change_type, entity_type: EntityType::Message, entity_id: id.to_owned(), payload }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::fold;
    use crate::journal::SyncChange;
    use proptest::prelude::*;
    use serde_json::json;

    /// Seals changes as consecutive journal events after `first_seq`.
    fn events(changes: Vec<EntityChange>, first_seq: u64) -> Vec<SyncChange> {
        changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let change = c.into_change("s", Utc::now(), Origin::Remote, "vscode");
                SyncChange::seal(change, first_seq + i as u64, [0; 32])
            })
            .collect()
    }

    fn session(v: Value) -> Session {
        Session::from_value(v).unwrap()
    }

    /// Folds `a`, then the diff to `b`, and checks the result is `b` exactly (order too).
    fn check_transition(a: &Session, b: &Session) -> Vec<EntityChange> {
        let mut log = events(diff("s", None, a), 1);
        let state = fold(&log).unwrap().unwrap();
        assert_eq!(state.session.to_value(), a.to_value());
        let changes = diff("s", Some(&state), b);
        log.extend(events(changes.clone(), log.len() as u64 + 1));
        let state = fold(&log).unwrap().unwrap();
        assert_eq!(state.session.to_value(), b.to_value());
        // Field order is kept too, unless `b` reorders fields both sessions have (which only a
        // rewrite by another program does; the journal keeps its first order then).
        if same_relative_order(a, b) {
            assert_eq!(
                serde_json::to_string(&state.session.to_value()).unwrap(),
                serde_json::to_string(&b.to_value()).unwrap()
            );
        }
        assert!(diff("s", Some(&state), b).is_empty(), "a second diff must be empty");
        changes
    }

    fn same_relative_order(a: &Session, b: &Session) -> bool {
        let keys = |s: &Session, other: &Session| -> Vec<String> {
            let all = s.to_value();
            let o = other.to_value();
            all.as_object().unwrap().keys().filter(|k| o.get(k.as_str()).is_some()).cloned().collect()
        };
        keys(a, b) == keys(b, a)
    }

    #[test]
    fn a_new_session_is_a_create_then_one_message_per_request() {
        let s =
            session(json!({"version": 3, "requests": [{"requestId": "r1"}, {"requestId": "r2"}], "sessionId": "s"}));
        let changes = diff("s", None, &s);
        let kinds: Vec<_> = changes.iter().map(|c| (c.change_type, c.entity_type, c.entity_id.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (ChangeType::Create, EntityType::Session, "s"),
                (ChangeType::Create, EntityType::Message, "r1"),
                (ChangeType::Create, EntityType::Message, "r2")
            ]
        );
        assert_eq!(changes[0].payload, json!({"version": 3, "requests": [], "sessionId": "s"}));
    }

    #[test]
    fn streaming_a_response_is_one_message_update() {
        let a = session(json!({"requests": [{"requestId": "r1", "response": []}]}));
        let b = session(json!({"requests": [{"requestId": "r1", "response": [{"value": "Hel"}]}]}));
        let changes = check_transition(&a, &b);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].change_type, changes[0].entity_type), (ChangeType::Update, EntityType::Message));
    }

    #[test]
    fn rename_add_and_remove() {
        let a = session(json!({"customTitle": "a", "requests": [{"requestId": "r1"}, {"requestId": "r2"}], "x": 1}));
        let b = session(json!({"customTitle": "b", "requests": [{"requestId": "r2"}, {"requestId": "r3"}], "y": 2}));
        let changes = check_transition(&a, &b);
        let kinds: Vec<_> =
            changes.iter().map(|c| (c.change_type.as_str(), c.entity_type.as_str(), c.entity_id.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("delete", "metadata", "x"),
                ("update", "metadata", "customTitle"),
                ("update", "metadata", "y"),
                ("delete", "message", "r1"),
                ("create", "message", "r3")
            ]
        );
    }

    #[test]
    fn a_restore_returns_to_an_earlier_state_and_back() {
        let a = session(json!({"customTitle": "A", "requests": [{"requestId": "r1", "message": {"text": "hi"}}]}));
        let b = session(json!({"customTitle": "B", "extra": 1, "requests": [{"requestId": "r2"}]}));
        let mut history = events(diff("s", None, &a), 0);
        let at_a = fold(&history).unwrap().unwrap();
        history.extend(events(diff("s", Some(&at_a), &b), history.len() as u64));
        let mut tagged = fold(&history).unwrap().unwrap();
        tagged.tags.insert("keep".into());
        history.extend(events(restore("s", fold(&history).unwrap().as_ref(), &tagged), history.len() as u64));
        let at_b = fold(&history).unwrap().unwrap();
        assert!(at_b.tags.contains("keep"));
        // Back to A: content and tags.
        history.extend(events(restore("s", Some(&at_b), &at_a), history.len() as u64));
        let now = fold(&history).unwrap().unwrap();
        assert_eq!((now.session.to_value(), &now.tags), (a.to_value(), &at_a.tags));
        // To a point where it was deleted: a delete; and to the same state: nothing.
        let mut gone = now.clone();
        gone.exists = false;
        assert_eq!(restore("s", Some(&now), &gone)[0].change_type, ChangeType::Delete);
        assert!(restore("s", Some(&now), &now).is_empty());
    }

    #[test]
    fn a_summary_names_added_removed_and_changed_requests_and_fields() {
        let a = session(
            json!({"customTitle": "A", "gone": 1, "requests": [{"requestId": "r1", "response": []}, {"requestId": "r2"}]}),
        );
        let b = session(
            json!({"customTitle": "B", "requests": [{"requestId": "r1", "response": [{"value": "x"}]}, {"requestId": "r3"}]}),
        );
        let sa = fold(&events(diff("s", None, &a), 0)).unwrap().unwrap();
        let sb = fold(&events(diff("s", None, &b), 0)).unwrap().unwrap();
        let sum = summarize(Some(&sa), Some(&sb));
        assert_eq!(sum.fields.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["gone", "customTitle"]);
        assert_eq!(sum.added.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["r3"]);
        assert_eq!(sum.removed.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["r2"]);
        assert_eq!(sum.changed.len(), 1);
        assert_eq!(sum.changed[0].3, ["response"]);
        assert!(summarize(Some(&sa), Some(&sa)).is_empty());
        // Tags too: one added, one removed, one kept.
        let (mut ta, mut tb) = (sa.clone(), sa.clone());
        ta.tags.extend(["kept".to_owned(), "old".to_owned()]);
        tb.tags.extend(["kept".to_owned(), "new".to_owned()]);
        let tagged = summarize(Some(&ta), Some(&tb));
        assert_eq!((tagged.tags_added, tagged.tags_removed), (vec!["new".to_owned()], vec!["old".to_owned()]));
        assert!(!summarize(Some(&sa), Some(&ta)).is_empty());
        let created = summarize(None, Some(&sa));
        assert!(!created.existed_before && created.exists_after && created.added.len() == 2);
    }

    #[test]
    fn a_deleted_session_is_created_again() {
        let s = session(json!({"requests": []}));
        let state = SessionState { exists: false, ..SessionState::default() };
        assert_eq!(diff("s", Some(&state), &s)[0].change_type, ChangeType::Create);
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![Just(Value::Null), any::<i32>().prop_map(Value::from), "[a-c]{0,3}".prop_map(Value::from)]
    }

    fn arb_session() -> impl Strategy<Value = Session> {
        let field = ("[a-e]", arb_value());
        let request = (0u8..6, prop::option::of(arb_value()), any::<bool>()).prop_map(|(id, resp, with_id)| {
            let mut r = serde_json::Map::new();
            if with_id {
                r.insert("requestId".into(), Value::from(format!("r{id}")));
            }
            r.insert("message".into(), json!({"text": format!("m{id}")}));
            if let Some(resp) = resp {
                r.insert("response".into(), json!([resp]));
            }
            Value::Object(r)
        });
        (prop::collection::vec(field, 0..5), 0usize..5, prop::collection::vec(request, 0..6)).prop_map(
            |(fields, req_pos, requests)| {
                let mut m = serde_json::Map::new();
                for (k, v) in fields {
                    m.insert(k, v);
                }
                let at = req_pos.min(m.len());
                m.shift_insert(at, "requests".into(), Value::Array(requests));
                Session::from_value(Value::Object(m)).unwrap()
            },
        )
    }

    proptest! {
        #[test]
        fn folding_the_diff_gives_the_new_session(a in arb_session(), b in arb_session()) {
            check_transition(&a, &b);
        }

        /// Against the shape of a state reached through any history, the changes are the
        /// full diff's, and the shape and hash of the result follow from the new session alone.
        #[test]
        fn the_diff_against_a_shape_is_the_diff_against_the_state(
            a in arb_session(), b in arb_session(), c in arb_session()
        ) {
            let mut log = events(diff("s", None, &a), 1);
            let state = fold(&log).unwrap().unwrap();
            log.extend(events(diff("s", Some(&state), &b), log.len() as u64 + 1));
            let state = fold(&log).unwrap().unwrap();
            let shape = Shape::of_state(&state);
            prop_assert_eq!(&shape, &Shape::of(&b));
            prop_assert_eq!(shape.content_hash(), b.content_hash());
            prop_assert_eq!(diff_shape(&shape, &c, &Shape::of(&c)), diff("s", Some(&state), &c));
        }
    }
}
