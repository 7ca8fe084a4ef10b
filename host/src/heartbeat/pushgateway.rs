//! A Prometheus Pushgateway: `PUT {url}/metrics/job/{job}/instance/{instance}`
//! with the metrics below in the Prometheus text format. PUT replaces the
//! group's metrics whole, so a metric left out (the round trip, when no
//! `wan` target answered) does not linger with an old value.
//!
//! The Pushgateway adds `push_time_seconds` to the group itself: an alert
//! on `time() - push_time_seconds{job="wanwatch"}` is the dead man's switch
//! (docs/prometheus/heartbeat.rules.yml).
//!
//! - `wanwatch_wan_up`: 1 (pushed only while the WAN is up; kept for
//!   dashboards that join it with the daemon's own metrics)
//! - `wanwatch_wan_state_since_timestamp_seconds`: since when it is up, as
//!   the daemon's own metric of that name
//! - `wanwatch_wan_rtt_seconds`: the median round trip of the `wan`
//!   targets' last round
//! - `wanwatch_wan_loss_ratio`: the share of that round's `wan` probes
//!   that failed
//! - `wanwatch_degraded`: 1 while the daemon is degraded (see
//!   [`super::troubles`])

use base64::Engine as _;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{HeartbeatConfig, troubles, wan_round};
use crate::status::Status;

pub(super) fn request(
    client: &reqwest::Client,
    config: &HeartbeatConfig,
    status: &Status,
) -> reqwest::RequestBuilder {
    let request = client
        .put(group_url(config))
        .header(
            reqwest::header::CONTENT_TYPE,
            crate::metrics::PROMETHEUS_TEXT,
        )
        .body(metrics(status));
    match &config.token {
        Some(token) => request.bearer_auth(token.expose()),
        None => request,
    }
}

/// `{url}/metrics/job/{job}/instance/{instance}`, the instance this host's
/// name unless configured.
fn group_url(config: &HeartbeatConfig) -> reqwest::Url {
    let instance = config
        .instance
        .clone()
        .unwrap_or_else(crate::notify::hostname);
    let mut url = config.url.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push("metrics");
        for (label, value) in [("job", config.job.as_str()), ("instance", &instance)] {
            // The Pushgateway's rule: a value with a `/` (or none at all)
            // goes base64url-encoded, under `{label}@base64`.
            if value.is_empty() || value.contains('/') {
                let encoded = base64::engine::general_purpose::URL_SAFE.encode(value);
                path.push(&format!("{label}@base64"));
                path.push(if encoded.is_empty() { "=" } else { &encoded });
            } else {
                path.push(label).push(value);
            }
        }
    }
    url
}

/// The group's metrics, in the Prometheus text format.
fn metrics(status: &Status) -> String {
    let mut registry = Registry::with_prefix("wanwatch");
    let mut gauge = |name: &str, help: &str, value: f64| {
        registry.register(name, help, ConstGauge::new(value));
    };
    gauge("wan_up", "1: pushed only while the WAN is up", 1.0);
    gauge(
        "wan_state_since_timestamp_seconds",
        "Since when the WAN is in its state, Unix time",
        status.since_ms as f64 / 1000.0,
    );
    let (rtt_ms, loss_percent) = wan_round(status);
    if let Some(rtt) = rtt_ms {
        gauge(
            "wan_rtt_seconds",
            "The median round trip of the wan targets' last round",
            rtt / 1000.0,
        );
    }
    if let Some(loss) = loss_percent {
        gauge(
            "wan_loss_ratio",
            "The share of the wan targets' last round that failed",
            loss / 100.0,
        );
    }
    gauge(
        "degraded",
        "1 while a plugin is quarantined or a notification sink fails",
        if troubles(status).is_empty() {
            0.0
        } else {
            1.0
        },
    );
    let mut text = String::new();
    // Writing to a String fails only if a metric's encoding does, which
    // the constant gauges above never do.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        tracing::error!("cannot encode the Pushgateway's metrics: {e}");
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::heartbeat::tests::status;

    fn config(extra: &str) -> HeartbeatConfig {
        let text = format!(
            "[[heartbeat]]\nkind = \"pushgateway\"\nurl = \"http://pgw.example:9091\"\n{extra}"
        );
        let mut config = Config::parse(Path::new("t.toml"), &text).expect("a valid config");
        config.heartbeat.remove(0)
    }

    #[test]
    fn heartbeat_pushgateway_group_url_encodes_awkward_values() {
        assert_eq!(
            group_url(&config("instance = \"pi\"\n")).as_str(),
            "http://pgw.example:9091/metrics/job/wanwatch/instance/pi"
        );
        assert_eq!(
            group_url(&config("job = \"a/b\"\ninstance = \"\"\n")).as_str(),
            "http://pgw.example:9091/metrics/job@base64/YS9i/instance@base64/="
        );
    }

    #[test]
    fn heartbeat_pushgateway_metrics_text() {
        let text = metrics(&status());
        for line in [
            "wanwatch_wan_up 1.0",
            "wanwatch_wan_state_since_timestamp_seconds 1700000000.0",
            "wanwatch_wan_rtt_seconds 0.013",
            "wanwatch_degraded 0.0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
        assert!(text.contains("wanwatch_wan_loss_ratio 0.333"), "{text}");
    }
}
