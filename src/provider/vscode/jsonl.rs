//! The `.jsonl` mutation log VS Code writes since 1.109 (`chatSessions/<id>.jsonl`).
//!
//! One JSON object per line: kind 0 replaces the whole state, kind 1 sets the value at a key
//! path, kind 2 truncates (optional `i`) then appends to the array at a path, kind 3 deletes the
//! property at a path. The reader follows VS Code's own (`ObjectMutationLog.read`) with two
//! deliberate differences, both for safety against hostile files:
//!
//! - A last line with no newline that does not parse is a write in progress, not an error: it is
//!   ignored and reported through [`MutationLog::torn_tail`], so a reader racing VS Code never
//!   loses the session and never records half a line as a change.
//! - Paths that VS Code's JavaScript would follow into nonsense (a missing or wrong-typed parent,
//!   an index past the end, a negative index) are errors naming the line, and key paths are at
//!   most [`MAX_PATH_LEN`] long, which bounds how deep a replayed value can nest.

use serde_json::{Map, Value};

use crate::session::json_type;

/// The longest key path accepted. VS Code's paths are a handful of steps
/// (`["requests", 3, "response"]`); the bound keeps replayed values shallow enough to be
/// processed without unbounded recursion.
pub const MAX_PATH_LEN: usize = 64;

/// Why a mutation log cannot be read. Line numbers count from 1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonlError {
    #[error("the mutation log has no complete entry")]
    Empty,
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

/// A replayed mutation log.
#[derive(Debug, Clone, PartialEq)]
pub struct MutationLog {
    /// The state after the last complete entry.
    pub state: Value,
    /// Complete entries read (blank lines not counted).
    pub entries: usize,
    /// Whether an incomplete last line was ignored.
    pub torn_tail: bool,
    /// How many bytes the entries read took: where the next ones will start.
    pub consumed: usize,
}

/// Replays a mutation log from its bytes.
pub fn read(bytes: &[u8]) -> Result<MutationLog, JsonlError> {
    let mut state: Option<Value> = None;
    let walked = walk(bytes, 0, |entry, line| apply(&mut state, entry).map_err(|reason| bad(line, reason)))?;
    match state {
        Some(state) => {
            Ok(MutationLog { state, entries: walked.entries, torn_tail: walked.torn_tail, consumed: walked.consumed })
        }
        None => Err(JsonlError::Empty),
    }
}

/// What [`walk`] went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Complete entries (blank lines not counted).
    pub entries: usize,
    /// Whether an incomplete last line was left alone.
    pub torn_tail: bool,
    /// Where the bytes walked end: after the last complete line.
    pub consumed: usize,
}

/// Goes over the complete entries of a log from byte `start` (a line's start), handing each to
/// `each` with its line number (counted from `start`). A last line with no newline that does not
/// parse is a write in progress: left alone and reported, not an error.
pub fn walk(
    bytes: &[u8],
    start: usize,
    mut each: impl FnMut(Value, usize) -> Result<(), JsonlError>,
) -> Result<Walked, JsonlError> {
    let mut walked = Walked { entries: 0, torn_tail: false, consumed: start };
    let mut start = start;
    let mut line_no = 0;
    while start < bytes.len() {
        let (end, terminated) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(off) => (start + off, true),
            None => (bytes.len(), false),
        };
        line_no += 1;
        let line = &bytes[start..end];
        start = end + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            if terminated {
                walked.consumed = start;
            }
            continue;
        }
        let entry: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) if !terminated => {
                walked.torn_tail = true;
                break;
            }
            Err(e) => return Err(bad(line_no, format!("not valid JSON: {e}"))),
        };
        each(entry, line_no)?;
        walked.entries += 1;
        walked.consumed = start.min(bytes.len());
    }
    Ok(walked)
}

/// One kind 0 line holding the whole state: how chasm writes a complete log.
pub fn initial_line(state: &Value) -> String {
    let mut entry = Map::new();
    entry.insert("kind".into(), Value::from(0));
    entry.insert("v".into(), state.clone());
    let mut line = serde_json::to_string(&Value::Object(entry)).expect("a JSON value always serializes");
    line.push('\n');
    line
}

fn bad(line: usize, reason: String) -> JsonlError {
    JsonlError::BadLine { line, reason }
}

