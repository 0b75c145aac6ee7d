//! A session file rewritten whole (VS Code's `.json`) since both sides were last in step,
//! applied to what the session held then (its [`Shape`]), parsing only the requests whose text
//! is new. Pure.
//!
//! VS Code writes the whole file for every change: a request added, a response streamed in.
//! Parsed and digested whole, a long session cost each sync milliseconds for every request it
//! held, to find the one that changed. The last read noted each request's text digest
//! ([`LogMark::requests`]); a request with the same text now is the same request, and keeps its
//! old id and digest unread. What this cannot settle exactly as a whole read would gives
//! `None`, and the caller reads the file whole.

use std::collections::HashMap;

use serde_json::Value;

use crate::appended::{Applied, settle, stand_in};
use crate::provider::{LogMark, Rewritten};
use crate::session::REQUESTS_KEY;
use crate::shape::Shape;

/// Applies a rewritten file to the session `old` describes, giving back the file's new mark
/// with it; `mark` is the one the last read left beside `old`, whose request digests name
/// `old`'s requests in order.
pub fn apply(old: &Shape, mark: &LogMark, rewritten: Rewritten) -> Option<(Applied, LogMark)> {
    // Digests that do not line up with the shape's requests name nothing here.
    let known: HashMap<u128, usize> = if mark.requests.len() == old.requests.len() {
        mark.requests.iter().enumerate().map(|(k, &d)| (d, k)).collect()
    } else {
        HashMap::new()
    };
    let Rewritten { mut fields, requests, mark: new_mark } = rewritten;
    let nonce = uuid::Uuid::new_v4().to_string();
    let requests = requests
        .iter()
        .zip(&new_mark.requests)
        .map(|(text, digest)| match known.get(digest) {
            Some(&k) => Some(stand_in(&nonce, k)),
            None => serde_json::from_str(text.get()).ok(),
        })
        .collect::<Option<Vec<Value>>>()?;
    fields.insert(REQUESTS_KEY.to_owned(), Value::Array(requests));
    Some((settle(old, Value::Object(fields), &nonce)?, new_mark))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appended::tests::state_of;
    use crate::diff::diff;
    use crate::provider::vscode::json;
    use crate::session::Session;
    use proptest::prelude::*;
    use serde_json::json;

    /// A file's text read whole, as a sync's first read takes it: the session, its shape and
    /// the mark with each request's digest.
    fn read(text: &str) -> (Session, Shape, LogMark) {
        let split = json::split(text.as_bytes()).unwrap();
        let requests = split.digests();
        let session = Session::from_value(split.into_value().unwrap()).unwrap();
        let shape = Shape::of(&session);
        (session, shape, LogMark { len: 0, digest: 0, requests })
    }

    fn rewritten(text: &str) -> Rewritten {
        let split = json::split(text.as_bytes()).unwrap();
        let requests = split.digests();
        Rewritten { fields: split.fields, requests: split.requests, mark: LogMark { len: 0, digest: 0, requests } }
    }

    fn request(id: &str, text: &str) -> Value {
        json!({"requestId": id, "message": {"text": text}, "response": [{"value": format!("re: {text}")}]})
    }

    fn file(title: &str, requests: &[Value]) -> String {
        serde_json::to_string_pretty(&json!({"version": 3, "requests": requests, "customTitle": title})).unwrap()
    }

    /// Only the requests with new text are read; the rest keep their old ids and digests, and
    /// the shape and changes are those of the file read whole.
    #[test]
    fn only_new_text_is_parsed() {
        let before = [request("a", "one"), request("b", "two"), request("c", "three")];
        let (old_session, old, mark) = read(&file("t", &before));
        let after = [request("a", "one"), request("b", "two, edited"), request("c", "three"), request("d", "four")];
        let text = file("t2", &after);
        let (applied, _) = apply(&old, &mark, rewritten(&text)).unwrap();
        assert_eq!(applied.held, vec![Some(0), None, Some(2), None]);
        let (whole, shape, _) = read(&text);
        assert_eq!(applied.shape, shape);
        assert_eq!(applied.session.requests[1], whole.requests[1]);
        // The changes are the full diff's, once the requests not read are filled in.
        let mut load = |k: usize| Some(before[k].clone());
        let changes = crate::appended::changes(&old, &applied, &mut load).unwrap();
        assert_eq!(changes, diff("s", Some(&state_of(&old_session)), &whole));
    }

    /// Digests that do not line up with the shape (a mark from another version, or none) are
    /// not trusted: every request is read.
    #[test]
    fn digests_that_do_not_line_up_are_not_trusted() {
        let before = [request("a", "one"), request("b", "two")];
        let (_, old, mut mark) = read(&file("t", &before));
        mark.requests.pop();
        let text = file("t", &before);
        let (applied, _) = apply(&old, &mark, rewritten(&text)).unwrap();
        assert_eq!(applied.held, vec![None, None]);
        assert_eq!(applied.shape, read(&text).1);
    }

    /// Ids that repeat need the whole list to number them: read whole.
    #[test]
    fn a_repeated_id_is_read_whole() {
        let before = [request("a", "one")];
        let (_, old, mark) = read(&file("t", &before));
        let text = file("t", &[request("a", "one"), request("a", "again")]);
        assert!(apply(&old, &mark, rewritten(&text)).is_none());
    }

    proptest! {
        /// Whatever requests stay, change, move, go or come, the shape is the whole read's and
        /// the changes are the full diff's.
        #[test]
        fn a_rewrite_applies_as_a_whole_read(
            before in proptest::collection::vec(0u8..6, 0..6),
            after in proptest::collection::vec((0u8..6, any::<bool>()), 0..7),
        ) {
            let mut ids = std::collections::HashSet::new();
            let before: Vec<Value> =
                before.into_iter().filter(|n| ids.insert(*n)).map(|n| request(&n.to_string(), "x")).collect();
            let mut ids = std::collections::HashSet::new();
            let after: Vec<Value> = after
                .into_iter()
                .filter(|(n, _)| ids.insert(*n))
                .map(|(n, edited)| request(&n.to_string(), if edited { "y" } else { "x" }))
                .collect();
            let (old_session, old, mark) = read(&file("t", &before));
            let text = file("u", &after);
            let (applied, _) = apply(&old, &mark, rewritten(&text)).unwrap();
            let (whole, shape, _) = read(&text);
            prop_assert_eq!(&applied.shape, &shape);
            let mut load = |k: usize| Some(before[k].clone());
            let changes = crate::appended::changes(&old, &applied, &mut load).unwrap();
            prop_assert_eq!(changes, diff("s", Some(&state_of(&old_session)), &whole));
        }
    }
}
