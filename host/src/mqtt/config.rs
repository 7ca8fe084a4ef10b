//! `[mqtt]`: the broker, the credentials and the topics.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::notify::Secret;

/// The `[mqtt]` section, with its defaults filled in.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawMqttConfig")]
pub struct MqttConfig {
    pub broker: Broker,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM file of the certificate authorities trusted for `mqtts://`
    /// instead of the system's (a broker with its own CA). Relative to the
    /// config file.
    pub ca_file: Option<PathBuf>,
    /// Default `wanwatch-<hostname>`.
    pub client_id: String,
    /// Default `wanwatch`.
    pub topic_prefix: String,
    /// Home Assistant discovery configs. Default true.
    pub discovery: bool,
    /// Default `homeassistant`, Home Assistant's own default.
    pub discovery_prefix: String,
    /// Default 30 s.
    pub keep_alive: Duration,
    /// How often the round-trip and loss summary is published. Default 60 s.
    pub stats_interval: Duration,
}

/// Where the broker is: `mqtt://host[:port]` (1883) or `mqtts://host[:port]`
/// (8883, TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl TryFrom<&str> for Broker {
    type Error = String;

    fn try_from(s: &str) -> Result<Broker, String> {
        let url = Url::parse(s).map_err(|e| {
            format!("`{s}` is not a URL ({e}); write e.g. \"mqtt://192.168.1.10:1883\"")
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            // Not quoted back: it holds a password.
            return Err(
                "the URL contains credentials; give them as `username` and `password`".into(),
            );
        }
        let tls = match url.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            other => {
                return Err(format!(
                    "`{s}`: the scheme is `{other}`; use mqtt:// (plain, port 1883) or mqtts:// (TLS, port 8883)"
                ));
            }
        };
        let host = match url.host_str() {
            // An IPv6 address without its URL brackets.
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            None => return Err(format!("`{s}` has no host")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "`{s}`: a broker URL is only mqtt(s)://host[:port] (topics go in `topic_prefix`)"
            ));
        }
        Ok(Broker {
            host,
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
        })
    }
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("broker", &self.broker.to_string())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("ca_file", &self.ca_file)
            .field("client_id", &self.client_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("discovery", &self.discovery)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("keep_alive", &self.keep_alive)
            .field("stats_interval", &self.stats_interval)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttConfig {
    broker: String,
    username: Option<String>,
    password: Option<Secret>,
    ca_file: Option<PathBuf>,
    client_id: Option<String>,
    topic_prefix: Option<String>,
    discovery: Option<bool>,
    discovery_prefix: Option<String>,
    #[serde(default, with = "crate::config::human_duration_opt")]
    keep_alive: Option<Duration>,
    #[serde(default, with = "crate::config::human_duration_opt")]
    stats_interval: Option<Duration>,
}

impl TryFrom<RawMqttConfig> for MqttConfig {
    type Error = String;

    fn try_from(raw: RawMqttConfig) -> Result<Self, String> {
        let broker = Broker::try_from(raw.broker.as_str())?;
        if raw.password.is_some() && raw.username.is_none() {
            return Err("`password` needs a `username`".into());
        }
        if raw.ca_file.is_some() && !broker.tls {
            return Err("`ca_file` is for TLS: use an mqtts:// broker URL".into());
        }
        let topic_prefix = raw.topic_prefix.unwrap_or_else(|| "wanwatch".into());
        let discovery_prefix = raw
            .discovery_prefix
            .unwrap_or_else(|| "homeassistant".into());
        for (key, prefix) in [
            ("topic_prefix", &topic_prefix),
            ("discovery_prefix", &discovery_prefix),
        ] {
            topic_part(prefix).map_err(|e| format!("{key}: {e}"))?;
        }
        let client_id = raw
            .client_id
            .unwrap_or_else(|| format!("wanwatch-{}", crate::notify::hostname()));
        if client_id.is_empty() || client_id.len() > 65535 {
            return Err("client_id: must be 1 to 65535 bytes".into());
        }
        let keep_alive = raw.keep_alive.unwrap_or(Duration::from_secs(30));
        // MQTT carries it in whole seconds, as 16 bits.
        if keep_alive.subsec_nanos() != 0 || !(1..=65535).contains(&keep_alive.as_secs()) {
            return Err("keep_alive: must be whole seconds, 1s to 65535s".into());
        }
        let stats_interval = raw.stats_interval.unwrap_or(Duration::from_secs(60));
        if stats_interval < Duration::from_secs(1) {
            return Err("stats_interval: must be at least 1s".into());
        }
        Ok(MqttConfig {
            broker,
            username: raw.username,
            password: raw.password,
            ca_file: raw.ca_file,
            client_id,
            topic_prefix,
            discovery: raw.discovery.unwrap_or(true),
            discovery_prefix,
            keep_alive,
            stats_interval,
        })
    }
}

/// Checks a piece of a topic name that wanwatch publishes under: no
/// wildcards (a publish to them is refused), no empty level at either end.
pub(crate) fn topic_part(part: &str) -> Result<(), String> {
    if part.is_empty() || part.starts_with('/') || part.ends_with('/') {
        return Err(format!(
            "`{part}` is not a topic prefix: it must not be empty, nor begin or end with `/`"
        ));
    }
    if part.contains(['+', '#', '\0']) {
        return Err(format!(
            "`{part}` holds `+`, `#` or NUL, which MQTT topics we publish to cannot have"
        ));
    }
    Ok(())
}

impl MqttConfig {
    /// The checks that need the rest of the config: each configured device
    /// gets a button, its name one level of a command topic.
    pub(crate) fn check(
        &self,
        devices: impl Iterator<Item = String>,
    ) -> Vec<(Vec<String>, String)> {
        devices
            .filter(|name| name.contains(['/', '+', '#', '\0']))
            .map(|name| {
                (
                    vec!["devices".into(), name.clone()],
                    format!(
                        "`{name}` holds `/`, `+`, `#` or NUL: with [mqtt] a device's name is a level of its button's topic"
                    ),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MqttConfig, String> {
        toml::from_str::<MqttConfig>(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn defaults_fill_in_what_is_left_out() {
        let config = parse(r#"broker = "mqtt://broker.lan""#).unwrap();
        assert_eq!(
            config.broker,
            Broker {
                host: "broker.lan".into(),
                port: 1883,
                tls: false
            }
        );
        assert_eq!(config.topic_prefix, "wanwatch");
        assert_eq!(config.discovery_prefix, "homeassistant");
        assert!(config.discovery);
        assert_eq!(config.keep_alive, Duration::from_secs(30));
        assert_eq!(config.stats_interval, Duration::from_secs(60));
        assert!(config.client_id.starts_with("wanwatch-"));
        let tls = parse(r#"broker = "mqtts://[::1]""#).unwrap();
        assert_eq!(tls.broker.port, 8883);
        assert_eq!(tls.broker.to_string(), "mqtts://[::1]:8883");
    }

    #[test]
    fn bad_values_say_what_is_wrong_and_never_repeat_a_password() {
        let error = parse(r#"broker = "mqtt://me:hunter22@broker.lan""#).unwrap_err();
        assert!(
            error.contains("credentials") && !error.contains("hunter22"),
            "{error}"
        );
        let error = parse(r#"broker = "http://broker.lan""#).unwrap_err();
        assert!(error.contains("mqtts://"), "{error}");
        let error = parse(r#"broker = "mqtt://broker.lan/topic""#).unwrap_err();
        assert!(error.contains("topic_prefix"), "{error}");
        let error = parse("broker = \"mqtt://b\"\npassword = \"x\"").unwrap_err();
        assert!(error.contains("username"), "{error}");
        let error = parse("broker = \"mqtt://b\"\nca_file = \"ca.pem\"").unwrap_err();
        assert!(error.contains("mqtts"), "{error}");
        let error = parse("broker = \"mqtt://b\"\ntopic_prefix = \"home/#\"").unwrap_err();
        assert!(error.starts_with("topic_prefix:"), "{error}");
        let error = parse("broker = \"mqtt://b\"\nkeep_alive = \"500ms\"").unwrap_err();
        assert!(error.starts_with("keep_alive:"), "{error}");
        let error = parse("broker = \"mqtt://b\"\nbrokr = 1").unwrap_err();
        assert!(error.contains("brokr"), "{error}");
    }

    #[test]
    fn the_password_is_never_shown() {
        let config =
            parse("broker = \"mqtt://b\"\nusername = \"u\"\npassword = \"hunter22\"").unwrap();
        assert!(!format!("{config:?}").contains("hunter22"));
    }
}

#[cfg(test)]
mod located {
    use std::path::Path;

    use crate::config::{Config, describe};

    fn error(text: &str) -> String {
        describe(&Config::parse(Path::new("wanwatch.toml"), text).unwrap_err())
    }

    #[test]
    fn errors_name_the_file_line_column_and_key() {
        let e =
            error("[probe]\nmin_ok = 1\n\n[mqtt]\nbroker = \"mqtt://b\"\nkeep_alive = \"1ms\"\n");
        assert!(
            e.starts_with("wanwatch.toml:4:1: mqtt: keep_alive: "),
            "{e}"
        );
        let e = error("[mqtt]\nbroker = \"mqtt://b\"\nretain = true\n");
        assert!(
            e.starts_with("wanwatch.toml:") && e.contains("retain"),
            "{e}"
        );
        let e = error(
            "[devices.\"a/b\"]\nkind = \"shelly\"\naddress = \"10.0.0.2\"\n\n[mqtt]\nbroker = \"mqtt://b\"\n",
        );
        assert!(e.starts_with("wanwatch.toml:1:1: devices.a/b: "), "{e}");
    }
}
