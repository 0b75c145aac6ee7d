//! Helpers shared by the end-to-end tests: run the real `chasm` binary against a temporary
//! journal, and lay out session files the way VS Code does.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A temporary home for one test: a journal directory and a `chatSessions` folder laid out as
/// in a VS Code user dir.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }

    pub fn journal(&self) -> PathBuf {
        self.dir.path().join("journal")
    }

    /// `User/workspaceStorage/<hash>/chatSessions`, created on first use.
    pub fn chat_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("User/workspaceStorage/4f1c2a9b7e/chatSessions");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Runs `chasm --journal <journal> ARGS`.
    pub fn chasm(&self, args: &[&str]) -> Output {
        let mut cmd = chasm_command();
        cmd.arg("--journal").arg(self.journal()).args(args);
        cmd.output().unwrap()
    }

    /// Runs chasm and returns stdout, failing the test on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.chasm(args);
        assert!(out.status.success(), "chasm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs chasm expecting failure; checks the one-line `error:` contract and returns the line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.chasm(args);
        assert!(!out.status.success(), "chasm {args:?} should have failed");
        assert_error_line(&out)
    }

    /// `log --json` as values, oldest first.
    pub fn log(&self) -> Vec<Value> {
        let out = self.chasm(&["log", "--json", "--reverse"]);
        if !out.status.success() {
            return Vec::new();
        }
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// `log --graph [SESSION]` whole, after checking that `-n N` shows its newest N lines, marks
    /// and all, newest first and oldest first, for every N (`--graph -n` reads back only as far
    /// as those lines' marks depend on).
    pub fn graph_as_limited_graphs_show_it(&self, session: &[&str]) -> String {
        let graph = |args: &[&str]| self.ok(&[&["log", "--graph"][..], session, args].concat());
        let whole = graph(&[]);
        let (header, lines) = whole.split_once('\n').unwrap();
        let lines: Vec<&str> = lines.lines().collect();
        for n in 0..=lines.len() + 1 {
            let newest = &lines[..n.min(lines.len())];
            let shown = |lines: Vec<&str>| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
            let n = n.to_string();
            assert_eq!(graph(&["-n", &n]), format!("{header}\n{}", shown(newest.to_vec())), "{session:?} -n {n}");
            let oldest_first = newest.iter().rev().copied().collect();
            assert_eq!(graph(&["-n", &n, "--reverse"]), format!("{header}\n{}", shown(oldest_first)), "{session:?}");
        }
        whole
    }

    /// `replay SESSION --at SEQ` (or latest) as a JSON value.
    pub fn replay(&self, session: &str, at: Option<u64>) -> Value {
        let mut args = vec!["replay".to_string(), session.to_string()];
        if let Some(at) = at {
            args.push("--at".into());
            args.push(at.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

/// The `chasm` binary, insulated from the settings of whoever runs the tests: no journal,
/// config file or setting from the environment, and a config file that does not exist.
pub fn chasm_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chasm"));
    for var in [
        "CHASM_JOURNAL",
        "CHASM_STRATEGY",
        "CHASM_ROOTS",
        "CHASM_MAX_DELETE",
        "CHASM_INTERVAL",
        "CHASM_MAX_RETRIES",
        "CHASM_RETRY_DELAY_MS",
        "CHASM_BATCH_SIZE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CHASM_CONFIG", "/nonexistent/chasm-tests/config.json");
    cmd
}

/// Checks that a failed run printed exactly one line on stderr, starting with `error:`, and
/// did not panic; returns that line.
pub fn assert_error_line(out: &Output) -> String {
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(101), "chasm panicked");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "expected `error:`, got: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_string()
}

/// The real sessions in `../shared/fixtures/vscode-real`, or `None` (with a notice) where that
/// folder is absent.
pub fn real_fixtures() -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/vscode-real");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        // Written to the stderr handle, not with eprintln!, so the test harness does not swallow it.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "notice: {} is absent; skipping the tests on real sessions", dir.display());
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "jsonl")))
        .collect();
    files.sort();
    Some(files)
}

