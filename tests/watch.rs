//! `chasm sync --watch`: rounds every interval and on changes, retries, and a clean stop.

mod common;

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use chasm::journal::{Journal, OpenMode};
use common::{Env, age, append, chasm_command};
use serde_json::json;

/// The next line the watcher prints, waiting at most `secs`.
fn next_line(lines: &mpsc::Receiver<String>, secs: u64) -> String {
    lines.recv_timeout(Duration::from_secs(secs)).expect("the watcher printed nothing in time")
}

#[cfg(unix)]
#[test]
fn watch_syncs_on_changes_retries_and_stops_cleanly_on_sigint() {
    let env = Env::new();
    let chat = env.chat_dir();
    let file = chat.join("w1.jsonl");
    let session = json!({"version": 3, "sessionId": "w1", "requests": []});
    std::fs::write(&file, format!("{}\n", json!({"kind": 0, "v": session}))).unwrap();
    std::fs::write(chat.join("w2.json"), json!({"sessionId": "w2", "requests": []}).to_string()).unwrap();
    age(&file);
    age(&chat.join("w2.json"));
    let root = env.dir.path().join("User");
    let mut child = chasm_command()
        .arg("--journal")
        .arg(env.journal())
        .args(["sync", "--watch", "--interval", "1", "--root", root.to_str().unwrap()])
        .env("CHASM_RETRY_DELAY_MS", "400")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The first round takes both sessions in.
    assert!(next_line(&lines, 30).contains("2 pulled"));

    // A change is picked up by the next round, however long the interval has to run.
    append(&file, &format!("{}\n", json!({"kind": 1, "k": ["customTitle"], "v": "first"})));
    assert!(next_line(&lines, 10).contains("1 pulled"));

    // VS Code mid-write: the torn line is left for later, and taken once it is whole.
    append(&file, r#"{"kind": 1, "k": ["customTitle"], "v": "sec"#);
    std::thread::sleep(Duration::from_millis(2500));
    append(&file, "ond\"}\n");
    assert!(next_line(&lines, 10).contains("1 pulled"));

    // The journal held by another process for a moment: the round is tried again.
    {
        let _held = Journal::open(&env.journal(), OpenMode::Existing).ok();
        append(&file, &format!("{}\n", json!({"kind": 1, "k": ["customTitle"], "v": "third"})));
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(next_line(&lines, 15).contains("1 pulled"));

    // Nothing changes: no lines. SIGINT ends it, with the round under way finished.
    assert!(lines.recv_timeout(Duration::from_millis(2500)).is_err());
    assert!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the watcher did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let titles: Vec<String> = env
        .log()
        .iter()
        .filter(|r| r["entity_id"] == "customTitle")
        .map(|r| r["payload"]["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles, ["first", "second", "third"]);
    env.ok(&["verify"]);
}
