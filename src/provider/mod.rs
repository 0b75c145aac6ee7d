//! The editors' own chat storage ("remote" in sync terms), behind one trait so the sync engine
//! does not know which editor it talks to. Only VS Code so far.

pub mod vscode;

use std::path::PathBuf;

pub use vscode::FileFormat;

use crate::session::Session;

/// Where a provider keeps one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub format: FileFormat,
}

/// A session the provider lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub session_id: String,
    pub location: Location,
    /// The project it belongs to, where the provider knows.
    pub project: Option<String>,
    /// A cheap token, taken while listing, that changes whenever the session may have changed
    /// (VS Code: size, modification time and inode), or `None` when it cannot be trusted (the
    /// file was modified too recently to tell a further change within the clock's resolution:
    /// see [`crate::provider::vscode::SETTLE`]).
    pub fingerprint: Option<String>,
}

/// A session read from the provider.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub session: Session,
    /// A write in progress was ignored (the next read will see it).
    pub torn_tail: bool,
    /// How far this read went (for a file rewritten whole, all of it).
    pub mark: Option<LogMark>,
}

/// How far into a session file a read went, and a 128-bit hash of the file's bytes up to there:
/// a later read of a file that still begins with those bytes needs only what follows —
/// for an append-only log (VS Code's `.jsonl`), the lines appended since; for a file rewritten
/// whole, nothing at all when it is still exactly those bytes. The content-hash check behind
/// a fingerprint that cannot be trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMark {
    pub len: u64,
    /// The XXH3-128 of the bytes read (see `vscode::mark_of`).
    pub digest: u128,
    /// For a file rewritten whole, the digest of each request's text as the read found it
    /// (see [`vscode::json`]), in order: how the next read knows the requests it need not
    /// parse. They stand for the requests of the shape taken from the same read, and only
    /// beside that shape (see [`LogMark::bytes_only`]).
    pub requests: Vec<u128>,
}

impl LogMark {
    /// The mark without its requests' digests: for a mark kept beside a shape taken from
    /// anything but the read it was made by (the journal's state, a merge), whose requests its
    /// digests would misname.
    pub fn bytes_only(&self) -> LogMark {
        LogMark { len: self.len, digest: self.digest, requests: Vec::new() }
    }

    /// Whether a mark names the same bytes as this one.
    pub fn same_bytes(&self, other: &LogMark) -> bool {
        self.len == other.len && self.digest == other.digest
    }
}

/// What a read since a [`LogMark`] found.
#[derive(Debug, Clone)]
pub enum Since {
    /// The file still begins with the bytes the mark names: what follows them.
    Appended(Appended),
    /// It does not (rewritten, compacted), or what follows needs a whole read: the session.
    Whole(Pulled),
    /// A file rewritten whole that no longer holds those bytes: the session in parts, its
    /// requests unparsed, so that those the mark names need not be parsed again.
    Rewritten(Rewritten),
}

/// A session file rewritten whole, in parts (see [`vscode::json`]).
#[derive(Debug, Clone)]
pub struct Rewritten {
    /// Every top-level field in file order, `requests` as a `null` placeholder.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Each request's text, in order.
    pub requests: Vec<Box<serde_json::value::RawValue>>,
    /// How far the read went, with each request's digest ([`LogMark::requests`]).
    pub mark: LogMark,
}

/// What was appended to a log since a [`LogMark`].
#[derive(Debug, Clone)]
pub struct Appended {
    /// The new entries, in order, each as it was written (a mutation of the session).
    pub entries: Vec<serde_json::Value>,
    /// How far this read went.
    pub mark: LogMark,
    /// A write in progress was left for next time.
    pub torn_tail: bool,
}

/// Why a provider operation failed. Every variant is about one session and leaves the rest of
/// a sync to go on.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Read(#[from] vscode::ReadError),
    #[error(transparent)]
    Write(#[from] vscode::write::WriteError),
    #[error(transparent)]
    Index(#[from] vscode::index::IndexError),
}

impl ProviderError {
    /// Whether the editor holds what chasm would change (VS Code running, its database busy):
    /// a moment's condition, not a fault.
    pub fn is_busy(&self) -> bool {
        matches!(self, ProviderError::Index(vscode::index::IndexError::Locked(_)))
    }

    /// Whether trying again soon may succeed with nothing mended: the editor busy, writing
    /// the very file chasm meant to write, or deleting the one chasm meant to read.
    pub fn is_transient(&self) -> bool {
        match self {
            ProviderError::Write(vscode::write::WriteError::ChangedMeanwhile(_)) => true,
            ProviderError::Read(vscode::ReadError::Io { source, .. }) => source.kind() == std::io::ErrorKind::NotFound,
            _ => self.is_busy(),
        }
    }

    /// Whether the file's bytes themselves are at fault (not JSON, not a session, another
    /// session's id, too large): read again unchanged, they fail the same way. A failure to
    /// read them at all (no permission, say) may pass with nothing written to the file.
    pub fn is_bad_content(&self) -> bool {
        use vscode::ReadError::*;
        matches!(
            self,
            ProviderError::Read(Json { .. } | Jsonl { .. } | Session { .. } | BadSessionId { .. } | TooLarge { .. })
        )
    }

    /// Whether the file may only be half written: it does not parse. Told apart from a broken
    /// file only by its age (one changed a moment ago may be VS Code's write under way).
    pub fn may_be_half_written(&self) -> bool {
        matches!(self, ProviderError::Read(vscode::ReadError::Json { .. } | vscode::ReadError::Jsonl { .. }))
    }
}

/// Whether the editor lists a session in its own history view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// It did not; now it does.
    Added,
    /// It did not; now it does, but `newer` listed sessions are newer, and the editor keeps
    /// only its newest `kept` listed: its next save of the list drops this one again.
    AddedUntilTrimmed { newer: usize, kept: usize },
    /// It already did.
    AlreadyListed,
    /// The editor keeps no list here (yet); the file is all there is.
    NoList,
}

