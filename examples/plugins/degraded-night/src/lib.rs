//! `degraded-night`: power-cycles the modem when the link has stayed
//! degraded (too lossy or too slow, though up) for `degraded_for`, but only
//! at night, when a reboot disturbs nobody. A modem that degrades before it
//! hangs (a leaking DSL sync, a line card in trouble) is often cured by a
//! cycle, but by day that would cut every call in the house for a minute to
//! fix a link that still works. At most one cycle per degraded spell: if it
//! did not help, another will not either.
//!
//! Needs contract 0.2 (`on-link-quality`) and `[probe] degraded_loss` or
//! `degraded_rtt` in the config; without them the link is never degraded
//! and the plugin does nothing.
//!
//! Settings (`[plugins.degraded-night.settings]`):
//!
//! | setting         | default         | meaning |
//! |-----------------|-----------------|---------|
//! | `night`         | `"01:00-05:00"` | when a cycle is allowed, local time; may span midnight |
//! | `utc_offset`    | `"+00:00"`      | local time's offset from UTC (plugins have no time zone database) |
//! | `degraded_for`  | `"30m"`         | how long the link must have stayed degraded |
//! | `device`        | `"modem"`       | the device to cycle |
//! | `off_seconds`   | `10`            | how long it stays off |
//!
//! What it remembers is in the host's store and its one timer survives
//! restarts, so a daemon restarted during a spell neither forgets it nor
//! cycles twice.

// Natively only the unit tests use the arithmetic: the policy that calls
// it exists in the component alone.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use serde::Deserialize;
use wanwatch_plugin::{DaySpan, Seconds, UtcOffset, minute_of_day};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    night: DaySpan,
    utc_offset: UtcOffset,
    degraded_for: Seconds,
    device: String,
    off_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            night: DaySpan {
                start: 60,
                end: 5 * 60,
            },
            utc_offset: UtcOffset(0),
            degraded_for: Seconds(30 * 60),
            device: "modem".into(),
            off_seconds: 10,
        }
    }
}

const MINUTE_MS: u64 = 60_000;

/// What to do about a degraded spell, at some instant.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Cycle the modem now.
    Cycle,
    /// Look again in this many ms: the spell is not old enough, or it is
    /// not night yet.
    Wait(u64),
}

/// The step at `now_ms` for a spell that began at `since_ms` (both ms since
/// the Unix epoch): cycle once it is both `degraded_for` old and night.
fn step(settings: &Settings, since_ms: u64, now_ms: u64) -> Step {
    let old_at = since_ms.saturating_add(settings.degraded_for.as_millis());
    if now_ms < old_at {
        return Step::Wait(old_at - now_ms);
    }
    let minute = minute_of_day(now_ms, settings.utc_offset);
    match settings.night.until_start(minute) {
        0 => Step::Cycle,
        // To the start of the night's first minute.
        minutes => Step::Wait((minutes as u64 * MINUTE_MS).saturating_sub(now_ms % MINUTE_MS)),
    }
}

/// The policy itself: only in the component (the SDK's guest half exists
/// for wasm32 only); the arithmetic above is tested natively.
#[cfg(target_arch = "wasm32")]
mod policy {
    use std::time::Duration;

    use super::{Settings, Step, step};
    use wanwatch_plugin::{
        Policy, QualityChange, Result, Transition, human_duration, info, kv, now, power_cycle,
        timers,
    };

    struct DegradedNight;

    wanwatch_plugin::register_policy!(DegradedNight);

    /// The timer that looks at the spell again.
    const CHECK: &str = "check";
    /// When the current degraded spell began (ms since the epoch); absent
    /// while the link is normal.
    const SINCE: &str = "degraded_since_ms";
    /// Set once this spell's cycle is done (or under way).
    const CYCLED: &str = "cycled";
    /// Set while the WAN is down: a link that is down is another policy's
    /// business, and cycling for quality then would be a second cycle.
    const DOWN: &str = "wan_down";

