//! `clock`: the host's clock, virtual in simulation.
//!
//! WASI's clocks show the same time: a guest that reads the time through its
//! standard library (`SystemTime::now()`, `Instant::now()`) instead of this
//! import still sees the host's clock, and stays deterministic in simulation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

use super::PluginState;
use super::bindings::wanwatch::policy::clock::Host;
use crate::clock::Clock;

impl Host for PluginState {
    fn now(&mut self) -> u64 {
        self.plugin.host.clock.now_ms()
    }
}

/// `wasi:clocks/wall-clock` on the host clock.
pub(in crate::plugin) struct WallClock(pub Arc<dyn Clock>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now_ms())
    }
}

/// `wasi:clocks/monotonic-clock` on the host clock, held back so that it
/// never goes backwards when the wall clock is stepped.
pub(in crate::plugin) struct MonotonicClock {
    clock: Arc<dyn Clock>,
    /// The latest reading, in ns.
    latest: AtomicU64,
}

impl MonotonicClock {
    pub fn new(clock: Arc<dyn Clock>) -> MonotonicClock {
        MonotonicClock {
            clock,
            latest: AtomicU64::new(0),
        }
    }
}

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        let now = self.clock.now_ms().saturating_mul(1_000_000);
        self.latest.fetch_max(now, Ordering::Relaxed).max(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Millis;

    struct Settable(AtomicU64);
    impl Clock for Settable {
        fn now_ms(&self) -> Millis {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn wasi_clocks_follow_the_host_clock_and_monotonic_never_goes_back() {
        let clock = Arc::new(Settable(AtomicU64::new(5_000)));
        let wall = WallClock(clock.clone());
        let monotonic = MonotonicClock::new(clock.clone());
        assert_eq!(wall.now(), Duration::from_secs(5));
        assert_eq!(monotonic.now(), 5_000_000_000);
        clock.0.store(4_000, Ordering::Relaxed);
        assert_eq!(wall.now(), Duration::from_secs(4));
        assert_eq!(monotonic.now(), 5_000_000_000);
        clock.0.store(6_000, Ordering::Relaxed);
        assert_eq!(monotonic.now(), 6_000_000_000);
    }
}
