//! Helpers shared by the integration tests: the test plugins built by
//! build.rs, and stand-ins for the world (a clock the test sets, a power
//! switch and a notifier that record what they are asked to do).
//!
//! The stand-ins replace the world, not the code under test: the plugins,
//! the runtime and `Actions` run for real.

pub mod http;
pub mod ntfy;
pub mod shelly;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use wanwatch::actions::{Notification, Notifier, PowerSwitch};
use wanwatch::clock::Clock;
use wanwatch::state::Millis;

/// The component of the test plugin `name` (a package of tests/plugins/).
pub fn plugin_wasm(name: &str) -> PathBuf {
    match name {
        "init-trap" => PathBuf::from(env!("WANWATCH_TEST_PLUGIN_INIT_TRAP")),
        "probe-plugin" => PathBuf::from(env!("WANWATCH_TEST_PLUGIN_PROBE_PLUGIN")),
        "wrong-version" => PathBuf::from(env!("WANWATCH_TEST_PLUGIN_WRONG_VERSION")),
        _ => panic!("there is no test plugin `{name}` (see tests/build.rs)"),
    }
}

/// A clock that moves only when the test moves it.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_ms: Millis) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(now_ms)))
    }

    pub fn set(&self, now_ms: Millis) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// A list that other threads append to and a test can wait on.
#[derive(Debug)]
pub struct Recorder<T> {
    items: Mutex<Vec<T>>,
    changed: Condvar,
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder {
            items: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }
    }
}

impl<T: Clone + std::fmt::Debug> Recorder<T> {
    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push(&self, item: T) {
        self.lock().push(item);
        self.changed.notify_all();
    }

    pub fn items(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// Waits until `done` holds for the items, and returns them; panics,
    /// showing them, after `timeout`.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[T]) -> bool) -> Vec<T> {
        let deadline = Instant::now() + timeout;
        let mut items = self.lock();
        while !done(&items) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} waiting; recorded so far: {:#?}",
                *items
            );
            items = self
                .changed
                .wait_timeout(items, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        items.clone()
    }
}

/// A notifier that records every notification.
#[derive(Default)]
pub struct RecordingNotifier {
    pub sent: Recorder<Notification>,
}

impl Notifier for RecordingNotifier {
    fn notify(&self, notification: &Notification) -> Result<(), String> {
        self.sent.push(notification.clone());
        Ok(())
    }
}

/// A power switch that records every cycle, after taking `delay` to
/// "confirm", as a real device on the network does.
#[derive(Default)]
pub struct RecordingSwitch {
    pub delay: Duration,
    /// Device and off-time of each cycle.
    pub cycles: Recorder<(String, u32)>,
}

impl PowerSwitch for RecordingSwitch {
    fn power_cycle(&self, device: &str, off_seconds: u32) -> Result<(), String> {
        std::thread::sleep(self.delay);
        self.cycles.push((device.to_owned(), off_seconds));
        Ok(())
    }
}
