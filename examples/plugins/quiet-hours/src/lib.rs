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

use serde::{Deserialize, Deserializer};
use wanwatch_plugin::{
    Policy, Result, Seconds, Transition, human_duration, info, kv, now, power_cycle, timers,
};

struct QuietHours;

wanwatch_plugin::register_policy!(QuietHours);

/// The timer that ends the wait of an outage in quiet hours.
const DEFERRED: &str = "deferred";
/// Set while the WAN is down and not yet cycled.
const WAITING: &str = "waiting";

const DAY_MINUTES: i64 = 24 * 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    quiet: Hours,
    utc_offset: Offset,
    max_down: Seconds,
    device: String,
    off_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            quiet: Hours {
                start: 22 * 60,
                end: 7 * 60,
            },
            utc_offset: Offset(0),
            max_down: Seconds(30 * 60),
            device: "modem".into(),
            off_seconds: 10,
        }
    }
}

/// A span of the day, "22:00-07:00", as minutes since midnight.
#[derive(Clone, Copy)]
struct Hours {
    start: i64,
    end: i64,
}

impl Hours {
    /// Minutes from `minute` (of the day) until the quiet hours end, if
    /// `minute` is in them.
    fn remaining(self, minute: i64) -> Option<i64> {
        let since_start = (minute - self.start).rem_euclid(DAY_MINUTES);
        let length = (self.end - self.start).rem_euclid(DAY_MINUTES);
        (since_start < length).then_some(length - since_start)
    }
}

/// Local time's offset from UTC, in minutes: "+01:00", "-05:30".
#[derive(Clone, Copy)]
struct Offset(i64);

/// "HH:MM" as minutes since midnight.
fn clock_time(text: &str) -> Option<i64> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

impl<'de> Deserialize<'de> for Hours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let hours = text.split_once('-').and_then(|(start, end)| {
            Some(Hours {
                start: clock_time(start)?,
                end: clock_time(end)?,
            })
        });
        hours.ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a span of hours: write e.g. \"22:00-07:00\""
            ))
        })
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let sign = match text.chars().next() {
            Some('+') => 1,
            Some('-') => -1,
            _ => 0,
        };
        match clock_time(&text[1.min(text.len())..]) {
            Some(minutes) if sign != 0 => Ok(Offset(sign * minutes)),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a UTC offset: write e.g. \"+01:00\""
            ))),
        }
    }
}

/// The local minute of the day at `ms` since the Unix epoch.
fn minute_of_day(ms: u64, offset: Offset) -> i64 {
    let minutes = i64::try_from(ms / 60_000).unwrap_or(0);
    (minutes + offset.0).rem_euclid(DAY_MINUTES)
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
