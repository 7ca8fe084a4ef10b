//! The compile cache, `<state_dir>/cache`: compiled components as
//! `<sha256>-<engine>.cwasm`, keyed by the component's content and by the
//! engine that compiled them, and the last version of each plugin file that
//! started as `last-good/<plugin>.wasm`.
//!
//! An interpreted guest compiles to some 50 MB, and every new version adds
//! a file: the cache keeps what is in use and drops the rest. In use are the
//! versions last prepared for each plugin by this runtime, the versions kept
//! as last good, and the built-in plugins. What is not in use goes as soon
//! as a new file is written (a new version, a new last good one); at start,
//! before the runtime knows which plugins it will load, only files of
//! another engine go. Beyond [`CAP_BYTES`], the least recently used files
//! go too, the current versions' last.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::runtime::sha256_hex;

/// The most the compiled components may take: room for the current and the
/// last good version of a few interpreted (JavaScript, Python) plugins at
/// about 50 MB each, and for the built-ins, while taking little of even a
/// small SD card.
pub(super) const CAP_BYTES: u64 = 256 << 20;

pub(super) struct Cache {
    dir: PathBuf,
    /// The suffix of this engine's entries (see [`Cache::entry`]).
    engine: String,
    /// The hashes of the built-in plugins: in use whenever they are cached.
    builtin: HashSet<String>,
    cap: u64,
    /// Per plugin, the hash of the version last prepared for it. The lock
    /// also keeps two prunes from racing.
    current: Mutex<HashMap<String, String>>,
}

/// A compiled component in the cache directory.
struct Entry {
    path: PathBuf,
    hash: String,
    bytes: u64,
    used: SystemTime,
}

impl Cache {
    /// The cache in `dir` for an engine whose entries end in `engine`,
    /// pruned of other engines' entries and to `cap`.
    pub fn open(dir: PathBuf, engine: String, builtin: HashSet<String>, cap: u64) -> Cache {
        let cache = Cache {
            dir,
            engine,
            builtin,
            cap,
            current: Mutex::new(HashMap::new()),
        };
        cache.prune(false);
        cache
    }

