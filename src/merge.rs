//! The three-way merge of a session and the six conflict strategies. Pure, no I/O.
//!
//! Both sides are compared with the merge base (the state at the last checkpoint) entity by
//! entity — each request, each top-level field, the session itself — as git merges files:
//! a change on one side is taken; the same change on both sides is agreement, not a conflict
//! (Unison and rclone bisync treat identical content so too); different changes to the same
//! entity are a conflict, which the strategy (or a user's `resolve`) settles or leaves open.
//! Requests appended on both sides are a `concurrent_add`, which `auto_merge` settles by taking
//! the union ordered by timestamp.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::journal::EntityType;
use crate::session::{Request, Session, canonical_json, entity_ids, hex};

/// How conflicts are settled during a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Strategy {
    /// The journal's version of each conflicting entity wins; VS Code's stays in the journal.
    LocalWins,
    /// VS Code's version wins; the journal's stays in history.
    RemoteWins,
    /// The side whose change to the entity was recorded last wins.
    MostRecent,
    /// VS Code's version keeps the session id; the journal's whole version becomes a new session.
    KeepBoth,
    /// Union of requests added on both sides; a conflict is recorded only when the same entity
    /// changed on both sides.
    #[default]
    AutoMerge,
    /// Every conflict, concurrent additions included, is recorded for `chasm resolve`.
    Manual,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Strategy::LocalWins => "local_wins",
            Strategy::RemoteWins => "remote_wins",
            Strategy::MostRecent => "most_recent",
            Strategy::KeepBoth => "keep_both",
            Strategy::AutoMerge => "auto_merge",
            Strategy::Manual => "manual",
        };
        f.write_str(name)
    }
}

/// What kind of disagreement a conflict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    /// The same request changed differently on both sides.
    MessageEdit,
    /// The same top-level field changed differently on both sides.
    SessionMetadata,
    /// Deleted on one side, changed on the other.
    Deletion,
    /// Both sides appended requests.
    ConcurrentAdd,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::MessageEdit => "message_edit",
            ConflictKind::SessionMetadata => "session_metadata",
            ConflictKind::Deletion => "deletion",
            ConflictKind::ConcurrentAdd => "concurrent_add",
        }
    }
}

/// How one conflict is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Take {
    /// The journal's (local) version.
    Local,
    /// VS Code's (remote) version.
    Remote,
    /// VS Code's version in place, and the local version of the whole session as a new session.
    Both,
    /// Combine: the union for concurrent additions, the changed side for a deletion, and
    /// field by field for an edit (refused when both sides changed the same field).
    Merge,
}

/// One unresolved (or just resolved) disagreement.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// Stable while neither side changes again: a hash of the session, entity and both versions.
    pub id: String,
    pub session_id: String,
    pub kind: ConflictKind,
    pub entity_type: EntityType,
    /// The request id, the field name, or (for the session and `concurrent_add`) the session id.
    pub entity_id: String,
    /// The local version (`None`: deleted or absent).
    pub local: Option<Value>,
    /// The remote version (`None`: deleted or absent).
    pub remote: Option<Value>,
}

/// Latest change time of each entity on one side, for `most_recent`.
pub type ChangeTimes = HashMap<(EntityType, String), DateTime<Utc>>;

/// The three versions of a session.
pub struct Sides<'a> {
    pub session_id: &'a str,
    /// At the last checkpoint; `None` when never checkpointed or deleted then.
    pub base: Option<&'a Session>,
    /// `None`: deleted locally (or never there).
    pub local: Option<&'a Session>,
    /// `None`: deleted in VS Code (or never there).
    pub remote: Option<&'a Session>,
    pub local_times: &'a ChangeTimes,
    pub remote_times: &'a ChangeTimes,
}

/// The result of a merge.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// The merged session; `None` when it is deleted. Meaningful only when `conflicts` is empty.
    pub merged: Option<Session>,
    /// Conflicts left for `resolve`; while any remain, nothing is overwritten.
    pub conflicts: Vec<Conflict>,
    /// Conflicts settled, and how.
    pub resolved: Vec<(Conflict, Take)>,
    /// `keep_both`: the local version of the whole session, to become a new session.
    pub copy: Option<Session>,
}

/// A `--take merge` that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot merge conflict {id}: both sides changed {what}; take local, remote or both")]
pub struct MergeError {
    pub id: String,
    pub what: String,
}