    /// Cycles, or arms the timer for the next look.
    fn look() -> Result {
        let Some(since) = kv::get::<u64>(SINCE) else {
            return Ok(());
        };
        if kv::get::<bool>(CYCLED).is_some() || kv::get::<bool>(DOWN).is_some() {
            return Ok(());
        }
        let settings: Settings = wanwatch_plugin::settings()?;
        match step(&settings, since, now()) {
            Step::Wait(ms) => timers::set(CHECK, Duration::from_millis(ms.max(1000))),
            Step::Cycle => {
                info!(
                    "the link has been degraded for {} and it is night: cycling {}",
                    human_duration(now().saturating_sub(since)),
                    settings.device
                );
                // Before the cycle: the host saves the store ahead of it, so
                // a daemon killed during the cycle does not cycle again.
                kv::set(CYCLED, &true)?;
                power_cycle(&settings.device, settings.off_seconds)
            }
        }
    }

    impl Policy for DegradedNight {
        fn on_link_quality(change: QualityChange) -> Result {
            if !change.degraded {
                timers::cancel(CHECK);
                kv::delete(CYCLED)?;
                return kv::delete(SINCE);
            }
            // A spell already known (told again) keeps its start.
            if kv::get::<u64>(SINCE).is_none() {
                kv::set(SINCE, &change.at_ms)?;
            }
            look()
        }

        fn on_timer(name: String) -> Result {
            if name != CHECK {
                return Ok(());
            }
            look()
        }

        fn on_wan_down(_: Transition) -> Result {
            kv::set(DOWN, &true)
        }

        fn on_wan_up(_: Transition) -> Result {
            kv::delete(DOWN)?;
            look()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-10T00:00:00Z.
    const MIDNIGHT: u64 = 1_773_100_800_000;
    const HOUR: u64 = 60 * MINUTE_MS;

    fn settings(json: &str) -> Settings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn cycles_at_night_once_degraded_long_enough() {
        let s = settings(r#"{ "night": "01:00-05:00" }"#);
        // Degraded since 01:10: 30 minutes later, 01:40, it is night.
        let since = MIDNIGHT + HOUR + 10 * MINUTE_MS;
        assert_eq!(step(&s, since, since), Step::Wait(30 * MINUTE_MS));
        assert_eq!(
            step(&s, since, since + 29 * MINUTE_MS),
            Step::Wait(MINUTE_MS)
        );
        assert_eq!(step(&s, since, since + 30 * MINUTE_MS), Step::Cycle);
    }

    #[test]
    fn by_day_it_waits_for_the_night() {
        let s = settings(r#"{ "night": "01:00-05:00", "degraded_for": "30m" }"#);
        // Degraded since 18:00; at 18:30 it waits until 01:00, 6h30 later.
        let since = MIDNIGHT + 18 * HOUR;
        let at = since + 30 * MINUTE_MS;
        assert_eq!(step(&s, since, at), Step::Wait(6 * HOUR + 30 * MINUTE_MS));
        // Part-way through a minute, to the start of 01:00 exactly.
        assert_eq!(
            step(&s, since, at + 20_000),
            Step::Wait(6 * HOUR + 30 * MINUTE_MS - 20_000)
        );
        // The night's last minute is in; its end is not.
        let last = MIDNIGHT + 28 * HOUR + 59 * MINUTE_MS;
        assert_eq!(step(&s, since, last), Step::Cycle);
        assert_eq!(step(&s, since, last + MINUTE_MS), Step::Wait(20 * HOUR));
    }

    #[test]
    fn local_time_and_nights_across_midnight() {
        // 23:00-02:00 at UTC+02:00: 21:00-24:00 UTC.
        let s = settings(r#"{ "night": "23:00-02:00", "utc_offset": "+02:00" }"#);
        let since = MIDNIGHT;
        assert_eq!(step(&s, since, MIDNIGHT + 21 * HOUR), Step::Cycle);
        assert_eq!(
            step(&s, since, MIDNIGHT + 23 * HOUR + 59 * MINUTE_MS),
            Step::Cycle
        );
        assert_eq!(step(&s, since, MIDNIGHT + 20 * HOUR), Step::Wait(HOUR));
        assert_eq!(step(&s, since, MIDNIGHT + 24 * HOUR), Step::Wait(21 * HOUR));
    }

    #[test]
    fn bad_settings_say_what_to_write() {
        for (json, expected) in [
            (r#"{ "night": "1-5" }"#, "not a span of hours"),
            (r#"{ "utc_offset": "2:00" }"#, "not a UTC offset"),
            (r#"{ "degraded_for": "half an hour" }"#, "not a duration"),
            (r#"{ "devcie": "modem" }"#, "unknown field"),
        ] {
            let error = serde_json::from_str::<Settings>(json)
                .err()
                .unwrap()
                .to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }
}
