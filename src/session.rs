//! The lossless model of one VS Code chat session and its canonical content hash.
//!
//! Real session files carry dozens of fields chasm does not interpret (`variableData`, `agent`,
//! `result.metadata`, tool invocations …) and their shape drifts between VS Code versions. A
//! struct with a `#[serde(flatten)]` catch-all would keep those fields but lose their order, so a
//! file written back would be a noisy diff. Instead a [`Session`] keeps every top-level field in
//! its original order, holds the `requests` as [`Request`]s (the entities chasm diffs and
//! journals one by one), and exposes the fields chasm reasons about through typed accessors that
//! read the verbatim JSON. Nothing is ever dropped or normalised: `Session::from_value(v).to_value()
//! == v` for every session object (see [`Session::from_value`] for the one addition).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The top-level key holding the list of requests.
pub const REQUESTS_KEY: &str = "requests";

/// The deepest nesting of arrays and objects a session may have. serde_json refuses to parse
/// more than 128 levels, and the journal wraps a request in two more (`{"request": …}` inside
/// a record's payload), so a session deeper than this could be stored but never read back.
pub const MAX_DEPTH: usize = 120;

/// Domain prefix of [`Session::content_hash`], so a session hash can never collide with a hash
/// of some other JSON value computed elsewhere in chasm.
pub(crate) const SESSION_HASH_DOMAIN: &[u8] = b"chasm/session/v2\0";

/// Why a JSON value is not a chat session.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("a chat session must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error("`requests` must be an array, found {0}")]
    RequestsNotArray(&'static str),
    #[error("request {index} must be a JSON object, found {found}")]
    RequestNotObject { index: usize, found: &'static str },
    #[error("the session nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// One chat session: ordered top-level fields plus the list of requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Every top-level field in file order. The `requests` key is present as a `null`
    /// placeholder that marks where the requests array goes when the session is written.
    fields: Map<String, Value>,
    /// The requests, in order.
    pub requests: Vec<Request>,
}

/// One request/response turn of a session, every field verbatim and in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    fields: Map<String, Value>,
}

