//! The plugin runtime against a real component: tests/plugins/probe-plugin,
//! built for wasm32-wasip2 by build.rs. The plugin notifies a JSON report of
//! everything it receives (see its source), which the tests read back from
//! a recording notifier.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wanwatch::actions::{Action, Notification};
use wanwatch::clock::{Clock, SystemClock};
use wanwatch::plugin::{
    CallError, CallErrorKind, Event, HostContext, Plugin, PluginError, PluginSpec, Runner,
    WanEvent, WasmSource,
};
use wanwatch::power::{DeviceEvidence, PowerState, PowerTransition};
use wanwatch::state::{Evidence, Millis, ProbeKind, Role, Transition, WanState};
use wanwatch_tests::{ManualClock, Recorded, RecordingSwitch, plugin_wasm, runtime, test_spec};

/// When the tests' clock starts.
const T0: Millis = 1_700_000_000_000;
const DEADLINE: Duration = Duration::from_millis(100);
/// Generous bound for things that should take milliseconds: CI machines are slow.
const PATIENCE: Duration = Duration::from_secs(10);

/// The world around the plugins: a clock, a switch and a notifier that
/// record, the real `Actions` gateway, and a key-value directory.
struct World {
    recorded: Recorded,
    manual: Arc<ManualClock>,
    kv_dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World::build(Duration::ZERO, None)
    }

    /// A world whose power switch takes `delay` to confirm a cycle.
    fn with_slow_switch(delay: Duration) -> World {
        World::build(delay, None)
    }

    /// A world on the system clock, for real-time timers.
    fn on_system_clock() -> World {
        World::build(Duration::ZERO, Some(Arc::new(SystemClock)))
    }

    fn build(delay: Duration, clock: Option<Arc<dyn Clock>>) -> World {
        let manual = ManualClock::new(T0);
        let clock = clock.unwrap_or_else(|| manual.clone() as Arc<dyn Clock>);
        let switch = RecordingSwitch {
            delay,
            ..RecordingSwitch::default()
        };
        World {
            recorded: Recorded::new(clock, switch),
            manual,
            kv_dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    fn host(&self) -> HostContext {
        self.recorded.host(Some(self.kv_dir.path().to_owned()))
    }

    fn load(&self, spec: PluginSpec) -> Plugin {
        runtime()
            .load(spec, self.host())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every report notified so far by `plugin`: (callback, body).
    fn reports(&self, plugin: &str) -> Vec<(String, Value)> {
        self.recorded.reports(plugin)
    }

    /// The last report of `plugin`, which must be for `callback`.
    fn last_report(&self, plugin: &str, callback: &str) -> Value {
        let (title, body) = self.reports(plugin).pop().expect("a report");
        assert_eq!(title, callback, "{body}");
        body
    }
}

/// The probe plugin named `name`, granted the device `modem` and
/// notifications, with `settings`.
fn probe(name: &str, settings: Value) -> PluginSpec {
    test_spec(name, plugin_wasm("probe-plugin"), &settings)
}

fn transition(previous: WanState, current: WanState) -> Transition {
    Transition {
        previous,
        current,
        at_ms: T0 + 42,
        previous_duration_ms: 9_001,
        local_fault: current != WanState::Up,
        evidence: vec![
            Evidence {
                target: "gateway".into(),
                role: Role::Lan,
                kind: ProbeKind::Icmp,
                ok: current == WanState::Up,
                rtt_us: (current == WanState::Up).then_some(250),
                https: None,
            },
            Evidence {
                target: "cloudflare".into(),
                role: Role::Wan,
                kind: ProbeKind::Dns,
                ok: false,
                rtt_us: None,
                https: None,
            },
            Evidence {
                target: "example".into(),
                role: Role::Wan,
                kind: ProbeKind::Http,
                ok: true,
                rtt_us: Some(u32::MAX),
                https: None,
            },
            Evidence {
                target: "ssh".into(),
                role: Role::Wan,
                kind: ProbeKind::Tcp,
                ok: true,
                rtt_us: Some(0),
                https: None,
            },
        ],
    }
}

fn up() -> Event {
    Event::wan(transition(WanState::Down, WanState::Up))
}

fn sick() -> Event {
    Event::wan(transition(WanState::Up, WanState::Sick))
}

fn down() -> Event {
    Event::wan(transition(WanState::Sick, WanState::Down))
}

/// How many of `sent` came from `plugin`.
fn count(sent: &[Notification], plugin: &str) -> usize {
    sent.iter().filter(|n| n.plugin == plugin).count()
}

fn call_err(plugin: &mut Plugin, event: &Event) -> CallError {
    match plugin.call(event) {
        Ok(()) => panic!("{event:?} should have failed"),
        Err(e) => e,
    }
}

#[test]
fn every_callback_receives_every_field() {
    let world = World::new();
    let mut plugin = world.load(probe("fields", json!({})));
    assert_eq!(plugin.name(), "fields");
    // The context beside the transition differs per event, so a field
    // crossed with another would show.
    let with = |event: Event, power: PowerState, power_cycles: u32| match event {
        Event::Wan(e) => Event::Wan(WanEvent {
            power,
            power_cycles,
            ..e
        }),
        other => other,
    };
    for (event, callback, power, cycles) in [
        (sick(), "on-wan-sick", "on", 0),
        (with(down(), PowerState::Out, 0), "on-wan-down", "out", 0),
        (with(up(), PowerState::On, 3), "on-wan-up", "on", 3),
    ] {
        plugin.call(&event).unwrap_or_else(|e| panic!("{e}"));
        let report = world.last_report("fields", callback);
        let Event::Wan(sent) = &event else {
            unreachable!()
        };
        let received: Transition =
            serde_json::from_value(report["transition"].clone()).expect("a transition");
        assert_eq!(received, sent.transition);
        assert_eq!(report["power"], power);
        assert_eq!(report["power_cycles"], cycles);
        // The clock import reads the host's clock.
        assert_eq!(report["now"], json!(T0));
    }
    plugin
        .call(&Event::Timer("a timer".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.last_report("fields", "on-timer")["timer"], "a timer");

    let devices = vec![
        DeviceEvidence {
            device: "fridge".into(),
            answered: false,
        },
        DeviceEvidence {
            device: "nas".into(),
            answered: true,
        },
    ];
    for (current, callback) in [
        (PowerState::Out, "on-power-out"),
        (PowerState::On, "on-power-restored"),
    ] {
        let sent = PowerTransition {
            previous: if current == PowerState::On {
                PowerState::Out
            } else {
                PowerState::On
            },
            current,
            at_ms: T0 - 5,
            previous_duration_ms: 61_000,
            devices: devices.clone(),
        };
        plugin
            .call(&Event::Power(sent.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        let report = world.last_report("fields", callback);
        let received: PowerTransition =
            serde_json::from_value(report["power_transition"].clone()).expect("a power transition");
        assert_eq!(received, sent);
    }
    assert_eq!(plugin.health().calls, 6);
    assert_eq!(plugin.health().failures, 0);
}

/// A plugin of each contract version in one runtime, given the same
/// events: a change of link quality reaches the 0.2 one and is not even
/// counted as a call for the 0.1 one; an `https` target reaches 0.2 with
/// its steps and 0.1 as `http`.
#[test]
fn each_contract_version_gets_what_it_can_express() {
    use wanwatch::quality::{LinkQuality, QualityChange, TargetQuality};
    use wanwatch::state::{HttpsEvidence, HttpsStep};
    let world = World::new();
    let mut old = world.load(probe("old", json!({})));
    let mut latest = world.load(test_spec("latest", plugin_wasm("latest-probe"), &json!({})));
    assert_eq!(old.health().contract, "0.1.0 (adapted to 0.2.0)");
    assert_eq!(latest.health().contract, "0.2.0");

    let quality = LinkQuality {
        degraded: true,
        loss_percent: 12.5,
        rtt_p50_us: Some(310_000),
        targets: vec![TargetQuality {
            target: "web".into(),
            role: Role::Wan,
            probes: 8,
            loss_percent: 12.5,
            rtt_p50_us: Some(310_000),
            rtt_p95_us: Some(900_000),
            jitter_us: Some(40_000),
        }],
    };
    let change = Event::Quality(QualityChange {
        degraded: true,
        at_ms: T0,
        previous_duration_ms: 60_000,
        wan: WanState::Up,
        quality: quality.clone(),
    });
    old.call(&change).unwrap();
    assert_eq!(old.health().calls, 0, "not a call for a 0.1 plugin");
    assert!(world.reports("old").is_empty());
    latest.call(&change).unwrap();
    assert_eq!(latest.health().calls, 1);
    let body = world.last_report("latest", "on-link-quality");
    assert_eq!(body["degraded"], true, "{body}");
    assert_eq!(body["quality"]["loss_percent"], 12.5, "{body}");
    let target = &body["quality"]["targets"][0];
    assert_eq!(
        (
            &target["target"],
            &target["probes"],
            &target["rtt_p95_us"],
            &target["jitter_us"]
        ),
        (&json!("web"), &json!(8), &json!(900_000), &json!(40_000)),
        "{body}"
    );

    let mut t = transition(WanState::Up, WanState::Down);
    t.evidence = vec![Evidence {
        target: "web".into(),
        role: Role::Wan,
        kind: ProbeKind::Https,
        ok: false,
        rtt_us: None,
        https: Some(HttpsEvidence {
            failed: Some(HttpsStep::Tls),
            resolve_us: Some(800),
            connect_us: Some(1_200),
            tls_us: Some(3_000),
            error: Some("certificate is not valid for name web".into()),
            ..HttpsEvidence::default()
        }),
    }];
    let event = Event::Wan(WanEvent {
        transition: t,
        power: PowerState::On,
        power_cycles: 0,
        quality,
    });
    old.call(&event).unwrap();
    let body = world.last_report("old", "on-wan-down");
    assert_eq!(body["transition"]["evidence"][0]["kind"], "http", "{body}");
    latest.call(&event).unwrap();
    let body = world.last_report("latest", "on-wan-down");
    assert_eq!(body["evidence"][0]["https"], true, "{body}");
    assert_eq!(body["evidence"][0]["failed"], "tls", "{body}");
    assert_eq!(body["quality"]["degraded"], true, "{body}");
    assert_eq!(
        body["heartbeats"],
        json!([]),
        "none in a runtime without heartbeats"
    );
}

#[test]
fn kv_survives_reinstantiation_and_reloading() {
    let world = World::new();
    let settings = json!({ "on-wan-down": { "fault": "trap" } });
    let mut plugin = world.load(probe("memory", settings.clone()));
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.last_report("memory", "on-wan-up")["counter"], 1);
    // Counts the call in kv, then traps.
    assert_eq!(call_err(&mut plugin, &down()).kind, CallErrorKind::Trap);
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    let report = world.last_report("memory", "on-wan-up");
    assert_eq!(report["instance_calls"], 1, "a fresh instance: {report}");
    assert_eq!(report["counter"], 3, "{report}");

    let file = world.kv_dir.path().join("memory.json");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("the kv file")).expect("JSON");
    assert_eq!(saved, json!({ "counter": "3" }));

    drop(plugin);
    let mut plugin = world.load(probe("memory", settings));
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.last_report("memory", "on-wan-up")["counter"], 4);

    // Each plugin has a store of its own.
    let mut other = world.load(probe("other", json!({})));
    other.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.last_report("other", "on-wan-up")["counter"], 1);
}

#[test]
fn calls_outside_the_grants_are_refused_and_counted() {
    let world = World::new();
    let settings = json!({
        "on-wan-down": { "power": ["router", 5] },
        "on-wan-up": { "power": ["modem", 7] },
    });
    let mut plugin = world.load(probe("granted", settings));

    plugin.call(&down()).unwrap_or_else(|e| panic!("{e}"));
    let refusal = world.last_report("granted", "on-wan-down")["power"].clone();
    let refusal = refusal.as_str().expect("the error the plugin received");
    assert!(refusal.contains("not granted"), "{refusal}");
    assert!(
        refusal.contains("add `devices = [\"router\"]` to [plugins.granted]"),
        "{refusal}"
    );
    assert!(world.recorded.switch.cycles.items().is_empty());
    // Counted for the status, apart from the journal of real actions.
    assert!(
        !world
            .recorded
            .actions
            .recent()
            .iter()
            .any(|r| matches!(r.action, Action::PowerCycle { .. }))
    );
    let refusals = world.recorded.actions.refusals();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(
        (refusals[0].plugin.as_str(), refusals[0].count),
        ("granted", 1)
    );
    assert_eq!(refusals[0].last_reason, refusal);

    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.last_report("granted", "on-wan-up")["power"], "ok");
    assert_eq!(
        world.recorded.switch.cycles.items(),
        [("modem".to_owned(), 7)]
    );
    assert!(
        world
            .recorded
            .actions
            .recent()
            .iter()
            .any(|r| r.outcome == "done" && matches!(&r.action, Action::PowerCycle { device, off_seconds: 7 } if device == "modem"))
    );

    // Without `notify = true` the report itself is refused, and the plugin
    // passes the refusal on as its error.
    let mut spec = probe("mute", json!({}));
    spec.grants.notify = false;
    let mut mute = world.load(spec);
    let error = call_err(&mut mute, &up());
    assert_eq!(error.kind, CallErrorKind::GuestError);
    assert!(
        error.message.contains("not granted to plugin `mute`"),
        "{error}"
    );
    assert!(
        error
            .message
            .contains("add `notify = true` to [plugins.mute]"),
        "{error}"
    );
    assert!(world.reports("mute").is_empty());
    assert!(
        world
            .recorded
            .actions
            .refusals()
            .iter()
            .any(|r| r.plugin == "mute" && r.last_reason.contains("notify refused"))
    );
}

