//! Uptime Kuma: a push monitor's URL (`https://kuma.example/api/push/<token>`).
//!
//! Its push API: any request to the URL is a heartbeat, with the query
//! parameters `status` (`up` or `down`; a `down` marks the monitor down at
//! once), `msg` (shown in the monitor's history) and `ping` (a response
//! time in ms, charted). So each heartbeat GETs the URL with
//! `status=up` (or `down` while the daemon is degraded, see
//! [`super::troubles`]), the summary line as `msg`, and the median round
//! trip of the `wan` targets' last round as `ping`. Other query parameters
//! of the configured URL are kept.

use super::{HeartbeatConfig, summary_line, troubles, wan_round};
use crate::status::Status;

pub(super) fn request(
    client: &reqwest::Client,
    config: &HeartbeatConfig,
    status: &Status,
) -> reqwest::RequestBuilder {
    client.get(push_url(config, status))
}

fn push_url(config: &HeartbeatConfig, status: &Status) -> reqwest::Url {
    let troubles = troubles(status);
    let mut url = config.url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !matches!(&**k, "status" | "msg" | "ping"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear().extend_pairs(kept);
        query.append_pair("status", if troubles.is_empty() { "up" } else { "down" });
        query.append_pair("msg", &summary_line(status, &troubles));
        if let Some(rtt) = wan_round(status).0 {
            query.append_pair("ping", &format!("{rtt:.1}"));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::heartbeat::tests::status;

    #[test]
    fn heartbeat_uptime_kuma_query_has_status_msg_ping_and_keeps_the_rest() {
        let text = "[[heartbeat]]\nkind = \"uptime-kuma\"\n\
                    url = \"https://kuma.example/api/push/Tok3n?status=down&x=1\"\n";
        let mut config = Config::parse(Path::new("t.toml"), text).expect("a valid config");
        let config = config.heartbeat.remove(0);
        let url = push_url(&config, &status());
        assert_eq!(url.path(), "/api/push/Tok3n");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            query,
            [
                pair("x", "1"),
                pair("status", "up"),
                pair(
                    "msg",
                    "WAN up since 2023-11-14T22:13:20Z, round trip 13.0 ms, loss 33 %"
                ),
                pair("ping", "13.0"),
            ]
        );
    }
}
