//! `wanwatch simulate`: the daemon's own parts, in virtual time, against a
//! simulated (or recorded) world.
//!
//! Nothing here decides anything: the rounds go through the same
//! [`Monitor`] (state machine, link quality, power monitor, cycle count),
//! the events to the same plugins loaded by [`daemon::load_plugins`], their
//! requests through the same [`Actions`] gateway (safety cap, journal). What differs
//! is only what the daemon gets from the outside:
//! - time: a [`VirtualClock`] that jumps from one event to the next, which
//!   plugins read through their `clock` import and their timers follow;
//! - the world: probe outcomes from the scenario's timeline ([`world`]) or a
//!   recorded history ([`replay`]), and a simulated plug and notifier;
//! - plugins are called directly, in order, instead of on their threads, so
//!   that a run is deterministic.
//!
//! A run streams: one [`Round`] is reused, events are printed as they
//! happen ([`report`]), and only counters are kept.

pub mod replay;
pub mod report;
pub mod scenario;
pub mod world;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use self::replay::Replay;
use self::report::{Expectation, Report};
use self::scenario::{Scenario, millis};
use self::world::{World, WorldSwitch};
use crate::actions::{Actions, Notifier, PowerSwitch};
use crate::clock::Clock;
use crate::config::Config;
use crate::daemon;
use crate::monitor::Monitor;
use crate::plugin::{Event, Plugin, Runtime};
use crate::power::{DeviceEvidence, PowerMonitor, PowerRound};
use crate::quality::Quality;
use crate::state::{Evidence, Millis, Round, StateMachine};

/// Timer callbacks allowed at one instant of virtual time: a plugin that
/// re-arms a timer with no delay would otherwise stop time for good.
const MAX_TIMERS_AT_ONCE: u32 = 10_000;

/// The simulator's clock: set by the run loop, read by everything else.
/// It carries the scenario's seed to the plugins' random sources too.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now_ms: AtomicU64,
    seed: u64,
}

impl VirtualClock {
    pub fn new(now_ms: Millis, seed: u64) -> VirtualClock {
        VirtualClock {
            now_ms: AtomicU64::new(now_ms),
            seed,
        }
    }

    pub fn set(&self, now_ms: Millis) {
        self.now_ms.store(now_ms, Ordering::Relaxed);
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> Millis {
        self.now_ms.load(Ordering::Relaxed)
    }

    fn random_seed(&self) -> Option<u64> {
        Some(self.seed)
    }
}

/// How to run a scenario.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// One JSON object per event instead of text.
    pub json: bool,
    /// Stop this long after the start, if before the scenario's end.
    pub until: Option<Duration>,
    /// Leave the scenario's expectations out: they may be about another
    /// policy than the one run (a shipped scenario with `--config`).
    pub no_expect: bool,
}

