//! Where VS Code keeps chat sessions, and listing them safely.
//!
//! A User dir holds `workspaceStorage/<hash>/chatSessions/` (one per folder or workspace window,
//! named by `workspace.json` beside it) and `globalStorage/emptyWindowChatSessions/`. Code,
//! Code - Insiders and VSCodium use the same layout under their own User dirs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{FileFormat, validate_session_id};

/// The editor flavours whose User dirs are searched by default.
pub const FLAVOURS: &[&str] = &["Code", "Code - Insiders", "VSCodium"];

/// A folder of session files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatDir {
    pub path: PathBuf,
    /// The workspace storage folder whose `workspace.json` names the project the sessions
    /// belong to; `None` for empty windows.
    pub workspace: Option<PathBuf>,
}

impl ChatDir {
    /// The project the sessions belong to (`workspace.json`'s folder or workspace URI). Read
    /// when sessions are listed, not when the folders are found: a no-op sync, which runs every
    /// few seconds, never needs it.
    pub fn project(&self) -> Option<String> {
        self.workspace.as_deref().and_then(project_of)
    }
}

/// A session file found in a chat dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub session_id: String,
    pub path: PathBuf,
    pub format: FileFormat,
    pub project: Option<String>,
    /// From the listing's own stat of the file (see [`super::fingerprint_of`]).
    pub fingerprint: Option<String>,
}

/// The User dirs of every installed flavour on this platform's usual paths.
pub fn default_user_dirs() -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = if cfg!(windows) {
        env("APPDATA")
    } else if cfg!(target_os = "macos") {
        env("HOME").map(|h| h.join("Library").join("Application Support"))
    } else {
        env("XDG_CONFIG_HOME").filter(|p| p.is_absolute()).or_else(|| env("HOME").map(|h| h.join(".config")))
    };
    let Some(base) = base else { return Vec::new() };
    FLAVOURS.iter().map(|f| base.join(f).join("User")).filter(|p| p.is_dir()).collect()
}

/// The chat dirs under a root, which may be a User dir, a `workspaceStorage` dir, one
/// workspace's storage dir, or a chat dir itself.
pub fn chat_dirs(root: &Path) -> Vec<ChatDir> {
    let mut out = Vec::new();
    let name = root.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "chatSessions" || name == "emptyWindowChatSessions" {
        out.push(ChatDir { path: root.to_owned(), workspace: root.parent().map(Path::to_owned) });
    } else if root.join("workspaceStorage").is_dir() || root.join("globalStorage").is_dir() {
        out.extend(workspace_chat_dirs(&root.join("workspaceStorage")));
        let empty = root.join("globalStorage").join("emptyWindowChatSessions");
        if empty.is_dir() {
            out.push(ChatDir { path: empty, workspace: None });
        }
    } else if root.join("chatSessions").is_dir() {
        out.push(ChatDir { path: root.join("chatSessions"), workspace: Some(root.to_owned()) });
    } else {
        let nested = workspace_chat_dirs(root);
        if nested.is_empty() {
            out.push(ChatDir { path: root.to_owned(), workspace: None });
        } else {
            out.extend(nested);
        }
    }
    out
}

fn workspace_chat_dirs(storage: &Path) -> Vec<ChatDir> {
    let Ok(entries) = std::fs::read_dir(storage) else {
        return Vec::new();
    };
    let mut dirs: Vec<ChatDir> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("chatSessions").is_dir())
        .map(|p| ChatDir { path: p.join("chatSessions"), workspace: Some(p) })
        .collect();
    dirs.sort_by(|a, b| a.path.cmp(&b.path));
    dirs
}

/// The project named by `workspace.json` in a workspace storage dir.
fn project_of(workspace_dir: &Path) -> Option<String> {
    let bytes = std::fs::read(workspace_dir.join("workspace.json")).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    ["folder", "workspace"].iter().find_map(|k| v.get(k).and_then(Value::as_str)).map(str::to_owned)
}

/// A file named like a session that a listing leaves out whatever it holds: its name is not a
/// session id, or another file of its id is taken instead (the `.jsonl` beside a `.json`, or the
/// same id in an earlier chat folder). It stays out, with the same warning, for as long as it
/// and the files listed stay as they are, which lets the no-op note stand over it (see
/// `crate::in_step`) instead of every sync listing and warning the slow way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedOver {
    pub path: PathBuf,
    /// As for a listed file; `None` (too fresh, or gone) keeps the note from being written.
    pub fingerprint: Option<String>,
    /// The listing's warning about it; a `.json` beside its `.jsonl` has none (as in VS Code).
    pub warning: Option<String>,
}