/// Provider-native storage: what the sync engine reads from and writes to. Shared between
/// threads: a sync reads ahead on a second one.
pub trait Provider: Sync {
    /// The provider name recorded in journal events.
    fn name(&self) -> &'static str;
    /// Every session the provider holds, each with its fingerprint as of the listing (taken
    /// before anything is read, the order that lets a later change be seen); what had to be
    /// skipped goes to `warnings`.
    fn list(&self, warnings: &mut Vec<String>) -> Vec<Listed>;
    /// Whether a location lies in the storage this provider instance covers (a sync over some
    /// roots must not read a session missing from other roots as deleted).
    fn covers(&self, location: &Location) -> bool;
    /// Reads one session.
    fn pull(&self, location: &Location) -> Result<Pulled, ProviderError>;
    /// Reads one session as far as is new since `mark` (see [`LogMark`]): what was appended,
    /// when the file still begins with the bytes the mark names; else the whole session, from
    /// the same read.
    fn pull_since(&self, location: &Location, mark: &LogMark) -> Result<Since, ProviderError>;
    /// Writes a session, provided the location still holds `expected` (`None`: nothing).
    fn push(&self, location: &Location, session: &Session, expected: Option<&Session>) -> Result<(), ProviderError>;
    /// Deletes a session, provided the location still holds `expected`.
    fn delete(&self, location: &Location, expected: Option<&Session>) -> Result<(), ProviderError>;
    /// Makes the editor list a session it holds at `location`: a session file alone is not
    /// shown where the editor keeps a separate list (VS Code's index in `state.vscdb`).
    fn ensure_listed(&self, location: &Location, session_id: &str, session: &Session)
    -> Result<Listing, ProviderError>;
    /// Brings the editor's list up to date with a session chasm wrote over its file at
    /// `location` (its title, its date), where the list names it; `true` when it changed.
    fn refresh_listing(&self, location: &Location, session_id: &str, session: &Session) -> Result<bool, ProviderError>;
    /// Takes a session chasm deleted at `location` off the editor's list, as the editor does
    /// when it deletes one: listed with its file gone, it is shown but cannot be opened.
    /// `true` when an entry was removed.
    fn ensure_unlisted(&self, location: &Location, session_id: &str) -> Result<bool, ProviderError>;
    /// The folders of this provider's storage that the last listing could not read (a share
    /// not mounted): what is in them is neither synced nor taken for deleted that round.
    fn unread(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// The other copies of the session at `location` that the last listing passed over for it
    /// (VS Code copies a window's sessions into the workspace it enters): what deleting it there
    /// leaves of it.
    fn other_copies(&self, location: &Location, session_id: &str) -> Vec<PathBuf> {
        let _ = (location, session_id);
        Vec::new()
    }
    /// Removes what killed writes of chasm's left in the provider's storage (temporary files
    /// older than an hour) where the last listing found it; returns how many.
    fn tidy(&self) -> usize;
    /// Where a new session with this id goes, beside an existing one.
    fn location_for_new(&self, near: &Location, session_id: &str) -> Location;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a failure of the file's bytes is one the no-op note may vouch for: the same bytes
    /// fail the same way, where a file that could not be read at all may read once its
    /// permissions are mended, with nothing written to it.
    #[test]
    fn only_a_failure_of_the_bytes_is_bad_content() {
        let path = PathBuf::from("s.json");
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let io = |kind| std::io::Error::new(kind, "no");
        let bad_content = |e: vscode::ReadError| ProviderError::Read(e).is_bad_content();
        assert!(bad_content(vscode::ReadError::Json { path: path.clone(), source: json }));
        assert!(bad_content(vscode::ReadError::TooLarge { path: path.clone(), len: u64::MAX }));
        assert!(!bad_content(vscode::ReadError::Io {
            path: path.clone(),
            source: io(std::io::ErrorKind::PermissionDenied)
        }));
        assert!(!bad_content(vscode::ReadError::NotAFile { path }));
    }
}
