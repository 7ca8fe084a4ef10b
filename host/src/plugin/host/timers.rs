//! `timers`: one-shot named timers, due at a time of the host clock.
//!
//! The host only keeps the due times; whoever drives the plugin (the
//! [`Runner`](crate::plugin::Runner) in real time, the simulator in virtual
//! time) asks for the due ones and calls `on-timer`.
//!
//! With a directory to keep them in (the daemon's), timers outlive the
//! process: saved as `<dir>/<plugin>.timers.json`, each with its due time on
//! the wall clock (the only clock two runs of the daemon share), at the end
//! of every callback that changed them. A restart during an outage must not
//! end a policy's retries; a timer that fell due while the daemon was not
//! running fires once, at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::bindings::wanwatch::policy::timers::Host;
use super::{PluginState, shown};
use crate::clock::{self, Clock};
use crate::fsutil::write_atomic;
use crate::state::Millis;

/// Timers per plugin (as promised in the .wit).
const MAX_TIMERS: usize = 32;
/// Longest timer name, in bytes.
const MAX_NAME: usize = 128;
/// The shortest wait a timer can have (as promised in the .wit): a WAN
/// policy has nothing to do more often than the probe rounds, and a timer
/// re-armed at 0 ms from its own callback would otherwise spin a core.
pub(in crate::plugin) const MIN_TIMER_MS: Millis = 1_000;
/// Timer callbacks a plugin may have in a burst (all its timers at once)...
const FIRE_BURST: u32 = MAX_TIMERS as u32;
/// ...and the pace it may keep up after that: one per this many ms. Past
/// it, due timers wait, and the storm is counted as a fault.
const FIRE_REFILL_MS: Millis = 1_000;

#[derive(Debug)]
pub(in crate::plugin) struct Timers {
    due: BTreeMap<String, Millis>,
    /// Where they are saved, if anywhere.
    file: Option<PathBuf>,
    /// Changed since last saved.
    dirty: bool,
    /// Timer callbacks the plugin may still have now.
    tokens: u32,
    refilled_at: Option<Millis>,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            due: BTreeMap::new(),
            file: None,
            dirty: false,
            tokens: FIRE_BURST,
            refilled_at: None,
        }
    }
}

impl Timers {
    /// Loads the timers of `plugin` saved in `dir`, or none. A file that
    /// cannot be read or parsed loses the timers, with a warning: a plugin
    /// must start whatever became of its timers.
    pub fn load(plugin: &str, dir: Option<&Path>, clock: &dyn Clock) -> Timers {
        let Some(dir) = dir else {
            return Timers::default();
        };
        let file = dir.join(format!("{plugin}.timers.json"));
        let saved = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice::<BTreeMap<String, Millis>>(&bytes)
                .map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e.to_string()),
        };
        let saved = saved.unwrap_or_else(|e| {
            tracing::warn!(
                plugin,
                "cannot read the plugin's timers from {} ({e}): starting without them",
                file.display()
            );
            BTreeMap::new()
        });
        Timers {
            due: saved
                .into_iter()
                .take(MAX_TIMERS)
                .filter(|(name, _)| name.len() <= MAX_NAME)
                .map(|(name, wall)| (name, clock::timeline_of(clock, wall)))
                .collect(),
            file: Some(file),
            ..Timers::default()
        }
    }

    fn set(&mut self, name: String, at: Millis) -> Result<(), String> {
        if name.len() > MAX_NAME {
            return Err(format!(
                "timer name `{}` is too long: at most {MAX_NAME} bytes",
                shown(&name, 32)
            ));
        }
        if self.due.len() >= MAX_TIMERS && !self.due.contains_key(&name) {
            return Err(format!(
                "cannot arm timer `{}`: {MAX_TIMERS} timers are armed already, the most a plugin may have",
                shown(&name, MAX_NAME)
            ));
        }
        self.due.insert(name, at);
        self.dirty = true;
        Ok(())
    }

    fn cancel(&mut self, name: &str) {
        self.dirty |= self.due.remove(name).is_some();
    }

    /// When the driver should next look for due timers: the earliest due
    /// time, or later if the plugin has used up its timer callbacks.
    pub fn next(&self) -> Option<Millis> {
        let earliest = self.due.values().min().copied()?;
        match (self.tokens, self.refilled_at) {
            (0, Some(at)) => Some(earliest.max(at + FIRE_REFILL_MS)),
            _ => Some(earliest),
        }
    }

    /// Removes and returns the timers due at or before `now`, earliest
    /// first, ties by name, as many as the plugin's pace allows; and whether
    /// that used up the pace (a timer storm: from now on, due timers wait).
    pub fn take_due(&mut self, now: Millis) -> (Vec<String>, bool) {
        self.refill(now);
        let mut due: Vec<(Millis, String)> = self
            .due
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(name, &at)| (at, name.clone()))
            .collect();
        due.sort();
        let allowed = (self.tokens as usize).min(due.len());
        due.truncate(allowed);
        self.tokens -= allowed as u32;
        let stormed = allowed > 0 && self.tokens == 0;
        for (_, name) in &due {
            self.due.remove(name);
        }
        self.dirty |= !due.is_empty();
        (due.into_iter().map(|(_, name)| name).collect(), stormed)
    }

    fn refill(&mut self, now: Millis) {
        let since = self.refilled_at.get_or_insert(now);
        let earned = now.saturating_sub(*since) / FIRE_REFILL_MS;
        if earned > 0 {
            self.tokens = u32::try_from(earned).map_or(FIRE_BURST, |e| {
                self.tokens.saturating_add(e).min(FIRE_BURST)
            });
            *since += earned * FIRE_REFILL_MS;
        }
    }

    /// Takes the pending timers of a predecessor (the same plugin loaded
    /// again with another config).
    pub fn take_over(&mut self, from: &mut Timers) {
        self.due = std::mem::take(&mut from.due);
        self.dirty = true;
    }

    /// Saves the timers if they changed since last saved, with their due
    /// times on the wall clock. A failure is returned to be shown in the
    /// plugin's health; the next change tries again.
    pub fn save(&mut self, clock: &dyn Clock) -> Result<(), String> {
        let Some(file) = self.file.as_ref().filter(|_| self.dirty) else {
            return Ok(());
        };
        let wall: BTreeMap<&str, Millis> = self
            .due
            .iter()
            .map(|(name, &at)| (name.as_str(), clock::wall_of(clock, at)))
            .collect();
        let json = serde_json::to_vec(&wall).map_err(|e| e.to_string())?;
        write_atomic(file, &json)
            .map_err(|e| format!("cannot save the timers to {}: {e}", file.display()))?;
        self.dirty = false;
        Ok(())
    }
}

