//! A session's whole life in a `.jsonl` mutation log, captured step by step, and replayed at
//! every seq: the journal must give back exactly what the file said at each point.

mod common;

use common::{Env, append};
use serde_json::{Value, json};

const ID: &str = "5f0c7a2e-9d41-4b8e-a3f6-1c2d3e4f5a6b";

fn request(n: u32, text: &str) -> Value {
    json!({
        "requestId": format!("request_{n:04}"),
        "timestamp": 1_764_000_000_000i64 + i64::from(n) * 60_000,
        "message": {"text": text, "parts": [{"kind": "text", "text": text}]},
        "variableData": {"variables": []},
        "response": [],
        "modelId": "copilot/gpt-4.1",
        "agent": {"id": "github.copilot.editsAgent", "extensionVersion": "0.37.1"},
    })
}

/// Drives the history: each step writes to the log, captures, and records what the file now
/// says. Every step changes exactly one entity, so every seq is a step boundary.
struct Story {
    env: Env,
    path: std::path::PathBuf,
    /// The session as VS Code would read it after each seq (index = seq - 1).
    expected: Vec<Value>,
    state: Value,
}

impl Story {
    fn capture(&mut self, changes: usize) {
        let before = self.env.log().len();
        let out = self.env.chasm(&["capture", self.path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let after = self.env.log().len();
        assert_eq!(after - before, changes, "step after seq {before}: {}", String::from_utf8_lossy(&out.stdout));
        for _ in 0..changes {
            self.expected.push(self.state.clone());
        }
    }

    /// Appends one mutation-log line and applies the same change to `state` by hand.
    fn write(&mut self, line: Value, apply: impl FnOnce(&mut Value)) {
        append(&self.path, &format!("{line}\n"));
        apply(&mut self.state);
    }
}

#[test]
fn replay_at_every_seq_matches_the_file_at_that_point() {
    let env = Env::new();
    let path = env.chat_dir().join(format!("{ID}.jsonl"));
    let initial = json!({
        "version": 3,
        "creationDate": 1_764_000_000_000i64,
        "initialLocation": "panel",
        "responderUsername": "GitHub Copilot",
        "sessionId": ID,
        "hasPendingEdits": false,
        "requests": [],
        "inputState": {"inputText": "", "selections": []},
    });
    let mut s = Story { env, path, expected: Vec::new(), state: initial.clone() };

    // 1: the session appears.
    s.write(json!({"kind": 0, "v": initial}), |_| {});
    s.capture(1);

    // 2: a request is sent; its response then streams in, one capture per chunk.
    let r1 = request(1, "Explain the borrow checker in one paragraph.");
    s.write(json!({"kind": 2, "k": ["requests"], "v": [r1]}), |st| {
        st["requests"].as_array_mut().unwrap().push(r1.clone())
    });
    s.capture(1);
    for chunk in [
        "The borrow checker",
        "The borrow checker enforces that",
        "The borrow checker enforces that references never outlive their data.",
    ] {
        let parts = json!([{"value": chunk, "supportThemeIcons": false}]);
        s.write(json!({"kind": 1, "k": ["requests", 0, "response"], "v": parts}), |st| {
            st["requests"][0]["response"] = parts.clone()
        });
        s.capture(1);
    }
    let result = json!({"timings": {"firstProgress": 812, "totalElapsed": 2950}, "metadata": {"toolCallRounds": []}});
    s.write(json!({"kind": 1, "k": ["requests", 0, "result"], "v": result}), |st| {
        st["requests"][0]["result"] = result.clone()
    });
    s.capture(1);

    // 3: VS Code titles the session; the input box changes (metadata).
    s.write(json!({"kind": 1, "k": ["customTitle"], "v": "Borrow checker basics"}), |st| {
        st["customTitle"] = json!("Borrow checker basics")
    });
    s.capture(1);
    s.write(json!({"kind": 1, "k": ["inputState", "inputText"], "v": "and lifetimes?"}), |st| {
        st["inputState"]["inputText"] = json!("and lifetimes?")
    });
    s.capture(1);

    // 4: two more requests, one capture each.
    let r2 = request(2, "And lifetimes?");
    let r3 = request(3, "Show an example with a struct holding a reference.");
    s.write(json!({"kind": 2, "k": ["requests"], "v": [r2]}), |st| {
        st["requests"].as_array_mut().unwrap().push(r2.clone())
    });
    s.capture(1);
    s.write(json!({"kind": 2, "k": ["requests"], "v": [r3]}), |st| {
        st["requests"].as_array_mut().unwrap().push(r3.clone())
    });
    s.capture(1);

    // 5: the user renames the session.
    s.write(json!({"kind": 1, "k": ["customTitle"], "v": "Rust ownership Q&A"}), |st| {
        st["customTitle"] = json!("Rust ownership Q&A")
    });
    s.capture(1);

    // 6: request 2 is removed: VS Code truncates the array at 1 and pushes request 3 back.
    s.write(json!({"kind": 2, "k": ["requests"], "i": 1, "v": [r3]}), |st| {
        st["requests"].as_array_mut().unwrap().remove(1);
    });
    s.capture(1);

    // 7: a field is deleted.
    s.write(json!({"kind": 3, "k": ["hasPendingEdits"]}), |st| {
        st.as_object_mut().unwrap().shift_remove("hasPendingEdits");
    });
    s.capture(1);

    // 8: VS Code compacts the log into a single kind 0 line: same state, nothing to record.
    std::fs::write(&s.path, format!("{}\n", json!({"kind": 0, "v": s.state}))).unwrap();
    s.capture(0);

    // 9: a torn last line (VS Code mid-write) is ignored, with a warning and no change.
    let parts = json!([{"value": "struct Holder<'a> { r: &'a str }"}]);
    let line = json!({"kind": 1, "k": ["requests", 1, "response"], "v": parts}).to_string();
    append(&s.path, &line[..line.len() / 2]);
    let out = s.env.chasm(&["capture", s.path.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning:"));
    s.capture(0);

    // 10: the write completes; now it counts.
    append(&s.path, &format!("{}\n", &line[line.len() / 2..]));
    s.state["requests"][1]["response"] = parts;
    s.capture(1);

    // Every seq replays to exactly what the file said then.
    let log = s.env.log();
    assert_eq!(log.len(), s.expected.len());
    for (i, expected) in s.expected.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(&s.env.replay(&ID[..8], Some(seq)), expected, "replay --at {seq}");
    }
    // The latest state is the file's, and the journal is intact.
    assert_eq!(s.env.replay(ID, None), s.state);
    assert!(s.env.ok(&["verify"]).starts_with("ok:"));

    // --at-time picks the state at a time: after everything, and before anything.
    let last_time = log.last().unwrap()["timestamp"].as_str().unwrap().to_owned();
    assert_eq!(serde_json::from_str::<Value>(&s.env.ok(&["replay", ID, "--at-time", &last_time])).unwrap(), s.state);
    let err = s.env.fails(&["replay", ID, "--at-time", "2000-01-01T00:00:00Z"]);
    assert!(err.contains("did not exist"), "{err}");
    // A seq past the journal's end names no point: refused, not taken as the latest state.
    let past = (log.len() + 1).to_string();
    for args in [&["replay", ID, "--at", &past][..], &["diff", ID, "1", &past], &["restore", ID, "--at", &past]] {
        let err = s.env.fails(args);
        assert!(err.contains(&format!("there is no seq {past}")), "{args:?}: {err}");
    }
    assert_eq!(s.env.log().len(), log.len(), "nothing was recorded");

    // The entity ids and kinds recorded are the ones a user would expect.
    let kinds: Vec<String> = log
        .iter()
        .map(|r| {
            format!(
                "{}/{} {}",
                r["change_type"].as_str().unwrap(),
                r["entity_type"].as_str().unwrap(),
                r["entity_id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(kinds[0], format!("create/session {ID}"));
    assert_eq!(kinds[1], "create/message request_0001");
    assert_eq!(kinds[2], "update/message request_0001");
    assert_eq!(kinds[6], "update/metadata customTitle");
    assert_eq!(kinds[7], "update/metadata inputState");
    assert_eq!(kinds[11], "delete/message request_0002");
    assert_eq!(kinds[12], "delete/metadata hasPendingEdits");
    assert_eq!(kinds[13], "update/message request_0003");
    assert!(log.iter().all(|r| r["origin"] == "remote" && r["provider"] == "vscode"));
}
