//! wanwatch: a WAN watchdog whose decisions are made by WebAssembly policy
//! plugins.
//!
//! The data path, one module per step:
//! [`probe`] round → [`state`] machine → [`state::Transition`] →
//! [`plugin`] callbacks → [`actions`] on the world.
//! [`daemon`] drives it in real time; [`status`] records what it saw;
//! [`sim`] drives the same parts in virtual time against a simulated world;
//! [`cli`] is the command line; [`devkit`] is its `plugin` tooling for
//! plugin authors.

pub mod actions;
pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_watch;
pub mod daemon;
pub mod devkit;
pub mod drivers;
pub mod events;
pub mod fsutil;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod heartbeat;
pub mod history;
pub mod http;
pub mod human;
pub mod metrics;
pub mod monitor;
pub mod mqtt;
pub mod notify;
pub mod outage_report;
pub mod plugin;
pub mod power;
pub mod probe;
pub mod quality;
pub mod secrets;
pub mod sim;
pub mod state;
pub mod status;
pub mod systemd;
pub mod tls;
pub mod watcher;
