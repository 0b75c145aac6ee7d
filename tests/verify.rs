//! `chasm verify` notices any change to stored history: tests edit the journal's database
//! directly, as a disk fault, a bug or a person with a hex editor might.

mod common;

use common::{Env, assert_error_line};
use serde_json::Value;

/// A journal with two sessions and 7 records.
fn journal_with_history() -> Env {
    let env = Env::new();
    let dir = env.chat_dir();
    for (id, n) in [("aaaa1111", 3), ("bbbb2222", 2)] {
        let requests: Vec<Value> = (0..n).map(|i| serde_json::json!({"requestId": format!("r{i}"), "message": {"text": format!("question {i}")}, "response": []})).collect();
        let session = serde_json::json!({"version": 3, "sessionId": id, "requests": requests});
        let path = dir.join(format!("{id}.json"));
        std::fs::write(&path, session.to_string()).unwrap();
        env.ok(&["capture", path.to_str().unwrap()]);
    }
    assert_eq!(env.log().len(), 7);
    assert!(env.ok(&["verify"]).starts_with("ok: 7 records in 2 sessions"));
    env
}

/// Edits the journal's database while no chasm holds it.
fn tamper(env: &Env, edit: impl FnOnce(&rusqlite::Connection)) {
    let db = rusqlite::Connection::open(env.journal().join("journal.sqlite")).unwrap();
    edit(&db);
}

/// A record's bytes, read through chasm (rows may hold deltas, see `src/journal/delta.rs`).
fn record(env: &Env, seq: u64) -> Vec<u8> {
    let j = common::open_journal(&env.journal(), chasm::journal::OpenMode::Existing);
    j.get(seq).unwrap().unwrap().encode()
}

/// Stores a record's bytes whole in place of a row.
fn set_record(db: &rusqlite::Connection, seq: i64, bytes: &[u8]) {
    db.execute("UPDATE log SET record = ?2 WHERE seq = ?1", rusqlite::params![seq, bytes]).unwrap();
}

