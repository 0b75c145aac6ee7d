//! The command line as a user meets it: `log` filters and formats, prefixes, and bad input
//! answered with one `error:` line, a non-zero exit and an untouched journal.

mod common;

use common::Env;
use serde_json::{Value, json};

fn write_session(env: &Env, id: &str, title: &str, texts: &[&str]) -> std::path::PathBuf {
    let requests: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"requestId": format!("{id}-r{i}"), "message": {"text": t}, "response": [{"value": "ok"}]}))
        .collect();
    let path = env.chat_dir().join(format!("{id}.json"));
    std::fs::write(
        &path,
        json!({"version": 3, "sessionId": id, "customTitle": title, "requests": requests}).to_string(),
    )
    .unwrap();
    path
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn log_filters_limits_and_orders_like_git_log() {
    let env = Env::new();
    let a = write_session(&env, "11111111-aaaa", "First", &["hello there", "second question"]);
    let b = write_session(&env, "22222222-bbbb", "Second", &["other"]);
    env.ok(&["capture", p(&a), p(&b)]);
    // seqs: 1 create a, 2-3 messages a, 4 create b, 5 message b
    let seqs = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["log", "--json"];
        all.extend_from_slice(args);
        env.ok(&all).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_u64().unwrap()).collect()
    };
    assert_eq!(seqs(&[]), [5, 4, 3, 2, 1]);
    assert_eq!(seqs(&["--reverse"]), [1, 2, 3, 4, 5]);
    assert_eq!(seqs(&["-n", "2"]), [5, 4]);
    assert_eq!(seqs(&["-n", "2", "--reverse"]), [4, 5]);
    assert_eq!(seqs(&["1111"]), [3, 2, 1]);
    assert_eq!(seqs(&["--entity", "session"]), [4, 1]);
    assert_eq!(seqs(&["--type", "create", "--entity", "message", "2222"]), [5]);
    assert_eq!(seqs(&["--origin", "local"]), Vec::<u64>::new());
    assert_eq!(seqs(&["--origin", "remote", "-n", "1"]), [5]);
    // `-n` reads that many records first; what the filter passes over is read after them.
    assert_eq!(seqs(&["--entity", "session", "-n", "1"]), [4]);
    assert_eq!(seqs(&["--entity", "session", "-n", "2"]), [4, 1]);
    assert_eq!(seqs(&["--since", "2", "--until", "4"]), [4, 3, 2]);

    // Times: everything was recorded before now and after an hour ago.
    let log: Vec<Value> = env.log();
    let t = log[0]["timestamp"].as_str().unwrap();
    assert_eq!(seqs(&["--since", t]).len(), 5);
    assert_eq!(seqs(&["--until", "2000-01-01T00:00:00Z"]), Vec::<u64>::new());
    assert_eq!(seqs(&["--since", "2000-01-01"]).len(), 5);

    // The JSON schema.
    let r = &log[1];
    for key in [
        "seq",
        "id",
        "session_id",
        "change_type",
        "entity_type",
        "entity_id",
        "origin",
        "provider",
        "timestamp",
        "prev_hash",
        "hash",
        "payload",
    ] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
    assert_eq!(r["hash"].as_str().unwrap().len(), 64);
    assert_eq!(r["prev_hash"], log[0]["hash"]);
    assert_eq!(log[0]["prev_hash"], "0".repeat(64));
    assert!(chrono::DateTime::parse_from_rfc3339(r["timestamp"].as_str().unwrap()).is_ok());
    assert_eq!(r["payload"]["request"]["message"]["text"], "hello there");

    // The human form: one line per event with seq, origin, type/entity, short id and words.
    let human = env.ok(&["log", "-n", "1", "1111"]);
    let line = human.lines().next().unwrap();
    assert!(line.trim_start().starts_with("3 "), "{line}");
    assert!(
        line.contains("remote")
            && line.contains("create/message")
            && line.contains("11111111")
            && line.contains("\"second question\""),
        "{line}"
    );
    assert!(env.ok(&["log", "--entity", "session", "--until", "1"]).contains("new session \"First\""));
}