#[test]
fn a_trap_discards_the_instance_and_the_next_call_works() {
    let world = World::new();
    let mut plugin = world.load(probe("trap", json!({ "on-wan-down": { "fault": "trap" } })));
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    let error = call_err(&mut plugin, &down());
    assert_eq!(error.kind, CallErrorKind::Trap);
    assert_eq!(error.callback, "on-wan-down");
    assert_eq!(
        error.to_string(),
        "plugin `trap`: on-wan-down trapped: wasm trap: wasm `unreachable` instruction executed"
    );
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.last_report("trap", "on-wan-up")["instance_calls"], 1);

    let health = plugin.health();
    assert_eq!(
        (health.calls, health.failures, health.consecutive_failures),
        (3, 1, 0)
    );
    assert_eq!(health.last_error, Some(error.to_string()));
    assert_eq!(health.last_error_at_ms, Some(T0));
}

#[test]
fn a_panic_reports_its_message_from_stderr() {
    let world = World::new();
    let mut plugin = world.load(probe(
        "panic",
        json!({ "on-wan-sick": { "fault": "panic" } }),
    ));
    let error = call_err(&mut plugin, &sick());
    assert_eq!(error.kind, CallErrorKind::Trap);
    let stderr = error.stderr.clone().expect("the panic message");
    assert!(
        stderr.contains("probe-plugin panics on purpose in on-wan-sick"),
        "{stderr}"
    );
    let shown = error.to_string();
    assert!(
        shown.starts_with("plugin `panic`: on-wan-sick trapped: "),
        "{shown}"
    );
    assert!(shown.contains("probe-plugin panics on purpose"), "{shown}");
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_loop_is_stopped_at_its_deadline() {
    let world = World::new();
    let mut plugin = world.load(probe("loop", json!({ "on-wan-down": { "fault": "loop" } })));
    let start = Instant::now();
    let error = call_err(&mut plugin, &down());
    let took = start.elapsed();
    assert_eq!(error.kind, CallErrorKind::Deadline, "{error}");
    assert!(
        error
            .to_string()
            .contains("exceeded its deadline: ran for more than 100ms"),
        "{error}"
    );
    assert!(
        took >= DEADLINE,
        "stopped after {took:?}, before its deadline"
    );
    assert!(
        took < DEADLINE + Duration::from_millis(200),
        "stopped only after {took:?}"
    );
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.last_report("loop", "on-wan-up")["instance_calls"], 1);
}

