//! The on-disk queue of notifications waiting for delivery.
//!
//! One JSON object per line, oldest first. A new notification is appended
//! and fsynced (cheap, and what happens while the WAN is down); any other
//! change (a sink took one, the queue overflowed) rewrites the whole file
//! atomically. The file stays small: it never holds more than `max`
//! entries.
//!
//! A power cut in the middle of an append leaves a torn last line; it is
//! skipped with a warning and the rest is kept. So is any other line that
//! does not parse: a damaged queue must not stop the daemon, nor lose the
//! notifications around the damage.

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::actions::Notification;
use crate::fsutil;
use crate::human;

/// The queue's file name in the state directory.
pub const FILE: &str = "notify-queue.jsonl";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Increasing in queue order, across restarts.
    pub id: u64,
    /// The sinks that are done with it: delivered, or given up.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub done: BTreeSet<String>,
    pub notification: Notification,
}

pub struct Queue {
    path: PathBuf,
    max: usize,
    /// The configured sinks: an entry leaves once all of them are done.
    sinks: Vec<String>,
    entries: VecDeque<Entry>,
    next_id: u64,
    /// The file does not hold exactly `entries` (it was damaged, or a write
    /// failed): the next write replaces it rather than appending to it.
    dirty: bool,
    /// The owner is gone (see `Outbox`'s drop): the file is left alone.
    closed: bool,
}

impl Queue {
    /// Loads the queue at `path`, or starts an empty one if there is none.
    /// Fails only if the file exists but cannot be read, or needs repair
    /// and cannot be written.
    pub fn open(path: PathBuf, max: usize, sinks: Vec<String>) -> io::Result<Queue> {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut queue = Queue {
            path,
            max: max.max(1),
            sinks,
            entries: VecDeque::new(),
            next_id: 0,
            dirty: false,
            closed: false,
        };
        queue.load(&bytes);
        if !queue.entries.is_empty() {
            tracing::info!(
                "{}: {} notification(s) from an earlier run to deliver",
                queue.path.display(),
                queue.entries.len()
            );
        }
        if queue.dirty {
            queue.rewrite()?;
        }
        Ok(queue)
    }

    fn load(&mut self, bytes: &[u8]) {
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        // After a final newline, `split` yields an empty last piece; without
        // one, the last line was cut short.
        let torn = lines.last().filter(|last| !last.is_empty());
        for (index, line) in lines.iter().enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let is_torn = torn.is_some() && index + 1 == lines.len();
            match serde_json::from_slice::<Entry>(line) {
                Ok(entry) => {
                    // Complete but unterminated: the next append needs a
                    // fresh line.
                    self.dirty |= is_torn;
                    self.next_id = self.next_id.max(entry.id.saturating_add(1));
                    self.entries.push_back(entry);
                }
                Err(e) => {
                    self.dirty = true;
                    if is_torn {
                        tracing::warn!(
                            "{}: the last line is incomplete (power cut while it was written?): skipped it: {e}",
                            self.path.display()
                        );
                    } else {
                        tracing::warn!(
                            "{}:{}: not a queued notification: skipped it: {e}",
                            self.path.display(),
                            index + 1
                        );
                    }
                }
            }
        }
        // Sinks removed from the config since leave entries that every
        // remaining sink already has.
        let before = self.entries.len();
        let sinks = &self.sinks;
        self.entries
            .retain(|e| !sinks.iter().all(|s| e.done.contains(s)));
        self.dirty |= self.entries.len() != before;
        // `queue_max` may have been lowered since.
        while self.entries.len() > self.max {
            self.drop_oldest();
        }
    }

    /// Appends a notification, dropping the oldest if the queue is full.
    /// On a write error the notification stays queued in memory.
    pub fn push(&mut self, notification: Notification) -> io::Result<()> {
        while self.entries.len() >= self.max {
            self.drop_oldest();
        }
        let entry = Entry {
            id: self.next_id,
            done: BTreeSet::new(),
            notification,
        };
        self.next_id += 1;
        let line = line(&entry);
        self.entries.push_back(entry);
        if self.dirty {
            return self.rewrite();
        }
        self.append(&line).inspect_err(|_| self.dirty = true)
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.entries.pop_front() {
            tracing::warn!(
                "notification queue full ({}): dropped the oldest, raised {}, title {:?}",
                self.max,
                human::timestamp(old.notification.raised_at_ms),
                old.notification.title
            );
            self.dirty = true;
        }
    }

    /// The oldest entry `sink` is not done with.
    pub fn oldest_pending(&self, sink: &str) -> Option<Entry> {
        self.entries
            .iter()
            .find(|e| !e.done.contains(sink))
            .cloned()
    }

    /// How many entries `sink` is not done with.
    pub fn pending(&self, sink: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| !e.done.contains(sink))
            .count()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records that `sink` is done with entry `id`; the entry leaves the
    /// queue once every sink is. An entry already gone (dropped while it was
    /// being delivered) is no error.
    pub fn settle(&mut self, id: u64, sink: &str) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let Some(index) = self.entries.iter().position(|e| e.id == id) else {
            return Ok(());
        };
        self.entries[index].done.insert(sink.to_owned());
        if self
            .sinks
            .iter()
            .all(|s| self.entries[index].done.contains(s))
        {
            self.entries.remove(index);
        }
        self.rewrite()
    }

    /// From now on the file is not written again.
    pub fn close(&mut self) {
        self.closed = true;
    }

    fn append(&self, line: &[u8]) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        // One write of the whole line: a crash tears at most this line.
        file.write_all(line)?;
        file.sync_data()
    }

    fn rewrite(&mut self) -> io::Result<()> {
        let bytes: Vec<u8> = self.entries.iter().flat_map(line).collect();
        let written = fsutil::write_atomic(&self.path, &bytes);
        self.dirty = written.is_err();
        written
    }
}