/// What one listing of some chat dirs found.
#[derive(Debug, Default)]
pub struct Scan {
    pub found: Vec<Found>,
    /// Why a file named like a session was skipped, and which folders could not be read.
    pub warnings: Vec<String>,
    /// The chat dirs that could not be read.
    pub unread: Vec<PathBuf>,
    pub passed_over: Vec<PassedOver>,
    /// Temporaries of chasm's own writes (see [`crate::atomic::is_temporary`]): what a sync
    /// tidies, found by the listing it makes anyway.
    pub temporaries: Vec<PathBuf>,
}

/// The session files in some chat dirs. A file whose name is not a safe session id, or that is
/// a link leading outside its chat dir, is skipped with a warning. Where `.json` and `.jsonl`
/// exist for one id, the `.jsonl` wins, as in VS Code; of an id's copies in several chat dirs,
/// the one written last is taken and the others are skipped with a warning (VS Code copies a
/// window's sessions into the workspace it enters). Everything skipped whatever it holds is in
/// `passed_over`.
pub fn list(dirs: &[ChatDir]) -> Scan {
    let mut scan = Scan::default();
    // Each folder's files, one per id, with the time each was last written.
    let mut candidates: Vec<(Found, Option<std::time::SystemTime>)> = Vec::new();
    for dir in dirs {
        let (Ok(canonical_dir), Ok(entries)) = (dir.path.canonicalize(), std::fs::read_dir(&dir.path)) else {
            scan.warnings
                .push(format!("{}: cannot read the folder; its sessions are left as they are", dir.path.display()));
            scan.unread.push(dir.path.clone());
            continue;
        };
        // Sorted by name (all in one folder): the order a listing gives is the file system's.
        let mut files: Vec<(std::ffi::OsString, std::fs::DirEntry)> =
            entries.filter_map(Result::ok).map(|e| (e.file_name(), e)).collect();
        files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let now = std::time::SystemTime::now();
        let project = dir.project();
        let mut here: Vec<(Found, Option<std::time::SystemTime>)> = Vec::with_capacity(files.len());
        for (name, entry) in files {
            let path = entry.path();
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => FileFormat::Json,
                Some("jsonl") => FileFormat::Jsonl,
                Some("tmp") if name.to_str().is_some_and(crate::atomic::is_temporary) => {
                    scan.temporaries.push(path);
                    continue;
                }
                _ => continue,
            };
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                scan.warnings.push(format!("{}: skipped: the file name is not UTF-8", path.display()));
                continue;
            };
            if let Err(reason) = validate_session_id(stem) {
                let warning = format!("{}: skipped: {reason}", path.display());
                // Fingerprinted as the no-op note does: through a link.
                let meta = match entry.file_type() {
                    Ok(t) if t.is_symlink() => std::fs::metadata(&path),
                    _ => entry_metadata(&entry),
                };
                let fingerprint = meta.ok().and_then(|m| super::fingerprint_of(&m, now));
                scan.warnings.push(warning.clone());
                scan.passed_over.push(PassedOver { path, fingerprint, warning: Some(warning) });
                continue;
            }
            let meta = match place(&entry, &canonical_dir) {
                Ok(Place::File(meta)) => meta,
                Ok(Place::Outside) => {
                    scan.warnings.push(format!("{}: skipped: a link leading outside its chat folder", path.display()));
                    continue;
                }
                Ok(Place::NotAFile) => {
                    scan.warnings.push(format!("{}: skipped: not a regular file", path.display()));
                    continue;
                }
                Err(_) => continue, // vanished since the listing, or a dangling link
            };
            let fingerprint = super::fingerprint_of(&meta, now);
            let session_id = stem.to_owned();
            let found = Found { session_id, path, format, project: project.clone(), fingerprint };
            here.push((found, meta.modified().ok()));
        }
        // By id, the `.jsonl` first where both files exist: the one kept.
        here.sort_unstable_by(|(a, _), (b, _)| {
            a.session_id
                .cmp(&b.session_id)
                .then_with(|| (b.format == FileFormat::Jsonl).cmp(&(a.format == FileFormat::Jsonl)))
        });
        let first_here = candidates.len();
        for (found, modified) in here {
            match candidates[first_here..].last() {
                Some((kept, _)) if kept.session_id == found.session_id => {
                    let (path, fingerprint) = (found.path, found.fingerprint);
                    scan.passed_over.push(PassedOver { path, fingerprint, warning: None });
                }
                _ => candidates.push((found, modified)),
            }
        }
    }
    take_last_written(candidates, &mut scan);
    scan
}

