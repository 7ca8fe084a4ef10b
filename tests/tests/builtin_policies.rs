//! The built-in policies, `powercycle` and `notify`, as the binary embeds
//! them, run by the real plugin runtime against a recording world on a
//! manual clock.

use std::sync::Arc;

use wanwatch::actions::Action;
use wanwatch::config::PluginConfig;
use wanwatch::plugin::{Event, Plugin, PluginSpec, WanEvent};
use wanwatch::power::{DeviceEvidence, PowerState, PowerTransition};
use wanwatch::state::{Evidence, Millis, ProbeKind, Role, Transition, WanState};
use wanwatch_tests::{ManualClock, Recorded, RecordingSwitch, runtime};

const T0: Millis = 1_700_000_000_000;
const MIN: Millis = 60_000;

struct World {
    clock: Arc<ManualClock>,
    recorded: Recorded,
    plugin: Plugin,
    /// Where the WAN is, so each transition has the right `previous`.
    state: WanState,
    since: Millis,
    cycles_before_outage: u32,
}

impl World {
    fn new(name: &str, settings: &str) -> World {
        let clock = ManualClock::new(T0);
        let recorded = Recorded::new(clock.clone(), RecordingSwitch::default());
        let mut config = PluginConfig::new(None);
        config.devices = vec!["modem".into()];
        config.notify = true;
        config.settings = toml::from_str(settings).expect("settings");
        let spec = PluginSpec::from_config(name, &config).expect("a built-in plugin");
        let plugin = runtime()
            .load(spec, recorded.host(None))
            .unwrap_or_else(|e| panic!("{e}"));
        World {
            clock,
            recorded,
            plugin,
            state: WanState::Up,
            since: T0,
            cycles_before_outage: 0,
        }
    }

