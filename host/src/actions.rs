//! Host actions: what plugins can ask the world to do.
//!
//! Plugins reach the world only through [`Actions`], which applies the limits
//! that no plugin may exceed (the global cap on power cycles per hour) and
//! keeps a journal of every request for the status file. The actual work is
//! done by a [`PowerSwitch`] and a [`Notifier`]: real drivers in the daemon,
//! [`DryRun`] when there is nothing to drive or `--dry-run` is given, and a
//! simulated world in the simulator.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::state::{Millis, WanState};

/// Switches a device off and lets it come back by itself.
pub trait PowerSwitch: Send + Sync {
    /// Switches `device` off for `off_seconds`, using the device's own
    /// flip-back timer; returns once the device has confirmed.
    fn power_cycle(&self, device: &str, off_seconds: u32) -> Result<(), String>;
}

/// Delivers a notification to people.
pub trait Notifier: Send + Sync {
    fn notify(&self, notification: &Notification) -> Result<(), String>;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub title: String,
    pub body: String,
    /// 1 (min) to 5 (urgent), as in ntfy.
    pub priority: u8,
    /// When the plugin raised it (it may be delivered much later).
    pub raised_at_ms: Millis,
    /// The plugin that raised it.
    pub plugin: String,
    /// The WAN state when it was raised, and since when.
    pub wan_state: WanState,
    pub wan_since_ms: Millis,
}

/// Performs nothing and logs what it would have done.
#[derive(Clone, Copy, Debug, Default)]
pub struct DryRun;

impl PowerSwitch for DryRun {
    fn power_cycle(&self, device: &str, off_seconds: u32) -> Result<(), String> {
        tracing::info!(
            device,
            off_seconds,
            "would power-cycle {device} for {off_seconds} s"
        );
        Ok(())
    }
}

impl Notifier for DryRun {
    fn notify(&self, n: &Notification) -> Result<(), String> {
        tracing::info!(title = %n.title, priority = n.priority, "would notify: {}: {}", n.title, n.body);
        Ok(())
    }
}

/// One request a plugin made, as the status file shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub at_ms: Millis,
    pub plugin: String,
    #[serde(flatten)]
    pub action: Action,
    /// "done" (power cycles), "queued" (notifications), "dry-run", or why
    /// it was refused or failed.
    pub outcome: String,
}

/// Requests of one plugin refused for want of a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalCount {
    pub plugin: String,
    pub count: u64,
    pub last_at_ms: Millis,
    pub last_reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    PowerCycle { device: String, off_seconds: u32 },
    Notify { title: String, priority: u8 },
}

/// The global safety cap: at most `max` power cycles in any hour, whatever
/// the plugins ask for. Pure; time comes in as an argument.
#[derive(Clone, Debug)]
pub struct CycleCap {
    max: usize,
    recent: VecDeque<Millis>,
}

const HOUR_MS: Millis = 3_600_000;

/// How a refusal by the cap begins, for callers that answer it apart from
/// a failure (the API's 429).
pub const CAP_REFUSAL: &str = "refused: the host's safety cap";

impl CycleCap {
    pub fn new(max_per_hour: usize) -> Self {
        CycleCap {
            max: max_per_hour,
            recent: VecDeque::new(),
        }
    }

    /// Admits one more cycle at `now`, or says why not.
    pub fn admit(&mut self, now: Millis) -> Result<(), String> {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= HOUR_MS)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max {
            return Err(format!(
                "{CAP_REFUSAL} of {} power cycles per hour is reached",
                self.max
            ));
        }
        self.recent.push_back(now);
        Ok(())
    }
}

/// How many requests the journal keeps for the status file.
const JOURNAL_LEN: usize = 32;

/// Told of each journalled request (see [`Actions::on_record`]).
type RecordHook = Box<dyn Fn(&ActionRecord) + Send + Sync>;

/// The gateway between plugins and the world, shared by all plugins.
pub struct Actions {
    /// None: power cycles are a dry run.
    switch: Option<Arc<dyn PowerSwitch>>,
    /// None: notifications are a dry run.
    notifier: Option<Arc<dyn Notifier>>,
    clock: Arc<dyn Clock>,
    cap: Mutex<CycleCap>,
    journal: Mutex<VecDeque<ActionRecord>>,
    refusals: Mutex<Vec<RefusalCount>>,
    /// The WAN state and since when, as the daemon last reported it, to
    /// give notifications their context.
    wan: Mutex<(WanState, Millis)>,
    /// Counts journal entries, so the daemon can tell cheaply that there is
    /// something new to show in the status file.
    generation: AtomicU64,
    /// Power cycles performed (or, in a dry run, that would have been).
    cycles_done: AtomicU32,
    /// Told of every journalled request as it happens (the daemon's
    /// observers: history, event stream, metrics).
    on_record: OnceLock<RecordHook>,
    /// Where the cap's cycles are kept across restarts (see
    /// [`Actions::keep_cap_in`]).
    cap_file: Mutex<Option<(PathBuf, crate::fsutil::Failing)>>,
}

