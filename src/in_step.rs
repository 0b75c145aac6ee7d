//! The no-op fast path: a note kept beside the journal saying that, at the end of the last sync,
//! every session was in step, with each session file's fingerprint as that sync saw it.
//!
//! A background sync runs every few seconds and almost always finds nothing to do. With the
//! note, such a sync lists the chat folders, stats each file and compares: when the folders,
//! the files and their fingerprints are all as noted, nothing changed on either side and the
//! journal is not even opened. Anything else — a new, changed or vanished file, a flag the note
//! was not written for — takes the full sync.
//!
//! A file the listing passes over whatever it holds (a name that is no session id, a second
//! copy of a session: see [`PassedOver`]) is noted too, with the sync's warning about it, which
//! each sync the note holds for repeats: such a file would otherwise keep every later sync on
//! the slow path, and VS Code leaves one wherever it copies a window's sessions into a new
//! workspace. So is a session file that does not read as its session (cut short by a crash,
//! not a session at all): each sync the note holds for reports it failed again, with the full
//! sync's words and exit code, where it would otherwise keep every later sync on the slow
//! path until the file is mended. A note another chasm wrote is not read.
//!
//! The journal drops the note (durably) before every change it makes, so a note that exists
//! was written after the journal's last change: a change made through chasm, or an import, always
//! leads to a full sync. The note is a cache; deleting it costs one full sync.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::journal::{Journal, OpenMode};
use crate::provider::vscode::discover::{PassedOver, entry_metadata};
use crate::provider::vscode::{VsCode, write_fingerprint};
use crate::sync::{Action, Options, Report, SessionSync, SyncError, location_of, skipped_warning};

/// The note's file name inside the journal directory.
pub const FILE: &str = "in-step.json";

/// What the note's format is; a note in another is not read (it is only a cache).
const VERSION: u32 = 4;

/// This chasm's version: a note another wrote is not read.
const BY: &str = env!("CARGO_PKG_VERSION");

/// The note. Its file names are borrowed from the file's bytes, as a no-op sync reads it every
/// few seconds: a name that JSON had to escape (session ids have none) fails the read, which
/// only means a full sync. Folder paths may need escaping (a Windows path always does).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Note<'a> {
    version: u32,
    /// The chasm that wrote it: what a file passed over or failing to read is, another chasm
    /// may judge otherwise.
    #[serde(borrow)]
    by: Cow<'a, str>,
    #[serde(borrow)]
    dirs: Vec<Dir<'a>>,
    /// The sync's warnings, all about files passed over or that did not read: each sync the
    /// note holds for gives them again, as the full sync would.
    warnings: Vec<String>,
    /// The sessions whose files did not read, as the sync reported them: each sync the note
    /// holds for reports them again, and fails as the full sync would.
    failed: Vec<Failed>,
    /// When some failed, every session the sync reported, in its order: what their short ids
    /// are told apart from, as the full sync's are.
    #[serde(borrow)]
    ids: Vec<Cow<'a, str>>,
}

/// A session whose file did not read (see [`SessionSync::bad_content`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Failed {
    pub session_id: String,
    pub title: Option<String>,
    pub path: String,
    pub local_changes: usize,
    pub remote_changes: usize,
    pub error: String,
}

/// A chat folder the sync covered, and every session file in it by name (sorted), with its
/// fingerprint; then the same of the files passed over. Their names may be anything a file
/// system allows, so JSON may have had to escape them: they are borrowed where it did not.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Dir<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    #[serde(borrow)]
    files: Vec<(&'a str, &'a str)>,
    #[serde(borrow)]
    passed: Vec<(Cow<'a, str>, &'a str)>,
}

/// What a sync that left everything in step saw: each session file and each file passed over
/// by path (in any order: [`record`] puts them in their folders, sorted by name), with its
/// fingerprint, the sync's warnings, the sessions whose files did not read and, when there
/// are any, every session it reported.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub files: Vec<(PathBuf, String)>,
    pub passed: Vec<(PathBuf, String)>,
    pub warnings: Vec<String>,
    pub failed: Vec<Failed>,
    pub ids: Vec<String>,
}

