//! The one source of time for everything above the prober.
//!
//! The daemon runs on [`SystemClock`]; the simulator substitutes a virtual
//! clock. Plugins read time only through this trait (the `clock` import), so
//! their behaviour in simulation is deterministic.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::state::Millis;

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Millis;
}

/// Wall-clock time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis)
    }
}
