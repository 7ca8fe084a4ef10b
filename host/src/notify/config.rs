//! The `[notify]` section: which sinks, with what credentials, validated
//! as it is parsed so that a mistake is reported with its line.

use std::collections::BTreeMap;
use std::fmt;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer};

/// The `[notify]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `[notify.ntfy]`: publish to an ntfy server.
    pub ntfy: Option<NtfyConfig>,
    /// `[[notify.webhook]]`: POST a JSON document to each.
    pub webhook: Vec<WebhookConfig>,
    /// How many undelivered notifications the queue keeps; when it is full
    /// the oldest is dropped.
    #[serde(deserialize_with = "at_least_one")]
    pub queue_max: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            ntfy: None,
            webhook: Vec::new(),
            // A day-long outage with a notification every quarter of an
            // hour, in a file of some 50 KB.
            queue_max: 100,
        }
    }
}

/// Whether any sink is configured; without one the daemon keeps its
/// dry-run notifier, which only logs.
pub fn is_configured(config: &NotifyConfig) -> bool {
    config.ntfy.is_some() || !config.webhook.is_empty()
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom(
            "must be at least 1 (the queue holds the notifications waiting for the WAN)",
        ));
    }
    Ok(n)
}

/// `[notify.ntfy]`, validated: the topic follows ntfy's rules, the URLs
/// parse, and at most one kind of credentials is given.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawNtfyConfig")]
pub struct NtfyConfig {
    /// The server, e.g. `https://ntfy.sh` or a self-hosted one.
    pub server: Url,
    /// 1 to 64 characters of `[-_A-Za-z0-9]`.
    pub topic: String,
    pub auth: Option<NtfyAuth>,
    /// ntfy tags; those that name an emoji are shown as one.
    pub tags: Vec<String>,
    /// Opened when the notification is tapped.
    pub click: Option<String>,
    /// Replaces the priority the plugin gave (1 to 5).
    pub priority: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NtfyAuth {
    /// `Authorization: Bearer <token>` (an ntfy access token).
    Token(Secret),
    /// `Authorization: Basic ...`.
    Basic { username: String, password: Secret },
}

/// The section as written; [`NtfyConfig`] is what it means.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNtfyConfig {
    #[serde(default = "default_server")]
    server: HttpUrl,
    topic: Topic,
    token: Option<Secret>,
    username: Option<String>,
    password: Option<Secret>,
    #[serde(default)]
    tags: Vec<String>,
    click: Option<AnyUrl>,
    priority: Option<Priority>,
}

fn default_server() -> HttpUrl {
    HttpUrl(Url::parse("https://ntfy.sh").expect("a literal URL"))
}

impl TryFrom<RawNtfyConfig> for NtfyConfig {
    type Error = String;

    fn try_from(raw: RawNtfyConfig) -> Result<Self, String> {
        let auth = match (raw.token, raw.username, raw.password) {
            (None, None, None) => None,
            (Some(token), None, None) => Some(NtfyAuth::Token(token)),
            (None, Some(username), Some(password)) => Some(NtfyAuth::Basic { username, password }),
            (Some(_), _, _) => {
                return Err("give either `token` or `username` and `password`, not both".into());
            }
            (None, Some(_), None) => return Err("`username` needs a `password`".into()),
            (None, None, Some(_)) => return Err("`password` needs a `username`".into()),
        };
        Ok(NtfyConfig {
            server: raw.server.0,
            topic: raw.topic.0,
            auth,
            tags: raw.tags,
            click: raw.click.map(|c| c.0.into()),
            priority: raw.priority.map(|p| p.0),
        })
    }
}

/// `[[notify.webhook]]`.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawWebhookConfig")]
pub struct WebhookConfig {
    pub url: Url,
    /// Sent with every request; values are marked sensitive, so that not
    /// even reqwest's own debug output shows them.
    pub headers: HeaderMap,
    /// Whether outage reports are posted here too (default false).
    pub reports: bool,
}

/// Shows the header names only, and the URL's origin only: webhook URLs
/// often carry their secret in the path.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redacted_url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("reports", &self.reports)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhookConfig {
    url: HttpUrl,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    reports: bool,
}

impl TryFrom<RawWebhookConfig> for WebhookConfig {
    type Error = String;

    fn try_from(raw: RawWebhookConfig) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in raw.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: `{name}` is not a valid HTTP header name"))?;
            // The value is not quoted back: it may be a secret.
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                format!("headers: the value of `{name}` is not a valid HTTP header value (printable ASCII only)")
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(WebhookConfig {
            url: raw.url.0,
            headers,
            reports: raw.reports,
        })
    }
}

/// A password or token: deserialized like a string, never shown.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An ntfy topic: 1 to 64 characters of `[-_A-Za-z0-9]`, as ntfy requires.
struct Topic(String);

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let valid = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not an ntfy topic: use 1 to 64 letters, digits, `-` and `_`"
            )));
        }
        Ok(Topic(s))
    }
}