/// Of the copies of a session in several chat folders, the one written last is listed and the
/// others are passed over with a warning. VS Code copies a window's sessions into the workspace
/// it enters and keeps the originals, and the user goes on in the new workspace; a choice by
/// folder would follow the stale original for as long as the copy's folder sorts after it, and
/// nothing said in the new workspace would be recorded. Copies written at the same time are
/// taken from the first folder.
fn take_last_written(candidates: Vec<(Found, Option<std::time::SystemTime>)>, scan: &mut Scan) {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(candidates.len());
    for (at, (found, modified)) in candidates.iter().enumerate() {
        last.entry(found.session_id.as_str())
            .and_modify(|kept| {
                if *modified > candidates[*kept].1 {
                    *kept = at;
                }
            })
            .or_insert(at);
    }
    // Worded while the kept copies can still be borrowed.
    let warnings: Vec<Option<String>> = candidates
        .iter()
        .enumerate()
        .map(|(at, (found, modified))| {
            let kept = last[found.session_id.as_str()];
            (kept != at).then(|| {
                let (other, written) = &candidates[kept];
                let later = if written > modified { ", written later" } else { "" };
                format!(
                    "{}: skipped: session {} is also at {}{later}",
                    found.path.display(),
                    found.session_id,
                    other.path.display()
                )
            })
        })
        .collect();
    for ((found, _), warning) in candidates.into_iter().zip(warnings) {
        match warning {
            None => scan.found.push(found),
            Some(warning) => {
                scan.warnings.push(warning.clone());
                let (path, fingerprint) = (found.path, found.fingerprint);
                scan.passed_over.push(PassedOver { path, fingerprint, warning: Some(warning) });
            }
        }
    }
}

/// A listed entry's own metadata, a link not followed: what fingerprints are made of. On Unix
/// a stat relative to the open folder. Elsewhere by path: Windows answers
/// `DirEntry::metadata` from the listing itself, whose size and time can lag behind a file
/// still open for writing — a change a fingerprint must not miss.
pub fn entry_metadata(entry: &std::fs::DirEntry) -> std::io::Result<std::fs::Metadata> {
    #[cfg(unix)]
    return entry.metadata();
    #[cfg(not(unix))]
    return std::fs::symlink_metadata(entry.path());
}

/// What a listed name is, followed through any links.
enum Place {
    /// A regular file inside the chat folder, and what a stat of it says.
    File(std::fs::Metadata),
    /// Resolves outside the chat folder.
    Outside,
    /// A directory, FIFO, socket or device: reading it could block or never end.
    NotAFile,
}

