//! Settings made once: the config file, the environment and flags, in that order of strength;
//! `chasm config` says where each value came from. And shell completions.

mod common;

use common::{Env, assert_error_line, chasm_command};
use serde_json::{Value, json};

/// Runs chasm with this journal and config file, and extra environment.
fn run(env: &Env, config: &std::path::Path, vars: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = chasm_command();
    cmd.arg("--journal").arg(env.journal()).arg("--config").arg(config).args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn settings(env: &Env, config: &std::path::Path, vars: &[(&str, &str)]) -> Value {
    let out = run(env, config, vars, &["config", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["settings"].clone()
}

#[test]
fn flags_beat_the_environment_which_beats_the_file_which_beats_the_defaults() {
    let env = Env::new();
    let config = env.dir.path().join("conf/config.json");
    let s = settings(&env, &config, &[]);
    assert_eq!(s["strategy"], json!({"value": "auto_merge", "source": "default"}));
    assert_eq!(s["max_delete"]["value"], 10);

    assert!(run(&env, &config, &[], &["config", "set", "strategy", "manual"]).status.success());
    assert!(run(&env, &config, &[], &["config", "set", "max_delete", "0"]).status.success());
    let s = settings(&env, &config, &[]);
    assert_eq!(s["strategy"]["value"], "manual");
    assert!(s["strategy"]["source"].as_str().unwrap().starts_with("file "));
    let s = settings(&env, &config, &[("CHASM_STRATEGY", "local_wins")]);
    assert_eq!(s["strategy"], json!({"value": "local_wins", "source": "environment CHASM_STRATEGY"}));
    // Read by a person: one line a key, the values in one column.
    let table = String::from_utf8(run(&env, &config, &[], &["config"]).stdout).unwrap();
    let columns: Vec<usize> = table.lines().skip(1).map(|l| l.find(" = ").unwrap()).collect();
    assert_eq!(columns.len(), s.as_object().unwrap().len(), "{table}");
    assert!(columns.iter().all(|c| *c == columns[0]), "{table}");

    // The file's max_delete of 0 stops a sync that would delete a session; a flag allows it.
    let chat = env.chat_dir();
    std::fs::write(chat.join("s1.json"), json!({"sessionId": "s1", "requests": []}).to_string()).unwrap();
    let root = env.dir.path().join("User");
    let root = root.to_str().unwrap();
    assert!(run(&env, &config, &[], &["sync", "--root", root]).status.success());
    std::fs::remove_file(chat.join("s1.json")).unwrap();
    let line = assert_error_line(&run(&env, &config, &[], &["sync", "--root", root]));
    // VS Code deleted it: said so, not as if chasm were about to.
    assert!(
        line.starts_with("error: VS Code deleted 1 session, more than --max-delete 0; nothing was changed"),
        "{line}"
    );
    assert!(
        run(&env, &config, &[("CHASM_MAX_DELETE", "0")], &["sync", "--root", root, "--max-delete", "1"])
            .status
            .success()
    );

    // Roots from the file stand in for --root.
    let roots = env.dir.path().join("User").to_str().unwrap().to_owned();
    assert!(run(&env, &config, &[], &["config", "set", "roots", &roots]).status.success());
    std::fs::write(chat.join("s2.json"), json!({"sessionId": "s2", "requests": []}).to_string()).unwrap();
    let out = run(&env, &config, &[], &["sync"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 pulled"), "{out:?}");
}

#[test]
fn bad_settings_are_refused_with_one_line_and_do_not_block_other_commands() {
    let env = Env::new();
    let config = env.dir.path().join("config.json");
    assert!(assert_error_line(&run(&env, &config, &[], &["config", "set", "colour", "red"])).contains("unknown key"));
    assert_error_line(&run(&env, &config, &[], &["config", "set", "max_delete", "-1"]));
    assert_error_line(&run(&env, &config, &[], &["config", "set", "strategy", "fastest"]));
    assert!(!config.exists(), "nothing written for a refused value");
    assert!(run(&env, &config, &[], &["config", "set", "strategy", "remote_wins"]).status.success());
    let before = std::fs::read(&config).unwrap();
    assert_error_line(&run(&env, &config, &[], &["config", "set", "max_delete", "many"]));
    assert_eq!(std::fs::read(&config).unwrap(), before);

    std::fs::write(&config, r#"{"strategy": "manual", "stratgy": "local_wins"}"#).unwrap();
    let line = assert_error_line(&run(&env, &config, &[], &["sync", "--root", "/nonexistent"]));
    assert!(line.contains("config.json") && line.contains("stratgy"), "{line}");
    let line = assert_error_line(&run(&env, &config, &[("CHASM_STRATEGY", "x")], &["config"]));
    assert!(line.contains("config.json") || line.contains("CHASM_STRATEGY"), "{line}");
    // Commands that need no settings still work.
    let file = env.dir.path().join("s.json");
    std::fs::write(&file, json!({"sessionId": "s", "requests": []}).to_string()).unwrap();
    assert!(run(&env, &config, &[], &["capture", file.to_str().unwrap()]).status.success());
    assert!(run(&env, &config, &[], &["log"]).status.success());
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = chasm_command().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("chasm") && text.contains("restore") && text.contains("at-time"), "{shell}");
    }
    // A shell it does not know is a malformed command line: clap's message, exit 2.
    let out = chasm_command().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}

#[test]
fn import_appends_in_batches_of_the_configured_size() {
    let env = Env::new();
    let config = env.dir.path().join("config.json");
    let file = env.dir.path().join("s.json");
    let requests: Vec<Value> = (0..20).map(|i| json!({"requestId": format!("r{i}")})).collect();
    std::fs::write(&file, json!({"sessionId": "s", "requests": requests}).to_string()).unwrap();
    assert!(run(&env, &config, &[], &["capture", file.to_str().unwrap()]).status.success());
    let export = env.dir.path().join("e.jsonl");
    assert!(run(&env, &config, &[], &["export", "-o", export.to_str().unwrap()]).status.success());

    let fresh = Env::new();
    let out = run(&fresh, &config, &[("CHASM_BATCH_SIZE", "3")], &["import", export.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fresh.ok(&["log", "--json"]), env.ok(&["log", "--json"]));
    fresh.ok(&["verify"]);
    assert_eq!(settings(&fresh, &config, &[("CHASM_BATCH_SIZE", "3")])["batch_size"]["value"], 3);
    assert!(
        !run(&fresh, &config, &[("CHASM_BATCH_SIZE", "0")], &["import", export.to_str().unwrap()]).status.success()
    );
}