/// Runs the scenario at `path` and writes what happens to `out`. `config`:
/// the config to run with (`--config`); None: the scenario's own.
/// Ok(true) when every expectation is met; Err for a scenario, config or
/// plugin that cannot be used.
pub fn run(
    path: &Path,
    config: Option<Config>,
    options: &Options,
    out: impl Write,
) -> Result<bool, String> {
    let errors = |errors: Vec<crate::config::ConfigError>| crate::config::describe(&errors);
    let (scenario, config) = match config {
        Some(config) => {
            let targets = config.target_evidence();
            (
                Scenario::load(path, Some(&targets)).map_err(errors)?,
                config,
            )
        }
        None => {
            let scenario = Scenario::load(path, None).map_err(errors)?;
            let config = scenario.config();
            (scenario, config)
        }
    };
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut title = format!("scenario {name}");
    if !scenario.description.is_empty() {
        title += &format!(": {}", scenario.description);
    }
    let targets = config.target_evidence();
    let interval = millis(scenario.interval.unwrap_or(config.probe.interval));
    let limit = match (scenario.duration, options.until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
    .map(millis);

    match &scenario.replay {
        None => {
            let start = scenario.start;
            let end = start.saturating_add(limit.unwrap_or(0));
            let mut sim = Sim::new(&scenario, &config, &targets, start, interval, options, out)?;
            sim.report.header(&title, true).map_err(io_error)?;
            sim.run_synthetic(&targets, &config, interval, end)
        }
        Some(replay) => {
            let mut rounds = Replay::open(&replay.files, &targets, interval)?;
            let Some(first) = rounds.next_round()? else {
                return Err(format!(
                    "{}: the recorded history has no rows",
                    replay::describe(&replay.files)
                ));
            };
            let start = first.at_ms;
            let end = limit.map(|l| start.saturating_add(l));
            let mut sim = Sim::new(&scenario, &config, &targets, start, interval, options, out)?;
            title += &format!(" (replay of {})", replay::describe(&replay.files));
            sim.report.header(&title, false).map_err(io_error)?;
            sim.run_replay(first, rounds, end)
        }
    }
}

/// The daemon's parts, wired to the virtual clock and the simulated world.
struct Sim<W: Write> {
    clock: Arc<VirtualClock>,
    monitor: Monitor,
    plugins: Vec<Plugin>,
    actions: Arc<Actions>,
    switch: Arc<WorldSwitch>,
    /// What the probes see. A replay has one too, with an empty timeline,
    /// so that the plug behaves alike; its probes are never asked.
    world: World,
    report: Report<W>,
    /// The journal generation last shown.
    journal_seen: u64,
    /// When the earliest plugin timer is due.
    next_timer: Option<Millis>,
}

impl<W: Write> Sim<W> {
    fn new(
        scenario: &Scenario,
        config: &Config,
        targets: &[Evidence],
        start: Millis,
        interval: Millis,
        options: &Options,
        out: W,
    ) -> Result<Sim<W>, String> {
        let clock = Arc::new(VirtualClock::new(start, scenario.seed));
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let switch = Arc::new(WorldSwitch::new(scenario, clock.clone()));
        let actions = Arc::new(Actions::new(
            Some(switch.clone() as Arc<dyn PowerSwitch>),
            Some(switch.clone() as Arc<dyn Notifier>),
            dyn_clock.clone(),
            config.safety.max_cycles_per_hour,
        ));
        let runtime =
            Runtime::new().map_err(|e| format!("cannot start the plugin runtime: {e:#}"))?;
        // No key-value directory: every run starts from a blank memory, and
        // a simulation never touches the daemon's state.
        let plugins = daemon::load_plugins(
            &runtime,
            config,
            &actions,
            &dyn_clock,
            None,
            &Default::default(),
        )
        .map_err(|e| format!("{e:#}"))?;
        let machine = StateMachine::new(config.probe.thresholds(), start);
        actions.set_wan_state(machine.state(), machine.since_ms());
        let power = (!config.power.devices.is_empty())
            .then(|| PowerMonitor::new(config.power.out_share, start));
        let quality = Quality::new(
            config.probe.quality(Duration::from_millis(interval)),
            targets.iter().map(|t| (t.target.clone(), t.role)),
            start,
        );
        let expect = if options.no_expect {
            &[][..]
        } else {
            &scenario.expect[..]
        };
        let expectations = expect
            .iter()
            .zip(&scenario.expect_at)
            .filter_map(|(e, location)| {
                Some(Expectation {
                    location: location.clone(),
                    // Validated when the scenario was parsed.
                    check: e.check().ok()?,
                    range: e.range(),
                })
            })
            .collect();
        let quality_settings = *quality.settings();
        let mut sim = Sim {
            clock,
            monitor: Monitor::new(machine, quality, power),
            plugins,
            actions,
            switch,
            world: World::new(scenario, targets),
            report: Report::new(out, options.json, start, expectations, quality_settings),
            journal_seen: 0,
            next_timer: None,
        };
        // What the plugins did while starting up (a timer armed, say).
        sim.after_call().map_err(io_error)?;
        sim.next_timer = sim.earliest_timer();
        Ok(sim)
    }

    /// A synthetic timeline: rounds every `interval`, power polls on the
    /// config's cadence, until `end`.
    fn run_synthetic(
        mut self,
        targets: &[Evidence],
        config: &Config,
        interval: Millis,
        end: Millis,
    ) -> Result<bool, String> {
        let mut round = World::round(targets);
        let mut power_round = PowerRound {
            at_ms: 0,
            devices: config
                .power
                .devices
                .keys()
                .map(|device| DeviceEvidence {
                    device: device.clone(),
                    answered: true,
                })
                .collect(),
        };
        let poll_every = millis(config.power.interval).max(1);
        let start = self.clock.now_ms();
        let mut next_round = start;
        let mut next_poll = if power_round.devices.is_empty() {
            Millis::MAX
        } else {
            start
        };
        loop {
            let t = next_round.min(next_poll);
            if t >= end {
                break;
            }
            self.fire_timers(t)?;
            self.clock.set(t);
            // Power first at a tie: a blackout explains the silence.
            if next_poll == t {
                let on = self.world.power_on(t);
                power_round.at_ms = t;
                for device in &mut power_round.devices {
                    device.answered = on;
                }
                if let Some(transition) = self.monitor.on_power_round(&power_round) {
                    self.report.power(&transition).map_err(io_error)?;
                    self.deliver(&Event::Power(transition))?;
                }
                next_poll = next_poll.saturating_add(poll_every);
                continue;
            }
            self.world.probe(t, &mut round);
            self.on_round(&round)?;
            next_round = next_round.saturating_add(interval);
        }
        self.finish(end)
    }

    /// Recorded rounds, as they come, until `end` if given.
    fn run_replay(
        mut self,
        first: Round,
        mut rounds: Replay,
        end: Option<Millis>,
    ) -> Result<bool, String> {
        let mut last = first.at_ms;
        let mut next = Some(first);
        while let Some(round) = next {
            if end.is_some_and(|end| round.at_ms >= end) {
                break;
            }
            last = round.at_ms;
            self.fire_timers(last)?;
            self.clock.set(last);
            self.on_round(&round)?;
            next = rounds.next_round()?;
        }
        self.finish(end.unwrap_or(last))
    }

    /// One probe round through the monitor; a transition goes to the
    /// plugins, as in [`crate::daemon`].
    #[inline]
    fn on_round(&mut self, round: &Round) -> Result<(), String> {
        self.report.before(round.at_ms);
        self.report.round();
        let changes = self.monitor.on_round(round, self.actions.cycles_done());
        if let Some(event) = changes.wan {
            let t = &event.transition;
            self.actions.set_wan_state(t.current, t.at_ms);
            self.report.wan(&event).map_err(io_error)?;
            self.deliver(&Event::Wan(event))?;
        }
        if let Some(change) = changes.quality {
            self.report.quality(&change).map_err(io_error)?;
            self.deliver(&Event::Quality(change))?;
        }
        Ok(())
    }

    /// Fires, in time order, every plugin timer due at or before `t`, each
    /// at its own instant.
    fn fire_timers(&mut self, t: Millis) -> Result<(), String> {
        let mut at_once = 0;
        let mut last_due = None;
        while let Some(due) = self.next_timer.filter(|&due| due <= t) {
            if last_due == Some(due) {
                at_once += 1;
                if at_once > MAX_TIMERS_AT_ONCE {
                    return Err(format!(
                        "plugins keep re-arming timers due at once (at {}): virtual time cannot advance",
                        crate::human::timestamp(due)
                    ));
                }
            }
            last_due = Some(due);
            self.clock.set(due);
            for i in 0..self.plugins.len() {
                for name in self.plugins[i].take_due_timers(due) {
                    self.call(i, &Event::Timer(name))?;
                }
            }
            self.next_timer = self.earliest_timer();
        }
        Ok(())
    }

    /// Delivers `event` to every plugin, in config order.
    fn deliver(&mut self, event: &Event) -> Result<(), String> {
        for i in 0..self.plugins.len() {
            self.call(i, event)?;
        }
        self.next_timer = self.earliest_timer();
        Ok(())
    }

    fn call(&mut self, plugin: usize, event: &Event) -> Result<(), String> {
        let result = self.plugins[plugin].call(event);
        // What it did first, then how the call ended.
        self.after_call().map_err(io_error)?;
        if let Err(error) = result {
            self.report
                .plugin_error(self.clock.now_ms(), &error)
                .map_err(io_error)?;
        }
        Ok(())
    }

    /// Reports the requests journalled since the last look, and hands the
    /// cycles the plug performed to the world.
    fn after_call(&mut self) -> std::io::Result<()> {
        let generation = self.actions.generation();
        if generation == self.journal_seen {
            return Ok(());
        }
        let recent = self.actions.recent();
        let new = usize::try_from(generation - self.journal_seen).unwrap_or(usize::MAX);
        self.journal_seen = generation;
        for record in &recent[recent.len().saturating_sub(new)..] {
            self.report.action(record)?;
        }
        for cycle in self.switch.take_cycles() {
            self.world.power_cycled(&cycle);
        }
        Ok(())
    }

    fn earliest_timer(&self) -> Option<Millis> {
        self.plugins.iter().filter_map(Plugin::next_timer).min()
    }

    fn finish(mut self, end: Millis) -> Result<bool, String> {
        // Timers due before the end still fire.
        self.fire_timers(end.saturating_sub(1))?;
        self.report.finish(end).map_err(io_error)
    }
}

fn io_error(e: std::io::Error) -> String {
    format!("cannot write the output: {e}")
}
