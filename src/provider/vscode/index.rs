//! VS Code's session index: which sessions its chat history lists.
//!
//! VS Code lists only the sessions named in `state.vscdb` beside the chat folder (SQLite, table
//! `ItemTable`, key `chat.ChatSessionStore.index`, value JSON `{"version": 1, "entries":
//! {<id>: {sessionId, title, lastMessageDate, …}}}`), and drops old entries from it: the file
//! stays, the session is no longer shown. chasm reads the index to tell such hidden sessions
//! apart, adds an entry for a session it writes back or creates, and removes the entry of a
//! session it deletes, as VS Code does.
//!
//! VS Code keeps the index in memory while it runs and writes it back whole, so an edit made
//! under a running VS Code would be lost; a database VS Code holds busy is reported as
//! [`IndexError::Locked`] and the edit is left for a run with VS Code closed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde_json::{Map, Value, json};

use crate::session::Session;

/// The `ItemTable` key of the chat session index.
pub const INDEX_KEY: &str = "chat.ChatSessionStore.index";

/// How many sessions VS Code keeps listed: each time it saves, it drops the entries past the
/// newest this many by `lastMessageDate` (`maxPersistedSessions` in its `chatSessionStore.ts`:
/// 400 since sessions are kept as mutation logs, 25 or 50 before).
pub const VSCODE_KEEPS_LISTED: usize = 400;

/// The name of the copy of `state.vscdb` taken before chasm changes it.
pub const BACKUP_SUFFIX: &str = "chasm-backup";

/// How long to wait for a busy database before calling it locked.
const BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Why the index could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{0} is locked (is VS Code running?)")]
    Locked(PathBuf),
    #[error("{path} is not a VS Code state database: {reason}")]
    NotAStateDb { path: PathBuf, reason: String },
    #[error("{path}: the chat session index is not valid JSON; left as it is")]
    BadIndex { path: PathBuf },
    #[error("{path}: {reason}")]
    Sqlite { path: PathBuf, reason: String },
}

/// What registering a session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// An entry was added or brought up to date.
    Added,
    /// The index already listed the session as it is.
    AlreadyListed,
    /// There is no `state.vscdb` (VS Code never opened this storage): nothing to add to.
    NoDatabase,
    /// The index does not list the session, and was asked only to refresh it ([`refresh`]).
    NotListed,
}

/// The `state.vscdb` whose index covers a chat folder: beside it, for a workspace's
/// `chatSessions/` and for `globalStorage/emptyWindowChatSessions/` alike.
pub fn state_db_for(chat_dir: &Path) -> Option<PathBuf> {
    chat_dir.parent().map(|p| p.join("state.vscdb"))
}

fn error(path: &Path, e: rusqlite::Error) -> IndexError {
    let path = path.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => IndexError::Locked(path),
        Some(ErrorCode::NotADatabase) => IndexError::NotAStateDb { path, reason: "not an SQLite database".into() },
        _ if e.to_string().contains("no such table") => {
            IndexError::NotAStateDb { path, reason: "it has no ItemTable".into() }
        }
        _ => IndexError::Sqlite { path, reason: e.to_string() },
    }
}

