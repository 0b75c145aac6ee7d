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
    ///
    /// Tests that edit the journal through sled in this process release sled's file lock a
    /// moment after dropping the database (its background threads let go of the file
    /// asynchronously), so a run that finds the journal locked is retried for a while.
    pub fn chasm(&self, args: &[&str]) -> Output {
        for _ in 0..100 {
            let out = self.chasm_once(args);
            if !String::from_utf8_lossy(&out.stderr).contains("locked by another process") {
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        self.chasm_once(args)
    }

    /// Runs chasm once, without retrying on a locked journal.
    pub fn chasm_once(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chasm"));
        cmd.arg("--journal").arg(self.journal()).args(args).env_remove("CHASM_JOURNAL");
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
