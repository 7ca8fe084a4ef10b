//! `log`: plugin log lines into the host's `tracing` log, tagged
//! `plugin=NAME`, cut to a sane length and rate-limited, so that a chatty or
//! hostile plugin cannot flood the log.

use super::bindings::wanwatch::policy::log::{Host, Level};
use super::{PluginState, shown};
use crate::state::Millis;

/// Longest message kept, in bytes; the rest is cut.
const MAX_MESSAGE: usize = 1024;
/// Lines a plugin may log in a burst...
const BURST: u32 = 50;
/// ...and the pace it may keep up after that: one line per this many ms.
const REFILL_MS: Millis = 100;

/// How often, at most, a plugin's refused requests are logged: one line
/// then says how many more were refused since.
const REFUSALS_EVERY_MS: Millis = 60_000;

/// A token bucket of log lines, timed by the host clock (so a simulation
/// limits the same way, in virtual time).
#[derive(Debug)]
pub(in crate::plugin) struct LogBudget {
    tokens: u32,
    refilled_at: Option<Millis>,
    /// Lines dropped since the last one logged.
    suppressed: u64,
    /// When a refusal was last logged.
    refusal_logged_at: Option<Millis>,
    /// Refusals not logged since then.
    refusals_unsaid: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            tokens: BURST,
            refilled_at: None,
            suppressed: 0,
            refusal_logged_at: None,
            refusals_unsaid: 0,
        }
    }
}

impl LogBudget {
    /// Whether a line may be logged at `now`; when it may, also how many were
    /// dropped before it.
    fn admit(&mut self, now: Millis) -> Option<u64> {
        let since = self.refilled_at.get_or_insert(now);
        let earned = now.saturating_sub(*since) / REFILL_MS;
        if earned > 0 {
            self.tokens =
                u32::try_from(earned).map_or(BURST, |e| self.tokens.saturating_add(e).min(BURST));
            *since += earned * REFILL_MS;
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }

    /// Whether a refused request may be logged at `now`: at most one a
    /// [`REFUSALS_EVERY_MS`], and within the log budget. When it may, also
    /// how many refusals went unsaid before it.
    fn admit_refusal(&mut self, now: Millis) -> Option<u64> {
        let due = self
            .refusal_logged_at
            .is_none_or(|at| now.saturating_sub(at) >= REFUSALS_EVERY_MS);
        if !due || self.admit(now).is_none() {
            self.refusals_unsaid += 1;
            return None;
        }
        self.refusal_logged_at = Some(now);
        Some(std::mem::take(&mut self.refusals_unsaid))
    }
}

impl PluginState {
    /// Logs a request refused for want of a grant, within the plugin's log
    /// budget (see [`LogBudget::admit_refusal`]), and counts it for the
    /// status file. A plugin with no grants asking in a loop costs a line a
    /// minute, not a line per request.
    pub(super) fn refused(&mut self, reason: &str) {
        let plugin = &self.plugin;
        plugin.host.actions.record_refusal(&plugin.name, reason);
        let now = plugin.host.clock.now_ms();
        let Some(unsaid) = self.kept.log.admit_refusal(now) else {
            return;
        };
        self.blocking(|state| {
            let plugin = state.plugin.name.as_str();
            match unsaid {
                0 => tracing::warn!(plugin, "{reason}"),
                n => tracing::warn!(
                    plugin,
                    "{reason} ({n} more request(s) refused since the last one logged)"
                ),
            }
        });
    }
}

impl Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        let now = self.plugin.host.clock.now_ms();
        let Some(suppressed) = self.kept.log.admit(now) else {
            return;
        };
        // A subscriber writing to a full pipe can block: not the plugin's time.
        self.blocking(|state| {
            let plugin = state.plugin.name.as_str();
            if suppressed > 0 {
                tracing::warn!(
                    plugin,
                    "{suppressed} log line(s) from this plugin dropped: it logs too fast"
                );
            }
            let message = shown(&message, MAX_MESSAGE);
            match level {
                Level::Trace => tracing::trace!(plugin, "{message}"),
                Level::Debug => tracing::debug!(plugin, "{message}"),
                Level::Info => tracing::info!(plugin, "{message}"),
                Level::Warn => tracing::warn!(plugin, "{message}"),
                Level::Error => tracing::error!(plugin, "{message}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_a_burst_then_a_steady_pace() {
        let mut budget = LogBudget::default();
        for _ in 0..BURST {
            assert_eq!(budget.admit(1_000), Some(0));
        }
        assert_eq!(budget.admit(1_000), None);
        assert_eq!(budget.admit(1_000 + REFILL_MS - 1), None);
        // One line earned; it reports the two dropped before it.
        assert_eq!(budget.admit(1_000 + REFILL_MS), Some(2));
        assert_eq!(budget.admit(1_000 + REFILL_MS), None);
        // A long pause refills the bucket, but only up to the burst.
        for _ in 0..BURST {
            assert!(budget.admit(1_000_000).is_some());
        }
        assert_eq!(budget.admit(1_000_000), None);
    }

    #[test]
    fn refusals_are_logged_once_a_minute_with_a_count() {
        let mut budget = LogBudget::default();
        assert_eq!(budget.admit_refusal(1_000), Some(0));
        for i in 0..2_345 {
            assert_eq!(budget.admit_refusal(1_000 + i), None);
        }
        // Refusals took no log tokens while unsaid.
        assert_eq!(budget.tokens, BURST - 1);
        assert_eq!(budget.admit_refusal(1_000 + REFUSALS_EVERY_MS), Some(2_345));
    }
}