    /// Where the component whose SHA-256 is `hash` is kept compiled.
    pub fn entry(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.engine))
    }

    /// Where the last version of `plugin` that started is kept.
    pub fn last_good(&self, plugin: &str) -> PathBuf {
        self.dir.join("last-good").join(format!("{plugin}.wasm"))
    }

    /// Marks `entry` as used now, for the least-recently-used order.
    pub fn touch(entry: &Path) {
        // Only the order of pruning depends on it: not worth an error.
        let _ = std::fs::File::open(entry).and_then(|f| f.set_modified(SystemTime::now()));
    }

    /// Records `hash` as the version of `plugin` in use.
    pub fn in_use(&self, plugin: &str, hash: &str) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.insert(plugin.to_owned(), hash.to_owned());
    }

    /// Removes what is not in use, then what exceeds the cap: to be called
    /// once a new file is in the cache.
    pub fn prune_unused(&self) {
        self.prune(true);
    }

    /// Removes other engines' entries and, with `unused`, entries no
    /// version in use needs; then the least recently used entries beyond
    /// the cap, never a current version's. Failures are logged: they cost
    /// disk space, not correctness.
    fn prune(&self, unused: bool) {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let mut needed: HashSet<String> = current.values().cloned().collect();
        needed.extend(self.builtin.iter().cloned());
        needed.extend(self.last_good_hashes());
        let mut kept = Vec::new();
        for entry in self.entries() {
            let ours = entry.path.file_name().and_then(|n| n.to_str())
                == Some(&*format!("{}-{}.cwasm", entry.hash, self.engine));
            if !ours || (unused && !needed.contains(&entry.hash)) {
                self.remove(&entry.path);
            } else {
                kept.push(entry);
            }
        }
        let mut total: u64 = kept.iter().map(|e| e.bytes).sum();
        // Unneeded first, then the least recently used; current last.
        kept.retain(|e| !current.values().any(|h| *h == e.hash));
        kept.sort_by_key(|e| (needed.contains(&e.hash), e.used));
        for entry in kept {
            if total <= self.cap {
                break;
            }
            self.remove(&entry.path);
            total -= entry.bytes;
        }
    }

    /// The compiled components in the directory, of any engine.
    fn entries(&self) -> Vec<Entry> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|item| {
                let path = item.path();
                let name = path.file_name()?.to_str()?;
                let hash = name.strip_suffix(".cwasm")?.split('-').next()?.to_owned();
                let meta = item.metadata().ok().filter(|m| m.is_file())?;
                Some(Entry {
                    bytes: meta.len(),
                    used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    hash,
                    path,
                })
            })
            .collect()
    }

    /// The hashes of the components kept as last good.
    fn last_good_hashes(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.dir.join("last-good")) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|item| item.path().extension().is_some_and(|e| e == "wasm"))
            .filter_map(|item| std::fs::read(item.path()).ok())
            .map(|bytes| sha256_hex(&bytes))
            .collect()
    }

    fn remove(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(
                "cannot remove {} from the compile cache: {e}",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINE: &str = "00000000000000e1";

    struct Dir {
        dir: tempfile::TempDir,
    }

    impl Dir {
        fn new() -> Dir {
            Dir {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn open(&self, builtin: &[&str], cap: u64) -> Cache {
            let builtin = builtin.iter().map(|h| (*h).to_owned()).collect();
            Cache::open(self.dir.path().to_owned(), ENGINE.into(), builtin, cap)
        }

        /// An entry of `bytes` bytes, last used `age` seconds ago.
        fn add(&self, name: &str, bytes: usize, age: u64) {
            let path = self.dir.path().join(name);
            std::fs::write(&path, vec![0; bytes]).unwrap();
            let used = SystemTime::now() - std::time::Duration::from_secs(age);
            std::fs::File::open(&path)
                .unwrap()
                .set_modified(used)
                .unwrap();
        }

        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    fn entry(hash: &str) -> String {
        format!("{hash}-{ENGINE}.cwasm")
    }

    #[test]
    fn at_open_only_other_engines_entries_go() {
        let dir = Dir::new();
        dir.add(&entry("aa"), 10, 0);
        dir.add("aa-0000000000000old.cwasm", 10, 0);
        dir.add("notes.txt", 10, 0);
        dir.open(&[], CAP_BYTES);
        assert_eq!(dir.names(), [entry("aa"), "notes.txt".into()]);
    }

    #[test]
    fn after_a_write_only_versions_in_use_stay() {
        let dir = Dir::new();
        let last_good = b"\0asm last good";
        let kept = sha256_hex(last_good);
        std::fs::create_dir(dir.dir.path().join("last-good")).unwrap();
        std::fs::write(dir.dir.path().join("last-good/p.wasm"), last_good).unwrap();
        for hash in ["old", "current", "builtin", &kept, "gone"] {
            dir.add(&entry(hash), 10, 0);
        }
        let cache = dir.open(&["builtin"], CAP_BYTES);
        cache.in_use("p", "old");
        cache.in_use("p", "current");
        cache.prune_unused();
        let mut want = vec![
            entry("builtin"),
            entry("current"),
            entry(&kept),
            "last-good".into(),
        ];
        want.sort();
        assert_eq!(dir.names(), want);
    }

    #[test]
    fn the_cap_drops_the_least_recently_used_first() {
        let dir = Dir::new();
        dir.add(&entry("current"), 400, 0);
        dir.add(&entry("builtin"), 100, 50);
        dir.add(&entry("recent"), 100, 1);
        dir.add(&entry("stale"), 100, 10);
        dir.add(&entry("staler"), 100, 20);
        let cache = dir.open(&["builtin"], 650);
        let mut want = vec![entry("builtin"), entry("current"), entry("recent")];
        want.sort();
        assert_eq!(dir.names(), want, "the least recently used went");

        // What no version needs goes first, however recent; the current
        // version never, even beyond the cap.
        cache.in_use("p", "current");
        let cache = Cache { cap: 450, ..cache };
        cache.prune(false);
        assert_eq!(dir.names(), [entry("current")]);
    }
}
