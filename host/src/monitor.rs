//! The monitor: everything the host concludes from probe and power rounds,
//! turned into the events the plugins receive.
//!
//! It joins the WAN state machine, the link-quality windows, the mains power
//! monitor and the count of power cycles per outage. Pure, like its parts: rounds and counts come in,
//! events come out, time is in the rounds. The daemon and the simulator both
//! drive this one type, so neither has a copy of the logic.

use crate::power::{PowerMonitor, PowerRound, PowerState, PowerTransition};
use crate::quality::{LinkQuality, Quality, QualityChange};
use crate::state::{Round, StateMachine, Transition, WanState};

/// A WAN transition with what the host knows around it, as the plugins get it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WanEvent {
    #[serde(flatten)]
    pub transition: Transition,
    /// Mains power when it happened.
    pub power: PowerState,
    /// Power cycles performed since the WAN was last up.
    pub power_cycles: u32,
    /// The link's quality when it happened.
    pub quality: LinkQuality,
}

/// What one probe round changed: the WAN state, the degraded signal, both
/// (told in that order) or neither.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    pub wan: Option<WanEvent>,
    pub quality: Option<QualityChange>,
}

#[derive(Clone, Debug)]
pub struct Monitor {
    wan: StateMachine,
    quality: Quality,
    /// None when no power detection is configured: the power counts as on.
    power: Option<PowerMonitor>,
    /// The host's power-cycle count when the WAN was last up, so that each
    /// transition can say how many cycles the current outage has taken.
    cycles_before_outage: u32,
    /// Cycles of the current outage done before the host's count began (by
    /// the daemon before a restart).
    carried: u32,
}

impl Monitor {
    pub fn new(wan: StateMachine, quality: Quality, power: Option<PowerMonitor>) -> Self {
        Monitor {
            wan,
            quality,
            power,
            cycles_before_outage: 0,
            carried: 0,
        }
    }

    /// Counts `cycles` done in the current outage before the host's count
    /// began: a daemon restarted mid-outage resumes the outage's count.
    pub fn carry_cycles(&mut self, cycles: u32) {
        self.carried = cycles;
    }

    /// Power cycles of the current outage (since the WAN was last up), given
    /// the host's count.
    pub fn outage_cycles(&self, cycles_done: u32) -> u32 {
        cycles_done
            .saturating_sub(self.cycles_before_outage)
            .saturating_add(self.carried)
    }

    pub fn wan(&self) -> &StateMachine {
        &self.wan
    }

    pub fn quality(&self) -> &Quality {
        &self.quality
    }

    pub fn power_state(&self) -> PowerState {
        self.power
            .as_ref()
            .map_or(PowerState::On, PowerMonitor::state)
    }

    /// Feeds a probe round. `cycles_done` is the host's count of power
    /// cycles performed so far ([`crate::actions::Actions::cycles_done`]).
    pub fn on_round(&mut self, round: &Round, cycles_done: u32) -> Changes {
        let transition = self.wan.observe(round);
        // With the state this round reached: a link that just went down
        // pauses the judgement, one back up starts it afresh.
        let quality = self.quality.observe(round, self.wan.state());
        let wan = transition.map(|transition| {
            let power_cycles = self.outage_cycles(cycles_done);
            if transition.current == WanState::Up {
                self.cycles_before_outage = cycles_done;
                self.carried = 0;
            }
            WanEvent {
                transition,
                power: self.power_state(),
                power_cycles,
                quality: self.quality.snapshot(),
            }
        });
        Changes { wan, quality }
    }

