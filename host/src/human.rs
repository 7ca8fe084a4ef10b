//! Times and durations as people read them, in logs and `wanwatch status`.

use std::fmt::Display;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::power::PowerTransition;
use crate::state::{Millis, Transition};

/// A duration in the compact form of the original wan-monitor log: "850ms",
/// "9.2s", "7m08s", "2h03m", "3d04h". The plugins' helper crate holds the
/// one implementation, so host logs and plugin messages read alike.
pub fn duration_ms(ms: Millis) -> String {
    wanwatch_plugin::human_duration(ms)
}

/// The last instant RFC 3339 can write (four-digit years), 9999-12-31T23:59:59.999Z.
/// Inputs later than this are refused where they are read (scenarios,
/// history files).
pub const LAST_MS: Millis = 253_402_300_799_999;

/// An instant as RFC 3339 UTC, to the second. A later instant than
/// [`LAST_MS`] is written as Unix time instead: humantime fails on it, and a
/// corrupt status file must not crash `wanwatch status`.
pub fn timestamp(ms: Millis) -> String {
    match system_time(ms) {
        Some(t) => humantime::format_rfc3339_seconds(t).to_string(),
        None => format!("Unix time {}s (past the year 9999)", ms / 1000),
    }
}

/// An instant as RFC 3339 UTC with milliseconds; None past [`LAST_MS`].
pub fn timestamp_millis(ms: Millis) -> Option<String> {
    system_time(ms).map(|t| humantime::format_rfc3339_millis(t).to_string())
}

fn system_time(ms: Millis) -> Option<SystemTime> {
    (ms <= LAST_MS).then(|| UNIX_EPOCH + Duration::from_millis(ms))
}

/// Whether a line about a change says when it happened itself (a log line),
/// or stands beside a column that does (the simulator's timeline).
#[derive(Clone, Copy)]
pub enum When {
    Said,
    Beside,
}

/// An instant as people write one on a command line or in a query: `now`,
/// a duration back from `now_ms` (`7d`, `90m`, `1h 30m`), an RFC 3339 time
/// (`2026-12-01T00:00:00Z`) or Unix milliseconds. None if it is none of
/// those, or before 1970.
pub fn parse_instant(text: &str, now_ms: Millis) -> Option<Millis> {
    let text = text.trim();
    if text == "now" {
        return Some(now_ms);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if let Ok(back) = humantime::parse_duration(text) {
        let back = back.as_millis().try_into().unwrap_or(Millis::MAX);
        return Some(now_ms.saturating_sub(back));
    }
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    at.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis().try_into().unwrap_or(Millis::MAX))
}

/// A change of the WAN state, as the daemon logs it ("WAN down at
/// 2026-11-24T01:30:12Z, after 9.2s sick") and the simulator prints it.
pub fn wan_change(t: &Transition, when: When) -> String {
    let mut text = change(
        "WAN",
        t.current,
        t.previous,
        t.previous_duration_ms,
        t.at_ms,
        when,
    );
    if t.local_fault {
        text += " (the LAN gateway does not answer: local fault)";
    }
    text
}

/// A change of the mains power state, worded as [`wan_change`].
pub fn power_change(t: &PowerTransition, when: When) -> String {
    change(
        "mains power",
        t.current,
        t.previous,
        t.previous_duration_ms,
        t.at_ms,
        when,
    )
}

fn change(
    subject: &str,
    current: impl Display,
    previous: impl Display,
    previous_ms: Millis,
    at_ms: Millis,
    when: When,
) -> String {
    let at = match when {
        When::Said => format!(" at {}", timestamp(at_ms)),
        When::Beside => String::new(),
    };
    format!(
        "{subject} {current}{at}, after {} {previous}",
        duration_ms(previous_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_as_people_write_them() {
        const NOW: Millis = 1_764_547_200_000; // 2025-12-01T00:00:00Z
        assert_eq!(parse_instant("now", NOW), Some(NOW));
        assert_eq!(parse_instant(" 7d ", NOW), Some(NOW - 7 * 86_400_000));
        assert_eq!(parse_instant("1h 30m", NOW), Some(NOW - 5_400_000));
        assert_eq!(parse_instant("2025-12-01T00:00:00Z", NOW), Some(NOW));
        assert_eq!(parse_instant("1000", NOW), Some(1000));
        assert_eq!(parse_instant("1000y", 5), Some(0));
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "-5",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_instant(bad, NOW), None, "{bad}");
        }
    }

    #[test]
    fn durations_read_like_the_wan_monitor_log() {
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(9_250), "9.2s");
        assert_eq!(duration_ms(428_000), "7m08s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
        assert_eq!(duration_ms(273_600_000), "3d04h");
    }

    #[test]
    fn a_change_reads_alike_in_the_log_and_the_timeline() {
        let t = Transition {
            previous: crate::state::WanState::Sick,
            current: crate::state::WanState::Down,
            at_ms: 1_700_000_000_000,
            previous_duration_ms: 9_250,
            local_fault: true,
            evidence: Vec::new(),
        };
        assert_eq!(
            wan_change(&t, When::Said),
            "WAN down at 2023-11-14T22:13:20Z, after 9.2s sick (the LAN gateway does not answer: local fault)"
        );
        assert_eq!(
            wan_change(&t, When::Beside),
            "WAN down, after 9.2s sick (the LAN gateway does not answer: local fault)"
        );
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn timestamps_past_the_year_9999_do_not_panic() {
        assert_eq!(timestamp(LAST_MS), "9999-12-31T23:59:59Z");
        assert_eq!(
            timestamp_millis(LAST_MS).as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
        assert_eq!(
            timestamp(LAST_MS + 1),
            "Unix time 253402300800s (past the year 9999)"
        );
        assert_eq!(
            timestamp(Millis::MAX),
            "Unix time 18446744073709551s (past the year 9999)"
        );
        assert_eq!(timestamp_millis(LAST_MS + 1), None);
    }
}