impl Host for PluginState {
    fn set(&mut self, name: String, after_ms: u64) -> Result<(), String> {
        let after_ms = after_ms.max(MIN_TIMER_MS);
        let at = self.plugin.host.clock.now_ms().saturating_add(after_ms);
        self.kept.timers.set(name, at)
    }

    fn cancel(&mut self, name: String) {
        self.kept.timers.cancel(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(taken: (Vec<String>, bool)) -> Vec<String> {
        taken.0
    }

    #[test]
    fn due_timers_come_out_in_time_order_then_by_name() {
        let mut timers = Timers::default();
        timers.set("late".into(), 300).unwrap();
        timers.set("b".into(), 100).unwrap();
        timers.set("a".into(), 100).unwrap();
        timers.set("first".into(), 50).unwrap();
        assert_eq!(timers.next(), Some(50));
        assert_eq!(names(timers.take_due(99)), ["first"]);
        assert_eq!(names(timers.take_due(200)), ["a", "b"]);
        assert_eq!(timers.next(), Some(300));
        assert!(names(timers.take_due(200)).is_empty());
    }

    #[test]
    fn setting_again_replaces_and_cancel_disarms() {
        let mut timers = Timers::default();
        timers.set("t".into(), 100).unwrap();
        timers.set("t".into(), 500).unwrap();
        assert!(names(timers.take_due(100)).is_empty());
        timers.cancel("t");
        timers.cancel("never armed");
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn at_most_32_timers_but_rearming_one_is_fine() {
        let mut timers = Timers::default();
        for i in 0..MAX_TIMERS {
            timers.set(format!("t{i}"), 1).unwrap();
        }
        let err = timers.set("one more".into(), 1).unwrap_err();
        assert!(err.contains("32 timers"), "{err}");
        assert!(timers.set("t0".into(), 2).is_ok());
        assert!(timers.set("x".repeat(MAX_NAME + 1), 1).is_err());
    }

    #[test]
    fn a_storm_of_timers_is_paced_and_reported() {
        let mut timers = Timers::default();
        // A timer re-armed from its own callback, as fast as it can be
        // (without the host's minimum, which `set` applies).
        let mut fired = 0;
        let mut stormed = false;
        let mut now = 0;
        timers.set("spin".into(), now).unwrap();
        while now < 60_000 {
            let (due, storm) = timers.take_due(now);
            for _ in &due {
                timers.set("spin".into(), now).unwrap();
            }
            fired += due.len();
            stormed |= storm;
            // The driver sleeps until `next`: never a busy loop.
            now = timers.next().unwrap().max(now + 1);
        }
        assert!(stormed);
        assert!(
            fired <= FIRE_BURST as usize + 60,
            "{fired} fired in a minute"
        );
    }

    struct Fixed(Millis);
    impl Clock for Fixed {
        fn now_ms(&self) -> Millis {
            self.0
        }
    }

    #[test]
    fn timers_are_saved_on_the_wall_clock_and_loaded_back() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Fixed(1_000);
        let mut timers = Timers::load("p", Some(dir.path()), &clock);
        timers.set("recheck".into(), 181_000).unwrap();
        timers.set("gone".into(), 5_000).unwrap();
        timers.cancel("gone");
        timers.save(&clock).unwrap();
        let saved = std::fs::read_to_string(dir.path().join("p.timers.json")).unwrap();
        assert_eq!(saved, r#"{"recheck":181000}"#);
        // Restarted later: the timer is still due at its time.
        let later = Fixed(200_000);
        let mut timers = Timers::load("p", Some(dir.path()), &later);
        assert_eq!(timers.next(), Some(181_000));
        assert_eq!(names(timers.take_due(200_000)), ["recheck"]);
        // Fired: gone from the file at the next save.
        timers.save(&later).unwrap();
        let timers = Timers::load("p", Some(dir.path()), &later);
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn an_unreadable_timer_file_loses_only_the_timers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.timers.json"), "{not json").unwrap();
        let timers = Timers::load("p", Some(dir.path()), &Fixed(0));
        assert_eq!(timers.next(), None);
    }
}