/// One step of a key path.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Applies one entry to the state (`None`: none yet); the error says why it cannot be applied.
pub fn apply(state: &mut Option<Value>, entry: Value) -> Result<(), String> {
    let Value::Object(mut entry) = entry else {
        return Err(format!("an entry must be an object, found {}", json_type(&entry)));
    };
    let kind = entry.get("kind").and_then(Value::as_u64).ok_or("an entry needs a numeric `kind`")?;
    if kind == 0 {
        *state = Some(entry.remove("v").ok_or("kind 0 needs `v`")?);
        return Ok(());
    }
    if kind > 3 {
        return Err(format!("unknown entry kind {kind}"));
    }
    let root = state.as_mut().ok_or("a mutation before the initial state (kind 0)")?;
    let Some(Value::Array(path)) = entry.remove("k") else {
        return Err("a mutation needs a key path `k` (an array)".into());
    };
    if path.len() > MAX_PATH_LEN {
        return Err(format!("key path of {} steps (at most {MAX_PATH_LEN})", path.len()));
    }
    let steps = path.iter().map(step).collect::<Result<Vec<_>, _>>()?;
    let Some((last, parents)) = steps.split_last() else {
        // VS Code ignores a set or delete with an empty path; a push needs an array to push to.
        return if kind == 2 { Err("kind 2 with an empty key path".into()) } else { Ok(()) };
    };
    let parent = navigate(root, parents)?;
    match kind {
        1 => set(parent, last, entry.remove("v").unwrap_or(Value::Null)),
        2 => push(parent, last, entry.remove("v"), entry.get("i")),
        _ => delete(parent, last),
    }
}

fn step(v: &Value) -> Result<Step<'_>, String> {
    match v {
        Value::String(s) => Ok(Step::Key(s)),
        Value::Number(n) => match n.as_u64().and_then(|i| usize::try_from(i).ok()) {
            Some(i) => Ok(Step::Index(i)),
            None => Err(format!("bad array index {n} in key path")),
        },
        other => Err(format!("a key path step must be a string or an index, found {}", json_type(other))),
    }
}

fn navigate<'v>(mut at: &'v mut Value, steps: &[Step]) -> Result<&'v mut Value, String> {
    for (depth, s) in steps.iter().enumerate() {
        at = match (at, s) {
            (Value::Object(map), Step::Key(k)) => {
                map.get_mut(*k).ok_or_else(|| format!("key path step {depth}: no property {k:?}"))?
            }
            (Value::Array(items), Step::Index(i)) => {
                let len = items.len();
                items.get_mut(*i).ok_or_else(|| format!("key path step {depth}: index {i} past the end ({len})"))?
            }
            (other, _) => {
                return Err(format!("key path step {depth}: cannot step into {}", json_type(other)));
            }
        };
    }
    Ok(at)
}

fn set(parent: &mut Value, last: &Step, value: Value) -> Result<(), String> {
    match (parent, last) {
        (Value::Object(map), Step::Key(k)) => {
            map.insert((*k).to_owned(), value);
            Ok(())
        }
        (Value::Array(items), Step::Index(i)) if *i < items.len() => {
            items[*i] = value;
            Ok(())
        }
        (Value::Array(items), Step::Index(i)) if *i == items.len() => {
            items.push(value);
            Ok(())
        }
        (Value::Array(items), Step::Index(i)) => Err(format!("set at index {i} past the end ({})", items.len())),
        (other, _) => Err(format!("cannot set a property of {}", json_type(other))),
    }
}

fn push(parent: &mut Value, last: &Step, values: Option<Value>, truncate: Option<&Value>) -> Result<(), String> {
    let Value::Object(map) = parent else {
        return Err(format!("cannot push into a property of {}", json_type(parent)));
    };
    let Step::Key(key) = last else {
        return Err("kind 2 must name an array property".into());
    };
    let values = match values {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(format!("kind 2 `v` must be an array, found {}", json_type(&other)));
        }
    };
    let truncate = match truncate {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| format!("bad truncate index {v}"))?),
    };
    let slot = map.entry(*key).or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    let Value::Array(items) = slot else {
        return Err(format!("cannot push onto {}", json_type(slot)));
    };
    if let Some(i) = truncate {
        // Truncating past the end leaves the array as it is.
        items.truncate(usize::try_from(i).unwrap_or(usize::MAX));
    }
    items.extend(values);
    Ok(())
}

