//! Outages, derived from the stored events. Pure: events in, outages out.
//!
//! An outage is a stretch during which the WAN reached `down`:
//! - it starts when the rounds began failing, i.e. when the link went
//!   sick before going down (the down transition's `at_ms` minus the time
//!   it had been sick);
//! - it ends at the next transition to `up`; until then it is open;
//! - a link that went sick and came back up without reaching `down` had no
//!   outage: a few lost rounds are not one, and `down_after` says how long
//!   it takes.
//!
//! Its cause is read from the transition to `down`: `local-fault` when the
//! LAN gateway did not answer either; else `mains-power` when the mains
//! power was out; else `dns-only` when the failing round's DNS probes failed
//! while some non-DNS `wan` probe answered; else `wan`.
//!
//! The power cycles of an outage are those with the outcome `done` or
//! `dry-run` from its start to its end. The one that fixed it, if any, is
//! the last one, when the link came back within [`BOOT_WINDOW_MS`] of it: a
//! fixed window, long enough for a modem to boot and sync, rather than each
//! plugin's own wait.

use serde::{Deserialize, Serialize};

use super::StoredEvent;
use crate::power::PowerState;
use crate::state::{Evidence, HttpsStep, Millis, ProbeKind, Role, WanState};

/// How soon after a power cycle the link must be back for the cycle to
/// count as the fix: 5 minutes.
pub const BOOT_WINDOW_MS: Millis = 5 * 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    Wan,
    LocalFault,
    MainsPower,
    DnsOnly,
}

impl Cause {
    pub const ALL: [Cause; 4] = [
        Cause::Wan,
        Cause::LocalFault,
        Cause::MainsPower,
        Cause::DnsOnly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::Wan => "wan",
            Cause::LocalFault => "local-fault",
            Cause::MainsPower => "mains-power",
            Cause::DnsOnly => "dns-only",
        }
    }
}

/// A power cycle done during an outage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cycle {
    pub at_ms: Millis,
    pub device: String,
    /// `done` or `dry-run`.
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outage {
    /// When the rounds began failing.
    pub start_ms: Millis,
    /// When the link was declared down.
    pub down_ms: Millis,
    /// When it came back up; None while the outage goes on.
    pub end_ms: Option<Millis>,
    /// To the end, or to now while it goes on.
    pub duration_ms: Millis,
    pub cause: Cause,
    pub power_cycles: Vec<Cycle>,
    /// The cycle (1-based, in `power_cycles`) after which the link came
    /// back within [`BOOT_WINDOW_MS`].
    pub fixed_by_cycle: Option<usize>,
}

/// What outages are made of, read from stored events.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Wan(WanInput),
    Cycle(Cycle),
}

/// The fields of a stored `wan` event that outages need.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WanInput {
    pub at_ms: Millis,
    pub previous: WanState,
    pub current: WanState,
    pub previous_duration_ms: Millis,
    #[serde(default)]
    pub local_fault: bool,
    #[serde(default)]
    pub power: PowerState,
    #[serde(default)]
    pub evidence: Vec<Evidence>,
}

