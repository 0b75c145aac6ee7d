//! `chasm log --graph`: a session's history as two lines side by side — changes made through
//! chasm (local) and changes seen in VS Code (remote) — meeting at each sync checkpoint, with
//! the places both sides changed the same thing, and how that was settled, marked. What
//! `git log --graph` does for branches, so a user sees at a glance when each side changed.

use std::collections::{HashMap, HashSet};

use chrono::Local;

use super::style::{Paint, paint};
use crate::journal::{ChangeType, EntityType, Origin, SyncChange};

/// What a line says about the event beyond what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    None,
    /// The other side changed the same entity since the last checkpoint.
    BothChanged,
    /// Written by the sync (or `resolve`) that settled a change made on both sides.
    Resolution,
}

/// One line of the graph, oldest first.
pub struct Line<'a> {
    pub event: &'a SyncChange,
    pub mark: Mark,
}

/// What one side changed since each session's merge base, by session: a checkpoint clears a
/// session's entries without looking at any other session's.
#[derive(Default)]
struct Changed<'a>(HashMap<&'a str, HashSet<(EntityType, &'a str)>>);

/// Marks each event of `events` (seq order; any mix of sessions). Checkpoints end a stretch;
/// within one, an entity changed on both sides is marked where the second side changed it,
/// and a local change written together with the next checkpoint (same time, as sync and
/// `resolve` write them) to such an entity is its resolution.
pub fn lines(events: &[SyncChange]) -> Vec<Line<'_>> {
    // When each event's session next checkpoints, to recognise resolutions.
    let mut next_checkpoint: Vec<Option<chrono::DateTime<chrono::Utc>>> = vec![None; events.len()];
    let mut upcoming: HashMap<&str, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for (i, e) in events.iter().enumerate().rev() {
        if e.change_type == ChangeType::Merge {
            upcoming.insert(&e.session_id, e.timestamp);
        } else {
            next_checkpoint[i] = upcoming.get(e.session_id.as_str()).copied();
        }
    }
    let (mut local, mut remote) = (Changed::default(), Changed::default());
    // Sessions with a merge base so far: a checkpoint, or (never checkpointed) the state just
    // before the first local change, as the sync's three-way merge sees it.
    let mut based: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let session = e.session_id.as_str();
        if e.origin == Origin::Local && based.insert(session) {
            remote.0.remove(session);
        }
        let mark = match (e.change_type, e.entity_type, e.origin) {
            (ChangeType::Merge, _, _) => {
                local.0.remove(session);
                remote.0.remove(session);
                based.insert(session);
                Mark::None
            }
            // A session coming into being is where both lanes start, not a change that clashes.
            (ChangeType::Create, EntityType::Session, _) => Mark::None,
            (_, EntityType::Tag, _) => Mark::None,
            (_, _, origin) => {
                let (mine, theirs) = match origin {
                    Origin::Local => (&mut local, &remote),
                    Origin::Remote => (&mut remote, &local),
                };
                let theirs = theirs.0.get(session);
                let changed = |entity: (EntityType, &str)| theirs.is_some_and(|t| t.contains(&entity));
                // A whole-session change (a delete or a replacement) meets any change of the
                // other side.
                let clash = if e.entity_type == EntityType::Session {
                    theirs.is_some_and(|t| !t.is_empty())
                } else {
                    changed((e.entity_type, e.entity_id.as_str()))
                };
                let clash = clash || changed((EntityType::Session, session));
                mine.0.entry(session).or_default().insert((e.entity_type, e.entity_id.as_str()));
                match (clash, origin) {
                    (true, Origin::Local) if next_checkpoint[i] == Some(e.timestamp) => Mark::Resolution,
                    (true, _) => Mark::BothChanged,
                    (false, _) => Mark::None,
                }
            }
        };
        out.push(Line { event: e, mark });
    }
    out
}

