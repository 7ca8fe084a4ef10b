//! `watcher.toml`: where the watcher listens, when a site counts as DOWN,
//! where it notifies, and the sites with their tokens. Read with the
//! daemon's config machinery, so errors name file, line, column and key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::protocol::valid_site;
use crate::config::{ConfigError, human_duration, human_duration_opt};
use crate::notify::{NotifyConfig, Secret};

/// The port the watcher listens on by default (the daemon's API is 8786).
pub const DEFAULT_PORT: u16 = 8787;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatcherConfig {
    /// The database and the notification queue. Default: the unit's
    /// `StateDirectory=` under systemd, else `watcher` in the daemon's
    /// default (`/var/lib/wanwatch/watcher` as root, else
    /// `$XDG_STATE_HOME/wanwatch/watcher`), apart from a daemon's files on
    /// the same machine.
    pub state_dir: Option<PathBuf>,
    /// One address or a list.
    #[serde(
        default = "default_listen",
        deserialize_with = "crate::api::one_or_many"
    )]
    pub listen: Vec<SocketAddr>,
    /// The viewer token: protects the read API and the dashboard. Required
    /// on any address that is not loopback. The sites use their own.
    pub token: Option<Secret>,
    /// A site silent this long is DOWN.
    #[serde(default = "default_missed_after", with = "human_duration")]
    pub missed_after: Duration,
    /// While a site is DOWN, remind this often; unset: never.
    #[serde(default, with = "human_duration_opt")]
    pub remind_every: Option<Duration>,
    /// A heartbeat whose clock is further off than this flags its site.
    #[serde(default = "default_max_clock_skew", with = "human_duration")]
    pub max_clock_skew: Duration,
    /// Where DOWN and RESTORED go: the daemon's `[notify]`.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// The sites, by name.
    #[serde(default)]
    pub sites: BTreeMap<String, SiteConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// What the site sends as `Authorization: Bearer <token>`.
    pub token: Secret,
    /// Overrides the top-level `missed_after` for this site.
    #[serde(default, with = "human_duration_opt")]
    pub missed_after: Option<Duration>,
}

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))]
}

fn default_missed_after() -> Duration {
    Duration::from_secs(180)
}

fn default_max_clock_skew() -> Duration {
    Duration::from_secs(60)
}

impl WatcherConfig {
    /// Reads and validates a watcher config file.
    pub fn load(path: &Path) -> Result<WatcherConfig, Vec<ConfigError>> {
        let text = crate::config::read(path)?;
        WatcherConfig::parse(path, &text)
    }

    /// Parses and validates config text; `file` is used only in errors.
    pub fn parse(file: &Path, text: &str) -> Result<WatcherConfig, Vec<ConfigError>> {
        let config: WatcherConfig = crate::config::deserialize(file, text)?;
        let errors = crate::config::located_errors(file, text, config.check());
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    fn check(&self) -> Vec<(Vec<String>, String)> {
        let key = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut errors =
            crate::api::check_listen(&[], &self.listen, self.token.as_ref(), "`token`");
        if self.listen.is_empty() {
            errors.push((
                key(&["listen"]),
                "needs at least one address: the sites send their heartbeats there".into(),
            ));
        }
        if self.missed_after < Duration::from_secs(1) {
            errors.push((key(&["missed_after"]), "must be at least 1s".into()));
        }
        if self
            .remind_every
            .is_some_and(|r| r < Duration::from_secs(1))
        {
            errors.push((key(&["remind_every"]), "must be at least 1s".into()));
        }
        if self.max_clock_skew.is_zero() {
            errors.push((key(&["max_clock_skew"]), "must be longer than 0".into()));
        }
        for (name, site) in &self.sites {
            if !valid_site(name) {
                errors.push((
                    key(&["sites", name]),
                    "a site's name is 1 to 64 of letters, digits, `-` and `_`".into(),
                ));
            }
            if site.token.expose().trim().is_empty() {
                errors.push((key(&["sites", name, "token"]), "must not be empty".into()));
            }
            if site
                .missed_after
                .is_some_and(|m| m < Duration::from_secs(1))
            {
                errors.push((
                    key(&["sites", name, "missed_after"]),
                    "must be at least 1s".into(),
                ));
            }
        }
        errors
    }

    /// The state directory: the configured one, the unit's, or `watcher`
    /// in the daemon's default.
    pub fn state_dir_or_default(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            crate::config::systemd_state_directory()
                .unwrap_or_else(|| crate::config::default_state_dir().join("watcher"))
        })
    }

    /// How long `site` may be silent before it is DOWN.
    pub fn missed_after(&self, site: &SiteConfig) -> Duration {
        site.missed_after.unwrap_or(self.missed_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        match WatcherConfig::parse(Path::new("watcher.toml"), text) {
            Ok(_) => String::new(),
            Err(errors) => crate::config::describe(&errors),
        }
    }

    #[test]
    fn an_empty_config_gives_the_defaults() {
        let config = WatcherConfig::parse(Path::new("w.toml"), "").unwrap();
        assert_eq!(config.listen, ["127.0.0.1:8787".parse().unwrap()]);
        assert_eq!(config.missed_after, Duration::from_secs(180));
        assert_eq!(config.remind_every, None);
        assert_eq!(config.max_clock_skew, Duration::from_secs(60));
        assert!(config.sites.is_empty());
    }

    #[test]
    fn mistakes_are_located_by_line_column_and_key() {
        assert_eq!(
            errors("missed_after = \"soon\"\n"),
            "watcher.toml:1:16: missed_after: `soon` is not a duration (expected number at 0); write e.g. \"2s\", \"500ms\", \"3m\""
        );
        assert_eq!(
            errors("[sites.home]\ntoken = \"t\"\ncolour = 1\n"),
            "watcher.toml:3:1: sites.home.colour: unknown field `colour`, expected `token` or `missed_after`"
        );
        assert_eq!(
            errors("[sites.\"my house\"]\ntoken = \"t\"\n"),
            "watcher.toml:1:1: sites.my house: a site's name is 1 to 64 of letters, digits, `-` and `_`"
        );
        assert_eq!(
            errors("[sites.home]\ntoken = \" \"\n"),
            "watcher.toml:2:9: sites.home.token: must not be empty"
        );
        assert_eq!(
            errors("[sites.home]\n"),
            "watcher.toml:1:1: sites.home: missing field `token`"
        );
        assert_eq!(
            errors("listen = \"0.0.0.0:8787\"\n"),
            "watcher.toml:1:10: listen: 0.0.0.0:8787 is not a loopback address: set `token`, which every request must then carry as `Authorization: Bearer <token>`"
        );
        assert_eq!(
            errors("listen = \"0.0.0.0:8787\"\ntoken = \"viewer-secret\"\n"),
            ""
        );
    }

    #[test]
    fn tokens_are_never_shown() {
        let config = WatcherConfig::parse(
            Path::new("w.toml"),
            "token = \"viewer-never-shown\"\n[sites.home]\ntoken = \"site-never-shown\"\n",
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("never-shown"), "{debug}");
    }
}
