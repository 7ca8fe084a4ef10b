//! `[[heartbeat]]`: where proof of life goes, and how often.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::notify::{HttpUrl, Secret, redacted_url};

/// What receives the heartbeats, which decides what a heartbeat says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeartbeatKind {
    /// A `wanwatch watcher` (see [`crate::watcher`]): the site's state and a
    /// summary; outage reports go there too.
    Wanwatch,
    /// A Healthchecks ping URL (healthchecks.io or self-hosted).
    Healthchecks,
    /// An Uptime Kuma push monitor's URL.
    UptimeKuma,
    /// A Prometheus Pushgateway.
    Pushgateway,
}

/// One `[[heartbeat]]` sink.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawHeartbeatConfig")]
pub struct HeartbeatConfig {
    pub kind: HeartbeatKind,
    /// The watcher's base URL, the ping or push URL, or the Pushgateway's
    /// base URL. Healthchecks and Uptime Kuma URLs carry their secret in
    /// the path: only the origin is ever shown.
    pub url: Url,
    /// Between two heartbeats. Default 60 s.
    pub interval: Duration,
    /// For one heartbeat to be answered. Default 10 s.
    pub timeout: Duration,
    /// `wanwatch` only: this house's name at the watcher.
    pub site: Option<String>,
    /// `wanwatch`: the site's token (required). `pushgateway`: a bearer
    /// token for a gateway behind a proxy (optional).
    pub token: Option<Secret>,
    /// `pushgateway` only: the `job` label. Default `wanwatch`.
    pub job: String,
    /// `pushgateway` only: the `instance` label. Default: the host name.
    pub instance: Option<String>,
    /// Whether outage reports go here too: `wanwatch` only, default true.
    pub reports: bool,
}

impl HeartbeatConfig {
    /// How logs and the status name this sink: the kind and the URL's
    /// origin, never its secret path.
    pub fn name(&self, index: usize) -> String {
        let kind = match self.kind {
            HeartbeatKind::Wanwatch => "wanwatch",
            HeartbeatKind::Healthchecks => "healthchecks",
            HeartbeatKind::UptimeKuma => "uptime-kuma",
            HeartbeatKind::Pushgateway => "pushgateway",
        };
        format!("heartbeat[{index}] {kind} {}", redacted_url(&self.url))
    }
}

impl fmt::Debug for HeartbeatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeartbeatConfig")
            .field("kind", &self.kind)
            .field("url", &redacted_url(&self.url))
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("site", &self.site)
            .field("token", &self.token)
            .field("job", &self.job)
            .field("instance", &self.instance)
            .field("reports", &self.reports)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeatConfig {
    kind: HeartbeatKind,
    url: HttpUrl,
    #[serde(default, with = "crate::config::human_duration_opt")]
    interval: Option<Duration>,
    #[serde(default, with = "crate::config::human_duration_opt")]
    timeout: Option<Duration>,
    site: Option<String>,
    token: Option<Secret>,
    job: Option<String>,
    instance: Option<String>,
    reports: Option<bool>,
}

impl TryFrom<RawHeartbeatConfig> for HeartbeatConfig {
    type Error = String;

    fn try_from(raw: RawHeartbeatConfig) -> Result<Self, String> {
        let interval = raw.interval.unwrap_or(Duration::from_secs(60));
        let timeout = raw.timeout.unwrap_or(Duration::from_secs(10));
        if interval < Duration::from_secs(1) {
            return Err("interval: must be at least 1s".into());
        }
        if timeout.is_zero() || timeout > interval {
            return Err("timeout: must be more than 0 and at most the interval".into());
        }
        let only = |key: &str, given: bool, kinds: &str| {
            if given {
                Err(format!("`{key}` applies to kind = {kinds} only"))
            } else {
                Ok(())
            }
        };
        let wanwatch = raw.kind == HeartbeatKind::Wanwatch;
        let pushgateway = raw.kind == HeartbeatKind::Pushgateway;
        only("site", !wanwatch && raw.site.is_some(), "\"wanwatch\"")?;
        only(
            "reports",
            !wanwatch && raw.reports.is_some(),
            "\"wanwatch\"",
        )?;
        only(
            "token",
            !wanwatch && !pushgateway && raw.token.is_some(),
            "\"wanwatch\" or \"pushgateway\"",
        )?;
        only("job", !pushgateway && raw.job.is_some(), "\"pushgateway\"")?;
        only(
            "instance",
            !pushgateway && raw.instance.is_some(),
            "\"pushgateway\"",
        )?;
        if wanwatch {
            match &raw.site {
                None => {
                    return Err(
                        "kind = \"wanwatch\" needs `site`, this house's name at the watcher".into(),
                    );
                }
                Some(site) if !crate::watcher::protocol::valid_site(site) => {
                    return Err(format!(
                        "site: `{site}` is not a site name: use 1 to 64 letters, digits, `-` and `_`"
                    ));
                }
                Some(_) => {}
            }
            if raw.token.is_none() {
                return Err(
                    "kind = \"wanwatch\" needs `token`, the site's token at the watcher".into(),
                );
            }
        }
        Ok(HeartbeatConfig {
            kind: raw.kind,
            url: raw.url.0,
            interval,
            timeout,
            site: raw.site,
            token: raw.token,
            job: raw.job.unwrap_or_else(|| "wanwatch".into()),
            instance: raw.instance,
            reports: raw.reports.unwrap_or(wanwatch),
        })
    }
}