/// Runs verify and returns (first bad seq, the error line).
fn first_bad_seq(env: &Env) -> (u64, String) {
    let out = env.chasm(&["verify", "--json"]);
    let line = assert_error_line(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    (report["first_bad_seq"].as_u64().unwrap(), line)
}

#[test]
fn a_modified_record_is_detected() {
    let env = journal_with_history();
    let mut bytes = record(&env, 4);
    tamper(&env, |db| {
        // Change one character of the JSON payload ("question" -> "questioN").
        let at = bytes.windows(8).position(|w| w == b"question").unwrap() + 7;
        bytes[at] = b'N';
        set_record(db, 4, &bytes);
    });
    let (seq, line) = first_bad_seq(&env);
    assert_eq!(seq, 4);
    assert!(line.contains("seq 4") && line.contains("modified"), "{line}");
}

#[test]
fn a_modified_record_with_a_recomputed_hash_breaks_the_next_link() {
    let env = journal_with_history();
    let mut record = chasm::journal::SyncChange::decode(&record(&env, 2)).unwrap();
    tamper(&env, |db| {
        record.entity_id = "forged".into();
        let forged = chasm::journal::SyncChange {
            hash: chasm::journal::record::chain_hash(&record.prev_hash, &record.canonical_bytes()),
            ..record
        };
        set_record(db, 2, &forged.encode());
    });
    assert_eq!(first_bad_seq(&env).0, 3);
}

#[test]
fn a_deleted_record_is_detected() {
    let env = journal_with_history();
    tamper(&env, |db| {
        db.execute("DELETE FROM log WHERE seq = 3", []).unwrap();
    });
    let (seq, line) = first_bad_seq(&env);
    assert_eq!(seq, 3);
    assert!(line.contains("missing"), "{line}");
}

#[test]
fn a_record_cut_off_the_end_is_detected() {
    let env = journal_with_history();
    tamper(&env, |db| {
        db.execute("DELETE FROM log WHERE seq = 7", []).unwrap();
    });
    assert_eq!(first_bad_seq(&env).0, 7);
}

#[test]
fn reordered_records_are_detected() {
    let env = journal_with_history();
    let (a, b) = (record(&env, 5), record(&env, 6));
    tamper(&env, |db| {
        set_record(db, 5, &b);
        set_record(db, 6, &a);
    });
    let (seq, line) = first_bad_seq(&env);
    assert_eq!(seq, 5);
    assert!(line.contains("reordered"), "{line}");
}

#[test]
fn a_damaged_index_is_detected() {
    let env = journal_with_history();
    tamper(&env, |db| {
        // Record 2 filed under the other session: its history would leave out that event.
        db.execute(
            "UPDATE log SET session = (SELECT num FROM sessions WHERE id = CAST('bbbb2222' AS BLOB)) WHERE seq = 2",
            [],
        )
        .unwrap();
    });
    let (seq, line) = first_bad_seq(&env);
    assert_eq!(seq, 2);
    assert!(line.contains("files record 2 under \"bbbb2222\""), "{line}");

    let env = journal_with_history();
    tamper(&env, |db| {
        db.execute("UPDATE sessions SET events = events + 1 WHERE id = CAST('aaaa1111' AS BLOB)", []).unwrap();
    });
    let (seq, line) = first_bad_seq(&env);
    assert_eq!(seq, 1);
    assert!(line.contains("aaaa1111") && line.contains("events"), "{line}");

    let env = journal_with_history();
    tamper(&env, |db| {
        db.execute("INSERT INTO sessions (id, first_seq, events) VALUES (CAST('cccc3333' AS BLOB), 3, 1)", []).unwrap();
    });
    let (seq, line) = first_bad_seq(&env);
    assert_eq!(seq, 3);
    assert!(line.contains("cccc3333"), "{line}");
}

#[test]
fn garbage_in_a_record_is_an_error_not_a_panic() {
    let env = journal_with_history();
    tamper(&env, |db| set_record(db, 2, b"\x01garbage"));
    assert_eq!(first_bad_seq(&env).0, 2);
    // Reading commands report the damaged record instead of crashing.
    let line = env.fails(&["log"]);
    assert!(line.contains("record 2"), "{line}");
    env.ok(&["replay", "bbbb"]);
}

#[test]
fn a_damaged_last_record_can_be_verified_but_not_appended_to() {
    let env = journal_with_history();
    tamper(&env, |db| set_record(db, 7, b"\x01garbage"));
    assert_eq!(first_bad_seq(&env).0, 7);
    let session = serde_json::json!({"sessionId": "cccc3333", "requests": []});
    let path = env.chat_dir().join("cccc3333.json");
    std::fs::write(&path, session.to_string()).unwrap();
    let line = env.fails(&["capture", path.to_str().unwrap()]);
    assert!(line.contains("record 7 is damaged"), "{line}");
}

/// A request whose response streamed in is stored whole among its session's finals once the
/// next request begins; those rows are derived: gone, replay reads the same from the log, and
/// verify writes them again.
#[test]
fn lost_finals_change_no_replay_and_verify_restores_them() {
    let env = Env::new();
    let path = env.chat_dir().join("dddd4444.json");
    let request = |id: &str, words: usize| serde_json::json!({"requestId": id, "message": {"text": "why"}, "response": [{"value": "word ".repeat(words)}]});
    let mut requests = vec![request("r0", 50)];
    for step in 0..4 {
        match step {
            3 => requests.push(request("r1", 50)),
            _ => requests[0] = request("r0", 50 + 10 * step),
        }
        let session = serde_json::json!({"version": 3, "sessionId": "dddd4444", "requests": requests});
        std::fs::write(&path, session.to_string()).unwrap();
        env.ok(&["capture", path.to_str().unwrap()]);
    }
    let finals = |env: &Env| -> i64 {
        let db = rusqlite::Connection::open(env.journal().join("journal.sqlite")).unwrap();
        db.query_row("SELECT count(*) FROM finals", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(finals(&env), 1, "r0's last version, once r1 began");
    let report = |env: &Env| -> Value { serde_json::from_str(&env.ok(&["verify", "--json"])).unwrap() };
    assert_eq!((report(&env)["ok"].clone(), report(&env)["finals_rebuilt"].clone()), (true.into(), 0.into()));
    let replayed = env.ok(&["replay", "dddd"]);

    tamper(&env, |db| {
        db.execute("DELETE FROM finals", []).unwrap();
    });
    assert_eq!(env.ok(&["replay", "dddd"]), replayed);
    assert_eq!(report(&env)["finals_rebuilt"], 1);
    assert_eq!(finals(&env), 1);
    assert_eq!(env.ok(&["replay", "dddd"]), replayed);
}

/// An export is read and written a record at a time, after its header has said how many
/// follow: a record missing from the journal fails it, naming the record, and `-o` leaves no
/// file behind (nor one that would import as a history with a hole in it).
#[test]
fn an_export_of_a_journal_missing_a_record_fails_and_writes_nothing() {
    let env = journal_with_history();
    tamper(&env, |db| {
        db.execute("DELETE FROM log WHERE seq = 3", []).unwrap();
    });
    let file = env.dir.path().join("backup.jsonl");
    let line = env.fails(&["export", "-o", file.to_str().unwrap()]);
    assert!(line.contains("record 3 is missing"), "{line}");
    assert!(!file.exists());
    assert_eq!(std::fs::read_dir(env.dir.path()).unwrap().count(), 2, "a temporary was left behind");
    // Continuing past the hole still works.
    let out = env.ok(&["export", "--since", "4"]);
    assert_eq!(out.lines().count(), 5, "{out}");
}

/// Two sessions whose requests are a kilobyte or more, as real ones are: records a pack
/// compresses. One is captured as it streams (its versions stored as deltas).
fn journal_with_long_requests() -> Env {
    let env = Env::new();
    let dir = env.chat_dir();
    let text = |i: usize| "the borrow checker says the value moved here; ".repeat(30 + i);
    let file = |id: &str, requests: Vec<Value>| {
        let path = dir.join(format!("{id}.json"));
        std::fs::write(&path, serde_json::json!({"version": 3, "sessionId": id, "requests": requests}).to_string())
            .unwrap();
        env.ok(&["capture", path.to_str().unwrap()]);
    };
    let request = |i: usize, reply: &str| serde_json::json!({"requestId": format!("r{i}"), "message": {"text": text(i)}, "response": [{"value": reply}]});
    file("aaaa1111", (0..6).map(|i| request(i, &text(i))).collect());
    for words in 1..4 {
        file("bbbb2222", vec![request(0, &text(0)), request(1, &"streamed ".repeat(words * 40))]);
    }
    env
}

#[test]
fn gc_compresses_the_journal_and_every_command_reads_the_same_history() {
    let env = journal_with_long_requests();
    let views = |env: &Env| {
        let mut out = vec![env.ok(&["log", "--json"]), env.ok(&["log", "bbbb2222"])];
        for at in 1..=env.log().len() as u64 {
            for session in ["aaaa1111", "bbbb2222"] {
                let o = env.chasm(&["replay", session, "--at", &at.to_string(), "--format", "markdown"]);
                out.push(format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)));
            }
        }
        out.push(env.ok(&["export"]));
        out
    };
    let before = views(&env);
    let size = |env: &Env| std::fs::metadata(env.journal().join("journal.sqlite")).unwrap().len();
    let (bytes_before, line) = (size(&env), env.ok(&["gc"]));
    assert!(
        line.starts_with("gc: 10 record(s) compressed (runs of them in 2 block(s)), 0 snapshot(s), 0 run(s) of log lines, 0 shape(s); journal "),
        "{line}"
    );
    assert!(size(&env) < bytes_before);
    assert_eq!(views(&env), before);
    assert!(env.ok(&["verify"]).starts_with("ok: "));
    let again: Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert_eq!(
        (&again["records_compressed"], &again["blocks"], &again["snapshots_compressed"]),
        (&0.into(), &0.into(), &0.into())
    );
    assert!(again["bytes_after"].as_u64().unwrap() <= again["bytes_before"].as_u64().unwrap(), "{again}");
    // What is appended after a pack is stored as usual: here the next version of a request
    // whose record is in a block, stored as a delta against it.
    let path = env.chat_dir().join("aaaa1111.json");
    let mut session: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    session["requests"][5]["response"][0]["value"] = Value::from("a longer answer, still streaming in ".repeat(40));
    std::fs::write(&path, session.to_string()).unwrap();
    env.ok(&["capture", path.to_str().unwrap()]);
    env.ok(&["tag", "aaaa1111", "kept"]);
    let first_byte = |seq: i64| {
        let db = rusqlite::Connection::open(env.journal().join("journal.sqlite")).unwrap();
        db.query_row("SELECT substr(record, 1, 1) FROM log WHERE seq = ?1", [seq], |r| r.get::<_, Vec<u8>>(0)).unwrap()
    };
    let versions: Vec<i64> = (env.log().iter())
        .filter(|r| r["session_id"] == "aaaa1111" && r["entity_id"] == "r5")
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(versions.len(), 2);
    let forms = (first_byte(versions[0]), first_byte(versions[1]));
    assert_eq!(forms, (vec![0xB0], vec![0xDE]), "the base in a block, the new version a delta");
    assert_eq!(env.replay("aaaa1111", None)["requests"], session["requests"]);
    assert!(env.ok(&["verify"]).starts_with("ok: "));
}

/// A long session: its records in blocks and its snapshots compressed, and every point of it,
/// its log and its export read the same as before.
#[test]
fn gc_of_a_long_session_stores_blocks_and_snapshots_and_every_point_replays_the_same() {
    let env = Env::new();
    let text = |i: usize| format!("question {i}: why does the borrow checker say the value moved here? ").repeat(8);
    let requests: Vec<Value> = (0..200)
        .map(|i| serde_json::json!({"requestId": format!("r{i}"), "message": {"text": text(i)}, "response": [{"value": text(i + 1)}]}))
        .collect();
    let path = env.chat_dir().join("cccc3333.json");
    std::fs::write(&path, serde_json::json!({"version": 3, "sessionId": "cccc3333", "requests": requests}).to_string())
        .unwrap();
    env.ok(&["capture", path.to_str().unwrap()]);
    let events = env.log().len() as u64;
    assert!(events > 192, "{events} events: three snapshots due");
    let views = |env: &Env| {
        let mut out = vec![env.ok(&["log", "cccc3333"]), env.ok(&["export"])];
        out.extend(
            (1..=events).step_by(7).chain([events]).map(|at| env.ok(&["replay", "cccc3333", "--at", &at.to_string()])),
        );
        out
    };
    let before = views(&env);
    let packed: Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert_eq!(packed["records_compressed"].as_u64(), Some(events), "{packed}");
    assert!(packed["blocks"].as_u64() > Some(1) && packed["snapshots_compressed"].as_u64() >= Some(3), "{packed}");
    assert!(packed["line_runs_compressed"].as_u64() >= Some(3), "{packed}");
    assert!(packed["bytes_after"].as_u64().unwrap() < packed["bytes_before"].as_u64().unwrap() / 2, "{packed}");
    assert_eq!(views(&env), before);
    let report: Value = serde_json::from_str(&env.ok(&["verify", "--json"])).unwrap();
    assert_eq!((&report["ok"], &report["snapshots_rebuilt"]), (&Value::from(true), &Value::from(0)), "{report}");
}

#[test]
fn a_damaged_block_is_detected() {
    let env = journal_with_long_requests();
    env.ok(&["gc"]);
    // The block holding record 3: the first capture's six records, from record 1 on.
    tamper(&env, |db| {
        let (first, mut frame): (i64, Vec<u8>) = db
            .query_row("SELECT first, frame FROM blocks WHERE first <= 3 ORDER BY first DESC", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(first, 1);
        let middle = frame.len() / 2;
        frame[middle] ^= 0x5A;
        db.execute("UPDATE blocks SET frame = ?1 WHERE first = 1", [&frame]).unwrap();
    });
    assert_eq!(first_bad_seq(&env).0, 1);
    // What reads its records says so, and nothing reads something else in their place.
    for args in [&["log", "--json"][..], &["export"], &["replay", "aaaa1111"], &["replay", "aaaa1111", "--at", "3"]] {
        let line = env.fails(args);
        assert!(line.contains("record 1 is damaged"), "{args:?}: {line}");
    }
}