    /// Moves the clock to `at`, firing the plugin's timers due on the way.
    fn advance(&mut self, at: Millis) {
        while let Some(due) = self.plugin.next_timer().filter(|&due| due <= at) {
            self.clock.set(due);
            for name in self.plugin.take_due_timers(due) {
                self.plugin
                    .call(&Event::Timer(name))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        self.clock.set(at);
    }

    fn transition(&mut self, at: Millis, current: WanState, local_fault: bool, power: PowerState) {
        self.advance(at);
        let cycles = self.recorded.actions.cycles_done();
        let event = WanEvent {
            transition: Transition {
                previous: self.state,
                current,
                at_ms: at,
                previous_duration_ms: at - self.since,
                local_fault,
                evidence: vec![Evidence {
                    target: "gateway".into(),
                    role: Role::Lan,
                    kind: ProbeKind::Icmp,
                    ok: !local_fault,
                    rtt_us: None,
                    https: None,
                }],
            },
            power,
            power_cycles: cycles - self.cycles_before_outage,
            quality: Default::default(),
        };
        if current == WanState::Up {
            self.cycles_before_outage = cycles;
        }
        self.state = current;
        self.since = at;
        self.plugin
            .call(&Event::Wan(event))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn to(&mut self, at: Millis, current: WanState) {
        self.transition(at, current, false, PowerState::On);
    }

    fn power(&mut self, at: Millis, current: PowerState) {
        self.advance(at);
        let previous = match current {
            PowerState::On => PowerState::Out,
            PowerState::Out => PowerState::On,
        };
        let event = Event::Power(PowerTransition {
            previous,
            current,
            at_ms: at,
            previous_duration_ms: 90_000,
            devices: vec![DeviceEvidence {
                device: "nas".into(),
                answered: current == PowerState::On,
            }],
        });
        self.plugin.call(&event).unwrap_or_else(|e| panic!("{e}"));
    }

    /// When each power cycle happened, in ms after T0 (from the journal).
    fn cycle_times(&self) -> Vec<Millis> {
        self.recorded
            .actions
            .recent()
            .iter()
            .filter(|r| matches!(r.action, Action::PowerCycle { .. }) && r.outcome == "done")
            .map(|r| r.at_ms - T0)
            .collect()
    }

    /// When each power cycle happened, in minutes after T0.
    fn cycle_minutes(&self) -> Vec<Millis> {
        self.cycle_times().iter().map(|t| t / MIN).collect()
    }

    fn titles(&self) -> Vec<String> {
        self.recorded
            .notifier
            .sent
            .items()
            .into_iter()
            .map(|n| n.title)
            .collect()
    }
}

#[test]
fn powercycle_cycles_once_on_down_and_not_again_once_up() {
    let mut w = World::new("powercycle", "");
    w.to(T0, WanState::Sick);
    assert!(
        w.recorded.switch.cycles.items().is_empty(),
        "no cycle while sick"
    );
    w.to(T0 + 10_000, WanState::Down);
    assert_eq!(w.recorded.switch.cycles.items(), [("modem".to_owned(), 10)]);
    w.to(T0 + 2 * MIN, WanState::Up);
    // The recheck timer was cancelled: nothing more, however long we wait.
    w.advance(T0 + 600 * MIN);
    assert_eq!(w.recorded.switch.cycles.items().len(), 1);
}

#[test]
fn powercycle_backs_off_then_gives_up_with_a_notification() {
    let mut w = World::new("powercycle", "");
    w.to(T0, WanState::Sick);
    w.to(T0, WanState::Down);
    w.advance(T0 + 120 * MIN);
    // boot_wait 3 min, doubled each time; the third cycle is the last of 3
    // per 2 h, and the check after it gives up.
    assert_eq!(w.cycle_minutes(), [0, 3, 9]);
    assert_eq!(w.titles(), ["wanwatch: giving up"]);
    // Back up, down again within the window of the first cycle: the cap
    // holds, and the give-up notice is not repeated.
    w.to(T0 + 100 * MIN, WanState::Up);
    w.to(T0 + 101 * MIN, WanState::Sick);
    w.to(T0 + 101 * MIN + 10_000, WanState::Down);
    assert_eq!(w.cycle_minutes(), [0, 3, 9]);
    assert_eq!(w.titles(), ["wanwatch: giving up"]);
    // Once the first cycle has left the window, the policy acts again.
    w.to(T0 + 121 * MIN, WanState::Up);
    w.to(T0 + 122 * MIN, WanState::Sick);
    w.to(T0 + 122 * MIN + 10_000, WanState::Down);
    assert_eq!(w.cycle_minutes(), [0, 3, 9, 122]);
}

#[test]
fn powercycle_settings_change_its_numbers() {
    let mut w = World::new(
        "powercycle",
        "off_seconds = 30\nboot_wait = \"90s\"\nmax_cycles = 2\nwindow = \"1h\"",
    );
    w.to(T0, WanState::Sick);
    w.to(T0, WanState::Down);
    w.advance(T0 + 60 * MIN);
    assert_eq!(w.recorded.switch.cycles.items()[0].1, 30);
    assert_eq!(w.cycle_times(), [0, 90_000]);
}

#[test]
fn powercycle_never_cycles_on_a_local_fault_or_in_a_blackout() {
    let mut w = World::new("powercycle", "");
    w.transition(T0, WanState::Sick, true, PowerState::On);
    w.transition(T0 + 10_000, WanState::Down, true, PowerState::On);
    w.to(T0 + MIN, WanState::Up);
    w.power(T0 + 2 * MIN, PowerState::Out);
    w.transition(T0 + 2 * MIN, WanState::Sick, false, PowerState::Out);
    w.transition(
        T0 + 2 * MIN + 10_000,
        WanState::Down,
        false,
        PowerState::Out,
    );
    w.advance(T0 + 30 * MIN);
    assert!(w.recorded.switch.cycles.items().is_empty());
    // Power back, WAN still down after the modem had time to boot: now it
    // is the modem's problem, and the policy acts.
    w.power(T0 + 30 * MIN, PowerState::On);
    w.advance(T0 + 34 * MIN);
    assert_eq!(w.cycle_minutes(), [33]);
}

#[test]
fn notify_announces_down_and_restored_with_the_cycles_it_took() {
    let mut w = World::new("notify", "");
    w.to(T0, WanState::Sick);
    w.to(T0 + 9_500, WanState::Down);
    // Another policy cycled the modem once meanwhile.
    w.recorded
        .actions
        .power_cycle("powercycle", "modem", 10)
        .unwrap();
    w.to(T0 + 428_000, WanState::Up);
    assert_eq!(
        w.titles(),
        [
            "WAN down",
            "WAN restored after 7m08s (modem power-cycled once)"
        ]
    );
    let sent = w.recorded.notifier.sent.items();
    assert_eq!((sent[0].priority, sent[1].priority), (4, 3));
}

#[test]
fn notify_stays_quiet_on_blips_and_holds_back_flapping() {
    let mut w = World::new("notify", "min_gap = \"30m\"");
    // A blip: sick, then up. Nothing.
    w.to(T0, WanState::Sick);
    w.to(T0 + 3_000, WanState::Up);
    assert!(w.titles().is_empty());
    // A real outage, then two more within 30 min: held back.
    for start in [MIN, 5 * MIN, 10 * MIN] {
        w.to(T0 + start, WanState::Sick);
        w.to(T0 + start + 10_000, WanState::Down);
        w.to(T0 + start + 2 * MIN, WanState::Up);
    }
    assert_eq!(w.titles().len(), 2, "{:?}", w.titles());
    // The next outage after the gap says how many were held back.
    w.to(T0 + 45 * MIN, WanState::Sick);
    w.to(T0 + 45 * MIN + 10_000, WanState::Down);
    let last = w.recorded.notifier.sent.items().pop().unwrap();
    assert_eq!(last.title, "WAN down");
    assert!(
        last.body
            .contains("(2 shorter outages since the last alert were not announced.)"),
        "{}",
        last.body
    );
}

#[test]
fn notify_reports_mains_power() {
    let mut w = World::new("notify", "");
    w.power(T0, PowerState::Out);
    w.power(T0 + 90_000, PowerState::On);
    assert_eq!(
        w.titles(),
        ["Mains power out", "Mains power restored after 1m30s"]
    );
    assert!(w.recorded.notifier.sent.items()[0].body.contains("nas"));
}
