//! The guest half of the SDK: the generated bindings (hidden), the
//! [`Policy`] trait, its registration and the typed helpers.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The bindings wit-bindgen generates from `wit/since_v0.2.0/policy.wit`. Public only so
/// that [`register_policy!`](crate::register_policy) can reach them from
/// the plugin's crate; a policy has no reason to use them directly.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "policy",
        path: "../../wit/since_v0.2.0",
        // The export macro is invoked from the plugin's crate, by
        // `register_policy!`.
        pub_export_macro: true,
        export_macro_name: "__export_policy",
        default_bindings_module: "wanwatch_plugin::bindings",
    });
}

use bindings::wanwatch::policy;

pub use policy::log::Level;
pub use policy::types::{
    DeviceEvidence, Evidence, HttpsEvidence, HttpsStep, LinkQuality, PowerState, PowerTransition,
    ProbeKind, QualityChange, Role, TargetQuality, Transition, WanState,
};

/// What callbacks and helpers return: an error is a message, which the host
/// logs against the plugin (and the simulator shows).
pub type Result<T = (), E = String> = std::result::Result<T, E>;

/// A policy: what to do when the WAN or the mains power changes state, when
/// the link becomes degraded or recovers, and when a timer armed by the
/// policy is due. Every callback defaults to doing nothing, so a policy
/// implements only what it cares about (and one written before a callback
/// was added still compiles).
///
/// Callbacks are associated functions, without `self`: the host may start a
/// fresh instance at any time (after a fault, on reload), so whatever must
/// be remembered between calls belongs in [`kv`], which survives all that.
pub trait Policy {
    /// The link came back up (from sick, or straight from down).
    fn on_wan_up(_transition: Transition) -> Result {
        Ok(())
    }

    /// The first probe round failed: the link may be going down.
    fn on_wan_sick(_transition: Transition) -> Result {
        Ok(())
    }

    /// Rounds have been failing for longer than the config's `down_after`.
    fn on_wan_down(_transition: Transition) -> Result {
        Ok(())
    }

    /// The timer `name`, armed with [`timers::set`], is due.
    fn on_timer(_name: String) -> Result {
        Ok(())
    }

    /// The mains power went out.
    fn on_power_out(_transition: PowerTransition) -> Result {
        Ok(())
    }

    /// The mains power is back.
    fn on_power_restored(_transition: PowerTransition) -> Result {
        Ok(())
    }

    /// The link became degraded (`change.degraded`), or is back to normal.
    /// Called only when the config sets `[probe] degraded_loss` or
    /// `degraded_rtt`. Since contract 0.2.0.
    fn on_link_quality(_change: QualityChange) -> Result {
        Ok(())
    }
}

/// Connects a [`Policy`] to the generated export glue; made by
/// [`register_policy!`](crate::register_policy).
#[doc(hidden)]
pub struct Adapter<P>(std::marker::PhantomData<P>);

impl<P: Policy> bindings::Guest for Adapter<P> {
    fn on_wan_up(transition: Transition) -> Result {
        P::on_wan_up(transition)
    }
    fn on_wan_sick(transition: Transition) -> Result {
        P::on_wan_sick(transition)
    }
    fn on_wan_down(transition: Transition) -> Result {
        P::on_wan_down(transition)
    }
    fn on_timer(name: String) -> Result {
        P::on_timer(name)
    }
    fn on_power_out(transition: PowerTransition) -> Result {
        P::on_power_out(transition)
    }
    fn on_power_restored(transition: PowerTransition) -> Result {
        P::on_power_restored(transition)
    }
    fn on_link_quality(change: QualityChange) -> Result {
        P::on_link_quality(change)
    }
}

/// Makes a type implementing [`Policy`] the plugin's policy. Once per
/// plugin, at the top level of its crate:
///
/// ```ignore
/// wanwatch_plugin::register_policy!(MyPolicy);
/// ```
#[macro_export]
macro_rules! register_policy {
    ($policy:ty) => {
        // The export macro takes an identifier, not a generic type.
        #[doc(hidden)]
        type __WanwatchPolicy = $crate::Adapter<$policy>;
        $crate::bindings::__export_policy!(__WanwatchPolicy with_types_in $crate::bindings);
    };
}

/// The plugin's settings, its `[plugins.NAME.settings]` table of the config,
/// deserialized into `T`. With `#[serde(default)]` on `T` every setting is
/// optional; with `#[serde(deny_unknown_fields)]` a misspelt one is an error
/// rather than silently ignored.
pub fn settings<T: DeserializeOwned>() -> Result<T> {
    serde_json::from_str(&policy::settings::get()).map_err(|e| format!("invalid settings: {e}"))
}

