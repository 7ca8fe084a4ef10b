//! `kv`: each plugin's small persistent key-value store.
//!
//! Kept in memory and saved whole, atomically, as `<kv_dir>/<plugin>.json`,
//! once at the end of each callback that changed it (see
//! [`Plugin::call`](crate::plugin::Plugin::call)): the store is at most
//! 64 KiB, and a store that is always complete on disk survives a crash or
//! power cut of the daemon at any moment. Not at every change: a plugin
//! calling `set` in a loop would fsync a file per call (936 MB in 10 s, as
//! measured), on an SD card. Without a `kv_dir` (the simulator, some tests)
//! it lives in memory only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::bindings::wanwatch::policy::kv::Host;
use super::{PluginState, shown};
use crate::fsutil::write_atomic;
use crate::state::Millis;

/// Keys per store (as promised in the .wit).
const MAX_KEYS: usize = 256;
/// Bytes of the saved store (as promised in the .wit): counted as JSON,
/// because a control character takes 6 bytes in the file.
const MAX_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct Kv {
    entries: BTreeMap<String, String>,
    /// The size of the saved file: its `{` and each entry's [`entry_size`]
    /// (an empty store, `{}`, is one byte more).
    bytes: usize,
    /// Where the store is saved, if anywhere.
    file: Option<PathBuf>,
    /// Changed since last saved.
    dirty: bool,
}

impl Default for Kv {
    fn default() -> Kv {
        Kv {
            entries: BTreeMap::new(),
            bytes: 1,
            file: None,
            dirty: false,
        }
    }
}

/// What an entry adds to the saved file: its key and value as JSON strings,
/// the `:` between them and the `,` (or the closing `}`) after them.
fn entry_size(key: &str, value: &str) -> usize {
    json_len(key) + json_len(value) + 2
}

/// The length of `s` as serde_json writes it: quoted, with `"`, `\` and
/// control characters escaped.
fn json_len(s: &str) -> usize {
    let escaped: usize = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum();
    escaped + 2
}

