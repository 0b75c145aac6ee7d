//! The sync engine: scan → record → decide → push → checkpoint.
//!
//! 1. **Scan** every session the provider lists and diff it against what the journal last saw
//!    of it in the provider (the remote view); a session gone from a covered location is a
//!    remote deletion.
//! 2. **Record** those differences as `origin = remote` events, in one durable batch, before
//!    anything else happens: what VS Code did is history whatever the sync decides.
//! 3. **Decide** per session with the three-way merge of the fold's views (base, local, remote).
//! 4. **Push** the merged session to the provider where it differs, in the file's own format,
//!    only over the content chasm read (a file VS Code changed meanwhile is left for next time).
//! 5. **Checkpoint**: append, in one batch, the local events that make the journal's own fold
//!    equal the merged session (a conflict's resolution) and a `merge` event saying both sides
//!    now hold it. That checkpoint is the next sync's merge base.
//!
//! A session with nothing new since its checkpoint appends and writes nothing. When its file
//! also has the fingerprint (size, mtime, inode) it had when both sides were last in step, and
//! the journal holds nothing newer, it is not even read: a stat, and a lookup in what one query
//! read of every fingerprint. When only the file changed, it is diffed against the [`Shape`]
//! the session had then, without reading its history: there is nothing local to merge, so its
//! checkpoint is recorded with its changes (step 2), in the same commit. A session only the
//! journal has that nothing can change in this run — settled since its checkpoint, or never
//! synced anywhere — is reported from what the last sync noted of it, while it has the same
//! records (see [`Fingerprint`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::appended;
use crate::diff::{EntityChange, diff, diff_shape};
use crate::fold::{Checkpoint, FoldError, SessionState, Source, Tail, Views, remote_of, views_of};
use crate::journal::{
    ChangeType, EntityType, Fingerprint, Held, InStep, Journal, JournalError, NewChange, Origin, Settled, StateError,
    SyncChange, Unsynced,
};
use crate::merge::{ChangeTimes, Conflict, MergeError, Sides, Strategy, Take, merge};
use crate::provider::{FileFormat, Listed, Location, LogMark, Provider, ProviderError, Pulled, Since};
use crate::session::{Session, hex};
use crate::shape::Shape;

/// What a sync run may do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub strategy: Strategy,
    /// Decide and report, but append nothing and write nothing.
    pub dry_run: bool,
    /// Abort when more sessions than this would be deleted on either side (rclone bisync's
    /// safety check against a wrong root or a wiped folder): before anything is recorded or
    /// written, but for VS Code's changes (and the checkpoints of the sessions they leave in
    /// step) when it is chasm that would delete (see `left_as_it_was`).
    pub max_delete: usize,
    /// Settlements of named conflicts, from `chasm resolve`.
    pub overrides: HashMap<String, Take>,
    /// Only this session.
    pub only: Option<String>,
    /// Where to report how far the scan has got.
    pub progress: crate::progress::Progress,
    /// How many bytes of session files a sync reads before it records what they changed so
    /// far; `None`: [`RECORD_AFTER`].
    pub record_after: Option<u64>,
}

/// A sync records what it has read every this many bytes of session files, so that a first
/// sync of a large folder holds a bounded part of it in memory rather than all of it. At 16 MB
/// a first sync of the benchmark's 700 sessions (187 MB) peaks at half the memory it did at
/// 64 MB (223 against 461 MB) in the same time; at 4 MB it takes a tenth longer for 160.
pub const RECORD_AFTER: u64 = 16 << 20;

/// Where a session stands, from the fold since its last checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Both sides hold what the last checkpoint says.
    Synced,
    /// The journal has changes VS Code does not (VS Code may have some too, which merge
    /// cleanly).
    LocalAhead,
    /// VS Code has changes the journal has not synced.
    RemoteAhead,
    /// Both sides changed the same entity; `chasm resolve` or a strategy settles it.
    Conflict,
    /// Never synced.
    Unsynced,
    /// The session could not be read.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Synced => "synced",
            Status::LocalAhead => "local_ahead",
            Status::RemoteAhead => "remote_ahead",
            Status::Conflict => "conflict",
            Status::Unsynced => "unsynced",
            Status::Error => "error",
        }
    }
}

/// What a sync did to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    None,
    /// VS Code's changes recorded; nothing written to VS Code.
    Pulled,
    /// The journal's changes written to VS Code.
    Pushed,
    /// Changes from both sides combined and written.
    Merged,
    /// Conflicts wait for `resolve`; nothing overwritten.
    Conflicted,
    /// Left for the next sync: VS Code was writing or deleting the file (see `error`). Nothing
    /// is wrong; the next sync reads what VS Code did and merges as usual.
    Deferred,
    /// Could not be synced (see `error`): a file that does not read, a folder that refuses
    /// the write. Every sync tries again, and fails again until the cause is mended.
    Failed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Pulled => "pulled",
            Action::Pushed => "pushed",
            Action::Merged => "merged",
            Action::Conflicted => "conflicted",
            Action::Deferred => "deferred",
            Action::Failed => "failed",
        }
    }
}

/// Why a listed file could not be read.
struct ReadFailure {
    reason: String,
    /// What that makes of the session this time: deferred (VS Code was changing it) or failed.
    action: Action,
    /// The file's bytes themselves are at fault (see [`SessionSync::bad_content`]).
    bad_content: bool,
}

/// The warning a sync gives of a file it could not read as a session, whatever the reason:
/// "skipped: " and why.
pub fn skipped_warning(error: &str) -> String {
    format!("skipped: {error}")
}

/// One session's part in a sync.
#[derive(Debug, Clone)]
pub struct SessionSync {
    pub session_id: String,
    pub title: Option<String>,
    pub location: Option<Location>,
    /// Where it stood before this sync acted (what `status` shows).
    pub status: Status,
    pub action: Action,
    /// Changes since the checkpoint on each side (VS Code's including those just scanned).
    pub local_changes: usize,
    pub remote_changes: usize,
    pub conflicts: Vec<Conflict>,
    pub resolved: Vec<(Conflict, Take)>,
    /// `keep_both`: the id of the new session holding the journal's version.
    pub copy: Option<String>,
    /// The session ends up deleted (on both sides).
    pub deleted: bool,
    /// chasm added the session to the editor's list (VS Code's index) after writing it.
    pub listed: bool,
    /// The provider's fingerprint of the file as this sync saw it (before reading it).
    pub fingerprint: Option<String>,
    pub error: Option<String>,
    /// Failed because its file's bytes do not read as this session (not JSON, not a session,
    /// another session's id): the same bytes fail the same way, so the next sync may say so
    /// again without reading them while the file and the journal stay as they are (see
    /// [`crate::in_step`]). A failure to write, or to read the file at all, is not one: the
    /// next sync must try again.
    pub bad_content: bool,
}

impl SessionSync {
    /// A session found in step, with nothing to do.
    pub(crate) fn in_step(
        session_id: String,
        title: Option<String>,
        location: Option<Location>,
        fingerprint: Option<String>,
    ) -> SessionSync {
        SessionSync {
            session_id,
            title,
            location,
            status: Status::Synced,
            action: Action::None,
            local_changes: 0,
            remote_changes: 0,
            conflicts: Vec::new(),
            resolved: Vec::new(),
            copy: None,
            deleted: false,
            listed: false,
            error: None,
            fingerprint,
            bad_content: false,
        }
    }

