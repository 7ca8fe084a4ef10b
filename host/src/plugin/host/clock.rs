//! `clock`: the host's wall clock, virtual in simulation.
//!
//! The import is the wall clock (see [`crate::clock`]): what a policy
//! compares with the time of day, and what the instants it is given
//! (`at-ms`) are on. Durations are for timers, which run on the host's
//! monotonic timeline and do not move when the wall clock is stepped.
//!
//! WASI's clocks show the same time: a guest that reads the time through its
//! standard library (`SystemTime::now()`, `Instant::now()`) instead of this
//! import still sees the host's clocks (wall and monotonic), and stays
//! deterministic in simulation.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

use super::PluginState;
use super::bindings::wanwatch::policy::clock::Host;
use crate::clock::Clock;

impl Host for PluginState {
    fn now(&mut self) -> u64 {
        self.plugin.host.clock.wall_ms()
    }
}

/// `wasi:clocks/wall-clock` on the host clock.
pub(in crate::plugin) struct WallClock(pub Arc<dyn Clock>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.wall_ms())
    }
}

/// `wasi:clocks/monotonic-clock` on the host's timeline, held back so that
/// it never goes backwards whatever the clock it is given does.
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

/// The WASI version whose `monotonic-clock` wasmtime-wasi links (guests
/// importing an older 0.2 version are matched to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces WASI's `subscribe-duration` and `subscribe-instant`, the only
/// way a guest can block (its sockets, files and stdin are denied or
/// empty), with waits that end by the callback's deadline: a guest that
/// sleeps (`std::thread::sleep`, a `poll` with a timeout) sleeps on its own
/// time, and at its deadline it is stopped like one that loops. An
/// unbounded wait would hold its thread, its new versions and the daemon's
/// shutdown hostage.
pub(super) fn bound_waits(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, PluginState>, (ns,): (u64,)| {
            Ok((wait(store.data_mut(), Duration::from_nanos(ns))?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, PluginState>, (when,): (u64,)| {
            let state = store.data_mut();
            let now = state.plugin.host.clock.now_ms().saturating_mul(1_000_000);
            Ok((wait(state, Duration::from_nanos(when.saturating_sub(now)))?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A pollable ready after `wanted`; or, if the wait would outlast what is
/// left of the callback's own time, that time spent here and the guest
/// stopped as its deadline stops it. Stopped here rather than left to the
/// epoch: on a loaded machine the epoch can lag the clock, and the guest,
/// back from its wait, would finish as if it had kept its deadline.
fn wait(state: &mut PluginState, wanted: Duration) -> wasmtime::Result<Resource<DynPollable>> {
    let left = state.call.left(state.plugin.deadline);
    if wanted >= left {
        std::thread::sleep(left);
        state.call.deadline_hit = true;
        return Err(wasmtime::Error::msg(
            "the callback's deadline came while it waited",
        ));
    }
    let wait = state
        .table
        .push(Wait(tokio::time::Instant::now() + wanted))?;
    subscribe(&mut state.table, wait)
}

/// A wait for a moment of tokio's monotonic clock.
struct Wait(tokio::time::Instant);

impl Pollable for Wait {
    // What `#[async_trait]` would write; the trait is declared with it.
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(tokio::time::sleep_until(self.0))
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
