//! [`Plugin`]: one loaded plugin, its instance, and its store.
//!
//! Each instance lives in its own `Store`, so a fault is contained: the
//! store, with the instance's memory and its WASI state, is dropped and a
//! fresh one takes its place. What the plugin must not lose (key-value
//! store, timers) lives in the host's part of the store data and moves over.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::{Engine, Store};

use super::contract::{Instance, Pre};
use super::host::{self, Identity, Kept, Kv, PluginState, Timers};
use super::runtime::{EPOCH_TICK, Prepared, Ticker};
use super::{CallError, CallErrorKind, Event, PluginError, PluginHealth};
use crate::power::PowerState;
use crate::state::{Millis, WanState};

/// Longest guest error string kept, in bytes.
const MAX_GUEST_ERROR: usize = 1024;

/// Callbacks failed in a row after which a plugin is quarantined: a plugin
/// that fails every time only burns CPU up to its deadline and fills the log.
/// It is called again once a new version is swapped in (its file changed).
pub const QUARANTINE_AFTER: u32 = 5;

/// A loaded plugin. Calls into it are serialized by `&mut self`; it is
/// `Send`, so it can live on a thread of its own (see
/// [`Runner`](super::Runner)).
pub struct Plugin {
    pre: Pre,
    store: Store<PluginState>,
    /// None after a fault, until the next call instantiates afresh.
    instance: Option<Instance>,
    health: PluginHealth,
    /// The component's file, for hot reload; None for a built-in plugin.
    file: Option<PathBuf>,
    /// Its timers were held back at the last look (see
    /// [`take_due_timers`](Plugin::take_due_timers)): a storm is one fault,
    /// not one per round.
    storming: bool,
    /// Keeps the engine's epoch advancing while guest code runs.
    ticker: Ticker,
}

impl Plugin {
    /// Sets the plugin up and instantiates it.
    pub(super) fn start(
        prepared: Prepared,
        identity: Arc<Identity>,
        kv: Kv,
        timers: Timers,
    ) -> Result<Plugin, PluginError> {
        let health = PluginHealth {
            name: identity.name.clone(),
            calls: 0,
            failures: 0,
            consecutive_failures: 0,
            last_error: None,
            last_error_at_ms: None,
            version: prepared.version,
            contract: prepared.pre.contract().describe(),
            loaded_at_ms: identity.host.clock.now_ms(),
            reloads: 0,
            quarantined: false,
            callback_us: 0,
        };
        let kept = Kept {
            kv,
            timers,
            ..Kept::default()
        };
        let store = new_store(prepared.pre.engine(), PluginState::new(identity, kept));
        let mut plugin = Plugin {
            pre: prepared.pre,
            store,
            instance: None,
            health,
            file: prepared.file,
            storming: false,
            ticker: prepared.ticker,
        };
        plugin.restart().map_err(|error| PluginError::Start {
            plugin: prepared.plugin,
            origin: prepared.origin,
            error: Box::new(error),
        })?;
        if let Some(last_good) = prepared.last_good {
            last_good.keep();
        }
        Ok(plugin)
    }

    /// The file the component was loaded from, if not built in.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Compiles `bytes` and swaps them in: see [`swap`](Plugin::swap).
    pub fn reload(&mut self, runtime: &super::Runtime, bytes: &[u8]) -> Result<(), PluginError> {
        let origin = self
            .file
            .as_ref()
            .map_or_else(|| "reloaded".to_owned(), |f| f.display().to_string());
        let prepared = runtime.prepare(self.name(), &origin, bytes)?;
        self.swap(prepared)
    }

    /// Replaces the running version by `next`, between two callbacks: the
    /// old instance and its store are dropped, a new instance of `next`
    /// starts with the same key-value store and timers, and a quarantine
    /// ends, as does the last error (it was about a version no longer
    /// running, or a file this version replaced). If `next` cannot start (it
    /// traps while instantiating), the old version stays, and the error is
    /// recorded in the plugin's health.
    pub fn swap(&mut self, next: Prepared) -> Result<(), PluginError> {
        let old = std::mem::replace(&mut self.pre, next.pre);
        match self.restart() {
            Ok(()) => {
                let health = &mut self.health;
                health.version = next.version;
                health.contract = self.pre.contract().describe();
                health.loaded_at_ms = self.store.data().plugin.host.clock.now_ms();
                health.reloads += 1;
                health.quarantined = false;
                health.consecutive_failures = 0;
                health.last_error = None;
                health.last_error_at_ms = None;
                // Built-ins have no file to fall back from.
                if let Some(last_good) = next.last_good.filter(|_| self.file.is_some()) {
                    last_good.keep();
                }
                Ok(())
            }
            Err(error) => {
                // The failed instantiation discarded its store; the next call
                // instantiates the old version afresh, as after any fault.
                self.pre = old;
                let error = PluginError::Start {
                    plugin: next.plugin,
                    origin: next.origin,
                    error: Box::new(error),
                };
                self.note_error(error.to_string());
                Err(error)
            }
        }
    }