/// One stat per entry (a sync lists every session every time); only a link is followed, by
/// its path.
fn place(entry: &std::fs::DirEntry, canonical_dir: &Path) -> std::io::Result<Place> {
    let meta = entry_metadata(entry)?;
    if meta.is_file() {
        return Ok(Place::File(meta));
    }
    if !meta.file_type().is_symlink() {
        return Ok(Place::NotAFile);
    }
    let real = entry.path().canonicalize()?;
    if !real.starts_with(canonical_dir) {
        return Ok(Place::Outside);
    }
    let meta = std::fs::metadata(&real)?;
    Ok(if meta.is_file() { Place::File(meta) } else { Place::NotAFile })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "{}").unwrap();
    }

    #[test]
    fn finds_workspace_and_empty_window_sessions_under_a_user_dir() {
        let t = tempfile::tempdir().unwrap();
        let user = t.path().join("Code/User");
        let ws = user.join("workspaceStorage/abc123");
        std::fs::create_dir_all(ws.join("chatSessions")).unwrap();
        std::fs::write(ws.join("workspace.json"), r#"{"folder": "file:///home/ada/proj"}"#).unwrap();
        touch(&ws.join("chatSessions/s1.json"));
        touch(&ws.join("chatSessions/s1.jsonl"));
        touch(&ws.join("chatSessions/s2.json"));
        touch(&ws.join("chatSessions/notes.txt"));
        touch(&user.join("globalStorage/emptyWindowChatSessions/s3.jsonl"));
        let dirs = chat_dirs(&user);
        assert_eq!(dirs.len(), 2);
        assert_eq!(dirs[0].project().as_deref(), Some("file:///home/ada/proj"));
        let Scan { found, warnings, .. } = list(&dirs);
        let summary: Vec<(&str, FileFormat)> = found.iter().map(|f| (f.session_id.as_str(), f.format)).collect();
        assert_eq!(summary, [("s1", FileFormat::Jsonl), ("s2", FileFormat::Json), ("s3", FileFormat::Jsonl)]);
        let projects: Vec<Option<&str>> = found.iter().map(|f| f.project.as_deref()).collect();
        assert_eq!(projects, [Some("file:///home/ada/proj"), Some("file:///home/ada/proj"), None]);
        assert!(warnings.is_empty(), "{warnings:?}");
        // The other root shapes reach the same folders.
        assert_eq!(chat_dirs(&user.join("workspaceStorage")), dirs[..1]);
        assert_eq!(chat_dirs(&ws), dirs[..1]);
        assert_eq!(chat_dirs(&ws.join("chatSessions")), dirs[..1]);
    }

    #[test]
    fn a_session_in_several_folders_is_taken_from_the_copy_written_last_with_a_warning() {
        let t = tempfile::tempdir().unwrap();
        let storage = t.path().join("workspaceStorage");
        // `z` last in one folder and first in the next: copies still, not a `.json` beside its log.
        for (ws, names) in [
            ("a1", &["dup.json", "only-a.jsonl", "only-a.json"][..]),
            ("b2", &["dup.jsonl", "z.json"]),
            ("b3", &["z.json"]),
            ("c3", &["dup.json"]),
        ] {
            for name in names {
                touch(&storage.join(ws).join("chatSessions").join(name));
            }
        }
        let copy =
            |ws: &str| storage.join(ws).join("chatSessions").join(if ws == "b2" { "dup.jsonl" } else { "dup.json" });
        let set_time = |file: PathBuf, secs: u64| {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + secs);
            std::fs::File::options().write(true).open(file).unwrap().set_modified(at).unwrap();
        };
        let written = |ws: &str, secs: u64| set_time(copy(ws), secs);
        set_time(storage.join("b2/chatSessions/z.json"), 1);
        set_time(storage.join("b3/chatSessions/z.json"), 2);
        // Where `dup` is taken from, and the warnings about the other copies.
        let dup_from = || {
            let Scan { found, mut warnings, mut passed_over, .. } = list(&chat_dirs(&storage));
            let mut ids: Vec<&str> = found.iter().map(|f| f.session_id.as_str()).collect();
            ids.sort_unstable();
            assert_eq!(ids, ["dup", "only-a", "z"]);
            let z = found.iter().find(|f| f.session_id == "z").unwrap();
            assert_eq!(z.path, storage.join("b3/chatSessions/z.json"));
            let at = passed_over.iter().position(|p| p.path.ends_with("b2/chatSessions/z.json")).unwrap();
            let w = passed_over.remove(at).warning.unwrap();
            assert!(w.ends_with(&format!("is also at {}, written later", z.path.display())), "{w}");
            warnings.retain(|x| *x != w);
            let passed: Vec<PathBuf> = passed_over.iter().map(|p| p.path.clone()).collect();
            let from = found.iter().find(|f| f.session_id == "dup").unwrap().path.clone();
            let others: Vec<PathBuf> = ["a1", "b2", "c3"].map(copy).into_iter().filter(|p| *p != from).collect();
            assert_eq!(passed, [&[storage.join("a1/chatSessions/only-a.json")][..], &others].concat());
            assert_eq!(passed_over[0].warning, None, "a .json beside its .jsonl is passed over silently");
            for (p, w) in passed_over[1..].iter().zip(&warnings) {
                assert_eq!(p.warning.as_ref(), Some(w));
                let also = format!("{}: skipped: session dup is also at {}", p.path.display(), from.display());
                assert!(w.starts_with(&also), "{w}");
            }
            (from.strip_prefix(&storage).unwrap().to_owned(), warnings)
        };

        written("a1", 10);
        written("b2", 30);
        written("c3", 20);
        let (from, warnings) = dup_from();
        assert_eq!(from, Path::new("b2/chatSessions/dup.jsonl"));
        assert!(warnings.iter().all(|w| w.ends_with(", written later")), "{warnings:?}");
        written("c3", 40);
        assert_eq!(dup_from().0, Path::new("c3/chatSessions/dup.json"));
        // Written at the same time: the first folder's.
        for ws in ["a1", "b2", "c3"] {
            written(ws, 50);
        }
        let (from, warnings) = dup_from();
        assert_eq!(from, Path::new("a1/chatSessions/dup.json"));
        assert!(warnings.iter().all(|w| !w.contains("later")), "{warnings:?}");
    }

    #[cfg(unix)]
    #[test]
    fn links_out_of_the_folder_and_unsafe_names_are_skipped_with_a_warning() {
        let t = tempfile::tempdir().unwrap();
        let chat = t.path().join("ws/chatSessions");
        std::fs::create_dir_all(&chat).unwrap();
        touch(&t.path().join("secret.json"));
        std::os::unix::fs::symlink(t.path().join("secret.json"), chat.join("evil.json")).unwrap();
        touch(&chat.join("real.json"));
        std::os::unix::fs::symlink(chat.join("real.json"), chat.join("alias.json")).unwrap();
        touch(&chat.join("a..b.json"));
        let Scan { found, warnings, passed_over, .. } = list(&chat_dirs(&chat));
        let ids: Vec<&str> = found.iter().map(|f| f.session_id.as_str()).collect();
        assert_eq!(ids, ["alias", "real"]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("evil.json") && w.contains("outside")));
        // Only the name is left out whatever it holds: where a link leads can change.
        let passed: Vec<&Path> = passed_over.iter().map(|p| p.path.as_path()).collect();
        assert_eq!(passed, [chat.join("a..b.json")]);
    }
}
