//! Small file-system helpers shared by everything that persists state.

use std::io::Write;
use std::path::Path;

/// How [`write_atomic`]'s temp files are named, so that the ones a crash
/// leaves behind can be told from anything else and removed.
const TEMP_PREFIX: &str = ".wanwatch-tmp-";

/// How tempfile names its files by default, as versions before
/// [`TEMP_PREFIX`] left them.
const OLD_TEMP_PREFIX: &str = ".tmp";

/// How deep [`remove_stale_temp_files`] looks below its directory: far enough
/// for the state directory's `cache/last-good`.
const TEMP_DEPTH: usize = 2;

/// Whether writing one thing (a file, a database) has been failing, so that
/// a full or broken disk is logged once per change, not at every attempt:
/// the first failure, then the first success after it ("writing … again").
/// Each writer keeps its own, and simply tries again next time: writing
/// resumes by itself once there is room.
#[derive(Debug, Default)]
pub struct Failing(bool);

impl Failing {
    /// Whether the last write failed.
    pub fn is_failing(&self) -> bool {
        self.0
    }

    /// Logs `result` of writing `what` ("the status file /var/lib/…") if it
    /// changes the picture; the value on success. `what` is formatted only
    /// when logged: writers call this at every round or callback.
    pub fn outcome<T, E: std::fmt::Display>(
        &mut self,
        what: std::fmt::Arguments<'_>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => {
                if std::mem::take(&mut self.0) {
                    tracing::info!("writing {what} again");
                }
                Some(value)
            }
            Err(e) => {
                if std::mem::replace(&mut self.0, true) {
                    tracing::debug!("still cannot write {what}: {e}");
                } else {
                    tracing::error!("cannot write {what}: {e}");
                }
                None
            }
        }
    }
}

/// Replaces `path` with `bytes` atomically: write a temp file beside it,
/// fsync, rename over the target, fsync the directory. A crash or power cut
/// leaves either the old file or the new one, never a torn mix, and a
/// process that has the old file open or mapped keeps reading the old bytes.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = temp_file_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename is durable only once the directory entry is on disk.
    std::fs::File::open(dir)?.sync_all()
}

fn temp_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
}

/// Removes the temp files [`write_atomic`] left in `dir` and its
/// subdirectories (two levels down) when the process was killed between
/// creating and renaming one; returns how many. For the start of the only
/// process that writes there: a temp file of a write under way would go too.
/// Symlinks are not followed, and what cannot be read or removed is logged
/// and skipped.
pub fn remove_stale_temp_files(dir: &Path) -> usize {
    remove_temp_files_below(dir, TEMP_DEPTH)
}

fn remove_temp_files_below(dir: &Path, depth: usize) -> usize {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            tracing::warn!("cannot look for stale temp files in {}: {e}", dir.display());
            return 0;
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        // The entry's own type: a symlink is not followed.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth > 0 {
                removed += remove_temp_files_below(&path, depth - 1);
            }
        } else if kind.is_file() && is_temp_name(&entry.file_name()) {
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!("cannot remove the stale temp file {}: {e}", path.display())
                }
            }
        }
    }
    removed
}

/// Whether `name` is one of [`write_atomic`]'s temp files: [`TEMP_PREFIX`],
/// or tempfile's default `.tmp` and 6 random alphanumerics.
fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    name.starts_with(TEMP_PREFIX)
        || name
            .strip_prefix(OLD_TEMP_PREFIX)
            .is_some_and(|rest| rest.len() == 6 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_creates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/status.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        // No temp files are left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn failing_tracks_the_last_outcome_and_passes_values_on() {
        let mut failing = Failing::default();
        assert_eq!(
            failing.outcome(format_args!("x"), Ok::<_, String>(1)),
            Some(1)
        );
        assert!(!failing.is_failing());
        assert_eq!(
            failing.outcome(format_args!("x"), Err::<u8, _>("full")),
            None
        );
        assert_eq!(
            failing.outcome(format_args!("x"), Err::<u8, _>("full")),
            None
        );
        assert!(failing.is_failing());
        assert_eq!(
            failing.outcome(format_args!("x"), Ok::<_, String>(2)),
            Some(2)
        );
        assert!(!failing.is_failing());
    }

    #[test]
    fn temp_files_are_named_for_cleaning() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = temp_file_in(dir.path()).unwrap();
        assert!(is_temp_name(tmp.path().file_name().unwrap()));
    }

    #[test]
    fn stale_temp_files_are_removed_two_levels_down() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let keep = [
            "status.json",
            "plugins/powercycle.json",
            "cache/last-good/p.wasm",
            // Not write_atomic's: tempfile names have 6 random characters.
            ".tmpfile.conf",
            ".tmp",
            // Deeper than the state directory's layout goes.
            "a/b/c/.wanwatch-tmp-deep",
        ];
        let stale = [
            ".wanwatch-tmp-Ab12Cd",
            "plugins/.tmpX1y2Z3",
            "cache/.wanwatch-tmp-9zz9zz",
            "cache/last-good/.tmpabcdef",
        ];
        for name in keep.iter().chain(&stale) {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "x").unwrap();
        }
        // A symlink to elsewhere is not followed.
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join(".wanwatch-tmp-other"), "x").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("link")).unwrap();

        assert_eq!(remove_stale_temp_files(root), stale.len());
        for name in keep {
            assert!(root.join(name).exists(), "{name} kept");
        }
        for name in stale {
            assert!(!root.join(name).exists(), "{name} removed");
        }
        assert!(elsewhere.path().join(".wanwatch-tmp-other").exists());
        assert_eq!(remove_stale_temp_files(&root.join("missing")), 0);
    }
}
