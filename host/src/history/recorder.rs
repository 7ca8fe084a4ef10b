//! The recorder: the daemon's events into the history database, on a
//! writer thread of its own.
//!
//! What is committed when:
//! - a transition, mains power change, action (power cycle, notification)
//!   or plugin health change is inserted and committed at once, with
//!   `synchronous = FULL` (a Raspberry Pi loses power with the modem), and
//!   only then published to [`Recorder::subscribe`]rs with its id;
//! - probe rounds are gathered in memory (raw rows, per-minute and per-hour
//!   aggregates) and committed in one transaction every
//!   [`COMMIT_EVERY`] (5 s), with `synchronous = NORMAL`: an SD card gets
//!   no fsync per probe, and a crash loses at most those seconds of probe
//!   rows, never an event;
//! - pruning by retention (`[history] raw_retention`, `aggregate_retention`)
//!   runs at start and then hourly.
//!
//! [`Recorder::observe`] never blocks the daemon: it hands the event to a
//! bounded queue. When the writer falls behind (a stalled disk), rounds are
//! dropped first (logged once); events only when even the queue's reserve
//! for them is full.
//!
//! A database that cannot be opened is reported once with its file and
//! cause; a corrupt one is moved aside and a fresh one created; one that is
//! locked (another daemon?) or unwritable is done without: the recorder then
//! still numbers and publishes the events (ids from a counter), so the live
//! event stream goes on, and the watchdog is unaffected.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;

use super::aggregate::Aggregate;
use super::db::{self, HistoryError};
use super::{HistoryConfig, StoredEvent};
use crate::clock::{Clock, SystemClock};
use crate::events::{Observed, Observer};
use crate::fsutil::Failing;
use crate::state::{Millis, Round};

/// How often gathered probe rounds are committed.
pub const COMMIT_EVERY: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long the start waits for the database to be opened and migrated.
const OPEN_WAIT: Duration = Duration::from_secs(5);
/// The queue between the daemon and the writer.
const QUEUE: usize = 1024;
/// Rounds waiting beyond this many are dropped: the rest of the queue is
/// kept for events.
const ROUNDS_QUEUED: usize = QUEUE / 2;
/// Events buffered for slow subscribers (the event stream's clients).
const SUBSCRIBER_BUFFER: usize = 256;

const MINUTE_MS: Millis = 60_000;
const HOUR_MS: Millis = 3_600_000;

enum Message {
    Event(Millis, Observed),
    Round(Round),
    /// Commit what is gathered, then say so.
    Flush(Sender<()>),
    Stop,
}

/// Writes the history database; an [`Observer`] of the daemon. Clones share
/// the one writer.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    queue: SyncSender<Message>,
    rounds_queued: Arc<AtomicUsize>,
    /// Whether something was dropped since the queue last took one: the
    /// drop is logged once.
    dropping: AtomicBool,
    published: broadcast::Sender<Arc<StoredEvent>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Opens (or creates, or migrates) the database at `path` on a new
    /// writer thread. Never fails: see the module's comment for a database
    /// that cannot be used.
    pub fn start(path: PathBuf, config: &HistoryConfig) -> Recorder {
        let (queue, messages) = std::sync::mpsc::sync_channel(QUEUE);
        let (published, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let rounds_queued = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            store: None,
            next_id: 1,
            published: published.clone(),
            rounds_queued: rounds_queued.clone(),
            retention: (config.raw_retention, config.aggregate_retention),
        };
        let thread_path = path.clone();
        let (opened, wait) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("history".into())
            .spawn(move || writer.run(&thread_path, messages, opened));
        let handle = match handle {
            Ok(handle) => {
                // Readers (the API) must not find the file before it is
                // migrated; a locked database must not hold up the start
                // for long either.
                let _ = wait.recv_timeout(OPEN_WAIT);
                Some(handle)
            }
            Err(e) => {
                tracing::error!("cannot start the history writer: {e}; going on without history");
                None
            }
        };
        Recorder {
            inner: Arc::new(Inner {
                path,
                queue,
                rounds_queued,
                dropping: AtomicBool::new(false),
                published,
                writer: Mutex::new(handle),
            }),
        }
    }

    /// The events as they are stored, with their ids (rounds are not sent).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.inner.published.subscribe()
    }

    /// The database file, for readers ([`super::HistoryDb::open`]).
    pub fn database(&self) -> PathBuf {
        self.inner.path.clone()
    }

    /// Waits until everything observed so far is committed.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.inner.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Commits the rounds gathered and ends the writer thread. Events
    /// observed afterwards are not recorded.
    pub fn stop(&self) {
        let Some(handle) = self.inner.writer.lock().ok().and_then(|mut w| w.take()) else {
            return;
        };
        if self.inner.queue.send(Message::Stop).is_ok() && handle.join().is_err() {
            tracing::error!("the history writer panicked");
        }
    }

    fn enqueue(&self, message: Message) {
        let round = matches!(message, Message::Round(_));
        let queued = &self.inner.rounds_queued;
        let sent = if round && queued.load(Ordering::Relaxed) >= ROUNDS_QUEUED {
            false
        } else {
            if round {
                queued.fetch_add(1, Ordering::Relaxed);
            }
            match self.inner.queue.try_send(message) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    if round {
                        queued.fetch_sub(1, Ordering::Relaxed);
                    }
                    false
                }
                // Stopped: the daemon is shutting down.
                Err(TrySendError::Disconnected(_)) => return,
            }
        };
        let dropping = &self.inner.dropping;
        if !sent && !dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the history writer is behind (a slow disk?): dropping {} until it catches up",
                if round { "probe rounds" } else { "events" }
            );
        } else if sent && dropping.load(Ordering::Relaxed) {
            dropping.store(false, Ordering::Relaxed);
            tracing::info!("the history writer caught up");
        }
    }
}