fn line(entry: &Entry) -> Vec<u8> {
    // Serializing plain strings and numbers cannot fail.
    let mut line = serde_json::to_vec(entry).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::WanState;

    fn n(title: &str) -> Notification {
        Notification {
            title: title.into(),
            body: "body".into(),
            priority: 4,
            raised_at_ms: 1_700_000_000_000,
            plugin: "powercycle".into(),
            wan_state: WanState::Down,
            wan_since_ms: 1_699_999_990_000,
        }
    }

    fn sinks() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn titles(q: &Queue) -> Vec<String> {
        q.entries
            .iter()
            .map(|e| e.notification.title.clone())
            .collect()
    }

    fn lines(path: &std::path::Path) -> usize {
        std::fs::read_to_string(path).unwrap().lines().count()
    }

    #[test]
    fn notify_queue_survives_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        for t in ["one", "two", "three"] {
            q.push(n(t)).unwrap();
        }
        assert_eq!(lines(&path), 3);
        let q = Queue::open(path.clone(), 10, sinks()).unwrap();
        assert_eq!(titles(&q), ["one", "two", "three"]);
        assert_eq!(q.next_id, 3);
    }

    #[test]
    fn notify_queue_entry_leaves_when_every_sink_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        q.push(n("one")).unwrap();
        q.push(n("two")).unwrap();
        q.settle(0, "a").unwrap();
        assert_eq!(q.oldest_pending("a").unwrap().notification.title, "two");
        assert_eq!(q.oldest_pending("b").unwrap().notification.title, "one");
        assert_eq!((q.pending("a"), q.pending("b"), q.len()), (1, 2, 2));
        // Per-sink progress survives a restart.
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        assert_eq!(q.pending("a"), 1);
        q.settle(0, "b").unwrap();
        assert_eq!(titles(&q), ["two"]);
        assert_eq!(lines(&path), 1);
        // Settling what is gone is harmless.
        q.settle(0, "a").unwrap();
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn notify_queue_full_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut q = Queue::open(path.clone(), 2, sinks()).unwrap();
        for t in ["one", "two", "three"] {
            q.push(n(t)).unwrap();
        }
        assert_eq!(titles(&q), ["two", "three"]);
        assert_eq!(lines(&path), 2);
        // A lower maximum applies to what is already queued.
        let q = Queue::open(path.clone(), 1, sinks()).unwrap();
        assert_eq!(titles(&q), ["three"]);
        assert_eq!(lines(&path), 1);
    }

    #[test]
    fn notify_queue_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        q.push(n("one")).unwrap();
        q.push(n("two")).unwrap();
        let whole = std::fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(
            &line(&Entry {
                id: 2,
                done: BTreeSet::new(),
                notification: n("three"),
            })[..40],
        );
        std::fs::write(&path, &torn).unwrap();
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        assert_eq!(titles(&q), ["one", "two"]);
        // Repaired at once, so that the next append starts a fresh line.
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        q.push(n("four")).unwrap();
        let q = Queue::open(path, 10, sinks()).unwrap();
        assert_eq!(titles(&q), ["one", "two", "four"]);
    }

    #[test]
    fn notify_queue_complete_but_unterminated_last_line_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut bytes = line(&Entry {
            id: 7,
            done: BTreeSet::new(),
            notification: n("one"),
        });
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        q.push(n("two")).unwrap();
        let q = Queue::open(path, 10, sinks()).unwrap();
        assert_eq!(titles(&q), ["one", "two"]);
        assert_eq!(q.entries[1].id, 8);
    }

    #[test]
    fn notify_queue_garbage_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let good = line(&Entry {
            id: 3,
            done: BTreeSet::new(),
            notification: n("good"),
        });
        let mut bytes = b"\xff\xfe not json\n{\"id\": \"x\"}\n\n".to_vec();
        bytes.extend_from_slice(&good);
        bytes.extend_from_slice(b"[1,2]\n\0\0\0");
        std::fs::write(&path, &bytes).unwrap();
        let q = Queue::open(path.clone(), 10, sinks()).unwrap();
        assert_eq!(titles(&q), ["good"]);
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }

    #[test]
    fn notify_queue_forgets_entries_no_configured_sink_needs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        q.push(n("one")).unwrap();
        q.push(n("two")).unwrap();
        q.settle(0, "a").unwrap();
        // Sink `b` was removed from the config: `one` is done.
        let q = Queue::open(path, 10, vec!["a".into()]).unwrap();
        assert_eq!(titles(&q), ["two"]);
    }

    #[test]
    fn notify_queue_closed_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        q.push(n("one")).unwrap();
        q.close();
        q.settle(0, "a").unwrap();
        q.settle(0, "b").unwrap();
        assert_eq!(lines(&path), 1);
    }

    #[test]
    fn notify_queue_write_error_keeps_the_notification_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        // The queue's path is a directory: every write fails.
        let path = dir.path().join(FILE);
        std::fs::create_dir(&path).unwrap();
        assert!(Queue::open(path.clone(), 10, sinks()).is_err());
        let mut q = Queue {
            path,
            max: 10,
            sinks: sinks(),
            entries: VecDeque::new(),
            next_id: 0,
            dirty: false,
            closed: false,
        };
        assert!(q.push(n("one")).is_err());
        assert_eq!(titles(&q), ["one"]);
        assert!(q.dirty);
    }
}