    /// Feeds a poll of the power-detection devices.
    pub fn on_power_round(&mut self, round: &PowerRound) -> Option<PowerTransition> {
        self.power.as_mut()?.observe(round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::DeviceEvidence;
    use crate::quality::Settings;
    use crate::state::{Evidence, ProbeKind, Role, Thresholds};

    fn round(at_ms: u64, ok: bool) -> Round {
        Round {
            at_ms,
            results: vec![Evidence {
                target: "wan".into(),
                role: Role::Wan,
                kind: ProbeKind::Icmp,
                ok,
                rtt_us: ok.then_some(20_000),
                https: None,
            }],
        }
    }

    fn quality(loss: Option<f32>) -> Quality {
        let settings = Settings {
            window: 10,
            degraded_loss_percent: loss,
            degraded_rtt_us: None,
            hold_ms: 60_000,
        };
        Quality::new(settings, [("wan".to_string(), Role::Wan)], 0)
    }

    fn monitor(power: bool) -> Monitor {
        let wan = StateMachine::new(Thresholds::default(), 0);
        Monitor::new(wan, quality(None), power.then(|| PowerMonitor::new(0.5, 0)))
    }

    #[test]
    fn counts_the_cycles_of_each_outage() {
        let mut m = monitor(false);
        assert_eq!(
            m.on_round(&round(1_000, false), 0)
                .wan
                .unwrap()
                .power_cycles,
            0
        );
        assert_eq!(
            m.on_round(&round(20_000, false), 0)
                .wan
                .unwrap()
                .power_cycles,
            0
        );
        // Two cycles during the outage; the up transition reports them.
        assert_eq!(
            m.on_round(&round(30_000, true), 2)
                .wan
                .unwrap()
                .power_cycles,
            2
        );
        // The next outage starts from zero.
        assert_eq!(
            m.on_round(&round(40_000, false), 2)
                .wan
                .unwrap()
                .power_cycles,
            0
        );
        assert_eq!(
            m.on_round(&round(60_000, false), 3)
                .wan
                .unwrap()
                .power_cycles,
            1
        );
    }

    #[test]
    fn a_restarted_outage_keeps_its_count() {
        let wan = StateMachine::resume(Thresholds::default(), WanState::Down, 0);
        let mut m = Monitor::new(wan, quality(None), None);
        m.carry_cycles(2);
        assert_eq!(m.outage_cycles(0), 2);
        assert_eq!(
            m.on_round(&round(30_000, true), 1)
                .wan
                .unwrap()
                .power_cycles,
            3
        );
        assert_eq!(m.outage_cycles(1), 0);
    }

    #[test]
    fn transitions_carry_the_power_state() {
        let mut m = monitor(true);
        assert_eq!(
            m.on_round(&round(1_000, false), 0).wan.unwrap().power,
            PowerState::On
        );
        let silent = PowerRound {
            at_ms: 2_000,
            devices: vec![DeviceEvidence {
                device: "nas".into(),
                answered: false,
            }],
        };
        assert_eq!(m.on_power_round(&silent).unwrap().current, PowerState::Out);
        let down = m.on_round(&round(20_000, false), 0).wan.unwrap();
        assert_eq!(
            (down.transition.current, down.power),
            (WanState::Down, PowerState::Out)
        );
    }

    #[test]
    fn a_round_can_change_the_state_and_the_quality_and_events_carry_it() {
        let wan = StateMachine::new(Thresholds::default(), 0);
        let mut m = Monitor::new(wan, quality(Some(10.0)), None);
        for i in 0..9 {
            assert_eq!(m.on_round(&round(i * 1_000, true), 0), Changes::default());
        }
        // The tenth probe is lost: the WAN turns sick and the window, full
        // enough to be judged, holds 10 % loss: degraded, told after.
        let changes = m.on_round(&round(9_000, false), 0);
        let event = changes.wan.expect("up → sick");
        assert_eq!(event.transition.current, WanState::Sick);
        assert!(event.quality.degraded);
        assert_eq!(event.quality.loss_percent, 10.0);
        let change = changes.quality.expect("degraded");
        assert_eq!((change.degraded, change.wan), (true, WanState::Sick));
        assert!(m.quality().degraded());
    }

    #[test]
    fn without_power_detection_the_power_is_on() {
        let mut m = monitor(false);
        let silent = PowerRound {
            at_ms: 2_000,
            devices: vec![],
        };
        assert_eq!(m.on_power_round(&silent), None);
        assert_eq!(m.power_state(), PowerState::On);
    }
}