/// The JSON type name of a value, for error messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Session {
    /// Reads a session object. Fails only when the value cannot be a session at all (not an
    /// object, `requests` not an array of objects); unknown and oddly typed fields are kept.
    ///
    /// A session without a `requests` key gains an empty one at the end: every session VS Code
    /// writes has the key, and chasm always writes it.
    pub fn from_value(value: Value) -> Result<Session, SessionError> {
        if depth(&value) > MAX_DEPTH {
            return Err(SessionError::TooDeep);
        }
        let mut fields = match value {
            Value::Object(map) => map,
            other => return Err(SessionError::NotAnObject(json_type(&other))),
        };
        let requests = match fields.get_mut(REQUESTS_KEY) {
            None => {
                fields.insert(REQUESTS_KEY.to_owned(), Value::Null);
                Vec::new()
            }
            Some(slot) => match slot.take() {
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(index, item)| {
                        Request::from_value(item).map_err(|found| SessionError::RequestNotObject { index, found })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                other => return Err(SessionError::RequestsNotArray(json_type(&other))),
            },
        };
        Ok(Session { fields, requests })
    }

    /// A session with only the given top-level fields and no requests.
    pub fn empty() -> Session {
        Session::from_value(Value::Object(Map::new())).expect("an empty object is a session")
    }

    /// The session as a JSON value, fields in their original order.
    pub fn to_value(&self) -> Value {
        let mut out = Map::with_capacity(self.fields.len());
        for (key, value) in &self.fields {
            if key == REQUESTS_KEY {
                let requests = self.requests.iter().map(|r| Value::Object(r.fields.clone())).collect();
                out.insert(key.clone(), Value::Array(requests));
            } else {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }

    /// Every top-level field in order, `requests` as a `null` placeholder for where the
    /// requests go.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The top-level fields other than `requests`, in order: what `metadata` events describe.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().filter(|(k, _)| *k != REQUESTS_KEY).map(|(k, v)| (k.as_str(), v))
    }

    /// A top-level field other than `requests`.
    pub fn field(&self, key: &str) -> Option<&Value> {
        if key == REQUESTS_KEY { None } else { self.fields.get(key) }
    }

    /// The position of a top-level key in field order (the `requests` placeholder counts).
    pub fn field_position(&self, key: &str) -> Option<usize> {
        self.fields.keys().position(|k| k == key)
    }

    /// Sets a top-level field other than `requests`. An existing field keeps its place; a new
    /// one is inserted at `position` (clamped to the end), so a replayed sequence of inserts
    /// reproduces the original field order.
    pub fn set_field(&mut self, key: &str, value: Value, position: usize) {
        if key == REQUESTS_KEY {
            return;
        }
        if let Some(slot) = self.fields.get_mut(key) {
            *slot = value;
        } else {
            let at = position.min(self.fields.len());
            self.fields.shift_insert(at, key.to_owned(), value);
        }
    }

    /// Removes a top-level field other than `requests`; later fields keep their order.
    pub fn remove_field(&mut self, key: &str) -> Option<Value> {
        if key == REQUESTS_KEY { None } else { self.fields.shift_remove(key) }
    }

    /// The same session with no requests: the payload of a `session/create` event, whose
    /// requests follow as one `message` event each.
    pub fn without_requests(&self) -> Session {
        Session { fields: self.fields.clone(), requests: Vec::new() }
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// `sessionId`, absent from panel exports.
    pub fn session_id(&self) -> Option<&str> {
        self.str_field("sessionId")
    }

    /// `customTitle`, the title the user or VS Code gave the session.
    pub fn custom_title(&self) -> Option<&str> {
        self.str_field("customTitle")
    }

    /// `creationDate`, ms since the epoch.
    pub fn creation_date(&self) -> Option<i64> {
        self.fields.get("creationDate").and_then(Value::as_i64)
    }

    /// `lastMessageDate`, ms since the epoch.
    pub fn last_message_date(&self) -> Option<i64> {
        self.fields.get("lastMessageDate").and_then(Value::as_i64)
    }

    /// When a person last used the session, as VS Code's index dates it: `lastMessageDate`,
    /// else its newest request's `timestamp` (a `.jsonl` session carries no
    /// `lastMessageDate`), else `creationDate`.
    pub fn last_activity(&self) -> Option<i64> {
        self.last_message_date()
            .or_else(|| self.requests.iter().filter_map(Request::timestamp).max())
            .or_else(|| self.creation_date())
    }

    /// `version` of the session format (3 for the files chasm targets; absent in exports).
    pub fn version(&self) -> Option<u64> {
        self.fields.get("version").and_then(Value::as_u64)
    }

    /// A title for people: `customTitle`, else the first words of the first request.
    pub fn display_title(&self) -> Option<String> {
        if let Some(t) = self.custom_title().filter(|t| !t.trim().is_empty()) {
            return Some(t.to_owned());
        }
        self.requests.iter().find_map(|r| r.message_text()).map(|t| first_words(t, 60))
    }

    /// This session as a separate copy under `new_id`, titled `<title> (<label>)` so the user can
    /// tell the two apart in VS Code's list (a keep_both copy, a restore as new).
    pub fn as_copy(&self, new_id: &str, label: &str) -> Session {
        let mut copy = self.clone();
        if let Some(pos) = copy.field_position("sessionId") {
            copy.set_field("sessionId", Value::from(new_id), pos);
        }
        let title = format!("{} ({label})", copy.display_title().unwrap_or_else(|| "Untitled".into()));
        let pos = copy.field_position("customTitle").unwrap_or(usize::MAX);
        copy.set_field("customTitle", Value::from(title), pos);
        copy
    }

    /// SHA-256 over the canonical JSON of the top-level fields and the digest of each request
    /// in order ([`crate::shape::request_digest`]). Every field counts, known or not; field
    /// order does not, since it carries no meaning. Built from request digests so that a sync
    /// can hash a session it holds only as a [`crate::shape::Shape`]. (Checkpoints written
    /// before this form hashed the session's canonical JSON whole, under a `v1` domain.)
    pub fn content_hash(&self) -> [u8; 32] {
        crate::shape::content_hash(self.metadata(), self.requests.iter().map(crate::shape::request_digest))
    }
}

impl Request {
    /// Reads a request object; the error names the JSON type found instead.
    pub fn from_value(value: Value) -> Result<Request, &'static str> {
        match value {
            Value::Object(fields) => Ok(Request { fields }),
            other => Err(json_type(&other)),
        }
    }

    /// The request as a JSON value, fields in their original order.
    pub fn to_value(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    /// [`Request::to_value`] without the copy.
    pub fn into_value(self) -> Value {
        Value::Object(self.fields)
    }

    /// A request with no fields: a placeholder for one not read.
    pub fn empty() -> Request {
        Request { fields: Map::new() }
    }

    /// Every field of the request, in order.
    pub(crate) fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// A field of the request, verbatim.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// `requestId`; 2024 exports have none.
    pub fn request_id(&self) -> Option<&str> {
        self.fields.get("requestId").and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// `timestamp`, ms since the epoch.
    pub fn timestamp(&self) -> Option<i64> {
        self.fields.get("timestamp").and_then(Value::as_i64)
    }

    /// `message.text`, what the user typed.
    pub fn message_text(&self) -> Option<&str> {
        self.fields.get("message")?.get("text")?.as_str()
    }

    /// `response`: an array of parts in real files (markdown `{value}`, `inlineReference`,
    /// tool invocations …). Anything else yields no parts.
    pub fn response_parts(&self) -> &[Value] {
        self.fields.get("response").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `modelId`, e.g. `copilot/gpt-4.1`.
    pub fn model_id(&self) -> Option<&str> {
        self.fields.get("modelId").and_then(Value::as_str)
    }
}

/// The entity ids of a list of requests, in order: the `requestId` where there is one, else
/// `msg-` and 16 hex digits of the hash of the request's `message` (what the user asked never
/// changes while the response streams in, so the id is stable from capture to capture). A
/// repeated id gets `#2`, `#3` … so ids are unique within a session.
pub fn entity_ids(requests: &[Request]) -> Vec<String> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    requests
        .iter()
        .map(|r| {
            let base = base_id(r);
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 { base } else { format!("{base}#{n}") }
        })
        .collect()
}

/// A request's entity id before duplicates in its session are told apart (see [`entity_ids`]).
pub fn base_id(request: &Request) -> String {
    match request.request_id() {
        Some(id) => id.to_owned(),
        None => {
            let message = request.get("message").cloned().unwrap_or(Value::Null);
            let digest = Sha256::digest(canonical_json(&message));
            format!("msg-{}", &hex(&digest)[..16])
        }
    }
}

/// The canonical bytes of a JSON value: no insignificant whitespace, object keys sorted by their
/// UTF-8 bytes, strings escaped as serde_json escapes them, numbers exactly as they were written
/// (chasm parses with `arbitrary_precision`, so `1.0` stays `1.0`). JSON is self-delimiting, so
/// two different values never share canonical bytes.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

pub(crate) fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_canonical_object(map.iter().map(|(k, v)| (k.as_str(), v)), out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

/// The canonical bytes of an object with these entries (keys sorted as [`canonical_json`] sorts).
pub(crate) fn write_canonical_object<'a>(entries: impl Iterator<Item = (&'a str, &'a Value)>, out: &mut Vec<u8>) {
    let mut entries: Vec<_> = entries.collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k).expect("writing to a Vec cannot fail");
        out.push(b':');
        write_canonical(v, out);
    }
    out.push(b'}');
}

/// How deeply arrays and objects nest in a value (a scalar is 0), without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = vec![0; bytes.len() * 2];
    hex_into(bytes, &mut s);
    String::from_utf8(s).expect("hex digits are ASCII")
}

