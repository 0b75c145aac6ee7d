//! Writing sessions back where VS Code reads them, in the format each already uses.
//!
//! A `.json` session is replaced whole, atomically. A `.jsonl` mutation log gets the mutation
//! entries that turn the state VS Code reads now into the new one, appended as complete lines
//! (and, like VS Code's own writer, is compacted into one kind 0 line once it holds more than
//! [`COMPACT_AFTER`] entries). Before writing, the file is read again: if VS Code changed it since
//! chasm read it, nothing is written this round.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::{FileFormat, jsonl};
use crate::session::{REQUESTS_KEY, Session};

/// VS Code compacts a log after about this many entries; chasm does the same.
pub const COMPACT_AFTER: usize = 512;

/// Why a session could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: changed in VS Code while chasm was syncing; it will be picked up next time")]
    ChangedMeanwhile(String),
    #[error(
        "{0}: ends with an incomplete line that has not changed for a while (VS Code stopped mid-write?); chasm writes nothing after it until the line is completed or removed"
    )]
    TornLeft(String),
}

/// How long a log's incomplete last line may stay as it is and still be taken for VS Code's
/// write under way: a line is one write, done in far less; one older was left by a writer that
/// stopped (a crash, a full disk), and waiting for the next sync will not finish it.
pub const TORN_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a log's incomplete last line has stood longer than [`TORN_FOR`] (the file unchanged
/// since): left by a writer that stopped, not one under way.
pub fn torn_left(path: &Path) -> bool {
    let age = std::fs::metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
    age.is_some_and(|age| age > TORN_FOR)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io { path: path.display().to_string(), source }
}

/// The mutation-log entries (kinds 1–3) that turn `old` into `new`, as VS Code's own writer
/// would emit them: changed top-level fields are set, removed ones deleted, and requests are
/// appended, truncated, or replaced in place.
pub fn mutations(old: &Value, new: &Value) -> Vec<Value> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return vec![json!({"kind": 0, "v": new})];
    };
    let mut out = Vec::new();
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        out.push(json!({"kind": 3, "k": [key]}));
    }
    for (key, value) in new {
        if key == REQUESTS_KEY
            && let (Some(Value::Array(o)), Value::Array(n)) = (old.get(key), value)
        {
            requests_mutations(o, n, &mut out);
            continue;
        }
        if old.get(key) != Some(value) {
            out.push(json!({"kind": 1, "k": [key], "v": value}));
        }
    }
    out
}

fn requests_mutations(old: &[Value], new: &[Value], out: &mut Vec<Value>) {
    let common = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let same_ids = old.len() == new.len()
        && old.iter().zip(new).all(|(a, b)| a.get("requestId").is_some() && a.get("requestId") == b.get("requestId"));
    if common == old.len() && common == new.len() {
        // Unchanged.
    } else if common == old.len() {
        out.push(json!({"kind": 2, "k": [REQUESTS_KEY], "v": &new[common..]}));
    } else if common == new.len() {
        out.push(json!({"kind": 2, "k": [REQUESTS_KEY], "i": common}));
    } else if same_ids {
        // The same requests, some edited (a response streamed in): set each in place.
        for (i, (a, b)) in old.iter().zip(new).enumerate() {
            if a != b {
                out.push(json!({"kind": 1, "k": [REQUESTS_KEY, i], "v": b}));
            }
        }
    } else {
        out.push(json!({"kind": 2, "k": [REQUESTS_KEY], "i": common, "v": &new[common..]}));
    }
}

/// Writes `session` to `path` in `format`. `expected` is the session as chasm read the file
/// (`None` for a new file); if the file no longer holds it, nothing is written.
pub fn write_session(
    path: &Path,
    format: FileFormat,
    session: &Session,
    expected: Option<&Session>,
) -> Result<(), WriteError> {
    let current = read_current(path, format)?;
    if current.as_ref().map(|(s, _, _)| s) != expected {
        return Err(WriteError::ChangedMeanwhile(path.display().to_string()));
    }
    let new = session.to_value();
    match (format, current) {
        (FileFormat::Jsonl, Some((old, entries, ends_with_newline))) => {
            let lines = mutations(&old.to_value(), &new);
            if lines.is_empty() {
                return Ok(());
            }
            if entries + lines.len() > COMPACT_AFTER {
                return crate::atomic::write(path, jsonl::initial_line(&new).as_bytes()).map_err(io(path));
            }
            let mut text = String::new();
            if !ends_with_newline {
                text.push('\n');
            }
            for line in lines {
                text.push_str(&serde_json::to_string(&line).expect("a JSON value always serializes"));
                text.push('\n');
            }
            let mut f = std::fs::OpenOptions::new().append(true).open(path).map_err(io(path))?;
            f.write_all(text.as_bytes()).map_err(io(path))?;
            f.sync_all().map_err(io(path))
        }
        (FileFormat::Jsonl, None) => crate::atomic::write(path, jsonl::initial_line(&new).as_bytes()).map_err(io(path)),
        (FileFormat::Json, _) => {
            let text = serde_json::to_string_pretty(&new).expect("a JSON value always serializes");
            crate::atomic::write(path, text.as_bytes()).map_err(io(path))
        }
    }
}

