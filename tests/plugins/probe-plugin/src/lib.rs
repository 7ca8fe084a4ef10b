//! `probe-plugin`: the test plugin of tests/tests/plugin_runtime.rs.
//!
//! On every callback it counts the call in the host's key-value store and,
//! unless told otherwise, notifies a report: title = the callback's name,
//! body = a JSON object with everything it received and what its requests
//! to the host returned. The test reads the reports back from a recording
//! notifier, so each field that crossed the boundary can be checked.
//!
//! What it does beyond that is chosen per callback by its settings, e.g.
//!
//! ```json
//! { "on-wan-up":   { "power": ["modem", 7], "set": [["t1", 1000]] },
//!   "on-wan-sick": { "cancel": ["t1"] },
//!   "on-wan-down": { "fault": "loop" } }
//! ```
//!
//! - `power`: `[device, off_seconds]`, a power cycle to request;
//! - `set`: `[[name, after_ms]]`, timers to arm; `cancel`: names to disarm;
//! - `report`: `false` to skip the notification;
//! - `random`: `true` to draw from WASI's random sources (`getrandom` and a
//!   `HashMap`'s hasher keys, std's two paths to them) and put the draws in
//!   the notification's title, which the simulator's timeline shows;
//! - `fault`: after counting the call, misbehave: `"trap"` (`unreachable`),
//!   `"panic"`, `"loop"` (forever), `"alloc"` (without bound), `"error"`
//!   (return an error string), `"recurse"` (without bound: a stack
//!   overflow), or flood the host and go on: `"log-flood"` (10,000 lines),
//!   `"notify-flood"` (100 notifications; how many were accepted is
//!   reported as `notified`), `"timer-flood"` (1,000 timers; `timers_set`);
//!   or block or spin in the host: `"sleep"` (an hour, in WASI),
//!   `"kv-flood"` (`kv.set` without end), `"refusal-flood"` (power cycles of
//!   a device it is not granted, without end).

use serde_json::{Value, json};

wit_bindgen::generate!({ world: "policy", path: "../../../wit/since_v0.1.0" });

use wanwatch::policy::types::{Evidence, PowerState, ProbeKind, Role, WanState};
use wanwatch::policy::{clock, kv, log, notify, power, settings, timers};

struct Probe;

export!(Probe);

/// Calls handled by this instance: 1 after a fresh instantiation, which is
/// how a test sees that a faulted instance was replaced.
static INSTANCE_CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Guest for Probe {
    fn on_wan_up(t: Transition) -> Result<(), String> {
        handle("on-wan-up", wan(&t))
    }

    fn on_wan_sick(t: Transition) -> Result<(), String> {
        handle("on-wan-sick", wan(&t))
    }

    fn on_wan_down(t: Transition) -> Result<(), String> {
        handle("on-wan-down", wan(&t))
    }

    fn on_timer(name: String) -> Result<(), String> {
        handle("on-timer", json!({ "timer": name }))
    }

    fn on_power_out(t: PowerTransition) -> Result<(), String> {
        handle(
            "on-power-out",
            json!({ "power_transition": power_transition(&t) }),
        )
    }

    fn on_power_restored(t: PowerTransition) -> Result<(), String> {
        handle(
            "on-power-restored",
            json!({ "power_transition": power_transition(&t) }),
        )
    }
}

/// The report of a WAN callback: the transition as the host's
/// `state::Transition` serializes it, and the context beside it.
fn wan(t: &Transition) -> Value {
    json!({
        "transition": transition(t),
        "power": power_state(t.power),
        "power_cycles": t.power_cycles,
    })
}

fn power_transition(t: &PowerTransition) -> Value {
    json!({
        "previous": power_state(t.previous),
        "current": power_state(t.current),
        "at_ms": t.at_ms,
        "previous_duration_ms": t.previous_duration_ms,
        "devices": t.devices.iter()
            .map(|d| json!({ "device": d.device, "answered": d.answered }))
            .collect::<Vec<_>>(),
    })
}

fn power_state(p: PowerState) -> &'static str {
    match p {
        PowerState::On => "on",
        PowerState::Out => "out",
    }
}