impl Actions {
    /// `None` for the switch or the notifier: that kind of action is a dry
    /// run, logged as what it would do and journalled as "dry-run". Limits
    /// still apply, so a dry run shows what the real one would do.
    pub fn new(
        switch: Option<Arc<dyn PowerSwitch>>,
        notifier: Option<Arc<dyn Notifier>>,
        clock: Arc<dyn Clock>,
        max_cycles_per_hour: usize,
    ) -> Self {
        Actions {
            switch,
            notifier,
            clock,
            cap: Mutex::new(CycleCap::new(max_cycles_per_hour)),
            journal: Mutex::new(VecDeque::new()),
            refusals: Mutex::new(Vec::new()),
            wan: Mutex::new((WanState::Up, 0)),
            generation: AtomicU64::new(0),
            cycles_done: AtomicU32::new(0),
            on_record: OnceLock::new(),
            cap_file: Mutex::new(None),
        }
    }

    /// Keeps the cycles the safety cap counts in `path` (their times on the
    /// wall clock, a JSON array), written before each cycle, and takes
    /// back those it holds: a daemon killed right after a cycle, before
    /// its status file showed it, must not get a fresh cap. The status
    /// file's journal (see [`Actions::resume`]) stands in when there is no
    /// such file yet; an unreadable one is logged and the journal kept.
    pub fn keep_cap_in(&self, path: PathBuf) {
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<Millis>>(&bytes) {
                Ok(walls) => {
                    let mut cap = lock(&self.cap);
                    cap.recent = walls
                        .into_iter()
                        .map(|wall| crate::clock::timeline_of(&*self.clock, wall))
                        .collect();
                    cap.recent.make_contiguous().sort_unstable();
                }
                Err(e) => tracing::warn!(
                    "{} is not valid ({e}): the safety cap counts the cycles of the status file",
                    path.display()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                "cannot read {}: {e}: the safety cap counts the cycles of the status file",
                path.display()
            ),
        }
        *lock(&self.cap_file) = Some((path, crate::fsutil::Failing::default()));
    }

    /// Writes the cap's cycles to its file, if it has one; a failure is
    /// logged once per change and the cycle goes on.
    fn save_cap(&self, recent: &[Millis]) {
        let mut file = lock(&self.cap_file);
        let Some((path, failing)) = file.as_mut() else {
            return;
        };
        let walls: Vec<Millis> = recent
            .iter()
            .map(|&at| crate::clock::wall_of(&*self.clock, at))
            .collect();
        let json = serde_json::to_vec(&walls).unwrap_or_default();
        failing.outcome(
            format_args!("the safety cap's record {}", path.display()),
            crate::fsutil::write_atomic(path, &json),
        );
    }

    /// Performs nothing at all (see [`Actions::new`]).
    pub fn dry_run(clock: Arc<dyn Clock>, max_cycles_per_hour: usize) -> Self {
        Actions::new(None, None, clock, max_cycles_per_hour)
    }

    /// Has `f` called with every request journalled from now on, on the
    /// thread that made it; `f` must not block. Set once: a second call is
    /// ignored.
    pub fn on_record(&self, f: impl Fn(&ActionRecord) + Send + Sync + 'static) {
        let _ = self.on_record.set(Box::new(f));
    }

    /// Tells the gateway the WAN state (the daemon does on every change).
    pub fn set_wan_state(&self, state: WanState, since_ms: Millis) {
        *lock(&self.wan) = (state, since_ms);
    }

    /// Power-cycles `device` on behalf of `plugin`. The grant has already
    /// been checked by the caller; the safety cap is checked here.
    ///
    /// The cap's slot is taken before the call and the lock released, so a
    /// cycle that takes seconds (the plug confirms its flip-back) holds up
    /// no other plugin. A failed attempt keeps its slot: a request that
    /// timed out may still have reached the plug and switched the modem
    /// off, and the cap exists to bound what the modem goes through.
    pub fn power_cycle(&self, plugin: &str, device: &str, off_seconds: u32) -> Result<(), String> {
        let now = self.clock.now_ms();
        let switch: &dyn PowerSwitch = self.switch.as_deref().unwrap_or(&DryRun);
        let admitted = {
            let mut cap = lock(&self.cap);
            cap.admit(now)
                .map(|()| cap.recent.iter().copied().collect::<Vec<_>>())
        };
        // On disk before the modem goes dark.
        let result = admitted.and_then(|recent| {
            self.save_cap(&recent);
            switch.power_cycle(device, off_seconds)
        });
        if result.is_ok() {
            self.cycles_done.fetch_add(1, Ordering::AcqRel);
        }
        let action = Action::PowerCycle {
            device: device.to_owned(),
            off_seconds,
        };
        self.record(now, plugin, action, &result);
        result
    }

