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
use wanwatch_plugin::{Seconds, human_duration};

wit_bindgen::generate!({ world: "policy", path: "../../wit" });

use wanwatch::policy::log::Level;
use wanwatch::policy::types::{PowerState, WanState};
use wanwatch::policy::{kv, log, notify, settings};

struct Notify;

export!(Notify);

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

fn settings() -> Result<Settings, String> {
    serde_json::from_str(&settings::get()).map_err(|e| format!("invalid settings: {e}"))
}

/// A number kept in the key-value store (0 when absent).
fn counter(key: &str) -> u64 {
    kv::get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn set_counter(key: &str, value: u64) -> Result<(), String> {
    kv::set(key, &value.to_string())
}

/// Keys of the plugin's memory.
const OUTAGE_START: &str = "outage_start_ms";
const LAST_ALERT: &str = "last_alert_ms";
const ANNOUNCED: &str = "announced";
const HELD_BACK: &str = "held_back";

fn send(title: &str, body: &str, priority: u8) -> Result<(), String> {
    notify::notify(title, body, priority.clamp(1, 5))
}

/// "modem power-cycled once", "no power cycle", ...
fn cycles_text(n: u32) -> String {
    match n {
        0 => "no power cycle".into(),
        1 => "modem power-cycled once".into(),
        2 => "modem power-cycled twice".into(),
        n => format!("modem power-cycled {n} times"),
    }
}

impl Guest for Notify {
    fn on_wan_sick(t: Transition) -> Result<(), String> {
        // The outage, if it becomes one, began at the first failed round.
        set_counter(OUTAGE_START, t.at_ms)
    }

    fn on_wan_down(t: Transition) -> Result<(), String> {
        let settings = settings()?;
        let now = t.at_ms;
        let last = counter(LAST_ALERT);
        if last != 0 && now.saturating_sub(last) < settings.min_gap.as_millis() {
            set_counter(HELD_BACK, counter(HELD_BACK) + 1)?;
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
        send("WAN down", &body, settings.priority)?;
        set_counter(LAST_ALERT, now)?;
        set_counter(HELD_BACK, 0)?;
        kv::set(ANNOUNCED, "1")
    }

    fn on_wan_up(t: Transition) -> Result<(), String> {
        let announced = kv::get(ANNOUNCED).is_some();
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
        send(
            &title,
            "The internet answers again.",
            settings.priority.saturating_sub(1),
        )
    }

    fn on_timer(_name: String) -> Result<(), String> {
        Ok(())
    }

    fn on_power_out(t: PowerTransition) -> Result<(), String> {
        let silent: Vec<&str> = t
            .devices
            .iter()
            .filter(|d| !d.answered)
            .map(|d| d.device.as_str())
            .collect();
        log::log(
            Level::Warn,
            &format!("mains power out: {} silent", silent.join(", ")),
        );
        let body = format!(
            "{} of {} power-detection devices stopped answering ({}).",
            silent.len(),
            t.devices.len(),
            silent.join(", ")
        );
        send("Mains power out", &body, settings()?.priority)
    }

    fn on_power_restored(t: PowerTransition) -> Result<(), String> {
        let title = format!(
            "Mains power restored after {}",
            human_duration(t.previous_duration_ms)
        );
        send(
            &title,
            "The power-detection devices answer again.",
            settings()?.priority.saturating_sub(1),
        )
    }
}