    /// A session whose file did not read (see [`SessionSync::bad_content`]), as a sync reports it.
    pub(crate) fn with_bad_content(id: String, title: Option<String>, location: Location, error: String) -> Self {
        SessionSync {
            status: Status::Error,
            action: Action::Failed,
            error: Some(error),
            bad_content: true,
            ..SessionSync::in_step(id, title, Some(location), None)
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sessions: Vec<SessionSync>,
    /// Journal records appended.
    pub appended: usize,
    /// Provider files written or deleted.
    pub files_written: usize,
    pub warnings: Vec<String>,
    /// Sessions read by a quick path: diffed against what they held, or recorded for the first
    /// time, with no fold or merge. Where a sync's time went, for diagnostics and tests.
    pub quick: usize,
    /// Sessions only the journal has reported from the last sync's notes, their history
    /// unread (see [`Fingerprint`]); for the same.
    pub noted: usize,
}

/// What a sync stopped by [`SyncError::TooManyDeletes`] left as it was. Sessions deleted in VS
/// Code are counted before anything is recorded; those chasm would delete there only once VS
/// Code's changes are read, which a sync that is not a dry run has recorded by then (they are
/// history whatever it decides).
fn left_as_it_was(recorded: usize) -> String {
    match recorded {
        0 => "nothing was changed".to_owned(),
        1 => "the change read from VS Code was recorded; nothing was written to VS Code".to_owned(),
        n => format!("the {n} changes read from VS Code were recorded; nothing was written to VS Code"),
    }
}

/// "1 session", "2 sessions".
fn sessions(n: usize) -> String {
    if n == 1 { "1 session".to_owned() } else { format!("{n} sessions") }
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error(
        "{}, more than --max-delete {max}; {}; a sync with --max-delete {count} {}",
        side.what(*count),
        left_as_it_was(*recorded),
        side.ahead()
    )]
    TooManyDeletes { side: DeleteSide, count: usize, max: usize, recorded: usize },
}

/// Whose deletions stopped a sync (see [`SyncError::TooManyDeletes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteSide {
    /// VS Code deleted the sessions: recording that is what was held back. (VS Code drops
    /// sessions on its own; a person must not read that chasm was about to delete them.)
    VsCode,
    /// chasm would delete them in VS Code (`chasm delete`, a merge).
    Chasm,
}

impl DeleteSide {
    fn what(self, count: usize) -> String {
        match self {
            DeleteSide::VsCode => format!("VS Code deleted {}", sessions(count)),
            DeleteSide::Chasm => format!("chasm would delete {} in VS Code", sessions(count)),
        }
    }

    fn ahead(self) -> &'static str {
        match self {
            DeleteSide::VsCode => "records the deletions (the history stays in the journal)",
            DeleteSide::Chasm => "deletes them",
        }
    }
}

impl From<StateError> for SyncError {
    fn from(e: StateError) -> SyncError {
        match e {
            StateError::Journal(e) => SyncError::Journal(e),
            StateError::Fold(e) => SyncError::Fold(e),
        }
    }
}

/// One session being synced.
struct Work {
    id: String,
    /// Its history since the merge base.
    tail: Tail,
    location: Option<Location>,
    /// What the provider holds now (`None`: no file).
    pulled: Option<Session>,
    /// How far the read of a log went.
    mark: Option<LogMark>,
    /// Why the file could not be read, and what that makes of the session this time.
    error: Option<ReadFailure>,
    /// The provider's fingerprint of the file, taken before it was read.
    token: Option<String>,
    /// Set when only the file changed since both sides were last in step: then `tail` is left
    /// empty, and the file is diffed against what the session held.
    quick: Option<Quick>,
    /// Set for a session only the journal has whose plan nothing recorded in this sync can
    /// change — settled (see [`Journal::settled`]), or never synced anywhere — planned as it
    /// was found; `tail` is then left empty.
    planned: Option<Result<Plan, SyncError>>,
}

impl Work {
    /// A session only the journal has, planned as it was found.
    fn planned(id: String, plan: Result<Plan, SyncError>) -> Work {
        Work {
            id,
            tail: Tail::default(),
            location: None,
            pulled: None,
            mark: None,
            error: None,
            token: None,
            quick: None,
            planned: Some(plan),
        }
    }
}

/// A session whose file changed while the journal recorded nothing newer than what both sides
/// held when last in step. Its journal side is that shape: nothing local to merge, no history
/// to read.
struct Quick {
    held: Held,
    /// The shape of the session the file holds now.
    shape: Shape,
    /// What VS Code changed.
    changes: Vec<EntityChange>,
    title: Option<String>,
    /// How far the read of a log went.
    mark: Option<LogMark>,
}

/// The decision for one session, before anything is written.
struct Plan {
    report: SessionSync,
    /// Write this (or delete, for `None`) to the provider.
    push: Option<Option<Session>>,
    expected: Option<Session>,
    /// Local events that make the journal's fold the merged session.
    resolution: Vec<EntityChange>,
    copy: Option<(String, Location, Session)>,
    checkpoint: Option<(String, u64, u64)>,
    /// What the session holds once the plan is carried out, kept if it leaves both sides in step
    /// (`last_seq` is set then).
    held: Option<Held>,
    /// For a session only the journal has, what the next sync may report it from while the
    /// session has the same records, instead of reading them: what a settled session was
    /// found to be (when read this time), or a never-synced session's changes.
    note: Option<Fingerprint>,
}

impl Plan {
    /// A plan that only reports: nothing to write, record or keep.
    fn reporting(report: SessionSync) -> Plan {
        Plan {
            report,
            push: None,
            expected: None,
            resolution: Vec::new(),
            copy: None,
            checkpoint: None,
            held: None,
            note: None,
        }
    }
}

/// The fingerprint noted when both sides were last in step, when the listed file is still
/// that file (same size, time and inode) and nothing was recorded since.
fn same_file<'a>(in_step: &'a HashMap<String, Fingerprint>, listed: &Listed) -> Option<&'a Fingerprint> {
    in_step.get(&listed.session_id).filter(|fp| listed.fingerprint.as_ref() == Some(&fp.token))
}

/// Whether a file is known not to exist: one whose existence cannot be checked (a folder
/// without search permission) may well be there, and must not be taken for deleted.
fn gone(path: &std::path::Path) -> bool {
    matches!(path.try_exists(), Ok(false))
}

/// Where a session only the journal has was synced to, if this run covers that place: a
/// recorded path is trusted only inside the roots and under the session's own name (an
/// imported journal could name any path).
fn covered(provider: &dyn Provider, id: &str, path: &str) -> Option<Location> {
    Some(location_of(path)).filter(|l| provider.covers(l) && l.path.file_stem() == Some(id.as_ref()))
}

/// Whether a settled session only the journal has is reported as it was found (see
/// `Journal::settled`) rather than read: deleted, or synced to a place this run does not
/// cover. Nothing can have changed, and the full path would report just that (a file where a
/// deleted session was synced to, yet unlisted, changes nothing either).
fn reported_as_settled(settled: &Settled, location: Option<&Location>) -> bool {
    location.is_none() || !settled.exists
}

