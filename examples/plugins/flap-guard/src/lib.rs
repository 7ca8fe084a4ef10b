//! `flap-guard`: power-cycles the modem when the WAN goes down, unless the
//! line is flapping: when it has gone down more than `max_flaps` times
//! within `window`, each drop is a symptom (a bad cable joint, a marginal
//! signal) that rebooting the modem will not cure. It then notifies once,
//! stops reacting to each flap, and tells again only when the line has
//! been steady for a whole `window` and then starts flapping anew.
//!
//! Settings (`[plugins.flap-guard.settings]`):
//!
//! | setting       | default   | meaning |
//! |---------------|-----------|---------|
//! | `max_flaps`   | `3`       | outages within `window` that are still handled one by one |
//! | `window`      | `"1h"`    | the sliding window the outages are counted in |
//! | `device`      | `"modem"` | the device to cycle |
//! | `off_seconds` | `10`      | how long it stays off |

use serde::Deserialize;
use wanwatch_plugin::{
    Policy, Result, Seconds, Transition, human_duration, info, kv, notify, power_cycle,
};

struct FlapGuard;

wanwatch_plugin::register_policy!(FlapGuard);

/// Keys of the plugin's memory: when recent outages began (unix ms), and
/// whether the current bout of flapping has been announced.
const OUTAGES: &str = "outages";
const FLAPPING: &str = "flapping";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    max_flaps: usize,
    window: Seconds,
    device: String,
    off_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_flaps: 3,
            window: Seconds(3600),
            device: "modem".into(),
            off_seconds: 10,
        }
    }
}

impl Policy for FlapGuard {
    fn on_wan_down(t: Transition) -> Result {
        let settings: Settings = wanwatch_plugin::settings()?;
        let window = settings.window.as_millis();
        let mut outages: Vec<u64> = kv::get(OUTAGES).unwrap_or_default();
        outages.retain(|&at| t.at_ms.saturating_sub(at) < window);
        outages.push(t.at_ms);
        kv::set(OUTAGES, &outages)?;
        if outages.len() <= settings.max_flaps {
            kv::delete(FLAPPING)?;
            if t.local_fault {
                return Ok(());
            }
            return power_cycle(&settings.device, settings.off_seconds);
        }
        if kv::get::<bool>(FLAPPING).is_some() {
            info!(
                "flapping: outage {} within {}; not reacting",
                outages.len(),
                human_duration(window)
            );
            return Ok(());
        }
        kv::set(FLAPPING, &true)?;
        let body = format!(
            "The WAN went down {} times within {}. Power cycles do not cure a flapping line: \
             check the cables and the signal, or call the ISP. Not reacting to each drop from now on.",
            outages.len(),
            human_duration(window)
        );
        notify("WAN flapping", &body, 4)
    }
}
