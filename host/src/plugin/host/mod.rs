//! The host side of the `policy` world: what a plugin's imports do.
//!
//! One module per capability, like Spin's factors: each implements the
//! generated `Host` trait of its interface in the latest contract for
//! [`PluginState`], the data of a plugin's `Store`. Older contracts'
//! imports are adapters that forward to them ([`since_v0_1_0`]).
//! [`add_to_linker`] wires every version's, and WASI, into the one linker of
//! the process.

mod clock;
mod heartbeats;
pub(crate) mod kv;
mod log;
mod notify;
mod power;
mod settings;
pub(super) mod since_v0_1_0;
mod timers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub(super) use self::kv::Kv;
use self::log::LogBudget;
pub(super) use self::timers::Timers;
use super::stderr::StderrTail;
use super::{Grants, HostContext};

/// Rust bindings of the latest contract, `wit/since_v0.2.0/policy.wit`,
/// generated at compile time.
pub(super) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.2.0",
        world: "policy",
    });
}

pub(super) use bindings::wanwatch::policy::types as wit;
pub(super) use bindings::{Policy, PolicyPre};

/// Adds WASI (sandboxed by each store's [`WasiCtx`], see
/// [`PluginState::new`]) and the `policy` imports of every contract version
/// to `linker`: their interfaces are named by version
/// (`wanwatch:policy/kv@0.1.0`), so they sit side by side.
pub(super) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    // Guests built for wasm32-wasip2 import WASI whether they use it or not
    // (the standard library is built on it), so it must be linked; what it
    // can reach is decided per store.
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    clock::bound_waits(linker)?;
    since_v0_1_0::Policy::add_to_linker::<_, HasSelf<_>>(linker, |state| state)?;
    Policy::add_to_linker::<_, HasSelf<_>>(linker, |state| state)
}

/// Actions one callback may request. A policy asks for one or two; more is
/// a bug or an attack, and each one reaches a device or a person.
pub(super) const MAX_ACTIONS_PER_CALL: u32 = 4;

/// What does not change over a plugin's life: who it is and what it may do.
pub(super) struct Identity {
    pub name: String,
    pub grants: Grants,
    pub settings_json: String,
    pub host: HostContext,
    /// How long one callback may run, not counting time blocked in `power`,
    /// `notify` and log writes.
    pub deadline: Duration,
    pub memory_bytes: usize,
}

/// What survives re-instantiation: moved from a discarded store into the
/// fresh one, so a plugin that faults keeps its memory and its timers.
#[derive(Default)]
pub(super) struct Kept {
    pub kv: Kv,
    pub timers: Timers,
    pub log: LogBudget,
    /// So that a full disk is logged once, not at every callback.
    pub saving: crate::fsutil::Failing,
}

impl Kept {
    /// Saves what changed of the key-value store and the timers of
    /// `plugin`; a failure is logged once per change (see
    /// [`Failing`](crate::fsutil::Failing)) and returned.
    pub fn save(&mut self, plugin: &str, clock: &dyn crate::clock::Clock) -> Result<(), String> {
        let kv = self.kv.save();
        let timers = self.timers.save(clock);
        let saved = kv.and(timers);
        self.saving.outcome(
            format_args!("what plugin `{plugin}` keeps (key-value store, timers)"),
            saved.clone(),
        );
        saved
    }
}

/// The data of a plugin's `Store`: one per instance.
pub(super) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub plugin: Arc<Identity>,
    pub kept: Kept,
    pub memory: MemoryLimit,
    pub call: CallClock,
    pub stderr: StderrTail,
}

impl PluginState {
    pub fn new(plugin: Arc<Identity>, kept: Kept) -> PluginState {
        let stderr = StderrTail::default();
        // No preopened directories, environment, arguments or stdin, and no
        // network: everything a plugin can do goes through the policy
        // imports. stdout is discarded (the builder's default); stderr is
        // kept for error reports; the clocks are the host's.
        let clock = &plugin.host.clock;
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone())
            .wall_clock(clock::WallClock(clock.clone()))
            .monotonic_clock(clock::MonotonicClock::new(clock.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(seed) = clock.random_seed() {
            use rand::SeedableRng;
            use rand::rngs::StdRng;
            // All three sources: std takes a HashMap's keys from
            // `insecure-seed`, getrandom reads `random`.
            wasi.secure_random(StdRng::seed_from_u64(seed))
                .insecure_random(StdRng::seed_from_u64(!seed))
                .insecure_random_seed(u128::from(seed));
        }
        let wasi = wasi.build();
        PluginState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryLimit::new(plugin.memory_bytes),
            plugin,
            kept,
            call: CallClock::new(),
            stderr,
        }
    }

