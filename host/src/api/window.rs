//! The time window of the history endpoints: `since`, `until` and
//! `limit`, checked, each bad value answered with a 400 that names it.
//!
//! An instant is written as a duration back from now (`7d`, `90m`,
//! `1h 30m`), an RFC 3339 time in UTC (`2026-12-01T00:00:00Z`), or Unix
//! milliseconds (`1764547200000`).

use std::time::Duration;

use crate::clock::{Clock, SystemClock};

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use serde::Deserialize;

use super::error::ApiError;

/// The most rows one answer holds.
pub const MAX_LIMIT: usize = 10_000;
/// Rows when the request does not say.
const DEFAULT_LIMIT: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
}

/// A checked window, in Unix milliseconds, `since_ms <= until_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub since_ms: u64,
    pub until_ms: u64,
    pub limit: usize,
}

impl Window {
    /// The window a request asks for; `since` defaults to `default_since`
    /// before now, `until` to now.
    pub fn of(
        query: Result<Query<WindowQuery>, QueryRejection>,
        default_since: Duration,
    ) -> Result<Window, ApiError> {
        // serde_urlencoded's text names the unknown or repeated parameter.
        let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        Window::resolve(&query, default_since, now_ms())
    }

    fn resolve(
        query: &WindowQuery,
        default_since: Duration,
        now_ms: u64,
    ) -> Result<Window, ApiError> {
        let since_ms = match &query.since {
            Some(since) => instant("since", since, now_ms)?,
            None => now_ms.saturating_sub(default_since.as_millis() as u64),
        };
        let until_ms = match &query.until {
            Some(until) => instant("until", until, now_ms)?,
            None => now_ms,
        };
        if since_ms > until_ms {
            return Err(ApiError::bad_request(format!(
                "since ({since_ms}) is after until ({until_ms})"
            )));
        }
        let limit = match &query.limit {
            None => DEFAULT_LIMIT,
            Some(limit) => limit
                .parse()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("limit must be 1 to {MAX_LIMIT}, not `{limit}`"))
                })?,
        };
        Ok(Window {
            since_ms,
            until_ms,
            limit,
        })
    }
}

/// `value` of parameter `name` as Unix milliseconds.
fn instant(name: &str, value: &str, now_ms: u64) -> Result<u64, ApiError> {
    crate::human::parse_instant(value, now_ms).ok_or_else(|| {
        // Not quoted back whole: a query string is anyone's text.
        let shown: String = value.chars().take(40).collect();
        ApiError::bad_request(format!(
            "{name}: `{shown}` is not a duration back from now (7d, 90m), an RFC 3339 time (2026-12-01T00:00:00Z) or Unix milliseconds"
        ))
    })
}

fn now_ms() -> u64 {
    SystemClock.wall_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_547_200_000; // 2025-12-01T00:00:00Z

    fn window(
        since: Option<&str>,
        until: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Window, String> {
        let query = WindowQuery {
            since: since.map(Into::into),
            until: until.map(Into::into),
            limit: limit.map(Into::into),
        };
        Window::resolve(&query, Duration::from_secs(3600), NOW).map_err(|e| e.message)
    }

    #[test]
    fn durations_times_and_milliseconds() {
        assert_eq!(
            window(None, None, None),
            Ok(Window {
                since_ms: NOW - 3_600_000,
                until_ms: NOW,
                limit: DEFAULT_LIMIT
            })
        );
        let w = window(Some("7d"), Some("2025-12-01T00:00:00Z"), Some("5")).unwrap();
        assert_eq!(
            (w.since_ms, w.until_ms, w.limit),
            (NOW - 7 * 86_400_000, NOW, 5)
        );
        assert_eq!(
            window(Some("1000"), Some("2000"), None).unwrap().since_ms,
            1000
        );
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let e = window(Some("yesterday"), None, None).unwrap_err();
        assert!(e.starts_with("since: `yesterday` is not a duration"), "{e}");
        let e = window(None, Some("2025-13-01T00:00:00Z"), None).unwrap_err();
        assert!(e.starts_with("until: "), "{e}");
        let e = window(Some("2000"), Some("1000"), None).unwrap_err();
        assert!(e.contains("is after until"), "{e}");
        for limit in ["0", "-1", "x", "10001"] {
            let e = window(None, None, Some(limit)).unwrap_err();
            assert!(e.starts_with("limit must be 1 to 10000"), "{e}");
        }
    }
}