impl WanInput {
    /// The link known up from `at_ms`, with nothing known before.
    pub fn up_from(at_ms: Millis) -> WanInput {
        WanInput {
            at_ms,
            previous: WanState::Up,
            current: WanState::Up,
            previous_duration_ms: 0,
            local_fault: false,
            power: PowerState::On,
            evidence: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct ActionInput {
    at_ms: Millis,
    action: String,
    #[serde(default)]
    device: String,
    outcome: String,
}

impl Input {
    /// The input a stored event is, if any: `wan` events, and power
    /// cycles that were done (or would have been, in a dry run).
    pub fn from_event(event: &StoredEvent) -> Option<Input> {
        match event.kind.as_str() {
            "wan" => WanInput::deserialize(&event.data).ok().map(Input::Wan),
            "action" => {
                let a = ActionInput::deserialize(&event.data).ok()?;
                (a.action == "power-cycle" && matches!(a.outcome.as_str(), "done" | "dry-run"))
                    .then_some(Input::Cycle(Cycle {
                        at_ms: a.at_ms,
                        device: a.device,
                        outcome: a.outcome,
                    }))
            }
            _ => None,
        }
    }
}

/// The cause of an outage, from its transition to down.
pub fn cause(down: &WanInput) -> Cause {
    let wan = || down.evidence.iter().filter(|e| e.role == Role::Wan);
    // An https probe that could not resolve its name is a DNS probe too.
    let resolve_failed =
        |e: &Evidence| e.https.as_ref().and_then(|h| h.failed) == Some(HttpsStep::Resolve);
    let dns_failed = wan().any(|e| (e.kind == ProbeKind::Dns && !e.ok) || resolve_failed(e));
    let other_answered = wan().any(|e| e.kind != ProbeKind::Dns && e.ok);
    if down.local_fault {
        Cause::LocalFault
    } else if down.power == PowerState::Out {
        Cause::MainsPower
    } else if dns_failed && other_answered {
        Cause::DnsOnly
    } else {
        Cause::Wan
    }
}

/// The outages in `inputs` (in time order); one still open lasts to `now_ms`.
pub fn derive(inputs: &[Input], now_ms: Millis) -> Vec<Outage> {
    let mut outages = Vec::new();
    let mut open: Option<Outage> = None;
    // Cycles since the link was last up: those done while it was sick
    // belong to the outage that follows.
    let mut cycles: Vec<Cycle> = Vec::new();
    for input in inputs {
        match input {
            Input::Cycle(cycle) => match &mut open {
                Some(outage) => outage.power_cycles.push(cycle.clone()),
                None => cycles.push(cycle.clone()),
            },
            Input::Wan(t) if t.current == WanState::Down && open.is_none() => {
                let start_ms = match t.previous {
                    WanState::Sick => t.at_ms.saturating_sub(t.previous_duration_ms),
                    _ => t.at_ms,
                };
                cycles.retain(|c| c.at_ms >= start_ms);
                open = Some(Outage {
                    start_ms,
                    down_ms: t.at_ms,
                    end_ms: None,
                    duration_ms: 0,
                    cause: cause(t),
                    power_cycles: std::mem::take(&mut cycles),
                    fixed_by_cycle: None,
                });
            }
            Input::Wan(t) if t.current == WanState::Up => {
                cycles.clear();
                if let Some(mut outage) = open.take() {
                    outage.end_ms = Some(t.at_ms);
                    outage.duration_ms = t.at_ms.saturating_sub(outage.start_ms);
                    outage.fixed_by_cycle = outage.power_cycles.last().and_then(|c| {
                        (t.at_ms.saturating_sub(c.at_ms) <= BOOT_WINDOW_MS)
                            .then_some(outage.power_cycles.len())
                    });
                    outages.push(outage);
                } else if t.previous == WanState::Down {
                    // Its down transition is not in the inputs (a history
                    // that begins mid-outage): what is known of it.
                    let start_ms = t.at_ms.saturating_sub(t.previous_duration_ms);
                    outages.push(Outage {
                        start_ms,
                        down_ms: start_ms,
                        end_ms: Some(t.at_ms),
                        duration_ms: t.previous_duration_ms,
                        cause: Cause::Wan,
                        power_cycles: Vec::new(),
                        fixed_by_cycle: None,
                    });
                }
            }
            Input::Wan(_) => {}
        }
    }
    if let Some(mut outage) = open {
        outage.duration_ms = now_ms.saturating_sub(outage.start_ms);
        outages.push(outage);
    }
    outages
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::HttpsEvidence;

    pub fn wan(
        at_ms: Millis,
        previous: WanState,
        current: WanState,
        previous_duration_ms: Millis,
    ) -> Input {
        Input::Wan(WanInput {
            at_ms,
            previous,
            current,
            previous_duration_ms,
            local_fault: false,
            power: PowerState::On,
            evidence: Vec::new(),
        })
    }

    pub fn cycle(at_ms: Millis) -> Input {
        Input::Cycle(Cycle {
            at_ms,
            device: "modem".into(),
            outcome: "done".into(),
        })
    }

    use WanState::{Down, Sick, Up};

    #[test]
    fn an_outage_starts_when_the_link_went_sick_and_ends_when_it_is_up() {
        let outages = derive(
            &[
                wan(100_000, Up, Sick, 50_000),
                wan(109_000, Sick, Down, 9_000),
                // Cycled at 2 min, back 4 min later: within the boot window.
                cycle(220_000),
                wan(460_000, Down, Up, 351_000),
            ],
            1_000_000,
        );
        assert_eq!(
            outages,
            [Outage {
                start_ms: 100_000,
                down_ms: 109_000,
                end_ms: Some(460_000),
                duration_ms: 360_000,
                cause: Cause::Wan,
                power_cycles: vec![Cycle {
                    at_ms: 220_000,
                    device: "modem".into(),
                    outcome: "done".into()
                }],
                fixed_by_cycle: Some(1),
            }]
        );
    }

    #[test]
    fn a_sick_spell_that_never_went_down_is_no_outage() {
        let outages = derive(
            &[
                wan(100_000, Up, Sick, 50_000),
                wan(104_000, Sick, Up, 4_000),
            ],
            1_000_000,
        );
        assert!(outages.is_empty());
    }

    #[test]
    fn cycles_while_sick_count_and_a_late_return_is_no_fix() {
        let outages = derive(
            &[
                // A cycle of an earlier sick spell belongs to no outage.
                wan(10_000, Up, Sick, 10_000),
                cycle(12_000),
                wan(14_000, Sick, Up, 4_000),
                wan(100_000, Up, Sick, 86_000),
                cycle(105_000),
                wan(109_000, Sick, Down, 9_000),
                cycle(200_000),
                // 5 min 1 s after the second cycle.
                wan(501_000, Down, Up, 392_000),
            ],
            1_000_000,
        );
        assert_eq!(outages.len(), 1);
        let at: Vec<Millis> = outages[0].power_cycles.iter().map(|c| c.at_ms).collect();
        assert_eq!(at, [105_000, 200_000]);
        assert_eq!(outages[0].fixed_by_cycle, None);
    }

    #[test]
    fn an_open_outage_lasts_until_now() {
        let outages = derive(
            &[wan(100_000, Up, Sick, 0), wan(109_000, Sick, Down, 9_000)],
            400_000,
        );
        assert_eq!(outages[0].end_ms, None);
        assert_eq!(outages[0].duration_ms, 300_000);
    }

    fn down_with(
        local_fault: bool,
        power: PowerState,
        evidence: &[(Role, ProbeKind, bool)],
    ) -> Cause {
        let evidence = evidence
            .iter()
            .map(|&(role, kind, ok)| Evidence {
                target: "t".into(),
                role,
                kind,
                ok,
                rtt_us: None,
                https: None,
            })
            .collect();
        down_after(local_fault, power, evidence)
    }

    /// The cause of a transition to down that `evidence` caused.
    fn down_after(local_fault: bool, power: PowerState, evidence: Vec<Evidence>) -> Cause {
        cause(&WanInput {
            at_ms: 0,
            previous: Sick,
            current: Down,
            previous_duration_ms: 0,
            local_fault,
            power,
            evidence,
        })
    }

    #[test]
    fn causes() {
        use ProbeKind::{Dns, Icmp};
        use Role::{Lan, Wan};
        let dns_only = [(Lan, Icmp, true), (Wan, Dns, false), (Wan, Icmp, true)];
        assert_eq!(down_with(false, PowerState::On, &dns_only), Cause::DnsOnly);
        assert_eq!(
            down_with(
                false,
                PowerState::On,
                &[(Wan, Dns, false), (Wan, Icmp, false)]
            ),
            Cause::Wan
        );
        assert_eq!(
            down_with(false, PowerState::Out, &dns_only),
            Cause::MainsPower
        );
        assert_eq!(
            down_with(true, PowerState::Out, &dns_only),
            Cause::LocalFault
        );
    }

    #[test]
    fn an_https_probe_that_could_not_resolve_is_a_dns_failure() {
        let https = |failed| Evidence {
            target: "web".into(),
            role: Role::Wan,
            kind: ProbeKind::Https,
            ok: false,
            rtt_us: None,
            https: Some(HttpsEvidence {
                failed: Some(failed),
                ..HttpsEvidence::default()
            }),
        };
        let down = |failed| {
            let evidence = vec![https(failed), Evidence::icmp("ip", Role::Wan, Some(900))];
            down_after(false, PowerState::On, evidence)
        };
        assert_eq!(down(HttpsStep::Resolve), Cause::DnsOnly);
        // Past the name, a failure is the link's (or the server's).
        assert_eq!(down(HttpsStep::Tls), Cause::Wan);
    }

    #[test]
    fn stored_events_are_read() {
        let event = |kind: &str, data: serde_json::Value| StoredEvent {
            id: 1,
            at_ms: 5,
            kind: kind.into(),
            data,
        };
        let wan = event(
            "wan",
            serde_json::json!({"kind": "wan", "previous": "sick", "current": "down", "at_ms": 5,
                "previous_duration_ms": 9000, "local_fault": true, "evidence": [],
                "power": "out", "power_cycles": 0}),
        );
        let Some(Input::Wan(t)) = Input::from_event(&wan) else {
            panic!("not read")
        };
        assert_eq!(cause(&t), Cause::LocalFault);
        let action = |outcome: &str| {
            event(
                "action",
                serde_json::json!({"kind": "action", "at_ms": 5, "plugin": "powercycle",
                    "action": "power-cycle", "device": "modem", "off_seconds": 10, "outcome": outcome}),
            )
        };
        assert!(matches!(
            Input::from_event(&action("dry-run")),
            Some(Input::Cycle(_))
        ));
        assert_eq!(Input::from_event(&action("refused: cap")), None);
    }
}
