//! `{{name}}`: a wanwatch policy plugin.
//!
//! When the WAN goes down it power-cycles the modem (unless the fault is
//! local: the LAN gateway is silent too) and tells people; when the WAN is
//! back it says after how long. Edit the callbacks below; every callback of
//! the `Policy` trait you leave out does nothing.

use serde::Deserialize;
use wanwatch_plugin::{
    Policy, Result, Transition, WanState, human_duration, info, notify, power_cycle, warn,
};

/// `[plugins.{{name}}.settings]` in the config; every setting is optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// The device to power-cycle (it must be granted: `devices = [...]`).
    device: String,
    /// How long it stays off.
    off_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: "modem".into(),
            off_seconds: 10,
        }
    }
}

struct MyPolicy;

impl Policy for MyPolicy {
    fn on_wan_sick(t: Transition) -> Result {
        // Most failed rounds are blips: wait for `down`.
        info!(
            "the WAN looks sick ({} probes answered)",
            t.evidence.iter().filter(|e| e.ok).count()
        );
        Ok(())
    }

    fn on_wan_down(t: Transition) -> Result {
        let settings: Settings = wanwatch_plugin::settings()?;
        if t.local_fault {
            warn!("the LAN gateway is silent too: not cycling the modem");
            return notify(
                "WAN down",
                "The router does not answer: check it and its cables.",
                4,
            );
        }
        power_cycle(&settings.device, settings.off_seconds)?;
        notify("WAN down", &format!("Power-cycled {}.", settings.device), 4)
    }

    fn on_wan_up(t: Transition) -> Result {
        if t.previous != WanState::Down {
            return Ok(());
        }
        let title = format!("WAN back after {}", human_duration(t.previous_duration_ms));
        notify(&title, "The internet answers again.", 3)
    }
}

wanwatch_plugin::register_policy!(MyPolicy);
