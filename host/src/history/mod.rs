//! The daemon's history: what happened, kept to answer questions.
//!
//! Two stores, each for its use:
//! - the daily CSV files of `[history] dir` (`daily.rs`): one row per probe,
//!   the format `wanwatch simulate` replays;
//! - the SQLite database `<state_dir>/history.db` ([`db`], on unless
//!   `[history] database = false`): every transition, mains power change,
//!   action, notification and plugin fault, the probe results per target
//!   (raw rows and per-minute and per-hour aggregates), from which the
//!   outages ([`outages`]) and the statistics ([`stats`]) are derived, and
//!   the daily CSV files exported again ([`export`]).
//!
//! The daemon writes the database through a [`Recorder`] (an
//! [`crate::events::Observer`] with a writer thread of its own, see
//! [`recorder`] for what is committed when); readers (`wanwatch stats`, the
//! HTTP API) open a [`HistoryDb`] of their own.

pub mod aggregate;
pub(crate) mod daily;
pub mod db;
pub mod export;
pub mod outages;
mod read;
pub mod recorder;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use daily::{COLUMNS, History, ReadError, Reader, Row};
pub use db::HistoryError;
pub use outages::{Cause, Outage};
pub use read::{Bucket, HistoryDb};
pub use recorder::Recorder;
pub use stats::Stats;

/// The `[history]` config section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// The directory of the daily CSV files. None: none are written.
    pub dir: Option<PathBuf>,
    /// Whether the daemon keeps the history database.
    pub database: bool,
    /// How long raw per-probe rows are kept.
    #[serde(with = "crate::config::human_duration")]
    pub raw_retention: Duration,
    /// How long the per-minute (and per-hour) aggregates and the events
    /// (transitions, actions...) are kept.
    #[serde(with = "crate::config::human_duration")]
    pub aggregate_retention: Duration,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            dir: None,
            database: true,
            raw_retention: DAY * 7,
            // humantime's "2y" is 2 × 365.25 days.
            aggregate_retention: Duration::from_secs(2 * 31_557_600),
        }
    }
}

/// The database file in a state directory.
pub fn database_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("history.db")
}

/// One event as the database stored it: a transition, mains power change,
/// action or plugin health change (never a round), with the id the
/// database gave it. Ids only grow, so a client resumes a stream after the
/// last id it saw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    /// When it happened, Unix milliseconds.
    pub at_ms: u64,
    /// `wan`, `power`, `quality`, `action` or `plugin`
    /// ([`crate::events::Observed::kind`]).
    pub kind: String,
    /// The event as JSON (`serde_json::to_value(&Observed)`).
    pub data: serde_json::Value,
}
