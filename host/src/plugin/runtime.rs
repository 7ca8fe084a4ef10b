//! The process-wide part of the runtime: one wasmtime `Engine`, one `Linker`,
//! and the thread that advances the engine's epoch.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::cache::{CAP_BYTES, Cache};
use super::contract::{Contract, Pre};
use super::host::{self, Identity, Kv, PluginState, Timers};
use super::{HostContext, Plugin, PluginError, PluginSpec, WasmSource, builtin};

/// How often the epoch advances while guest code runs. Deadlines are checked
/// on each tick, so a runaway plugin is stopped at most one tick past its
/// deadline: 5 ms keeps that small next to the 100 ms default deadline, while
/// costing 200 wake-ups a second during callbacks only (and compiled code
/// nothing but a load and a compare at function entries and loop heads).
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The contract version this host implements: `wit/since_v0.2.0/`.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// Every contract version this host loads, as people write them: a
/// component built for any other minor version (major, from 1.0 on) is
/// refused by name. Older ones are adapted (see [`Contract`]).
pub const SUPPORTED_VERSIONS: [&str; 2] = ["0.1.x", "0.2.x"];

/// Loads plugins. One per process: compiled code, the linker and the epoch
/// ticker are shared by all plugins. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    ticker: Ticker,
    linker: Linker<PluginState>,
    /// Where compiled components are kept, if anywhere (see [`Runtime::with_cache`]).
    cache: Option<Arc<Cache>>,
    /// Components compiled (not found in the cache) by this runtime.
    compiled: AtomicU64,
}

/// A component compiled, checked against the contract and linked, ready to
/// replace a running plugin's version with [`Plugin::swap`]. Made by
/// [`Runtime::prepare`], off the plugin's thread: compiling takes long.
pub struct Prepared {
    pub(super) plugin: String,
    pub(super) origin: String,
    pub(super) pre: Pre,
    pub(super) version: String,
    pub(super) file: Option<PathBuf>,
    /// Kept once this version has started, if the runtime has a cache.
    pub(super) last_good: Option<LastGood>,
    pub(super) ticker: Ticker,
}

/// A version's component, to be kept as its plugin's last good version (see
/// [`Runtime::load`]) once it has started.
pub(super) struct LastGood {
    cache: Arc<Cache>,
    plugin: String,
    bytes: Vec<u8>,
}

impl LastGood {
    /// Writes the component to its place, unless it is there already. A
    /// failure costs only the fallback, so it is logged, not returned.
    pub(super) fn keep(self) {
        let path = self.cache.last_good(&self.plugin);
        if std::fs::read(&path).is_ok_and(|kept| kept == self.bytes) {
            return;
        }
        match crate::fsutil::write_atomic(&path, &self.bytes) {
            // The version it replaces may be of no more use.
            Ok(()) => self.cache.prune_unused(),
            Err(e) => tracing::warn!(
                "cannot keep the last good version of a plugin in {}: {e}",
                path.display()
            ),
        }
    }
}

impl Prepared {
    /// The short hash of the component's bytes.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl Runtime {
    /// A runtime that compiles every component it loads.
    pub fn new() -> anyhow::Result<Runtime> {
        Runtime::build(None)
    }

    /// A runtime that keeps compiled components in `dir`, so that loading an
    /// unchanged component again, after a restart, does not compile it.
    pub fn with_cache(dir: PathBuf) -> anyhow::Result<Runtime> {
        Runtime::build(Some(dir))
    }

