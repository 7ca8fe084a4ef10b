//! The up/sick/down state machine.
//!
//! Pure: it takes each probe round with the time it finished and returns the
//! transition, if any. It does no I/O and reads no clock, so the daemon and
//! the simulator drive exactly the same code, the first in real time and the
//! second in virtual time.
//!
//! The rules (from the original wan-monitor design):
//! - up → sick on the first failed round;
//! - sick → down once rounds have been failing for longer than `down_after`;
//! - sick → up on the first successful round;
//! - down → up at once on the first successful round, skipping sick.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch: the one unit of time in the core, so
/// that virtual and real time are the same type.
pub type Millis = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WanState {
    Up,
    Sick,
    Down,
}

impl WanState {
    pub const ALL: [WanState; 3] = [WanState::Up, WanState::Sick, WanState::Down];

    /// The name people and other tools know it by.
    pub fn name(self) -> &'static str {
        match self {
            WanState::Up => "up",
            WanState::Sick => "sick",
            WanState::Down => "down",
        }
    }
}

impl std::fmt::Display for WanState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a probe target stands for (see `role` in `wit/since_v0.2.0/policy.wit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The local gateway: evidence of a local fault, never decides the state.
    Lan,
    /// An internet target: decides whether a round succeeds.
    Wan,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: `wanwatch status` aligns roles with `{:<4}`.
        f.pad(match self {
            Role::Lan => "lan",
            Role::Wan => "wan",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Icmp,
    Dns,
    Http,
    Tcp,
    Https,
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            ProbeKind::Icmp => "icmp",
            ProbeKind::Dns => "dns",
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Https => "https",
        })
    }
}

/// The outcome of probing one target once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub target: String,
    pub role: Role,
    pub kind: ProbeKind,
    pub ok: bool,
    /// Round-trip time in microseconds, when the target answered.
    pub rtt_us: Option<u32>,
    /// For `https` targets, how each step went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpsEvidence>,
}

#[cfg(test)]
impl Evidence {
    /// An ICMP probe's outcome: answered in `rtt_us`, or not at all.
    pub fn icmp(target: &str, role: Role, rtt_us: Option<u32>) -> Self {
        Evidence {
            target: target.into(),
            role,
            kind: ProbeKind::Icmp,
            ok: rtt_us.is_some(),
            rtt_us,
            https: None,
        }
    }
}

/// The steps of an `https` probe, in the order they run (see `https-step`
/// in `wit/since_v0.2.0/policy.wit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpsStep {
    Resolve,
    Connect,
    Tls,
    Http,
}

impl std::fmt::Display for HttpsStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpsStep::Resolve => "resolve",
            HttpsStep::Connect => "connect",
            HttpsStep::Tls => "tls",
            HttpsStep::Http => "http",
        })
    }
}

/// How an `https` probe went, step by step: which step failed and how long
/// each took.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpsEvidence {
    /// The step that failed; None when an HTTP status came back.
    pub failed: Option<HttpsStep>,
    pub resolve_us: Option<u32>,
    pub connect_us: Option<u32>,
    pub tls_us: Option<u32>,
    pub http_us: Option<u32>,
    /// The HTTP status of the answer.
    pub status: Option<u16>,
    /// Why the failed step failed, for people.
    pub error: Option<String>,
}

/// One probe round: every target probed once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// When the round finished.
    pub at_ms: Millis,
    pub results: Vec<Evidence>,
}

impl Round {
    /// How many `wan` targets answered.
    pub fn wan_ok(&self) -> usize {
        self.results
            .iter()
            .filter(|e| e.ok && e.role == Role::Wan)
            .count()
    }

    /// True when the round had `lan` targets and none of them answered: the
    /// router or cable is at fault, not the modem or the ISP.
    pub fn local_fault(&self) -> bool {
        let mut lan = self.results.iter().filter(|e| e.role == Role::Lan);
        let mut any = false;
        let all_silent = lan.all(|e| {
            any = true;
            !e.ok
        });
        any && all_silent
    }
}

/// A change of WAN state, with the round that caused it as evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub previous: WanState,
    pub current: WanState,
    pub at_ms: Millis,
    pub previous_duration_ms: Millis,
    pub local_fault: bool,
    pub evidence: Vec<Evidence>,
}

