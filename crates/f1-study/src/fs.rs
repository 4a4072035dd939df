//! Files written so that a reader never sees half of one and a crash never loses the old one:
//! the bytes go to a temporary sibling (`.<name>.<pid>.<n>.tmp`, unique per process and call,
//! so concurrent writers of one file never share a temporary), which is synced to disk and
//! renamed over the target; the folder is then synced so the rename itself survives a power
//! loss (the sequence of `rename(2)`'s durability notes; SQLite and git do the same).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling for one write of `path`.
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Sync a folder so a rename inside it is durable. Platforms that cannot open a folder for
/// syncing (Windows) skip it: their renames are journaled by the file system.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Sync a file's contents to disk (for files written in place inside a folder that is itself
/// renamed into place, such as a checkpoint).
pub fn sync_file(path: &Path) -> Result<()> {
    let f = std::fs::OpenOptions::new().read(true).open(path).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Create `path`'s parent folders when missing.
fn ensure_parent(path: &Path) -> Result<Option<&Path>> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            Ok(Some(dir))
        }
        None => Ok(None),
    }
}

/// Write `path` through a temporary file that `fill` writes (for writers that want a path,
/// such as safetensors), then sync and rename it. `fill`'s error type is the caller's, so its
/// errors pass through unchanged. On any error the temporary is removed and the old `path`, if
/// any, is left as it was.
pub fn write_atomic_with<E: From<Error>>(path: &Path, fill: impl FnOnce(&Path) -> std::result::Result<(), E>) -> std::result::Result<(), E> {
    let dir = ensure_parent(path)?;
    let tmp = temporary(path);
    let done = (|| {
        fill(&tmp)?;
        sync_file(&tmp)?;
        std::fs::rename(&tmp, path).map_err(|e| E::from(Error::io(path, e)))
    })();
    if done.is_err() {
        // Best effort: the error being returned is the one worth reporting.
        let _ = std::fs::remove_file(&tmp);
        return done;
    }
    Ok(sync_dir(dir.unwrap_or(Path::new(".")))?)
}

/// Write `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))
    })
}

/// Write `value` as pretty JSON (with a final newline) to `path` atomically and durably.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Serialize { path: path.to_path_buf(), reason: e.to_string() })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("sub/out.json");
        write_atomic(&path, b"old")?;
        write_json_atomic(&path, &serde_json::json!({"a": 1}))?;
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        assert_eq!(text, "{\n  \"a\": 1\n}\n");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).map_err(|e| Error::io(dir.path(), e))?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
        Ok(())
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_removes_the_temporary() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("out.txt");
        write_atomic(&path, b"kept")?;
        let err = write_atomic_with(&path, |tmp| {
            std::fs::write(tmp, b"half").map_err(|e| Error::io(tmp, e))?;
            Err(Error::io(tmp, std::io::Error::other("disk full")))
        });
        assert!(matches!(err, Err(Error::Io { .. })), "{err:?}");
        assert_eq!(std::fs::read(&path).map_err(|e| Error::io(&path, e))?, b"kept");
        assert_eq!(std::fs::read_dir(dir.path()).map_err(|e| Error::io(dir.path(), e))?.count(), 1);
        Ok(())
    }
}
