//! Healthchecks (healthchecks.io or self-hosted): the check's ping URL.
//!
//! Its pinging API: a request (HEAD, GET or POST) to the ping URL signals
//! success; to the ping URL with `/fail` appended, a failure; the first
//! 100 kB of a POST's body are kept as the ping's log; the answer is
//! `200 OK` with the text `OK`. So each heartbeat POSTs a one-line summary
//! (`WAN up since …, round trip …`) to the URL, or to `{url}/fail` while
//! the daemon is degraded (see [`super::troubles`]), so that Healthchecks
//! alerts at once on a watchdog that still runs but can no longer act or
//! tell. The query of the URL (`?create=1`, `?rid=`) is kept.

use super::{HeartbeatConfig, summary_line, troubles};
use crate::status::Status;

pub(super) fn request(
    client: &reqwest::Client,
    config: &HeartbeatConfig,
    status: &Status,
) -> reqwest::RequestBuilder {
    let troubles = troubles(status);
    client
        .post(ping_url(config, !troubles.is_empty()))
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(summary_line(status, &troubles))
}

/// The ping URL, with `/fail` appended when `failed`.
fn ping_url(config: &HeartbeatConfig, failed: bool) -> reqwest::Url {
    let mut url = config.url.clone();
    if failed && let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().push("fail");
    }
    url
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn config(url: &str) -> HeartbeatConfig {
        let text = format!("[[heartbeat]]\nkind = \"healthchecks\"\nurl = \"{url}\"\n");
        let mut config = Config::parse(Path::new("t.toml"), &text).expect("a valid config");
        config.heartbeat.remove(0)
    }

    #[test]
    fn heartbeat_healthchecks_fail_is_appended_before_the_query() {
        let plain = config("https://hc-ping.com/0d33-uuid");
        assert_eq!(
            ping_url(&plain, false).as_str(),
            "https://hc-ping.com/0d33-uuid"
        );
        assert_eq!(
            ping_url(&plain, true).as_str(),
            "https://hc-ping.com/0d33-uuid/fail"
        );
        let slug = config("https://hc.example/ping/key/wan-home/?create=1");
        assert_eq!(
            ping_url(&slug, true).as_str(),
            "https://hc.example/ping/key/wan-home/fail?create=1"
        );
    }
}