/// The thresholds of the state machine, from the `[probe]` config section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// How long rounds must keep failing before sick becomes down.
    pub down_after: Duration,
    /// How many `wan` targets must answer for a round to succeed.
    pub min_ok: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            down_after: Duration::from_secs(9),
            min_ok: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachine {
    thresholds: Thresholds,
    state: WanState,
    since_ms: Millis,
    /// When the current run of failed rounds began (None while up).
    failing_since_ms: Option<Millis>,
}

impl StateMachine {
    /// A machine that starts up at `now_ms`: a daemon that starts on a dead
    /// link goes through sick to down like any other outage.
    pub fn new(thresholds: Thresholds, now_ms: Millis) -> Self {
        Self::resume(thresholds, WanState::Up, now_ms)
    }

    /// A machine that carries on from a state saved earlier (the status
    /// file), so a restart causes no spurious transition.
    pub fn resume(thresholds: Thresholds, state: WanState, since_ms: Millis) -> Self {
        StateMachine {
            thresholds,
            state,
            since_ms,
            failing_since_ms: (state != WanState::Up).then_some(since_ms),
        }
    }

    pub fn state(&self) -> WanState {
        self.state
    }

    /// When the current state began.
    pub fn since_ms(&self) -> Millis {
        self.since_ms
    }

    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// Feeds one finished round; returns the transition it causes, if any.
    pub fn observe(&mut self, round: &Round) -> Option<Transition> {
        let now = round.at_ms;
        let ok = round.wan_ok() >= self.thresholds.min_ok;
        let next = if ok {
            self.failing_since_ms = None;
            WanState::Up
        } else {
            let failing_since = *self.failing_since_ms.get_or_insert(now);
            let failing_for = now.saturating_sub(failing_since);
            match self.state {
                WanState::Up => WanState::Sick,
                WanState::Sick if failing_for > self.thresholds.down_after.as_millis() as u64 => {
                    WanState::Down
                }
                state => state,
            }
        };
        if next == self.state {
            return None;
        }
        let transition = Transition {
            previous: self.state,
            current: next,
            at_ms: now,
            previous_duration_ms: now.saturating_sub(self.since_ms),
            local_fault: round.local_fault(),
            evidence: round.results.clone(),
        };
        self.state = next;
        self.since_ms = now;
        Some(transition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_kinds_print_as_configured_and_pad() {
        assert_eq!(format!("{:<4}|{}", Role::Lan, ProbeKind::Dns), "lan |dns");
        assert_eq!(format!("{}|{}", Role::Wan, ProbeKind::Icmp), "wan|icmp");
    }

    fn target(name: &str, role: Role, ok: bool) -> Evidence {
        Evidence {
            target: name.into(),
            role,
            kind: ProbeKind::Icmp,
            ok,
            rtt_us: ok.then_some(1200),
            https: None,
        }
    }

    /// A round with a LAN gateway and two WAN targets.
    fn round(at_ms: Millis, lan: bool, wan_ok: usize) -> Round {
        Round {
            at_ms,
            results: vec![
                target("gateway", Role::Lan, lan),
                target("one", Role::Wan, wan_ok >= 1),
                target("two", Role::Wan, wan_ok >= 2),
            ],
        }
    }

    fn machine() -> StateMachine {
        StateMachine::new(Thresholds::default(), 0)
    }

    fn states(m: &mut StateMachine, rounds: &[Round]) -> Vec<Option<WanState>> {
        rounds
            .iter()
            .map(|r| m.observe(r).map(|t| t.current))
            .collect()
    }

    #[test]
    fn success_while_up_changes_nothing() {
        let mut m = machine();
        assert_eq!(m.observe(&round(2_000, true, 2)), None);
        assert_eq!(m.state(), WanState::Up);
        assert_eq!(m.since_ms(), 0);
    }

    #[test]
    fn first_failed_round_makes_it_sick() {
        let mut m = machine();
        let t = m.observe(&round(60_000, true, 0)).unwrap();
        assert_eq!((t.previous, t.current), (WanState::Up, WanState::Sick));
        assert_eq!(t.at_ms, 60_000);
        assert_eq!(t.previous_duration_ms, 60_000);
        assert!(!t.local_fault);
        assert_eq!(t.evidence.len(), 3);
    }

    #[test]
    fn sick_becomes_down_only_after_more_than_down_after() {
        let mut m = machine();
        let seen = states(
            &mut m,
            &[
                round(10_000, true, 0),
                round(12_000, true, 0),
                // Failing for exactly down_after (9 s): still sick.
                round(19_000, true, 0),
                round(19_001, true, 0),
            ],
        );
        assert_eq!(
            seen,
            [Some(WanState::Sick), None, None, Some(WanState::Down)]
        );
        assert_eq!(m.since_ms(), 19_001);
    }

    #[test]
    fn down_transition_reports_time_spent_sick() {
        let mut m = machine();
        m.observe(&round(10_000, true, 0));
        let t = m.observe(&round(20_000, true, 0)).unwrap();
        assert_eq!(t.current, WanState::Down);
        assert_eq!(t.previous_duration_ms, 10_000);
    }

    #[test]
    fn sick_recovers_to_up() {
        let mut m = machine();
        m.observe(&round(10_000, true, 0));
        let t = m.observe(&round(12_000, true, 1)).unwrap();
        assert_eq!((t.previous, t.current), (WanState::Sick, WanState::Up));
        assert_eq!(t.previous_duration_ms, 2_000);
    }

    #[test]
    fn recovery_resets_the_failing_clock() {
        let mut m = machine();
        let seen = states(
            &mut m,
            &[
                round(0, true, 0),
                round(8_000, true, 1),
                round(10_000, true, 0),
                // 10 s after the first failure but only 8 s into this run.
                round(18_000, true, 0),
            ],
        );
        assert_eq!(
            seen,
            [
                Some(WanState::Sick),
                Some(WanState::Up),
                Some(WanState::Sick),
                None
            ]
        );
    }

    #[test]
    fn down_goes_straight_to_up_skipping_sick() {
        let mut m = machine();
        m.observe(&round(0, true, 0));
        m.observe(&round(10_000, true, 0));
        assert_eq!(m.state(), WanState::Down);
        let t = m.observe(&round(400_000, true, 2)).unwrap();
        assert_eq!((t.previous, t.current), (WanState::Down, WanState::Up));
        assert_eq!(t.previous_duration_ms, 390_000);
    }

    #[test]
    fn down_stays_down_while_failing() {
        let mut m = machine();
        m.observe(&round(0, true, 0));
        m.observe(&round(10_000, true, 0));
        assert_eq!(m.observe(&round(1_000_000, true, 0)), None);
        assert_eq!(m.state(), WanState::Down);
    }

    #[test]
    fn min_ok_counts_only_wan_targets() {
        let thresholds = Thresholds {
            min_ok: 2,
            ..Thresholds::default()
        };
        let mut m = StateMachine::new(thresholds, 0);
        // The gateway answers and one WAN target: one short of min_ok.
        assert_eq!(
            m.observe(&round(1_000, true, 1)).map(|t| t.current),
            Some(WanState::Sick)
        );
        assert_eq!(
            m.observe(&round(2_000, true, 2)).map(|t| t.current),
            Some(WanState::Up)
        );
    }

    #[test]
    fn silent_gateway_alone_does_not_fail_a_round() {
        let mut m = machine();
        assert_eq!(m.observe(&round(1_000, false, 2)), None);
    }

    #[test]
    fn silent_gateway_marks_a_local_fault() {
        let mut m = machine();
        let t = m.observe(&round(1_000, false, 0)).unwrap();
        assert!(t.local_fault);
        let t = m.observe(&round(20_000, false, 0)).unwrap();
        assert_eq!(t.current, WanState::Down);
        assert!(t.local_fault);
    }

    #[test]
    fn no_lan_target_means_no_local_fault() {
        let r = Round {
            at_ms: 0,
            results: vec![target("one", Role::Wan, false)],
        };
        assert!(!r.local_fault());
    }

    #[test]
    fn resumed_down_stays_down_without_a_transition() {
        let mut m = StateMachine::resume(Thresholds::default(), WanState::Down, 5_000);
        assert_eq!(m.observe(&round(7_000, true, 0)), None);
        let t = m.observe(&round(9_000, true, 1)).unwrap();
        assert_eq!(t.previous_duration_ms, 4_000);
    }

    #[test]
    fn resumed_sick_counts_failures_from_its_since() {
        let mut m = StateMachine::resume(Thresholds::default(), WanState::Sick, 5_000);
        assert_eq!(
            m.observe(&round(14_001, true, 0)).map(|t| t.current),
            Some(WanState::Down)
        );
    }
}