    /// Takes back the journal of the process before a restart (from the
    /// status file): it stays in view, and the cycles it did count toward
    /// the safety cap, so that a daemon restarted in a loop cannot cycle
    /// the modem more often than the cap allows.
    pub fn resume(&self, journal: Vec<ActionRecord>) {
        let mut cap = lock(&self.cap);
        for record in &journal {
            if matches!(record.action, Action::PowerCycle { .. }) && record.outcome == "done" {
                cap.recent.push_back(record.at_ms);
            }
        }
        cap.recent.make_contiguous().sort_unstable();
        let mut kept = lock(&self.journal);
        let room = JOURNAL_LEN.saturating_sub(kept.len());
        let skip = journal.len().saturating_sub(room);
        for (i, record) in journal.into_iter().skip(skip).enumerate() {
            kept.insert(i, record);
        }
    }

    /// Notifies people on behalf of `plugin` (grant already checked).
    pub fn notify(
        &self,
        plugin: &str,
        title: &str,
        body: &str,
        priority: u8,
    ) -> Result<(), String> {
        let now = self.clock.now_ms();
        let priority = priority.clamp(1, 5);
        let (wan_state, wan_since_ms) = *lock(&self.wan);
        let notification = Notification {
            title: title.to_owned(),
            body: body.to_owned(),
            priority,
            raised_at_ms: now,
            plugin: plugin.to_owned(),
            wan_state,
            wan_since_ms,
        };
        let notifier: &dyn Notifier = self.notifier.as_deref().unwrap_or(&DryRun);
        let result = notifier.notify(&notification);
        let action = Action::Notify {
            title: title.to_owned(),
            priority,
        };
        self.record(now, plugin, action, &result);
        result
    }

    /// How many power cycles have been performed since the start.
    pub fn cycles_done(&self) -> u32 {
        self.cycles_done.load(Ordering::Acquire)
    }

    /// Changes whenever a request is journalled.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The most recent requests, oldest first.
    pub fn recent(&self) -> Vec<ActionRecord> {
        lock(&self.journal).iter().cloned().collect()
    }

    /// Counts a request that was refused before it reached this gateway
    /// (a missing grant). Not journalled: a plugin can ask without end, and
    /// its refusals must never push real actions out of the journal. The
    /// status file shows a count per plugin instead.
    pub fn record_refusal(&self, plugin: &str, reason: &str) {
        let at_ms = self.clock.now_ms();
        let mut refusals = lock(&self.refusals);
        let count = match refusals.iter_mut().find(|r| r.plugin == plugin) {
            Some(count) => count,
            None => {
                refusals.push(RefusalCount {
                    plugin: plugin.to_owned(),
                    count: 0,
                    last_at_ms: at_ms,
                    last_reason: String::new(),
                });
                refusals.last_mut().expect("just pushed")
            }
        };
        count.count += 1;
        count.last_at_ms = at_ms;
        if count.last_reason != reason {
            reason.clone_into(&mut count.last_reason);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Refused requests per plugin, in the order the plugins first asked.
    pub fn refusals(&self) -> Vec<RefusalCount> {
        lock(&self.refusals).clone()
    }

    fn record(&self, at_ms: Millis, plugin: &str, action: Action, result: &Result<(), String>) {
        let outcome = match (result, &action) {
            (Err(e), _) => e.clone(),
            (Ok(()), Action::PowerCycle { .. }) if self.switch.is_none() => "dry-run".to_owned(),
            (Ok(()), Action::Notify { .. }) if self.notifier.is_none() => "dry-run".to_owned(),
            (Ok(()), Action::PowerCycle { .. }) => "done".to_owned(),
            // Notifiers queue: delivery happens later, when the WAN allows.
            (Ok(()), Action::Notify { .. }) => "queued".to_owned(),
        };
        let record = ActionRecord {
            at_ms,
            plugin: plugin.to_owned(),
            action,
            outcome,
        };
        if let Some(f) = self.on_record.get() {
            f(&record);
        }
        let mut journal = lock(&self.journal);
        if journal.len() == JOURNAL_LEN {
            journal.pop_front();
        }
        journal.push_back(record);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the
/// journal and the cap stay meaningful whatever a caller did.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_refuses_past_its_maximum_within_an_hour() {
        let mut cap = CycleCap::new(2);
        assert!(cap.admit(0).is_ok());
        assert!(cap.admit(1_000).is_ok());
        assert_eq!(
            cap.admit(2_000),
            Err("refused: the host's safety cap of 2 power cycles per hour is reached".into())
        );
        // The first cycle leaves the window exactly one hour after it.
        assert!(cap.admit(HOUR_MS - 1).is_err());
        assert!(cap.admit(HOUR_MS).is_ok());
    }

    struct Fixed(Millis);
    impl Clock for Fixed {
        fn now_ms(&self) -> Millis {
            self.0
        }
    }

    #[test]
    fn journal_records_outcomes_and_refusals() {
        let actions = Actions::dry_run(Arc::new(Fixed(42)), 1);
        assert!(actions.power_cycle("p", "modem", 10).is_ok());
        assert!(actions.power_cycle("p", "modem", 10).is_err());
        let recent = actions.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].outcome, "dry-run");
        assert_eq!(recent[0].at_ms, 42);
        assert!(recent[1].outcome.contains("safety cap"));
    }

