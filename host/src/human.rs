//! Times and durations as people read them, in logs and `wanwatch status`.

use std::fmt::Display;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::power::PowerTransition;
use crate::quality::{QualityChange, Settings};
use crate::state::{Millis, Transition};

/// A duration in the compact form of the original wan-monitor log: "850ms",
/// "9.2s", "7m08s", "2h03m", "3d04h". The plugins' helper crate holds the
/// one implementation, so host logs and plugin messages read alike.
pub fn duration_ms(ms: Millis) -> String {
    wanwatch_plugin::human_duration(ms)
}

/// A round trip as `wanwatch status` shows it: "41.50 ms", fine enough for
/// the fraction of a millisecond of a loopback or LAN target.
pub fn round_trip(us: u32) -> String {
    format!("{:.2} ms", f64::from(us) / 1000.0)
}

/// A round-trip threshold, exactly as configured: "250 ms", "0.001 ms".
pub fn rtt_threshold(us: u32) -> String {
    format!("{} ms", f64::from(us) / 1000.0)
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

/// A change of the degraded signal, as the daemon logs it and the simulator
/// prints it: "link degraded: loss 23.0% >= 10%, rtt p50 912.00 ms >= 250 ms"
/// or "link quality back to normal after 12m00s (loss 0.0%, rtt p50 21.00 ms)".
pub fn quality_change(c: &QualityChange, settings: &Settings, when: When) -> String {
    let q = &c.quality;
    let at = match when {
        When::Said => format!(" at {}", timestamp(c.at_ms)),
        When::Beside => String::new(),
    };
    let loss = format!("loss {:.1}%", q.loss_percent);
    let rtt = q.rtt_p50_us.map_or_else(
        || "rtt p50 none".to_owned(),
        |us| format!("rtt p50 {}", round_trip(us)),
    );
    if !c.degraded {
        return format!(
            "link quality back to normal{at} after {} ({loss}, {rtt})",
            duration_ms(c.previous_duration_ms)
        );
    }
    // The figures that crossed their thresholds first, then the others.
    let mut crossed = Vec::new();
    let mut others = Vec::new();
    match settings.degraded_loss_percent {
        Some(limit) if q.loss_percent >= limit => crossed.push(format!("{loss} >= {limit}%")),
        _ => others.push(loss),
    }
    match (settings.degraded_rtt_us, q.rtt_p50_us) {
        (Some(limit), Some(us)) if us >= limit => {
            crossed.push(format!("{rtt} >= {}", rtt_threshold(limit)));
        }
        _ => others.push(rtt),
    }
    let mut text = format!("link degraded{at}: {}", crossed.join(", "));
    if !others.is_empty() {
        text += &format!(" ({})", others.join(", "));
    }
    text += &format!(", after {} normal", duration_ms(c.previous_duration_ms));
    text
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
    fn quality_changes_say_which_threshold_was_crossed() {
        let settings = Settings {
            window: 150,
            degraded_loss_percent: Some(10.0),
            degraded_rtt_us: Some(250_000),
            hold_ms: 60_000,
        };
        let mut c = QualityChange {
            degraded: true,
            at_ms: 1_700_000_000_000,
            previous_duration_ms: 3_600_000,
            wan: crate::state::WanState::Up,
            quality: crate::quality::LinkQuality {
                degraded: true,
                loss_percent: 23.0,
                rtt_p50_us: Some(41_500),
                targets: Vec::new(),
            },
        };
        assert_eq!(
            quality_change(&c, &settings, When::Said),
            "link degraded at 2023-11-14T22:13:20Z: loss 23.0% >= 10% (rtt p50 41.50 ms), after 1h00m normal"
        );
        c.quality.rtt_p50_us = Some(912_000);
        assert_eq!(
            quality_change(&c, &settings, When::Beside),
            "link degraded: loss 23.0% >= 10%, rtt p50 912.00 ms >= 250 ms, after 1h00m normal"
        );
        c.degraded = false;
        c.previous_duration_ms = 720_000;
        c.quality.loss_percent = 0.0;
        c.quality.rtt_p50_us = None;
        assert_eq!(
            quality_change(&c, &settings, When::Beside),
            "link quality back to normal after 12m00s (loss 0.0%, rtt p50 none)"
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
