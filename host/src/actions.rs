//! Host actions: what plugins can ask the world to do.
//!
//! Plugins reach the world only through [`Actions`], which applies the limits
//! that no plugin may exceed (the global cap on power cycles per hour) and
//! keeps a journal of every request for the status file. The actual work is
//! done by a [`PowerSwitch`] and a [`Notifier`]: real drivers in the daemon,
//! [`DryRun`] when there is nothing to drive or `--dry-run` is given, and a
//! simulated world in the simulator.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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
                "refused: the host's safety cap of {} power cycles per hour is reached",
                self.max
            ));
        }
        self.recent.push_back(now);
        Ok(())
    }
}

/// How many requests the journal keeps for the status file.
const JOURNAL_LEN: usize = 32;

/// The gateway between plugins and the world, shared by all plugins.
pub struct Actions {
    /// None: power cycles are a dry run.
    switch: Option<Arc<dyn PowerSwitch>>,
    /// None: notifications are a dry run.
    notifier: Option<Arc<dyn Notifier>>,
    clock: Arc<dyn Clock>,
    cap: Mutex<CycleCap>,
    journal: Mutex<VecDeque<ActionRecord>>,
    /// The WAN state and since when, as the daemon last reported it, to
    /// give notifications their context.
    wan: Mutex<(WanState, Millis)>,
    /// Counts journal entries, so the daemon can tell cheaply that there is
    /// something new to show in the status file.
    generation: AtomicU64,
    /// Power cycles performed (or, in a dry run, that would have been).
    cycles_done: AtomicU32,
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
            wan: Mutex::new((WanState::Up, 0)),
            generation: AtomicU64::new(0),
            cycles_done: AtomicU32::new(0),
        }
    }

    /// Performs nothing at all (see [`Actions::new`]).
    pub fn dry_run(clock: Arc<dyn Clock>, max_cycles_per_hour: usize) -> Self {
        Actions::new(None, None, clock, max_cycles_per_hour)
    }

    /// Tells the gateway the WAN state (the daemon does on every change).
    pub fn set_wan_state(&self, state: WanState, since_ms: Millis) {
        *lock(&self.wan) = (state, since_ms);
    }

    /// Power-cycles `device` on behalf of `plugin`. The grant has already
    /// been checked by the caller; the safety cap is checked here.
    pub fn power_cycle(&self, plugin: &str, device: &str, off_seconds: u32) -> Result<(), String> {
        let now = self.clock.now_ms();
        let switch: &dyn PowerSwitch = self.switch.as_deref().unwrap_or(&DryRun);
        let result = lock(&self.cap)
            .admit(now)
            .and_then(|()| switch.power_cycle(device, off_seconds));
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

    /// Journals a request that was refused before it reached this gateway
    /// (a missing grant), so that it shows in the status file too.
    pub fn record_refusal(&self, plugin: &str, action: Action, reason: &str) {
        self.record(self.clock.now_ms(), plugin, action, &Err(reason.to_owned()));
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
        let mut journal = lock(&self.journal);
        if journal.len() == JOURNAL_LEN {
            journal.pop_front();
        }
        journal.push_back(ActionRecord {
            at_ms,
            plugin: plugin.to_owned(),
            action,
            outcome,
        });
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
}
