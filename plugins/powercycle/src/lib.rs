//! `powercycle`, wanwatch's built-in policy: when the WAN goes down,
//! power-cycle the modem; if it is still down after it has had time to boot,
//! cycle again, waiting longer each time; after `max_cycles` within `window`,
//! notify a human and stop until the WAN has been up again.
//!
//! It never cycles on a local fault (the LAN gateway itself is silent): a
//! modem reboot cannot fix a dead router or an unplugged cable. Nor during a
//! mains power outage: the modem has no power, and its plug may have none
//! either.
//!
//! Its memory is the host's key-value store, not globals, so that a restart
//! of the daemon or a reload of the plugin does not reset the limits.
//!
//! Settings (`[plugins.powercycle.settings]`), durations as seconds or
//! "90s" / "3m" / "2h":
//!
//! | setting       | default   | meaning |
//! |---------------|-----------|---------|
//! | `device`      | `"modem"` | the device to cycle (must be granted) |
//! | `off_seconds` | `10`      | how long the modem stays off; long enough for its capacitors to drain |
//! | `boot_wait`   | `"3m"`    | how long a cable modem needs to boot and sync before judging the cycle |
//! | `max_wait`    | `"30m"`   | cap on the doubling wait between cycles |
//! | `max_cycles`  | `3`       | cycles allowed within `window` before giving up |
//! | `window`      | `"2h"`    | the sliding window of `max_cycles` |

use serde::Deserialize;
use wanwatch_plugin::{Seconds, human_duration};

wit_bindgen::generate!({ world: "policy", path: "../../wit" });

use wanwatch::policy::log::Level;
use wanwatch::policy::types::{PowerState, WanState};
use wanwatch::policy::{clock, kv, log, notify, power, settings, timers};

struct Powercycle;

export!(Powercycle);

/// The timer that fires when the modem has had time to boot.
const RECHECK: &str = "recheck";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    device: String,
    off_seconds: u32,
    boot_wait: Seconds,
    max_wait: Seconds,
    max_cycles: usize,
    window: Seconds,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: "modem".into(),
            off_seconds: 10,
            boot_wait: Seconds(180),
            max_wait: Seconds(30 * 60),
            max_cycles: 3,
            window: Seconds(2 * 3600),
        }
    }
}

fn settings() -> Result<Settings, String> {
    serde_json::from_str(&settings::get()).map_err(|e| format!("invalid settings: {e}"))
}

/// The plugin's memory, kept in the host's key-value store.
mod memory {
    use super::kv;

