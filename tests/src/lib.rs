//! Helpers shared by the integration tests: the test plugins built by
//! build.rs, the daemon run as a process and its status file, and stand-ins for the world (a clock the test sets, a power
//! switch and a notifier that record what they are asked to do).
//!
//! The stand-ins replace the world, not the code under test: the plugins,
//! the runtime and `Actions` run for real.

pub mod http;
pub mod link;
pub mod netns;
pub mod ntfy;
pub mod pings;
pub mod pushgateway;
pub mod shelly;
pub mod watcher;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use wanwatch::actions::{Actions, Notification, Notifier, PowerSwitch};
use wanwatch::clock::Clock;
use wanwatch::plugin::{Event, Grants, HostContext, PluginSpec, Runtime, WasmSource};
use wanwatch::state::Millis;
use wanwatch::state::{Transition, WanState};

/// The component of the test plugin `name` (a package of tests/plugins/).
pub fn plugin_wasm(name: &str) -> PathBuf {
    match name {
        "init-trap" => PathBuf::from(env!("WANWATCH_TEST_PLUGIN_INIT_TRAP")),
        "latest-probe" => PathBuf::from(env!("WANWATCH_TEST_PLUGIN_LATEST_PROBE")),
        "probe-plugin" => PathBuf::from(env!("WANWATCH_TEST_PLUGIN_PROBE_PLUGIN")),
        "wrong-version" => PathBuf::from(env!("WANWATCH_TEST_PLUGIN_WRONG_VERSION")),
        _ => panic!("there is no test plugin `{name}` (see tests/build.rs)"),
    }
}

/// Skips the calling test for `reason` (no root, a tool missing), saying
/// so; the caller then returns. Under CI (`CI` set) it fails instead: there
/// everything the tests need is installed, and a skipped test would pass
/// unnoticed.
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{reason} (CI is set: tests may not skip)"
    );
    eprintln!("skipped: {reason}");
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

/// What plugins act on, recorded: a switch and a notifier behind the real
/// [`Actions`] gateway (its caps included), on `clock`.
pub struct Recorded {
    pub clock: Arc<dyn Clock>,
    pub switch: Arc<RecordingSwitch>,
    pub notifier: Arc<RecordingNotifier>,
    pub actions: Arc<Actions>,
}

impl Recorded {
    /// Cycles and notifications through `switch` and a recording notifier,
    /// at most 100 power cycles an hour.
    pub fn new(clock: Arc<dyn Clock>, switch: RecordingSwitch) -> Recorded {
        let switch = Arc::new(switch);
        let notifier = Arc::new(RecordingNotifier::default());
        let actions = Arc::new(Actions::new(
            Some(switch.clone()),
            Some(notifier.clone()),
            clock.clone(),
            100,
        ));
        Recorded {
            clock,
            switch,
            notifier,
            actions,
        }
    }

    /// What a plugin is loaded with, its key-value store in `kv_dir`.
    pub fn host(&self, kv_dir: Option<PathBuf>) -> HostContext {
        HostContext {
            actions: self.actions.clone(),
            clock: self.clock.clone(),
            kv_dir,
            heartbeats: Default::default(),
        }
    }

    /// The notifications of `plugin` so far as (title, body read as JSON):
    /// the reports of tests/plugins/probe-plugin.
    pub fn reports(&self, plugin: &str) -> Vec<(String, Value)> {
        self.notifier
            .sent
            .items()
            .into_iter()
            .filter(|n| n.plugin == plugin)
            .map(|n| {
                let body = serde_json::from_str(&n.body).unwrap_or(Value::String(n.body));
                (n.title, body)
            })
            .collect()
    }
}

/// One plugin runtime per test binary, as the daemon has one.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("the runtime starts"))
}

/// The plugin `name` from `file`, as a test loads it: granted the device
/// `modem` and notifications, a 100 ms deadline, 32 MiB of memory.
pub fn test_spec(name: &str, file: PathBuf, settings: &Value) -> PluginSpec {
    PluginSpec {
        name: name.into(),
        source: WasmSource::File(file),
        grants: Grants {
            devices: std::collections::BTreeSet::from(["modem".to_owned()]),
            notify: true,
        },
        deadline: Duration::from_millis(100),
        memory_bytes: 32 << 20,
        settings_json: settings.to_string(),
    }
}

/// A WAN transition from `previous` to `current`, with no evidence: what a
/// test sends a plugin when only the callback matters.
pub fn wan_event(previous: WanState, current: WanState) -> Event {
    Event::wan(Transition {
        previous,
        current,
        at_ms: 1,
        previous_duration_ms: 1,
        local_fault: false,
        evidence: Vec::new(),
    })
}

/// The daemon process; killed on drop if the test fails half-way.
pub struct DaemonProcess(pub Child);

impl DaemonProcess {
    /// `wanwatch run --config CONFIG`, its log (stderr) going to `log`.
    /// `binary` is the test's `env!("CARGO_BIN_EXE_wanwatch")`: only
    /// integration tests are told where cargo built it.
    pub fn run(binary: &str, config: &Path, log: impl Into<Stdio>) -> DaemonProcess {
        DaemonProcess::spawn(Command::new(binary), config, log)
    }

    /// The same, run by `launcher` (e.g. `ip netns exec NS BINARY`), which
    /// must exec the daemon so that the child is the daemon.
    pub fn spawn(mut launcher: Command, config: &Path, log: impl Into<Stdio>) -> DaemonProcess {
        DaemonProcess(
            launcher
                .args(["run", "--config"])
                .arg(config)
                .stdin(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start the daemon"),
        )
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback TCP port nothing listens on (bound, then released): a probe
/// to it is refused, or a server started later can take it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

pub fn read_status(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Waits until the status file satisfies `pred`, or fails with the last
/// status seen. Polls: the file is the daemon's only interface here.
pub fn wait_for(
    path: &Path,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < timeout {
        if let Some(status) = read_status(path) {
            if pred(&status) {
                return status;
            }
            last = Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}; last status: {last:#?}");
}
