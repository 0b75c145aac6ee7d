//! The fold: a session's events → its state. Pure, no I/O.
//!
//! The same fold serves `replay` (fold a prefix), `capture` (what the journal currently believes,
//! to diff a file against) and, later, status and conflicts. Applying events one at a time via
//! [`SessionState::apply`] lets a caller stop at any seq.
//!
//! Payloads by event (the journal-format.md lists them too):
//!
//! | event | `entity_id` | payload |
//! | --- | --- | --- |
//! | session/create, session/update | session id | the whole session object (any `requests` included) |
//! | session/delete | session id | `null` |
//! | metadata/create, metadata/update | field name | `{"value": v, "position": p}` |
//! | metadata/delete | field name | `null` |
//! | message/create, message/update | request id | `{"index": i, "request": {…}}` |
//! | message/delete | request id | `null` |
//! | tag/create, tag/delete | tag | `null` |
//! | merge | session id | checkpoint data (ignored by the content fold) |

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::rc::Rc;

use serde_json::{Map, Value, json};

use crate::journal::{ChangeType, EntityType, Origin, SyncChange};
use crate::session::{REQUESTS_KEY, Request, Session, entity_ids, json_type};

/// A session as the journal says it stood after some event.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionState {
    pub session: Session,
    /// The entity id of each request, parallel to `session.requests`.
    pub ids: Vec<String>,
    /// Where each request's current value is in the journal, parallel to `session.requests`:
    /// the event that set it last, so a snapshot can refer to requests instead of copying them.
    pub sources: Vec<Source>,
    /// Created and not deleted since.
    pub exists: bool,
    pub tags: BTreeSet<String>,
    /// The newest event folded in.
    pub last_seq: u64,
    /// The event that deleted the session, while it stays deleted.
    pub deleted_seq: Option<u64>,
    /// The newest checkpoint (`merge` event) folded in.
    pub last_checkpoint: Option<u64>,
    /// How many events were folded: what replay cost.
    pub events_read: u64,
}

/// The event that holds a request's current value: its `request` (a message event), or
/// `requests[index]` (a whole-session event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub seq: u64,
    pub index: Option<u32>,
}

/// An event the fold cannot apply: only a journal written by something other than chasm (or a
/// bug) has one, so it is reported rather than guessed around.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {seq}: {reason}")]
pub struct FoldError {
    pub seq: u64,
    pub reason: String,
}

impl Default for SessionState {
    fn default() -> Self {
        SessionState {
            session: Session::empty(),
            ids: Vec::new(),
            sources: Vec::new(),
            exists: false,
            tags: BTreeSet::new(),
            last_seq: 0,
            deleted_seq: None,
            last_checkpoint: None,
            events_read: 0,
        }
    }
}

/// The payload of a `message/create` or `message/update`.
pub fn message_payload(index: usize, request: &Request) -> Value {
    message_payload_of(index, request.clone())
}

/// [`message_payload`] taking the request rather than copying it.
pub fn message_payload_of(index: usize, request: Request) -> Value {
    // Built by hand: `json!` would serialize the request into a copy of itself (a tenth of a
    // first sync's time) only to drop the original.
    let mut payload = Map::with_capacity(2);
    payload.insert("index".to_owned(), index.into());
    payload.insert("request".to_owned(), request.into_value());
    Value::Object(payload)
}

/// The payload of a `metadata/update`.
pub fn metadata_payload(value: &Value, position: usize) -> Value {
    let mut payload = Map::with_capacity(2);
    payload.insert("value".to_owned(), value.clone());
    payload.insert("position".to_owned(), position.into());
    Value::Object(payload)
}

/// Folds events (one session's, in seq order) into its state; `None` when there are none.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a SyncChange>) -> Result<Option<SessionState>, FoldError> {
    let mut state: Option<SessionState> = None;
    for event in events {
        state.get_or_insert_with(SessionState::default).apply(event)?;
    }
    Ok(state)
}

/// A sync checkpoint: both sides reflected the session's events up to `seq`, with this content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The seq of the `merge` event.
    pub seq: u64,
    /// Hex SHA-256 of the session content both sides held ([`Session::content_hash`]); empty
    /// when the session was deleted on both.
    pub hash: String,
    /// Where the provider keeps the session, as recorded by the sync that wrote the checkpoint.
    pub path: Option<String>,
}