/// A long session's log reads from the lines stored beside its snapshots, and says exactly
/// what reading every record says (the all-sessions log reads records): in every order,
/// limit and filter, and on both sides of the last stored run.
#[test]
fn a_long_sessions_log_says_what_its_records_say() {
    let env = Env::new();
    let id = "33333333-cccc";
    let texts: Vec<String> = (0..70).map(|i| format!("question number {i} about lifetimes")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let path = write_session(&env, id, "Long", &refs[..1]);
    env.ok(&["capture", p(&path)]);
    write_session(&env, id, "Longer", &refs);
    env.ok(&["capture", p(&path)]);
    env.ok(&["tag", id, "keep"]);
    env.ok(&["rename", id, "Longest"]);
    // Every response grows a part.
    let mut session: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for r in session["requests"].as_array_mut().unwrap() {
        r["response"].as_array_mut().unwrap().push(json!({"value": "more"}));
    }
    std::fs::write(&path, session.to_string()).unwrap();
    env.ok(&["capture", p(&path)]);
    let events = env.log().len();
    assert!(events > 2 * 64 + 10, "{events} events: two runs stored and records after");
    let newest = events.to_string();
    for args in [
        &[][..],
        &["--reverse"],
        &["-n", "100"],
        &["-n", "100", "--reverse"],
        // Under `-n N` only the newest N seqs and the runs that hold them are read.
        &["-n", "1"],
        &["-n", "5"],
        &["-n", "31", "--reverse"],
        &["-n", "33"],
        &["-n", "64"],
        &["-n", "65"],
        &["-n", "129"],
        &["-n", "5", "--json"],
        &["--type", "update"],
        &["--origin", "local"],
        &["--entity", "message", "--since", "60", "--until", &newest],
    ] {
        let all = env.ok(&[&["log"][..], args].concat());
        let one = env.ok(&[&["log", &id[..6]][..], args].concat());
        assert!(!one.is_empty(), "{args:?}");
        assert_eq!(one, all, "{args:?}");
    }
    assert!(env.ok(&["log", id]).contains(r#"changed #70 "question number 69 about lifetimes" (2 response parts)"#));
    // Nothing asked for, nothing shown (as `git log -n 0`).
    assert_eq!(env.ok(&["log", "-n", "0", id]), "");
}

#[test]
fn sessions_resolve_by_unique_prefix() {
    let env = Env::new();
    let a = write_session(&env, "abc-1", "A", &["x"]);
    let b = write_session(&env, "abd-2", "B", &["y"]);
    env.ok(&["capture", p(&a), p(&b)]);
    assert_eq!(env.replay("abc", None)["customTitle"], "A");
    let err = env.fails(&["replay", "ab"]);
    assert!(err.contains("matches 2 sessions"), "{err}");
    let err = env.fails(&["log", "zzz"]);
    assert!(err.contains("no session matches"), "{err}");
}

#[test]
fn replay_writes_a_file_atomically_and_renders_markdown() {
    let env = Env::new();
    let a = write_session(&env, "abc-1", "Atomic", &["what is fsync?"]);
    env.ok(&["capture", p(&a)]);
    let out = env.dir.path().join("out.json");
    env.ok(&["replay", "abc", "-o", p(&out)]);
    let written: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(written, serde_json::from_slice::<Value>(&std::fs::read(&a).unwrap()).unwrap());
    let md = env.ok(&["replay", "abc", "--format", "markdown"]);
    assert!(md.starts_with("# Atomic") && md.contains("what is fsync?"), "{md}");
}

/// Bad input: one `error:` line, non-zero exit, and the journal exactly as it was.
#[test]
fn bad_input_is_refused_and_stores_nothing() {
    let env = Env::new();
    let good = write_session(&env, "good-1", "Good", &["fine"]);
    env.ok(&["capture", p(&good)]);
    let before = env.log();
    let dir = env.chat_dir();

    let cases: Vec<(&str, &[u8])> = vec![
        ("bad.json", b"{\"requests\": [1, 2"),
        ("array.json", b"[1, 2, 3]"),
        ("requests.json", b"{\"requests\": {}}"),
        ("torn-only.jsonl", b"{\"kind\":0,\"v\":{\"reque"),
        ("mid-torn.jsonl", b"{\"kind\":0,\"v\":{\"requests\":[]}}\n{\"kind\":1,\n{\"kind\":1,\"k\":[\"a\"],\"v\":1}\n"),
        (
            "bad-path.jsonl",
            b"{\"kind\":0,\"v\":{\"requests\":[]}}\n{\"kind\":1,\"k\":[\"requests\",7,\"x\"],\"v\":1}\n",
        ),
        ("hostile.json", b"{\"sessionId\": \"../../etc/passwd\", \"requests\": []}"),
        ("deep.json", &[b'['; 10_000]),
        ("nul.json", b"{\"requests\": []}\0"),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        // Even next to a good file, a bad one means nothing is recorded.
        let line = env.fails(&["capture", p(&good), p(&path)]);
        assert!(line.contains(name), "{name}: {line}");
        assert_eq!(env.log(), before, "{name} changed the journal");
    }
    let line = env.fails(&["capture", p(&dir.join("missing.json"))]);
    assert!(line.contains("missing.json"), "{line}");
    assert_eq!(env.log(), before);
    // Titles and tags that VS Code could not show on one line, or would not show at all.
    for bad in ["", "   ", "two\nlines", "a\tb"] {
        assert!(env.fails(&["rename", "good-1", bad]).contains("title"), "{bad:?}");
        assert!(env.fails(&["tag", "good-1", bad]).contains("tag"), "{bad:?}");
    }
    assert_eq!(env.log(), before);
    let verified = env.ok(&["verify"]);
    assert!(verified.starts_with(&format!("ok: {} records in 1 session;", before.len())), "{verified}");
}

/// A file `capture` read before, unchanged since (size, modification time and inode) and
/// whose session has had nothing recorded since, is not read again, as a sync skips a file by
/// its fingerprint: a capture of files it has seen costs a stat each. Anything recorded for
/// the session since, any change to the file, or an earlier file of the same session in the
/// same run, and it is read as ever.
#[test]
fn capture_does_not_read_again_a_file_unchanged_since_it_read_it() {
    let env = Env::new();
    let id = "abc-1";
    let a = write_session(&env, id, "A", &["x"]);
    common::age(&a);
    // The journal is new: the note is made with it.
    env.ok(&["capture", p(&a)]);
    let before = env.log();
    // Other bytes of the same size, the time put back: what a read would see, a capture that
    // trusts the file's token does not.
    let same_token = |title: &str| {
        let modified = std::fs::metadata(&a).unwrap().modified().unwrap();
        write_session(&env, id, title, &["x"]);
        std::fs::File::options().write(true).open(&a).unwrap().set_modified(modified).unwrap();
    };
    same_token("B");
    assert_eq!(env.ok(&["capture", p(&a)]), format!("{}: session {id} unchanged\n", p(&a)));
    assert_eq!(env.log(), before);

    // A change recorded for the session since (here through chasm), and the file is read.
    env.ok(&["rename", id, "Renamed"]);
    assert!(env.ok(&["capture", p(&a)]).contains(": 1 change"));
    assert_eq!(env.replay(id, None)["customTitle"], "B", "the title read, recorded after the rename");
    same_token("C");
    assert!(env.ok(&["capture", p(&a)]).ends_with("unchanged\n"));

    // A change to the file moves its time: read.
    write_session(&env, id, "D", &["x", "y"]);
    common::age(&a);
    assert!(env.ok(&["capture", p(&a)]).contains(": 2 changes"), "the title and a request");
    assert!(env.ok(&["capture", p(&a)]).ends_with("unchanged\n"));

    // A copy of the session read first in the same run changes what the noted file is
    // compared with: both are read, and the file's title is recorded back after the copy's.
    let copy = env.chat_dir().join("copy.json");
    write_session(&env, id, "E", &["x", "y"]);
    std::fs::rename(&a, &copy).unwrap();
    write_session(&env, id, "D", &["x", "y"]);
    common::age(&a);
    common::age(&copy);
    env.ok(&["capture", p(&a)]);
    let out = env.ok(&["capture", p(&copy), p(&a)]);
    assert!(
        out.contains("copy.json: session abc-1: 1 change") && out.contains("abc-1.json: session abc-1: 1 change"),
        "{out}"
    );
    assert_eq!(env.replay(id, None)["customTitle"], "D");
    // Only the file a session's run ended at is noted: the copy, read before it, is read again.
    assert!(env.ok(&["capture", p(&copy)]).contains("copy.json: session abc-1: 1 change"));

    // A log read short of a torn last line is read again: the line may be finished since.
    let log = env.chat_dir().join("torn.jsonl");
    std::fs::write(&log, "{\"kind\":0,\"v\":{\"sessionId\":\"torn-1\",\"requests\":[]}}\n{\"kind\":1,\"k\":[\"custo")
        .unwrap();
    common::age(&log);
    for _ in 0..2 {
        let out = env.chasm(&["capture", p(&log)]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete last line"));
    }
}

/// `chasm gc` drops the notes `capture` kept of files that can no longer spare a read (their
/// session has had records since) and keeps the rest: a file captured again after it is still
/// passed over.
#[test]
fn gc_drops_stale_capture_notes_and_keeps_the_rest() {
    let env = Env::new();
    let (a, b) = (write_session(&env, "abc-1", "A", &["x"]), write_session(&env, "abc-2", "B", &["y"]));
    common::age(&a);
    common::age(&b);
    env.ok(&["capture", p(&a), p(&b)]);
    env.ok(&["rename", "abc-1", "Renamed"]);
    let notes = || {
        let db = rusqlite::Connection::open(env.journal().join("journal.sqlite")).unwrap();
        db.query_row("SELECT count(*) FROM captures", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    assert_eq!(notes(), 2);
    let line = env.ok(&["gc"]);
    assert!(line.contains("; 1 stale capture note(s) dropped; journal "), "{line}");
    assert_eq!(notes(), 1);
    let again: Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert_eq!(again["capture_notes_dropped"], 0, "{again}");
    assert!(!env.ok(&["gc"]).contains("capture note"));
    // Each file's bytes swapped for others of the same size, its time put back: only a read
    // sees it. The note kept still spares one; the file whose note went is read.
    for (path, id, title, request) in [(&a, "abc-1", "C", "x"), (&b, "abc-2", "D", "y")] {
        let modified = std::fs::metadata(path).unwrap().modified().unwrap();
        write_session(&env, id, title, &[request]);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(modified).unwrap();
    }
    assert!(env.ok(&["capture", p(&b)]).ends_with("session abc-2 unchanged\n"));
    assert!(env.ok(&["capture", p(&a)]).contains("session abc-1: 1 change"));
    assert_eq!(env.replay("abc-1", None)["customTitle"], "C");
}

#[test]
fn a_locked_journal_is_a_clear_error() {
    let env = Env::new();
    let a = write_session(&env, "abc-1", "A", &["x"]);
    env.ok(&["capture", p(&a)]);
    let held = common::open_journal(&env.journal(), chasm::journal::OpenMode::Existing);
    let line = common::assert_error_line(&env.chasm(&["log"]));
    assert!(line.contains("locked by another process"), "{line}");
    let line = common::assert_error_line(&env.chasm(&["capture", p(&a)]));
    assert!(line.contains("locked"), "{line}");
    drop(held);
    env.ok(&["log"]);
    // Commands that only read run beside one another; one that writes is refused meanwhile.
    let reading = common::open_journal(&env.journal(), chasm::journal::OpenMode::Read);
    assert!(env.ok(&["log"]).contains("abc-1"));
    let line = common::assert_error_line(&env.chasm(&["capture", p(&a)]));
    assert!(line.contains("locked by another process"), "{line}");
    drop(reading);
    env.ok(&["capture", p(&a)]);
}

#[test]
fn a_journal_of_an_unknown_format_is_refused() {
    let env = Env::new();
    let a = write_session(&env, "abc-1", "A", &["x"]);
    env.ok(&["capture", p(&a)]);
    rusqlite::Connection::open(env.journal().join("journal.sqlite"))
        .unwrap()
        .execute("UPDATE meta SET value = X'00000007' WHERE key = 'format'", [])
        .unwrap();
    let line = env.fails(&["log"]);
    assert!(line.contains("format 7") && line.contains("newer"), "{line}");
    let line = env.fails(&["capture", p(&a)]);
    assert!(line.contains("format 7"), "{line}");
}

#[test]
fn reading_commands_do_not_create_a_journal() {
    let env = Env::new();
    for args in [&["log"][..], &["verify"], &["replay", "x"]] {
        let line = env.fails(args);
        assert!(line.contains("no journal"), "{line}");
    }
    assert!(!env.journal().exists());
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let env = Env::new();
    let texts: Vec<String> = (0..300).map(|i| format!("question number {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let a = write_session(&env, "abc-1", "Long", &refs);
    env.ok(&["capture", p(&a)]);
    // Each writes more than a pipe holds (`export` as it reads, the others at the end).
    for command in [&["log"][..], &["log", "--json"], &["export", "-q"]] {
        let mut child = common::chasm_command()
            .args(["--journal", p(&env.journal())])
            .args(command)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stderr.is_empty(), "{command:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs a shell command under a pseudo-terminal (`script`), or `None` where there is none.
fn in_terminal(command: &str, no_color: bool) -> Option<String> {
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", command, "/dev/null"]).env_remove("NO_COLOR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    match cmd.output() {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        _ => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "notice: no `script` to make a terminal; skipping the colour test");
            None
        }
    }
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let env = Env::new();
    let file = write_session(&env, "col", "Colours", &["hi"]);
    env.ok(&["capture", p(&file)]);
    // Piped: plain text, with the time both absolute and relative.
    let piped = env.ok(&["log"]);
    assert!(!piped.contains('\x1b'), "{piped:?}");
    assert!(piped.contains("just now") || piped.contains(" s ago"), "{piped}");
    let command = format!(
        "{} --journal {} --config /nonexistent/c.json log",
        env!("CARGO_BIN_EXE_chasm"),
        env.journal().display()
    );
    let Some(coloured) = in_terminal(&command, false) else { return };
    assert!(coloured.contains("\x1b[33mremote"), "{coloured:?}");
    let plain = in_terminal(&command, true).unwrap();
    assert!(!plain.contains('\x1b') && plain.contains("remote"), "{plain:?}");
}

#[test]
fn progress_is_drawn_on_a_terminal_only_and_never_with_quiet() {
    let env = Env::new();
    let chat = env.chat_dir();
    for i in 0..50 {
        std::fs::write(chat.join(format!("p{i}.json")), format!(r#"{{"sessionId":"p{i}","requests":[]}}"#)).unwrap();
    }
    let root = env.dir.path().join("User");
    // Piped: nothing but the report.
    let out = env.chasm(&["sync", "--root", root.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "{out:?}");
    let command = |journal: &str, quiet: &str| {
        format!(
            "{} --journal {} --config /nonexistent/c.json {quiet} verify",
            env!("CARGO_BIN_EXE_chasm"),
            env.dir.path().join(journal).display()
        )
    };
    // A journal big enough for verify to report: one record per session and then some.
    for i in 0..5 {
        let f = env.dir.path().join(format!("big{i}.json"));
        let requests: Vec<String> = (0..2000).map(|k| format!(r#"{{"requestId":"r{k}"}}"#)).collect();
        std::fs::write(&f, format!(r#"{{"sessionId":"big{i}","requests":[{}]}}"#, requests.join(","))).unwrap();
        env.ok(&["capture", p(&f)]);
    }
    let Some(drawn) = in_terminal(&command("journal", ""), false) else { return };
    assert!(drawn.contains("checking records:"), "{drawn:?}");
    let quiet = in_terminal(&command("journal", "--quiet"), false).unwrap();
    assert!(!quiet.contains("checking records") && quiet.contains("ok:"), "{quiet:?}");
}

#[test]
fn empty_environment_variables_count_as_unset() {
    let env = Env::new();
    let home = env.dir.path().join("home");
    let out = common::chasm_command()
        .args(["log"])
        .env("CHASM_JOURNAL", "")
        .env("CHASM_CONFIG", "")
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    let line = common::assert_error_line(&out);
    assert!(line.contains(&format!("no journal at {}", home.join(".local/share/chasm/journal").display())), "{line}");
}

/// A session never synced has its merge base at its first change through chasm: before it,
/// nothing was changed on both sides. `--graph -n N` reads back no further than that, not to
/// the session's first record, and shows what the whole graph shows of its newest lines, marks
/// and all, for the journal and for the session, in either order.
#[test]
fn a_limited_graph_of_a_never_synced_session_shows_the_whole_graphs_newest_lines() {
    let env = Env::new();
    let id = "dddd4444-graph";
    let texts: Vec<String> = (0..40).map(|i| format!("question {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Seen in VS Code a request at a time, then renamed through chasm; in VS Code more
    // requests, more than a first read back takes, and then a title: changed on both sides.
    for k in 1..=10 {
        env.ok(&["capture", p(&write_session(&env, id, "First", &refs[..k]))]);
    }
    env.ok(&["rename", id, "Through chasm"]);
    for k in 11..=36 {
        env.ok(&["capture", p(&write_session(&env, id, "First", &refs[..k]))]);
    }
    for k in 36..=40 {
        env.ok(&["capture", p(&write_session(&env, id, "In VS Code", &refs[..k]))]);
    }
    let other = write_session(&env, "eeee5555-other", "Other", &["x"]);
    env.ok(&["capture", p(&other)]);
    for session in [&[][..], &[id]] {
        let whole = env.graph_as_limited_graphs_show_it(session);
        assert!(whole.contains("changed on both sides"), "{whole}");
    }
}

/// The graph holds events without what they changed and reads the words of the lines it
/// shows afterwards, a chunk of records at a time: each line still says what the plain log's
/// line for the same record says, for the whole journal and for one session, across chunks.
#[test]
fn the_graphs_lines_say_what_the_logs_lines_say() {
    let env = Env::new();
    for (id, n) in [("aaaa1111-graph", 560), ("bbbb2222-graph", 280)] {
        let texts: Vec<String> = (0..n).map(|i| format!("{id} question {i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        env.ok(&["capture", p(&write_session(&env, id, "Long", &refs))]);
    }
    for args in
        [&["--entity", "message", "-n", "800"][..], &["aaaa1111", "--reverse", "-n", "540", "--entity", "message"]]
    {
        let plain = env.ok(&[&["log"][..], args].concat());
        let graph = env.ok(&[&["log", "--graph"][..], args].concat());
        let (plain, graph): (Vec<&str>, Vec<&str>) = (plain.lines().collect(), graph.lines().skip(1).collect());
        assert_eq!(plain.len(), graph.len(), "{args:?}");
        assert!(plain.len() > 512, "{args:?}: {}", plain.len());
        for (p, g) in plain.iter().zip(&graph) {
            let words = words_of(g);
            assert!(words.contains("question"), "{g}");
            assert!(p.split_whitespace().next() == g.split_whitespace().next() && p.ends_with(words), "{p}\n{g}");
        }
    }
}

/// A graph line's words: what follows its `YYYY-MM-DD HH:MM:SS` and two spaces.
fn words_of(line: &str) -> &str {
    &line[line.find(':').expect("a time") + ":MM:SS  ".len()..]
}

#[test]
fn a_sync_that_finds_no_chat_folders_says_so() {
    let env = Env::new();
    // No VS Code under this home, no root given or configured.
    let home = env.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let out = common::chasm_command()
        .arg("--journal")
        .arg(env.journal())
        .arg("sync")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("APPDATA", &home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("warning: no VS Code chat folders found")), "{stderr}");
    // With one, no such warning.
    env.chat_dir();
    let root = env.dir.path().join("User");
    let out = env.chasm(&["sync", "--root", p(&root)]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("no VS Code chat folders"));
}

/// Ids sharing their first eight characters are shown as long as it takes to tell them apart,
/// as git abbreviates commit ids: what `log`, `status`, `sync` and `conflicts` show, and the
/// commands they suggest, can be typed back.
#[test]
fn lists_show_ids_long_enough_to_be_typed_back() {
    let env = Env::new();
    let a = write_session(&env, "9c2d4e6f-8a0b-1111", "First", &["hello"]);
    let b = write_session(&env, "9c2d4e6f-8a0b-2222", "Second", &["other"]);
    let c = write_session(&env, "77777777-cccc", "Third", &["more"]);
    env.ok(&["capture", p(&a), p(&b), p(&c)]);
    let log = env.ok(&["log"]);
    for short in ["9c2d4e6f-8a0b-1 ", "9c2d4e6f-8a0b-2 ", "77777777 "] {
        assert!(log.contains(short), "{short:?} in {log}");
    }
    let graph = env.ok(&["log", "--graph"]);
    assert!(graph.contains("9c2d4e6f-8a0b-2  ") && graph.contains("77777777  "), "{graph}");
    // What a list shows names one session.
    assert_eq!(env.ok(&["log", "--json", "9c2d4e6f-8a0b-1"]).lines().count(), 2);
    env.fails(&["log", "9c2d4e6f"]);

    // `status` (a deleted session, with the command that brings it back).
    let root = env.dir.path().join("User");
    let status = |args: &[&str]| {
        let mut all = vec!["status", "--root", p(&root)];
        all.extend_from_slice(args);
        env.ok(&all)
    };
    let synced = env.ok(&["sync", "--root", p(&root)]);
    assert!(synced.contains("  9c2d4e6f-8a0b-1  First"), "{synced}");
    std::fs::remove_file(&b).unwrap();
    env.ok(&["sync", "--root", p(&root)]);
    let all = status(&["--all"]);
    assert!(all.contains("`chasm restore 9c2d4e6f-8a0b-2 --push`"), "{all}");
    // In columns as wide as the longest.
    let plain = status(&[]);
    assert!(
        plain.contains("synced        9c2d4e6f-8a0b-1  First") && plain.contains("77777777         Third"),
        "{plain}"
    );
    env.ok(&["restore", "9c2d4e6f-8a0b-2", "--push", "--root", p(&root)]);
    assert!(b.exists());
}
