//! `notify`, wanwatch's built-in notification policy: tells people when the
//! WAN goes down and when it is back ("WAN restored after 7m08s (modem
//! power-cycled once)"), and when the mains power goes out and comes back.
//!
//! Notifications raised while the WAN is down are queued by the host and
//! delivered once it is back, marked with when they were raised.
//!
//! A flapping line would send an alert pair every few minutes, so an outage
//! that begins within `min_gap` of the last "down" alert is not announced;
//! it is counted, and the next alert that goes out says how many were held
//! back. A blip (sick, then up again) is never announced.
//!
//! Settings (`[plugins.notify.settings]`), durations as seconds or "90s",
//! "30m", "2h":
//!
//! | setting    | default | meaning |
//! |------------|---------|---------|
//! | `min_gap`  | `"30m"` | minimum time between two "WAN down" alerts |
//! | `priority` | `4`     | priority (1–5) of "down" and "power out"; the all-clear goes one lower |

use serde::Deserialize;
use wanwatch_plugin::{
    Policy, PowerState, PowerTransition, Result, Seconds, Transition, WanState, human_duration, kv,
    notify, warn,
};

struct Notify;

wanwatch_plugin::register_policy!(Notify);

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    min_gap: Seconds,
    priority: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_gap: Seconds(30 * 60),
            priority: 4,
        }
    }
}

fn settings() -> Result<Settings> {
    wanwatch_plugin::settings()
}

/// A number kept in the key-value store (0 when absent).
fn counter(key: &str) -> u64 {
    kv::get(key).unwrap_or(0)
}

/// Keys of the plugin's memory.
const OUTAGE_START: &str = "outage_start_ms";
const LAST_ALERT: &str = "last_alert_ms";
const ANNOUNCED: &str = "announced";
const HELD_BACK: &str = "held_back";

/// "modem power-cycled once", "no power cycle", ...
fn cycles_text(n: u32) -> String {
    match n {
        0 => "no power cycle".into(),
        1 => "modem power-cycled once".into(),
        2 => "modem power-cycled twice".into(),
        n => format!("modem power-cycled {n} times"),
    }
}

impl Policy for Notify {
    fn on_wan_sick(t: Transition) -> Result {
        // The outage, if it becomes one, began at the first failed round.
        kv::set(OUTAGE_START, &t.at_ms)
    }

    fn on_wan_down(t: Transition) -> Result {
        // Announced already: the host tells the state again after a restart.
        if kv::get::<serde::de::IgnoredAny>(ANNOUNCED).is_some() {
            return Ok(());
        }
        let settings = settings()?;
        let now = t.at_ms;
        let last = counter(LAST_ALERT);
        if last != 0 && now.saturating_sub(last) < settings.min_gap.as_millis() {
            kv::set(HELD_BACK, &(counter(HELD_BACK) + 1))?;
            return kv::delete(ANNOUNCED);
        }
        let start = match counter(OUTAGE_START) {
            0 => now,
            start => start,
        };
        let mut body = format!(
            "No answer from the internet since {} ago.",
            human_duration(now.saturating_sub(start))
        );
        if t.local_fault {
            body += " The LAN gateway does not answer either: check the router and its cables.";
        }
        if t.power == PowerState::Out {
            body += " The mains power is out.";
        }
        match counter(HELD_BACK) {
            0 => {}
            n => {
                body += &format!(" ({n} shorter outages since the last alert were not announced.)")
            }
        }
        notify("WAN down", &body, settings.priority)?;
        kv::set(LAST_ALERT, &now)?;
        kv::set(HELD_BACK, &0)?;
        kv::set(ANNOUNCED, &true)
    }

    fn on_wan_up(t: Transition) -> Result {
        let announced = kv::get::<serde::de::IgnoredAny>(ANNOUNCED).is_some();
        kv::delete(ANNOUNCED)?;
        if t.previous != WanState::Down || !announced {
            return Ok(());
        }
        let settings = settings()?;
        let start = match counter(OUTAGE_START) {
            0 => t.at_ms.saturating_sub(t.previous_duration_ms),
            start => start,
        };
        let title = format!(
            "WAN restored after {} ({})",
            human_duration(t.at_ms.saturating_sub(start)),
            cycles_text(t.power_cycles)
        );
        notify(
            &title,
            "The internet answers again.",
            settings.priority.saturating_sub(1),
        )
    }

    fn on_power_out(t: PowerTransition) -> Result {
        let silent: Vec<&str> = t
            .devices
            .iter()
            .filter(|d| !d.answered)
            .map(|d| d.device.as_str())
            .collect();
        warn!("mains power out: {} silent", silent.join(", "));
        let body = format!(
            "{} of {} power-detection devices stopped answering ({}).",
            silent.len(),
            t.devices.len(),
            silent.join(", ")
        );
        notify("Mains power out", &body, settings()?.priority)
    }

    fn on_power_restored(t: PowerTransition) -> Result {
        let title = format!(
            "Mains power restored after {}",
            human_duration(t.previous_duration_ms)
        );
        notify(
            &title,
            "The power-detection devices answer again.",
            settings()?.priority.saturating_sub(1),
        )
    }
}
