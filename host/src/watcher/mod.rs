//! `wanwatch watcher`: the half that runs outside the house, on a small
//! cloud machine. It expects each site's heartbeats, says DOWN when they
//! stop and RESTORED when they resume, and keeps each site's outages,
//! joined with the reports the sites send once they are back.
//!
//! [`config`] is its file, [`tracker`] decides (pure, time is an input),
//! [`store`] remembers, [`alerts`] words the notifications, [`service`]
//! ties them together, [`api`] and [`dashboard`] serve them, [`status`]
//! is `wanwatch watcher status`. See docs/watcher.md.

pub mod alerts;
pub mod api;
pub mod config;
pub mod dashboard;
pub mod protocol;
pub mod service;
pub mod status;
pub mod store;
pub mod tracker;

pub use config::WatcherConfig;
pub use service::run;
