//! The contract versions this host loads, and the one door into a plugin
//! of any of them.
//!
//! A component says which version it was built for in the names of what it
//! imports: `wanwatch:policy/kv@0.1.0`. [`Contract::of`] reads them, the
//! runtime links the component against that version's bindings, and
//! [`Instance::deliver`] hands each [`Event`] over in the version's own
//! types: the latest gets everything, 0.1 what it can express (see
//! [`since_v0_1_0`]).

use wasmtime::Store;
use wasmtime::component::Component;

use super::host::{PluginState, Policy, PolicyPre, since_v0_1_0, wit};
use super::{Event, WanEvent};
use crate::power::{PowerState, PowerTransition};
use crate::quality::{LinkQuality, QualityChange};
use crate::state::{HttpsStep, ProbeKind, Role, WanState};

/// A contract version this host loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    /// `wanwatch:policy@0.1.x`: adapted to the latest.
    V0_1,
    /// `wanwatch:policy@0.2.x`: the latest, what the host implements.
    V0_2,
}

impl Contract {
    /// The version the host implements.
    pub const LATEST: Contract = Contract::V0_2;

    /// Every version loaded, the latest first.
    pub const ALL: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    /// The version of its WIT (`package wanwatch:policy@...`).
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// The versions it stands for, as people write them: "0.1.x".
    pub fn series(self) -> String {
        let (minor, _) = self
            .version()
            .rsplit_once('.')
            .unwrap_or((self.version(), ""));
        format!("{minor}.x")
    }

    /// The version a component of another patch release is linked as:
    /// below 1.0, a patch adds nothing (semver: the minor is the breaking
    /// part).
    pub fn matching(version: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| {
            let series = c.series();
            version
                .strip_prefix(series.trim_end_matches('x'))
                .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()))
        })
    }

    /// The contract `component` was built for, from the version in the
    /// names of its `wanwatch:policy/...` imports: `Ok(None)` when it
    /// imports none (it can still fit, by its exports), `Err` with the
    /// version found when the host loads no such version.
    pub fn of(
        component: &Component,
        engine: &wasmtime::Engine,
    ) -> Result<Option<Contract>, String> {
        let ty = component.component_type();
        let mut found = None;
        for (name, _) in ty.imports(engine) {
            let Some(interface) = name.strip_prefix("wanwatch:policy/") else {
                continue;
            };
            let Some((_, version)) = interface.split_once('@') else {
                return Err("an unversioned contract".to_owned());
            };
            match Contract::matching(version) {
                Some(contract) => found = Some(contract),
                None => return Err(version.to_owned()),
            }
        }
        Ok(found)
    }

    /// Whether a plugin of this version has a callback for `event`: 0.1
    /// has no `on-link-quality`.
    pub fn delivers(self, event: &Event) -> bool {
        !matches!((self, event), (Contract::V0_1, Event::Quality(_)))
    }

    /// "0.1.0 (adapted to 0.2.0)", or the latest's version alone.
    pub fn describe(self) -> String {
        match self {
            Contract::LATEST => self.version().to_owned(),
            _ => format!(
                "{} (adapted to {})",
                self.version(),
                Contract::LATEST.version()
            ),
        }
    }
}

/// A component linked against its contract's bindings, ready to
/// instantiate.
#[derive(Clone)]
pub(super) enum Pre {
    V0_1(since_v0_1_0::PolicyPre<PluginState>),
    Latest(PolicyPre<PluginState>),
}

impl Pre {
    /// Links `component`, checked by `linker`, as a plugin of `contract`.
    pub fn new(
        contract: Contract,
        linker: &wasmtime::component::Linker<PluginState>,
        component: &Component,
    ) -> wasmtime::Result<Pre> {
        let pre = linker.instantiate_pre(component)?;
        Ok(match contract {
            Contract::V0_1 => Pre::V0_1(since_v0_1_0::PolicyPre::new(pre)?),
            Contract::V0_2 => Pre::Latest(PolicyPre::new(pre)?),
        })
    }

    pub fn contract(&self) -> Contract {
        match self {
            Pre::V0_1(_) => Contract::V0_1,
            Pre::Latest(_) => Contract::V0_2,
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Pre::V0_1(pre) => pre.engine(),
            Pre::Latest(pre) => pre.engine(),
        }
    }

    pub fn instantiate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Pre::V0_1(pre) => Instance::V0_1(pre.instantiate(store)?),
            Pre::Latest(pre) => Instance::Latest(pre.instantiate(store)?),
        })
    }
}

/// An instance of a plugin, of its contract version.
pub(super) enum Instance {
    V0_1(since_v0_1_0::Policy),
    Latest(Policy),
}

