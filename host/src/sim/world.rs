//! The simulated world: what the probe targets, the power-detection devices
//! and the modem's plug do, in virtual time.
//!
//! Two halves, because the plug is reached from inside plugin calls (through
//! [`Actions`](crate::actions::Actions)) while the probes are evaluated by
//! the run loop:
//! - [`WorldSwitch`] is the [`PowerSwitch`] and [`Notifier`] handed to the
//!   real `Actions` gateway. Its faults are fixed windows of the timeline;
//!   it queues the cycles it performed.
//! - [`World`] answers each probe round. The run loop hands it the queued
//!   cycles after each plugin call ([`World::power_cycled`]), so a cycle
//!   affects the rounds after it, as in the real world.

use std::sync::{Arc, Mutex};

use super::VirtualClock;
use super::scenario::{CauseKind, Outcome, Scenario, millis};
use crate::actions::{Notification, Notifier, PowerSwitch};
use crate::clock::Clock;
use crate::state::{Evidence, Millis, Role, Round};

/// Round trips when the scenario gives none.
const DEFAULT_WAN_RTT_US: u32 = 20_000;
const DEFAULT_LAN_RTT_US: u32 = 1_000;

/// A time window [from, until).
#[derive(Clone, Copy, Debug)]
struct Window {
    from: Millis,
    until: Millis,
}

impl Window {
    fn contains(&self, t: Millis) -> bool {
        self.from <= t && t < self.until
    }
}

/// One power cycle the plug performed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub at_ms: Millis,
    pub device: String,
    pub off_seconds: u32,
    /// How long the plug took to confirm (`plug-slow`).
    pub delay_ms: Millis,
}

/// The plug side of the world: handed to the `Actions` gateway.
pub struct WorldSwitch {
    clock: Arc<VirtualClock>,
    modem: String,
    /// The plug's faults: kind, window, delay (`plug-slow`).
    faults: Vec<(CauseKind, Window, Millis)>,
    state: Mutex<SwitchState>,
}

#[derive(Default)]
struct SwitchState {
    /// Until when the modem's plug is off from the last cycle.
    off_until: Millis,
    /// Cycles performed and not yet handed to the [`World`].
    performed: Vec<Cycle>,
}

impl WorldSwitch {
    pub fn new(scenario: &Scenario, clock: Arc<VirtualClock>) -> WorldSwitch {
        let faults = scenario
            .cause
            .iter()
            .filter_map(|c| {
                let plug_fault = matches!(
                    c.kind,
                    CauseKind::PowerOutage
                        | CauseKind::PlugUnreachable
                        | CauseKind::PlugWrongPassword
                        | CauseKind::PlugSlow
                );
                let from = scenario.start.saturating_add(millis(c.at));
                let until = from.saturating_add(c.duration.map_or(Millis::MAX, millis));
                let delay = c.delay.map_or(0, millis);
                plug_fault.then_some((c.kind, Window { from, until }, delay))
            })
            .collect();
        WorldSwitch {
            clock,
            modem: scenario.modem.device.clone(),
            faults,
            state: Mutex::new(SwitchState::default()),
        }
    }