impl Checkpoint {
    /// The payload of a checkpoint (`merge` event).
    pub fn payload(local_seq: u64, remote_seq: u64, hash: &str, path: Option<&str>) -> Value {
        json!({"local_seq": local_seq, "remote_seq": remote_seq, "hash": hash, "path": path})
    }

    /// The path a checkpoint's payload records (see [`Checkpoint::payload`]).
    pub fn path_of(payload: &Value) -> Option<&str> {
        payload.get("path").and_then(Value::as_str)
    }
}

/// A session seen three ways, as a three-way merge needs it: the merge base (the state at the
/// last checkpoint) and each side's view (the base plus that side's changes since). Deriving
/// both views from the one journal is what lets status and conflicts come from the fold alone.
#[derive(Debug, Clone, Default)]
pub struct Views {
    pub checkpoint: Option<Checkpoint>,
    /// The merge base: the state at the last checkpoint, or the implicit base (see [`views`]);
    /// `None` when there is none.
    pub base: Option<Rc<SessionState>>,
    /// The base plus local changes since (`None`: no local history at all).
    pub local: Option<Rc<SessionState>>,
    /// The base plus remote changes since (`None`: no remote history at all).
    pub remote: Option<Rc<SessionState>>,
    /// Every event folded in seq order: what `replay` shows.
    pub full: Option<Rc<SessionState>>,
    /// Events after the merge base that the other side should see (tags excluded), by side.
    pub local_changes: Vec<SyncChange>,
    pub remote_changes: Vec<SyncChange>,
}

/// Whether an event is a change the other side should see: not a checkpoint, and not a tag
/// (tags are chasm's own and never written to the provider).
fn syncs(e: &SyncChange) -> bool {
    e.change_type != ChangeType::Merge && e.entity_type != EntityType::Tag
}

/// A session's history from its merge base on: the state at the base, the checkpoint the
/// base ends with, and every event after it. All [`views`] need; the journal derives it from a
/// snapshot and the events since the last checkpoint, so a sync's cost follows what changed
/// since, not the length of the history.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    /// The state at the merge base (`None`: nothing before it).
    pub base: Option<SessionState>,
    /// The checkpoint (`merge` event) the base ends with, if any.
    pub checkpoint: Option<SyncChange>,
    /// Every event after the base, in seq order.
    pub after: Vec<SyncChange>,
    /// The seq of the newest change (not a checkpoint) at or before the base made locally, and
    /// seen remotely (0: none).
    pub before: (u64, u64),
}

impl Tail {
    /// Splits a whole history (in seq order) at its merge base.
    ///
    /// The merge base is the last checkpoint. A session never checkpointed has an implicit one:
    /// the state just before its first local event, because every local change is made on the
    /// journal's view, which until then held only what was seen in VS Code. A session that
    /// began locally has no base at all.
    pub fn of(events: &[SyncChange]) -> Result<Tail, FoldError> {
        let (split, cp_index) = merge_base(events);
        let (before, after) = events.split_at(split);
        Ok(Tail {
            base: fold(before)?,
            checkpoint: cp_index.map(|i| events[i].clone()),
            after: after.to_vec(),
            before: (newest_change(before, Origin::Local), newest_change(before, Origin::Remote)),
        })
    }

    /// The seq of the newest change made on one side (not a checkpoint), in the whole history.
    pub fn last_seq(&self, origin: Origin) -> u64 {
        match newest_change(&self.after, origin) {
            0 if origin == Origin::Local => self.before.0,
            0 => self.before.1,
            seq => seq,
        }
    }
}

/// The seq of the newest event of `origin` that is not a checkpoint (0: none).
pub fn newest_change(events: &[SyncChange], origin: Origin) -> u64 {
    events.iter().rev().find(|e| e.origin == origin && e.change_type != ChangeType::Merge).map_or(0, |e| e.seq)
}

/// Splits a session's events (in seq order) at the merge base and folds the three views.
pub fn views(events: &[SyncChange]) -> Result<Views, FoldError> {
    views_of(Tail::of(events)?)
}