/// Whether none of the journal's sessions can turn out deleted in VS Code in this run, so
/// that what is read may be recorded before the scan ends (the delete limit must see every
/// deletion first). A session cannot when it is listed, not wanted, noted settled and
/// reported so ([`reported_as_settled`]), or noted never synced (it has no place to be deleted
/// from): the loop over sessions only the journal has reports it from its note and records
/// nothing for it. Every session VS Code deletes stays in the journal, so without the settled
/// case a journal that ever saw a deletion (or that another profile's sessions share) would
/// never record early again; nor, without the other, one that ever captured a session.
fn none_may_be_deleted(
    journal_ids: &[String],
    listed: &BTreeSet<String>,
    noted: &HashMap<String, Fingerprint>,
    wanted: impl Fn(&str) -> bool,
    provider: &dyn Provider,
) -> bool {
    let reported_from_note = |id: &str| {
        let note = noted.get(id);
        note.is_some_and(|fp| fp.unsynced.is_some())
            || note.and_then(|fp| fp.settled.as_ref()).is_some_and(|settled| {
                let location = settled.path.as_deref().and_then(|path| covered(provider, id, path));
                reported_as_settled(settled, location.as_ref())
            })
    };
    journal_ids.iter().all(|id| listed.contains(id) || !wanted(id) || reported_from_note(id))
}

/// Runs one sync.
pub fn sync(journal: &mut Journal, provider: &dyn Provider, opts: &Options) -> Result<Report, SyncError> {
    // Files as they were when both sides were last in step, for sessions with nothing newer.
    let in_step_files = if opts.overrides.is_empty() { journal.fingerprints_in_step()? } else { HashMap::new() };
    sync_noted(journal, provider, opts, &in_step_files)
}

