//! `init-trap`: a plugin that traps while it is being instantiated.
//!
//! A core module's `_initialize` export is run by the component itself as
//! part of its instantiation (wit-component wires it to a `start` function,
//! per component-model PR #378), so its trap happens before any callback:
//! the host must refuse the plugin at load time and, as a new version, keep
//! the running one.

wit_bindgen::generate!({ world: "policy", path: "../../../wit/since_v0.1.0" });

use wanwatch::policy::log::{Level, log};

struct Never;

export!(Never);

#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    panic!("init-trap fails while it is being instantiated");
}

impl Guest for Never {
    fn on_wan_up(_: Transition) -> Result<(), String> {
        unreachable_callback()
    }

    fn on_wan_sick(_: Transition) -> Result<(), String> {
        unreachable_callback()
    }

    fn on_wan_down(_: Transition) -> Result<(), String> {
        unreachable_callback()
    }

    fn on_timer(_: String) -> Result<(), String> {
        unreachable_callback()
    }

    fn on_power_out(_: PowerTransition) -> Result<(), String> {
        unreachable_callback()
    }

    fn on_power_restored(_: PowerTransition) -> Result<(), String> {
        unreachable_callback()
    }
}

/// No callback can run, since no instance ever exists: if one does, the
/// test sees this error.
fn unreachable_callback() -> Result<(), String> {
    // Used, so the import stays in the component.
    log(Level::Error, "init-trap was called");
    Err("init-trap was instantiated after all".into())
}
