//! Progress of long operations, reported through a callback so the library never prints: the
//! command line draws it on a terminal and drops it everywhere else.

use std::sync::Arc;

/// A progress callback: `(what, done, total)`.
type Report = dyn Fn(&str, u64, u64) + Send + Sync;

/// Called as work advances; `done == total` at the end of a stage.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Report>>);

impl Progress {
    /// Progress reported to `f`.
    pub fn to(f: impl Fn(&str, u64, u64) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(f)))
    }

    /// Whether anything is told: the command line draws progress only for a person watching
    /// (a terminal, not `--quiet`), and says what else it has for them on the same terms.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Reports that `done` of `total` items of `what` are done.
    pub fn report(&self, what: &str, done: u64, total: u64) {
        if let Some(f) = &self.0 {
            f(what, done, total);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Progress(on)" } else { "Progress(off)" })
    }
}
