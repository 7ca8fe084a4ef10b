//! Device drivers: what turns a plugin's "power-cycle `modem`" into a plug
//! switching off and back on.
//!
//! [`Plugs`] holds every configured plug and is the daemon's
//! [`PowerSwitch`]. Plugin threads are plain threads, and the drivers are
//! async, so each cycle runs on the daemon's tokio runtime while the plugin
//! thread waits for its outcome. [`Plugs`] also owns the rule no plug can
//! enforce by itself: one cycle at a time per device, from the request until
//! the device is confirmed back on.

pub mod digest;
pub mod shelly;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::actions::PowerSwitch;
use crate::config::DeviceConfig;
use shelly::{BackOn, ErrorKind, Shelly, ShellyError, or_unknown};

/// All configured plugs, by name.
pub struct Plugs {
    inner: Arc<Inner>,
    handle: Handle,
}

struct Inner {
    plugs: BTreeMap<String, Arc<Shelly>>,
    /// The devices with a cycle under way, and when they should be back on.
    cycles: Mutex<BTreeMap<String, Instant>>,
}

impl Plugs {
    /// `handle`: the daemon's runtime, on which the drivers run.
    pub fn new(devices: &BTreeMap<String, DeviceConfig>, handle: Handle) -> Plugs {
        Plugs::from_plugs(
            devices
                .iter()
                .map(|(name, config)| Shelly::new(name, config)),
            handle,
        )
    }

    /// From drivers set up by the caller (e.g. with other timeouts).
    pub fn from_plugs(plugs: impl IntoIterator<Item = Shelly>, handle: Handle) -> Plugs {
        Plugs {
            inner: Arc::new(Inner {
                plugs: plugs
                    .into_iter()
                    .map(|p| (p.name().to_owned(), Arc::new(p)))
                    .collect(),
                cycles: Mutex::new(BTreeMap::new()),
            }),
            handle,
        }
    }

    /// While a cycle of `device` is under way: how long until it should be
    /// back on (zero while that is being confirmed).
    pub fn under_way(&self, device: &str) -> Option<Duration> {
        lock(&self.inner.cycles)
            .get(device)
            .map(|back_on| back_on.saturating_duration_since(Instant::now()))
    }

    /// Reads each plug's identity and power-on setting, logs what it found,
    /// and returns the warnings for people: a plug that does not answer as
    /// it should, a power-on setting that leaves the modem dark after a mains
    /// failure in the off window, a relay that is off right now.
    pub async fn preflight(&self) -> Vec<String> {
        let checks = self.inner.plugs.values().map(|plug| preflight(plug));
        futures_util::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

async fn preflight(plug: &Shelly) -> Vec<String> {
    let (name, address) = (plug.name(), plug.address());
    let status = match plug.status().await {
        Ok(status) => status,
        Err(e) => {
            return vec![format!(
                "{e}: power cycles of `{name}` will fail until this is fixed"
            )];
        }
    };
    let id = &status.identity;
    tracing::info!(
        device = name,
        "plug `{name}` ({address}): Shelly {} Gen{}, firmware {}, relay {} {}, power-on {}",
        or_unknown(&id.model),
        id.generation,
        or_unknown(&id.firmware),
        status.relay,
        if status.state.output { "on" } else { "off" },
        or_unknown(&status.power_on.value)
    );
    let mut warnings = Vec::new();
    if let Some(warning) = status.power_on_warning() {
        warnings.push(format!("plug `{name}` ({address}): {warning}"));
    }
    if !status.state.output && status.state.timer.is_none() {
        warnings.push(format!(
            "plug `{name}` ({address}): relay {} is off, so the modem has no power",
            status.relay
        ));
    }
    warnings
}

impl PowerSwitch for Plugs {
    /// Runs the cycle on the runtime and waits for its outcome. Must be
    /// called from a thread that is not one of the runtime's workers (the
    /// plugin threads are not).
    fn power_cycle(&self, device: &str, off_seconds: u32) -> Result<(), String> {
        let inner = self.inner.clone();
        let device = device.to_owned();
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = done.send(inner.cycle(&device, off_seconds).await);
        });
        outcome
            .recv()
            .unwrap_or_else(|_| Err("the daemon is shutting down: power cycle abandoned".into()))
    }
}

impl Inner {
    async fn cycle(self: Arc<Self>, device: &str, off_seconds: u32) -> Result<(), String> {
        let Some(plug) = self.plugs.get(device).cloned() else {
            let known: Vec<&str> = self.plugs.keys().map(String::as_str).collect();
            return Err(format!(
                "no device named `{device}` is configured (configured: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ));
        };
        // Claimed before any request, so that two plugins asking at once
        // cannot both send an "off".
        {
            let mut cycles = lock(&self.cycles);
            if let Some(back_on) = cycles.get(device) {
                let left = back_on.saturating_duration_since(Instant::now());
                let when = if left.is_zero() {
                    "being confirmed back on".to_owned()
                } else {
                    format!("back on in ~{} s", left.as_secs_f64().ceil())
                };
                return Err(format!(
                    "a power cycle of {device} is already under way ({when})"
                ));
            }
            let off = Duration::from_secs(off_seconds.into());
            cycles.insert(device.to_owned(), Instant::now() + off);
        }
        let (started, result) = match plug.power_cycle(off_seconds).await {
            Ok(started) => {
                tracing::info!(
                    device,
                    "power cycle of {device} under way: the plug switches itself back on in ~{} s",
                    started.back_on_in.as_secs_f64().ceil()
                );
                (started, Ok(()))
            }
            // The plug accepted: the cycle is under way whatever the failed
            // read-back says, so it stays claimed and is confirmed as usual.
            Err(
                e @ ShellyError {
                    kind: ErrorKind::Unverified(_, started),
                    ..
                },
            ) => {
                tracing::warn!(device, "{e}");
                (started, Err(e.to_string()))
            }
            Err(e) => {
                lock(&self.cycles).remove(device);
                tracing::warn!(device, "{e}");
                return Err(e.to_string());
            }
        };
        lock(&self.cycles).insert(device.to_owned(), Instant::now() + started.back_on_in);
        let inner = self.clone();
        let device = device.to_owned();
        tokio::spawn(async move {
            match plug.await_back_on(&started).await {
                Ok(BackOn::ByItself) => {
                    tracing::info!(device, "{device} is back on: power cycle complete")
                }
                Ok(BackOn::SwitchedOn) => tracing::warn!(
                    device,
                    "{device} was still off without a timer after its off period (the plug lost it); wanwatch switched it on"
                ),
                Err(e) => tracing::error!(
                    device,
                    "{e}: the power cycle of {device} could not be confirmed complete"
                ),
            }
            lock(&inner.cycles).remove(&device);
        });
        result
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
