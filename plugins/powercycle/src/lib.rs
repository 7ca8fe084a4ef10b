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
use wanwatch_plugin::{
    Policy, PowerState, PowerTransition, Result, Seconds, Transition, WanState, human_duration,
    info, kv, notify, now, power_cycle, timers, warn,
};

struct Powercycle;

wanwatch_plugin::register_policy!(Powercycle);

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

/// The plugin's memory, kept in the host's key-value store.
mod memory {
    use super::{Result, WanState, kv};

    /// When each recent cycle happened (unix ms), oldest first.
    pub fn cycles() -> Vec<u64> {
        kv::get("cycles").unwrap_or_default()
    }

    pub fn set_cycles(cycles: &[u64]) -> Result {
        kv::set("cycles", cycles)
    }

    /// Cycles since the WAN was last up: sets the doubling wait.
    pub fn attempt() -> u32 {
        kv::get("attempt").unwrap_or(0)
    }

    pub fn set_attempt(n: u32) -> Result {
        kv::set("attempt", &n)
    }

    /// Whether the plugin gave up during the current outage.
    pub fn gave_up() -> bool {
        flag("gave_up")
    }

    pub fn set_gave_up(yes: bool) -> Result {
        set_flag("gave_up", yes)
    }

    /// When the last give-up notice went out (unix ms; 0: never).
    pub fn gave_up_notified() -> u64 {
        kv::get("gave_up_notified").unwrap_or(0)
    }

    pub fn set_gave_up_notified(at_ms: u64) -> Result {
        kv::set("gave_up_notified", &at_ms)
    }

    /// Whether the WAN was down when last reported, so that a timer knows.
    pub fn down() -> bool {
        kv::get::<String>("state").as_deref() == Some("down")
    }

    pub fn set_state(state: WanState) -> Result {
        let name = match state {
            WanState::Up => "up",
            WanState::Sick => "sick",
            WanState::Down => "down",
        };
        kv::set("state", name)
    }

    /// Whether the mains power is out, as last reported.
    pub fn power_out() -> bool {
        flag("power_out")
    }

    pub fn set_power_out(out: bool) -> Result {
        set_flag("power_out", out)
    }

    /// A flag is a key that is there or not, whatever its value.
    fn flag(key: &str) -> bool {
        kv::get::<serde::de::IgnoredAny>(key).is_some()
    }

    fn set_flag(key: &str, on: bool) -> Result {
        if on {
            kv::set(key, &true)
        } else {
            kv::delete(key)
        }
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
fn cycle(settings: &Settings) -> Result {
    let now = now();
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
        warn!("{body}");
        // One notice per window: a flapping line would otherwise bring one
        // at every drop once the cap is reached.
        if now.saturating_sub(memory::gave_up_notified()) < window_ms {
            return Ok(());
        }
        memory::set_gave_up_notified(now)?;
        // A missing notify grant must not hide the give-up in the log above.
        if let Err(e) = notify("wanwatch: giving up", &body, 4) {
            warn!("could not notify: {e}");
        }
        return Ok(());
    }
    let attempt = memory::attempt() + 1;
    let wait = wait_after(settings, attempt);
    // Recorded before the cycle, which the host saves first: a daemon
    // killed while the modem is off resumes knowing of this cycle, rather
    // than cycling again; at worst a cycle that never happened is counted.
    let tried = cycles.len();
    cycles.push(now);
    memory::set_cycles(&cycles)?;
    memory::set_attempt(attempt)?;
    timers::set(RECHECK, Seconds(wait).as_duration())?;
    if let Err(e) = power_cycle(&settings.device, settings.off_seconds) {
        cycles.truncate(tried);
        memory::set_cycles(&cycles)?;
        memory::set_attempt(attempt - 1)?;
        // Tried again at the next recheck: a plug that did not answer, or
        // was still finishing the last cycle, may well do next time.
        timers::set(RECHECK, settings.boot_wait.as_duration())?;
        return Err(e);
    }
    info!(
        "power-cycled {} for {} s (cycle {attempt}); checking again in {}",
        settings.device,
        settings.off_seconds,
        human_duration(wait * 1000)
    );
    Ok(())
}

impl Policy for Powercycle {
    fn on_wan_up(t: Transition) -> Result {
        memory::set_state(t.current)?;
        timers::cancel(RECHECK);
        memory::set_attempt(0)?;
        memory::set_gave_up(false)
    }

    fn on_wan_sick(t: Transition) -> Result {
        // Not yet: most failed rounds are blips that heal by themselves.
        memory::set_state(t.current)
    }

    fn on_wan_down(t: Transition) -> Result {
        // Already down: the host tells the state again after a restart. The
        // outage's back-off goes on from its timer, which outlived the
        // restart; cycling now would cut it short.
        if memory::down() {
            return Ok(());
        }
        memory::set_state(t.current)?;
        let settings: Settings = wanwatch_plugin::settings()?;
        if t.local_fault {
            warn!(
                "the LAN gateway does not answer either: a local fault (router, cable) that a modem power cycle cannot fix; not cycling"
            );
            return Ok(());
        }
        if t.power == PowerState::Out {
            warn!("the mains power is out: the modem has no power to come back with; not cycling");
            return Ok(());
        }
        if memory::gave_up() {
            return Ok(());
        }
        cycle(&settings)
    }

    fn on_timer(name: String) -> Result {
        if name != RECHECK || !memory::down() || memory::gave_up() || memory::power_out() {
            return Ok(());
        }
        cycle(&wanwatch_plugin::settings()?)
    }

    fn on_power_out(_: PowerTransition) -> Result {
        // A pending recheck must not cycle a modem that has no power.
        memory::set_power_out(true)
    }

    fn on_power_restored(_: PowerTransition) -> Result {
        memory::set_power_out(false)?;
        // The modem boots with the power; if the WAN stays down after that,
        // the usual rules apply again.
        if memory::down() && !memory::gave_up() {
            let settings: Settings = wanwatch_plugin::settings()?;
            timers::set(RECHECK, settings.boot_wait.as_duration())?;
        }
        Ok(())
    }
}