/// A line as text: seq, the two lanes, the time, the session (its short id, when the graph is
/// of several), what happened.
pub fn render(line: &Line, what: &str, session: Option<&str>, colour: bool) -> String {
    let e = line.event;
    let lanes = match (e.change_type, e.origin) {
        (ChangeType::Merge, _) => "*=*",
        (_, Origin::Local) => "* |",
        (_, Origin::Remote) => "| *",
    };
    let when = e.timestamp.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S");
    let session = session.map_or(String::new(), |short| format!("{short}  "));
    let what =
        if e.change_type == ChangeType::Merge { "checkpoint: both sides in step".to_owned() } else { what.to_owned() };
    let mark = match line.mark {
        Mark::None => String::new(),
        Mark::BothChanged => paint(colour, Paint::Red, "   ! changed on both sides since the last checkpoint"),
        Mark::Resolution => paint(colour, Paint::Green, "   <- resolution"),
    };
    let lanes = paint(colour, if e.change_type == ChangeType::Merge { Paint::Green } else { Paint::Dim }, lanes);
    format!("{:>6}  {lanes}  {when}  {session}{what}{mark}", e.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::NewChange;
    use serde_json::json;

    fn event(seq: u64, origin: Origin, change_type: ChangeType, entity: &str, t: i64) -> SyncChange {
        let entity_type = if change_type == ChangeType::Merge { EntityType::Session } else { EntityType::Metadata };
        SyncChange::seal(
            NewChange {
                session_id: "s".into(),
                change_type,
                entity_type,
                entity_id: entity.into(),
                timestamp: chrono::DateTime::from_timestamp_millis(t).unwrap(),
                origin,
                provider: "vscode".into(),
                payload: json!(null),
            },
            seq,
            [0; 32],
        )
    }

    #[test]
    fn a_change_made_on_both_sides_and_its_resolution_are_marked() {
        use ChangeType::{Merge, Update};
        use Origin::{Local, Remote};
        let events = vec![
            event(1, Local, Merge, "s", 1),
            event(2, Local, Update, "customTitle", 2),
            event(3, Remote, Update, "other", 3),
            event(4, Remote, Update, "customTitle", 4),
            event(5, Local, Update, "customTitle", 9),
            event(6, Local, Merge, "s", 9),
            event(7, Remote, Update, "customTitle", 10),
        ];
        let marks: Vec<Mark> = lines(&events).iter().map(|l| l.mark).collect();
        use Mark::*;
        assert_eq!(marks, [None, None, None, BothChanged, Resolution, None, None]);
        let text = render(&lines(&events)[3], "customTitle = \"B\"", Option::None, false);
        assert!(text.contains("| *") && text.contains("changed on both sides"), "{text}");
        assert!(render(&lines(&events)[5], "", Option::None, false).contains("*=*"));
    }

    /// The marks as first written: one set of changed entities per side for all sessions,
    /// scanned whole at every checkpoint (quadratic in a long journal).
    fn marks_by_scanning(events: &[SyncChange]) -> Vec<Mark> {
        let mut next_checkpoint = vec![Option::None; events.len()];
        let mut upcoming = HashMap::new();
        for (i, e) in events.iter().enumerate().rev() {
            if e.change_type == ChangeType::Merge {
                upcoming.insert(e.session_id.as_str(), e.timestamp);
            } else {
                next_checkpoint[i] = upcoming.get(e.session_id.as_str()).copied();
            }
        }
        let (mut local, mut remote) = (HashSet::new(), HashSet::new());
        let mut based = HashSet::new();
        let mut out = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let key = (e.session_id.as_str(), e.entity_type, e.entity_id.as_str());
            if e.origin == Origin::Local && based.insert(e.session_id.as_str()) {
                remote.retain(|(s, _, _): &(&str, EntityType, &str)| *s != e.session_id);
            }
            out.push(match (e.change_type, e.entity_type, e.origin) {
                (ChangeType::Merge, _, _) => {
                    local.retain(|(s, _, _): &(&str, EntityType, &str)| *s != e.session_id);
                    remote.retain(|(s, _, _): &(&str, EntityType, &str)| *s != e.session_id);
                    based.insert(e.session_id.as_str());
                    Mark::None
                }
                (ChangeType::Create, EntityType::Session, _) | (_, EntityType::Tag, _) => Mark::None,
                (_, _, origin) => {
                    let (mine, theirs) = match origin {
                        Origin::Local => (&mut local, &remote),
                        Origin::Remote => (&mut remote, &local),
                    };
                    let clash = if e.entity_type == EntityType::Session {
                        theirs.iter().any(|(s, _, _)| *s == e.session_id)
                    } else {
                        theirs.contains(&key)
                    } || theirs.contains(&(key.0, EntityType::Session, key.0));
                    mine.insert(key);
                    match (clash, origin) {
                        (true, Origin::Local) if next_checkpoint[i] == Some(e.timestamp) => Mark::Resolution,
                        (true, _) => Mark::BothChanged,
                        (false, _) => Mark::None,
                    }
                }
            });
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn marks_kept_by_session_are_the_marks_of_scanning_every_change(
            steps in proptest::collection::vec((0..3usize, 0..2usize, 0..4usize, 0..5usize, 0..4i64), 0..60)
        ) {
            let sessions = ["a", "b", "c"];
            let events: Vec<SyncChange> = steps
                .iter()
                .enumerate()
                .map(|(k, &(s, o, c, t, at))| {
                    let origin = [Origin::Local, Origin::Remote][o];
                    let change_type = [ChangeType::Create, ChangeType::Update, ChangeType::Delete, ChangeType::Merge][c];
                    let (entity_type, entity_id) = match (change_type, t) {
                        (ChangeType::Merge, _) | (_, 0) => (EntityType::Session, sessions[s]),
                        (_, 1) => (EntityType::Tag, "t"),
                        (_, 2) => (EntityType::Metadata, "customTitle"),
                        (_, n) => (EntityType::Message, ["r1", "r2"][n - 3]),
                    };
                    let mut e = event(k as u64 + 1, origin, change_type, entity_id, at);
                    (e.session_id, e.entity_type) = (sessions[s].into(), entity_type);
                    e
                })
                .collect();
            let marks: Vec<Mark> = lines(&events).iter().map(|l| l.mark).collect();
            proptest::prop_assert_eq!(marks, marks_by_scanning(&events));
        }
    }
}