/// [`sync`] given what [`Journal::fingerprints_in_step`] returns (empty under overrides), for
/// a caller that needs those notes too: `status` shows sessions from them, and reading them
/// twice was a tenth of its time.
pub fn sync_noted(
    journal: &mut Journal,
    provider: &dyn Provider,
    opts: &Options,
    in_step_files: &HashMap<String, Fingerprint>,
) -> Result<Report, SyncError> {
    let mut report = Report::default();
    let now = Utc::now();
    let wanted = |id: &str| opts.only.as_deref().is_none_or(|only| only == id);

    // Scan: every listed session, and every journal session last synced to a covered place.
    let mut work: Vec<Work> = Vec::new();
    let mut order: HashMap<String, usize> = HashMap::new();
    let mut listing = provider.list(&mut report.warnings);
    if !opts.dry_run {
        provider.tidy();
    }
    // A session last seen in a folder the listing could not read is left as it is there,
    // though a copy of it is listed elsewhere: the copy VS Code goes on in is the one written
    // last, which may be the one nobody could see. Only while a folder is away, and only for a
    // file other than the one last in step (another copy is another file).
    let unread = provider.unread();
    if !unread.is_empty() {
        let mut kept = Vec::with_capacity(listing.len());
        for l in listing {
            let home = if same_file(in_step_files, &l).is_some() { None } else { journal.last_path(&l.session_id)? };
            let home_dir = home.as_deref().map(Path::new).and_then(Path::parent);
            if !home_dir.is_some_and(|dir| unread.iter().any(|u| u == dir) && Some(dir) != l.location.path.parent()) {
                kept.push(l);
            }
        }
        listing = kept;
    }
    let listed_ids: BTreeSet<String> = listing.iter().map(|l| l.session_id.clone()).filter(|id| wanted(id)).collect();
    let total = listing.len() as u64;
    // What the quick paths find may be recorded while the scan goes on (bounding its memory)
    // unless a session could turn out deleted in VS Code: the check on how many may be
    // deleted must come before anything is recorded.
    let journal_ids = journal.session_ids()?;
    let record_early = !opts.dry_run && none_may_be_deleted(&journal_ids, &listed_ids, in_step_files, wanted, provider);
    let mut unrecorded: u64 = 0;
    // How many of VS Code's changes are recorded so far (what a sync stopped by the delete
    // limit says it kept; the checkpoints recorded with them are not counted).
    let mut changes_recorded = 0;
    // Sessions the journal has never recorded are read whole whatever else is found (all of
    // them in a first sync): read ahead, on another thread, while this one records.
    let ahead: Vec<(usize, Location)> = listing
        .iter()
        .enumerate()
        .filter(|(_, l)| wanted(&l.session_id) && journal_ids.binary_search(&l.session_id).is_err())
        .map(|(n, l)| (n, l.location.clone()))
        .collect();
    std::thread::scope(|scope| -> Result<(), SyncError> {
        let mut ahead = ReadAhead::start(scope, provider, ahead);
        for (n, listed) in listing.into_iter().enumerate() {
            opts.progress.report("reading sessions", n as u64, total);
            let read_ahead = ahead.take(n);
            if !wanted(&listed.session_id) {
                continue;
            }
            order.insert(listed.session_id.clone(), order.len());
            // The fast path: the same file as when both sides were last in step, and no record
            // since. Nothing to read, fold or write.
            let token = listed.fingerprint.clone();
            if let Some(fp) = same_file(in_step_files, &listed) {
                report.sessions.push(SessionSync::in_step(
                    listed.session_id,
                    fp.title.clone(),
                    Some(listed.location),
                    token,
                ));
                continue;
            }
            let torn = |report: &mut Report| {
                let path = &listed.location.path;
                let why = if crate::provider::vscode::write::torn_left(path) {
                    "left standing: a writer stopped there, and chasm writes nothing after it"
                } else {
                    "VS Code may be writing it"
                };
                report.warnings.push(format!("{}: ignored an incomplete last line ({why})", path.display()));
            };
            // Only the file changed since both sides were in step: what the session held then is
            // the journal's side. A log is read from where the last read ended and a `.json` not
            // parsed when it is still the bytes last read, when that can be told.
            let mut held = held(journal, &listed.session_id, opts)?;
            let since = held.as_ref().and_then(|h| h.log.clone());
            let mut quick = None;
            let read = match since.map(|mark| provider.pull_since(&listed.location, &mark)) {
                Some(Ok(since @ (Since::Appended(_) | Since::Rewritten(_)))) => {
                    let torn_tail = matches!(&since, Since::Appended(a) if a.torn_tail);
                    let applied = held.as_ref().and_then(|h| since_quick(journal, &listed, h, since));
                    // What the session held is moved into the plan, not copied, once it is settled.
                    match applied.and_then(|applied| Some((applied, held.take()?))) {
                        Some(((shape, changes, title, mark), held)) => {
                            if torn_tail {
                                torn(&mut report);
                            }
                            quick = Some(Quick { held, shape, changes, title, mark: Some(mark) });
                            None
                        }
                        // New lines, or new text, only a whole read settles.
                        None => Some(provider.pull(&listed.location)),
                    }
                }
                Some(Ok(Since::Whole(p))) => Some(Ok(p)),
                Some(Err(e)) => Some(Err(e)),
                None => Some(read_ahead.unwrap_or_else(|| provider.pull(&listed.location))),
            };
            let (pulled, mark, error) = match read {
                None => (None, None, None),
                Some(Ok(p)) if p.session.session_id().is_some_and(|sid| sid != listed.session_id) => {
                    let reason = format!("the file holds session {}", p.session.session_id().unwrap_or_default());
                    (None, None, Some(ReadFailure { reason, action: Action::Failed, bad_content: true }))
                }
                Some(Ok(p)) => {
                    if p.torn_tail {
                        torn(&mut report);
                    }
                    (Some(p.session), p.mark, None)
                }
                // One changed a moment ago that does not parse may be half written by VS Code,
                // one gone since the listing deleted by it: either is read again by the next sync.
                Some(Err(e)) if e.is_transient() || (token.is_none() && e.may_be_half_written()) => {
                    let reason = format!("{e} (VS Code was changing it; left for the next sync)");
                    (None, None, Some(ReadFailure { reason, action: Action::Deferred, bad_content: false }))
                }
                Some(Err(e)) => {
                    report.warnings.push(skipped_warning(&e.to_string()));
                    let bad_content = e.is_bad_content();
                    (None, None, Some(ReadFailure { reason: e.to_string(), action: Action::Failed, bad_content }))
                }
            };
            // Never recorded: the session is all new, with nothing to fold or merge.
            let new = held.is_none()
                && pulled.is_some()
                && opts.overrides.is_empty()
                && journal.session_event_count(&listed.session_id)? == 0;
            let (quick, pulled) = match (quick, held, pulled) {
                (Some(quick), _, _) => (Some(quick), None),
                (None, Some(held), Some(session)) => {
                    let shape = Shape::of(&session);
                    let changes = diff_shape(&held.shape, &session, &shape);
                    (Some(Quick { held, shape, changes, title: session.display_title(), mark: mark.clone() }), None)
                }
                (None, None, Some(session)) if new => (Some(created(&listed.session_id, session, mark.clone())), None),
                (None, _, pulled) => (None, pulled),
            };
            report.quick += usize::from(quick.is_some());
            let tail = if quick.is_some() { Tail::default() } else { journal.tail(&listed.session_id)? };
            let location = Some(listed.location);
            unrecorded += mark.as_ref().or(quick.as_ref().and_then(|q| q.mark.as_ref())).map_or(0, |m| m.len);
            work.push(Work { id: listed.session_id, tail, location, pulled, mark, error, token, quick, planned: None });
            if record_early && unrecorded >= opts.record_after.unwrap_or(RECORD_AFTER) {
                let (appended, changes) = record_quick(journal, &mut work, now, provider.name())?;
                report.appended += appended;
                changes_recorded += changes;
                unrecorded = 0;
            }
        }
        Ok(())
    })?;
    // Sessions recorded since the ids were read are listed ones, skipped here anyway.
    for id in journal_ids {
        if listed_ids.contains(&id) || !wanted(&id) {
            continue;
        }
        let covered = |path: &str| covered(provider, &id, path);
        let noted = in_step_files.get(&id);
        // Never synced anywhere, and noted so with the same records: reported from the note.
        if let Some(unsynced) = noted.and_then(|fp| unsynced_report(&id, fp)) {
            report.noted += 1;
            work.push(Work::planned(id, Ok(Plan::reporting(unsynced))));
            continue;
        }
        // Settled, and deleted or synced to a place this run does not cover: reported as found
        // ([`reported_as_settled`]). Such sessions pile up (every session deleted in VS Code
        // stays in the journal), so none of their history is read.
        // (A deleted one noted before what `status --all` shows of it was kept: read once more.)
        let noted = noted.and_then(|fp| fp.settled.clone()).filter(|s| s.exists || s.gone.is_some());
        let settled = match noted {
            Some(settled) => Some((settled, false)),
            None if opts.overrides.is_empty() => journal.settled(&id)?.map(|s| (s, true)),
            None => None,
        };
        let settled = settled.and_then(|(settled, read)| {
            let location = settled.path.as_deref().and_then(covered);
            reported_as_settled(&settled, location.as_ref()).then_some((location, (settled, read)))
        });
        if let Some((location, (settled, read))) = settled {
            report.noted += usize::from(!read);
            let plan = plan_settled(id.clone(), location, settled, read);
            work.push(Work::planned(id, Ok(plan)));
            continue;
        }
        let tail = journal.tail(&id)?;
        let path = tail.checkpoint.as_ref().and_then(|c| Checkpoint::path_of(&c.payload));
        let location = path.and_then(covered);
        let never_synced = tail.checkpoint.is_none();
        let w = Work {
            id: id.clone(),
            tail,
            location,
            pulled: None,
            mark: None,
            error: None,
            token: None,
            quick: None,
            planned: None,
        };
        if never_synced {
            // Nothing a sync does can change it, or anything it will record: planned now, so
            // that its history (read from its first change through chasm on, having no
            // checkpoint to begin from) is let go before the next session's is read.
            let plan = plan(w, provider, opts);
            work.push(Work::planned(id, plan));
        } else {
            work.push(w);
        }
    }

    opts.progress.report("reading sessions", total, total);

    // Record what VS Code changed.
    let mut remote_batch: Vec<NewChange> = Vec::new();
    let mut remote_deletes = 0;
    for w in work.iter_mut().filter(|w| w.error.is_none() && w.planned.is_none()) {
        if w.quick.is_some() {
            let first_seq = journal.last_seq() + remote_batch.len() as u64 + 1;
            let (changes, checkpoint) = quick_records(w, first_seq, now, provider.name());
            remote_batch.extend(changes.into_iter().chain(checkpoint));
            continue;
        }
        let remote = remote_of(&w.tail)?;
        let remote = remote.as_ref().as_ref().filter(|s| s.exists);
        let changes = match (&w.pulled, &w.location) {
            (Some(session), _) => diff(&w.id, remote, session),
            // Synced to a place this run covers, and known to be gone: deleted in VS Code.
            (None, Some(loc)) if remote.is_some() && gone(&loc.path) && gone(&loc.path.with_extension("json")) => {
                remote_deletes += 1;
                vec![EntityChange {
                    change_type: ChangeType::Delete,
                    entity_type: EntityType::Session,
                    entity_id: w.id.clone(),
                    payload: serde_json::Value::Null,
                }]
            }
            _ => Vec::new(),
        };
        remote_batch.extend(changes.into_iter().map(|c| c.into_change(&w.id, now, Origin::Remote, provider.name())));
    }
    if remote_deletes > opts.max_delete {
        return Err(SyncError::TooManyDeletes {
            side: DeleteSide::VsCode,
            count: remote_deletes,
            max: opts.max_delete,
            recorded: changes_recorded,
        });
    }
    // What VS Code changed is recorded before anything is pushed to it. When nothing will be
    // (most rounds), it is recorded with the checkpoints, in one durable commit instead of
    // two: the plans are made on the records as they will be sealed, as a dry run makes them.
    // A large batch is recorded at once, as before: holding it back would cost more than the
    // commit it saves.
    let mut held_back: Option<Vec<NewChange>> = None;
    let recorded = if opts.dry_run {
        pending_records(remote_batch, journal.last_seq())
    } else if remote_batch.len() <= HOLD_BACK_MAX {
        held_back = Some(remote_batch.clone());
        pending_records(remote_batch, journal.last_seq())
    } else {
        let records = journal.append(remote_batch)?;
        report.appended += records.len();
        changes_recorded += records.iter().filter(|r| r.change_type != ChangeType::Merge).count();
        records
    };
    let at: HashMap<&str, usize> = work.iter().enumerate().map(|(i, w)| (w.id.as_str(), i)).collect();
    let mut after: Vec<Vec<SyncChange>> = vec![Vec::new(); work.len()];
    // (A quick session's checkpoint is not among what it reads since its last one.)
    for record in recorded.into_iter().filter(|r| r.change_type != ChangeType::Merge) {
        if let Some(&i) = at.get(record.session_id.as_str()) {
            after[i].push(record);
        }
    }
    for (w, after) in work.iter_mut().zip(after) {
        w.tail.after.extend(after);
    }

    // Decide.
    let plans: Result<Vec<Plan>, SyncError> = work.into_iter().map(|w| plan(w, provider, opts)).collect();
    let local_deletes = plans.as_ref().map_or(0, |plans| plans.iter().filter(|p| matches!(p.push, Some(None))).count());
    // A sync that stops here has still read what VS Code changed, and records it, held back or
    // not: a session that cannot be planned must not keep the others' changes out of history.
    let plans = match plans {
        Ok(plans) => plans,
        Err(e) => {
            if let Some(remote) = held_back.take() {
                journal.append(remote)?;
            }
            return Err(e);
        }
    };
    if local_deletes > opts.max_delete {
        // With the checkpoints of the sessions read in full that what was read left in step
        // (VS Code's changes only pulled, nothing to write or resolve), true whatever is not
        // done: as the quick paths record theirs, so a session's history does not depend on
        // which path read it. (A dry run holds nothing back and records nothing.)
        if !opts.dry_run {
            let mut batch = held_back.take().unwrap_or_default();
            changes_recorded += batch.iter().filter(|c| c.change_type != ChangeType::Merge).count();
            let pulled_only = |p: &&Plan| p.push.is_none() && p.resolution.is_empty() && p.copy.is_none();
            for p in plans.iter().filter(pulled_only) {
                if let Some((hash, local_seq, remote_seq)) = &p.checkpoint {
                    let (id, location) = (&p.report.session_id, p.report.location.as_ref());
                    batch.push(checkpoint(id, *local_seq, *remote_seq, hash, location, provider.name(), now));
                }
            }
            journal.append(batch)?;
        }
        return Err(SyncError::TooManyDeletes {
            side: DeleteSide::Chasm,
            count: local_deletes,
            max: opts.max_delete,
            recorded: changes_recorded,
        });
    }
    if opts.dry_run {
        report.sessions.extend(plans.into_iter().map(|p| p.report));
        sort_by_listing(&mut report, &order);
        return Ok(report);
    }

    // Push, then record resolutions and checkpoints in one batch (after what VS Code changed,
    // when that was held back: recorded first if anything is pushed, so that it is durable
    // before a file is written; with the checkpoints otherwise, at the seqs planned with).
    let pushes = plans.iter().any(|p| (p.push.is_some() && p.report.location.is_some()) || p.copy.is_some());
    let mut batch: Vec<NewChange> = match held_back {
        Some(remote) if pushes => {
            report.appended += journal.append(remote)?.len();
            Vec::new()
        }
        held_back => held_back.unwrap_or_default(),
    };
    // What is in step: recorded with the last batch (see below).
    let mut in_step: Vec<InStep> = Vec::new();
    for mut p in plans {
        let id = p.report.session_id.clone();
        if let (Some(target), Some(loc)) = (&p.push, &p.report.location) {
            let result = match target {
                Some(session) => provider.push(loc, session, p.expected.as_ref()),
                None => provider.delete(loc, p.expected.as_ref()),
            };
            if let Err(e) = result {
                // VS Code writing the file meanwhile is a race, not a fault: the session's line
                // says so, and no warning is raised.
                p.report.action = if e.is_transient() {
                    Action::Deferred
                } else {
                    report.warnings.push(e.to_string());
                    Action::Failed
                };
                p.report.error = Some(e.to_string());
                report.sessions.push(p.report);
                continue;
            }
            report.files_written += 1;
            // A file chasm brought back (or created) is not shown until the editor lists it;
            // one it deleted comes off the list; one it rewrote is listed as it now reads (a
            // rename). With the editor's database busy, the last is left to the editor, which
            // rewrites its list from its own copy anyway while it runs.
            match (target, &p.expected) {
                (Some(session), None) => p.report.listed = list(provider, loc, &id, session, &mut report.warnings),
                (Some(session), Some(_)) => match provider.refresh_listing(loc, &id, session) {
                    Err(e) if !e.is_busy() => {
                        report.warnings.push(format!("{id}: VS Code's list was not brought up to date: {e}"));
                    }
                    _ => {}
                },
                (None, _) => {
                    unlist(provider, loc, &id, &mut report.warnings);
                    for copy in provider.other_copies(loc, &id) {
                        report.warnings.push(format!(
                            "{id} was deleted from {}, but VS Code has another copy of it at {}, which the next sync takes up as the session (`chasm delete` it again to delete that one too)",
                            loc.path.display(),
                            copy.display()
                        ));
                    }
                }
            }
        }
        let next_seq = |batch: &Vec<NewChange>| journal.last_seq() + batch.len() as u64 + 1;
        let mut last_local = p.checkpoint.as_ref().map(|c| c.1).unwrap_or(0);
        for change in p.resolution {
            last_local = next_seq(&batch);
            batch.push(change.into_change(&id, now, Origin::Local, provider.name()));
        }
        if let Some((hash, _, remote_seq)) = p.checkpoint {
            let location = p.report.location.as_ref();
            batch.push(checkpoint(&id, last_local, remote_seq, &hash, location, provider.name(), now));
        }
        if let Some((copy_id, loc, session)) = p.copy {
            match provider.push(&loc, &session, None) {
                Err(e) => report.warnings.push(format!("keep_both copy of {id}: {e}")),
                Ok(()) => {
                    report.files_written += 1;
                    let first_seq = journal.last_seq() + batch.len() as u64 + 1;
                    batch.extend(placed_session(&copy_id, &session, &loc, first_seq, provider.name()));
                    list(provider, &loc, &copy_id, &session, &mut report.warnings);
                    p.report.copy = Some(copy_id);
                }
            }
        }
        if let Some(note) = p.note {
            // Noted beside what the session held, which stays as it is.
            in_step.push((id.clone(), Some(note), journal.held(&id)?));
        }
        // In step and the file not written by us: its fingerprint (when it has one yet: not
        // while VS Code is still writing it) stands for its content, and what it holds is kept.
        else if matches!(p.report.action, Action::None | Action::Pulled)
            && p.report.conflicts.is_empty()
            && p.report.error.is_none()
            && !p.report.deleted
            && (p.report.fingerprint.is_some() || p.held.is_some())
        {
            let title = p.report.title.clone();
            let fp = p.report.fingerprint.clone().map(|token| Fingerprint { token, title, ..Fingerprint::default() });
            in_step.push((id.clone(), fp, p.held));
        }
        report.sessions.push(p.report);
    }
    // With the batch, in one commit: each fingerprint stamped with its session's record count
    // (the fingerprint) and newest seq (the shape) as the batch leaves them.
    report.appended += journal.append_noting(batch, &mut in_step)?.len();
    sort_by_listing(&mut report, &order);
    Ok(report)
}

