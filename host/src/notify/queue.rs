//! The on-disk queue of notifications and outage reports waiting for
//! delivery.
//!
//! One JSON object per line, oldest first: `{"id": 3, "done": [...],
//! "notification": {...}}` or `{"id": 4, "report": {...}}` (a line written
//! before reports existed is a notification's, and still loads). A new
//! item is appended
//! and fsynced (cheap, and what happens while the WAN is down); any other
//! change (a sink took one, the queue overflowed) rewrites the whole file
//! atomically. The file stays small: it never holds more than `max`
//! entries.
//!
//! A power cut in the middle of an append leaves a torn last line; it is
//! skipped with a warning and the rest is kept. So is any other line that
//! does not parse: a damaged queue must not stop the daemon, nor lose the
//! items around the damage.

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::actions::Notification;
use crate::fsutil;
use crate::human;
use crate::watcher::protocol::OutageReport;

/// The queue's file name in the state directory.
pub const FILE: &str = "notify-queue.jsonl";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Increasing in queue order, across restarts.
    pub id: u64,
    /// The sinks that are done with it: delivered, given up, or not taking
    /// its kind.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub done: BTreeSet<String>,
    /// Flattened: the item's kind is its key, as in the lines written before
    /// there were reports.
    #[serde(flatten)]
    pub item: Item,
}

/// What waits in the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    Notification(Notification),
    Report(OutageReport),
}

impl Item {
    /// How logs name it: `notification raised …, title "…"` or `outage
    /// report outage-…`.
    pub fn describe(&self) -> String {
        match self {
            Item::Notification(n) => format!(
                "notification raised {}, title {:?}",
                human::timestamp(n.raised_at_ms),
                n.title
            ),
            Item::Report(r) => format!("outage report {}", r.id),
        }
    }
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
                "{}: {} notification(s) or report(s) from an earlier run to deliver",
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
                            "{}:{}: not a queued notification or report: skipped it: {e}",
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

    /// Appends an item that the sinks in `done` do not take, dropping the
    /// oldest if the queue is full; one that no sink takes is not queued.
    /// On a write error the item stays queued in memory.
    pub fn push(&mut self, item: Item, done: BTreeSet<String>) -> io::Result<()> {
        if self.sinks.iter().all(|s| done.contains(s)) {
            return Ok(());
        }
        while self.entries.len() >= self.max {
            self.drop_oldest();
        }
        let entry = Entry {
            id: self.next_id,
            done,
            item,
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
                "notification queue full ({}): dropped the oldest, the {}",
                self.max,
                old.item.describe()
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

    fn n(title: &str) -> Item {
        Item::Notification(Notification {
            title: title.into(),
            body: "body".into(),
            priority: 4,
            raised_at_ms: 1_700_000_000_000,
            plugin: "powercycle".into(),
            wan_state: WanState::Down,
            wan_since_ms: 1_699_999_990_000,
        })
    }

    fn title(e: &Entry) -> String {
        match &e.item {
            Item::Notification(n) => n.title.clone(),
            Item::Report(r) => r.id.clone(),
        }
    }

    fn sinks() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn titles(q: &Queue) -> Vec<String> {
        q.entries.iter().map(title).collect()
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
            q.push(n(t), BTreeSet::new()).unwrap();
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
        q.push(n("one"), BTreeSet::new()).unwrap();
        q.push(n("two"), BTreeSet::new()).unwrap();
        q.settle(0, "a").unwrap();
        assert_eq!(title(&q.oldest_pending("a").unwrap()), "two");
        assert_eq!(title(&q.oldest_pending("b").unwrap()), "one");
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
            q.push(n(t), BTreeSet::new()).unwrap();
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
        q.push(n("one"), BTreeSet::new()).unwrap();
        q.push(n("two"), BTreeSet::new()).unwrap();
        let whole = std::fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(
            &line(&Entry {
                id: 2,
                done: BTreeSet::new(),
                item: n("three"),
            })[..40],
        );
        std::fs::write(&path, &torn).unwrap();
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        assert_eq!(titles(&q), ["one", "two"]);
        // Repaired at once, so that the next append starts a fresh line.
        assert_eq!(std::fs::read(&path).unwrap(), whole);
        q.push(n("four"), BTreeSet::new()).unwrap();
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
            item: n("one"),
        });
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        q.push(n("two"), BTreeSet::new()).unwrap();
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
            item: n("good"),
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
        q.push(n("one"), BTreeSet::new()).unwrap();
        q.push(n("two"), BTreeSet::new()).unwrap();
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
        q.push(n("one"), BTreeSet::new()).unwrap();
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
        assert!(q.push(n("one"), BTreeSet::new()).is_err());
        assert_eq!(titles(&q), ["one"]);
        assert!(q.dirty);
    }

    /// A line as the version before reports wrote it, byte for byte.
    const OLD_LINE: &str = r#"{"id":5,"done":["a"],"notification":{"title":"WAN down","body":"body","priority":4,"raised_at_ms":1700000000000,"plugin":"powercycle","wan_state":"down","wan_since_ms":1699999990000}}"#;

    #[test]
    fn notify_queue_loads_a_line_written_before_reports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, format!("{OLD_LINE}\n")).unwrap();
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        assert_eq!(titles(&q), ["WAN down"]);
        assert_eq!(q.entries[0].done, BTreeSet::from(["a".to_owned()]));
        assert_eq!(q.next_id, 6);
        // And a notification is written in the same form again.
        assert_eq!(line(&q.entries[0]), format!("{OLD_LINE}\n").into_bytes());
        q.settle(5, "b").unwrap();
        assert_eq!(q.len(), 0);
    }

    fn report() -> Item {
        Item::Report(OutageReport::plain(
            "outage-1700000000000",
            1_700_000_000_000,
            1_700_000_060_000,
            "wan",
        ))
    }

    #[test]
    fn notify_queue_carries_reports_beside_notifications() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut q = Queue::open(path.clone(), 10, sinks()).unwrap();
        q.push(n("one"), BTreeSet::new()).unwrap();
        // Sink `a` does not take reports: it is done with it at once.
        q.push(report(), BTreeSet::from(["a".to_owned()])).unwrap();
        // No sink takes it: not queued at all.
        q.push(report(), BTreeSet::from(["a".to_owned(), "b".to_owned()]))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with(r#"{"id":1,"done":["a"],"report":{"id":"outage-1700000000000","#),
            "{text}"
        );
        let mut q = Queue::open(path, 10, sinks()).unwrap();
        assert_eq!(titles(&q), ["one", "outage-1700000000000"]);
        assert_eq!(q.entries[1].item, report());
        assert_eq!((q.pending("a"), q.pending("b")), (1, 2));
        q.settle(1, "b").unwrap();
        assert_eq!(titles(&q), ["one"]);
    }
}