fn handle(callback: &str, mut report: Value) -> Result<(), String> {
    let settings: Value =
        serde_json::from_str(&settings::get()).map_err(|e| format!("settings: {e}"))?;
    let todo = &settings[callback];

    let counter = kv::get("counter")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    kv::set("counter", &counter.to_string())?;
    report["counter"] = json!(counter);
    report["instance_calls"] =
        json!(INSTANCE_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
    report["now"] = json!(clock::now());

    match todo["fault"].as_str() {
        None => {}
        Some("trap") => core::arch::wasm32::unreachable(),
        Some("panic") => panic!("probe-plugin panics on purpose in {callback}"),
        Some("loop") => loop {
            std::hint::black_box(counter);
        },
        Some("alloc") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![1; 1 << 20]));
            }
        }
        Some("error") => return Err(format!("probe-plugin fails on purpose in {callback}")),
        Some("recurse") => {
            report["depth"] = json!(recurse(0));
        }
        Some("log-flood") => {
            for i in 0..10_000 {
                log::log(log::Level::Info, &format!("flood {i}"));
            }
        }
        Some("notify-flood") => {
            let sent = (0..100)
                .filter(|i| notify::notify("flood", &i.to_string(), 1).is_ok())
                .count();
            report["notified"] = json!(sent);
        }
        Some("timer-flood") => {
            let set = (0..1_000)
                .filter(|i| timers::set(&format!("flood-{i}"), 3_600_000).is_ok())
                .count();
            report["timers_set"] = json!(set);
        }
        Some("sleep") => std::thread::sleep(std::time::Duration::from_secs(3600)),
        Some("kv-flood") => {
            for i in 0u64.. {
                kv::set("flood", &i.to_string())?;
            }
        }
        Some("refusal-flood") => loop {
            let _ = power::power_cycle("not-granted", 1);
        },
        Some(other) => return Err(format!("unknown fault `{other}`")),
    }

    if let Some([device, off]) = todo["power"].as_array().map(Vec::as_slice) {
        let device = device.as_str().unwrap_or_default();
        let off = off.as_u64().unwrap_or_default() as u32;
        report["power"] = outcome(power::power_cycle(device, off));
    }
    for timer in todo["set"].as_array().into_iter().flatten() {
        let name = timer[0].as_str().unwrap_or_default();
        report["set"][name] = outcome(timers::set(name, timer[1].as_u64().unwrap_or_default()));
    }
    for name in todo["cancel"].as_array().into_iter().flatten() {
        timers::cancel(name.as_str().unwrap_or_default());
    }

    let mut title = callback.to_owned();
    if todo["random"] == json!(true) {
        title += &format!(" random {} {}", secure_random(), hasher_random());
    }
    if todo["report"] != json!(false) {
        notify::notify(&title, &report.to_string(), 3).map_err(|e| format!("notify: {e}"))?;
    }
    Ok(())
}

/// A draw from `wasi:random/random`, through getrandom.
fn secure_random() -> u64 {
    getrandom::u64().unwrap_or_default()
}

/// A hash of nothing under a fresh `RandomState`: its keys come from WASI
/// (std's own path to it, `insecure-seed` on wasip2).
fn hasher_random() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(())
}

/// Calls itself until the stack runs out; the arithmetic after the call
/// keeps it from becoming a loop.
#[allow(unconditional_recursion)] // the fault under test
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))) + 1
}

fn outcome(result: Result<(), String>) -> Value {
    match result {
        Ok(()) => json!("ok"),
        Err(e) => json!(e),
    }
}

fn transition(t: &Transition) -> Value {
    json!({
        "previous": state(t.previous),
        "current": state(t.current),
        "at_ms": t.at_ms,
        "previous_duration_ms": t.previous_duration_ms,
        "local_fault": t.local_fault,
        "evidence": t.evidence.iter().map(evidence).collect::<Vec<_>>(),
    })
}

fn evidence(e: &Evidence) -> Value {
    json!({
        "target": e.target,
        "role": match e.role { Role::Lan => "lan", Role::Wan => "wan" },
        "kind": match e.kind {
            ProbeKind::Icmp => "icmp",
            ProbeKind::Dns => "dns",
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
        },
        "ok": e.ok,
        "rtt_us": e.rtt_us,
    })
}

fn state(s: WanState) -> &'static str {
    match s {
        WanState::Up => "up",
        WanState::Sick => "sick",
        WanState::Down => "down",
    }
}