/// The plugin's persistent key-value store, private to it. Values are any
/// serde type, kept as JSON. It survives re-instantiation, reloads of the
/// plugin and restarts of the daemon; in simulation it starts empty.
pub mod kv {
    use super::{DeserializeOwned, Result, Serialize, policy};

    /// The value stored under `key`, if there is one and it reads as a `T`.
    /// Text that is not JSON (stored by a plugin that keeps plain strings)
    /// reads as a string. A value that reads as neither (written by an
    /// older version of the plugin as another type) counts as absent, so a
    /// plugin starts over rather than failing on every call.
    pub fn get<T: DeserializeOwned>(key: &str) -> Option<T> {
        use serde::de::IntoDeserializer;
        let text = policy::kv::get(key)?;
        serde_json::from_str(&text).ok().or_else(|| {
            let plain: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                text.as_str().into_deserializer();
            T::deserialize(plain).ok()
        })
    }

    /// Stores `value` under `key`. Fails when the store would grow beyond
    /// the host's limit (256 keys, 64 KiB in all) or cannot be saved.
    pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result {
        let json = serde_json::to_string(value).map_err(|e| format!("cannot store {key}: {e}"))?;
        policy::kv::set(key, &json)
    }

    /// Removes `key`; removing a key that is not there is not an error.
    pub fn delete(key: &str) -> Result {
        policy::kv::delete(key)
    }
}

/// Named one-shot timers on the host's clock (virtual time in simulation).
/// When one is due the host calls [`Policy::on_timer`] with its name.
pub mod timers {
    use super::{Duration, Result, policy};

    /// Arms the timer `name` to fire `after` from now, replacing a timer of
    /// the same name. At most 32 timers per plugin.
    pub fn set(name: &str, after: Duration) -> Result {
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        policy::timers::set(name, ms)
    }

    /// Disarms the timer `name`; nothing happens if it is not armed. It
    /// cannot fail (the contract's `cancel` returns nothing), so there is
    /// no result to `?`.
    pub fn cancel(name: &str) {
        policy::timers::cancel(name)
    }
}

/// The heartbeat receivers (`[[heartbeat]]` in the config) as the host sees
/// them. Since contract 0.2.0.
pub mod heartbeats {
    pub use super::policy::heartbeats::Receiver;

    /// Every configured receiver, in config order: empty when there are
    /// none, and in simulation. A receiver that is not `reachable` while the
    /// WAN is up means the outside world will soon think the house is down.
    pub fn receivers() -> Vec<Receiver> {
        super::policy::heartbeats::receivers()
    }
}

/// The host's clock, in milliseconds since the Unix epoch: virtual time in
/// simulation, which is why a policy should read no other.
pub fn now() -> u64 {
    policy::clock::now()
}

/// Switches `device` off for `off_seconds`; the plug's own timer switches
/// it back on. Needs `devices = ["DEVICE"]` in the plugin's config section;
/// refused too by the host's cap on power cycles per hour.
pub fn power_cycle(device: &str, off_seconds: u32) -> Result {
    policy::power::power_cycle(device, off_seconds)
}

/// Notifies people; `priority` runs from 1 (min) to 5 (urgent), 3 being
/// the default. Needs `notify = true` in the plugin's config section.
pub fn notify(title: &str, body: &str, priority: u8) -> Result {
    policy::notify::notify(title, body, priority.clamp(1, 5))
}

/// Writes a line to the host's log, tagged with the plugin's name. The
/// macros [`info!`](crate::info) and friends format and call this.
pub fn log(level: Level, message: &str) {
    policy::log::log(level, message)
}

/// Defines one `format!`-style logging macro per level. (`$d` is a `$`
/// passed in, since a macro cannot write `$` into the macro it defines.)
macro_rules! level_macros {
    ($d:tt $($name:ident => $level:ident),*) => {$(
        #[doc = concat!("Logs a `format!`-style line at level `", stringify!($name), "`.")]
        #[macro_export]
        macro_rules! $name {
            ($d($d arg:tt)*) => {
                $crate::log($crate::Level::$level, &::std::format!($d($d arg)*))
            };
        }
    )*};
}

level_macros!($ trace => Trace, debug => Debug, info => Info, warn => Warn, error => Error);
