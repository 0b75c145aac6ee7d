//! Whole-file writes that a reader (VS Code, or a user's editor) never sees half done.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename
/// over the target, then fsync of the directory. On any error the target is left as it was and
/// the temporary file is removed.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |out| out.write_all(bytes))
}

/// [`write()`] for contents made as they are written (an export of a whole journal), so that
/// they are never all in memory at once. Whatever `fill` fails with is returned, the target
/// left as it was.
pub fn write_with<E: From<std::io::Error>>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name =
        path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".chasm-{}.tmp", uuid::Uuid::new_v4().simple()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut out = std::io::BufWriter::with_capacity(64 << 10, f);
        fill(&mut out)?;
        let f = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Not every platform can sync a directory; the data itself is already synced.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether a file name is one of [`write()`]'s temporaries (`.NAME.chasm-<32 hex>.tmp`): what a
/// write killed between creating and renaming it leaves behind.
pub fn is_temporary(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { return false };
    match rest.rsplit_once(".chasm-") {
        Some((target, id)) => !target.is_empty() && id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// How old a temporary must be before a sync takes it for a killed write's and removes it: a
/// younger one may belong to a write under way (in another chasm, say).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes those of `paths` that are temporaries of killed writes (by name: see
/// [`is_temporary`]) older than an hour (`STALE_AFTER`). The paths come from a listing of the
/// folder that was made anyway (a sync lists every chat folder), so that tidying takes no
/// second listing of hundreds of sessions. Returns how many were removed.
pub fn remove_stale_temporaries<'a>(paths: impl IntoIterator<Item = &'a Path>) -> usize {
    let ours = |path: &&Path| path.file_name().and_then(|n| n.to_str()).is_some_and(is_temporary);
    let stale = |path: &&Path| {
        std::fs::symlink_metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed > STALE_AFTER)
    };
    paths.into_iter().filter(ours).filter(stale).filter(|path| std::fs::remove_file(path).is_ok()).count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, "old").unwrap();
        super::write(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn only_old_temporaries_of_ours_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ours = ".s.json.chasm-0123456789abcdef0123456789abcdef.tmp";
        assert!(super::is_temporary(ours));
        for other in [".s.json.tmp", "s.json", ".x.chasm-123.tmp", ".chasm-0123456789abcdef0123456789abcdef.tmp"] {
            assert!(!super::is_temporary(other), "{other}");
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for name in [ours, ".s.json.tmp"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
            std::fs::File::options().write(true).open(dir.path().join(name)).unwrap().set_modified(old).unwrap();
        }
        let fresh = ".t.json.chasm-fedcba9876543210fedcba9876543210.tmp";
        std::fs::write(dir.path().join(fresh), "x").unwrap();
        let listed: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(super::remove_stale_temporaries(listed.iter().map(|p| p.as_path())), 1);
        assert!(!dir.path().join(ours).exists());
        assert!(dir.path().join(".s.json.tmp").exists() && dir.path().join(fresh).exists());
    }

    #[test]
    fn a_failed_write_leaves_the_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let err = super::write(&dir.path().join("missing-dir").join("s.json"), b"x");
        assert!(err.is_err());
    }
}