    /// When each recent cycle happened (unix ms), oldest first.
    pub fn cycles() -> Vec<u64> {
        kv::get("cycles")
            .map(|s| s.split(',').filter_map(|t| t.parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn set_cycles(cycles: &[u64]) -> Result<(), String> {
        let text: Vec<String> = cycles.iter().map(u64::to_string).collect();
        kv::set("cycles", &text.join(","))
    }

    /// Cycles since the WAN was last up: sets the doubling wait.
    pub fn attempt() -> u32 {
        kv::get("attempt").and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    pub fn set_attempt(n: u32) -> Result<(), String> {
        kv::set("attempt", &n.to_string())
    }

    /// Whether the plugin gave up during the current outage.
    pub fn gave_up() -> bool {
        kv::get("gave_up").is_some()
    }

    pub fn set_gave_up(yes: bool) -> Result<(), String> {
        if yes {
            kv::set("gave_up", "1")
        } else {
            kv::delete("gave_up")
        }
    }

    /// When the last give-up notice went out (unix ms; 0: never).
    pub fn gave_up_notified() -> u64 {
        kv::get("gave_up_notified")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn set_gave_up_notified(at_ms: u64) -> Result<(), String> {
        kv::set("gave_up_notified", &at_ms.to_string())
    }

    /// The WAN state as last reported, so a timer knows if it is still down.
    pub fn state() -> Option<String> {
        kv::get("state")
    }

    pub fn set_state(state: &str) -> Result<(), String> {
        kv::set("state", state)
    }

    /// Whether the mains power is out, as last reported.
    pub fn power_out() -> bool {
        kv::get("power_out").is_some()
    }

    pub fn set_power_out(out: bool) -> Result<(), String> {
        if out {
            kv::set("power_out", "1")
        } else {
            kv::delete("power_out")
        }
    }
}

fn state_name(state: WanState) -> &'static str {
    match state {
        WanState::Up => "up",
        WanState::Sick => "sick",
        WanState::Down => "down",
    }
}

/// The wait before judging cycle number `attempt` (1-based): `boot_wait`,
/// doubled after each cycle that did not help, capped at `max_wait`.
fn wait_after(settings: &Settings, attempt: u32) -> u64 {
    let doubling = 1u64 << attempt.saturating_sub(1).min(20);
    settings
        .boot_wait
        .0
        .saturating_mul(doubling)
        .min(settings.max_wait.0.max(settings.boot_wait.0))
}

/// Cycles the modem if the limits allow; otherwise notifies and gives up.
fn cycle(settings: &Settings) -> Result<(), String> {
    let now = clock::now();
    let window_ms = settings.window.as_millis();
    let mut cycles = memory::cycles();
    cycles.retain(|&t| now.saturating_sub(t) < window_ms);
    if cycles.len() >= settings.max_cycles {
        memory::set_gave_up(true)?;
        let body = format!(
            "The WAN is still down after {} power cycles of {} within {}; giving up until it has been up again.",
            cycles.len(),
            settings.device,
            human_duration(settings.window.as_millis())
        );
        log::log(Level::Warn, &body);
        // One notice per window: a flapping line would otherwise bring one
        // at every drop once the cap is reached.
        if now.saturating_sub(memory::gave_up_notified()) < window_ms {
            return Ok(());
        }
        memory::set_gave_up_notified(now)?;
        // A missing notify grant must not hide the give-up in the log above.
        if let Err(e) = notify::notify("wanwatch: giving up", &body, 4) {
            log::log(Level::Warn, &format!("could not notify: {e}"));
        }
        return Ok(());
    }
    let attempt = memory::attempt() + 1;
    power::power_cycle(&settings.device, settings.off_seconds)?;
    cycles.push(now);
    memory::set_cycles(&cycles)?;
    memory::set_attempt(attempt)?;
    let wait = wait_after(settings, attempt);
    log::log(
        Level::Info,
        &format!(
            "power-cycled {} for {} s (cycle {attempt}); checking again in {}",
            settings.device,
            settings.off_seconds,
            human_duration(wait * 1000)
        ),
    );
    timers::set(RECHECK, wait * 1000)
}

impl Guest for Powercycle {
    fn on_wan_up(t: Transition) -> Result<(), String> {
        memory::set_state(state_name(t.current))?;
        timers::cancel(RECHECK);
        memory::set_attempt(0)?;
        memory::set_gave_up(false)
    }

    fn on_wan_sick(t: Transition) -> Result<(), String> {
        // Not yet: most failed rounds are blips that heal by themselves.
        memory::set_state(state_name(t.current))
    }

    fn on_wan_down(t: Transition) -> Result<(), String> {
        memory::set_state(state_name(t.current))?;
        let settings = settings()?;
        if t.local_fault {
            log::log(
                Level::Warn,
                "the LAN gateway does not answer either: a local fault (router, cable) that a modem power cycle cannot fix; not cycling",
            );
            return Ok(());
        }
        if t.power == PowerState::Out {
            log::log(
                Level::Warn,
                "the mains power is out: the modem has no power to come back with; not cycling",
            );
            return Ok(());
        }
        if memory::gave_up() {
            return Ok(());
        }
        cycle(&settings)
    }

    fn on_timer(name: String) -> Result<(), String> {
        let still_down = memory::state().as_deref() == Some("down");
        if name != RECHECK || !still_down || memory::gave_up() || memory::power_out() {
            return Ok(());
        }
        cycle(&settings()?)
    }

    fn on_power_out(_: PowerTransition) -> Result<(), String> {
        // A pending recheck must not cycle a modem that has no power.
        memory::set_power_out(true)
    }

    fn on_power_restored(_: PowerTransition) -> Result<(), String> {
        memory::set_power_out(false)?;
        // The modem boots with the power; if the WAN stays down after that,
        // the usual rules apply again.
        if memory::state().as_deref() == Some("down") && !memory::gave_up() {
            timers::set(RECHECK, settings()?.boot_wait.as_millis())?;
        }
        Ok(())
    }
}
