//! The sandboxed WebAssembly plugin runtime.
//!
//! Policy plugins are components implementing the `policy` world of one of
//! the contract versions in `wit/since_vX.Y.Z/` (see [`Contract`]): the
//! latest is implemented, older ones adapted to it. They run under wasmtime with nothing but their imports:
//! no files, no network, no environment, no clock but the host's. What acts
//! on the world (`power`, `notify`) is checked against the grants of the
//! plugin's config section, and goes through [`crate::actions::Actions`].
//!
//! - [`Runtime`]: one per process: the engine, the linker, the epoch ticker.
//! - [`Runtime::load`] compiles a [`PluginSpec`] into a [`Plugin`], which owns
//!   one instance in its own `Store`, with its own memory limit.
//! - [`Plugin::call`] delivers an [`Event`]. A callback that traps, runs past
//!   its deadline or out of memory gets its instance discarded; the next
//!   call starts a fresh one. What the plugin keeps in its key-value store,
//!   and its timers, live in the host and survive.
//! - [`Runner`] drives a `Plugin` on its own thread for the daemon; the
//!   simulator drives `Plugin` directly, in virtual time.
//! - [`Plugin::reload`] swaps in a new version of the component between two
//!   callbacks, keeping the key-value store and the timers; [`HotReload`]
//!   does it for the daemon when a plugin's file changes.
//! - A plugin that fails [`QUARANTINE_AFTER`] callbacks in a row is
//!   quarantined: no longer called until a new version is loaded.
//!
//! Deadlines count the guest's own time: its code, the cheap imports (`kv`,
//! `timers`, `settings`, `clock`) and any wait in WASI (a `sleep` ends at
//! the deadline, and the guest is stopped). Time blocked in `power` and
//! `notify` (a power cycle waits for the device) and in writing its log
//! lines is not held against it.

pub mod builtin;
mod cache;
mod contract;
mod error;
pub(crate) mod host;
mod hot_reload;
mod instance;
mod runner;
mod runtime;
mod stderr;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::contract::Contract;
pub use self::error::{CallError, CallErrorKind, PluginError};
pub use self::hot_reload::{DEBOUNCE, HotReload, RENAMED};
pub use self::instance::{Plugin, QUARANTINE_AFTER};
pub use self::runner::{Mailbox, Runner};
pub use self::runtime::{CONTRACT_VERSION, Prepared, Runtime, SUPPORTED_VERSIONS, version_hash};

// The monitor makes it; plugin code and tests name it with the events it
// travels in.
pub use crate::monitor::WanEvent;

use crate::actions::Actions;
use crate::clock::Clock;
use crate::config::PluginConfig;
use crate::heartbeat::HeartbeatBoard;
use crate::power::{PowerState, PowerTransition};
use crate::quality::QualityChange;
use crate::state::{Millis, Transition};

/// What a plugin may do beyond computing: from its config section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    /// Devices it may power-cycle.
    pub devices: BTreeSet<String>,
    /// Whether it may notify people.
    pub notify: bool,
}

/// Where a plugin's component comes from.
#[derive(Clone)]
pub enum WasmSource {
    /// Built into the binary.
    Static(&'static [u8]),
    File(PathBuf),
}

impl WasmSource {
    /// For messages: the file, or "built-in".
    pub fn origin(&self) -> String {
        match self {
            WasmSource::Static(_) => "built-in".to_owned(),
            WasmSource::File(path) => path.display().to_string(),
        }
    }
}

impl std::fmt::Debug for WasmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WasmSource::Static(bytes) => write!(f, "Static({} bytes)", bytes.len()),
            WasmSource::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Everything needed to load one plugin.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    pub name: String,
    pub source: WasmSource,
    pub grants: Grants,
    /// How long one callback may run, not counting time blocked in `power`,
    /// `notify` and log writes.
    pub deadline: Duration,
    /// The most linear memory its instance may have.
    pub memory_bytes: usize,
    /// What its `settings.get` returns: a JSON object.
    pub settings_json: String,
}

impl PluginSpec {
    /// From a `[plugins.NAME]` section: `file` if given, else the built-in
    /// plugin of that name (an error if there is none).
    pub fn from_config(name: &str, config: &PluginConfig) -> Result<PluginSpec, PluginError> {
        let source = match &config.file {
            Some(file) => WasmSource::File(file.clone()),
            None => {
                WasmSource::Static(builtin::wasm(name).ok_or_else(|| PluginError::NotBuiltin {
                    plugin: name.to_owned(),
                    builtin: builtin::names().collect::<Vec<_>>().join(", "),
                })?)
            }
        };
        Ok(PluginSpec {
            name: name.to_owned(),
            source,
            grants: Grants {
                devices: config.devices.iter().cloned().collect(),
                notify: config.notify,
            },
            deadline: config.deadline,
            memory_bytes: usize::try_from(config.memory_mib)
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
            settings_json: toml_to_json(toml::Value::Table(config.settings.clone())).to_string(),
        })
    }
}

