//! The `.json` session file (`chatSessions/<id>.json`, one session object), split into its
//! top-level fields and each request's text as written.
//!
//! VS Code rewrites the whole file on every change, so a sync that parsed it whole parsed and
//! digested every request again to find the one that changed: a long session cost a sync
//! milliseconds for each line of chat. Split, each request's text is hashed as it stands (XXH3,
//! an order of magnitude faster than parsing it), and a sync parses only the requests whose
//! text it has not seen (see [`crate::rewritten`]). Equal text is an equal request: VS Code
//! writes the same request the same way each time (`JSON.stringify`, two-space indented).

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::session::REQUESTS_KEY;

/// A session object in parts.
#[derive(Debug)]
pub struct Split {
    /// Every top-level field in file order, `requests` as a `null` placeholder.
    pub fields: Map<String, Value>,
    /// Each request's text, as written.
    pub requests: Vec<Box<RawValue>>,
}

/// Splits a session file's text (without its byte-order mark). `None` for anything but an
/// object with a `requests` array and no key twice: such a file is parsed whole, which says what
/// is wrong with it or reads it as it always has.
pub fn split(text: &[u8]) -> Option<Split> {
    serde_json::from_slice(text).ok()
}

/// The digest of a request's text: its XXH3-128. Not a cryptographic hash: it
/// tells a request's own earlier text from a changed one within one file, which nobody gains
/// by making collide (whoever can write the file can write the change itself).
fn text_digest(request: &RawValue) -> u128 {
    xxhash_rust::xxh3::xxh3_128(request.get().as_bytes())
}

impl Split {
    /// Each request's text digest, in order (what a mark keeps: see
    /// [`crate::provider::LogMark::requests`]).
    pub fn digests(&self) -> Vec<u128> {
        self.requests.iter().map(|r| text_digest(r)).collect()
    }

    /// The whole session as one value, each request parsed from its text; `None` when a request
    /// does not parse on its own (deeper than the parser allows: the whole parse says so).
    pub fn into_value(self) -> Option<Value> {
        let requests =
            self.requests.iter().map(|r| serde_json::from_str(r.get()).ok()).collect::<Option<Vec<Value>>>()?;
        let mut fields = self.fields;
        fields.insert(REQUESTS_KEY.to_owned(), Value::Array(requests));
        Some(Value::Object(fields))
    }
}

impl<'de> Deserialize<'de> for Split {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Split, D::Error> {
        deserializer.deserialize_map(SplitVisitor)
    }
}

struct SplitVisitor;

impl<'de> Visitor<'de> for SplitVisitor {
    type Value = Split;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a session object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Split, A::Error> {
        let mut fields = Map::new();
        let mut requests = None;
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(de::Error::custom("a key given twice"));
            }
            let value = if key == REQUESTS_KEY {
                requests = Some(map.next_value::<Vec<Box<RawValue>>>()?);
                Value::Null
            } else {
                map.next_value::<Value>()?
            };
            fields.insert(key, value);
        }
        let requests = requests.ok_or_else(|| de::Error::missing_field(REQUESTS_KEY))?;
        Ok(Split { fields, requests })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn whole(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// Split and put back together, a session is what parsing it whole gives: every field,
    /// in order, numbers as written.
    #[test]
    fn a_split_session_is_the_session() {
        let text = r#"{"version": 3, "requests": [{"requestId": "r1", "n": 1.0, "message": {"text": "hi"}},
            {"requestId": "r2", "deep": [[[{"a": null}]]]}], "sessionId": "s", "customTitle": "t"}"#;
        let split = split(text.as_bytes()).unwrap();
        assert_eq!(split.requests.len(), 2);
        assert_eq!(split.fields.keys().collect::<Vec<_>>(), ["version", "requests", "sessionId", "customTitle"]);
        assert_eq!(split.into_value().unwrap(), whole(text));
        // No requests at all is a session too.
        assert_eq!(super::split(br#"{"requests": []}"#).unwrap().into_value().unwrap(), json!({"requests": []}));
    }

    /// What a split cannot stand for exactly is left to the whole parse: no `requests` array,
    /// a key twice (the whole parse keeps the last), not an object, not JSON.
    #[test]
    fn anything_else_is_not_split() {
        for text in [
            r#"{"sessionId": "s"}"#,
            r#"{"requests": {}}"#,
            r#"{"requests": [], "requests": [{}]}"#,
            r#"{"a": 1, "a": 2, "requests": []}"#,
            r#"[]"#,
            r#"{"requests": []} x"#,
            r#"{"requests": [{"a": 1}"#,
        ] {
            assert!(split(text.as_bytes()).is_none(), "{text}");
        }
    }

    /// The same text, the same digest, wherever it stands; any other text, another.
    #[test]
    fn a_request_digest_follows_its_text() {
        let a = split(br#"{"requests": [{"a": 1}, {"a": 2}, {"a": 1}]}"#).unwrap();
        let d = a.digests();
        assert_eq!(d[0], d[2]);
        assert_ne!(d[0], d[1]);
    }
}