fn open(path: &Path, flags: OpenFlags) -> Result<Connection, IndexError> {
    let conn =
        Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(|e| error(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| error(path, e))?;
    Ok(conn)
}

/// The index's bytes as VS Code stored them; `None` when the database has no index.
fn read_bytes(conn: &Connection, path: &Path) -> Result<Option<Vec<u8>>, IndexError> {
    conn.query_row("SELECT value FROM ItemTable WHERE key = ?1", [INDEX_KEY], |row| {
        // VS Code stores text; a BLOB holding the same bytes reads the same.
        match row.get_ref(0)? {
            rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => Ok(t.to_vec()),
            _ => Ok(Vec::new()),
        }
    })
    .optional()
    .map_err(|e| error(path, e))
}

fn read_value(conn: &Connection, path: &Path) -> Result<Option<Value>, IndexError> {
    match read_bytes(conn, path)? {
        None => Ok(None),
        Some(bytes) => parse_index(&bytes).map(Some).ok_or_else(|| IndexError::BadIndex { path: path.to_owned() }),
    }
}

/// An index's text parsed whole, as the edits need it; `None`: not an index (not JSON, or no
/// `entries` object).
fn parse_index(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(bytes).ok().filter(|v| v.get("entries").is_some_and(Value::is_object))
}

/// The ids an index's text lists, read as [`EntryKeys`]; `None`: not an index.
fn entry_keys(bytes: &[u8]) -> Option<BTreeSet<String>> {
    serde_json::from_slice::<EntryKeys>(bytes).ok()?.0
}

/// The session ids the index lists; `None` when there is no `state.vscdb`.
pub fn listed_ids(db: &Path) -> Result<Option<BTreeSet<String>>, IndexError> {
    if !db.is_file() {
        return Ok(None);
    }
    let conn = open(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    match read_bytes(&conn, db)? {
        None => Ok(Some(BTreeSet::new())),
        Some(bytes) => entry_keys(&bytes).map(Some).ok_or_else(|| IndexError::BadIndex { path: db.to_owned() }),
    }
}

/// The keys of an index's `entries` object (`None`: it has none), read without building its
/// entries: `status` reads every workspace's index, and parsing each whole into a [`Value`]
/// took as long as opening its database. What reads as an index is what [`read_value`]
/// accepts: a JSON object whose `entries` is an object (the last, if named twice). Only an
/// entry nested deeper than serde_json builds a [`Value`] of (128 levels) differs: its keys
/// are listed where the edits refuse the index as not JSON, which VS Code never writes.
struct EntryKeys(Option<BTreeSet<String>>);

impl<'de> serde::Deserialize<'de> for EntryKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, Visitor};
        struct Root;
        impl<'de> Visitor<'de> for Root {
            type Value = EntryKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "entries" {
                        let each = map.next_value::<std::collections::BTreeMap<String, IgnoredAny>>()?;
                        entries = Some(each.into_keys().collect());
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(EntryKeys(entries))
            }
        }
        d.deserialize_map(Root)
    }
}

/// The index entry VS Code would write for a session.
pub fn entry_for(session_id: &str, session: &Session) -> Value {
    let last = session.last_activity().unwrap_or(0);
    let mut entry = json!({
        "sessionId": session_id,
        "title": session.display_title().unwrap_or_else(|| "New Chat".into()),
        "lastMessageDate": last,
    });
    if let Some(location) = session.field("initialLocation") {
        entry["initialLocation"] = location.clone();
    }
    entry["hasPendingEdits"] = Value::Bool(false);
    entry["isEmpty"] = Value::Bool(session.requests.is_empty());
    entry
}

/// Adds (or brings up to date) a session's entry in the index of `db`, after copying the
/// database to `state.vscdb.chasm-backup`. The change is one transaction; fields of an
/// existing entry that chasm does not set are kept.
pub fn register(db: &Path, session_id: &str, session: &Session) -> Result<Registered, IndexError> {
    put_entry(db, session_id, session, true)
}

/// Brings a listed session's entry up to date with what chasm just wrote over its file (its
/// title, its last message date), as VS Code does when it saves a session: a rename shows in
/// VS Code's history. A session the index does not list stays unlisted, hidden as VS Code
/// left it ([`Registered::NotListed`]).
pub fn refresh(db: &Path, session_id: &str, session: &Session) -> Result<Registered, IndexError> {
    put_entry(db, session_id, session, false)
}