    /// Counts an action (a power cycle or a notification) requested by the
    /// current callback: past [`MAX_ACTIONS_PER_CALL`], the reason it is
    /// refused. Said once per callback in the log, and not journalled, so
    /// that a flood cannot push the real actions out of the journal.
    fn admit_action(&mut self) -> Result<(), String> {
        self.call.actions = self.call.actions.saturating_add(1);
        if self.call.actions <= MAX_ACTIONS_PER_CALL {
            return Ok(());
        }
        let reason =
            format!("refused: more than {MAX_ACTIONS_PER_CALL} actions requested in one callback");
        if self.call.actions == MAX_ACTIONS_PER_CALL + 1 {
            tracing::warn!(
                plugin = %self.plugin.name,
                "{reason}; the rest of this callback's requests are refused too"
            );
        }
        Err(reason)
    }

    /// Runs `f`, a host call that may block (a device, a notifier, the
    /// disk), and books its time as host time, so that it does not count
    /// against the plugin's deadline.
    fn blocking<R>(&mut self, f: impl FnOnce(&mut PluginState) -> R) -> R {
        let start = Instant::now();
        let result = f(self);
        self.call.host_time += start.elapsed();
        result
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for PluginState {}

/// The time a callback has used: wall time since it began minus the time it
/// spent blocked in host calls.
pub(super) struct CallClock {
    started: Instant,
    host_time: Duration,
    /// Set when the deadline interrupted the guest.
    pub deadline_hit: bool,
    /// Actions requested so far (see [`PluginState::admit_action`]).
    actions: u32,
}

impl CallClock {
    fn new() -> CallClock {
        CallClock {
            started: Instant::now(),
            host_time: Duration::ZERO,
            deadline_hit: false,
            actions: 0,
        }
    }

    /// Starts timing a new callback.
    pub fn start(&mut self) {
        *self = CallClock::new();
    }

    /// The guest's own time so far.
    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.host_time)
    }

    /// What is left of the guest's `deadline`.
    fn left(&self, deadline: Duration) -> Duration {
        deadline.saturating_sub(self.guest_time())
    }

    /// The epoch-deadline callback: lets the guest run on until its own time
    /// reaches `deadline`, then interrupts it.
    pub fn on_epoch(&mut self, deadline: Duration, tick: Duration) -> UpdateDeadline {
        match deadline.checked_sub(self.guest_time()) {
            Some(left) if !left.is_zero() => UpdateDeadline::Continue(ticks(left, tick)),
            _ => {
                self.deadline_hit = true;
                UpdateDeadline::Interrupt
            }
        }
    }
}

/// How many epoch ticks cover `time` (at least one).
pub(super) fn ticks(time: Duration, tick: Duration) -> u64 {
    let tick = tick.as_nanos().max(1);
    time.as_nanos().div_ceil(tick).clamp(1, u64::MAX.into()) as u64
}

/// The store's memory limit: [`StoreLimits`] with growth failures turned into
/// traps, plus a note of the denied growth so the error can say "out of
/// memory" rather than just "trap".
pub(super) struct MemoryLimit {
    limits: StoreLimits,
    /// The size the guest asked for when its growth was denied.
    pub denied: Option<usize>,
}

impl MemoryLimit {
    fn new(bytes: usize) -> MemoryLimit {
        MemoryLimit {
            limits: StoreLimitsBuilder::new()
                .memory_size(bytes)
                .trap_on_grow_failure(true)
                .build(),
            denied: None,
        }
    }
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let verdict = self.limits.memory_growing(current, desired, maximum);
        if verdict.is_err() {
            self.denied = Some(desired);
        }
        verdict
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.denied.get_or_insert(0);
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// `text` made safe for a log line or an error message: control characters
/// escaped, cut to `max` bytes. Plugins choose these strings.
pub(super) fn shown(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `name` as a TOML key in `[plugins.NAME]`, quoted when it must be.
pub(super) fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("a\nb", 10), "a\\nb");
        assert_eq!(shown("héllo world", 3), "hé…");
    }

    #[test]
    fn toml_key_quotes_only_when_needed() {
        assert_eq!(toml_key("power-cycle_2"), "power-cycle_2");
        assert_eq!(toml_key("my.plugin"), "\"my.plugin\"");
    }

    #[test]
    fn ticks_round_up_and_never_reach_zero() {
        let tick = Duration::from_millis(5);
        assert_eq!(ticks(Duration::from_millis(100), tick), 20);
        assert_eq!(ticks(Duration::from_millis(101), tick), 21);
        assert_eq!(ticks(Duration::ZERO, tick), 1);
    }

    #[test]
    fn deadline_counts_only_guest_time() {
        let tick = Duration::from_millis(5);
        let mut clock = CallClock::new();
        // Long past the deadline in wall time, but all but 40 ms of it in
        // host calls: 60 ms (12 ticks) left.
        clock.started -= Duration::from_secs(1);
        clock.host_time = Duration::from_secs(1) - Duration::from_millis(40);
        assert!(matches!(
            clock.on_epoch(Duration::from_millis(100), tick),
            UpdateDeadline::Continue(n) if (11..=12).contains(&n)
        ));
        assert!(!clock.deadline_hit);
        clock.host_time = Duration::ZERO;
        assert!(matches!(
            clock.on_epoch(Duration::from_millis(100), tick),
            UpdateDeadline::Interrupt
        ));
        assert!(clock.deadline_hit);
    }
}