impl Instance {
    /// Calls the export for `event`, its instants moved by `wall` ms onto
    /// the wall clock. An event the version has no callback for (see
    /// [`Contract::delivers`]) is not delivered: `Ok(Ok(()))`.
    pub fn deliver(
        &self,
        store: &mut Store<PluginState>,
        event: &Event,
        wall: i64,
    ) -> wasmtime::Result<Result<(), String>> {
        match (self, event) {
            (Instance::Latest(i), Event::Wan(e)) => {
                let t = wan_to_wit(e, wall);
                match t.current {
                    wit::WanState::Up => i.call_on_wan_up(store, &t),
                    wit::WanState::Sick => i.call_on_wan_sick(store, &t),
                    wit::WanState::Down => i.call_on_wan_down(store, &t),
                }
            }
            (Instance::Latest(i), Event::Power(p)) => {
                let t = power_to_wit(p, wall);
                match p.current {
                    PowerState::Out => i.call_on_power_out(store, &t),
                    PowerState::On => i.call_on_power_restored(store, &t),
                }
            }
            (Instance::Latest(i), Event::Timer(name)) => i.call_on_timer(store, name),
            (Instance::Latest(i), Event::Quality(q)) => {
                i.call_on_link_quality(store, &quality_change_to_wit(q, wall))
            }
            (Instance::V0_1(i), Event::Wan(e)) => {
                let t = since_v0_1_0::transition(wan_to_wit(e, wall));
                match e.transition.current {
                    WanState::Up => i.call_on_wan_up(store, &t),
                    WanState::Sick => i.call_on_wan_sick(store, &t),
                    WanState::Down => i.call_on_wan_down(store, &t),
                }
            }
            (Instance::V0_1(i), Event::Power(p)) => {
                let t = since_v0_1_0::power_transition(power_to_wit(p, wall));
                match p.current {
                    PowerState::Out => i.call_on_power_out(store, &t),
                    PowerState::On => i.call_on_power_restored(store, &t),
                }
            }
            (Instance::V0_1(i), Event::Timer(name)) => i.call_on_timer(store, name),
            (Instance::V0_1(_), Event::Quality(_)) => Ok(Ok(())),
        }
    }
}

fn power_state(p: PowerState) -> wit::PowerState {
    match p {
        PowerState::On => wit::PowerState::On,
        PowerState::Out => wit::PowerState::Out,
    }
}

fn wan_state(s: WanState) -> wit::WanState {
    match s {
        WanState::Up => wit::WanState::Up,
        WanState::Sick => wit::WanState::Sick,
        WanState::Down => wit::WanState::Down,
    }
}

fn role(r: Role) -> wit::Role {
    match r {
        Role::Lan => wit::Role::Lan,
        Role::Wan => wit::Role::Wan,
    }
}

fn power_to_wit(p: &PowerTransition, wall: i64) -> wit::PowerTransition {
    wit::PowerTransition {
        previous: power_state(p.previous),
        current: power_state(p.current),
        at_ms: crate::clock::shift(p.at_ms, wall),
        previous_duration_ms: p.previous_duration_ms,
        devices: p
            .devices
            .iter()
            .map(|d| wit::DeviceEvidence {
                device: d.device.clone(),
                answered: d.answered,
            })
            .collect(),
    }
}

fn quality_to_wit(q: &LinkQuality) -> wit::LinkQuality {
    wit::LinkQuality {
        degraded: q.degraded,
        loss_percent: q.loss_percent,
        rtt_p50_us: q.rtt_p50_us,
        targets: q
            .targets
            .iter()
            .map(|t| wit::TargetQuality {
                target: t.target.clone(),
                role: role(t.role),
                probes: t.probes,
                loss_percent: t.loss_percent,
                rtt_p50_us: t.rtt_p50_us,
                rtt_p95_us: t.rtt_p95_us,
                jitter_us: t.jitter_us,
            })
            .collect(),
    }
}

fn quality_change_to_wit(q: &QualityChange, wall: i64) -> wit::QualityChange {
    wit::QualityChange {
        degraded: q.degraded,
        at_ms: crate::clock::shift(q.at_ms, wall),
        previous_duration_ms: q.previous_duration_ms,
        wan: wan_state(q.wan),
        quality: quality_to_wit(&q.quality),
    }
}

