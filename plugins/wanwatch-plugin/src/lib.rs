//! The Rust SDK for wanwatch policy plugins.
//!
//! A policy is a type implementing [`Policy`], whose callbacks all default to
//! doing nothing, registered once with [`register_policy!`]:
//!
//! ```ignore
//! use wanwatch_plugin::{Policy, Result, Transition, info, notify};
//!
//! struct Hello;
//!
//! impl Policy for Hello {
//!     fn on_wan_down(t: Transition) -> Result {
//!         info!("down after {} ms up", t.previous_duration_ms);
//!         notify("WAN down", "No answer from the internet.", 4)
//!     }
//! }
//!
//! wanwatch_plugin::register_policy!(Hello);
//! ```
//!
//! The generated WIT bindings stay inside this crate; what a policy needs is
//! re-exported with typed helpers: [`settings`] deserializes the plugin's
//! `[plugins.NAME.settings]` table into the author's struct, [`kv`] keeps
//! any serde value (as JSON) in the host's persistent store, [`timers`] arms
//! named one-shot timers, [`power_cycle`] and [`notify`] act, [`now`] reads
//! the host's (possibly virtual) clock, [`heartbeats`] tells whether the
//! heartbeat receivers are reachable, and [`info!`] and friends log.
//!
//! The contract version travels in the built component: every interface it
//! imports is named `wanwatch:policy/NAME@VERSION` (see
//! [`CONTRACT_VERSION`]), which is what the host checks before it accepts a
//! plugin, and what `wanwatch plugin inspect` shows.
//!
//! Settings of local time ("quiet from 22:00 to 07:00") read as [`DaySpan`]
//! and [`UtcOffset`]; [`minute_of_day`] places the clock in them.
//!
//! The guest half exists only for `wasm32` targets; on other targets the
//! crate offers the shared pieces, [`Seconds`] and [`human_duration`], which
//! the host uses too so that host and plugins write durations alike (and
//! the local-time pieces, so that plugins can test their arithmetic
//! natively).

mod daytime;
#[cfg(target_arch = "wasm32")]
mod guest;
pub use daytime::{DAY_MINUTES, DaySpan, UtcOffset, minute_of_day};
#[cfg(target_arch = "wasm32")]
pub use guest::*;

/// The contract version this SDK builds plugins for: the WIT in
/// `wit/since_v0.2.0/`.
pub const CONTRACT_VERSION: &str = "0.2.0";

use serde::{Deserialize, Deserializer};

/// A duration in whole seconds, read from settings written as a number of
/// seconds or as text in the grammar of durations in wanwatch's own config
/// (humantime's): "90s", "3m", "2h", "1h 30m", "2min", "1day".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn as_millis(self) -> u64 {
        self.0.saturating_mul(1000)
    }

    /// As a [`Duration`](std::time::Duration), e.g. for a timer.
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Seconds(n)),
            Raw::Text(text) => parse_seconds(&text)
                .map(Seconds)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// "90" (bare seconds, as the number would be) or a humantime duration,
/// which must come to whole seconds.
fn parse_seconds(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let duration = humantime::parse_duration(text).map_err(|e| {
        format!(
            "`{text}` is not a duration ({e}): write seconds, or e.g. \"90s\", \"3m\", \"1h 30m\""
        )
    })?;
    if duration.subsec_nanos() != 0 {
        return Err(format!("`{text}` is not a whole number of seconds"));
    }
    Ok(duration.as_secs())
}

/// A duration in the compact form wanwatch uses everywhere: "850ms",
/// "9.2s", "7m08s", "2h03m", "3d04h".
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{}.{}s", s, (ms % 1000) / 100),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_from_numbers_and_text() {
        assert_eq!(parse_seconds("90"), Ok(90));
        assert_eq!(parse_seconds("90s"), Ok(90));
        assert_eq!(parse_seconds("3m"), Ok(180));
        assert_eq!(parse_seconds("2h"), Ok(7200));
        assert!(
            parse_seconds("2 parsecs")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_seconds("m").is_err());
    }

    /// The forms the host's config accepts (humantime), in whole seconds.
    #[test]
    fn seconds_in_the_config_grammar() {
        assert_eq!(parse_seconds("1h 30m"), Ok(5400));
        assert_eq!(parse_seconds("2min"), Ok(120));
        assert_eq!(parse_seconds("1day"), Ok(86_400));
        assert_eq!(parse_seconds("1m30s"), Ok(90));
        assert_eq!(parse_seconds("2000ms"), Ok(2));
        let half = parse_seconds("1500ms").unwrap_err();
        assert!(half.contains("whole number of seconds"), "{half}");
    }

    #[test]
    fn the_contract_version_is_the_one_in_the_wit() {
        let wit = include_str!("../../../wit/since_v0.2.0/policy.wit");
        assert!(wit.contains(&format!("package wanwatch:policy@{CONTRACT_VERSION};")));
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(428_000), "7m08s");
        assert_eq!(human_duration(9_250), "9.2s");
    }
}
