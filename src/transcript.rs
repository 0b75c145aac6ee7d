//! A session as a Markdown transcript people can read. Pure: session in, text out.
//!
//! Response parts are rendered by kind: markdown (`{value}` with no kind, or
//! `markdownContent`) verbatim; `inlineReference`s as the file they name; tool invocations and
//! progress messages as quoted notes; edits as the file they touched. Reasoning (`thinking`)
//! and bookkeeping parts (`undoStop`, `prepareToolInvocation`, `mcpServersStarting`,
//! `codeblockUri`) are left out: the JSON formats keep everything. So is a code block left
//! empty: an agent's edit is streamed as a fence, the file's `codeblockUri` and a closing
//! fence, which VS Code shows as the file's edit and a transcript shows as the edit's note.
//! Headings inside a message or a response are put three levels down, below the
//! transcript's own (`## 1. User`, `### Assistant`), so that its outline stays the turns.

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
        let _ = writeln!(out, "{}", tidied(request.message_text().unwrap_or("")).trim_end());
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
    tidied(&out)
}

/// `text` without its empty fenced code blocks (an opening fence with no info string, blank
/// lines at most, and its closing fence), and its ATX headings three levels down (at most to
/// level 6). What is inside a block is its text, fences and `#` lines alike, as in CommonMark.
fn tidied(text: &str) -> String {
    // A fence's character, its length and what follows it on the line.
    let fence = |line: &str| {
        let line = line.trim();
        let c = *line.as_bytes().first()?;
        let n = line.bytes().take_while(|&b| b == c).count();
        ((c == b'`' || c == b'~') && n >= 3).then(|| (c, n, line[n..].trim().is_empty()))
    };
    let closes = |line: &str, (c, n): (u8, usize)| fence(line).is_some_and(|(c2, n2, bare)| c2 == c && n2 >= n && bare);
    let lines: Vec<&str> = text.split('\n').collect();
    let mut kept: Vec<std::borrow::Cow<str>> = Vec::with_capacity(lines.len());
    let mut open: Option<(u8, usize)> = None;
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at];
        at += 1;
        match open {
            Some(block) => {
                if closes(line, block) {
                    open = None;
                }
            }
            None => {
                if let Some((c, n, bare)) = fence(line) {
                    let next = (at..lines.len()).find(|&i| !lines[i].trim().is_empty());
                    if let Some(close) = next.filter(|&i| bare && closes(lines[i], (c, n))) {
                        // One blank line where the block was, at most.
                        at = close + 1;
                        let blank = |l: &std::borrow::Cow<str>| l.trim().is_empty();
                        while kept.len() >= 2 && kept[kept.len() - 2..].iter().all(blank) {
                            kept.pop();
                        }
                        while kept.last().is_some_and(blank) && lines.get(at).is_some_and(|l| l.trim().is_empty()) {
                            at += 1;
                        }
                        continue;
                    }
                    open = Some((c, n));
                } else if let Some(demoted) = demoted(line) {
                    kept.push(demoted.into());
                    continue;
                }
            }
        }
        kept.push(line.into());
    }
    kept.join("\n")
}

/// An ATX heading (up to three spaces, one to six `#`, then a space or nothing) three levels
/// down; `None` for any other line.
fn demoted(line: &str) -> Option<String> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let level = rest.bytes().take_while(|&b| b == b'#').count();
    let after = &rest[level..];
    let heading = indent <= 3 && (1..=6).contains(&level) && (after.is_empty() || after.starts_with([' ', '\t']));
    heading.then(|| format!("{}{after}", "#".repeat((level + 3).min(6))))
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
                    {"value": "\n````\n"},
                    {"kind": "codeblockUri", "uri": {"path": "/p/jokes.csv"}},
                    {"value": "\n````\n"},
                    {"kind": "textEditGroup", "uri": {"path": "/p/jokes.csv"}},
                    {"value": "Done:\n```rust\nfn main() {}\n```\n## Next steps\n"}
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
        // The edit's empty block is left out; a block with code in it is kept.
        assert_eq!(md.matches("````").count(), 0, "{md}");
        assert!(md.contains("Done:\n```rust\nfn main() {}\n```\n##### Next steps"), "{md}");
    }

    #[test]
    fn headings_go_below_the_transcripts_own_outside_code() {
        assert_eq!(
            tidied("# Plan\n## Steps\n###### Deep\n####### not one"),
            "#### Plan\n##### Steps\n###### Deep\n####### not one"
        );
        assert_eq!(tidied("#hashtag\n  ## Indented\n    # code"), "#hashtag\n##### Indented\n    # code");
        assert_eq!(tidied("```sh\n# a comment\n```\n# After"), "```sh\n# a comment\n```\n#### After");
    }

    #[test]
    fn only_empty_code_blocks_are_dropped() {
        assert_eq!(tidied("a\n```\n\n```\nb"), "a\nb");
        assert_eq!(tidied("a\n\n\n```\n```\n\nb"), "a\n\nb");
        assert_eq!(tidied("a\n````\n```\nb"), "a\n````\n```\nb");
        assert_eq!(tidied("```\nx\n```"), "```\nx\n```");
        assert_eq!(tidied("~~~\n~~~"), "");
        // A fence inside a block is its text; a block with an info string is kept.
        assert_eq!(tidied("```text\n```\n```\nb"), "```text\n```\n```\nb");
        assert_eq!(tidied("````md\n```\n```\n````"), "````md\n```\n```\n````");
        assert_eq!(tidied("```rust\n```"), "```rust\n```");
    }
}
