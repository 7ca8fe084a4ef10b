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
//!
//! A webhook with `reports = true` also gets each outage report (see
//! [`crate::outage_report`] and docs/outage-reports.md): the fields of
//! [`OutageReport`], with the event's name, the times for people and the
//! host:
//!
//! ```json
//! {"event": "outage-report", "id": "outage-1795483780000",
//!  "started_at": "2026-11-24T01:29:40Z", "started_at_ms": 1795483780000,
//!  "down_at_ms": 1795483789000,
//!  "ended_at": "2026-11-24T02:16:40Z", "ended_at_ms": 1795486600000,
//!  "duration_ms": 2820000, "cause": "wan", "evidence": "...",
//!  "power_cycles": [{"at_ms": 1795484080000, "device": "modem", "outcome": "done"}],
//!  "fixed_by_cycle": 1,
//!  "targets": [{"name": "cloudflare", "before": {"sent": 300, "answered": 300,
//!    "loss_percent": 0.0, "rtt_mean_ms": 11.2}, "during": {...}, "after": {...}}],
//!  "delivered_at_ms": 1795486800000, "host": "gateway-pi"}
//! ```
//!
//! A report may arrive twice (delivery is at least once): its `id` is the
//! same each time.

use reqwest::Url;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::config::redacted_url;
use super::delivery::{refusal, send};
use super::queue::Item;
use super::{DeliveryError, WebhookConfig};
use crate::actions::Notification;
use crate::human;
use crate::secrets::Secrets;
use crate::state::Millis;
use crate::watcher::protocol::OutageReport;

pub struct Webhook {
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    host: String,
    /// `webhook[0] https://host/…`: the config key and the URL's origin.
    name: String,
    /// The headers' values and the URL's path, to redact from the answers.
    secrets: Secrets,
    /// `reports = true`: outage reports come here too.
    reports: bool,
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
            reports: config.reports,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn takes_reports(&self) -> bool {
        self.reports
    }

    pub async fn post(&self, item: &Item, delivered_at_ms: Millis) -> Result<(), DeliveryError> {
        let document = match item {
            Item::Notification(n) => document(n, delivered_at_ms, &self.host),
            Item::Report(r) => report_document(r, delivered_at_ms, &self.host),
        };
        let request = self
            .client
            .post(self.url.clone())
            .json(&document)
            // After `json`: a configured Content-Type replaces its.
            .headers(self.headers.clone());
        send(&self.name, &self.secrets, request, |status, body| {
            refusal(&self.name, status, body)
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

fn report_document(r: &OutageReport, delivered_at_ms: Millis, host: &str) -> Value {
    // A struct of plain fields always serializes to an object.
    let mut document = serde_json::to_value(r).unwrap_or_default();
    if let Value::Object(fields) = &mut document {
        for (key, value) in [
            ("event", json!("outage-report")),
            ("started_at", json!(human::timestamp(r.started_at_ms))),
            ("ended_at", json!(human::timestamp(r.ended_at_ms))),
            ("delivered_at_ms", json!(delivered_at_ms)),
            ("host", json!(host)),
        ] {
            fields.insert(key.into(), value);
        }
    }
    document
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

    #[test]
    fn notify_webhook_report_document_is_the_report_with_event_and_host() {
        let report = OutageReport::plain(
            "outage-1700000000000",
            1_700_000_000_000,
            1_700_000_060_000,
            "wan",
        );
        assert_eq!(
            report_document(&report, 1_700_000_200_000, "pi"),
            json!({
                "event": "outage-report",
                "id": "outage-1700000000000",
                "started_at": "2023-11-14T22:13:20Z",
                "started_at_ms": 1_700_000_000_000u64,
                "down_at_ms": 1_700_000_000_000u64,
                "ended_at": "2023-11-14T22:14:20Z",
                "ended_at_ms": 1_700_000_060_000u64,
                "duration_ms": 60_000,
                "cause": "wan",
                "evidence": "wan evidence",
                "power_cycles": [],
                "fixed_by_cycle": null,
                "targets": [],
                "delivered_at_ms": 1_700_000_200_000u64,
                "host": "pi",
            })
        );
    }
}