    /// A switch whose first cycle waits until the test lets it go.
    struct Slow {
        entered: std::sync::mpsc::SyncSender<()>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }
    impl PowerSwitch for Slow {
        fn power_cycle(&self, _: &str, _: u32) -> Result<(), String> {
            let _ = self.entered.send(());
            let _ = lock(&self.release).recv();
            Err("the plug did not confirm".into())
        }
    }

    #[test]
    fn a_slow_cycle_holds_up_no_other_request_and_a_failed_one_keeps_its_slot() {
        let (entered_tx, entered) = std::sync::mpsc::sync_channel(1);
        let (release_tx, release) = std::sync::mpsc::channel();
        let switch = Arc::new(Slow {
            entered: entered_tx,
            release: Mutex::new(release),
        });
        let actions = Arc::new(Actions::new(Some(switch), None, Arc::new(Fixed(0)), 1));
        let first = {
            let actions = Arc::clone(&actions);
            std::thread::spawn(move || actions.power_cycle("a", "modem", 10))
        };
        entered.recv().unwrap();
        // The first cycle is in the plug's hands: the second is judged by
        // the cap at once, not after the first returns.
        let (done_tx, done) = std::sync::mpsc::channel();
        let second = {
            let actions = Arc::clone(&actions);
            std::thread::spawn(move || done_tx.send(actions.power_cycle("b", "modem", 10)))
        };
        let verdict = done
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second request waited for the first one's plug");
        assert!(verdict.unwrap_err().contains("safety cap"));
        release_tx.send(()).unwrap();
        assert_eq!(
            first.join().unwrap(),
            Err("the plug did not confirm".into())
        );
        second.join().unwrap().unwrap();
        // The failed attempt still counts.
        assert!(
            actions
                .power_cycle("a", "modem", 10)
                .unwrap_err()
                .contains("safety cap")
        );
        assert_eq!(actions.cycles_done(), 0);
    }

    #[test]
    fn refusals_are_counted_apart_from_the_journal() {
        let actions = Actions::dry_run(Arc::new(Fixed(42)), 4);
        assert!(actions.power_cycle("good", "modem", 10).is_ok());
        for _ in 0..(JOURNAL_LEN * 10) {
            actions.record_refusal("hostile", "not granted");
        }
        let recent = actions.recent();
        assert_eq!(recent.len(), 1, "{recent:?}");
        assert_eq!(recent[0].plugin, "good");
        let refusals = actions.refusals();
        assert_eq!(refusals.len(), 1);
        assert_eq!(
            (refusals[0].plugin.as_str(), refusals[0].count),
            ("hostile", JOURNAL_LEN as u64 * 10)
        );
    }

    #[test]
    fn cycles_from_before_a_restart_count_toward_the_cap() {
        let actions = Actions::dry_run(Arc::new(Fixed(HOUR_MS + 10)), 2);
        let done = |at_ms| ActionRecord {
            at_ms,
            plugin: "p".into(),
            action: Action::PowerCycle {
                device: "modem".into(),
                off_seconds: 10,
            },
            outcome: "done".into(),
        };
        // One within the hour, one older.
        actions.resume(vec![done(5), done(HOUR_MS)]);
        assert_eq!(actions.recent().len(), 2);
        assert!(actions.power_cycle("p", "modem", 10).is_ok());
        assert!(actions.power_cycle("p", "modem", 10).is_err());
    }
}
