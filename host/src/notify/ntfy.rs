//! Publishing to an ntfy server (<https://ntfy.sh> or a self-hosted one).
//!
//! Uses ntfy's JSON publish form (`POST <server>/` with the topic in the
//! body) rather than the header form (`POST <server>/<topic>` with
//! `X-Title`, `X-Tags`, ...): titles and tags come from plugins and the
//! config and may hold any Unicode (a German "Störung", an emoji), which
//! header values cannot carry without RFC 2047 encoding. JSON carries them
//! as they are, and leaves nothing to get wrong.
//!
//! ntfy answers errors with JSON, e.g. `{"code":42901,"http":429,"error":
//! "limit reached: too many requests","link":"..."}`; these become
//! [`DeliveryError`]s that say what to do about them.

use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::delivery::{answer_text, lateness, send};
use super::{DeliveryError, NtfyAuth, NtfyConfig};
use crate::actions::Notification;
use crate::secrets::Secrets;
use crate::state::Millis;

/// An ntfy server and topic to publish to.
pub struct Ntfy {
    client: reqwest::Client,
    config: NtfyConfig,
    /// Where JSON messages are posted: the server's root.
    endpoint: Url,
    /// `ntfy https://ntfy.sh/…`, for logs and the status. Not the topic:
    /// on a server without access control (ntfy.sh) anyone who knows it
    /// can read the notifications, so it is as secret as a password.
    name: String,
    /// The topic and credentials, to redact from the server's answers.
    secrets: Secrets,
}

/// ntfy's JSON publish form.
#[derive(Serialize)]
struct Publish<'a> {
    topic: &'a str,
    title: &'a str,
    message: String,
    priority: u8,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    click: Option<&'a str>,
}

/// ntfy's error answer; every field optional, since a proxy in front of
/// the server may answer something else entirely.
#[derive(Deserialize)]
struct ErrorAnswer {
    code: Option<u64>,
    error: Option<String>,
    link: Option<String>,
}

impl Ntfy {
    pub fn new(config: &NtfyConfig, client: reqwest::Client) -> Ntfy {
        let mut endpoint = config.server.clone();
        // A server below a path (`https://host/ntfy`) takes messages at
        // that path with a slash, not at the host's root.
        if !endpoint.path().ends_with('/') {
            endpoint.set_path(&format!("{}/", endpoint.path()));
        }
        let name = format!("ntfy {endpoint}…");
        Ntfy {
            client,
            config: config.clone(),
            endpoint,
            name,
            secrets: Secrets::of_ntfy(config),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes `n`; if it is being delivered late, the message ends with a
    /// line saying when it was raised.
    pub async fn publish(
        &self,
        n: &Notification,
        delivered_at_ms: Millis,
    ) -> Result<(), DeliveryError> {
        let message = match lateness(n, delivered_at_ms) {
            Some(late) if n.body.is_empty() => late,
            Some(late) => format!("{}\n\n{late}", n.body),
            None => n.body.clone(),
        };
        let publish = Publish {
            topic: &self.config.topic,
            title: &n.title,
            message,
            priority: self.config.priority.unwrap_or(n.priority).clamp(1, 5),
            tags: &self.config.tags,
            click: self.config.click.as_deref(),
        };
        let request = self.client.post(self.endpoint.clone()).json(&publish);
        // reqwest marks these headers sensitive.
        let request = match &self.config.auth {
            None => request,
            Some(NtfyAuth::Token(token)) => request.bearer_auth(token.expose()),
            Some(NtfyAuth::Basic { username, password }) => {
                request.basic_auth(username, Some(password.expose()))
            }
        };
        send(&self.name, &self.secrets, request, |status, body| {
            self.explain(status, body)
        })
        .await
    }

    /// An error answer as a message that says what went wrong and what to
    /// do about it.
    fn explain(&self, status: StatusCode, body: &[u8]) -> DeliveryError {
        let detail = match serde_json::from_slice::<ErrorAnswer>(body) {
            Ok(ErrorAnswer {
                code,
                error: Some(error),
                link,
            }) => {
                let code = code.map(|c| format!(", ntfy code {c}")).unwrap_or_default();
                let link = link.map(|l| format!(", see {l}")).unwrap_or_default();
                format!("{error}{code}{link}")
            }
            _ => answer_text(status, body),
        };
        let http = status.as_u16();
        let (permanent, message) = match http {
            429 => (
                false,
                format!(
                    "{}: rate limited (HTTP 429: {detail}); retrying with backoff",
                    self.name
                ),
            ),
            401 => (
                true,
                format!(
                    "{}: the server refused the credentials (HTTP 401: {detail}); check token, or username and password, in [notify.ntfy]",
                    self.name
                ),
            ),
            403 => (
                true,
                format!(
                    "{}: publishing to the topic is forbidden (HTTP 403: {detail}); give [notify.ntfy] credentials with write access to it",
                    self.name
                ),
            ),
            408 | 500..=599 => (
                false,
                format!("{}: server error (HTTP {http}: {detail})", self.name),
            ),
            _ => (
                true,
                format!(
                    "{}: the server rejected the message (HTTP {http}: {detail})",
                    self.name
                ),
            ),
        };
        DeliveryError { permanent, message }
    }
}