/// Writes the note (atomically) after a sync that left everything in step.
pub fn record(journal_dir: &Path, provider: &VsCode, seen: Seen) -> io::Result<()> {
    // Each file is put in its folder by a lookup of its parent. A map sorted by path (each
    // comparison a walk through both paths' components), then a pass over all of it for each
    // folder, took a millisecond of the 6.7 that a sync writing the note took over one folder
    // of 1,000 sessions. A folder or name that is not UTF-8 is left out: its files are then
    // "new" to every fast-path check, which takes the full sync.
    fn by_dir<'f>(
        files: &'f [(PathBuf, String)],
        at: &HashMap<&Path, usize>,
        n: usize,
    ) -> Vec<Vec<(&'f str, &'f str)>> {
        let mut by_dir: Vec<Vec<(&str, &str)>> = vec![Vec::new(); n];
        for (path, token) in files {
            let (Some(&i), Some(name)) = (path.parent().and_then(|p| at.get(p)), path.file_name()) else { continue };
            if let Some(name) = name.to_str() {
                by_dir[i].push((name, token.as_str()));
            }
        }
        for names in &mut by_dir {
            names.sort_unstable();
        }
        by_dir
    }
    // A folder named twice (two roots holding it) is noted twice, as it is listed.
    let mut at: HashMap<&Path, usize> = HashMap::with_capacity(provider.dirs.len());
    let first: Vec<usize> =
        provider.dirs.iter().enumerate().map(|(i, d)| *at.entry(d.path.as_path()).or_insert(i)).collect();
    let n = provider.dirs.len();
    let (files, passed) = (by_dir(&seen.files, &at, n), by_dir(&seen.passed, &at, n));
    let mut dirs = Vec::with_capacity(n);
    for (dir, first) in provider.dirs.iter().zip(first) {
        let Some(path) = dir.path.to_str() else { continue };
        let passed = passed[first].iter().map(|&(name, token)| (name.into(), token)).collect();
        dirs.push(Dir { path: path.into(), files: files[first].clone(), passed });
    }
    let ids = seen.ids.iter().map(|id| Cow::from(id.as_str())).collect();
    let (by, warnings, failed) = (Cow::from(BY), seen.warnings, seen.failed);
    let note = Note { version: VERSION, by, dirs, warnings, failed, ids };
    crate::atomic::write(&journal_dir.join(FILE), &serde_json::to_vec(&note).expect("a note serializes"))
}

/// Whether everything is as the note says: the same folders, the same session files and files
/// passed over, each with the fingerprint noted. `Some` of the report to give again when it
/// does (the warnings, the sessions that did not read), with the temporaries of killed writes
/// the listing met (which the full sync's tidying removes once stale, and so the round does);
/// any doubt (no note, an unreadable folder, a file too fresh to fingerprint) is a `None`.
pub fn holds(journal_dir: &Path, provider: &VsCode) -> Option<(Report, Vec<PathBuf>)> {
    let bytes = std::fs::read(journal_dir.join(FILE)).ok()?;
    let note = serde_json::from_slice::<Note>(&bytes).ok()?;
    let paths = note.dirs.iter().map(|d| Path::new(d.path.as_ref()));
    if note.version != VERSION || note.by != BY || !paths.eq(provider.dirs.iter().map(|d| &d.path)) {
        return None;
    }
    // A listing and one stat per file, relative to the open folder: this runs every few seconds.
    let now = std::time::SystemTime::now();
    let mut token = String::with_capacity(64);
    let mut temporaries = Vec::new();
    for dir in &note.dirs {
        let entries = std::fs::read_dir(dir.path.as_ref()).ok()?;
        let mut seen = 0;
        for entry in entries {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let bytes = name.as_encoded_bytes();
            if !(bytes.ends_with(b".json") || bytes.ends_with(b".jsonl")) {
                if bytes.ends_with(b".tmp") && name.to_str().is_some_and(crate::atomic::is_temporary) {
                    temporaries.push(entry.path());
                }
                continue;
            }
            // Named like a session but not in UTF-8: the full sync says why it skips it.
            let name = name.to_str()?;
            let noted = match dir.files.binary_search_by(|(n, _)| (*n).cmp(name)) {
                Ok(at) => dir.files[at].1,
                Err(_) => dir.passed[dir.passed.binary_search_by(|(n, _)| n.as_ref().cmp(name)).ok()?].1,
            };
            // A link is fingerprinted by what it points to, as the provider does.
            let meta = match entry.file_type() {
                Ok(t) if t.is_symlink() => std::fs::metadata(entry.path()),
                Ok(_) => entry_metadata(&entry),
                Err(e) => Err(e),
            };
            token.clear();
            match meta {
                Ok(meta) if write_fingerprint(&meta, now, &mut token) && token == noted => seen += 1,
                _ => return None,
            }
        }
        if seen != dir.files.len() + dir.passed.len() {
            return None;
        }
    }
    let report = Report { warnings: note.warnings, sessions: reported(note.failed, note.ids), ..Report::default() };
    Some((report, temporaries))
}