impl Observer for Recorder {
    fn observe(&self, event: &Observed) {
        let message = match event {
            Observed::Round(round) => Message::Round(round.clone()),
            Observed::Wan(e) => Message::Event(e.transition.at_ms, event.clone()),
            Observed::Power(t) => Message::Event(t.at_ms, event.clone()),
            Observed::Quality(q) => Message::Event(q.at_ms, event.clone()),
            Observed::Action(a) => Message::Event(a.at_ms, event.clone()),
            // A health change carries no time of its own.
            Observed::Plugin(_) => Message::Event(SystemClock.wall_ms(), event.clone()),
        };
        self.enqueue(message);
    }
}

/// The writer thread's side.
struct Writer {
    store: Option<Store>,
    /// The id of the next event when there is no database.
    next_id: i64,
    published: broadcast::Sender<Arc<StoredEvent>>,
    rounds_queued: Arc<AtomicUsize>,
    /// Raw rows, aggregates.
    retention: (Duration, Duration),
}

impl Writer {
    /// `opened` is told once the database is open and migrated (or found
    /// unusable).
    fn run(mut self, path: &Path, messages: Receiver<Message>, opened: Sender<()>) {
        self.store = Store::open(path, SystemClock.wall_ms());
        if let Some(store) = &self.store {
            self.next_id = store.last_id().unwrap_or(0) + 1;
        }
        let _ = opened.send(());
        let mut commit_at = Instant::now() + COMMIT_EVERY;
        let mut prune_at = Instant::now();
        loop {
            let now = Instant::now();
            if now >= prune_at {
                self.prune(SystemClock.wall_ms());
                prune_at = now + PRUNE_EVERY;
            }
            if now >= commit_at {
                self.commit_rounds();
                commit_at = now + COMMIT_EVERY;
            }
            match messages.recv_timeout(commit_at.saturating_duration_since(now)) {
                Ok(Message::Event(at_ms, event)) => self.record(at_ms, &event),
                Ok(Message::Round(round)) => {
                    self.rounds_queued.fetch_sub(1, Ordering::Relaxed);
                    if let Some(store) = &mut self.store {
                        store.gather(&round);
                    }
                }
                Ok(Message::Flush(done)) => {
                    self.commit_rounds();
                    let _ = done.send(());
                }
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        self.commit_rounds();
    }

    fn record(&mut self, at_ms: Millis, event: &Observed) {
        let data = match serde_json::to_value(event) {
            Ok(data) => data,
            Err(e) => {
                tracing::error!("cannot record a {} event: {e}", event.kind());
                return;
            }
        };
        let kind = event.kind().to_owned();
        let stored = self
            .store
            .as_mut()
            .and_then(|store| store.insert_event(at_ms, &kind, &data));
        let id = stored.unwrap_or(self.next_id);
        self.next_id = id + 1;
        // No subscriber is no error.
        let _ = self.published.send(Arc::new(StoredEvent {
            id,
            at_ms,
            kind,
            data,
        }));
    }

    fn commit_rounds(&mut self) {
        if let Some(store) = &mut self.store {
            store.commit_rounds();
        }
    }

    fn prune(&mut self, now_ms: Millis) {
        if let Some(store) = &mut self.store {
            let (raw, aggregates) = self.retention;
            if let Err(e) = prune(&store.conn, now_ms, raw, aggregates) {
                tracing::error!(
                    "cannot prune the history database {}: {e}",
                    store.path.display()
                );
            }
        }
    }
}

/// The open database, and the rounds gathered for the next commit.
struct Store {
    path: PathBuf,
    conn: Connection,
    /// Target names and their ids in the database.
    targets: HashMap<String, i64>,
    raw: Vec<(Millis, String, bool, Option<u32>)>,
    /// By (minute or hour start, target).
    minutes: BTreeMap<(Millis, String), Aggregate>,
    hours: BTreeMap<(Millis, String), Aggregate>,
    /// So that a failing disk is logged once, not every 5 s.
    failing: Failing,
}

impl Store {
    fn open(path: &Path, now_ms: Millis) -> Option<Store> {
        let conn = match db::open_writer(path) {
            Ok(conn) => conn,
            Err(e @ HistoryError::Corrupt { .. }) => match db::move_aside(path, now_ms) {
                Ok(aside) => {
                    tracing::error!(
                        "{e}; moved it to {} and starting a new history",
                        aside.display()
                    );
                    db::open_writer(path)
                        .map_err(|e| tracing::error!("{e}; going on without history"))
                        .ok()?
                }
                Err(moving) => {
                    tracing::error!(
                        "{e}, and it cannot be moved aside ({moving}); going on without history"
                    );
                    return None;
                }
            },
            Err(e) => {
                tracing::error!("{e}; going on without history (the watchdog is unaffected)");
                return None;
            }
        };
        Some(Store {
            path: path.to_owned(),
            conn,
            targets: HashMap::new(),
            raw: Vec::new(),
            minutes: BTreeMap::new(),
            hours: BTreeMap::new(),
            failing: Failing::default(),
        })
    }

    fn last_id(&self) -> Option<i64> {
        self.conn
            .query_row("SELECT max(id) FROM events", [], |r| r.get(0))
            .ok()
            .flatten()
    }

    /// Inserts and commits one event durably; its id, or None on failure.
    fn insert_event(&mut self, at_ms: Millis, kind: &str, data: &serde_json::Value) -> Option<i64> {
        let conn = &self.conn;
        let result = conn
            .pragma_update(None, "synchronous", "FULL")
            .and_then(|()| {
                conn.execute(
                    "INSERT INTO events (at_ms, kind, data) VALUES (?1, ?2, ?3)",
                    params![at_ms as i64, kind, data.to_string()],
                )
            })
            .map(|_| conn.last_insert_rowid());
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
        self.outcome(result)
    }

    fn gather(&mut self, round: &Round) {
        let minute = round.at_ms - round.at_ms % MINUTE_MS;
        let hour = round.at_ms - round.at_ms % HOUR_MS;
        for e in &round.results {
            self.raw
                .push((round.at_ms, e.target.clone(), e.ok, e.rtt_us));
            for (table, start) in [(&mut self.minutes, minute), (&mut self.hours, hour)] {
                table
                    .entry((start, e.target.clone()))
                    .or_default()
                    .add(e.ok, e.rtt_us);
            }
        }
    }

    fn commit_rounds(&mut self) {
        if self.raw.is_empty() {
            return;
        }
        let result = self.write_rounds();
        // What could not be written is dropped: retrying forever would
        // grow the memory of a daemon on a dead disk.
        self.raw.clear();
        self.minutes.clear();
        self.hours.clear();
        self.outcome(result);
    }

    fn write_rounds(&mut self) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for (_, name) in self.minutes.keys() {
            if !self.targets.contains_key(name) {
                tx.execute("INSERT OR IGNORE INTO targets (name) VALUES (?1)", [name])?;
                let id = tx.query_row("SELECT id FROM targets WHERE name = ?1", [name], |r| {
                    r.get(0)
                })?;
                self.targets.insert(name.clone(), id);
            }
        }
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO probes (at_ms, target, ok, rtt_us) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (at_ms, name, ok, rtt) in &self.raw {
                insert.execute(params![*at_ms as i64, self.targets[name], ok, rtt])?;
            }
        }
        for (table, column, aggregates) in [
            ("probe_minutes", "minute_ms", &self.minutes),
            ("probe_hours", "hour_ms", &self.hours),
        ] {
            for ((start, name), gathered) in aggregates {
                merge_aggregate(&tx, table, column, *start, self.targets[name], gathered)?;
            }
        }
        tx.commit()
    }

