//! The watcher's notifications, worded: DOWN and its reminders at high
//! priority, RESTORED with the outage's duration as the watcher saw it and
//! the cause when the site's report is already in.

use crate::actions::Notification;
use crate::human;
use crate::state::{Millis, WanState};

use super::store::OutageRecord;

/// ntfy's "high": the phone buzzes longer and breaks through "do not
/// disturb" on most setups.
pub const HIGH: u8 = 4;
/// ntfy's default.
pub const DEFAULT: u8 = 3;

/// Who raised the notifications, as the webhook document names it.
const SOURCE: &str = "watcher";

/// `site` has been silent for `silent_ms` since `last_seen`: DOWN, or
/// still DOWN for a reminder.
pub fn down(
    site: &str,
    last_seen: Millis,
    silent_ms: Millis,
    reminder: bool,
    now: Millis,
) -> Notification {
    let down = if reminder { "still DOWN" } else { "DOWN" };
    notification(
        format!("{site}: home network {down}"),
        format!(
            "{site}: home network {down}, no heartbeat for {} (last seen {})",
            minutes(silent_ms),
            human::timestamp(last_seen)
        ),
        HIGH,
        WanState::Down,
        last_seen,
        now,
    )
}

/// Back after `duration_ms`; `outage` is the record, with the site's
/// report if it came first.
pub fn restored(
    site: &str,
    duration_ms: Millis,
    outage: Option<&OutageRecord>,
    now: Millis,
) -> Notification {
    let title = format!(
        "{site}: home network RESTORED after {}",
        minutes(duration_ms)
    );
    let mut body = title.clone();
    if let Some(report) = outage.and_then(|o| o.report.as_ref()) {
        body += &format!("\ncause: {} ({})", report.cause, report.evidence);
        if !report.power_cycles.is_empty() {
            body += &format!("\npower cycles: {}", report.power_cycles.len());
            if let Some(n) = report.fixed_by_cycle {
                body += &format!(", back after cycle {n}");
            }
        }
    }
    notification(title, body, DEFAULT, WanState::Up, now, now)
}

fn notification(
    title: String,
    body: String,
    priority: u8,
    state: WanState,
    since: Millis,
    now: Millis,
) -> Notification {
    Notification {
        title,
        body,
        priority,
        raised_at_ms: now,
        plugin: SOURCE.into(),
        wan_state: state,
        wan_since_ms: since,
    }
}

/// "3 min", "47 min", "2 h 05 min"; under a minute in seconds, "12 s".
pub fn minutes(ms: Millis) -> String {
    let seconds = (ms + 500) / 1000;
    if seconds < 60 {
        return format!("{seconds} s");
    }
    let minutes = (seconds + 30) / 60;
    if minutes < 60 {
        format!("{minutes} min")
    } else {
        format!("{} h {:02} min", minutes / 60, minutes % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watcher::protocol::OutageReport;

    #[test]
    fn notifications_say_what_people_expect() {
        let n = down("home", 0, 180_000, false, 180_000);
        assert_eq!(n.title, "home: home network DOWN");
        assert_eq!(
            n.body,
            "home: home network DOWN, no heartbeat for 3 min (last seen 1970-01-01T00:00:00Z)"
        );
        assert_eq!(n.priority, 4);
        let report = OutageReport::plain("outage-1", 1, 3, "local-fault");
        let record = OutageRecord {
            id: 1,
            site: "home".into(),
            watcher: None,
            cause: Some("local-fault".into()),
            report: Some(report),
        };
        let n = restored("home", 47 * 60_000 + 10_000, Some(&record), 0);
        assert_eq!(n.title, "home: home network RESTORED after 47 min");
        assert!(
            n.body
                .ends_with("\ncause: local-fault (local-fault evidence)"),
            "{}",
            n.body
        );
        assert_eq!(minutes(12_400), "12 s");
        assert_eq!(minutes(125 * 60_000), "2 h 05 min");
    }
}