/// An http(s) URL without credentials in it: credentials have their own
/// keys, so that the URL can be logged.
pub(crate) struct HttpUrl(pub(crate) Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let url = Url::parse(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{s}` is not a URL ({e}); write e.g. \"https://ntfy.example.org\""
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not an http:// or https:// URL"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not quoted back: it holds a password.
            return Err(serde::de::Error::custom(
                "the URL contains credentials; give them as `username`/`password` or `token` (ntfy) or in `headers` (webhook)",
            ));
        }
        Ok(HttpUrl(url))
    }
}

/// Any absolute URL (ntfy's click action also opens `mailto:` or `geo:`).
struct AnyUrl(Url);

impl<'de> Deserialize<'de> for AnyUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Url::parse(&s)
            .map(AnyUrl)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a URL ({e})")))
    }
}

struct Priority(u8);

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = i64::deserialize(d)?;
        match u8::try_from(p) {
            Ok(p @ 1..=5) => Ok(Priority(p)),
            _ => Err(serde::de::Error::custom(format!(
                "is {p}; ntfy priorities go from 1 (min) to 5 (urgent)"
            ))),
        }
    }
}

/// The scheme, host and port of a URL, and `/…` when there is more: what
/// logs may show of a URL whose path may be a secret.
pub(crate) fn redacted_url(url: &Url) -> String {
    let origin = url.origin().ascii_serialization();
    if url.path() == "/" && url.query().is_none() {
        origin
    } else {
        format!("{origin}/…")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        Config::parse(Path::new("wanwatch.toml"), text)
            .map(|c| c.notify)
            .map_err(|errors| crate::config::describe(&errors))
    }

    #[test]
    fn notify_defaults_have_no_sink() {
        let config = parse("").unwrap();
        assert!(!is_configured(&config));
        assert_eq!(config.queue_max, 100);
    }

    #[test]
    fn notify_ntfy_defaults_to_the_public_server() {
        let config = parse("[notify.ntfy]\ntopic = \"wan-home_1\"\n").unwrap();
        let ntfy = config.ntfy.unwrap();
        assert_eq!(ntfy.server.as_str(), "https://ntfy.sh/");
        assert_eq!(ntfy.topic, "wan-home_1");
        assert_eq!(ntfy.auth, None);
    }

    #[test]
    fn notify_secrets_are_redacted() {
        let config = parse(
            "[notify.ntfy]\ntopic = \"t\"\nusername = \"me\"\npassword = \"hunter2\"\n\
             [[notify.webhook]]\nurl = \"https://hooks.example/api/webhooks/123/s3cr3t\"\n\
             headers = { Authorization = \"Bearer tok3n\" }\n",
        )
        .unwrap();
        let debug = format!("{config:?}");
        for secret in ["hunter2", "s3cr3t", "tok3n"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("https://hooks.example/…"), "{debug}");
        assert!(debug.contains("authorization"), "{debug}");
        assert!(format!("{:?}", Secret::new("x")) == "<redacted>");
    }

    #[test]
    fn notify_bad_topic_is_located() {
        assert_eq!(
            parse("[notify.ntfy]\ntopic = \"wan alerts!\"\n").unwrap_err(),
            "wanwatch.toml:2:9: notify.ntfy.topic: `wan alerts!` is not an ntfy topic: use 1 to 64 letters, digits, `-` and `_`"
        );
        let long = "x".repeat(65);
        assert!(parse(&format!("[notify.ntfy]\ntopic = \"{long}\"\n")).is_err());
    }

    #[test]
    fn notify_conflicting_credentials_are_rejected() {
        let e = parse(
            "[notify.ntfy]\ntopic = \"t\"\ntoken = \"tk\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("wanwatch.toml:1:1: notify.ntfy: give either `token`"),
            "{e}"
        );
        let e = parse("[notify.ntfy]\ntopic = \"t\"\nusername = \"u\"\n").unwrap_err();
        assert!(
            e.ends_with("notify.ntfy: `username` needs a `password`"),
            "{e}"
        );
    }

    #[test]
    fn notify_bad_values_name_their_key() {
        let e = parse("[notify.ntfy]\ntopic = \"t\"\npriority = 7\n").unwrap_err();
        assert_eq!(
            e,
            "wanwatch.toml:3:12: notify.ntfy.priority: is 7; ntfy priorities go from 1 (min) to 5 (urgent)"
        );
        let e = parse("[notify.ntfy]\ntopic = \"t\"\nserver = \"ftp://x\"\n").unwrap_err();
        assert!(
            e.contains("notify.ntfy.server: `ftp://x` is not an http:// or https:// URL"),
            "{e}"
        );
        let e = parse("[notify.ntfy]\ntopic = \"t\"\nserver = \"https://u:pw@x\"\n").unwrap_err();
        assert!(
            e.contains("contains credentials") && !e.contains("pw@"),
            "{e}"
        );
        let e = parse("[notify]\nqueue_max = 0\n").unwrap_err();
        assert!(
            e.starts_with("wanwatch.toml:2:13: notify.queue_max: must be at least 1"),
            "{e}"
        );
        let e = parse(
            "[[notify.webhook]]\nurl = \"http://127.0.0.1/\"\nheaders = { \"bad name\" = \"v\" }\n",
        )
        .unwrap_err();
        assert!(
            e.contains("notify.webhook[0]: headers: `bad name` is not a valid HTTP header name"),
            "{e}"
        );
        let e = parse("[notify.ntfy]\ntopic = \"t\"\ntitle = \"x\"\n").unwrap_err();
        assert!(
            e.starts_with("wanwatch.toml:3:1: notify.ntfy.title: unknown field `title`"),
            "{e}"
        );
    }
}