    fn build(cache_dir: Option<PathBuf>) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        // Deadlines: compiled code checks the epoch, and each store's
        // callback decides whether its guest has had its time.
        config.epoch_interruption(true);
        if winch_suits_this_cpu() {
            config.strategy(wasmtime::Strategy::Winch);
        }
        // 32-bit ARM (Raspberry Pi OS 32-bit): wasmtime generates no native
        // code there; Cranelift compiles plugins to Pulley bytecode, which
        // wasmtime interprets. The compile cache's key (below) includes the
        // target, so Pulley code and native code never mix.
        #[cfg(target_arch = "arm")]
        config.target("pulley32").map_err(anyhow_error)?;
        let engine = Engine::new(&config).map_err(anyhow_error)?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(anyhow_error)?;
        let ticker = Ticker::start(&engine)?;
        let cache = cache_dir.map(|dir| {
            // Keyed by everything that makes compiled code fit an engine
            // (wasmtime's version, its settings, the CPU): a new wasmtime or
            // config gets new files rather than a refusal.
            let mut fit = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut fit);
            let builtin = builtin::names()
                .filter_map(builtin::wasm)
                .map(sha256_hex)
                .collect();
            Arc::new(Cache::open(
                dir,
                format!("{:016x}", fit.finish()),
                builtin,
                CAP_BYTES,
            ))
        });
        Ok(Runtime {
            inner: Arc::new(Inner {
                ticker,
                engine,
                linker,
                cache,
                compiled: AtomicU64::new(0),
            }),
        })
    }

    /// Removes from the compile cache what none of the plugins loaded so far
    /// needs: for a daemon, once it has loaded every configured plugin, so
    /// that the versions of plugins no longer configured, or compiled by
    /// earlier runs, do not stay on a small SD card until the next reload.
    pub fn prune_cache(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.prune_unused();
        }
    }

    /// How many components this runtime has compiled, rather than found
    /// already compiled in its cache.
    pub fn compiled(&self) -> u64 {
        self.inner.compiled.load(Ordering::Relaxed)
    }

    /// Reads and compiles the plugin's component, checks that it implements
    /// the `policy` world, loads its key-value store, and instantiates it
    /// once, so that a plugin that cannot even start fails here, at load
    /// time, rather than at the first WAN outage.
    ///
    /// With a cache, the last version of each plugin file that started is
    /// kept there, and a file that does not load now (a build cut short by
    /// the very power cut the daemon restarts from, say) starts that version
    /// instead, with the error in the plugin's health: a broken file never
    /// takes a working policy away, not even across a restart. The file is
    /// still watched, so its next good version replaces the kept one.
    pub fn load(&self, spec: PluginSpec, host: HostContext) -> Result<Plugin, PluginError> {
        let error = match self.start(&spec, &host, None) {
            Ok(plugin) => return Ok(plugin),
            Err(error) => error,
        };
        let of_the_file = matches!(spec.source, WasmSource::File(_))
            && matches!(
                error,
                PluginError::Read { .. }
                    | PluginError::NotWasm { .. }
                    | PluginError::NotComponent { .. }
                    | PluginError::Invalid { .. }
                    | PluginError::WrongVersion { .. }
                    | PluginError::WrongWorld { .. }
                    | PluginError::Start { .. }
            );
        let kept = self
            .last_good_path(&spec.name)
            .filter(|_| of_the_file)
            .and_then(|path| Some((std::fs::read(&path).ok()?, path)));
        let Some((bytes, path)) = kept else {
            return Err(error);
        };
        tracing::error!(
            plugin = %spec.name,
            "{error}; starting its last good version {} (kept in {})",
            version_hash(&bytes),
            path.display()
        );
        let mut plugin = self.start(&spec, &host, Some(&bytes))?;
        // Said first: the error may end with lines of the guest's stderr,
        // which a suffix would be glued to.
        plugin.note_error(format!("running its last good version: {error}"));
        Ok(plugin)
    }

    /// Loads `spec`, its component being `bytes` if given, else its source.
    fn start(
        &self,
        spec: &PluginSpec,
        host: &HostContext,
        bytes: Option<&[u8]>,
    ) -> Result<Plugin, PluginError> {
        let plugin = spec.name.clone();
        let origin = spec.source.origin();
        if !valid_name(&plugin) {
            return Err(PluginError::BadName { plugin });
        }
        let bytes: Cow<'_, [u8]> = match (bytes, &spec.source) {
            (Some(bytes), _) => Cow::Borrowed(bytes),
            (None, WasmSource::Static(bytes)) => Cow::Borrowed(bytes),
            (None, WasmSource::File(path)) => match std::fs::read(path) {
                Ok(bytes) => Cow::Owned(bytes),
                Err(error) => {
                    return Err(PluginError::Read {
                        plugin,
                        origin,
                        error,
                    });
                }
            },
        };
        let mut prepared = self.prepare(&plugin, &origin, &bytes)?;
        match &spec.source {
            WasmSource::File(path) => prepared.file = Some(path.clone()),
            // Built into the binary: nothing to keep.
            WasmSource::Static(_) => prepared.last_good = None,
        }
        let kv_dir = host.kv_dir.as_deref();
        let kv = match Kv::load(&plugin, kv_dir, host.clock.now_ms()) {
            Ok(kv) => kv,
            Err(error) => {
                let path = kv_dir.map(|dir| Kv::path(&plugin, dir)).unwrap_or_default();
                return Err(PluginError::Kv {
                    plugin,
                    path,
                    error,
                });
            }
        };
        let timers = Timers::load(&plugin, kv_dir, &*host.clock);
        let identity = Identity {
            name: plugin,
            grants: spec.grants.clone(),
            settings_json: spec.settings_json.clone(),
            host: host.clone(),
            deadline: spec.deadline,
            memory_bytes: spec.memory_bytes,
        };
        Plugin::start(prepared, Arc::new(identity), kv, timers)
    }

    /// Where the last version of `plugin` that started is kept, with a cache.
    fn last_good_path(&self, plugin: &str) -> Option<PathBuf> {
        Some(self.inner.cache.as_ref()?.last_good(plugin))
    }

    /// Compiles `bytes` (or finds them compiled in the cache), checks that
    /// they are a component built for this host's contract version, and
    /// links them: everything a new version needs short of an instance.
    /// `origin` says where the bytes came from, for messages.
    pub fn prepare(
        &self,
        plugin: &str,
        origin: &str,
        bytes: &[u8],
    ) -> Result<Prepared, PluginError> {
        let plugin = plugin.to_owned();
        let origin = origin.to_owned();
        // Said plainly before wasmtime says it in its own terms.
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::NotWasm { plugin, origin });
        }
        if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err(PluginError::NotComponent { plugin, origin });
        }
        let hex = sha256_hex(bytes);
        let (component, cached) = match self.component(bytes, &hex) {
            Ok(compiled) => compiled,
            Err(e) => {
                let message = format!("{e:#}");
                return Err(PluginError::Invalid {
                    plugin,
                    origin,
                    message,
                });
            }
        };
        let linked = self.link(&component);
        if let Some(cache) = &self.inner.cache {
            if linked.is_ok() {
                cache.in_use(&plugin, &hex);
            }
            // Whether this version is good or not, one before it may now
            // be of no use.
            if cached == Cached::Written {
                cache.prune_unused();
            }
        }
        match linked {
            Ok(pre) => Ok(Prepared {
                last_good: self.inner.cache.as_ref().map(|cache| LastGood {
                    cache: cache.clone(),
                    plugin: plugin.clone(),
                    bytes: bytes.to_vec(),
                }),
                plugin,
                origin,
                pre,
                version: version_of(&hex),
                file: None,
                ticker: self.inner.ticker.clone(),
            }),
            Err(Unfit::Version(found)) => Err(PluginError::WrongVersion {
                plugin,
                origin,
                found,
                supported: SUPPORTED_VERSIONS.join(", "),
            }),
            Err(Unfit::World(contract, message)) => Err(PluginError::WrongWorld {
                plugin,
                origin,
                contract,
                message,
            }),
        }
    }

    /// Checks `component` against the contract version it names and links
    /// it. One that names none (it imports nothing of the host's) is tried
    /// as each version in turn, the latest first: its exports decide.
    fn link(&self, component: &Component) -> Result<Pre, Unfit> {
        let named = Contract::of(component, &self.inner.engine).map_err(Unfit::Version)?;
        let linker = &self.inner.linker;
        let link = |contract: Contract| {
            Pre::new(contract, linker, component)
                .map_err(|e| Unfit::World(contract.series(), format!("{e:#}")))
        };
        match named {
            Some(contract) => link(contract),
            None => link(Contract::LATEST).or_else(|latest| {
                Contract::ALL[1..]
                    .iter()
                    .find_map(|&older| link(older).ok())
                    .ok_or(latest)
            }),
        }
    }

    /// The compiled component of `bytes` (from the cache if it is there)
    /// and the engine it belongs to: for `wanwatch plugin inspect`, which
    /// lists what it imports and exports.
    pub(crate) fn compile(&self, bytes: &[u8]) -> wasmtime::Result<(Component, &Engine)> {
        let (component, _) = self.component(bytes, &sha256_hex(bytes))?;
        Ok((component, &self.inner.engine))
    }

    /// The compiled component of `bytes`, whose SHA-256 is `hex`: from the
    /// cache if it is there, else compiled (and then cached).
    fn component(&self, bytes: &[u8], hex: &str) -> wasmtime::Result<(Component, Cached)> {
        let engine = &self.inner.engine;
        let Some(cache) = &self.inner.cache else {
            self.inner.compiled.fetch_add(1, Ordering::Relaxed);
            return Ok((Component::new(engine, bytes)?, Cached::No));
        };
        let path = cache.entry(hex);
        if path.is_file() {
            // SAFETY: deserializing trusts the file to be code compiled by a
            // compatible wasmtime. Only this function writes into the cache
            // directory (the daemon's own state directory), only what
            // `precompile_component` produced, keyed by the hash of the
            // source bytes and of the engine's compatibility; files appear
            // whole, by rename (`write_atomic`), never half-written. wasmtime
            // still checks the header (version, settings) and refuses a
            // mismatch, which we treat as a miss.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    Cache::touch(&path);
                    return Ok((component, Cached::Found));
                }
                Err(e) => tracing::warn!(
                    "ignoring the compiled plugin cache file {}: {e:#}",
                    path.display()
                ),
            }
        }
        self.inner.compiled.fetch_add(1, Ordering::Relaxed);
        let compiled = engine.precompile_component(bytes)?;
        // A cache that cannot be written costs a compilation next time,
        // nothing more.
        let cached = match crate::fsutil::write_atomic(&path, &compiled) {
            Ok(()) => Cached::Written,
            Err(e) => {
                tracing::warn!(
                    "cannot cache the compiled plugin in {}: {e}",
                    path.display()
                );
                Cached::No
            }
        };
        // SAFETY: `compiled` was produced just above by this very engine.
        let component = unsafe { Component::deserialize(engine, &compiled) }?;
        Ok((component, cached))
    }
}