/// Appends what the quick paths have found so far and hands each session its records back,
/// without their payloads (all its plan needs is where they are): the changes read from a
/// file are then held only until they are recorded. Returns how many records were appended,
/// and how many of them are VS Code's changes (the rest are their checkpoints).
fn record_quick(
    journal: &mut Journal,
    work: &mut [Work],
    now: chrono::DateTime<Utc>,
    provider: &str,
) -> Result<(usize, usize), SyncError> {
    let mut batch = Vec::new();
    let mut owners = Vec::new();
    for (i, w) in work.iter_mut().enumerate() {
        let first_seq = journal.last_seq() + batch.len() as u64 + 1;
        let (changes, checkpoint) = quick_records(w, first_seq, now, provider);
        owners.extend(std::iter::repeat_n(Some(i), changes.len()));
        batch.extend(changes);
        owners.extend(checkpoint.is_some().then_some(None));
        batch.extend(checkpoint);
    }
    let records = journal.append(batch)?;
    let appended = records.len();
    let mut changes = 0;
    for (record, i) in records.into_iter().zip(owners) {
        if let Some(i) = i {
            work[i].tail.after.push(SyncChange { payload: serde_json::Value::Null, ..record });
            changes += 1;
        }
    }
    Ok((appended, changes))
}

/// What a session on a quick path records, its changes as of `first_seq` and the checkpoint
/// after them (none without changes), taking the changes out of its [`Quick`]. Only its file
/// changed since both sides were last in step, so once its changes are recorded both sides
/// hold its new shape: the checkpoint is true then, and goes in the same commit. A session VS
/// Code just created is placed by it (a session's place in VS Code comes from its last
/// checkpoint): recorded apart, a sync stopped between the two (killed, or by the delete
/// limit) left the session with no place, and its deletion in VS Code could never be seen.
fn quick_records(
    w: &mut Work,
    first_seq: u64,
    now: chrono::DateTime<Utc>,
    provider: &str,
) -> (Vec<NewChange>, Option<NewChange>) {
    let Some(q) = &mut w.quick else { return (Vec::new(), None) };
    let changes: Vec<NewChange> = std::mem::take(&mut q.changes)
        .into_iter()
        .map(|c| c.into_change(&w.id, now, Origin::Remote, provider))
        .collect();
    if changes.is_empty() {
        return (changes, None);
    }
    let last = first_seq + changes.len() as u64 - 1;
    let hash = hex(&q.shape.content_hash());
    let checkpoint = checkpoint(&w.id, q.held.local_seq, last, &hash, w.location.as_ref(), provider, now);
    (changes, Some(checkpoint))
}