/// The three views of a session from its history since the merge base (see [`Tail`]). A view
/// with no events of its own after the base shares the base's state, and the full view shares
/// a side's when every event after the base is that side's: a session is copied only where
/// its views differ (sessions run to megabytes).
pub fn views_of(tail: Tail) -> Result<Views, FoldError> {
    let checkpoint = tail.checkpoint.as_ref().map(|e| Checkpoint {
        seq: e.seq,
        hash: e.payload.get("hash").and_then(Value::as_str).unwrap_or_default().to_owned(),
        path: Checkpoint::path_of(&e.payload).map(str::to_owned),
    });
    let base = tail.base.map(Rc::new);
    let after = tail.after;
    let side = |origin: Option<Origin>| -> Result<Option<Rc<SessionState>>, FoldError> {
        let mut events = after.iter().filter(|e| origin.is_none_or(|o| e.origin == o)).peekable();
        if events.peek().is_none() {
            return Ok(base.clone());
        }
        let mut state = base.as_deref().cloned();
        for e in events {
            state.get_or_insert_with(SessionState::default).apply(e)?;
        }
        Ok(state.map(Rc::new))
    };
    let (local, remote) = (side(Some(Origin::Local))?, side(Some(Origin::Remote))?);
    let full = if after.iter().all(|e| e.origin == Origin::Remote) {
        remote.clone()
    } else if after.iter().all(|e| e.origin == Origin::Local) {
        local.clone()
    } else {
        side(None)?
    };
    Ok(Views {
        local_changes: after.iter().filter(|e| e.origin == Origin::Local && syncs(e)).cloned().collect(),
        remote_changes: after.iter().filter(|e| e.origin == Origin::Remote && syncs(e)).cloned().collect(),
        local,
        remote,
        full,
        checkpoint,
        base,
    })
}

/// Only the remote view of [`views`]: what the journal last saw of the session in the
/// provider, which a file read from the provider is diffed against. The base itself, not a
/// copy, when nothing was seen in the provider since.
pub fn remote_of(tail: &Tail) -> Result<Cow<'_, Option<SessionState>>, FoldError> {
    let mut seen = tail.after.iter().filter(|e| e.origin == Origin::Remote).peekable();
    if seen.peek().is_none() {
        return Ok(Cow::Borrowed(&tail.base));
    }
    let mut state = tail.base.clone();
    for e in seen {
        state.get_or_insert_with(SessionState::default).apply(e)?;
    }
    Ok(Cow::Owned(state))
}

/// Where the merge base splits a session's events, and the index of the last checkpoint.
fn merge_base(events: &[SyncChange]) -> (usize, Option<usize>) {
    let cp_index = events.iter().rposition(|e| e.change_type == ChangeType::Merge);
    let split = match cp_index {
        Some(i) => i + 1,
        None => events.iter().position(|e| e.origin == Origin::Local).unwrap_or(events.len()),
    };
    (split, cp_index)
}

