//! Outage reports to a `wanwatch watcher`: every `[[heartbeat]] kind =
//! "wanwatch"` with `reports = true` (the default) is a sink of the outbox
//! that takes reports only.
//!
//! `POST {url}/api/v1/sites/{site}/reports` with the site's bearer token
//! and the [`OutageReport`] as JSON (see [`crate::watcher::protocol`]). The
//! watcher answers `201` for a new report and `200` for one it already has
//! (the same `id`): both are delivered. `401` (unknown site, wrong token),
//! `404` and other 4xx are permanent; 5xx, 408, 429 and no answer are
//! retried.

use reqwest::Url;

use super::delivery::{refusal, send};
use super::{DeliveryError, Secret};
use crate::heartbeat::HeartbeatConfig;
use crate::secrets::Secrets;
use crate::watcher::protocol::OutageReport;

pub struct Watcher {
    client: reqwest::Client,
    /// The site's reports endpoint.
    url: Url,
    token: Secret,
    /// `heartbeat[0] wanwatch https://host/… reports`: never the token.
    name: String,
    secrets: Secrets,
}

impl Watcher {
    /// The `index`th `[[heartbeat]]`, if it is a watcher that takes reports.
    pub fn of(config: &HeartbeatConfig, index: usize, client: reqwest::Client) -> Option<Watcher> {
        let (Some(site), Some(token)) = (&config.site, &config.token) else {
            return None;
        };
        if !takes_reports(config) {
            return None;
        }
        Some(Watcher {
            client,
            url: reports_url(&config.url, site),
            token: token.clone(),
            name: format!("{} reports", config.name(index)),
            secrets: Secrets::of_heartbeat(config),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the queue file records this sink's progress: a changed URL or
    /// site is a new sink.
    pub fn destination(&self) -> &str {
        self.url.as_str()
    }

    pub async fn post(&self, report: &OutageReport) -> Result<(), DeliveryError> {
        let request = self
            .client
            .post(self.url.clone())
            .bearer_auth(self.token.expose())
            .json(report);
        send(&self.name, &self.secrets, request, |status, body| {
            refusal(&self.name, status, body)
        })
        .await
    }
}

/// Whether this `[[heartbeat]]` is a watcher that wants outage reports.
pub fn takes_reports(config: &HeartbeatConfig) -> bool {
    config.kind == crate::heartbeat::HeartbeatKind::Wanwatch && config.reports
}

/// `{base}/api/v1/sites/{site}/reports`, under whatever path the base has
/// (a watcher behind a reverse proxy at `/wanwatch/`).
fn reports_url(base: &Url, site: &str) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["api", "v1", "sites", site, "reports"]);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_watcher_reports_url_keeps_the_base_path() {
        let url = |base: &str| reports_url(&Url::parse(base).unwrap(), "home").to_string();
        assert_eq!(
            url("https://w.example.org"),
            "https://w.example.org/api/v1/sites/home/reports"
        );
        assert_eq!(
            url("https://example.org/wanwatch/"),
            "https://example.org/wanwatch/api/v1/sites/home/reports"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/w?x=1"),
            "http://127.0.0.1:8080/w/api/v1/sites/home/reports"
        );
    }
}