/// [`hex`] written into `out`, which is exactly twice as long as `bytes`.
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    assert_eq!(out.len(), bytes.len() * 2, "two digits a byte");
    for (b, o) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        o[0] = DIGITS[(b >> 4) as usize];
        o[1] = DIGITS[(b & 0xf) as usize];
    }
}

/// The bytes that exactly `2 × N` hex digits (either case) stand for: what [`hex`] wrote, read
/// back. Checked as bytes, so a character of two bytes or a sign is refused, not sliced.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The first `max_chars` characters of a text on one line (its words joined by single
/// spaces), with `…` when cut. Reads only as far as it keeps: log lines are made from it for
/// every record stored.
pub fn first_words(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(4 * max_chars) + 3);
    push_first_words(&mut out, text, max_chars);
    out
}

/// [`first_words`] written to the end of `out`, for a caller building a longer line (a log
/// line's summary is made for every record appended).
pub fn push_first_words(out: &mut String, text: &str, max_chars: usize) {
    let start = out.len();
    if push_ascii_words(out, text, max_chars) {
        return;
    }
    out.truncate(start);
    let mut chars = 0;
    for word in text.split_whitespace() {
        let sep = usize::from(chars > 0);
        let len = word.chars().count();
        if chars + sep + len > max_chars {
            // Cut: the line's first `max_chars - 1` characters, trimmed, then `…`.
            let keep = max_chars.saturating_sub(1);
            if chars >= keep {
                let cut = out[start..].char_indices().nth(keep).map_or(out.len(), |(i, _)| start + i);
                out.truncate(cut);
            } else {
                if sep == 1 {
                    out.push(' ');
                    chars += 1;
                }
                out.push_str(&word[..word.char_indices().nth(keep - chars).map_or(word.len(), |(i, _)| i)]);
            }
            let kept = out[start..].trim_end().len();
            out.truncate(start + kept);
            out.push('…');
            return;
        }
        if sep == 1 {
            out.push(' ');
        }
        out.push_str(word);
        chars += sep + len;
    }
}

