//! POSTing notifications as JSON to a webhook (Home Assistant, n8n, a chat
//! bridge, a script).
//!
//! The document, one per notification:
//!
//! ```json
//! {"event": "notification", "title": "WAN down", "body": "...", "priority": 4,
//!  "plugin": "powercycle", "state": "down",
//!  "state_since": "2026-11-24T01:29:40Z", "state_since_ms": 1795483780000,
//!  "state_duration_ms": 32000,
//!  "raised_at": "2026-11-24T01:30:12Z", "raised_at_ms": 1795483812000,
//!  "delivered_at": "2026-11-24T01:37:20Z", "delivered_at_ms": 1795484240000,
//!  "host": "gateway-pi"}
//! ```
//!
//! `state_duration_ms` is how long the WAN had been in `state` when the
//! notification was raised; `delivered_at` later than `raised_at` tells a
//! notification that waited in the queue. Times are RFC 3339 UTC to the
//! second, with `_ms` twins in milliseconds since the Unix epoch.

use reqwest::Url;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::config::redacted_url;
use super::delivery::{answer_text, send};
use super::{DeliveryError, WebhookConfig};
use crate::actions::Notification;
use crate::human;
use crate::secrets::Secrets;
use crate::state::Millis;

pub struct Webhook {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    host: String,
    /// `webhook[0] https://host/…`: the config key and the URL's origin.
    name: String,
    /// The headers' values and the URL's path, to redact from the answers.
    secrets: Secrets,
}

impl Webhook {
    /// The `index`th configured webhook; `host` names this machine in the
    /// documents.
    pub fn new(
        config: &WebhookConfig,
        index: usize,
        client: reqwest::Client,
        host: String,
    ) -> Webhook {
        Webhook {
            client,
            url: config.url.clone(),
            headers: config.headers.clone(),
            host,
            name: format!("webhook[{index}] {}", redacted_url(&config.url)),
            secrets: Secrets::of_webhook(config),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn post(
        &self,
        n: &Notification,
        delivered_at_ms: Millis,
    ) -> Result<(), DeliveryError> {
        let request = self
            .client
            .post(self.url.clone())
            .json(&document(n, delivered_at_ms, &self.host))
            // After `json`: a configured Content-Type replaces its.
            .headers(self.headers.clone());
        send(&self.name, &self.secrets, request, |status, body| {
            let detail = answer_text(status, body);
            let http = status.as_u16();
            // As with ntfy: rate limits, timeouts and server errors pass;
            // any other refusal would be repeated.
            let permanent = !matches!(http, 408 | 429 | 500..=599);
            DeliveryError {
                permanent,
                message: format!("{}: HTTP {http}: {detail}", self.name),
            }
        })
        .await
    }
}

fn document(n: &Notification, delivered_at_ms: Millis, host: &str) -> Value {
    json!({
        "event": "notification",
        "title": n.title,
        "body": n.body,
        "priority": n.priority,
        "plugin": n.plugin,
        "state": n.wan_state,
        "state_since": human::timestamp(n.wan_since_ms),
        "state_since_ms": n.wan_since_ms,
        "state_duration_ms": n.raised_at_ms.saturating_sub(n.wan_since_ms),
        "raised_at": human::timestamp(n.raised_at_ms),
        "raised_at_ms": n.raised_at_ms,
        "delivered_at": human::timestamp(delivered_at_ms),
        "delivered_at_ms": delivered_at_ms,
        "host": host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::WanState;

    #[test]
    fn notify_webhook_document_has_every_field() {
        let n = Notification {
            title: "WAN down".into(),
            body: "modem power-cycled".into(),
            priority: 4,
            raised_at_ms: 1_700_000_000_000,
            plugin: "powercycle".into(),
            wan_state: WanState::Down,
            wan_since_ms: 1_699_999_968_000,
        };
        assert_eq!(
            document(&n, 1_700_000_428_000, "pi"),
            json!({
                "event": "notification",
                "title": "WAN down",
                "body": "modem power-cycled",
                "priority": 4,
                "plugin": "powercycle",
                "state": "down",
                "state_since": "2023-11-14T22:12:48Z",
                "state_since_ms": 1_699_999_968_000u64,
                "state_duration_ms": 32_000,
                "raised_at": "2023-11-14T22:13:20Z",
                "raised_at_ms": 1_700_000_000_000u64,
                "delivered_at": "2023-11-14T22:20:28Z",
                "delivered_at_ms": 1_700_000_428_000u64,
                "host": "pi",
            })
        );
    }
}