/// The sessions of a report the note holds for: those that did not read, among every other
/// session the sync reported as in step (nothing to print, only ids to tell apart).
fn reported(failed: Vec<Failed>, ids: Vec<Cow<str>>) -> Vec<SessionSync> {
    if failed.is_empty() {
        return Vec::new();
    }
    let mut failed: BTreeMap<String, Failed> = failed.into_iter().map(|f| (f.session_id.clone(), f)).collect();
    let mut sessions = Vec::with_capacity(ids.len());
    for id in ids {
        sessions.push(match failed.remove(id.as_ref()) {
            Some(f) => {
                let location = location_of(&f.path);
                SessionSync {
                    local_changes: f.local_changes,
                    remote_changes: f.remote_changes,
                    ..SessionSync::with_bad_content(f.session_id, f.title, location, f.error)
                }
            }
            None => SessionSync::in_step(id.into_owned(), None, None, None),
        });
    }
    sessions
}

/// One sync of the journal in `journal_dir`, as `chasm sync` and each round of `sync --watch`
/// run it: nothing but the removal of stale temporaries of killed writes when the note
/// [`holds`] (the journal is not opened); otherwise the journal is opened for the
/// sync's length only (other chasm commands can run between rounds), and a sync that found
/// everything in step notes it for the next round. A sync of one session (`opts.only`) says
/// nothing of the others, so it never notes.
pub fn round(journal_dir: &Path, provider: &VsCode, opts: &Options) -> Result<Report, SyncError> {
    if let Some((report, temporaries)) = holds(journal_dir, provider) {
        // Tidied as a full sync tidies: a stale temporary would otherwise stay as long as
        // every round finds nothing to do.
        if !opts.dry_run {
            crate::atomic::remove_stale_temporaries(temporaries.iter().map(PathBuf::as_path));
        }
        return Ok(report);
    }
    let mut journal = Journal::open(journal_dir, OpenMode::Create)?;
    let report = crate::sync::sync(&mut journal, provider, opts)?;
    // Written while the journal is still held: no change can come between the sync and it.
    if !opts.dry_run && opts.only.is_none() {
        note_if_in_step(journal_dir, provider, &report);
    }
    drop(journal);
    Ok(report)
}

/// After a sync that found nothing to do anywhere, notes each file's fingerprint for the fast
/// path. Only then: a sync that wrote a file or recorded a change leaves fingerprints that the
/// next sync must confirm the slow way; and only when its warnings are all about files the
/// note can vouch for: files the listing passed over, and files whose bytes do not read as
/// their session (a file that cannot be read at all or written, or that VS Code was writing,
/// is tried again).
fn note_if_in_step(journal_dir: &Path, provider: &VsCode, report: &Report) {
    let passed_over = provider.passed_over();
    let bad: Vec<&SessionSync> = report.sessions.iter().filter(|s| s.bad_content).collect();
    let explained = |w: &String| {
        passed_over.iter().any(|p| p.warning.as_ref() == Some(w))
            || bad.iter().any(|s| s.error.as_deref().is_some_and(|e| *w == skipped_warning(e)))
    };
    let quiet = report.appended == 0 && report.files_written == 0 && report.warnings.iter().all(explained);
    let settled = |s: &SessionSync| s.bad_content || (s.action == Action::None && s.error.is_none());
    if !quiet || !report.sessions.iter().all(settled) {
        return;
    }
    let mut passed = Vec::with_capacity(passed_over.len());
    for PassedOver { path, fingerprint, .. } in passed_over {
        match fingerprint {
            Some(token) => passed.push((path, token)),
            None => return, // too fresh to fingerprint, or gone: no note this time
        };
    }
    let mut files = Vec::with_capacity(report.sessions.len());
    for s in &report.sessions {
        match (&s.location, &s.fingerprint) {
            (Some(loc), Some(token)) => files.push((loc.path.clone(), token.clone())),
            // Deleted on both sides: a file appearing there is not in the note, which is enough.
            (Some(loc), None) if !loc.path.exists() => {}
            (Some(_), None) => return, // too fresh to fingerprint: no note this time
            (None, _) => {}            // only in the journal: no file to watch
        }
    }
    let mut failed = Vec::with_capacity(bad.len());
    for s in bad {
        // A path that is not UTF-8 cannot be noted: no note this time.
        let (Some(path), Some(error)) = (s.location.as_ref().and_then(|l| l.path.to_str()), &s.error) else { return };
        failed.push(Failed {
            session_id: s.session_id.clone(),
            title: s.title.clone(),
            path: path.to_owned(),
            local_changes: s.local_changes,
            remote_changes: s.remote_changes,
            error: error.clone(),
        });
    }
    let ids = match failed.is_empty() {
        true => Vec::new(),
        false => report.sessions.iter().map(|s| s.session_id.clone()).collect(),
    };
    // Only a cache: failing to write it costs the next sync a full run, nothing more.
    let _ = record(journal_dir, provider, Seen { files, passed, warnings: report.warnings.clone(), failed, ids });
}