    /// Logs the first failure and the recovery; the value on success.
    fn outcome<T>(&mut self, result: rusqlite::Result<T>) -> Option<T> {
        self.failing.outcome(
            format_args!("the history database {}", self.path.display()),
            result,
        )
    }
}

/// Adds `gathered` to the stored aggregate of (`start`, `target`): a minute
/// or hour may be written in several commits (and before a restart).
pub(crate) fn merge_aggregate(
    conn: &Connection,
    table: &str,
    column: &str,
    start: Millis,
    target: i64,
    gathered: &Aggregate,
) -> rusqlite::Result<()> {
    let key = params![start as i64, target];
    let mut merged = conn
        .prepare_cached(&format!(
            "SELECT sent, answered, rtt_sum_us, rtt_min_us, rtt_max_us, rtt_hist FROM {table}
             WHERE {column} = ?1 AND target = ?2"
        ))?
        .query_row(key, read_aggregate)
        .optional()?
        .unwrap_or_default();
    merged.merge(gathered);
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {table}
         ({column}, target, sent, answered, rtt_sum_us, rtt_min_us, rtt_max_us, rtt_hist)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))?
    .execute(params![
        start as i64,
        target,
        merged.sent as i64,
        merged.answered as i64,
        merged.rtt_sum_us as i64,
        merged.rtt_min_us,
        merged.rtt_max_us,
        merged.hist_blob()
    ])?;
    Ok(())
}

