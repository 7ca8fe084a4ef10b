//! The fuzz targets' way in (fuzz/, built by cargo-fuzz, which sets
//! `cfg(fuzzing)`): the parsers of outside input that are private to their
//! modules, as the daemon calls them. Absent from every other build.
//!
//! The public parsers are called where they are: `Config::parse`,
//! `WatcherConfig::parse`, `Scenario::parse`, `history::Reader`,
//! `Challenge::parse`, `StatusFile::read`, `Queue::open`, `Window::of`, the
//! watcher's protocol types, and `Shelly::read_answer` (drivers/shelly).

pub use crate::history::daily::writer as history_writer;
pub use crate::notify::queue::{Entry as QueueEntry, Queue};
pub use crate::plugin::host::kv::Kv;
pub use crate::probe::dns::{Judgement as DnsJudgement, encode as dns_query, judge as dns_judge};
pub use crate::watcher::api::{Limit as WatcherLimit, limit as watcher_limit};