/// The quick path for a session the journal has never recorded: its changes create it, and
/// the shape it is left with is its own (what the full path's fold and merge would give, at a
/// fraction of the cost: a first sync takes this path for every session).
fn created(id: &str, session: Session, mark: Option<LogMark>) -> Quick {
    let shape = Shape::of(&session);
    let title = session.display_title();
    let nothing = Held {
        last_seq: 0,
        local_seq: 0,
        remote_seq: 0,
        shape: Shape { fields: serde_json::Map::new(), requests: Vec::new() },
        sources: Vec::new(),
        log: None,
    };
    Quick { held: nothing, shape, changes: crate::diff::creation(id, session), title, mark }
}

/// The quick path for a file read since the mark its last read left (see [`crate::appended`]
/// and [`crate::rewritten`]): what it holds now, applied to what the session held, as its new
/// shape, the changes, its title and the new mark. `None` when only a whole read can settle it.
fn since_quick(
    journal: &Journal,
    listed: &Listed,
    held: &Held,
    since: Since,
) -> Option<(Shape, Vec<EntityChange>, Option<String>, LogMark)> {
    if held.sources.len() != held.shape.requests.len() {
        return None;
    }
    let mut load = |k: usize| {
        let (seq, index) = *held.sources.get(k)?;
        journal.request_at(&listed.session_id, Source { seq, index }).ok()?
    };
    let (applied, mark) = match since {
        Since::Appended(appended) => (appended::apply(&held.shape, appended.entries, &mut load)?, appended.mark),
        Since::Rewritten(rewritten) => crate::rewritten::apply(&held.shape, held.log.as_ref()?, rewritten)?,
        Since::Whole(_) => return None,
    };
    if applied.session.session_id().is_some_and(|sid| sid != listed.session_id) {
        return None;
    }
    let changes = appended::changes(&held.shape, &applied, &mut load)?;
    let title = appended::title(&applied, &mut load);
    Some((applied.shape, changes, title, mark))
}

/// What the session held when both sides were last in step, while the journal has recorded
/// nothing since (whatever the file's fingerprint: one VS Code is writing has none yet).
fn held(journal: &Journal, id: &str, opts: &Options) -> Result<Option<Held>, JournalError> {
    if !opts.overrides.is_empty() {
        return Ok(None);
    }
    journal.held(id)
}

/// Whole reads made ahead of the scan, on a thread of their own, in the scan's order. Reading
/// and parsing a session file is most of a first sync's work, and recording what was read the
/// rest: on two cores the one goes on while the other is done. A few reads at most wait to be
/// taken, so memory stays bounded as the scan's own recording bounds it.
struct ReadAhead {
    reads: Option<std::sync::mpsc::Receiver<Result<Pulled, ProviderError>>>,
    /// The listing's indexes of the reads not taken yet, in order.
    pending: std::collections::VecDeque<usize>,
}

impl ReadAhead {
    /// How many reads may wait to be taken.
    const WAITING: usize = 4;
    /// A read alone is left to the scan (it would only wait for it); from two on, the second
    /// is read while the scan records the first. (The model check's rounds often find two or
    /// three new sessions, so that this path is checked as well as the scan's own reads.)
    const WORTH_A_THREAD: usize = 2;

    /// Starts reading the sessions at these places (with their indexes in the listing, rising).
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        provider: &'scope dyn Provider,
        places: Vec<(usize, Location)>,
    ) -> ReadAhead {
        if places.len() < Self::WORTH_A_THREAD {
            return ReadAhead { reads: None, pending: Default::default() };
        }
        let pending = places.iter().map(|(n, _)| *n).collect();
        let (tx, rx) = std::sync::mpsc::sync_channel(Self::WAITING);
        let reader = move || {
            for (_, location) in places {
                // The scan stopped (an error): nothing more is wanted.
                if tx.send(provider.pull(&location)).is_err() {
                    return;
                }
            }
        };
        // A thread the system will not give leaves every read to the scan.
        match std::thread::Builder::new().name("read-ahead".into()).spawn_scoped(scope, reader) {
            Ok(_) => ReadAhead { reads: Some(rx), pending },
            Err(_) => ReadAhead { reads: None, pending: Default::default() },
        }
    }

    /// The read of the listing's `n`-th session, when it was made ahead. The scan asks for
    /// every index in turn, and takes each read made ahead whether it uses it or not, so that
    /// the reads stay in step with it.
    fn take(&mut self, n: usize) -> Option<Result<Pulled, ProviderError>> {
        if self.pending.front() != Some(&n) {
            return None;
        }
        self.pending.pop_front();
        self.reads.as_ref()?.recv().ok()
    }
}