fn delete(parent: &mut Value, last: &Step) -> Result<(), String> {
    match (parent, last) {
        (Value::Object(map), Step::Key(k)) => {
            map.shift_remove(*k);
            Ok(())
        }
        // JavaScript's `arr[i] = undefined` serializes as null.
        (Value::Array(items), Step::Index(i)) => {
            if let Some(slot) = items.get_mut(*i) {
                *slot = Value::Null;
            }
            Ok(())
        }
        (other, _) => Err(format!("cannot delete a property of {}", json_type(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(text: &str) -> Value {
        read(text.as_bytes()).unwrap().state
    }

    #[test]
    fn replays_all_four_kinds() {
        let log = concat!(
            r#"{"kind":0,"v":{"requests":[],"title":"a"}}"#,
            "\n",
            r#"{"kind":2,"k":["requests"],"v":[{"id":1},{"id":2},{"id":3}]}"#,
            "\n",
            r#"{"kind":1,"k":["requests",1,"response"],"v":[{"value":"hi"}]}"#,
            "\n",
            r#"{"kind":2,"k":["requests"],"v":[{"id":4}],"i":1}"#,
            "\n",
            r#"{"kind":3,"k":["title"]}"#,
            "\n",
            r#"{"kind":1,"k":[],"v":"ignored as VS Code does"}"#,
            "\n",
            r#"{"kind":2,"k":["new"],"v":[1]}"#,
            "\n",
        );
        assert_eq!(state(log), json!({"requests": [{"id": 1}, {"id": 4}], "new": [1]}));
    }

    #[test]
    fn a_later_kind_0_replaces_the_state() {
        let log = "{\"kind\":0,\"v\":{\"a\":1}}\n{\"kind\":1,\"k\":[\"b\"],\"v\":2}\n{\"kind\":0,\"v\":{\"c\":3}}\n";
        assert_eq!(state(log), json!({"c": 3}));
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_a_torn_middle_line_is_an_error() {
        let log = "{\"kind\":0,\"v\":{\"a\":1}}\n{\"kind\":1,\"k\":[\"a\"],\"v\":";
        let read_log = read(log.as_bytes()).unwrap();
        assert_eq!(read_log.state, json!({"a": 1}));
        assert!(read_log.torn_tail);
        let broken = "{\"kind\":0,\"v\":{\"a\":1}}\n{\"kind\":1,\n{\"kind\":1,\"k\":[\"a\"],\"v\":2}\n";
        assert!(matches!(read(broken.as_bytes()), Err(JsonlError::BadLine { line: 2, .. })));
    }

    #[test]
    fn a_complete_last_line_without_newline_counts() {
        let log = "{\"kind\":0,\"v\":{\"a\":1}}\n{\"kind\":1,\"k\":[\"a\"],\"v\":2}";
        assert_eq!(state(log), json!({"a": 2}));
    }

    #[test]
    fn truncate_past_the_end_keeps_the_array() {
        let log = "{\"kind\":0,\"v\":{\"r\":[1,2]}}\n{\"kind\":2,\"k\":[\"r\"],\"i\":99,\"v\":[3]}\n";
        assert_eq!(state(log), json!({"r": [1, 2, 3]}));
    }

    #[test]
    fn hostile_paths_are_errors_not_panics() {
        for line in [
            r#"{"kind":1,"k":["missing","x"],"v":1}"#,
            r#"{"kind":1,"k":["r",-1],"v":1}"#,
            r#"{"kind":1,"k":["r",5],"v":1}"#,
            r#"{"kind":1,"k":["r",18446744073709551616],"v":1}"#,
            r#"{"kind":1,"k":["a","x"],"v":1}"#,
            r#"{"kind":2,"k":["a"],"v":[1]}"#,
            r#"{"kind":2,"k":["r"],"v":[1],"i":-3}"#,
            r#"{"kind":2,"k":["r"],"v":{}}"#,
            r#"{"kind":2,"k":[],"v":[1]}"#,
            r#"{"kind":3,"k":["a",0]}"#,
            r#"{"kind":9,"k":["a"]}"#,
            r#"{"kind":1,"k":[true],"v":1}"#,
            r#"[1,2]"#,
        ] {
            let log = format!("{{\"kind\":0,\"v\":{{\"a\":1,\"r\":[0]}}}}\n{line}\n");
            assert!(matches!(read(log.as_bytes()), Err(JsonlError::BadLine { line: 2, .. })), "{line}");
        }
        let long_path: Vec<String> = (0..=MAX_PATH_LEN).map(|_| "\"a\"".to_string()).collect();
        let log = format!("{{\"kind\":0,\"v\":{{}}}}\n{{\"kind\":1,\"k\":[{}],\"v\":1}}\n", long_path.join(","));
        assert!(read(log.as_bytes()).is_err());
    }

    #[test]
    fn mutations_need_an_initial_state() {
        assert_eq!(read(b""), Err(JsonlError::Empty));
        assert_eq!(read(b"\n\n"), Err(JsonlError::Empty));
        assert!(matches!(read(b"{\"kind\":1,\"k\":[\"a\"],\"v\":1}\n"), Err(JsonlError::BadLine { line: 1, .. })));
        assert_eq!(read(b"{\"kind\":0,\"v\":"), Err(JsonlError::Empty));
    }

    #[test]
    fn initial_line_round_trips() {
        let v = json!({"b": 1, "a": [1.5, "x\ny"]});
        let line = initial_line(&v);
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        assert_eq!(state(&line), v);
    }
}
