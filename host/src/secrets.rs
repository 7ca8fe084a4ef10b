//! The config's secrets, and their redaction from what servers answer.
//!
//! What wanwatch writes itself never holds a secret: sinks and plugs are
//! named without their topic, URL path or credentials. An error answer,
//! though, is the server's text, and a server may repeat what it was sent:
//! a proxy quoting the request's `Authorization` header, a webhook receiver
//! quoting its own path. So each driver keeps the [`Secrets`] it sends and
//! redacts every answer with them before it enters an error message, the
//! log or the status file.

use std::borrow::Cow;

use base64::Engine as _;

use crate::config::DeviceConfig;
use crate::heartbeat::HeartbeatConfig;
use crate::notify::{NtfyAuth, NtfyConfig, WebhookConfig};

/// What a secret is replaced with: the word the configs' `Debug` uses.
pub const REDACTED: &str = "<redacted>";

/// Secrets shorter than this are not looked for: they would match ordinary
/// words and numbers of a message ("on", "401"), and a secret that short is
/// guessed sooner than read from a log.
const MIN_CHARS: usize = 4;

/// The secrets one driver sends, in each form its server could repeat.
///
/// No percent-encoded forms: no secret is sent percent-encoded but a
/// webhook's URL, whose path is taken as it is sent.
#[derive(Default)]
pub struct Secrets {
    /// Longest first, so that a secret holding another is redacted whole.
    forms: Vec<String>,
}

impl Secrets {
    /// An ntfy server's: the topic (on a server without access control it
    /// is the password), and the token or password.
    pub fn of_ntfy(config: &NtfyConfig) -> Secrets {
        let mut secrets = Secrets::default();
        secrets.add(&config.topic);
        match &config.auth {
            None => {}
            Some(NtfyAuth::Token(token)) => secrets.add(token.expose()),
            Some(NtfyAuth::Basic { username, password }) => {
                secrets.add_basic(username, password.expose())
            }
        }
        secrets
    }

    /// A webhook's: every header value, and the credential after its scheme
    /// (`Bearer <token>`); the URL's path and query (see `add_url`).
    pub fn of_webhook(config: &WebhookConfig) -> Secrets {
        let mut secrets = Secrets::default();
        // Every value is printable ASCII: the config checks it.
        for value in config.headers.values().filter_map(|v| v.to_str().ok()) {
            secrets.add(value);
            if let Some((_scheme, credential)) = value.split_once(' ') {
                secrets.add(credential.trim());
            }
        }
        secrets.add_url(&config.url);
        secrets
    }

    /// A heartbeat sink's: its token, and its URL's path and query, where
    /// Healthchecks and Uptime Kuma keep the check's secret.
    pub fn of_heartbeat(config: &HeartbeatConfig) -> Secrets {
        let mut secrets = Secrets::default();
        if let Some(token) = &config.token {
            secrets.add(token.expose());
        }
        secrets.add_url(&config.url);
        secrets
    }

    /// A URL's path and query, and the path's last segment alone, where
    /// Slack, Discord, Home Assistant, Healthchecks and Uptime Kuma keep
    /// their token.
    fn add_url(&mut self, url: &reqwest::Url) {
        if url.path() != "/" {
            self.add(url.path());
        }
        if let Some(last) = url
            .path_segments()
            .and_then(|mut s| s.rfind(|s| !s.is_empty()))
        {
            self.add(last);
        }
        if let Some(query) = url.query() {
            self.add(query);
        }
    }

    /// A Shelly plug's password, as configured and as the Basic credentials
    /// Gen1 plugs are sent (`username` is the user they are sent for).
    /// Gen2+ plugs get a Digest hash, which does not reveal it.
    pub fn of_device(config: &DeviceConfig, username: &str) -> Secrets {
        let mut secrets = Secrets::default();
        if let Some(password) = &config.password {
            secrets.add_basic(username, password);
        }
        secrets
    }

    /// `secret` as it is, and as it reads inside a JSON string (an answer
    /// quoting it as JSON escapes `"` and `\`).
    fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_CHARS {
            return;
        }
        let quoted = serde_json::Value::from(secret).to_string();
        let escaped = &quoted[1..quoted.len() - 1];
        for form in [secret, escaped] {
            if !self.forms.iter().any(|f| f == form) {
                self.forms.push(form.to_owned());
            }
        }
        self.forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// A password sent by HTTP Basic: itself, and the header's base64 of
    /// `username:password`.
    fn add_basic(&mut self, username: &str, password: &str) {
        self.add(password);
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        self.add(&basic);
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(text);
        for form in &self.forms {
            if text.contains(form.as_str()) {
                text = Cow::Owned(text.replace(form.as_str(), REDACTED));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, DeviceKind};

    fn config(text: &str) -> Config {
        Config::parse(Path::new("wanwatch.toml"), text).expect("a valid config")
    }

    #[test]
    fn ntfy_topic_token_and_basic_credentials() {
        let token = config("[notify.ntfy]\ntopic = \"wan-home\"\ntoken = \"tk_house\"\n");
        let secrets = Secrets::of_ntfy(token.notify.ntfy.as_ref().unwrap());
        assert_eq!(
            secrets.redact("401: got Bearer tk_house for wan-home"),
            "401: got Bearer <redacted> for <redacted>"
        );
        let basic = config(
            "[notify.ntfy]\ntopic = \"wan\"\nusername = \"admin\"\npassword = \"hunter2\"\n",
        );
        let secrets = Secrets::of_ntfy(basic.notify.ntfy.as_ref().unwrap());
        // base64("admin:hunter2"), as reqwest sends it.
        assert_eq!(
            secrets.redact("got Basic YWRtaW46aHVudGVyMg== (hunter2)"),
            "got Basic <redacted> (<redacted>)"
        );
        // Too short to be looked for: the topic `wan` is left alone, and
        // so is the "WAN" of a message.
        assert_eq!(secrets.redact("wan: WAN down"), "wan: WAN down");
    }

    #[test]
    fn webhook_headers_and_url_path() {
        let config = config(
            "[[notify.webhook]]\nurl = \"https://hooks.example/api/webhooks/123/s3cr3t?k=v4lue\"\n\
             headers = { Authorization = \"Bearer tok3n-X\", X-Key = \"ke\\\"y\\\\1\" }\n",
        );
        let secrets = Secrets::of_webhook(&config.notify.webhook[0]);
        assert_eq!(
            secrets.redact("no hook at /api/webhooks/123/s3cr3t for \"Bearer tok3n-X\""),
            "no hook at <redacted> for \"<redacted>\""
        );
        assert_eq!(
            secrets.redact("unknown s3cr3t, k=v4lue, tok3n-X"),
            "unknown <redacted>, <redacted>, <redacted>"
        );
        // Quoted in JSON, with its quote and backslash escaped.
        assert_eq!(
            secrets.redact(r#"{"x-key": "ke\"y\\1"}"#),
            r#"{"x-key": "<redacted>"}"#
        );
    }

    #[test]
    fn device_password_and_its_basic_form() {
        let device = DeviceConfig {
            kind: DeviceKind::Shelly,
            address: "192.0.2.1".into(),
            relay: 0,
            username: None,
            password: Some("hunter2".into()),
        };
        let secrets = Secrets::of_device(&device, "admin");
        assert_eq!(
            secrets.redact("Basic YWRtaW46aHVudGVyMg== hunter2"),
            "Basic <redacted> <redacted>"
        );
    }

    #[test]
    fn text_without_secrets_is_not_copied() {
        let secrets = Secrets::default();
        assert!(matches!(secrets.redact("plain"), Cow::Borrowed("plain")));
    }
}