/// Appends text to a file (a VS Code mutation-log write).
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// VS Code's own reading of a `.jsonl` mutation log (`ObjectMutationLog.read`), written out
/// plainly and independently of chasm's reader: split on newlines, parse each non-empty line,
/// kind 0 replaces the state, 1 sets, 2 truncates-then-pushes, 3 deletes.
pub fn vscode_read_jsonl(bytes: &[u8]) -> Value {
    let mut state = Value::Null;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let entry: Value = serde_json::from_slice(line).expect("VS Code would fail on this line");
        let path: Vec<Value> = entry.get("k").and_then(Value::as_array).cloned().unwrap_or_default();
        let kind = entry["kind"].as_u64().unwrap();
        if kind == 0 {
            state = entry["v"].clone();
            continue;
        }
        if path.is_empty() {
            continue;
        }
        let mut parent = &mut state;
        for step in &path[..path.len() - 1] {
            parent = match step {
                Value::String(k) => parent.get_mut(k.as_str()).unwrap(),
                n => parent.get_mut(n.as_u64().unwrap() as usize).unwrap(),
            };
        }
        let last = &path[path.len() - 1];
        match kind {
            1 => match last {
                Value::String(k) => {
                    parent.as_object_mut().unwrap().insert(k.clone(), entry["v"].clone());
                }
                n => parent.as_array_mut().unwrap()[n.as_u64().unwrap() as usize] = entry["v"].clone(),
            },
            2 => {
                let key = last.as_str().unwrap();
                let obj = parent.as_object_mut().unwrap();
                let mut arr = obj.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
                if let Some(i) = entry.get("i").and_then(Value::as_u64) {
                    arr.truncate(i as usize);
                }
                if let Some(v) = entry.get("v").and_then(Value::as_array) {
                    arr.extend(v.iter().cloned());
                }
                obj.insert(key.to_owned(), Value::Array(arr));
            }
            3 => {
                parent.as_object_mut().unwrap().shift_remove(last.as_str().unwrap());
            }
            _ => panic!("unknown kind"),
        }
    }
    state
}

/// What VS Code reads from a session file, `.json` or `.jsonl`.
pub fn vscode_read(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "jsonl") {
        vscode_read_jsonl(&bytes)
    } else {
        serde_json::from_slice(&bytes).unwrap()
    }
}

/// A small deterministic generator (xorshift), so a failing run can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Sets a file's modification time an hour back, as if VS Code wrote it long ago (a file
/// changed a moment ago is not yet trusted by its fingerprint).
pub fn age(path: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
}

/// Appends one change made through chasm (origin local) to the journal in `dir`, as the local
/// commands (rename, delete, tag, restore) make them.
pub fn local_change(
    dir: &Path,
    id: &str,
    change_type: chasm::journal::ChangeType,
    entity_type: chasm::journal::EntityType,
    entity_id: &str,
    payload: Value,
) {
    let mut journal = open_journal(dir, chasm::journal::OpenMode::Existing);
    journal
        .append(vec![chasm::journal::NewChange {
            session_id: id.into(),
            change_type,
            entity_type,
            entity_id: entity_id.into(),
            timestamp: chrono::Utc::now(),
            origin: chasm::journal::Origin::Local,
            provider: "vscode".into(),
            payload,
        }])
        .unwrap();
}

/// Opens the journal in this process. Another test's child process may, for a moment between
/// its fork and its exec, hold a copy of the lock file descriptor this process just closed
/// (flock locks belong to the open file, which the copy keeps alive), so a journal that looks
/// locked is tried again for a while.
pub fn open_journal(dir: &Path, mode: chasm::journal::OpenMode) -> chasm::journal::Journal {
    for _ in 0..100 {
        match chasm::journal::Journal::open(dir, mode) {
            Err(chasm::journal::JournalError::Locked(_)) => std::thread::sleep(std::time::Duration::from_millis(10)),
            other => return other.unwrap(),
        }
    }
    chasm::journal::Journal::open(dir, mode).unwrap()
}
