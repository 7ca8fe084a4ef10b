//! `timers`: one-shot named timers, due at a time of the host clock.
//!
//! The host only keeps the due times; whoever drives the plugin (the
//! [`Runner`](crate::plugin::Runner) in real time, the simulator in virtual
//! time) asks for the due ones and calls `on-timer`.

use std::collections::BTreeMap;

use super::bindings::wanwatch::policy::timers::Host;
use super::{PluginState, shown};
use crate::state::Millis;

/// Timers per plugin (as promised in the .wit).
const MAX_TIMERS: usize = 32;
/// Longest timer name, in bytes.
const MAX_NAME: usize = 128;

#[derive(Debug, Default)]
pub(in crate::plugin) struct Timers {
    due: BTreeMap<String, Millis>,
}

impl Timers {
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
        Ok(())
    }

    fn cancel(&mut self, name: &str) {
        self.due.remove(name);
    }

    /// When the earliest timer is due.
    pub fn next(&self) -> Option<Millis> {
        self.due.values().min().copied()
    }

    /// Removes and returns the timers due at or before `now`, earliest
    /// first, ties by name.
    pub fn take_due(&mut self, now: Millis) -> Vec<String> {
        let mut due: Vec<(Millis, String)> = Vec::new();
        self.due.retain(|name, &mut at| {
            let fire = at <= now;
            if fire {
                due.push((at, name.clone()));
            }
            !fire
        });
        due.sort();
        due.into_iter().map(|(_, name)| name).collect()
    }
}

impl Host for PluginState {
    fn set(&mut self, name: String, after_ms: u64) -> Result<(), String> {
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

    #[test]
    fn due_timers_come_out_in_time_order_then_by_name() {
        let mut timers = Timers::default();
        timers.set("late".into(), 300).unwrap();
        timers.set("b".into(), 100).unwrap();
        timers.set("a".into(), 100).unwrap();
        timers.set("first".into(), 50).unwrap();
        assert_eq!(timers.next(), Some(50));
        assert_eq!(timers.take_due(99), ["first"]);
        assert_eq!(timers.take_due(200), ["a", "b"]);
        assert_eq!(timers.next(), Some(300));
        assert!(timers.take_due(200).is_empty());
    }

    #[test]
    fn setting_again_replaces_and_cancel_disarms() {
        let mut timers = Timers::default();
        timers.set("t".into(), 100).unwrap();
        timers.set("t".into(), 500).unwrap();
        assert!(timers.take_due(100).is_empty());
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
}