/// Merges the three versions. `overrides` settles named conflicts (from `chasm resolve`)
/// before the strategy is asked.
pub fn merge(sides: &Sides, strategy: Strategy, overrides: &HashMap<String, Take>) -> Result<Outcome, MergeError> {
    let (base, local, remote) = (sides.base, sides.local, sides.remote);
    // One side unchanged (or both alike): the other side is the result, exactly.
    if local == base || local == remote {
        return Ok(Outcome { merged: remote.cloned(), ..Outcome::default() });
    }
    if remote == base {
        return Ok(Outcome { merged: local.cloned(), ..Outcome::default() });
    }
    let mut m = Merger { sides, strategy, overrides, out: Outcome::default() };
    match (local, remote) {
        (Some(l), Some(r)) => {
            let empty = Session::empty();
            let merged = m.merge_sessions(base.unwrap_or(&empty), l, r)?;
            m.out.merged = Some(merged);
        }
        (l, r) => {
            // Deleted on one side, changed on the other (both deleted was handled above).
            let conflict = m.conflict(
                ConflictKind::Deletion,
                EntityType::Session,
                sides.session_id,
                l.map(Session::to_value),
                r.map(Session::to_value),
            );
            m.out.merged = match m.decide(&conflict, None) {
                None => {
                    m.out.conflicts.push(conflict);
                    None
                }
                Some(take) => {
                    m.out.resolved.push((conflict, take));
                    match take {
                        Take::Local => l.cloned(),
                        Take::Remote => r.cloned(),
                        // A change beats a deletion; there is no second version to copy.
                        Take::Both | Take::Merge => l.or(r).cloned(),
                    }
                }
            };
        }
    }
    Ok(m.out)
}

struct Merger<'a, 'b> {
    sides: &'a Sides<'b>,
    strategy: Strategy,
    overrides: &'a HashMap<String, Take>,
    out: Outcome,
}

/// Three-way choice for one entity: `Ok(value)` when the sides agree or only one changed.
fn three_way<'v, T: PartialEq>(
    base: Option<&'v T>,
    local: Option<&'v T>,
    remote: Option<&'v T>,
) -> Result<Option<&'v T>, ()> {
    if local == remote || local == base {
        Ok(remote)
    } else if remote == base {
        Ok(local)
    } else {
        Err(())
    }
}