impl SessionState {
    /// Applies one event.
    pub fn apply(&mut self, event: &SyncChange) -> Result<(), FoldError> {
        let err = |reason: String| FoldError { seq: event.seq, reason };
        let payload = &event.payload;
        let id = event.entity_id.as_str();
        match (event.entity_type, event.change_type) {
            (_, ChangeType::Merge) => self.last_checkpoint = Some(event.seq),
            (EntityType::Session, ChangeType::Create | ChangeType::Update) => {
                let session = Session::from_value(payload.clone()).map_err(|e| err(e.to_string()))?;
                self.ids = entity_ids(&session.requests);
                self.sources = (0..session.requests.len())
                    .map(|i| Source { seq: event.seq, index: Some(u32::try_from(i).unwrap_or(u32::MAX)) })
                    .collect();
                self.session = session;
                self.exists = true;
                self.deleted_seq = None;
            }
            (EntityType::Session, ChangeType::Delete) => {
                self.exists = false;
                self.deleted_seq = Some(event.seq);
            }
            (EntityType::Metadata, ChangeType::Create | ChangeType::Update) => {
                if id == REQUESTS_KEY {
                    return Err(err("`requests` is not a metadata field".into()));
                }
                let value = payload.get("value").ok_or_else(|| err("metadata payload without `value`".into()))?;
                let position = payload.get("position").and_then(Value::as_u64).unwrap_or(u64::MAX);
                self.session.set_field(id, value.clone(), usize::try_from(position).unwrap_or(usize::MAX));
            }
            (EntityType::Metadata, ChangeType::Delete) => {
                self.session.remove_field(id);
            }
            (EntityType::Message, ChangeType::Create | ChangeType::Update) => {
                let request = match payload.get("request") {
                    Some(Value::Object(fields)) => {
                        Request::from_value(Value::Object(fields.clone())).expect("an object")
                    }
                    Some(other) => {
                        return Err(err(format!("message payload `request` is {}", json_type(other))));
                    }
                    None => return Err(err("message payload without `request`".into())),
                };
                let index = payload.get("index").and_then(Value::as_u64).unwrap_or(u64::MAX);
                self.remove_request(id);
                let at = usize::try_from(index).unwrap_or(usize::MAX).min(self.ids.len());
                self.ids.insert(at, id.to_owned());
                self.sources.insert(at, Source { seq: event.seq, index: None });
                self.session.requests.insert(at, request);
            }
            (EntityType::Message, ChangeType::Delete) => {
                self.remove_request(id);
            }
            (EntityType::Tag, ChangeType::Create | ChangeType::Update) => {
                self.tags.insert(id.to_owned());
            }
            (EntityType::Tag, ChangeType::Delete) => {
                self.tags.remove(id);
            }
        }
        self.last_seq = event.seq;
        self.events_read += 1;
        Ok(())
    }

    fn remove_request(&mut self, id: &str) {
        if let Some(pos) = self.ids.iter().position(|x| x == id) {
            self.ids.remove(pos);
            self.sources.remove(pos);
            self.session.requests.remove(pos);
        }
    }