#[test]
fn unbounded_allocation_runs_out_of_memory() {
    let world = World::new();
    let mut spec = probe("hog", json!({ "on-wan-down": { "fault": "alloc" } }));
    spec.memory_bytes = 16 << 20;
    let mut plugin = world.load(spec);
    let error = call_err(&mut plugin, &down());
    assert_eq!(error.kind, CallErrorKind::OutOfMemory, "{error}");
    assert!(
        error.message.contains("beyond its limit of 16777216"),
        "{error}"
    );
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(world.last_report("hog", "on-wan-up")["instance_calls"], 1);
}

#[test]
fn a_guest_error_keeps_the_instance() {
    let world = World::new();
    let mut plugin = world.load(probe(
        "error",
        json!({ "on-wan-down": { "fault": "error" } }),
    ));
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    let error = call_err(&mut plugin, &down());
    assert_eq!(error.kind, CallErrorKind::GuestError);
    assert_eq!(
        error.to_string(),
        "plugin `error`: on-wan-down failed: probe-plugin fails on purpose in on-wan-down"
    );
    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    // The same instance: its third call.
    assert_eq!(world.last_report("error", "on-wan-up")["instance_calls"], 3);
}

#[test]
fn a_faulty_plugin_does_not_hold_up_a_healthy_one() {
    let world = World::new();
    // Long enough that the healthy plugin must finish while it still loops.
    let faulty_deadline = Duration::from_secs(2);
    let mut spec = probe("faulty", json!({ "on-wan-down": { "fault": "loop" } }));
    spec.deadline = faulty_deadline;
    let faulty = Runner::spawn(world.load(spec), world.recorded.clock.clone());
    let healthy = Runner::spawn(
        world.load(probe("healthy", json!({}))),
        world.recorded.clock.clone(),
    );

    let start = Instant::now();
    for runner in [&faulty, &healthy] {
        runner.send(down());
        runner.send(up());
    }
    world
        .recorded
        .notifier
        .sent
        .wait_until(PATIENCE, |sent| count(sent, "healthy") == 2);
    assert!(
        start.elapsed() < faulty_deadline,
        "the healthy plugin was held up: {:?}",
        start.elapsed()
    );
    assert_eq!(healthy.health().failures, 0);

    world
        .recorded
        .notifier
        .sent
        .wait_until(PATIENCE, |sent| count(sent, "faulty") == 1);
    assert!(start.elapsed() >= faulty_deadline);
    assert_eq!(
        world.last_report("faulty", "on-wan-up")["instance_calls"],
        1
    );
    // Its health was updated before the next call began.
    let health = faulty.health();
    assert_eq!(health.failures, 1);
    assert!(
        health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("deadline")),
        "{health:?}"
    );
    faulty.shutdown();
    healthy.shutdown();
}

