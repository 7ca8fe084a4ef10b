//! `quiet-hours`: power-cycles the modem when the WAN goes down, except
//! during configured hours (someone works from home at night and a reboot
//! would cut a call that the outage has not, or the household sleeps next
//! to a modem that beeps when it boots): then it waits, and cycles only if
//! the WAN is still down after `max_down`, or when the quiet hours end.
//!
//! Settings (`[plugins.quiet-hours.settings]`):
//!
//! | setting       | default   | meaning |
//! |---------------|-----------|---------|
//! | `quiet`       | `"22:00-07:00"` | the quiet hours, local time; may span midnight |
//! | `utc_offset`  | `"+00:00"` | local time's offset from UTC (plugins have no time zone database) |
//! | `max_down`    | `"30m"`   | during quiet hours, cycle anyway once down this long |
//! | `device`      | `"modem"` | the device to cycle |
//! | `off_seconds` | `10`      | how long it stays off |

use serde::Deserialize;
use wanwatch_plugin::{
    DaySpan, Policy, Result, Seconds, Transition, UtcOffset, human_duration, info, kv,
    minute_of_day, now, power_cycle, timers,
};

struct QuietHours;

wanwatch_plugin::register_policy!(QuietHours);

/// The timer that ends the wait of an outage in quiet hours.
const DEFERRED: &str = "deferred";
/// Set while the WAN is down and not yet cycled.
const WAITING: &str = "waiting";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    quiet: DaySpan,
    utc_offset: UtcOffset,
    max_down: Seconds,
    device: String,
    off_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quiet: DaySpan {
                start: 22 * 60,
                end: 7 * 60,
            },
            utc_offset: UtcOffset(0),
            max_down: Seconds(30 * 60),
            device: "modem".into(),
            off_seconds: 10,
        }
    }
}

fn cycle(settings: &Settings) -> Result {
    kv::delete(WAITING)?;
    power_cycle(&settings.device, settings.off_seconds)
}

impl Policy for QuietHours {
    fn on_wan_down(t: Transition) -> Result {
        let settings: Settings = wanwatch_plugin::settings()?;
        if t.local_fault {
            return Ok(());
        }
        let minute = minute_of_day(now(), settings.utc_offset);
        let Some(remaining) = settings.quiet.remaining(minute) else {
            return cycle(&settings);
        };
        // Down already counts from the first failed round.
        let down_for = t.previous_duration_ms;
        let wait_ms = settings
            .max_down
            .as_millis()
            .saturating_sub(down_for)
            .min(u64::try_from(remaining).unwrap_or(0) * 60_000);
        info!(
            "quiet hours: not cycling {} now; in {} if the WAN is still down",
            settings.device,
            human_duration(wait_ms)
        );
        kv::set(WAITING, &true)?;
        timers::set(DEFERRED, Seconds(wait_ms.div_ceil(1000)).as_duration())
    }

    fn on_timer(name: String) -> Result {
        if name != DEFERRED || kv::get::<bool>(WAITING).is_none() {
            return Ok(());
        }
        cycle(&wanwatch_plugin::settings()?)
    }

    fn on_wan_up(_: Transition) -> Result {
        timers::cancel(DEFERRED);
        kv::delete(WAITING)
    }
}
