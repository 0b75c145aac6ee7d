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
    type Changed<'a> = HashSet<(&'a str, EntityType, &'a str)>;
    let (mut local, mut remote): (Changed, Changed) = (HashSet::new(), HashSet::new());
    // Sessions with a merge base so far: a checkpoint, or (never checkpointed) the state just
    // before the first local change, as the sync's three-way merge sees it.
    let mut based: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let key = (e.session_id.as_str(), e.entity_type, e.entity_id.as_str());
        let whole_session = |set: &Changed| set.iter().any(|(s, _, _)| *s == e.session_id);
        if e.origin == Origin::Local && based.insert(&e.session_id) {
            remote.retain(|(s, _, _)| *s != e.session_id);
        }
        let mark = match (e.change_type, e.entity_type, e.origin) {
            (ChangeType::Merge, _, _) => {
                local.retain(|(s, _, _)| *s != e.session_id);
                remote.retain(|(s, _, _)| *s != e.session_id);
                based.insert(&e.session_id);
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
                // A whole-session change (a delete or a replacement) meets any change of the
                // other side.
                let clash =
                    if e.entity_type == EntityType::Session { whole_session(theirs) } else { theirs.contains(&key) };
                let clash = clash || theirs.contains(&(key.0, EntityType::Session, key.0));
                mine.insert(key);
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

/// A line as text: seq, the two lanes, the time, what happened.
pub fn render(line: &Line, what: &str, with_session: bool, colour: bool) -> String {
    let e = line.event;
    let lanes = match (e.change_type, e.origin) {
        (ChangeType::Merge, _) => "*=*",
        (_, Origin::Local) => "* |",
        (_, Origin::Remote) => "| *",
    };
    let when = e.timestamp.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S");
    let session =
        if with_session { format!("{}  ", e.session_id.chars().take(8).collect::<String>()) } else { String::new() };
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
        let text = render(&lines(&events)[3], "customTitle = \"B\"", false, false);
        assert!(text.contains("| *") && text.contains("changed on both sides"), "{text}");
        assert!(render(&lines(&events)[5], "", false, false).contains("*=*"));
    }
}
