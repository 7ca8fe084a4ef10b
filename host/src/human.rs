//! Times and durations as people read them, in logs and `wanwatch status`.

use crate::state::Millis;

/// A duration in the compact form of the original wan-monitor log: "850ms",
/// "9.2s", "7m08s", "2h03m", "3d04h". The plugins' helper crate holds the
/// one implementation, so host logs and plugin messages read alike.
pub fn duration_ms(ms: Millis) -> String {
    wanwatch_plugin::human_duration(ms)
}

/// An instant as RFC 3339 UTC, to the second.
pub fn timestamp(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_the_wan_monitor_log() {
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(9_250), "9.2s");
        assert_eq!(duration_ms(428_000), "7m08s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
        assert_eq!(duration_ms(273_600_000), "3d04h");
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }
}