/// TOML as JSON. Not through serde: it would turn a TOML datetime into an
/// internal wrapper object; a plugin should see the text it was given.
fn toml_to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        toml::Value::String(s) => Json::String(s),
        toml::Value::Integer(i) => Json::from(i),
        // JSON has no NaN or infinity.
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        toml::Value::Boolean(b) => Json::Bool(b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(items) => Json::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Json::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}

/// The host services a plugin's imports use.
#[derive(Clone)]
pub struct HostContext {
    pub actions: Arc<Actions>,
    /// The time plugins see (`clock.now`) and timers run on.
    pub clock: Arc<dyn Clock>,
    /// Where key-value stores are saved; None keeps them in memory only.
    pub kv_dir: Option<PathBuf>,
    /// The heartbeat receivers' states (`heartbeats.receivers`): empty
    /// when none run (none configured, or in simulation).
    pub heartbeats: HeartbeatBoard,
}

/// What a plugin is called for.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A change of WAN state: `on-wan-up`, `-sick` or `-down` by the new state.
    Wan(WanEvent),
    /// A change of mains power: `on-power-out` or `on-power-restored`.
    Power(PowerTransition),
    /// A timer the plugin armed is due: `on-timer`.
    Timer(String),
    /// The link became degraded or is back to normal: `on-link-quality`
    /// (not delivered to plugins built for contract 0.1).
    Quality(QualityChange),
}

impl Event {
    /// A WAN transition with the power on and no power cycle behind it.
    pub fn wan(transition: Transition) -> Event {
        Event::Wan(WanEvent {
            transition,
            power: PowerState::On,
            power_cycles: 0,
            quality: Default::default(),
        })
    }
}

/// How a plugin has been doing, for the status file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PluginHealth {
    pub name: String,
    /// Callbacks delivered.
    pub calls: u64,
    /// Callbacks that failed, in any way.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<Millis>,
    /// The version running: the first 12 hex digits of the SHA-256 of the
    /// component's bytes.
    #[serde(default)]
    pub version: String,
    /// The contract version it was built for, as [`Contract::describe`]
    /// says it: "0.2.0", "0.1.0 (adapted to 0.2.0)".
    #[serde(default)]
    pub contract: String,
    /// When that version was loaded.
    #[serde(default)]
    pub loaded_at_ms: Millis,
    /// New versions swapped in since the plugin was first loaded.
    #[serde(default)]
    pub reloads: u64,
    /// Failed [`QUARANTINE_AFTER`] times in a row: not called until a new
    /// version of its file is loaded.
    #[serde(default)]
    pub quarantined: bool,
    /// Wall time spent in its callbacks, in microseconds: with `calls`, the
    /// mean time a callback takes (time waiting for a plug included).
    #[serde(default)]
    pub callback_us: u64,
}

impl PluginHealth {
    /// Whether `other` is in the same condition: the same version, failure
    /// counts and quarantine. A callback that went well changes nothing
    /// worth telling anyone.
    pub fn same_condition(&self, other: &PluginHealth) -> bool {
        (
            &self.version,
            self.failures,
            self.consecutive_failures,
            self.quarantined,
            self.reloads,
        ) == (
            &other.version,
            other.failures,
            other.consecutive_failures,
            other.quarantined,
            other.reloads,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_from_config_maps_grants_limits_and_settings() {
        let config: crate::config::Config = toml::from_str(
            r#"
[plugins.mine]
file = "mine.wasm"
devices = ["modem", "router"]
notify = true
deadline = "250ms"
memory_mib = 3
[plugins.mine.settings]
device = "modem"
wait = 1.5
since = 1979-05-27T07:32:00Z
nested = { list = [1, "two"] }
"#,
        )
        .unwrap();
        let spec = PluginSpec::from_config("mine", &config.plugins["mine"]).unwrap();
        assert!(matches!(&spec.source, WasmSource::File(p) if p == &PathBuf::from("mine.wasm")));
        assert_eq!(
            spec.grants.devices.iter().collect::<Vec<_>>(),
            ["modem", "router"]
        );
        assert!(spec.grants.notify);
        assert_eq!(spec.deadline, Duration::from_millis(250));
        assert_eq!(spec.memory_bytes, 3 << 20);
        let settings: serde_json::Value = serde_json::from_str(&spec.settings_json).unwrap();
        assert_eq!(
            settings,
            serde_json::json!({
                "device": "modem",
                "wait": 1.5,
                "since": "1979-05-27T07:32:00Z",
                "nested": { "list": [1, "two"] },
            })
        );
    }

    #[test]
    fn spec_without_file_needs_a_builtin() {
        let config = PluginConfig::new(None);
        let err = PluginSpec::from_config("nonesuch", &config).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "plugin `nonesuch`: has no `file`, and `nonesuch` is not a built-in plugin"
            ),
            "{err}"
        );
        let spec = PluginSpec::from_config("powercycle", &config).unwrap();
        assert!(matches!(spec.source, WasmSource::Static(_)));
        assert_eq!(spec.settings_json, "{}");
    }
}
