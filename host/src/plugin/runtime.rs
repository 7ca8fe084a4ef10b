//! The process-wide part of the runtime: one wasmtime `Engine`, one `Linker`,
//! and the thread that advances the engine's epoch.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::host::{self, Identity, Kv, PluginState, PolicyPre};
use super::{HostContext, Plugin, PluginError, PluginSpec, WasmSource};

/// How often the epoch advances. Deadlines are checked on each tick, so a
/// runaway plugin is stopped at most one tick past its deadline: 5 ms keeps
/// that small next to the 100 ms default deadline, while costing the process
/// only 200 wake-ups a second (and compiled code nothing but a load and a
/// compare at function entries and loop heads).
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Loads plugins. One per process: compiled code, the linker and the epoch
/// ticker are shared by all plugins. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<PluginState>,
}

impl Runtime {
    pub fn new() -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        // Deadlines: compiled code checks the epoch, and each store's
        // callback decides whether its guest has had its time.
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(anyhow_error)?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(anyhow_error)?;
        start_ticker(&engine)?;
        Ok(Runtime {
            inner: Arc::new(Inner { engine, linker }),
        })
    }

    /// Reads and compiles the plugin's component, checks that it implements
    /// the `policy` world, loads its key-value store, and instantiates it
    /// once, so that a plugin that cannot even start fails here, at load
    /// time, rather than at the first WAN outage.
    pub fn load(&self, spec: PluginSpec, host: HostContext) -> Result<Plugin, PluginError> {
        let plugin = spec.name;
        let origin = spec.source.origin();
        if !valid_name(&plugin) {
            return Err(PluginError::BadName { plugin });
        }
        let bytes: Cow<'static, [u8]> = match &spec.source {
            WasmSource::Static(bytes) => Cow::Borrowed(bytes),
            WasmSource::File(path) => match std::fs::read(path) {
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
        // Said plainly before wasmtime says it in its own terms.
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::NotWasm { plugin, origin });
        }
        if bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            return Err(PluginError::NotComponent { plugin, origin });
        }
        let component = match Component::new(&self.inner.engine, &bytes) {
            Ok(component) => component,
            Err(e) => {
                let message = format!("{e:#}");
                return Err(PluginError::Invalid {
                    plugin,
                    origin,
                    message,
                });
            }
        };
        let pre = match self
            .inner
            .linker
            .instantiate_pre(&component)
            .and_then(PolicyPre::new)
        {
            Ok(pre) => pre,
            Err(e) => {
                let message = format!("{e:#}");
                return Err(PluginError::WrongWorld {
                    plugin,
                    origin,
                    message,
                });
            }
        };
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
        let identity = Identity {
            name: plugin.clone(),
            grants: spec.grants,
            settings_json: spec.settings_json,
            host,
            deadline: spec.deadline,
            memory_bytes: spec.memory_bytes,
        };
        Plugin::start(pre, Arc::new(identity), kv).map_err(|error| PluginError::Start {
            plugin,
            origin,
            error: Box::new(error),
        })
    }
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

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the
/// engine lives: the thread holds it weakly and ends once the runtime and all
/// its plugins are gone.
fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                engine.increment_epoch();
            }
        })
        .map(drop)
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
    fn names_that_are_safe_file_names() {
        for good in ["powercycle", "my-plugin_2", "v1.2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".hidden", "../x", "a/b", "a b", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