    /// The request with this entity id.
    pub fn request(&self, id: &str) -> Option<&Request> {
        self.ids.iter().position(|x| x == id).map(|i| &self.session.requests[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{NewChange, Origin};
    use chrono::Utc;
    use proptest::prelude::*;

    #[test]
    fn payloads_keep_the_bytes_the_journal_has_always_hashed() {
        // Records are hashed over their payload's bytes: building one by hand must give the
        // same object, keys in the same order, as the `json!` it replaced.
        let request = json!({"requestId": "r", "n": 1.50, "big": 123456789012345678901234567890u128.to_string()});
        let built = message_payload_of(3, Request::from_value(request.clone()).unwrap());
        let expected = json!({"index": 3, "request": request});
        assert_eq!(serde_json::to_string(&built).unwrap(), serde_json::to_string(&expected).unwrap());
        let value = json!({"b": [1, 2], "a": null});
        let expected = json!({"value": value, "position": 7});
        assert_eq!(
            serde_json::to_string(&metadata_payload(&value, 7)).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
    }

    fn event(
        seq: u64,
        change_type: ChangeType,
        entity_type: EntityType,
        entity_id: &str,
        payload: Value,
    ) -> SyncChange {
        let change = NewChange {
            session_id: "s".into(),
            change_type,
            entity_type,
            entity_id: entity_id.into(),
            timestamp: Utc::now(),
            origin: Origin::Remote,
            provider: "vscode".into(),
            payload,
        };
        SyncChange::seal(change, seq, [0; 32])
    }

    #[test]
    fn a_deleted_session_keeps_its_content_and_can_come_back() {
        let events = [
            event(1, ChangeType::Create, EntityType::Session, "s", json!({"requests": [], "customTitle": "a"})),
            event(
                2,
                ChangeType::Create,
                EntityType::Message,
                "r1",
                json!({"index": 0, "request": {"requestId": "r1"}}),
            ),
            event(3, ChangeType::Delete, EntityType::Session, "s", Value::Null),
        ];
        let state = fold(&events).unwrap().unwrap();
        assert!(!state.exists);
        assert_eq!(state.deleted_seq, Some(3));
        assert_eq!(state.session.requests.len(), 1);
        let state = fold(&events[..2]).unwrap().unwrap();
        assert!(state.exists && state.events_read == 2 && state.last_seq == 2);
    }

    #[test]
    fn views_split_at_the_checkpoint_or_the_first_local_event() {
        let create =
            |seq| event(seq, ChangeType::Create, EntityType::Session, "s", json!({"requests": [], "customTitle": "a"}));
        let title = |seq, origin, t: &str| {
            let mut e =
                event(seq, ChangeType::Update, EntityType::Metadata, "customTitle", json!({"value": t, "position": 1}));
            e.origin = origin;
            e
        };
        let title_of = |s: &Option<Rc<SessionState>>| s.as_ref().unwrap().session.custom_title().unwrap().to_owned();
        // Seen in VS Code, then renamed through chasm: the base is what VS Code had.
        let events = [create(1), title(2, Origin::Local, "mine")];
        let v = views(&events).unwrap();
        assert!(v.checkpoint.is_none());
        assert_eq!(title_of(&v.base), "a");
        assert_eq!(title_of(&v.local), "mine");
        assert_eq!(title_of(&v.remote), "a");
        assert_eq!(v.local_changes.len(), 1);
        // After a checkpoint, each side's changes since.
        let mut cp = event(3, ChangeType::Merge, EntityType::Session, "s", Checkpoint::payload(2, 1, "h", Some("/p")));
        cp.origin = Origin::Local;
        let events = [create(1), title(2, Origin::Local, "mine"), cp, title(4, Origin::Remote, "theirs")];
        let v = views(&events).unwrap();
        assert_eq!(v.checkpoint.as_ref().unwrap().path.as_deref(), Some("/p"));
        assert_eq!(title_of(&v.base), "mine");
        assert_eq!(title_of(&v.local), "mine");
        assert_eq!(title_of(&v.remote), "theirs");
        assert_eq!((v.local_changes.len(), v.remote_changes.len()), (0, 1));
        // Begun through chasm: no base, no remote.
        let mut local_create = create(1);
        local_create.origin = Origin::Local;
        let v = views(&[local_create]).unwrap();
        assert!(v.base.is_none() && v.remote.is_none() && v.local.is_some());
    }

    #[test]
    fn malformed_payloads_are_errors_naming_the_event() {
        let bad = [
            event(4, ChangeType::Create, EntityType::Session, "s", json!([1])),
            event(4, ChangeType::Update, EntityType::Message, "r", json!({"index": 0})),
            event(4, ChangeType::Update, EntityType::Message, "r", json!({"request": 3})),
            event(4, ChangeType::Update, EntityType::Metadata, "x", json!({})),
            event(4, ChangeType::Update, EntityType::Metadata, "requests", json!({"value": 1})),
        ];
        for e in &bad {
            assert_eq!(fold([e]).unwrap_err().seq, 4);
        }
    }

    fn arb_event() -> impl Strategy<Value = (u8, u8, u8, Value)> {
        let payload = prop_oneof![
            Just(Value::Null),
            Just(json!({"requests": [{"requestId": "a"}, {}]})),
            (0u64..5, "[a-c]").prop_map(|(i, id)| json!({"index": i, "request": {"requestId": id}})),
            (any::<i8>(), 0u64..5).prop_map(|(v, p)| json!({"value": v, "position": p})),
            Just(json!({"index": 18446744073709551615u64, "request": {}})),
        ];
        (0u8..4, 0u8..4, 0u8..4, payload)
    }

    proptest! {
        /// Any sequence of events folds without panicking, and the state stays coherent: one
        /// entity id per request, no id twice.
        #[test]
        fn fold_is_total_and_coherent(raw in prop::collection::vec(arb_event(), 0..40)) {
            let events: Vec<SyncChange> = raw
                .into_iter()
                .enumerate()
                .map(|(i, (ct, et, id, payload))| {
                    let id = ["a", "b", "c", "requests"][id as usize];
                    event(i as u64 + 1, ChangeType::ALL[ct as usize], EntityType::ALL[et as usize], id, payload)
                })
                .collect();
            let mut state = SessionState::default();
            for e in &events {
                if state.apply(e).is_err() {
                    continue;
                }
                prop_assert_eq!(state.ids.len(), state.session.requests.len());
                let unique: BTreeSet<&String> = state.ids.iter().collect();
                prop_assert_eq!(unique.len(), state.ids.len());
            }
        }
    }
}