/// Drops the note, durably, before the journal changes. Cheap when there is none.
pub fn invalidate(journal_dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(journal_dir.join(FILE)) {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(journal_dir) {
                d.sync_all()?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::vscode::discover::ChatDir;
    use crate::provider::vscode::fingerprint_of;
    use crate::sync::Status;

    /// The warnings of the report the note gives, when it holds.
    fn warnings(journal: &Path, provider: &VsCode) -> Option<Vec<String>> {
        holds(journal, provider).map(|(r, _)| r.warnings)
    }

    /// Writes a file aged past the fingerprint's window, and gives its fingerprint.
    fn aged(file: &Path, text: &str) -> String {
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::write(file, text).unwrap();
        std::fs::File::options().write(true).open(file).unwrap().set_modified(hour_ago).unwrap();
        fingerprint_of(&std::fs::metadata(file).unwrap(), std::time::SystemTime::now()).unwrap()
    }

    /// Two chat folders with a session file each, and the note a sync would write for them.
    fn folders() -> (tempfile::TempDir, VsCode, Seen) {
        let t = tempfile::tempdir().unwrap();
        let mut dirs = Vec::new();
        let mut seen = Seen::default();
        // A folder name that JSON escapes, as every Windows path is.
        for (dir, name) in [("a", "s1.jsonl"), ("b\"q\\", "s2.json")] {
            let path = t.path().join(dir);
            std::fs::create_dir(&path).unwrap();
            let file = path.join(name);
            seen.files.push((file.clone(), aged(&file, "{}")));
            dirs.push(ChatDir { path, workspace: None });
        }
        (t, VsCode::over(dirs), seen)
    }

    #[test]
    fn the_note_holds_until_a_session_file_is_added_changed_or_removed() {
        let (t, provider, seen) = folders();
        let journal = t.path().join("journal");
        std::fs::create_dir(&journal).unwrap();
        assert_eq!(warnings(&journal, &provider), None, "no note");
        record(&journal, &provider, seen.clone()).unwrap();
        assert_eq!(warnings(&journal, &provider), Some(vec![]));

        // Other files do not count; a new session file does.
        std::fs::write(t.path().join("a/notes.txt"), "x").unwrap();
        assert!(holds(&journal, &provider).is_some());
        let b = &provider.dirs[1].path;
        let new = b.join("s3.json");
        std::fs::write(&new, "{}").unwrap();
        assert_eq!(warnings(&journal, &provider), None);
        std::fs::remove_file(&new).unwrap();
        assert!(holds(&journal, &provider).is_some());
        #[cfg(unix)]
        {
            // Named like a session, not in UTF-8: the full sync must see it (and say it skips it).
            use std::os::unix::ffi::OsStrExt;
            let odd = b.join(std::ffi::OsStr::from_bytes(b"s\xff.json"));
            std::fs::write(&odd, "{}").unwrap();
            assert_eq!(warnings(&journal, &provider), None);
            std::fs::remove_file(&odd).unwrap();
            assert!(holds(&journal, &provider).is_some());
        }

        // A changed file (a new size, or one too fresh to fingerprint), a removed one.
        let s2 = b.join("s2.json");
        std::fs::write(&s2, "{ }").unwrap();
        assert_eq!(warnings(&journal, &provider), None);
        record(&journal, &provider, seen).unwrap();
        std::fs::remove_file(&s2).unwrap();
        assert_eq!(warnings(&journal, &provider), None);
    }

    /// A folder reached through two roots is listed twice, each time with all its files: the
    /// note must hold each listing's files, or no later sync could take the fast path. A path
    /// written with a trailing slash names the same folder as one without.
    #[test]
    fn a_folder_named_twice_is_noted_whole_each_time() {
        let (t, provider, seen) = folders();
        let journal = t.path().join("journal");
        std::fs::create_dir(&journal).unwrap();
        let a = provider.dirs[0].path.clone();
        let mut slashed = a.clone().into_os_string();
        slashed.push("/");
        let twice = VsCode::over(
            [a.clone(), PathBuf::from(slashed), provider.dirs[1].path.clone()]
                .into_iter()
                .map(|path| ChatDir { path, workspace: None })
                .collect(),
        );
        record(&journal, &twice, seen.clone()).unwrap();
        assert_eq!(warnings(&journal, &twice), Some(vec![]));
        // A file changed there is seen through either name: the full sync again.
        std::fs::write(a.join("s1.jsonl"), "{ }").unwrap();
        assert_eq!(warnings(&journal, &twice), None);
    }

    #[test]
    fn files_passed_over_hold_with_their_warnings_until_they_change() {
        let (t, provider, mut seen) = folders();
        let journal = t.path().join("journal");
        std::fs::create_dir(&journal).unwrap();
        // A second copy of s1, and a name that is no session id (one JSON escapes).
        let b = provider.dirs[1].path.clone();
        let copy = b.join("s1.jsonl");
        let odd = b.join("a\"..b.json");
        for file in [&copy, &odd] {
            seen.passed.push((file.clone(), aged(file, "{}")));
        }
        seen.warnings = vec!["s1 is also elsewhere".into(), "a name".into()];
        record(&journal, &provider, seen.clone()).unwrap();
        assert_eq!(warnings(&journal, &provider), Some(seen.warnings.clone()), "the warnings come again");

        // Changed, removed or joined by another, they take the full sync, as session files do.
        std::fs::write(&copy, "{ }").unwrap();
        assert_eq!(warnings(&journal, &provider), None);
        aged(&copy, "{}");
        std::fs::remove_file(&odd).unwrap();
        assert_eq!(warnings(&journal, &provider), None);
        record(&journal, &provider, seen.clone()).unwrap();
        aged(&odd, "{}");
        aged(&b.join("b..c.json"), "{}");
        assert_eq!(warnings(&journal, &provider), None);
    }

    /// A session whose file did not read is reported again as the sync reported it, among the
    /// other sessions (in step, whose ids its short id is told apart from), until it changes.
    #[test]
    fn a_session_that_did_not_read_is_reported_failed_again_until_its_file_changes() {
        let (t, provider, mut seen) = folders();
        let journal = t.path().join("journal");
        std::fs::create_dir(&journal).unwrap();
        let path = provider.dirs[1].path.join("s2.json");
        let error = format!("{}: not valid JSON", path.display());
        seen.warnings = vec![skipped_warning(&error)];
        seen.failed = vec![Failed {
            session_id: "s2".into(),
            title: Some("Half a session".into()),
            path: path.to_str().unwrap().into(),
            local_changes: 1,
            remote_changes: 0,
            error: error.clone(),
        }];
        seen.ids = vec!["s1".into(), "s2".into(), "s3".into()];
        record(&journal, &provider, seen.clone()).unwrap();
        let (report, _) = holds(&journal, &provider).unwrap();
        assert_eq!(report.warnings, seen.warnings);
        let ids: Vec<&str> = report.sessions.iter().map(|s| s.session_id.as_str()).collect();
        assert_eq!(ids, ["s1", "s2", "s3"]);
        let failed = &report.sessions[1];
        assert_eq!((failed.action, failed.status, failed.bad_content), (Action::Failed, Status::Error, true));
        assert_eq!((failed.title.as_deref(), failed.error.as_deref()), (Some("Half a session"), Some(error.as_str())));
        assert_eq!((failed.local_changes, failed.location.as_ref().map(|l| &l.path)), (1, Some(&path)));
        assert!(report.sessions.iter().filter(|s| s.session_id != "s2").all(|s| s.action == Action::None));

        // Mended (or changed any other way), it takes the full sync.
        aged(&path, "{\"requests\": []}");
        assert!(holds(&journal, &provider).is_none());
    }

    #[test]
    fn a_note_for_other_folders_or_in_another_format_does_not_hold() {
        let (t, provider, seen) = folders();
        let journal = t.path().join("journal");
        std::fs::create_dir(&journal).unwrap();
        record(&journal, &provider, seen).unwrap();
        let fewer = VsCode::over(provider.dirs[..1].to_vec());
        assert_eq!(warnings(&journal, &fewer), None);

        let note = journal.join(FILE);
        let text = std::fs::read_to_string(&note).unwrap();
        std::fs::write(&note, text.replace("\"version\":4", "\"version\":3")).unwrap();
        assert_eq!(warnings(&journal, &provider), None);
        std::fs::write(&note, text.replace(&format!("\"by\":\"{BY}\""), "\"by\":\"0.0.1\"")).unwrap();
        assert_eq!(warnings(&journal, &provider), None, "written by another chasm");
        std::fs::write(&note, &text).unwrap();
        assert!(warnings(&journal, &provider).is_some());
        std::fs::write(&note, "{\"version\":4,").unwrap();
        assert_eq!(warnings(&journal, &provider), None);
    }
}