/// How [`Runtime::component`] came by a component, as to the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cached {
    Found,
    Written,
    /// Compiled, and not in the cache (there is none, or writing failed).
    No,
}

/// Why a compiled component does not fit the host.
enum Unfit {
    /// It was built for another contract version: this one.
    Version(String),
    /// It does not implement the world of this version ("0.2.x");
    /// wasmtime's message.
    World(String, String),
}

/// Whether plugins are compiled by Winch, wasmtime's baseline compiler,
/// rather than Cranelift. Winch compiles a plugin about 4 times faster (41 ms
/// against 157 ms for `powercycle`, see docs/PERFORMANCE.md), which is most
/// of the time from a new file to the new version running, and of a first
/// start; its code is slower, but a policy callback is a few microseconds of
/// guest code next to the host's work. Winch is tier 1 in wasmtime on x86_64
/// only (aarch64, a Raspberry Pi, gets Cranelift), and its SIMD code there
/// is AVX code (wasmtime's own Winch tests compile SIMD with `has-avx`), so
/// a CPU without AVX2 (an old Atom in a NAS) gets Cranelift too.
fn winch_suits_this_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::is_x86_feature_detected!("avx2");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// The SHA-256 of `bytes`, in hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plugin version, as shown: the first 12 hex digits of its SHA-256.
fn version_of(sha256_hex: &str) -> String {
    sha256_hex.chars().take(12).collect()
}