impl Kv {
    /// Loads the store of `plugin` from `dir`, or starts an empty one. A file
    /// that does not parse is moved aside as `<file>.corrupt-<now_ms>` (kept
    /// for a human to look at) and the plugin starts afresh: a plugin that
    /// cannot start is worse than one that forgot. An unreadable file, on the
    /// other hand, is an error: the data may be fine, and starting empty
    /// would overwrite it at the first change.
    pub fn load(plugin: &str, dir: Option<&Path>, now_ms: Millis) -> std::io::Result<Kv> {
        let Some(dir) = dir else {
            return Ok(Kv::default());
        };
        let file = Kv::path(plugin, dir);
        let entries = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, String>>(&bytes) {
                Ok(entries) => entries,
                Err(e) => {
                    let aside = PathBuf::from(format!("{}.corrupt-{now_ms}", file.display()));
                    std::fs::rename(&file, &aside)?;
                    tracing::warn!(
                        plugin,
                        "the key-value store {} is corrupt ({e}); moved it to {} and starting with an empty one",
                        file.display(),
                        aside.display()
                    );
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let bytes = 1 + entries.iter().map(|(k, v)| entry_size(k, v)).sum::<usize>();
        Ok(Kv {
            entries,
            bytes,
            file: Some(file),
            dirty: false,
        })
    }

    /// The file the store of `plugin` is saved in.
    pub fn path(plugin: &str, dir: &Path) -> PathBuf {
        dir.join(format!("{plugin}.json"))
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }

    pub fn set(&mut self, key: String, value: String) -> Result<(), String> {
        let old = self.entries.get(&key);
        if old.is_none() && self.entries.len() >= MAX_KEYS {
            return Err(format!(
                "cannot store `{}`: the store holds {MAX_KEYS} keys, its limit",
                shown(&key, 64)
            ));
        }
        let bytes = self.bytes - old.map_or(0, |v| entry_size(&key, v)) + entry_size(&key, &value);
        // Growing only: a store saved over the limit (counted in raw bytes
        // by older versions) can still be shrunk value by value.
        if bytes > MAX_BYTES && bytes > self.bytes {
            return Err(format!(
                "cannot store `{}`: the store would take {bytes} bytes saved (as JSON), more than its limit of {MAX_BYTES}",
                shown(&key, 64)
            ));
        }
        self.entries.insert(key, value);
        self.bytes = bytes;
        self.dirty = true;
        Ok(())
    }

    pub fn delete(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= entry_size(key, &old);
            self.dirty = true;
        }
    }

    /// Saves the store if it changed since last saved. On failure it stays
    /// changed in memory, and the next save tries again.
    pub fn save(&mut self) -> Result<(), String> {
        let Some(file) = self.file.as_ref().filter(|_| self.dirty) else {
            return Ok(());
        };
        let json =
            serde_json::to_vec(&self.entries).map_err(|e| format!("cannot save the store: {e}"))?;
        write_atomic(file, &json)
            .map_err(|e| format!("cannot save the store to {}: {e}", file.display()))?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(fuzzing)]
impl Kv {
    /// The entries, and the size counted for their saved file.
    pub fn contents(&self) -> (&BTreeMap<String, String>, usize) {
        (&self.entries, self.bytes)
    }
}

impl Host for PluginState {
    fn get(&mut self, key: String) -> Option<String> {
        self.kept.kv.get(&key)
    }

    // In memory only (saved when the callback returns), so on the plugin's
    // own time: a `set` loop meets its deadline.
    fn set(&mut self, key: String, value: String) -> Result<(), String> {
        self.kept.kv.set(key, value)
    }

    fn delete(&mut self, key: String) -> Result<(), String> {
        self.kept.kv.delete(&key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Kv {
        Kv::load("p", Some(dir), 7).unwrap()
    }

    #[test]
    fn changes_are_saved_and_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut kv = store(dir.path());
        kv.set("a".into(), "1".into()).unwrap();
        kv.set("b".into(), "2".into()).unwrap();
        kv.set("a".into(), "3".into()).unwrap();
        kv.delete("b");
        kv.delete("never there");
        kv.save().unwrap();
        let kv = store(dir.path());
        assert_eq!(kv.get("a").as_deref(), Some("3"));
        assert_eq!(kv.get("b"), None);
        assert_eq!(kv.bytes, r#"{"a":"3"}"#.len());
        assert_eq!(kv.file, Some(dir.path().join("p.json")));
    }

    #[test]
    fn limits_on_keys_and_bytes() {
        let mut kv = Kv::default();
        for i in 0..MAX_KEYS {
            kv.set(format!("k{i}"), String::new()).unwrap();
        }
        assert!(
            kv.set("one more".into(), String::new())
                .unwrap_err()
                .contains("256 keys")
        );
        // Replacing a key is fine at the key limit.
        kv.set("k0".into(), "x".into()).unwrap();

        let mut kv = Kv::default();
        // `{"big":"xx…x"}` fills the limit exactly.
        let room = MAX_BYTES - r#"{"big":""}"#.len();
        kv.set("big".into(), "x".repeat(room)).unwrap();
        let err = kv.set("c".into(), "d".into()).unwrap_err();
        assert!(err.contains("more than its limit of 65536"), "{err}");
        // Shrinking a value frees room.
        kv.set("big".into(), String::new()).unwrap();
        kv.set("c".into(), "d".into()).unwrap();
    }

    #[test]
    fn a_failed_save_keeps_the_changes_and_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut kv = store(dir.path());
        kv.set("a".into(), "1".into()).unwrap();
        kv.save().unwrap();
        // A file where the directory should be makes the save fail.
        let file = kv.file.replace(dir.path().join("missing").join("p.json"));
        std::fs::write(dir.path().join("missing"), "a file, not a directory").unwrap();
        kv.set("a".into(), "2".into()).unwrap();
        assert!(kv.save().is_err());
        assert_eq!(kv.get("a").as_deref(), Some("2"));
        kv.file = file;
        kv.save().unwrap();
        assert_eq!(store(dir.path()).get("a").as_deref(), Some("2"));
    }

    #[test]
    fn changes_are_written_once_when_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut kv = store(dir.path());
        for i in 0..1_000 {
            kv.set("n".into(), i.to_string()).unwrap();
        }
        assert!(
            !dir.path().join("p.json").exists(),
            "written before the save"
        );
        kv.save().unwrap();
        assert_eq!(store(dir.path()).get("n").as_deref(), Some("999"));
    }

    #[test]
    fn the_limit_counts_what_lands_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut kv = store(dir.path());
        // Control characters are escaped, most as `\u00XX`: 6 bytes each.
        let nasty: String = (0u8..0x20).chain(*b"\"\\x").map(char::from).collect();
        // Filled with ever smaller entries, to the last byte that fits.
        let mut i = 0;
        for value in [nasty.repeat(40), nasty, "\u{1}".into()] {
            while kv.set(format!("k{i}"), value.clone()).is_ok() {
                i += 1;
            }
        }
        kv.save().unwrap();
        let size = std::fs::metadata(dir.path().join("p.json")).unwrap().len();
        assert!(size <= MAX_BYTES as u64, "{size} bytes on disk");
        assert_eq!(size, kv.bytes as u64, "counted as saved");
        // Less than one `"kNNN":"\u0001",` is left.
        assert!(
            size > MAX_BYTES as u64 - 16,
            "{size} bytes: the limit is used"
        );
        assert_eq!(
            store(dir.path()).bytes,
            kv.bytes,
            "counted the same on load"
        );
    }

    #[test]
    fn a_store_over_the_limit_can_shrink() {
        let mut kv = Kv::default();
        kv.entries.insert("a".into(), "\u{0}".repeat(MAX_BYTES));
        kv.entries.insert("b".into(), "xyz".into());
        kv.bytes = 1 + kv
            .entries
            .iter()
            .map(|(k, v)| entry_size(k, v))
            .sum::<usize>();
        assert!(kv.set("b".into(), "xyzw".into()).is_err(), "growing");
        kv.set("b".into(), "x".into()).unwrap();
        kv.set("a".into(), String::new()).unwrap();
        kv.set("b".into(), "xyzw".into()).unwrap();
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.json"), "{not json").unwrap();
        let kv = store(dir.path());
        assert_eq!(kv.entries.len(), 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("p.json.corrupt-7")).unwrap(),
            "{not json"
        );
        assert!(!dir.path().join("p.json").exists());
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in place of the file cannot be read.
        std::fs::create_dir(dir.path().join("p.json")).unwrap();
        assert!(Kv::load("p", Some(dir.path()), 0).is_err());
    }
}
