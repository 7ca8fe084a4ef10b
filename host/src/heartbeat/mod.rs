//! Heartbeats: proof of life sent out of the house while the WAN is up, so
//! that something outside notices when they stop.
//!
//! Each `[[heartbeat]]` sink gets its own task, sending every `interval`
//! while the daemon runs and the WAN is up. A heartbeat that cannot leave
//! is dropped, never queued: a late heartbeat would only say the house was
//! alive when it was not.

mod config;

pub use config::{HeartbeatConfig, HeartbeatKind};