/// The version of a component, as [`PluginHealth::version`](super::PluginHealth::version)
/// shows it: the first 12 hex digits of the SHA-256 of `bytes`.
pub fn version_hash(bytes: &[u8]) -> String {
    version_of(&sha256_hex(bytes))
}

/// Plugin names become file names (the key-value store): no separators, no
/// hidden files, nothing a shell would mangle.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Advances the engine's epoch every [`EPOCH_TICK`], but only while guest
/// code runs somewhere ([`Ticker::running`]): an idle daemon's plugins wait
/// for the next event with no thread waking 200 times a second. The thread
/// ends once the runtime and all its plugins are gone.
#[derive(Clone)]
pub(super) struct Ticker(Arc<TickerShared>);

struct TickerShared {
    /// Guest calls under way.
    running: AtomicUsize,
    thread: std::thread::Thread,
}

impl Drop for TickerShared {
    fn drop(&mut self) {
        // Parked, the thread would never notice that it is no longer needed.
        self.thread.unpark();
    }
}

/// A guest call under way: the epoch advances until it is dropped.
pub(super) struct Running(Arc<TickerShared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Ticker {
    fn start(engine: &Engine) -> std::io::Result<Ticker> {
        let engine = engine.weak();
        let (shared_tx, shared_rx) = std::sync::mpsc::sync_channel::<Weak<TickerShared>>(1);
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                let Ok(shared) = shared_rx.recv() else {
                    return;
                };
                loop {
                    let Some(running) = shared.upgrade().map(|s| s.running.load(Ordering::Acquire))
                    else {
                        return;
                    };
                    if running == 0 {
                        // Woken by the next call, or by the runtime's end.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    engine.increment_epoch();
                }
            })?;
        let shared = Arc::new(TickerShared {
            running: AtomicUsize::new(0),
            thread: thread.thread().clone(),
        });
        // The thread holds it weakly: it must not keep itself alive.
        let _ = shared_tx.send(Arc::downgrade(&shared));
        Ok(Ticker(shared))
    }

    /// Marks a guest call under way until the result is dropped.
    pub fn running(&self) -> Running {
        if self.0.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.0.thread.unpark();
        }
        Running(Arc::clone(&self.0))
    }
}

/// wasmtime has its own error type (its `anyhow` feature is off); keep the
/// whole chain in the message.
fn anyhow_error(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_versions_are_the_contracts() {
        assert_eq!(CONTRACT_VERSION, Contract::LATEST.version());
        let loaded: Vec<String> = Contract::ALL.iter().rev().map(|c| c.series()).collect();
        assert_eq!(loaded, SUPPORTED_VERSIONS);
    }

    #[test]
    fn names_that_are_safe_file_names() {
        for good in ["powercycle", "my-plugin_2", "v1.2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "a b", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