    /// The cycles performed since the last call, oldest first.
    pub fn take_cycles(&self) -> Vec<Cycle> {
        std::mem::take(&mut self.lock().performed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SwitchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PowerSwitch for WorldSwitch {
    fn power_cycle(&self, device: &str, off_seconds: u32) -> Result<(), String> {
        let now = self.clock.now_ms();
        let mut delay_ms = 0;
        if device == self.modem {
            for (kind, window, delay) in &self.faults {
                if !window.contains(now) {
                    continue;
                }
                match kind {
                    CauseKind::PowerOutage | CauseKind::PlugUnreachable => {
                        return Err(format!("plug {device}: no answer (simulated)"));
                    }
                    CauseKind::PlugWrongPassword => {
                        return Err(format!(
                            "plug {device}: the plug refused the password: HTTP 401 (simulated)"
                        ));
                    }
                    _ => delay_ms = delay_ms.max(*delay),
                }
            }
        }
        let mut state = self.lock();
        if device == self.modem && now < state.off_until {
            return Err(format!("plug {device}: a power cycle is already under way"));
        }
        if device == self.modem {
            state.off_until = now
                .saturating_add(delay_ms)
                .saturating_add(Millis::from(off_seconds) * 1000);
        }
        state.performed.push(Cycle {
            at_ms: now,
            device: device.to_owned(),
            off_seconds,
            delay_ms,
        });
        Ok(())
    }
}

impl Notifier for WorldSwitch {
    /// Always accepted: the daemon's outbox queues what it cannot send yet.
    fn notify(&self, _: &Notification) -> Result<(), String> {
        Ok(())
    }
}

/// A modem hang: from `from` until the modem is power-cycled or loses power.
#[derive(Clone, Copy, Debug)]
struct Hang {
    from: Millis,
    fixed_at: Millis,
}

/// The probe side of the world.
pub struct World {
    modem: String,
    boot_ms: Millis,
    /// The segments: when each begins, and each target's outcome.
    segments: Vec<(Millis, Vec<Target>)>,
    segment: usize,
    hangs: Vec<Hang>,
    /// When the WAN is dead whatever the plugins do (ISP outages, power
    /// outages with the modem's boot after them).
    wan_dead: Vec<Window>,
    lan_dead: Vec<Window>,
    power_out: Vec<Window>,
    /// Until when the modem is off or booting after a power cycle.
    booting_until: Millis,
    rng: u64,
}

/// A target's outcome, compiled.
#[derive(Clone, Copy, Debug)]
struct Target {
    role: Role,
    loss: u8,
    rtt_us: u32,
}

impl World {
    /// The world of a synthetic scenario probing `targets`.
    pub fn new(scenario: &Scenario, targets: &[Evidence]) -> World {
        let start = scenario.start;
        let window = |at, duration: Option<std::time::Duration>| Window {
            from: start.saturating_add(millis(at)),
            until: start
                .saturating_add(millis(at))
                .saturating_add(duration.map_or(Millis::MAX, millis)),
        };
        let boot_ms = millis(scenario.modem.boot);
        let of = |kind| scenario.cause.iter().filter(move |c| c.kind == kind);
        let power_out: Vec<Window> = of(CauseKind::PowerOutage)
            .map(|c| window(c.at, c.duration))
            .collect();
        let wan_dead = of(CauseKind::IspOutage)
            .map(|c| window(c.at, c.duration))
            .chain(power_out.iter().map(|w| Window {
                from: w.from,
                until: w.until.saturating_add(boot_ms),
            }))
            .collect();
        let lan_dead = of(CauseKind::LanFault)
            .map(|c| window(c.at, c.duration))
            .collect();
        let hangs = of(CauseKind::ModemHang)
            .map(|c| {
                let from = start.saturating_add(millis(c.at));
                // A blackout after the hang began reboots the modem too.
                let fixed_at = power_out
                    .iter()
                    .map(|w| w.from)
                    .filter(|&t| t >= from)
                    .min()
                    .unwrap_or(Millis::MAX);
                Hang { from, fixed_at }
            })
            .collect();
        let compile = |outcomes: Option<&super::scenario::Segment>| -> Vec<Target> {
            targets
                .iter()
                .map(|Evidence { target, role, .. }| {
                    let outcome = outcomes.map_or(Outcome::default(), |s| {
                        s.targets.get(target).copied().unwrap_or(match role {
                            Role::Lan => s.lan,
                            Role::Wan => s.wan,
                        })
                    });
                    let default_rtt = match role {
                        Role::Lan => DEFAULT_LAN_RTT_US,
                        Role::Wan => DEFAULT_WAN_RTT_US,
                    };
                    Target {
                        role: *role,
                        loss: outcome.loss,
                        rtt_us: outcome.rtt.map_or(default_rtt, |d| {
                            u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
                        }),
                    }
                })
                .collect()
        };
        // Before the first segment every target answers.
        let segments = std::iter::once((0, compile(None)))
            .chain(
                scenario
                    .segment
                    .iter()
                    .map(|s| (start.saturating_add(millis(s.at)), compile(Some(s)))),
            )
            .collect();
        World {
            modem: scenario.modem.device.clone(),
            boot_ms,
            segments,
            segment: 0,
            hangs,
            wan_dead,
            lan_dead,
            power_out,
            booting_until: 0,
            // xorshift must not start at 0.
            rng: scenario.seed | 1,
        }
    }

    /// A round with one result per target, for [`World::probe`] to fill in
    /// place round after round.
    pub fn round(targets: &[Evidence]) -> Round {
        Round {
            at_ms: 0,
            results: targets.to_vec(),
        }
    }

    /// Whether the mains power is on at `t`.
    pub fn power_on(&self, t: Millis) -> bool {
        !self.power_out.iter().any(|w| w.contains(t))
    }

    /// Applies a power cycle the plug performed.
    pub fn power_cycled(&mut self, cycle: &Cycle) {
        if cycle.device != self.modem {
            return;
        }
        let back = cycle
            .at_ms
            .saturating_add(cycle.delay_ms)
            .saturating_add(Millis::from(cycle.off_seconds) * 1000);
        self.booting_until = self.booting_until.max(back.saturating_add(self.boot_ms));
        for hang in &mut self.hangs {
            if hang.from <= cycle.at_ms && cycle.at_ms < hang.fixed_at {
                hang.fixed_at = cycle.at_ms;
            }
        }
    }

    /// Fills in `round` (from [`World::round`]) as the world answers at `t`.
    /// Allocates nothing: this is the simulator's inner loop.
    pub fn probe(&mut self, t: Millis, round: &mut Round) {
        while self
            .segments
            .get(self.segment + 1)
            .is_some_and(|(from, _)| *from <= t)
        {
            self.segment += 1;
        }
        let lan_dead = self.lan_dead.iter().any(|w| w.contains(t));
        // Behind a dead gateway nothing answers.
        let wan_dead = lan_dead
            || t < self.booting_until
            || self.wan_dead.iter().any(|w| w.contains(t))
            || self.hangs.iter().any(|h| h.from <= t && t < h.fixed_at);
        round.at_ms = t;
        let targets = &self.segments[self.segment].1;
        for (result, target) in round.results.iter_mut().zip(targets) {
            let dead = match target.role {
                Role::Lan => lan_dead,
                Role::Wan => wan_dead,
            };
            let ok = !dead
                && match target.loss {
                    0 => true,
                    100 => false,
                    loss => {
                        // xorshift64: deterministic, seeded by the scenario.
                        self.rng ^= self.rng << 13;
                        self.rng ^= self.rng >> 7;
                        self.rng ^= self.rng << 17;
                        self.rng % 100 >= u64::from(loss)
                    }
                };
            result.ok = ok;
            result.rtt_us = ok.then_some(target.rtt_us);
        }
    }
}

#[cfg(test)]
pub(in crate::sim) mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn scenario(causes: &str) -> Scenario {
        let text = format!("start = \"2026-01-01T00:00:00Z\"\nduration = \"1h\"\n{causes}");
        Scenario::parse(Path::new("s.toml"), &text, Some(&targets())).unwrap()
    }

    /// The targets of the tests here and in `scenario`: the gateway and one
    /// internet host.
    pub(in crate::sim) fn targets() -> Vec<Evidence> {
        let config = Config::parse(
            Path::new("t.toml"),
            "[[targets]]\nname = \"gateway\"\naddress = \"gateway\"\nrole = \"lan\"\n[[targets]]\nname = \"google\"\naddress = \"8.8.8.8\"\n",
        )
        .unwrap();
        config.target_evidence()
    }

    /// Whether the WAN target answers at `offset` seconds.
    fn wan_ok(world: &mut World, offset: u64) -> bool {
        let mut round = World::round(&targets());
        world.probe(1_767_225_600_000 + offset * 1000, &mut round);
        round.results[1].ok
    }

    fn cycle_at(world: &mut World, switch: &WorldSwitch, clock: &VirtualClock, offset: u64) {
        clock.set(1_767_225_600_000 + offset * 1000);
        switch.power_cycle("modem", 10).unwrap();
        for cycle in switch.take_cycles() {
            world.power_cycled(&cycle);
        }
    }

    #[test]
    fn a_modem_hang_is_fixed_by_a_cycle_after_the_boot() {
        let s = scenario("[[cause]]\nkind = \"modem-hang\"\nat = \"60s\"\n");
        let clock = Arc::new(VirtualClock::new(0, 0));
        let switch = WorldSwitch::new(&s, clock.clone());
        let mut world = World::new(&s, &targets());
        assert!(wan_ok(&mut world, 59));
        assert!(!wan_ok(&mut world, 600));
        cycle_at(&mut world, &switch, &clock, 600);
        // Off for 10 s, then 90 s of boot.
        assert!(!wan_ok(&mut world, 699));
        assert!(wan_ok(&mut world, 700));
    }

    #[test]
    fn an_isp_outage_is_not_fixed_by_a_cycle() {
        let s = scenario("[[cause]]\nkind = \"isp-outage\"\nat = \"60s\"\nduration = \"20m\"\n");
        let clock = Arc::new(VirtualClock::new(0, 0));
        let switch = WorldSwitch::new(&s, clock.clone());
        let mut world = World::new(&s, &targets());
        cycle_at(&mut world, &switch, &clock, 600);
        assert!(!wan_ok(&mut world, 700));
        assert!(!wan_ok(&mut world, 1259));
        assert!(wan_ok(&mut world, 1260));
        // A cycle near the end only adds the boot time.
        cycle_at(&mut world, &switch, &clock, 1250);
        assert!(!wan_ok(&mut world, 1260));
        assert!(wan_ok(&mut world, 1350));
    }

    #[test]
    fn plug_faults_refuse_the_cycle() {
        let s = scenario(
            "[[cause]]\nkind = \"plug-wrong-password\"\nat = \"0s\"\nduration = \"1m\"\n[[cause]]\nkind = \"power-outage\"\nat = \"2m\"\nduration = \"1m\"\n",
        );
        let clock = Arc::new(VirtualClock::new(1_767_225_600_000, 0));
        let switch = WorldSwitch::new(&s, clock.clone());
        assert!(
            switch
                .power_cycle("modem", 10)
                .unwrap_err()
                .contains("password")
        );
        clock.set(1_767_225_600_000 + 150_000);
        assert!(
            switch
                .power_cycle("modem", 10)
                .unwrap_err()
                .contains("no answer")
        );
        clock.set(1_767_225_600_000 + 200_000);
        assert!(switch.power_cycle("modem", 10).is_ok());
        assert!(
            switch
                .power_cycle("modem", 10)
                .unwrap_err()
                .contains("under way")
        );
    }

    #[test]
    fn a_lan_fault_silences_everything() {
        let s = scenario("[[cause]]\nkind = \"lan-fault\"\nat = \"0s\"\nduration = \"1m\"\n");
        let mut world = World::new(&s, &targets());
        let mut round = World::round(&targets());
        world.probe(1_767_225_600_000, &mut round);
        assert!(round.local_fault());
        assert_eq!(round.wan_ok(), 0);
    }
}
