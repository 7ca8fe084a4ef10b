//! Contract 0.1.0, adapted to the latest: its bindings, its imports
//! forwarded to the latest contract's implementations (one module per
//! capability, in this folder), and what it is given converted down from
//! what the latest is given. No capability is implemented twice: a 0.1
//! plugin's `kv.set` is the latest `kv.set`, with the same limits and checks.
//!
//! What 0.1 cannot see: link quality (no `quality` in transitions, no
//! `on-link-quality`), the steps of `https` probes (their targets show as
//! `http`, the closest kind 0.1 knows) and the heartbeat receivers.

use super::PluginState;
use super::bindings::wanwatch::policy as latest;

/// Rust bindings of `wit/since_v0.1.0/policy.wit`, the released 0.1.0.
pub(in crate::plugin) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "policy",
    });
}

use bindings::wanwatch::policy as old;
pub(in crate::plugin) use bindings::{Policy, PolicyPre};

impl old::types::Host for PluginState {}

impl old::log::Host for PluginState {
    fn log(&mut self, level: old::log::Level, message: String) {
        use latest::log::Level as L;
        let level = match level {
            old::log::Level::Trace => L::Trace,
            old::log::Level::Debug => L::Debug,
            old::log::Level::Info => L::Info,
            old::log::Level::Warn => L::Warn,
            old::log::Level::Error => L::Error,
        };
        latest::log::Host::log(self, level, message)
    }
}

impl old::clock::Host for PluginState {
    fn now(&mut self) -> u64 {
        latest::clock::Host::now(self)
    }
}

impl old::settings::Host for PluginState {
    fn get(&mut self) -> String {
        latest::settings::Host::get(self)
    }
}

impl old::kv::Host for PluginState {
    fn get(&mut self, key: String) -> Option<String> {
        latest::kv::Host::get(self, key)
    }

    fn set(&mut self, key: String, value: String) -> Result<(), String> {
        latest::kv::Host::set(self, key, value)
    }

    fn delete(&mut self, key: String) -> Result<(), String> {
        latest::kv::Host::delete(self, key)
    }
}

impl old::timers::Host for PluginState {
    fn set(&mut self, name: String, after_ms: u64) -> Result<(), String> {
        latest::timers::Host::set(self, name, after_ms)
    }

    fn cancel(&mut self, name: String) {
        latest::timers::Host::cancel(self, name)
    }
}

impl old::power::Host for PluginState {
    fn power_cycle(&mut self, device: String, off_seconds: u32) -> Result<(), String> {
        latest::power::Host::power_cycle(self, device, off_seconds)
    }
}

impl old::notify::Host for PluginState {
    fn notify(&mut self, title: String, body: String, priority: u8) -> Result<(), String> {
        latest::notify::Host::notify(self, title, body, priority)
    }
}

fn wan_state(s: latest::types::WanState) -> old::types::WanState {
    use latest::types::WanState as S;
    match s {
        S::Up => old::types::WanState::Up,
        S::Sick => old::types::WanState::Sick,
        S::Down => old::types::WanState::Down,
    }
}

fn power_state(p: latest::types::PowerState) -> old::types::PowerState {
    match p {
        latest::types::PowerState::On => old::types::PowerState::On,
        latest::types::PowerState::Out => old::types::PowerState::Out,
    }
}

/// A transition as a 0.1 plugin sees it: without its link quality and
/// `https` steps; an `https` target is `http` (an HTTP check that, for 0.1,
/// is all it can be told).
pub(in crate::plugin) fn transition(t: latest::types::Transition) -> old::types::Transition {
    use latest::types::ProbeKind as K;
    old::types::Transition {
        previous: wan_state(t.previous),
        current: wan_state(t.current),
        at_ms: t.at_ms,
        previous_duration_ms: t.previous_duration_ms,
        local_fault: t.local_fault,
        evidence: t
            .evidence
            .into_iter()
            .map(|e| old::types::Evidence {
                target: e.target,
                role: match e.role {
                    latest::types::Role::Lan => old::types::Role::Lan,
                    latest::types::Role::Wan => old::types::Role::Wan,
                },
                kind: match e.kind {
                    K::Icmp => old::types::ProbeKind::Icmp,
                    K::Dns => old::types::ProbeKind::Dns,
                    K::Http | K::Https => old::types::ProbeKind::Http,
                    K::Tcp => old::types::ProbeKind::Tcp,
                },
                ok: e.ok,
                rtt_us: e.rtt_us,
            })
            .collect(),
        power: power_state(t.power),
        power_cycles: t.power_cycles,
    }
}

/// A power transition as a 0.1 plugin sees it: the same, in 0.1's types.
pub(in crate::plugin) fn power_transition(
    t: latest::types::PowerTransition,
) -> old::types::PowerTransition {
    old::types::PowerTransition {
        previous: power_state(t.previous),
        current: power_state(t.current),
        at_ms: t.at_ms,
        previous_duration_ms: t.previous_duration_ms,
        devices: t
            .devices
            .into_iter()
            .map(|d| old::types::DeviceEvidence {
                device: d.device,
                answered: d.answered,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(kind: latest::types::ProbeKind) -> latest::types::Evidence {
        latest::types::Evidence {
            target: "t".into(),
            role: latest::types::Role::Wan,
            kind,
            ok: false,
            rtt_us: None,
            https: None,
        }
    }

    /// 0.1 has no `https` kind and no step evidence: the target shows as
    /// `http`, the rest of the evidence as it was.
    #[test]
    fn https_evidence_reaches_0_1_as_http() {
        use latest::types::{HttpsEvidence, HttpsStep, ProbeKind as K};
        let mut https = evidence(K::Https);
        https.https = Some(HttpsEvidence {
            failed: Some(HttpsStep::Tls),
            resolve_us: Some(900),
            connect_us: Some(2_000),
            tls_us: Some(5_000),
            http_us: None,
            status: None,
            error: Some("certificate is not valid".into()),
        });
        https.rtt_us = Some(7_900);
        let t = latest::types::Transition {
            previous: latest::types::WanState::Up,
            current: latest::types::WanState::Sick,
            at_ms: 1_000,
            previous_duration_ms: 60_000,
            local_fault: false,
            evidence: vec![evidence(K::Icmp), https, evidence(K::Dns), evidence(K::Tcp)],
            power: latest::types::PowerState::On,
            power_cycles: 2,
            quality: latest::types::LinkQuality {
                degraded: true,
                loss_percent: 30.0,
                rtt_p50_us: Some(900_000),
                targets: Vec::new(),
            },
        };
        let old = transition(t);
        let kinds: Vec<_> = old.evidence.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                old::types::ProbeKind::Icmp,
                old::types::ProbeKind::Http,
                old::types::ProbeKind::Dns,
                old::types::ProbeKind::Tcp
            ]
        );
        assert_eq!(old.evidence[1].rtt_us, Some(7_900));
        assert!(!old.evidence[1].ok);
        assert_eq!(old.current, old::types::WanState::Sick);
        assert_eq!((old.at_ms, old.previous_duration_ms), (1_000, 60_000));
        assert_eq!(old.power_cycles, 2);
    }
}