#[test]
fn time_in_host_calls_does_not_count_against_the_deadline() {
    let delay = DEADLINE * 3;
    let world = World::with_slow_switch(delay);
    let mut plugin = world.load(probe(
        "patient",
        json!({ "on-wan-down": { "power": ["modem", 10] } }),
    ));
    let start = Instant::now();
    plugin.call(&down()).unwrap_or_else(|e| panic!("{e}"));
    assert!(start.elapsed() >= delay);
    assert_eq!(world.last_report("patient", "on-wan-down")["power"], "ok");
    assert_eq!(
        world.recorded.switch.cycles.items(),
        [("modem".to_owned(), 10)]
    );
}

#[test]
fn timers_fire_in_order_can_be_cancelled_and_survive_a_fault() {
    let world = World::new();
    let settings = json!({
        // `c` asks for less than the 1 s minimum: it gets 1 s.
        "on-wan-sick": { "set": [["b", 2000], ["a", 2000], ["c", 500], ["x", 1500]] },
        "on-wan-up": { "cancel": ["x"] },
        "on-wan-down": { "fault": "trap" },
    });
    let mut plugin = world.load(probe("timers", settings));
    plugin.call(&sick()).unwrap_or_else(|e| panic!("{e}"));
    let set = &world.last_report("timers", "on-wan-sick")["set"];
    assert_eq!(set, &json!({ "a": "ok", "b": "ok", "c": "ok", "x": "ok" }));
    assert_eq!(plugin.next_timer(), Some(T0 + 1000));
    assert!(plugin.take_due_timers(T0 + 999).is_empty());

    plugin.call(&up()).unwrap_or_else(|e| panic!("{e}"));
    call_err(&mut plugin, &down());
    assert_eq!(
        plugin.next_timer(),
        Some(T0 + 1000),
        "timers survive the fault"
    );

    world.manual.set(T0 + 2000);
    let due = plugin.take_due_timers(T0 + 2000);
    assert_eq!(
        due,
        ["c", "a", "b"],
        "in due order, ties by name; `x` was cancelled"
    );
    assert_eq!(plugin.next_timer(), None);
    for name in due {
        plugin
            .call(&Event::Timer(name))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let fired: Vec<Value> = world
        .reports("timers")
        .into_iter()
        .filter(|(callback, _)| callback == "on-timer")
        .map(|(_, report)| report["timer"].clone())
        .collect();
    assert_eq!(fired, ["c", "a", "b"]);
}

#[test]
fn a_runner_fires_timers_when_due() {
    let world = World::on_system_clock();
    let after_ms = 50;
    let settings = json!({ "on-wan-up": { "set": [["soon", after_ms]] } });
    let runner = Runner::spawn(
        world.load(probe("runner", settings)),
        world.recorded.clock.clone(),
    );
    let start = Instant::now();
    runner.send(up());
    let sent = world
        .recorded
        .notifier
        .sent
        .wait_until(PATIENCE, |sent| sent.len() == 2);
    assert!(start.elapsed() >= Duration::from_millis(after_ms));
    assert_eq!(sent[1].title, "on-timer");
    assert_eq!(world.last_report("runner", "on-timer")["timer"], "soon");
    let health = runner.health();
    runner.shutdown();
    assert_eq!(health.failures, 0);
}

#[test]
fn loading_errors_name_the_plugin_and_the_reason() {
    let world = World::new();
    let dir = tempfile::tempdir().expect("a temp dir");
    let load = |name: &str, bytes: Option<&[u8]>| -> PluginError {
        let path = dir.path().join(format!("{name}.wasm"));
        if let Some(bytes) = bytes {
            std::fs::write(&path, bytes).expect("written");
        }
        let mut spec = probe(name, json!({}));
        spec.source = WasmSource::File(path.clone());
        let error = match runtime().load(spec, world.host()) {
            Ok(_) => panic!("`{name}` should not load"),
            Err(e) => e,
        };
        let prefix = format!("plugin `{name}` ({}): ", path.display());
        assert!(error.to_string().starts_with(&prefix), "{error}");
        error
    };

    let error = load("core", Some(b"\0asm\x01\0\0\0"));
    assert!(
        matches!(error, PluginError::NotComponent { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("is not a component (a core wasm module?)"),
        "{error}"
    );

    let component = std::fs::read(plugin_wasm("probe-plugin")).expect("the probe plugin");
    let error = load("truncated", Some(&component[..component.len() / 2]));
    assert!(matches!(error, PluginError::Invalid { .. }), "{error:?}");
    assert!(
        error.to_string().contains("is not a valid component: "),
        "{error}"
    );

    let error = load("text", Some(b"#!/bin/sh\necho hello\n"));
    assert!(matches!(error, PluginError::NotWasm { .. }), "{error:?}");

    let error = load("missing", None);
    assert!(matches!(error, PluginError::Read { .. }), "{error:?}");
    assert!(
        error.to_string().contains("cannot read file: No such file"),
        "{error}"
    );

    // A valid component, but an empty one.
    let error = load("empty", Some(b"\0asm\x0d\0\x01\0"));
    assert!(matches!(error, PluginError::WrongWorld { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("does not implement wanwatch:policy@0.2.x: "),
        "{error}"
    );
}