/// Removes a session's files (`.json` and `.jsonl` alike, so VS Code does not fall back to the
/// other). `expected` guards against removing a session VS Code changed since chasm read it.
pub fn delete_session(path: &Path, format: FileFormat, expected: Option<&Session>) -> Result<(), WriteError> {
    let current = read_current(path, format)?;
    if current.as_ref().map(|(s, _, _)| s) != expected {
        return Err(WriteError::ChangedMeanwhile(path.display().to_string()));
    }
    for p in [path.with_extension("jsonl"), path.with_extension("json")] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
    }
    Ok(())
}

/// The session a file holds now, its entry count and whether it ends with a newline; `None`
/// when there is no file. A torn last line or unreadable content counts as a change.
fn read_current(path: &Path, format: FileFormat) -> Result<Option<(Session, usize, bool)>, WriteError> {
    let bytes = match super::read_file(path) {
        Ok(b) => b,
        Err(super::ReadError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(super::ReadError::Io { source, .. }) => return Err(io(path)(source)),
        // Not a session file any more (a FIFO, a folder, a giant): not what chasm read.
        Err(_) => return Err(WriteError::ChangedMeanwhile(path.display().to_string())),
    };
    let changed = || WriteError::ChangedMeanwhile(path.display().to_string());
    let (value, entries) = match format {
        FileFormat::Json => (serde_json::from_slice::<Value>(&bytes).map_err(|_| changed())?, 1),
        FileFormat::Jsonl => {
            let log = jsonl::read(&bytes).map_err(|_| changed())?;
            if log.torn_tail {
                return Err(if torn_left(path) { WriteError::TornLeft(path.display().to_string()) } else { changed() });
            }
            (log.state, log.entries)
        }
    };
    let session = Session::from_value(value).map_err(|_| changed())?;
    Ok(Some((session, entries, bytes.ends_with(b"\n"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Map;

    /// What VS Code reads after the mutations are appended to a log holding `old`.
    fn replayed(old: &Value, new: &Value) -> Value {
        let mut text = jsonl::initial_line(old);
        for m in mutations(old, new) {
            text.push_str(&m.to_string());
            text.push('\n');
        }
        jsonl::read(text.as_bytes()).unwrap().state
    }

    #[test]
    fn streaming_appending_truncating_and_fields() {
        let old = json!({"a": 1, "requests": [{"requestId": "r1", "response": []}], "gone": true});
        let new = json!({"a": 2, "requests": [{"requestId": "r1", "response": [{"value": "hi"}]}, {"requestId": "r2"}], "added": []});
        assert_eq!(replayed(&old, &new), new);
        let streamed = json!({"a": 1, "requests": [{"requestId": "r1", "response": [{"value": "x"}]}], "gone": true});
        let m = mutations(&old, &streamed);
        assert_eq!(
            m,
            [json!({"kind": 1, "k": ["requests", 0], "v": {"requestId": "r1", "response": [{"value": "x"}]}})]
        );
        let truncated = json!({"a": 1, "requests": [], "gone": true});
        assert_eq!(mutations(&old, &truncated), [json!({"kind": 2, "k": ["requests"], "i": 0})]);
        assert!(mutations(&old, &old).is_empty());
    }

    fn arb_session() -> impl Strategy<Value = Value> {
        let req = (0u8..4, prop::option::of(0u8..3)).prop_map(
            |(id, resp)| json!({"requestId": format!("r{id}"), "response": resp.map(|r| vec![r]).unwrap_or_default()}),
        );
        (prop::collection::vec(("[a-d]", 0u8..3), 0..4), prop::collection::vec(req, 0..5)).prop_map(
            |(fields, requests)| {
                let mut m = Map::new();
                for (k, v) in fields {
                    m.insert(k, json!(v));
                }
                m.insert("requests".into(), Value::Array(requests));
                Value::Object(m)
            },
        )
    }

    proptest! {
        /// A log chasm appends to, replayed with VS Code's rules, is the session chasm meant.
        #[test]
        fn appended_mutations_replay_to_the_new_session(old in arb_session(), new in arb_session()) {
            prop_assert_eq!(replayed(&old, &new), new);
        }
    }

    #[test]
    fn writes_only_over_what_was_read() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("s.jsonl");
        let v1 = Session::from_value(json!({"requests": [], "t": 1})).unwrap();
        write_session(&path, FileFormat::Jsonl, &v1, None).unwrap();
        let v2 = Session::from_value(json!({"requests": [{"requestId": "r"}], "t": 1})).unwrap();
        write_session(&path, FileFormat::Jsonl, &v2, Some(&v1)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert_eq!(jsonl::read(&std::fs::read(&path).unwrap()).unwrap().state, v2.to_value());
        // Expecting v1 while the file holds v2: refused, file untouched.
        let v3 = Session::from_value(json!({"requests": [], "t": 3})).unwrap();
        assert!(matches!(
            write_session(&path, FileFormat::Jsonl, &v3, Some(&v1)),
            Err(WriteError::ChangedMeanwhile(_))
        ));
        // A torn last line (VS Code mid-write) counts as a change.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"kind\":1,").unwrap();
        assert!(matches!(
            write_session(&path, FileFormat::Jsonl, &v3, Some(&v2)),
            Err(WriteError::ChangedMeanwhile(_))
        ));
        delete_session(&path, FileFormat::Jsonl, None).unwrap_err();
        // One left that way for longer than a write takes: not a race, but a writer that
        // stopped; a failure to report, not a write to wait for.
        let old = std::time::SystemTime::now() - TORN_FOR * 2;
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        assert!(matches!(write_session(&path, FileFormat::Jsonl, &v3, Some(&v2)), Err(WriteError::TornLeft(_))));
    }
}