fn put_entry(db: &Path, session_id: &str, session: &Session, add: bool) -> Result<Registered, IndexError> {
    if !db.is_file() {
        return Ok(Registered::NoDatabase);
    }
    let mut conn = open(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let wanted = entry_for(session_id, session);
    let current = read_value(&conn, db)?;
    let existing = current.as_ref().and_then(|v| v.get("entries")).and_then(|e| e.get(session_id));
    if existing.is_none() && !add {
        return Ok(Registered::NotListed);
    }
    let listed_as_is =
        existing.is_some_and(|e| ["title", "lastMessageDate"].iter().all(|k| e.get(*k) == wanted.get(*k)));
    if listed_as_is {
        return Ok(Registered::AlreadyListed);
    }

    change_entries(&mut conn, db, |entries| {
        if !add && !entries.contains_key(session_id) {
            return;
        }
        let mut entry = entries.get(session_id).and_then(Value::as_object).cloned().unwrap_or_else(Map::new);
        for (k, v) in wanted.as_object().expect("an object") {
            if !(entry.contains_key(k) && matches!(k.as_str(), "initialLocation" | "hasPendingEdits")) {
                entry.insert(k.clone(), v.clone());
            }
        }
        entries.insert(session_id.to_owned(), Value::Object(entry));
    })?;
    Ok(Registered::Added)
}

/// How many sessions the index of `db` lists ahead of a listed one as VS Code keeps them: from
/// [`VSCODE_KEEPS_LISTED`] on, VS Code's next save of the list drops it. VS Code's
/// `trimEntries` leaves out the entries of other chat providers (`isExternal`) and sorts the
/// rest by `lastMessageDate`, newest first, keeping the list's own order among equal dates (a
/// stable sort): an entry as old as this one and listed before it is kept before it.
pub fn newer_listed(db: &Path, session_id: &str) -> Result<usize, IndexError> {
    let conn = open(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let current = read_value(&conn, db)?;
    let Some(entries) = current.as_ref().and_then(|v| v.get("entries")).and_then(Value::as_object) else {
        return Ok(0);
    };
    let date = |e: &Value| e.get("lastMessageDate").and_then(Value::as_f64).unwrap_or(0.0);
    let Some(own) = entries.get(session_id).map(date) else { return Ok(0) };
    let external = |e: &Value| e.get("isExternal").and_then(Value::as_bool).unwrap_or(false);
    let mut before = true;
    let mut ahead = 0;
    for (id, e) in entries {
        if id == session_id {
            before = false;
        } else if !external(e) && (date(e) > own || (before && date(e) == own)) {
            ahead += 1;
        }
    }
    Ok(ahead)
}

/// Removes a session's entry from the index of `db`, as VS Code does when it deletes a
/// session: a listed session whose file is gone is shown in its history but cannot be opened.
/// `true` when an entry was removed (after copying the database, as [`register`] does).
pub fn unregister(db: &Path, session_id: &str) -> Result<bool, IndexError> {
    if !db.is_file() {
        return Ok(false);
    }
    let mut conn = open(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let current = read_value(&conn, db)?;
    if current.as_ref().and_then(|v| v.get("entries")).and_then(|e| e.get(session_id)).is_none() {
        return Ok(false);
    }
    change_entries(&mut conn, db, |entries| {
        entries.shift_remove(session_id);
    })?;
    Ok(true)
}

/// Changes the index's entries in one transaction, after copying the database to
/// `state.vscdb.chasm-backup`. The index is read again inside the transaction, so what VS
/// Code wrote since the caller read it is kept.
fn change_entries(
    conn: &mut Connection,
    db: &Path,
    change: impl FnOnce(&mut Map<String, Value>),
) -> Result<(), IndexError> {
    let backup = db.with_extension(format!("vscdb.{BACKUP_SUFFIX}"));
    conn.backup(rusqlite::MAIN_DB, &backup, None).map_err(|e| error(db, e))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| error(db, e))?;
    let mut index = read_value(&tx, db)?.unwrap_or_else(|| json!({"version": 1, "entries": {}}));
    let entries = index
        .get_mut("entries")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| IndexError::BadIndex { path: db.to_owned() })?;
    change(entries);
    tx.execute(
        "INSERT OR REPLACE INTO ItemTable (key, value) VALUES (?1, ?2)",
        rusqlite::params![INDEX_KEY, index.to_string()],
    )
    .map_err(|e| error(db, e))?;
    tx.commit().map_err(|e| error(db, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A `state.vscdb` with VS Code's schema and an index listing `ids`.
    pub fn make_state_db(path: &Path, ids: &[&str]) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)")
            .unwrap();
        let entries: Map<String, Value> = ids
            .iter()
            .map(|id| (id.to_string(), json!({"sessionId": id, "title": "t", "lastMessageDate": 1, "isEmpty": false})))
            .collect();
        conn.execute(
            "INSERT INTO ItemTable (key, value) VALUES (?1, ?2)",
            rusqlite::params![INDEX_KEY, json!({"version": 1, "entries": entries}).to_string()],
        )
        .unwrap();
        conn.execute("INSERT INTO ItemTable (key, value) VALUES ('other.key', 'kept')", []).unwrap();
    }

    fn session(title: &str) -> Session {
        Session::from_value(json!({"customTitle": title, "lastMessageDate": 5, "requests": [{"requestId": "r"}]}))
            .unwrap()
    }

    #[test]
    fn newer_listed_counts_the_entries_vs_code_would_keep_before_this_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.vscdb");
        make_state_db(&db, &["a", "b"]);
        register(&db, "c", &session("Sea")).unwrap(); // lastMessageDate 5, the others 1
        assert_eq!(newer_listed(&db, "c").unwrap(), 0);
        assert_eq!(newer_listed(&db, "a").unwrap(), 1, "c is newer; b is as old, listed after");
        assert_eq!(newer_listed(&db, "b").unwrap(), 2, "c is newer; a is as old, listed before");
        assert_eq!(newer_listed(&db, "nowhere").unwrap(), 0);
        // Another chat provider's entry is not in VS Code's count, however new.
        let mut conn = Connection::open(&db).unwrap();
        change_entries(&mut conn, &db, |entries| {
            entries.insert("vscode-chat-session://x/1".into(), json!({"lastMessageDate": 9, "isExternal": true}));
        })
        .unwrap();
        assert_eq!(newer_listed(&db, "c").unwrap(), 0);
    }

    #[test]
    fn registering_adds_an_entry_once_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.vscdb");
        make_state_db(&db, &["a"]);
        assert_eq!(listed_ids(&db).unwrap().unwrap(), BTreeSet::from(["a".to_string()]));
        assert_eq!(register(&db, "b", &session("Bee")).unwrap(), Registered::Added);
        assert_eq!(register(&db, "b", &session("Bee")).unwrap(), Registered::AlreadyListed);
        assert_eq!(listed_ids(&db).unwrap().unwrap(), BTreeSet::from(["a".to_string(), "b".to_string()]));
        assert!(dir.path().join("state.vscdb.chasm-backup").is_file());
        let conn = Connection::open(&db).unwrap();
        let other: String =
            conn.query_row("SELECT value FROM ItemTable WHERE key = 'other.key'", [], |r| r.get(0)).unwrap();
        assert_eq!(other, "kept");
        let index: String =
            conn.query_row("SELECT value FROM ItemTable WHERE key = ?1", [INDEX_KEY], |r| r.get(0)).unwrap();
        let index: Value = serde_json::from_str(&index).unwrap();
        assert_eq!(index["entries"]["b"]["title"], "Bee");
        assert_eq!(index["entries"]["b"]["lastMessageDate"], 5);
        assert_eq!(index["entries"]["a"]["title"], "t");
    }

    #[test]
    fn refreshing_updates_a_listed_entry_and_lists_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.vscdb");
        make_state_db(&db, &["a"]);
        assert_eq!(refresh(&db, "a", &session("Renamed")).unwrap(), Registered::Added);
        assert_eq!(refresh(&db, "a", &session("Renamed")).unwrap(), Registered::AlreadyListed);
        // Hidden (not listed) stays hidden.
        assert_eq!(refresh(&db, "b", &session("Bee")).unwrap(), Registered::NotListed);
        assert_eq!(listed_ids(&db).unwrap().unwrap(), BTreeSet::from(["a".to_string()]));
        let conn = Connection::open(&db).unwrap();
        let index: String =
            conn.query_row("SELECT value FROM ItemTable WHERE key = ?1", [INDEX_KEY], |r| r.get(0)).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&index).unwrap()["entries"]["a"]["title"], "Renamed");
    }

    #[test]
    fn unregistering_removes_that_entry_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.vscdb");
        assert!(!unregister(&db, "a").unwrap(), "no database: nothing to remove");
        make_state_db(&db, &["a", "b", "c"]);
        assert!(unregister(&db, "b").unwrap());
        assert!(!unregister(&db, "b").unwrap(), "no longer listed");
        assert_eq!(listed_ids(&db).unwrap().unwrap(), BTreeSet::from(["a".to_string(), "c".to_string()]));
        assert!(dir.path().join("state.vscdb.chasm-backup").is_file());
        let conn = Connection::open(&db).unwrap();
        let other: String =
            conn.query_row("SELECT value FROM ItemTable WHERE key = 'other.key'", [], |r| r.get(0)).unwrap();
        assert_eq!(other, "kept");
        // Busy (VS Code running): reported, not forced.
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        assert!(matches!(unregister(&db, "a"), Err(IndexError::Locked(_))));
    }

    #[test]
    fn no_database_and_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.vscdb");
        assert_eq!(register(&db, "b", &session("x")).unwrap(), Registered::NoDatabase);
        assert!(listed_ids(&db).unwrap().is_none());
        std::fs::write(&db, b"this is not a database, just some text that is long enough to be a header").unwrap();
        assert!(
            matches!(register(&db, "b", &session("x")), Err(IndexError::NotAStateDb { .. })),
            "{:?}",
            register(&db, "b", &session("x"))
        );
        assert!(matches!(listed_ids(&db), Err(IndexError::NotAStateDb { .. })));
        assert_eq!(std::fs::read(&db).unwrap()[..4], *b"this");
    }

    /// `listed_ids` reads only the keys of the index's entries: it must take for an index what
    /// the whole parse the edits make takes (but for nesting past that parse's depth, at the
    /// end), and list the same ids.
    #[test]
    fn listed_ids_accepts_and_lists_what_the_whole_parse_does() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.vscdb");
        make_state_db(&db, &[]);
        let conn = Connection::open(&db).unwrap();
        let texts = [
            r#"{"version": 1, "entries": {"a": {"title": "t", "n": [1, 2.5e300, {"x": null}]}, "b": 7}}"#,
            r#"{"entries": {}, "after": {"entries": {"nested": 1}}}"#,
            r#"{"entries": {"a": 1}, "entries": {"b": 1}}"#,
            r#"{"entries": {"a": 1, "a": 2, "\u0062": 3}}"#,
            r#"{"version": 1}"#,
            r#"{"entries": null}"#,
            r#"{"entries": ["a"]}"#,
            r#"[{"entries": {"a": 1}}]"#,
            r#"{"entries": {"a": 1}"#,
            r#"{"entries": {"a": 1}} trailing"#,
            "",
        ];
        for text in texts {
            for value in [rusqlite::types::Value::Text(text.into()), rusqlite::types::Value::Blob(text.into())] {
                conn.execute("INSERT INTO ItemTable (key, value) VALUES (?1, ?2)", rusqlite::params![INDEX_KEY, value])
                    .unwrap();
                let whole = read_value(&conn, &db).map(|v| {
                    let entries = v.as_ref().and_then(|v| v["entries"].as_object());
                    entries.map(|e| e.keys().cloned().collect::<BTreeSet<_>>()).unwrap_or_default()
                });
                match (listed_ids(&db), whole) {
                    (Ok(Some(keys)), Ok(expected)) => assert_eq!(keys, expected, "{text}"),
                    (Err(IndexError::BadIndex { .. }), Err(IndexError::BadIndex { .. })) => {}
                    (ours, whole) => panic!("{text}: {ours:?} where the whole parse gives {whole:?}"),
                }
            }
        }
        // An entry nested past the whole parse's depth: listed all the same.
        let deep = format!(r#"{{"entries": {{"a": {}1{}}}}}"#, "[".repeat(200), "]".repeat(200));
        conn.execute("INSERT INTO ItemTable (key, value) VALUES (?1, ?2)", [INDEX_KEY, &deep]).unwrap();
        assert!(matches!(read_value(&conn, &db), Err(IndexError::BadIndex { .. })));
        assert_eq!(listed_ids(&db).unwrap(), Some(BTreeSet::from(["a".to_string()])));
        // No index at all: a database VS Code lists nothing in.
        conn.execute("DELETE FROM ItemTable WHERE key = ?1", [INDEX_KEY]).unwrap();
        assert_eq!(listed_ids(&db).unwrap(), Some(BTreeSet::new()));
    }

    /// JSON texts like an index and unlike one: objects with or without `entries` (an object
    /// or not, sometimes twice), values of any kind, then perhaps cut short or with a stray
    /// character put in.
    fn index_like_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "(\\PC|[\"\\\\{}\\[\\],:])*".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("(\\PC|[\":{}])*|entries", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        });
        let entries = prop::collection::vec(("[a-z0-9\"\\\\-]{0,8}", value.clone()), 0..5)
            .prop_map(|kv| Value::Object(kv.into_iter().collect()));
        let root = (
            prop::option::of(prop_oneof![3 => entries, 1 => Just(Value::Null), 1 => value.clone()]),
            prop::option::of(value),
            any::<bool>(),
        );
        let text = root.prop_map(|(entries, other, twice)| {
            let mut parts = vec![r#""version": 1"#.to_string()];
            if let Some(o) = other {
                parts.push(format!(r#""other": {o}"#));
            }
            if let Some(e) = entries {
                if twice {
                    parts.insert(0, r#""entries": {"first": 1}"#.into());
                }
                parts.push(format!(r#""entries": {e}"#));
            }
            format!("{{{}}}", parts.join(", "))
        });
        (
            text,
            0..4u8,
            any::<prop::sample::Index>(),
            prop::sample::select(&['{', '}', '[', ']', ',', ':', '"', '\\', 'x'][..]),
        )
            .prop_map(|(text, how, at, c)| {
                let cut = text.char_indices().map(|(i, _)| i).nth(at.index(text.chars().count())).unwrap_or(0);
                match how {
                    0 => text[..cut].to_string(),
                    1 => format!("{}{c}{}", &text[..cut], &text[cut..]),
                    _ => text,
                }
            })
    }

    proptest! {
        /// Reading only the keys takes for an index what the whole parse takes, and lists the
        /// keys it lists.
        #[test]
        fn reading_only_the_keys_agrees_with_the_whole_parse(text in index_like_text()) {
            let whole = parse_index(text.as_bytes()).map(|v| v["entries"].as_object().unwrap().keys().cloned().collect());
            prop_assert_eq!(entry_keys(text.as_bytes()), whole, "{}", text);
        }
    }

    #[test]
    fn a_busy_database_is_reported_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.vscdb");
        make_state_db(&db, &[]);
        let holder = Connection::open(&db).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        assert!(matches!(register(&db, "b", &session("x")), Err(IndexError::Locked(_))));
        holder.execute_batch("ROLLBACK").unwrap();
        assert_eq!(register(&db, "b", &session("x")).unwrap(), Registered::Added);
    }
}