    /// Records in the plugin's health an error that happened outside a call
    /// (a new version that could not be loaded).
    pub fn note_error(&mut self, message: String) {
        self.health.last_error = Some(message);
        self.health.last_error_at_ms = Some(self.store.data().plugin.host.clock.now_ms());
    }

    pub fn name(&self) -> &str {
        &self.store.data().plugin.name
    }

    /// Calls the export that handles `event`, first creating a fresh
    /// instance if the last one was discarded.
    ///
    /// If the guest traps, runs past its deadline or out of memory, its
    /// instance is discarded, so the next call starts afresh; the error
    /// names the plugin, the callback, the reason, and ends with what the
    /// guest wrote to stderr (a Rust guest's panic message). An error string
    /// returned by the guest is a [`CallErrorKind::GuestError`] and leaves
    /// the instance in place.
    ///
    /// A quarantined plugin is not called: the error says so, and is not
    /// counted as a call. Nor is an event its contract version has no
    /// callback for (a link quality change, for a 0.1 plugin): it is no
    /// business of the plugin's, so that is `Ok`.
    pub fn call(&mut self, event: &Event) -> Result<(), CallError> {
        if !self.pre.contract().delivers(event) {
            return Ok(());
        }
        if self.health.quarantined {
            return Err(CallError {
                plugin: self.health.name.clone(),
                callback: callback(event),
                kind: CallErrorKind::Quarantined,
                message: format!(
                    "quarantined after {QUARANTINE_AFTER} failures in a row, until its file changes"
                ),
                stderr: None,
            });
        }
        let started = std::time::Instant::now();
        let result = self.deliver(event);
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.persist();
        let health = &mut self.health;
        health.calls += 1;
        health.callback_us = health.callback_us.saturating_add(took);
        match &result {
            Ok(()) => health.consecutive_failures = 0,
            Err(error) => {
                health.failures += 1;
                health.consecutive_failures = health.consecutive_failures.saturating_add(1);
                health.last_error = Some(error.to_string());
                health.last_error_at_ms = Some(self.store.data().plugin.host.clock.now_ms());
                if health.consecutive_failures >= QUARANTINE_AFTER {
                    health.quarantined = true;
                    tracing::error!(
                        plugin = %health.name,
                        "plugin quarantined after {QUARANTINE_AFTER} failures in a row: it is not called until its file changes"
                    );
                }
            }
        }
        result
    }

    /// Discards the current instance, if any, and creates a fresh one now,
    /// keeping the key-value store and the timers: what a fault does, on
    /// purpose (for instance, to measure what a fault costs).
    pub fn restart(&mut self) -> Result<(), CallError> {
        if self.instance.take().is_some() {
            self.discard();
        }
        self.begin();
        let instance = self.instantiate()?;
        self.instance = Some(instance);
        Ok(())
    }

    /// When the earliest armed timer is due.
    pub fn next_timer(&self) -> Option<Millis> {
        self.store.data().kept.timers.next()
    }

    /// Takes over from the same plugin loaded before with another config,
    /// now stopped: its timers (if it stopped in time to hand them over),
    /// and its key-value store as it left it on disk.
    pub fn take_over(&mut self, predecessor: Option<Plugin>) {
        if let Some(mut predecessor) = predecessor {
            predecessor.hand_timers_to(self);
        }
        let state = self.store.data_mut();
        let plugin = &state.plugin;
        let now = plugin.host.clock.now_ms();
        match Kv::load(&plugin.name, plugin.host.kv_dir.as_deref(), now) {
            Ok(kv) => state.kept.kv = kv,
            Err(e) => {
                let message = format!("cannot read its key-value store again: {e}");
                self.note_error(message);
            }
        }
    }

    /// Moves this plugin's pending timers to `successor`, the same plugin
    /// loaded again with another config, so that re-configuring a plugin
    /// loses none of its timers (its key-value store is on disk already).
    pub fn hand_timers_to(&mut self, successor: &mut Plugin) {
        let from = &mut self.store.data_mut().kept.timers;
        successor.store.data_mut().kept.timers.take_over(from);
    }

    /// Removes and returns the timers due at or before `now`, earliest first
    /// (ties by name): the caller then delivers each as [`Event::Timer`].
    /// A plugin whose timers fire faster than the host allows (see
    /// `timers.rs`) gets the rest later, and the storm counted as a fault.
    pub fn take_due_timers(&mut self, now: Millis) -> Vec<String> {
        let (due, stormed) = self.store.data_mut().kept.timers.take_due(now);
        if stormed && !self.storming {
            let message = "timer storm: its timers fire faster than one a second on average; the rest wait their turn".to_owned();
            tracing::warn!(plugin = %self.health.name, "{message}");
            self.health.failures += 1;
            self.note_error(message);
        }
        self.storming = stormed;
        due
    }