/// Reports list sessions in the provider's order, then the journal's.
fn sort_by_listing(report: &mut Report, order: &HashMap<String, usize>) {
    report.sessions.sort_by_cached_key(|s| order.get(&s.session_id).copied().unwrap_or(usize::MAX));
}

/// A `merge` event: both sides hold the session whose content hash is `hash`, as of these
/// seqs; `location` is where the provider keeps it (what places the session for later syncs).
fn checkpoint(
    id: &str,
    local_seq: u64,
    remote_seq: u64,
    hash: &str,
    location: Option<&Location>,
    provider: &str,
    now: chrono::DateTime<Utc>,
) -> NewChange {
    let path = location.map(|l| l.path.to_string_lossy());
    NewChange {
        session_id: id.to_owned(),
        change_type: ChangeType::Merge,
        entity_type: EntityType::Session,
        entity_id: id.to_owned(),
        timestamp: now,
        origin: Origin::Local,
        provider: provider.to_owned(),
        payload: Checkpoint::payload(local_seq, remote_seq, hash, path.as_deref()),
    }
}

/// Has the editor list a session chasm wrote; where it cannot now, a warning says how to finish.
/// Returns whether an entry was added.
pub fn list(provider: &dyn Provider, loc: &Location, id: &str, session: &Session, warnings: &mut Vec<String>) -> bool {
    match provider.ensure_listed(loc, id, session) {
        Ok(crate::provider::Listing::Added) => true,
        Ok(crate::provider::Listing::AddedUntilTrimmed { newer, kept }) => {
            warnings.push(until_trimmed(id, newer, kept));
            true
        }
        Ok(_) => false,
        Err(e) => {
            warnings.push(format!(
                "{id} was written to {}, but VS Code will not list it yet: {e}; close VS Code and run `chasm restore {id} --push` to list it",
                loc.path.display()
            ));
            false
        }
    }
}

/// What a user should know of a session listed again among too many newer ones.
pub fn until_trimmed(id: &str, newer: usize, kept: usize) -> String {
    format!(
        "{id} is listed in VS Code's chat history again, but {newer} listed sessions are newer and VS Code keeps only its newest {kept}: it drops this one again the next time it saves its list (`chasm replay` shows it whenever you like)"
    )
}

/// Takes a session chasm deleted off the editor's list; where it cannot now, a warning says
/// what is left (the editor shows it until it is deleted there too, which its file's absence
/// does not stop).
fn unlist(provider: &dyn Provider, loc: &Location, id: &str, warnings: &mut Vec<String>) {
    if let Err(e) = provider.ensure_unlisted(loc, id) {
        warnings.push(format!(
            "{id} was deleted from {}, but VS Code still lists it: {e}; delete it in VS Code's chat history too",
            loc.path.display()
        ));
    }
}

/// The events for a session chasm has just written to a new place in the provider: its
/// creation (local) and a checkpoint saying both sides hold it. `first_seq` is the seq the
/// first of them will get.
pub fn placed_session(id: &str, session: &Session, loc: &Location, first_seq: u64, provider: &str) -> Vec<NewChange> {
    let now = Utc::now();
    let mut out: Vec<NewChange> =
        diff(id, None, session).into_iter().map(|c| c.into_change(id, now, Origin::Local, provider)).collect();
    let last = first_seq + out.len() as u64 - 1;
    out.push(checkpoint(id, last, 0, &hex(&session.content_hash()), Some(loc), provider, now));
    out
}

/// Where the provider keeps a session, as its last checkpoint recorded (see
/// [`Journal::last_path`]).
pub fn home_of(journal: &Journal, session_id: &str) -> Result<Option<Location>, JournalError> {
    Ok(journal.last_path(session_id)?.as_deref().map(location_of))
}

/// The most records of what VS Code changed that a sync holds back to record with its
/// checkpoints (see `sync`). Holding back copies them, which for a few hundred requests costs
/// about what the commit it saves does.
const HOLD_BACK_MAX: usize = 128;

/// Changes not appended yet (a dry run, or held back), as the records they will be at the
/// seqs they will get.
fn pending_records(batch: Vec<NewChange>, last_seq: u64) -> Vec<SyncChange> {
    (last_seq + 1..).zip(batch).map(|(seq, c)| SyncChange::pending(c, seq)).collect()
}

/// A location from a recorded path: the format follows the extension.
pub(crate) fn location_of(path: &str) -> Location {
    let path = PathBuf::from(path);
    let format = if path.extension().is_some_and(|e| e == "jsonl") { FileFormat::Jsonl } else { FileFormat::Json };
    Location { path, format }
}

/// The latest change time of each entity among some events.
fn change_times(events: &[SyncChange]) -> ChangeTimes {
    let mut times = ChangeTimes::new();
    for e in events {
        let slot = times.entry((e.entity_type, e.entity_id.clone())).or_insert(e.timestamp);
        *slot = (*slot).max(e.timestamp);
    }
    times
}

fn existing(state: &Option<std::rc::Rc<SessionState>>) -> Option<&Session> {
    state.as_ref().filter(|s| s.exists).map(|s| &s.session)
}

/// Where a session stands, from its views (and conflicts found).
pub fn status_of(v: &Views, has_conflicts: bool) -> Status {
    if has_conflicts {
        Status::Conflict
    } else if v.checkpoint.is_none() {
        Status::Unsynced
    } else if !v.local_changes.is_empty() {
        Status::LocalAhead
    } else if !v.remote_changes.is_empty() {
        Status::RemoteAhead
    } else {
        Status::Synced
    }
}

/// The plan of a settled session only the journal has, as the full path finds it: both sides
/// the same since the checkpoint, so in step; one synced to a covered place and deleted is
/// reported as deleted there. `read`: found from the journal this time, so noted for the next
/// sync, which then need not read it at all.
fn plan_settled(id: String, location: Option<Location>, settled: Settled, read: bool) -> Plan {
    let deleted = location.is_some() && !settled.exists;
    let report = SessionSync { deleted, ..SessionSync::in_step(id, settled.title.clone(), location, None) };
    let note =
        read.then(|| Fingerprint { title: settled.title.clone(), settled: Some(settled), ..Fingerprint::default() });
    Plan { note, ..Plan::reporting(report) }
}

/// A never-synced session only the journal has, as [`plan`] reported it when it noted it (see
/// [`Fingerprint::unsynced`]); `None` without such a note.
fn unsynced_report(id: &str, fp: &Fingerprint) -> Option<SessionSync> {
    let unsynced = fp.unsynced?;
    Some(SessionSync {
        status: Status::Unsynced,
        local_changes: unsynced.local_changes as usize,
        remote_changes: unsynced.remote_changes as usize,
        ..SessionSync::in_step(id.to_owned(), fp.title.clone(), None, None)
    })
}

