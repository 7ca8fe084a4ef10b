//! `escalate`: power-cycles the modem when the WAN goes down, and again
//! each time it is still down after `boot_wait`; after `max_cycles` cycles
//! that did not help, it notifies a human (once) and stops cycling until
//! the WAN has been up again. Power cycles cannot fix an ISP outage, and
//! repeating them forever only hides that someone should call the ISP.
//!
//! Settings (`[plugins.escalate.settings]`):
//!
//! | setting       | default   | meaning |
//! |---------------|-----------|---------|
//! | `max_cycles`  | `2`       | cycles in one outage before escalating |
//! | `boot_wait`   | `"3m"`    | time the modem gets to boot before the next try |
//! | `priority`    | `5`       | priority of the escalation (1–5) |
//! | `device`      | `"modem"` | the device to cycle |
//! | `off_seconds` | `10`      | how long it stays off |

use serde::Deserialize;
use wanwatch_plugin::{
    Policy, Result, Seconds, Transition, human_duration, kv, notify, now, power_cycle, timers, warn,
};

struct Escalate;

wanwatch_plugin::register_policy!(Escalate);

/// The timer that judges the last cycle.
const CHECK: &str = "check";
/// Keys of the plugin's memory: cycles in this outage, when it began, and
/// whether it has been escalated.
const CYCLES: &str = "cycles";
const SINCE: &str = "down_since_ms";
const ESCALATED: &str = "escalated";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    max_cycles: u32,
    boot_wait: Seconds,
    priority: u8,
    device: String,
    off_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_cycles: 2,
            boot_wait: Seconds(180),
            priority: 5,
            device: "modem".into(),
            off_seconds: 10,
        }
    }
}

/// Cycles once more, or escalates when the cycles are used up.
fn next_step(settings: &Settings) -> Result {
    let cycles: u32 = kv::get(CYCLES).unwrap_or(0);
    if cycles < settings.max_cycles {
        power_cycle(&settings.device, settings.off_seconds)?;
        kv::set(CYCLES, &(cycles + 1))?;
        return timers::set(CHECK, settings.boot_wait.as_duration());
    }
    if kv::get::<bool>(ESCALATED).is_some() {
        return Ok(());
    }
    kv::set(ESCALATED, &true)?;
    let since: u64 = kv::get(SINCE).unwrap_or_else(now);
    let body = format!(
        "The WAN has been down for {} and {cycles} power cycles of {} did not bring it back. \
         It may be the ISP: check their status page or call them. No more cycles until it is back.",
        human_duration(now().saturating_sub(since)),
        settings.device,
    );
    warn!("{body}");
    notify("WAN still down: over to you", &body, settings.priority)
}

impl Policy for Escalate {
    fn on_wan_down(t: Transition) -> Result {
        if t.local_fault {
            return Ok(());
        }
        kv::set(SINCE, &t.at_ms.saturating_sub(t.previous_duration_ms))?;
        next_step(&wanwatch_plugin::settings()?)
    }

    fn on_timer(name: String) -> Result {
        // A check after the WAN came back finds the outage reset.
        if name != CHECK || kv::get::<u64>(SINCE).is_none() {
            return Ok(());
        }
        next_step(&wanwatch_plugin::settings()?)
    }

    fn on_wan_up(_: Transition) -> Result {
        timers::cancel(CHECK);
        for key in [CYCLES, SINCE, ESCALATED] {
            kv::delete(key)?;
        }
        Ok(())
    }
}