    pub fn health(&self) -> PluginHealth {
        self.health.clone()
    }

    /// Saves what the last callback changed of what the plugin keeps on
    /// disk: once per callback, however many changes it made. A failure
    /// shows in the plugin's health; the data stays in memory and the next
    /// callback tries again.
    fn persist(&mut self) {
        let state = self.store.data_mut();
        let clock = state.plugin.host.clock.clone();
        if let Err(e) = state.kept.save(&self.health.name, &*clock) {
            self.note_error(e);
        }
    }

    fn deliver(&mut self, event: &Event) -> Result<(), CallError> {
        let _ticking = self.ticker.running();
        self.begin();
        let instance = match self.instance.take() {
            Some(instance) => instance,
            None => self.instantiate()?,
        };
        let callback = callback(event);
        // Plugins read the wall clock (`clock.now`): instants they are given
        // are on it too.
        let wall = crate::clock::offset(&*self.store.data().plugin.host.clock);
        let outcome = instance.deliver(&mut self.store, event, wall);
        match outcome {
            Ok(result) => {
                self.instance = Some(instance);
                result.map_err(|message| {
                    let message = host::shown(&message, MAX_GUEST_ERROR);
                    self.error(callback, CallErrorKind::GuestError, message)
                })
            }
            // `instance` is dropped with its store.
            Err(trap) => Err(self.fault(callback, &trap)),
        }
    }

    /// Starts the clock of a callback (or an instantiation, which runs guest
    /// code too) and arms its deadline.
    fn begin(&mut self) {
        let state = self.store.data_mut();
        state.call.start();
        state.stderr.clear();
        let deadline = state.plugin.deadline;
        self.store
            .set_epoch_deadline(host::ticks(deadline, EPOCH_TICK));
    }

    fn instantiate(&mut self) -> Result<Instance, CallError> {
        let _ticking = self.ticker.running();
        self.pre
            .instantiate(&mut self.store)
            .map_err(|trap| self.fault("instantiate", &trap))
    }

    /// Makes a [`CallError`] of a trap, then discards the store.
    fn fault(&mut self, callback: &'static str, trap: &wasmtime::Error) -> CallError {
        let state = self.store.data();
        let (kind, message) = if state.call.deadline_hit {
            let message = format!(
                "ran for more than {} of its own time (time waiting in `power` and `notify` not counted)",
                humantime::format_duration(state.plugin.deadline)
            );
            (CallErrorKind::Deadline, message)
        } else if let Some(desired) = state.memory.denied {
            let limit = state.plugin.memory_bytes;
            let message = if desired > limit {
                format!(
                    "tried to grow its memory to {desired} bytes, beyond its limit of {limit} bytes (`memory_mib`)"
                )
            } else {
                format!("the host could not grow its memory: {}", trap.root_cause())
            };
            (CallErrorKind::OutOfMemory, message)
        } else {
            let message = match trap.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => trap.to_string(),
                None => trap.root_cause().to_string(),
            };
            (CallErrorKind::Trap, message)
        };
        tracing::debug!(plugin = %state.plugin.name, callback, "trap details: {trap:?}");
        let error = self.error(callback, kind, message);
        self.discard();
        error
    }

    fn error(&self, callback: &'static str, kind: CallErrorKind, message: String) -> CallError {
        let state = self.store.data();
        CallError {
            plugin: state.plugin.name.clone(),
            callback,
            kind,
            message,
            stderr: state.stderr.text(),
        }
    }

    /// Replaces the store with a fresh one, carrying over what must survive.
    fn discard(&mut self) {
        let state = self.store.data_mut();
        let kept = std::mem::take(&mut state.kept);
        let identity = Arc::clone(&state.plugin);
        self.store = new_store(self.pre.engine(), PluginState::new(identity, kept));
        self.instance = None;
    }
}

/// A store with the plugin's memory limit and its deadline.
fn new_store(engine: &Engine, state: PluginState) -> Store<PluginState> {
    let deadline = state.plugin.deadline;
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    store.epoch_deadline_callback(move |mut store| {
        Ok(store.data_mut().call.on_epoch(deadline, EPOCH_TICK))
    });
    store
}

/// The export `event` goes to, as named in the .wit.
fn callback(event: &Event) -> &'static str {
    match event {
        Event::Wan(e) => match e.transition.current {
            WanState::Up => "on-wan-up",
            WanState::Sick => "on-wan-sick",
            WanState::Down => "on-wan-down",
        },
        Event::Power(p) => match p.current {
            PowerState::Out => "on-power-out",
            PowerState::On => "on-power-restored",
        },
        Event::Timer(_) => "on-timer",
        Event::Quality(_) => "on-link-quality",
    }
}