fn plan(mut w: Work, provider: &dyn Provider, opts: &Options) -> Result<Plan, SyncError> {
    if let Some(q) = w.quick.take() {
        return Ok(plan_quick(w, q));
    }
    if let Some(planned) = w.planned.take() {
        return planned;
    }
    let last_seqs = (w.tail.last_seq(Origin::Local), w.tail.last_seq(Origin::Remote));
    let v = views_of(w.tail)?;
    let title = [existing(&v.full), w.pulled.as_ref(), existing(&v.base), existing(&v.local)]
        .into_iter()
        .flatten()
        .find_map(Session::display_title);
    let mut report = SessionSync {
        session_id: w.id.clone(),
        title,
        location: w.location.clone(),
        status: Status::Error,
        action: w.error.as_ref().map_or(Action::Failed, |f| f.action),
        local_changes: v.local_changes.len(),
        remote_changes: v.remote_changes.len(),
        conflicts: Vec::new(),
        resolved: Vec::new(),
        copy: None,
        deleted: false,
        listed: false,
        error: w.error.as_ref().map(|f| f.reason.clone()),
        fingerprint: w.token.clone(),
        bad_content: w.error.as_ref().is_some_and(|f| f.action == Action::Failed && f.bad_content),
    };
    let mut plan = Plan::reporting(report.clone());
    if w.error.is_some() {
        return Ok(plan);
    }
    let (local_times, remote_times) = (change_times(&v.local_changes), change_times(&v.remote_changes));
    let sides = Sides {
        session_id: &w.id,
        base: existing(&v.base),
        local: existing(&v.local),
        remote: existing(&v.remote),
        local_times: &local_times,
        remote_times: &remote_times,
    };
    let outcome = merge(&sides, opts.strategy, &opts.overrides)?;
    // The status says whether the sides conflict as such, whatever the strategy resolves; the
    // default strategy's own outcome already says so.
    let conflicting = if opts.strategy == Strategy::AutoMerge && opts.overrides.is_empty() {
        !outcome.conflicts.is_empty()
    } else {
        !merge(&sides, Strategy::AutoMerge, &HashMap::new())?.conflicts.is_empty()
    };
    report.status = status_of(&v, conflicting);
    report.resolved = outcome.resolved.clone();
    report.action = Action::None;
    let Some(location) = w.location.clone() else {
        // Never synced to a place this run covers (say, captured from an export): nothing to do.
        // One never synced at all is noted so, when the strategy cannot matter (see
        // [`Unsynced`]): the next sync reports it without reading its history again.
        let one_sided = v.local_changes.is_empty() || v.remote_changes.is_empty();
        if v.checkpoint.is_none() && one_sided && opts.overrides.is_empty() && !conflicting {
            let full = existing(&v.full);
            let unsynced = Unsynced {
                local_changes: report.local_changes as u64,
                remote_changes: report.remote_changes as u64,
                exists: full.is_some(),
                last_activity: full.and_then(Session::last_activity),
            };
            let title = report.title.clone();
            plan.note = Some(Fingerprint { title, unsynced: Some(unsynced), ..Fingerprint::default() });
        }
        plan.report = report;
        return Ok(plan);
    };
    if !outcome.conflicts.is_empty() {
        report.conflicts = outcome.conflicts;
        report.action = Action::Conflicted;
        plan.report = report;
        return Ok(plan);
    }
    // Beside a shape taken from the journal's state, not the read: the requests' digests would
    // misname it.
    let mark = w.mark.as_ref().map(LogMark::bytes_only);
    let held = |state: &SessionState| Held {
        last_seq: 0,
        local_seq: last_seqs.0,
        remote_seq: last_seqs.1,
        shape: Shape::of_state(state),
        sources: state.sources.iter().map(|s| (s.seq, s.index)).collect(),
        log: mark.clone(),
    };
    if v.checkpoint.is_some() && v.local_changes.is_empty() && v.remote_changes.is_empty() {
        report.deleted = existing(&v.full).is_none();
        plan.held = v.full.as_deref().filter(|s| s.exists).map(held);
        plan.report = report;
        return Ok(plan);
    }

    let merged = outcome.merged;
    // The report names the session as it stands after this sync: a title settled by the merge
    // (a rename taken over VS Code's) is the one both sides now show.
    if let Some(title) = merged.as_ref().and_then(Session::display_title) {
        report.title = Some(title);
    }
    let remote = existing(&v.remote);
    if merged.as_ref() != remote {
        plan.push = Some(merged.clone());
        plan.expected = w.pulled.clone();
    }
    let full = v.full.as_deref().filter(|s| s.exists);
    plan.resolution = match &merged {
        Some(m) if existing(&v.full) != Some(m) => diff(&w.id, full, m),
        None if full.is_some() => vec![EntityChange {
            change_type: ChangeType::Delete,
            entity_type: EntityType::Session,
            entity_id: w.id.clone(),
            payload: serde_json::Value::Null,
        }],
        _ => Vec::new(),
    };
    if let Some(copy) = outcome.copy {
        let copy_id = uuid::Uuid::new_v4().to_string();
        let session = copy.as_copy(&copy_id, "local copy");
        plan.copy = Some((copy_id.clone(), provider.location_for_new(&location, &copy_id), session));
    }
    // With no resolution, the journal's state is the merged session: its shape gives the hash.
    let kept = full.filter(|_| merged.is_some() && plan.resolution.is_empty()).map(held);
    let hash = match (&kept, &merged) {
        (Some(kept), _) => hex(&kept.shape.content_hash()),
        (None, Some(m)) => hex(&m.content_hash()),
        (None, None) => String::new(),
    };
    plan.held = kept;
    plan.checkpoint = Some((hash, last_seqs.0, last_seqs.1));
    report.deleted = merged.is_none();
    report.action = match (&plan.push, v.remote_changes.is_empty() && v.checkpoint.is_some()) {
        (Some(_), true) => Action::Pushed,
        (Some(_), false) => Action::Merged,
        (None, _) => Action::Pulled,
    };
    plan.report = report;
    Ok(plan)
}

/// The plan for a session only its file changed (see [`Quick`]): the changes just recorded
/// were VS Code's alone, so the file's session is the merged one, nothing is pushed, and the
/// checkpoint recorded with the changes ([`quick_records`]) names it.
fn plan_quick(w: Work, q: Quick) -> Plan {
    let changed = w.tail.after.len();
    let remote_seq = w.tail.after.last().map_or(q.held.remote_seq, |r| r.seq);
    // Where each request is now: in the record just appended for it, or where it was.
    let was: HashMap<&str, (u64, Option<u32>)> =
        q.held.shape.requests.iter().map(|(id, _)| id.as_str()).zip(q.held.sources.iter().copied()).collect();
    let now: HashMap<&str, u64> = w
        .tail
        .after
        .iter()
        .filter(|r| r.entity_type == EntityType::Message && r.change_type != ChangeType::Delete)
        .map(|r| (r.entity_id.as_str(), r.seq))
        .collect();
    let sources: Option<Vec<(u64, Option<u32>)>> = q
        .shape
        .requests
        .iter()
        .map(|(id, _)| now.get(id.as_str()).map(|seq| (*seq, None)).or_else(|| was.get(id.as_str()).copied()))
        .collect();
    let mut report = SessionSync::in_step(w.id, q.title, w.location, w.token);
    if changed > 0 {
        (report.status, report.action, report.remote_changes) = (Status::RemoteAhead, Action::Pulled, changed);
    }
    let local_seq = q.held.local_seq;
    let held = sources.map(|sources| Held { last_seq: 0, local_seq, remote_seq, shape: q.shape, sources, log: q.mark });
    Plan { held, ..Plan::reporting(report) }
}