impl Merger<'_, '_> {
    fn conflict(
        &self,
        kind: ConflictKind,
        entity_type: EntityType,
        entity_id: &str,
        local: Option<Value>,
        remote: Option<Value>,
    ) -> Conflict {
        let mut h = Sha256::new();
        for part in [
            self.sides.session_id.as_bytes(),
            kind.as_str().as_bytes(),
            entity_type.as_str().as_bytes(),
            entity_id.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        for side in [&local, &remote] {
            let bytes = side.as_ref().map(canonical_json).unwrap_or_default();
            h.update([side.is_some() as u8]);
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        Conflict {
            id: format!("c{}", &hex(&h.finalize())[..10]),
            session_id: self.sides.session_id.to_owned(),
            kind,
            entity_type,
            entity_id: entity_id.to_owned(),
            local,
            remote,
        }
    }

    /// How a conflict is settled, or `None` to leave it for the user.
    fn decide(&self, c: &Conflict, times_key: Option<(EntityType, String)>) -> Option<Take> {
        if let Some(take) = self.overrides.get(&c.id) {
            return Some(*take);
        }
        match self.strategy {
            Strategy::LocalWins => Some(Take::Local),
            Strategy::RemoteWins => Some(Take::Remote),
            Strategy::KeepBoth => Some(Take::Both),
            Strategy::AutoMerge => (c.kind == ConflictKind::ConcurrentAdd).then_some(Take::Merge),
            Strategy::Manual => None,
            Strategy::MostRecent => {
                let latest = |times: &ChangeTimes| match &times_key {
                    Some(k) => times.get(k).copied(),
                    None => times.values().max().copied(),
                };
                let (l, r) = (latest(self.sides.local_times), latest(self.sides.remote_times));
                Some(if l > r { Take::Local } else { Take::Remote })
            }
        }
    }

    /// Settles a conflict over one entity; `Ok(None)` leaves it open.
    fn settle(
        &mut self,
        c: Conflict,
        key: (EntityType, String),
        base: Option<&Value>,
    ) -> Result<Option<Option<Value>>, MergeError> {
        let Some(take) = self.decide(&c, Some(key)) else {
            self.out.conflicts.push(c);
            return Ok(None);
        };
        let value = match take {
            Take::Local => c.local.clone(),
            Take::Remote => c.remote.clone(),
            Take::Both => {
                self.out.copy = self.sides.local.cloned();
                c.remote.clone()
            }
            Take::Merge => match (&c.local, &c.remote) {
                (Some(l), Some(r)) => {
                    Some(merge_fields(base, l, r).map_err(|what| MergeError { id: c.id.clone(), what })?)
                }
                (l, r) => l.clone().or_else(|| r.clone()),
            },
        };
        self.out.resolved.push((c, take));
        Ok(Some(value))
    }

    fn merge_sessions(&mut self, base: &Session, local: &Session, remote: &Session) -> Result<Session, MergeError> {
        let mut merged = remote.clone();

        // Top-level fields.
        let mut keys: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for (k, _) in remote.metadata().chain(local.metadata()).chain(base.metadata()) {
            if seen.insert(k) {
                keys.push(k);
            }
        }
        for key in keys {
            let (b, l, r) = (base.field(key), local.field(key), remote.field(key));
            let value = match three_way(b, l, r) {
                Ok(v) => v.cloned(),
                Err(()) => {
                    let kind =
                        if l.is_none() || r.is_none() { ConflictKind::Deletion } else { ConflictKind::SessionMetadata };
                    let c = self.conflict(kind, EntityType::Metadata, key, l.cloned(), r.cloned());
                    match self.settle(c, (EntityType::Metadata, key.to_owned()), b)? {
                        Some(v) => v,
                        None => continue,
                    }
                }
            };
            match value {
                Some(v) => {
                    let position = local.field_position(key).or(remote.field_position(key)).unwrap_or(usize::MAX);
                    merged.set_field(key, v, position);
                }
                None => {
                    merged.remove_field(key);
                }
            }
        }

        // Requests, by entity id.
        let index = |s: &Session| -> Vec<(String, Request)> {
            entity_ids(&s.requests).into_iter().zip(s.requests.iter().cloned()).collect()
        };
        let (b, l, r) = (index(base), index(local), index(remote));
        let find = |list: &[(String, Request)], id: &str| list.iter().find(|(x, _)| x == id).map(|(_, q)| q.clone());
        let base_ids: HashSet<&str> = b.iter().map(|(id, _)| id.as_str()).collect();
        let local_added: Vec<&str> =
            l.iter().map(|(id, _)| id.as_str()).filter(|id| !base_ids.contains(id) && find(&r, id).is_none()).collect();
        let remote_added: Vec<&str> =
            r.iter().map(|(id, _)| id.as_str()).filter(|id| !base_ids.contains(id) && find(&l, id).is_none()).collect();

        // Which additions survive: both sides' unless both added and the strategy says otherwise.
        let (mut keep_local_adds, mut keep_remote_adds, mut sort_adds) = (true, true, false);
        if !local_added.is_empty() && !remote_added.is_empty() {
            let c = self.conflict(
                ConflictKind::ConcurrentAdd,
                EntityType::Message,
                self.sides.session_id,
                Some(Value::Array(local_added.iter().filter_map(|id| find(&l, id)).map(|q| q.to_value()).collect())),
                Some(Value::Array(remote_added.iter().filter_map(|id| find(&r, id)).map(|q| q.to_value()).collect())),
            );
            match self.decide(&c, None) {
                None => {
                    self.out.conflicts.push(c);
                    keep_local_adds = false;
                }
                Some(take) => {
                    match take {
                        Take::Local => keep_remote_adds = false,
                        Take::Remote => keep_local_adds = false,
                        Take::Both => {
                            self.out.copy = Some(local.clone());
                            keep_local_adds = false;
                        }
                        Take::Merge => sort_adds = true,
                    }
                    self.out.resolved.push((c, take));
                }
            }
        }

        // Every id, each decided three-way.
        let mut order: Vec<String> = Vec::new();
        let mut seen_ids = HashSet::new();
        for (id, _) in r.iter().chain(l.iter()) {
            if seen_ids.insert(id.clone()) {
                order.push(id.clone());
            }
        }
        let mut kept: Vec<(String, Request, bool)> = Vec::new(); // (id, request, is_addition)
        for id in order {
            let (bq, lq, rq) = (find(&b, &id), find(&l, &id), find(&r, &id));
            let is_local_add = local_added.contains(&id.as_str());
            let is_remote_add = remote_added.contains(&id.as_str());
            if (is_local_add && !keep_local_adds) || (is_remote_add && !keep_remote_adds) {
                continue;
            }
            let chosen = match three_way(bq.as_ref(), lq.as_ref(), rq.as_ref()) {
                Ok(q) => q.cloned(),
                Err(()) => {
                    let kind =
                        if lq.is_none() || rq.is_none() { ConflictKind::Deletion } else { ConflictKind::MessageEdit };
                    let c = self.conflict(
                        kind,
                        EntityType::Message,
                        &id,
                        lq.as_ref().map(Request::to_value),
                        rq.as_ref().map(Request::to_value),
                    );
                    let base_value = bq.as_ref().map(Request::to_value);
                    match self.settle(c, (EntityType::Message, id.clone()), base_value.as_ref())? {
                        // Left open: keep VS Code's version in place; nothing is written anyway.
                        None => rq.clone(),
                        Some(v) => v.and_then(|v| Request::from_value(v).ok()),
                    }
                }
            };
            if let Some(q) = chosen {
                kept.push((id.clone(), q, !base_ids.contains(id.as_str())));
            }
        }
        // Requests of the base first, in VS Code's order; then additions — in their side's
        // order when one side added, by timestamp when both did.
        let (mut old, mut added): (Vec<_>, Vec<_>) = kept.into_iter().partition(|(_, _, add)| !add);
        if sort_adds {
            added.sort_by_key(|(_, q, _)| q.timestamp().unwrap_or(i64::MAX));
        }
        old.extend(added);
        merged.requests = old.into_iter().map(|(_, q, _)| q).collect();
        Ok(merged)
    }
}

/// Field-by-field three-way merge of two versions of one JSON object (a request, or a field's
/// value); `Err` names a field both sides changed differently.
fn merge_fields(base: Option<&Value>, local: &Value, remote: &Value) -> Result<Value, String> {
    let (Value::Object(l), Value::Object(r)) = (local, remote) else {
        return Err("the same value".into());
    };
    let empty = Map::new();
    let b = base.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = r.clone();
    for key in l.keys().chain(r.keys()).chain(b.keys()) {
        match three_way(b.get(key), l.get(key), r.get(key)) {
            Ok(Some(v)) => {
                out.insert(key.clone(), v.clone());
            }
            Ok(None) => {
                out.shift_remove(key);
            }
            Err(()) => return Err(format!("`{key}`")),
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: Value) -> Session {
        Session::from_value(v).unwrap()
    }

    fn req(id: &str, ts: i64, text: &str) -> Value {
        json!({"requestId": id, "timestamp": ts, "message": {"text": text}, "response": []})
    }

    fn run(base: Option<&Session>, local: Option<&Session>, remote: Option<&Session>, strategy: Strategy) -> Outcome {
        let times = ChangeTimes::new();
        let sides = Sides { session_id: "s", base, local, remote, local_times: &times, remote_times: &times };
        merge(&sides, strategy, &HashMap::new()).unwrap()
    }

    fn ids(s: &Session) -> Vec<String> {
        entity_ids(&s.requests)
    }

    #[test]
    fn changes_to_different_entities_merge_cleanly() {
        let base = s(json!({"customTitle": "t", "requests": [req("a", 1, "a"), req("b", 2, "b")]}));
        let local = s(json!({"customTitle": "renamed", "requests": [req("a", 1, "a"), req("b", 2, "b")]}));
        let mut rb = req("b", 2, "b");
        rb["response"] = json!([{"value": "answer"}]);
        let remote = s(json!({"customTitle": "t", "requests": [req("a", 1, "a"), rb.clone()]}));
        for strategy in [Strategy::AutoMerge, Strategy::Manual, Strategy::LocalWins] {
            let out = run(Some(&base), Some(&local), Some(&remote), strategy);
            assert!(out.conflicts.is_empty() && out.resolved.is_empty());
            let m = out.merged.unwrap();
            assert_eq!(m.custom_title(), Some("renamed"));
            assert_eq!(m.requests[1].to_value(), rb);
        }
    }

    #[test]
    fn the_same_change_on_both_sides_is_agreement() {
        let base = s(json!({"requests": [req("a", 1, "a")]}));
        let both = s(json!({"customTitle": "x", "requests": [req("a", 1, "a"), req("b", 2, "b")], "y": 1}));
        let out = run(Some(&base), Some(&both), Some(&both), Strategy::Manual);
        assert!(out.conflicts.is_empty());
        assert_eq!(out.merged.unwrap(), both);
    }

    #[test]
    fn each_conflict_kind_is_detected() {
        let base = s(json!({"customTitle": "t", "requests": [req("a", 1, "a"), req("b", 2, "b")]}));
        let mut la = req("a", 1, "a");
        la["response"] = json!([{"value": "local"}]);
        let mut ra = req("a", 1, "a");
        ra["response"] = json!([{"value": "remote"}]);
        let mut rb = req("b", 2, "b");
        rb["isCanceled"] = json!(true);
        let local = s(json!({"customTitle": "L", "requests": [la, req("c", 3, "local add")]}));
        let remote = s(json!({"customTitle": "R", "requests": [ra, rb, req("d", 4, "remote add")]}));
        let out = run(Some(&base), Some(&local), Some(&remote), Strategy::Manual);
        let mut kinds: Vec<(&str, &str)> =
            out.conflicts.iter().map(|c| (c.kind.as_str(), c.entity_id.as_str())).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [("concurrent_add", "s"), ("deletion", "b"), ("message_edit", "a"), ("session_metadata", "customTitle")]
        );
        // auto_merge settles only the concurrent additions.
        let out = run(Some(&base), Some(&local), Some(&remote), Strategy::AutoMerge);
        assert_eq!(out.conflicts.len(), 3);
        assert_eq!(out.resolved.len(), 1);
    }

    #[test]
    fn auto_merge_takes_the_union_of_concurrent_additions_by_timestamp() {
        let base = s(json!({"requests": [req("a", 1, "a")]}));
        let local = s(json!({"requests": [req("a", 1, "a"), req("l1", 10, "l1"), req("l2", 30, "l2")]}));
        let remote = s(json!({"requests": [req("a", 1, "a"), req("r1", 20, "r1")]}));
        let out = run(Some(&base), Some(&local), Some(&remote), Strategy::AutoMerge);
        assert!(out.conflicts.is_empty());
        assert_eq!(ids(out.merged.as_ref().unwrap()), ["a", "l1", "r1", "l2"]);
        assert_eq!(
            ids(&run(Some(&base), Some(&local), Some(&remote), Strategy::LocalWins).merged.unwrap()),
            ["a", "l1", "l2"]
        );
        assert_eq!(
            ids(&run(Some(&base), Some(&local), Some(&remote), Strategy::RemoteWins).merged.unwrap()),
            ["a", "r1"]
        );
        let both = run(Some(&base), Some(&local), Some(&remote), Strategy::KeepBoth);
        assert_eq!(ids(both.merged.as_ref().unwrap()), ["a", "r1"]);
        assert_eq!(both.copy.unwrap(), local);
    }

    #[test]
    fn strategies_settle_an_edit_conflict() {
        let base = s(json!({"customTitle": "t", "requests": []}));
        let local = s(json!({"customTitle": "L", "requests": []}));
        let remote = s(json!({"customTitle": "R", "requests": []}));
        let title = |o: Outcome| o.merged.unwrap().custom_title().unwrap().to_owned();
        assert_eq!(title(run(Some(&base), Some(&local), Some(&remote), Strategy::LocalWins)), "L");
        assert_eq!(title(run(Some(&base), Some(&local), Some(&remote), Strategy::RemoteWins)), "R");
        let manual = run(Some(&base), Some(&local), Some(&remote), Strategy::Manual);
        assert_eq!(manual.conflicts.len(), 1);
        assert_eq!(manual.conflicts[0].kind, ConflictKind::SessionMetadata);

        // most_recent: by the change times of the entity on each side.
        let key = (EntityType::Metadata, "customTitle".to_string());
        let early: ChangeTimes = [(key.clone(), DateTime::from_timestamp(100, 0).unwrap())].into();
        let late: ChangeTimes = [(key, DateTime::from_timestamp(200, 0).unwrap())].into();
        let sides = Sides {
            session_id: "s",
            base: Some(&base),
            local: Some(&local),
            remote: Some(&remote),
            local_times: &late,
            remote_times: &early,
        };
        assert_eq!(title(merge(&sides, Strategy::MostRecent, &HashMap::new()).unwrap()), "L");
        let sides = Sides { local_times: &early, remote_times: &late, ..sides };
        assert_eq!(title(merge(&sides, Strategy::MostRecent, &HashMap::new()).unwrap()), "R");

        // An override from `resolve` beats the strategy.
        let id = manual.conflicts[0].id.clone();
        let times = ChangeTimes::new();
        let sides = Sides {
            session_id: "s",
            base: Some(&base),
            local: Some(&local),
            remote: Some(&remote),
            local_times: &times,
            remote_times: &times,
        };
        let out = merge(&sides, Strategy::Manual, &[(id, Take::Local)].into()).unwrap();
        assert!(out.conflicts.is_empty());
        assert_eq!(title(out), "L");
    }

    #[test]
    fn deletion_against_a_change() {
        let base = s(json!({"requests": [req("a", 1, "a")]}));
        let changed = s(json!({"customTitle": "x", "requests": [req("a", 1, "a")]}));
        // Deleted locally, changed in VS Code.
        let out = run(Some(&base), None, Some(&changed), Strategy::AutoMerge);
        assert_eq!(out.conflicts.len(), 1);
        assert_eq!(out.conflicts[0].kind, ConflictKind::Deletion);
        assert_eq!(run(Some(&base), None, Some(&changed), Strategy::LocalWins).merged, None);
        assert_eq!(run(Some(&base), None, Some(&changed), Strategy::RemoteWins).merged, Some(changed.clone()));
        // Deleted on one side, untouched on the other: the deletion wins, no conflict.
        let out = run(Some(&base), Some(&base), None, Strategy::Manual);
        assert!(out.conflicts.is_empty() && out.merged.is_none());
    }

    #[test]
    fn a_session_first_seen_on_both_sides_with_different_content_conflicts() {
        let local = s(json!({"customTitle": "L", "requests": [req("a", 1, "a")]}));
        let remote = s(json!({"customTitle": "R", "requests": [req("a", 1, "a")]}));
        let out = run(None, Some(&local), Some(&remote), Strategy::AutoMerge);
        assert_eq!(out.conflicts.len(), 1);
        // Same content first seen on both sides: agreement.
        assert!(run(None, Some(&local), Some(&local), Strategy::Manual).conflicts.is_empty());
    }

    #[test]
    fn take_merge_combines_fields_or_refuses() {
        let base = s(json!({"requests": [req("a", 1, "a")]}));
        let mut la = req("a", 1, "a");
        la["isCanceled"] = json!(true);
        let mut ra = req("a", 1, "a");
        ra["response"] = json!([{"value": "r"}]);
        let local = s(json!({"requests": [la]}));
        let remote = s(json!({"requests": [ra]}));
        let manual = run(Some(&base), Some(&local), Some(&remote), Strategy::Manual);
        let id = manual.conflicts[0].id.clone();
        let times = ChangeTimes::new();
        let sides = Sides {
            session_id: "s",
            base: Some(&base),
            local: Some(&local),
            remote: Some(&remote),
            local_times: &times,
            remote_times: &times,
        };
        let out = merge(&sides, Strategy::Manual, &[(id, Take::Merge)].into()).unwrap();
        let q = &out.merged.unwrap().requests[0];
        assert_eq!(q.get("isCanceled"), Some(&json!(true)));
        assert_eq!(q.get("response"), Some(&json!([{"value": "r"}])));

        let mut la2 = req("a", 1, "a");
        la2["response"] = json!([{"value": "l"}]);
        let local2 = s(json!({"requests": [la2]}));
        let manual = run(Some(&base), Some(&local2), Some(&remote), Strategy::Manual);
        let id = manual.conflicts[0].id.clone();
        let sides = Sides { local: Some(&local2), ..sides };
        assert!(merge(&sides, Strategy::Manual, &[(id, Take::Merge)].into()).is_err());
    }

    #[test]
    fn conflict_ids_are_stable_and_distinct() {
        let base = s(json!({"customTitle": "t", "requests": []}));
        let local = s(json!({"customTitle": "L", "requests": []}));
        let remote = s(json!({"customTitle": "R", "requests": []}));
        let a = run(Some(&base), Some(&local), Some(&remote), Strategy::Manual);
        let b = run(Some(&base), Some(&local), Some(&remote), Strategy::Manual);
        assert_eq!(a.conflicts[0].id, b.conflicts[0].id);
        let remote2 = s(json!({"customTitle": "R2", "requests": []}));
        let c = run(Some(&base), Some(&local), Some(&remote2), Strategy::Manual);
        assert_ne!(a.conflicts[0].id, c.conflicts[0].id);
    }
}
