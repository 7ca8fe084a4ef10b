//! What a site sends its watcher, over HTTP with the site's token:
//!
//! - `POST /api/v1/sites/{site}/heartbeat`, a [`Heartbeat`]: answered
//!   `204 No Content`;
//! - `POST /api/v1/sites/{site}/reports`, an [`OutageReport`]: answered
//!   `201 Created` `{"stored": "new"}` the first time its `id` is seen for
//!   the site, and `200 OK` `{"stored": "duplicate"}` after (delivery is at
//!   least once, see [`crate::notify`]).
//!
//! Both carry `Authorization: Bearer <token>`. An unknown site or a wrong
//! token is `401`. Errors are JSON `{"error", "status"}`, as in the daemon's
//! API. Both documents are the daemon's and the watcher's shared contract:
//! fields are only ever added, and readers ignore fields they do not know.

use serde::{Deserialize, Serialize};

use crate::state::{Millis, WanState};

/// A site's name: 1 to 64 of `[-_A-Za-z0-9]`, so it is safe in a URL path,
/// a log line and a notification title.
pub fn valid_site(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One heartbeat from a site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The daemon's wall clock when it sent this: the watcher flags a site
    /// whose clock is off by more than a minute.
    pub sent_at_ms: Millis,
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The WAN state, and since when (wall clock).
    pub state: WanState,
    pub state_since_ms: Millis,
    /// The seconds between two heartbeats: the watcher may judge a site
    /// missing sooner than `missed_after` allows, never later.
    pub interval_s: u64,
    #[serde(default)]
    pub summary: Summary,
}

/// A few figures about the link, for the watcher's page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The median round trip of the `wan` targets' last round, in ms.
    pub rtt_ms: Option<f64>,
    /// The share of the last round's `wan` probes that failed, in %.
    pub loss_percent: Option<f64>,
    /// Outages that started today (UTC), from the history.
    pub outages_today: Option<u32>,
    /// The duration of the last outage, in ms.
    pub last_outage_ms: Option<Millis>,
    /// The daemon acts in a dry run (no plug, or `--dry-run`).
    #[serde(default)]
    pub dry_run: bool,
}

/// The report of an outage, sent by the site once the link has been back
/// for a stable period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutageReport {
    /// Stable for the outage: `outage-<started_at_ms>`. A report sent again
    /// (a crash between sending and recording) has the same id.
    pub id: String,
    /// When the rounds began failing, when the link was declared down, and
    /// when it was back (wall clock, ms).
    pub started_at_ms: Millis,
    pub down_at_ms: Millis,
    pub ended_at_ms: Millis,
    pub duration_ms: Millis,
    /// What the evidence said: `wan`, `local-fault` (the LAN gateway was
    /// silent too), `dns-only` or `mains-power` (see
    /// [`crate::history::Cause`]).
    pub cause: String,
    /// The same, for people: "the LAN gateway did not answer either", …
    pub evidence: String,
    pub power_cycles: Vec<ReportedCycle>,
    /// The cycle (1-based, in `power_cycles`) the link came back after.
    pub fixed_by_cycle: Option<usize>,
    /// Per target: the link before, during and after the outage.
    pub targets: Vec<ReportedTarget>,
}

#[cfg(test)]
impl OutageReport {
    /// The report of a `cause` outage from `start` to `end`, down at once,
    /// with no power cycle and no figures: for tests.
    pub(crate) fn plain(id: &str, start: Millis, end: Millis, cause: &str) -> OutageReport {
        OutageReport {
            id: id.into(),
            started_at_ms: start,
            down_at_ms: start,
            ended_at_ms: end,
            duration_ms: end - start,
            cause: cause.into(),
            evidence: format!("{cause} evidence"),
            power_cycles: Vec::new(),
            fixed_by_cycle: None,
            targets: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedCycle {
    pub at_ms: Millis,
    pub device: String,
    /// `done` or `dry-run`.
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportedTarget {
    pub name: String,
    /// The 10 minutes before the outage started.
    pub before: Quality,
    pub during: Quality,
    /// From the end of the outage to when the report was made.
    pub after: Quality,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub sent: u64,
    pub answered: u64,
    /// None when nothing was sent.
    pub loss_percent: Option<f64>,
    /// The mean round trip of the answers, in ms.
    pub rtt_mean_ms: Option<f64>,
}
