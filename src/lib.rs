//! chasm: a durable, auditable history of AI chat sessions, kept in sync with the editor.
//!
//! Every change to a session, made in VS Code or through chasm, becomes a [`journal::SyncChange`]
//! appended to a hash-chained journal. Everything else is derived by folding that journal. Data
//! flows one way:
//!
//! ```text
//! provider files ─▶ provider ─▶ sync ─▶ journal ◀─ fold ◀─ cli
//!                                 │                   ▲
//!                                 └── diff, merge ────┘   (pure)
//! ```
//!
//! - [`session`]: the lossless session model (every field kept, in order) and its canonical hash.
//! - [`shape`]: a session reduced to its fields and request digests: what a sync diffs a changed
//!   file against when the journal has nothing newer (pure).
//! - [`appended`], [`rewritten`]: what a session file gained since the last sync (a log's new
//!   lines; a `.json` rewritten, its unchanged requests recognised by their text), applied to
//!   the session's shape without reading the rest (pure).
//! - [`provider`]: the editors' own storage behind one trait; [`provider::vscode`] discovers
//!   VS Code's chat folders, reads `.json` files and the `.jsonl` mutation log, writes back
//!   in each file's own format, and keeps VS Code's session index in `state.vscdb`.
//! - [`diff`]: a session read from a file against the journal's view of it → entity changes;
//!   the changes a restore records; summaries for `chasm diff` (pure).
//! - [`journal`]: the append-only log (an SQLite database), its record codec, indexes, snapshots for
//!   bounded replay, the portable export form, and `verify`.
//! - [`fold`]: events → session state at any point, and the three views (merge base, local,
//!   remote) that status, conflicts and sync decisions are derived from (pure).
//! - [`merge`]: the three-way merge and the six conflict strategies (pure).
//! - [`sync`]: the engine: scan, record, decide, push, checkpoint.
//! - [`in_step`]: the no-op fast path: a note that everything was in step at the last sync, and
//!   of the files the listing passes over (a copy of a session, a name that is no session id).
//! - [`transcript`]: a session as readable Markdown (pure).
//! - [`short_id`]: session ids as lists print them, as long as it takes to tell them apart
//!   (pure).
//! - [`cli`]: one module per command; the only place that prints.
//! - [`atomic`]: whole-file writes that never leave a torn file.
//! - [`pretty`]: JSON text laid out as serde_json's pretty printer would, unparsed (pure).
//! - [`progress`]: progress of long operations, as a callback the command line draws.
//! - [`config`]: settings made once (file, environment, flags), and where each came from.

pub mod appended;
pub mod atomic;
pub mod cli;
pub mod config;
pub mod diff;
pub mod fold;
pub mod in_step;
pub mod journal;
pub mod merge;
pub mod pretty;
pub mod progress;
pub mod provider;
pub mod rewritten;
pub mod session;
pub mod shape;
pub mod short_id;
pub mod sync;
pub mod transcript;
