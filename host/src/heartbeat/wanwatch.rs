//! A `wanwatch watcher`: `POST {url}/api/v1/sites/{site}/heartbeat` with a
//! [`Heartbeat`] and the site's token (see [`crate::watcher::protocol`]).
//!
//! The summary's figures come from the published status: the `wan`
//! targets' last round, and the outages from its recent transitions (an
//! outage is a spell of `down`). `outages_today` (UTC) is left out when
//! the transitions kept do not reach back to midnight.

use super::{HeartbeatConfig, wan_round};
use crate::state::Millis;
use crate::status::Status;
use crate::watcher::protocol::{Heartbeat, Summary};

const DAY_MS: Millis = 24 * 60 * 60 * 1000;

pub(super) fn request(
    client: &reqwest::Client,
    config: &HeartbeatConfig,
    status: &Status,
    sent_at_ms: Millis,
) -> reqwest::RequestBuilder {
    let site = config.site.as_deref().unwrap_or_default();
    let mut url = config.url.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty()
            .extend(["api", "v1", "sites", site, "heartbeat"]);
    }
    let request = client
        .post(url)
        .json(&heartbeat(config, status, sent_at_ms));
    match &config.token {
        Some(token) => request.bearer_auth(token.expose()),
        None => request,
    }
}

fn heartbeat(config: &HeartbeatConfig, status: &Status, sent_at_ms: Millis) -> Heartbeat {
    let (rtt_ms, loss_percent) = wan_round(status);
    Heartbeat {
        sent_at_ms,
        version: env!("CARGO_PKG_VERSION").into(),
        state: status.state,
        state_since_ms: status.since_ms,
        interval_s: config.interval.as_secs(),
        summary: Summary {
            rtt_ms,
            loss_percent,
            outages_today: status.downs_since(sent_at_ms - sent_at_ms % DAY_MS),
            last_outage_ms: status.last_down_ms(),
            dry_run: status.dry_run,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::heartbeat::tests::status;
    use crate::state::{Transition, WanState};

    #[test]
    fn heartbeat_wanwatch_document_from_the_status() {
        let text = "[[heartbeat]]\nkind = \"wanwatch\"\nurl = \"https://watch.example/\"\n\
                    site = \"home\"\ntoken = \"s1te-token\"\ninterval = \"30s\"\n";
        let mut config = Config::parse(Path::new("t.toml"), text).expect("a valid config");
        let config = config.heartbeat.remove(0);
        let mut status = status();
        let day = 1_699_920_000_000; // 2023-11-14T00:00:00Z
        let transition = |at_ms, previous, current, previous_duration_ms| Transition {
            previous,
            current,
            at_ms,
            previous_duration_ms,
            local_fault: false,
            evidence: vec![],
        };
        status.record_transition(&transition(day - 5_000, WanState::Up, WanState::Down, 1));
        status.record_transition(&transition(
            day + 5_000,
            WanState::Down,
            WanState::Up,
            10_000,
        ));
        status.record_transition(&transition(
            day + 9_000,
            WanState::Up,
            WanState::Down,
            4_000,
        ));
        status.record_transition(&transition(
            day + 69_000,
            WanState::Down,
            WanState::Up,
            60_000,
        ));
        let beat = heartbeat(&config, &status, day + 100_000);
        assert_eq!(beat.state, WanState::Up);
        assert_eq!(beat.state_since_ms, day + 69_000);
        assert_eq!(beat.interval_s, 30);
        assert_eq!(
            beat.summary,
            Summary {
                rtt_ms: Some(13.0),
                loss_percent: beat.summary.loss_percent,
                outages_today: Some(1),
                last_outage_ms: Some(60_000),
                dry_run: false,
            }
        );
        let client = crate::notify::http_client(&crate::notify::Tuning::default()).unwrap();
        let request = request(&client, &config, &status, day).build().unwrap();
        assert_eq!(
            request.url().as_str(),
            "https://watch.example/api/v1/sites/home/heartbeat"
        );
        assert_eq!(
            request.headers()["authorization"].to_str().unwrap(),
            "Bearer s1te-token"
        );
    }
}