/// An aggregate from a row of `sent, answered, rtt_sum_us, rtt_min_us,
/// rtt_max_us, rtt_hist`.
pub(crate) fn read_aggregate(row: &rusqlite::Row<'_>) -> rusqlite::Result<Aggregate> {
    let mut a = Aggregate::default();
    a.sent = row.get::<_, i64>(0)?.max(0) as u64;
    a.answered = row.get::<_, i64>(1)?.max(0) as u64;
    a.rtt_sum_us = row.get::<_, i64>(2)?.max(0) as u64;
    a.rtt_min_us = row.get(3)?;
    a.rtt_max_us = row.get(4)?;
    a.merge_hist_blob(row.get_ref(5)?.as_blob()?);
    Ok(a)
}

/// Deletes what is older than its retention. Returns the rows deleted.
pub fn prune(
    conn: &Connection,
    now_ms: Millis,
    raw: Duration,
    aggregates: Duration,
) -> rusqlite::Result<usize> {
    let before = |keep: Duration| now_ms.saturating_sub(keep.as_millis() as Millis) as i64;
    let mut deleted = conn.execute("DELETE FROM probes WHERE at_ms < ?1", [before(raw)])?;
    for (table, column) in [
        ("probe_minutes", "minute_ms"),
        ("probe_hours", "hour_ms"),
        ("events", "at_ms"),
    ] {
        deleted += conn.execute(
            &format!("DELETE FROM {table} WHERE {column} < ?1"),
            [before(aggregates)],
        )?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Bucket, HistoryDb};
    use crate::monitor::WanEvent;
    use crate::power::PowerState;
    use crate::state::{Evidence, ProbeKind, Role, Transition, WanState};

    fn wan(at_ms: Millis, previous: WanState, current: WanState) -> Observed {
        Observed::Wan(WanEvent {
            transition: Transition {
                previous,
                current,
                at_ms,
                previous_duration_ms: 9_000,
                local_fault: false,
                evidence: Vec::new(),
            },
            power: PowerState::On,
            power_cycles: 0,
            quality: Default::default(),
        })
    }

    fn round(at_ms: Millis, rtt_us: Option<u32>) -> Observed {
        let e = |target: &str| Evidence {
            target: target.into(),
            role: Role::Wan,
            kind: ProbeKind::Icmp,
            ok: rtt_us.is_some(),
            rtt_us,
            https: None,
        };
        Observed::Round(Round {
            at_ms,
            results: vec![e("a"), e("b")],
        })
    }

    #[test]
    fn events_are_stored_then_published_with_their_ids_and_rounds_aggregated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let recorder = Recorder::start(path.clone(), &HistoryConfig::default());
        let mut events = recorder.subscribe();
        let now = SystemClock.wall_ms();
        let minute = now - now % MINUTE_MS - 2 * MINUTE_MS;
        recorder.observe(&round(minute + 1_000, Some(10_000)));
        recorder.observe(&round(minute + 3_000, None));
        recorder.observe(&wan(minute + 3_000, WanState::Up, WanState::Sick));
        let published = events.blocking_recv().unwrap();
        // Published only once committed: a reader finds it at once.
        let db = HistoryDb::open(&path).unwrap();
        let stored = db.events_after(0, 10).unwrap();
        assert_eq!(stored, [(*published).clone()]);
        assert_eq!(published.kind, "wan");
        assert_eq!(published.data["current"], "sick");
        recorder.observe(&round(minute + MINUTE_MS, Some(20_000)));
        recorder.flush();
        let stats = db.stats(minute, minute + 2 * MINUTE_MS).unwrap();
        let a = &stats.targets[0];
        assert_eq!((a.target.as_str(), a.sent, a.answered), ("a", 3, 2));
        assert_eq!((a.rtt_min_ms, a.rtt_max_ms), (Some(10.0), Some(20.0)));
        // The raw rows are kept too.
        let mut rows = 0;
        db.probe_rows(0, u64::MAX, |_| {
            rows += 1;
            true
        })
        .unwrap();
        assert_eq!(rows, 6);
        recorder.stop();
        // A restart numbers on from the last id.
        let recorder = Recorder::start(path.clone(), &HistoryConfig::default());
        let mut events = recorder.subscribe();
        recorder.observe(&wan(now, WanState::Sick, WanState::Up));
        assert_eq!(events.blocking_recv().unwrap().id, published.id + 1);
    }

    #[test]
    fn chart_buckets_sum_the_aggregates_of_their_minutes_or_hours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let recorder = Recorder::start(path.clone(), &HistoryConfig::default());
        let now = SystemClock.wall_ms();
        // Two whole hours back, so that both tables have them.
        let hour = now - now % HOUR_MS - 2 * HOUR_MS;
        recorder.observe(&round(hour + 1_000, Some(10_000)));
        recorder.observe(&round(hour + MINUTE_MS + 1_000, Some(30_000)));
        recorder.observe(&round(hour + 2 * MINUTE_MS + 1_000, None));
        recorder.observe(&round(hour + HOUR_MS + 1_000, Some(5_000)));
        recorder.flush();
        let db = HistoryDb::open(&path).unwrap();
        let two_minutes = db.buckets(hour, hour + HOUR_MS, 2 * MINUTE_MS).unwrap();
        assert_eq!(two_minutes.keys().collect::<Vec<_>>(), ["a", "b"]);
        let bucket = |start_ms, sent, answered, rtt_sum_us| Bucket {
            start_ms,
            sent,
            answered,
            rtt_sum_us,
        };
        assert_eq!(
            two_minutes["a"],
            [
                bucket(hour, 2, 2, 40_000),
                bucket(hour + 2 * MINUTE_MS, 1, 0, 0)
            ]
        );
        // Whole hours: from the hourly rows, the window's second hour too.
        let hours = db.buckets(hour, hour + 2 * HOUR_MS, HOUR_MS).unwrap();
        assert_eq!(
            hours["b"],
            [
                bucket(hour, 3, 2, 40_000),
                bucket(hour + HOUR_MS, 1, 1, 5_000)
            ]
        );
        recorder.stop();
    }

    #[test]
    fn without_any_transition_the_link_was_up_from_the_first_probe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let recorder = Recorder::start(path.clone(), &HistoryConfig::default());
        let now = SystemClock.wall_ms();
        let minute = now - now % MINUTE_MS - 10 * MINUTE_MS;
        recorder.observe(&round(minute + 1_000, Some(10_000)));
        recorder.flush();
        let db = HistoryDb::open(&path).unwrap();
        let since = minute - 5 * MINUTE_MS;
        let until = minute + 5 * MINUTE_MS;
        let stats = db.stats(since, until).unwrap();
        assert_eq!(
            (stats.up_ms, stats.unknown_ms, stats.up_share),
            (5 * MINUTE_MS, 5 * MINUTE_MS, Some(1.0))
        );
        // Once a transition is recorded, the states are the transitions'.
        recorder.observe(&wan(minute + 2 * MINUTE_MS, WanState::Up, WanState::Sick));
        recorder.flush();
        let stats = db.stats(since, until).unwrap();
        assert_eq!(stats.sick_ms, 3 * MINUTE_MS);
        recorder.stop();
    }

    #[test]
    fn a_locked_database_is_done_without_and_events_still_numbered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        drop(db::open_writer(&path).unwrap());
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        let recorder = Recorder::start(path.clone(), &HistoryConfig::default());
        let mut events = recorder.subscribe();
        recorder.observe(&wan(1_000, WanState::Up, WanState::Sick));
        recorder.observe(&wan(2_000, WanState::Sick, WanState::Up));
        assert_eq!(events.blocking_recv().unwrap().id, 1);
        assert_eq!(events.blocking_recv().unwrap().id, 2);
        recorder.stop();
        other.execute_batch("COMMIT").unwrap();
        let count: i64 = other
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0);
    }

    #[test]
    fn a_corrupt_database_is_moved_aside_and_a_fresh_one_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        std::fs::write(&path, b"garbage, not SQLite".repeat(500)).unwrap();
        let recorder = Recorder::start(path.clone(), &HistoryConfig::default());
        let mut events = recorder.subscribe();
        recorder.observe(&wan(1_000, WanState::Up, WanState::Sick));
        assert_eq!(events.blocking_recv().unwrap().id, 1);
        recorder.stop();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("history.db.corrupt-")),
            "{names:?}"
        );
        let db = HistoryDb::open(&path).unwrap();
        assert_eq!(db.events("wan", 0, 2_000, 10).unwrap().len(), 1);
    }

    #[test]
    fn an_unusable_directory_is_done_without() {
        let dir = tempfile::tempdir().unwrap();
        // Its "directory" is a file: it cannot be created.
        std::fs::write(dir.path().join("state"), b"").unwrap();
        let path = dir.path().join("state/history.db");
        let recorder = Recorder::start(path.clone(), &HistoryConfig::default());
        let mut events = recorder.subscribe();
        recorder.observe(&round(1_000, Some(5)));
        recorder.observe(&wan(1_000, WanState::Up, WanState::Sick));
        assert_eq!(events.blocking_recv().unwrap().id, 1);
        recorder.flush();
        recorder.stop();
        assert!(!path.exists());
    }

    #[test]
    fn pruning_keeps_what_is_within_its_retention() {
        let dir = tempfile::tempdir().unwrap();
        let conn = db::open_writer(&dir.path().join("history.db")).unwrap();
        const DAY: Millis = 86_400_000;
        let now = 100 * DAY;
        conn.execute_batch(&format!(
            "INSERT INTO targets (id, name) VALUES (1, 'a');
             INSERT INTO probes VALUES ({old_raw}, 1, 1, 5), ({new_raw}, 1, 1, 5);
             INSERT INTO probe_minutes VALUES ({old_agg}, 1, 1, 1, 5, 5, 5, x''), ({old_raw}, 1, 1, 1, 5, 5, 5, x'');
             INSERT INTO probe_hours VALUES ({old_agg}, 1, 1, 1, 5, 5, 5, x''), ({old_raw}, 1, 1, 1, 5, 5, 5, x'');
             INSERT INTO events (at_ms, kind, data) VALUES ({old_agg}, 'wan', '{{}}'), ({old_raw}, 'wan', '{{}}');",
            // Just past the 7 days of raw rows and the 30 days of aggregates.
            old_raw = now - 7 * DAY - 1,
            new_raw = now - 7 * DAY,
            old_agg = now - 30 * DAY - 1,
        ))
        .unwrap();
        let deleted = prune(
            &conn,
            now,
            Duration::from_secs(7 * 86_400),
            Duration::from_secs(30 * 86_400),
        )
        .unwrap();
        assert_eq!(deleted, 4);
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(
            ["probes", "probe_minutes", "probe_hours", "events"].map(count),
            [1, 1, 1, 1]
        );
    }
}