/// `e` as the plugins get it, its instant moved by `wall` ms onto the wall
/// clock.
fn wan_to_wit(e: &WanEvent, wall: i64) -> wit::Transition {
    let t = &e.transition;
    wit::Transition {
        previous: wan_state(t.previous),
        current: wan_state(t.current),
        at_ms: crate::clock::shift(t.at_ms, wall),
        previous_duration_ms: t.previous_duration_ms,
        local_fault: t.local_fault,
        evidence: t
            .evidence
            .iter()
            .map(|e| wit::Evidence {
                target: e.target.clone(),
                role: role(e.role),
                kind: match e.kind {
                    ProbeKind::Icmp => wit::ProbeKind::Icmp,
                    ProbeKind::Dns => wit::ProbeKind::Dns,
                    ProbeKind::Http => wit::ProbeKind::Http,
                    ProbeKind::Tcp => wit::ProbeKind::Tcp,
                    ProbeKind::Https => wit::ProbeKind::Https,
                },
                ok: e.ok,
                rtt_us: e.rtt_us,
                https: e.https.as_ref().map(|h| wit::HttpsEvidence {
                    failed: h.failed.map(|s| match s {
                        HttpsStep::Resolve => wit::HttpsStep::Resolve,
                        HttpsStep::Connect => wit::HttpsStep::Connect,
                        HttpsStep::Tls => wit::HttpsStep::Tls,
                        HttpsStep::Http => wit::HttpsStep::Http,
                    }),
                    resolve_us: h.resolve_us,
                    connect_us: h.connect_us,
                    tls_us: h.tls_us,
                    http_us: h.http_us,
                    status: h.status,
                    error: h.error.clone(),
                }),
            })
            .collect(),
        power: power_state(e.power),
        power_cycles: e.power_cycles,
        quality: quality_to_wit(&e.quality),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_by_minor_below_1_0() {
        assert_eq!(Contract::matching("0.1.0"), Some(Contract::V0_1));
        assert_eq!(Contract::matching("0.1.7"), Some(Contract::V0_1));
        assert_eq!(Contract::matching("0.2.0"), Some(Contract::V0_2));
        for other in ["0.10.0", "0.9.0", "1.1.0", "0.1", "0.1.x", "0.3.0"] {
            assert_eq!(Contract::matching(other), None, "{other}");
        }
    }

    #[test]
    fn quality_changes_reach_only_0_2() {
        let change = Event::Quality(QualityChange {
            degraded: true,
            at_ms: 0,
            previous_duration_ms: 0,
            wan: WanState::Up,
            quality: LinkQuality::default(),
        });
        assert!(Contract::V0_2.delivers(&change));
        assert!(!Contract::V0_1.delivers(&change));
        assert!(Contract::V0_1.delivers(&Event::Timer("t".into())));
    }

    #[test]
    fn the_versions_are_the_ones_in_the_wit() {
        for (contract, wit) in [
            (
                Contract::V0_1,
                include_str!("../../../wit/since_v0.1.0/policy.wit"),
            ),
            (
                Contract::V0_2,
                include_str!("../../../wit/since_v0.2.0/policy.wit"),
            ),
        ] {
            let package = format!("package wanwatch:policy@{};", contract.version());
            assert!(wit.contains(&package), "{package}");
        }
        assert_eq!(Contract::V0_1.describe(), "0.1.0 (adapted to 0.2.0)");
        assert_eq!(Contract::V0_2.describe(), "0.2.0");
    }

    /// What the latest gets of an `https` target: every step.
    #[test]
    fn https_steps_and_quality_reach_the_latest() {
        let mut e = WanEvent {
            transition: crate::state::Transition {
                previous: WanState::Up,
                current: WanState::Down,
                at_ms: 10,
                previous_duration_ms: 5,
                local_fault: false,
                evidence: vec![crate::state::Evidence {
                    target: "web".into(),
                    role: Role::Wan,
                    kind: ProbeKind::Https,
                    ok: false,
                    rtt_us: None,
                    https: Some(crate::state::HttpsEvidence {
                        failed: Some(HttpsStep::Resolve),
                        resolve_us: Some(1_500),
                        error: Some("no such name".into()),
                        ..Default::default()
                    }),
                }],
            },
            power: PowerState::On,
            power_cycles: 0,
            quality: LinkQuality::default(),
        };
        e.quality.degraded = true;
        e.quality.loss_percent = 12.5;
        let t = wan_to_wit(&e, 100);
        assert_eq!(t.at_ms, 110);
        assert!(t.quality.degraded);
        assert_eq!(t.quality.loss_percent, 12.5);
        let https = t.evidence[0].https.as_ref().unwrap();
        assert_eq!(t.evidence[0].kind, wit::ProbeKind::Https);
        assert_eq!(https.failed, Some(wit::HttpsStep::Resolve));
        assert_eq!(https.resolve_us, Some(1_500));
        assert_eq!(https.error.as_deref(), Some("no such name"));
    }
}