/// [`push_first_words`] for ASCII, most of what people type: a byte is a character and
/// whitespace one of six bytes, so no character is decoded. `false` at the first byte of
/// another character among what it reads, with `out` to be cut back by the caller.
fn push_ascii_words(out: &mut String, text: &str, max_chars: usize) -> bool {
    let start = out.len();
    let bytes = text.as_bytes();
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let (mut i, mut chars) = (0, 0);
    loop {
        while i < bytes.len() && space(bytes[i]) {
            i += 1;
        }
        if i == bytes.len() {
            return true;
        }
        let first = i;
        while i < bytes.len() && !space(bytes[i]) {
            if !bytes[i].is_ascii() {
                return false;
            }
            i += 1;
        }
        let word = &text[first..i];
        let sep = usize::from(chars > 0);
        if chars + sep + word.len() > max_chars {
            // Cut as the general case cuts.
            let keep = max_chars.saturating_sub(1);
            if chars >= keep {
                out.truncate(start + keep);
            } else {
                if sep == 1 {
                    out.push(' ');
                    chars += 1;
                }
                out.push_str(&word[..keep - chars]);
            }
            let kept = out[start..].trim_end().len();
            out.truncate(start + kept);
            out.push('…');
            return true;
        }
        if sep == 1 {
            out.push(' ');
        }
        out.push_str(word);
        chars += sep + word.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_activity_is_the_last_message_else_the_newest_request_else_the_creation() {
        let session = |v: serde_json::Value| Session::from_value(v).unwrap();
        let requests = json!([{"timestamp": 30}, {"timestamp": 50}, {"message": {"text": "no time"}}]);
        let full = json!({"creationDate": 10, "lastMessageDate": 99, "requests": requests});
        assert_eq!(session(full).last_activity(), Some(99));
        // A `.jsonl` session has no lastMessageDate: its requests date it, not its creation.
        assert_eq!(session(json!({"creationDate": 10, "requests": requests})).last_activity(), Some(50));
        assert_eq!(session(json!({"creationDate": 10, "requests": []})).last_activity(), Some(10));
        assert_eq!(session(json!({"requests": []})).last_activity(), None);
    }

    #[test]
    fn hex_reads_back_in_either_case_and_only_at_its_full_width() {
        let bytes = [0x0a, 0xff, 0x42];
        assert_eq!(unhex::<3>(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex::<3>("0AFF42"), Some(bytes));
        for s in ["0aff4", "0aff420", "0agf42", "+aff42", "é0a42"] {
            assert_eq!(unhex::<3>(s), None, "{s}");
        }
    }

    /// What `first_words` means: the whole text's words joined by spaces, cut to `max`
    /// characters with `…`.
    fn joined_and_cut(text: &str, max: usize) -> String {
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() <= max {
            one_line
        } else {
            let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
            format!("{}…", cut.trim_end())
        }
    }

    proptest::proptest! {
        /// Read word by word, the first words are those of the whole text joined and cut.
        #[test]
        fn first_words_are_those_of_the_joined_text(text in "[a-zé \u{3000}\t\n…]{0,40}", max in 0usize..30) {
            proptest::prop_assert_eq!(first_words(&text, max), joined_and_cut(&text, max));
        }

        /// The same for ASCII text, with every ASCII whitespace: it takes its own path (checked
        /// here directly, so a path that gave up on ASCII would fail), and says the same.
        #[test]
        fn ascii_first_words_are_those_of_the_joined_text(text in "[a-c \t\n\r\x0b\x0c]{0,60}", max in 0usize..70) {
            let mut ascii = String::new();
            proptest::prop_assert!(push_ascii_words(&mut ascii, &text, max), "ASCII text left the ASCII path");
            proptest::prop_assert_eq!(&ascii, &joined_and_cut(&text, max));
            proptest::prop_assert_eq!(first_words(&text, max), ascii);
        }
    }

    #[test]
    fn round_trip_keeps_every_field_and_order() {
        let text = r#"{"version":3,"requests":[{"message":{"text":"hi"},"zeta":1,"alpha":[1.0,0.66,123456789012345678901234567890]}],"sessionId":"s","x":{"b":1,"a":2}}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        let s = Session::from_value(v.clone()).unwrap();
        assert_eq!(s.to_value(), v);
        assert_eq!(serde_json::to_string(&s.to_value()).unwrap(), text);
    }

    #[test]
    fn missing_requests_gains_an_empty_array() {
        let s = Session::from_value(json!({"a": 1})).unwrap();
        assert_eq!(s.to_value(), json!({"a": 1, "requests": []}));
    }

    #[test]
    fn rejects_what_cannot_be_a_session() {
        assert_eq!(Session::from_value(json!([1])), Err(SessionError::NotAnObject("an array")));
        assert_eq!(Session::from_value(json!({"requests": {}})), Err(SessionError::RequestsNotArray("an object")));
        assert_eq!(
            Session::from_value(json!({"requests": [{}, 3]})),
            Err(SessionError::RequestNotObject { index: 1, found: "a number" })
        );
    }

    #[test]
    fn depth_is_bounded() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]})), 4);
        let mut deep = json!({"requests": []});
        for _ in 0..MAX_DEPTH {
            deep = json!({"requests": [], "x": deep});
        }
        assert_eq!(Session::from_value(deep), Err(SessionError::TooDeep));
    }

    #[test]
    fn hash_covers_every_field_but_not_key_order() {
        let a = Session::from_value(json!({"requests": [], "a": 1, "b": 2})).unwrap();
        let b = Session::from_value(json!({"b": 2, "a": 1, "requests": []})).unwrap();
        let c = Session::from_value(json!({"requests": [], "a": 1, "b": 3})).unwrap();
        let d = Session::from_value(json!({"requests": [], "a": 1, "b": 2, "unknown": null})).unwrap();
        assert_eq!(a.content_hash(), b.content_hash());
        assert_ne!(a.content_hash(), c.content_hash());
        assert_ne!(a.content_hash(), d.content_hash());
    }

    /// Checkpoints store the content hash: it is the same for the same session in every
    /// version (this one was computed before the digests were held as bytes).
    #[test]
    fn the_content_hash_is_pinned() {
        let s = Session::from_value(json!({"version": 3, "sessionId": "s1", "requests": [
            {"requestId": "r1", "message": {"text": "hi"}},
            {"requestId": "r2", "response": [{"value": "é"}]}
        ], "customTitle": "t"}))
        .unwrap();
        assert_eq!(hex(&s.content_hash()), "febc2bf1a16a7066bddc72d1bc0426f7968353cec01ebf40f0c9883b65758188");
    }

    #[test]
    fn canonical_framing_is_unambiguous() {
        // The classic concatenation collision: ["ab","c"] vs ["a","bc"].
        assert_ne!(canonical_json(&json!(["ab", "c"])), canonical_json(&json!(["a", "bc"])));
        assert_ne!(canonical_json(&json!({"a": "b,\"c\":1"})), canonical_json(&json!({"a": "b", "c": 1})));
        assert_eq!(
            canonical_json(&json!({"b": [1, {"d": 1, "c": 2}], "a": "é"})),
            r#"{"a":"é","b":[1,{"c":2,"d":1}]}"#.as_bytes()
        );
    }

    #[test]
    fn entity_ids_fall_back_to_a_stable_message_hash_and_stay_unique() {
        let reqs: Vec<Request> = [
            json!({"requestId": "request_1", "message": {"text": "a"}}),
            json!({"message": {"text": "continue"}}),
            json!({"message": {"text": "continue"}, "response": [{"value": "x"}]}),
            json!({"requestId": "request_1"}),
        ]
        .into_iter()
        .map(|v| Request::from_value(v).unwrap())
        .collect();
        let ids = entity_ids(&reqs);
        assert_eq!(ids[0], "request_1");
        assert!(ids[1].starts_with("msg-") && ids[1].len() == 20);
        assert_eq!(ids[2], format!("{}#2", ids[1]));
        assert_eq!(ids[3], "request_1#2");
        // Stable: a response streaming in does not change the id.
        assert_eq!(entity_ids(&reqs[2..3])[0], ids[1]);
    }

    #[test]
    fn set_field_inserts_at_position_and_keeps_existing_place() {
        let mut s = Session::from_value(json!({"a": 1, "requests": [], "c": 3})).unwrap();
        s.set_field("b", json!(2), 1);
        s.set_field("a", json!(10), 3);
        assert_eq!(serde_json::to_string(&s.to_value()).unwrap(), r#"{"a":10,"b":2,"requests":[],"c":3}"#);
        s.remove_field("b");
        assert_eq!(serde_json::to_string(&s.to_value()).unwrap(), r#"{"a":10,"requests":[],"c":3}"#);
    }

    /// Written after other text (a log line's start), the words are cut and trimmed within
    /// their own part only.
    #[test]
    fn first_words_after_other_text_cut_only_their_own_part() {
        for (text, max) in
            [("abcdef ghi", 6), ("abc defghij", 6), ("a b", 2), ("abcdef", 4), ("hello world", 11), ("  ", 3)]
        {
            for start in ["", "x ", "#3 \""] {
                let mut out = start.to_owned();
                push_first_words(&mut out, text, max);
                assert_eq!(out, format!("{start}{}", first_words(text, max)), "{text:?} after {start:?}");
            }
        }
        assert_eq!(first_words("abcdef ghi", 6), "abcde…");
    }

    #[test]
    fn first_words_cuts_on_one_line() {
        assert_eq!(first_words("hello\r\n  world", 60), "hello world");
        assert_eq!(first_words("abcdef", 4), "abc…");
    }
}
