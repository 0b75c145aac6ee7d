//! A session as a Markdown transcript people can read. Pure: session in, text out.
//!
//! Response parts are rendered by kind: markdown (`{value}` with no kind, or
//! `markdownContent`) verbatim; `inlineReference`s as the file they name; tool invocations and
//! progress messages as quoted notes; edits as the file they touched. Reasoning (`thinking`)
//! and bookkeeping parts (`undoStop`, `prepareToolInvocation`, `mcpServersStarting`,
//! `codeblockUri`) are left out: the JSON formats keep everything.

use std::fmt::Write;

use chrono::{TimeZone, Utc};
use serde_json::Value;

use crate::session::Session;

/// Renders the transcript.
pub fn markdown(session_id: &str, session: &Session) -> String {
    let mut out = String::new();
    let title = session.display_title().unwrap_or_else(|| "Untitled session".into());
    let _ = writeln!(out, "# {}\n", title.trim());
    let _ = writeln!(out, "- Session: `{session_id}`");
    if let Some(date) = session.creation_date().and_then(format_ms) {
        let _ = writeln!(out, "- Created: {date}");
    }
    if let Some(date) = session.last_message_date().and_then(format_ms) {
        let _ = writeln!(out, "- Last message: {date}");
    }
    let _ = writeln!(out, "- Requests: {}", session.requests.len());
    for (i, request) in session.requests.iter().enumerate() {
        let when = request.timestamp().and_then(format_ms).map(|t| format!(" · {t}")).unwrap_or_default();
        let _ = writeln!(out, "\n## {}. User{when}\n", i + 1);
        let _ = writeln!(out, "{}", request.message_text().unwrap_or("").trim_end());
        let model = request.model_id().map(|m| format!(" · {m}")).unwrap_or_default();
        let _ = writeln!(out, "\n### Assistant{model}\n");
        let body = response_markdown(request.response_parts());
        let _ = writeln!(out, "{}", if body.trim().is_empty() { "_(no response)_" } else { body.trim_end() });
        if request.get("isCanceled").and_then(Value::as_bool) == Some(true) {
            let _ = writeln!(out, "\n_(canceled)_");
        }
    }
    out
}

/// The readable text of a response's parts.
pub fn response_markdown(parts: &[Value]) -> String {
    let mut out = String::new();
    for part in parts {
        let kind = part.get("kind").and_then(Value::as_str);
        match kind {
            None | Some("markdownContent") => {
                if let Some(text) = text_of(part.get("value").or_else(|| part.get("content"))) {
                    out.push_str(&text);
                }
            }
            Some("inlineReference") => {
                let name = part
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| uri_of(part.get("inlineReference")));
                if let Some(name) = name {
                    let _ = write!(out, "`{name}`");
                }
            }
            Some("toolInvocationSerialized") | Some("toolInvocation") => {
                let msg = text_of(part.get("pastTenseMessage")).or_else(|| text_of(part.get("invocationMessage")));
                quote(&mut out, msg);
            }
            Some("progressTaskSerialized") | Some("progressMessage") => {
                quote(&mut out, text_of(part.get("content")));
            }
            Some("textEditGroup") => {
                quote(&mut out, uri_of(part.get("uri")).map(|uri| format!("edited `{uri}`")));
            }
            _ => {}
        }
    }
    out
}

/// A note on its own quoted paragraph; nothing for an empty one.
fn quote(out: &mut String, msg: Option<String>) {
    if let Some(msg) = msg.filter(|m| !m.trim().is_empty()) {
        paragraph_break(out);
        let _ = write!(out, "> {}\n\n", msg.trim().replace('\n', "\n> "));
    }
}

/// Ends `out` with a blank line, unless it is empty or already does.
fn paragraph_break(out: &mut String) {
    if !out.is_empty() {
        while !out.ends_with("\n\n") {
            out.push('\n');
        }
    }
}

/// A string, or the `value` of a `{value: string}` object (VS Code's MarkdownString).
fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("value").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// A readable path for a serialized URI (`{fsPath, path, …}`) or a location (`{uri, range}`).
fn uri_of(v: Option<&Value>) -> Option<String> {
    let v = v?;
    if let Some(s) = v.as_str() {
        return Some(s.to_owned());
    }
    if let Some(uri) = v.get("uri") {
        return uri_of(Some(uri));
    }
    ["fsPath", "path", "external"].iter().find_map(|k| v.get(k).and_then(Value::as_str)).map(str::to_owned)
}

fn format_ms(ms: i64) -> Option<String> {
    Utc.timestamp_millis_opt(ms).single().map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_turns_and_useful_parts() {
        let s = Session::from_value(json!({
            "customTitle": "Jokes",
            "requests": [{
                "timestamp": 1770580257491i64,
                "message": {"text": "Add a joke"},
                "modelId": "copilot/gpt-4o",
                "response": [
                    {"value": "Sure, see "},
                    {"kind": "inlineReference", "inlineReference": {"fsPath": "/p/jokes.csv"}},
                    {"kind": "thinking", "value": "secret reasoning"},
                    {"kind": "toolInvocationSerialized", "invocationMessage": {"value": "Reading jokes.csv"}},
                    {"kind": "textEditGroup", "uri": {"path": "/p/jokes.csv"}}
                ]
            }]
        }))
        .unwrap();
        let md = markdown("abc", &s);
        assert!(md.starts_with("# Jokes\n"));
        assert!(md.contains("## 1. User · 2026-02-08"));
        assert!(md.contains("Add a joke"));
        assert!(md.contains("### Assistant · copilot/gpt-4o"));
        assert!(md.contains("Sure, see `/p/jokes.csv`"));
        assert!(md.contains("> Reading jokes.csv"));
        assert!(md.contains("> edited `/p/jokes.csv`"));
        assert!(!md.contains("secret reasoning"));
    }
}
