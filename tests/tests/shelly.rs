//! The Shelly driver against the emulator (tests/src/shelly.rs), across the
//! real network stack on 127.0.0.1: generation detection, the one-request
//! cycle and its verification, the flip-back and its confirmation, auth,
//! every misbehaviour a user's plug or LAN may show, the power-on warnings,
//! and `wanwatch plug` through the real binary.
//!
//! Nothing sleeps to synchronise: flip-backs are awaited by polling the
//! emulator's state against a deadline.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use wanwatch::actions::PowerSwitch;
use wanwatch::config::{DeviceConfig, DeviceKind};
use wanwatch::drivers::Plugs;
use wanwatch::drivers::shelly::{BackOn, ErrorKind, Shelly, ShellyError};
use wanwatch_tests::shelly::{Call, Emulator, Fault, Misbehaviour, Model, Quirk};

/// Every driver in these tests is configured with it, login on the
/// emulator or not, so that every error can be checked for it.
const PASSWORD: &str = "hunter2-Pa55";

fn config(url: &str, relay: u32, password: Option<&str>) -> DeviceConfig {
    DeviceConfig {
        kind: DeviceKind::Shelly,
        address: url.to_owned(),
        relay,
        username: None,
        password: password.map(str::to_owned),
    }
}

/// The driver for `modem` at `url`, with test-sized timeouts and retries.
fn driver(url: &str, relay: u32, password: Option<&str>) -> Shelly {
    Shelly::new("modem", &config(url, relay, password))
        .with_timeouts(Duration::from_secs(1), Duration::from_secs(2))
        .with_retries(2, Duration::from_millis(50))
}

fn plug(emulator: &Emulator) -> Shelly {
    driver(&emulator.url(), 0, Some(PASSWORD))
}

/// The error's message, checked to be free of the password.
fn message(error: &ShellyError) -> String {
    let text = error.to_string();
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    assert!(
        !format!("{error:?}").contains(PASSWORD),
        "the password leaked: {error:?}"
    );
    text
}

/// The calls the device carried out, by name.
fn performed(emulator: &Emulator) -> Vec<String> {
    emulator
        .calls()
        .into_iter()
        .filter(|c| c.performed)
        .map(|c| c.name)
        .collect()
}

/// The "off" requests the device carried out.
fn offs(emulator: &Emulator) -> Vec<Call> {
    emulator
        .calls()
        .into_iter()
        .filter(|c| c.performed)
        .filter(|c| {
            c.params["turn"] == "off" || (c.name == "Switch.Set" && c.params["on"] == false)
        })
        .collect()
}

/// Polls until `done` holds; panics after `timeout`.
fn wait_until(timeout: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Generation detection.

#[tokio::test]
async fn detects_gen1_from_a_shelly_answer_without_gen() {
    let emulator = Emulator::start(Model::PlugS);
    let status = plug(&emulator).status().await.unwrap();
    assert_eq!(status.identity.generation, 1);
    assert_eq!(status.identity.model.as_deref(), Some("SHPLG-S"));
    assert_eq!(
        status.identity.firmware.as_deref(),
        Some("20230913-113421/v1.14.0-gcb84623")
    );
    assert_eq!(status.identity.outputs, Some(1));
    assert!(!status.identity.auth);
    assert!(status.state.output);
    assert_eq!(status.state.timer, None);
    assert_eq!(
        (status.power_on.key, status.power_on.value.as_deref()),
        ("default_state", Some("on"))
    );
    assert_eq!(performed(&emulator), ["/shelly", "/relay/0", "/settings"]);
}

#[tokio::test]
async fn detects_gen2_and_speaks_rpc() {
    let emulator = Emulator::start(Model::PlusPlugS);
    let status = plug(&emulator).status().await.unwrap();
    assert_eq!(status.identity.generation, 2);
    assert_eq!(status.identity.model.as_deref(), Some("SNPL-00112EU"));
    assert_eq!(status.identity.firmware.as_deref(), Some("1.1.0"));
    assert_eq!(
        (status.power_on.key, status.power_on.value.as_deref()),
        ("initial_state", Some("on"))
    );
    assert_eq!(
        performed(&emulator),
        ["/shelly", "Switch.GetStatus", "Switch.GetConfig"]
    );
    assert!(
        emulator.calls()[1..]
            .iter()
            .all(|c| c.request.method == "POST" && c.request.path == "/rpc")
    );
}

#[tokio::test]
async fn detects_gen4_and_speaks_rpc() {
    let emulator = Emulator::start(Model::Mini1Gen4).power_on("match_input");
    let status = plug(&emulator).status().await.unwrap();
    assert_eq!(status.identity.generation, 4);
    assert_eq!(status.identity.model.as_deref(), Some("S4SW-001X8EU"));
    assert_eq!(status.identity.firmware.as_deref(), Some("1.5.99-g4prod1"));
    assert_eq!(status.power_on.value.as_deref(), Some("match_input"));
    assert!(
        status
            .power_on_warning()
            .unwrap()
            .contains("follows its input switch")
    );
}

// The cycle.

#[tokio::test]
async fn gen1_cycle_is_one_request_and_the_relay_flips_back_by_itself() {
    let emulator = Emulator::start(Model::PlugS);
    let shelly = plug(&emulator);
    let sent = Instant::now();
    let started = shelly.power_cycle(1).await.unwrap();
    assert!(started.back_on_in <= Duration::from_secs(1), "{started:?}");
    assert!(!emulator.output(0), "off right after the cycle");
    // Exactly one switching request, carrying the plug's own timer; the
    // relay is read before (no cycle under way?) and after (verification).
    let sent_offs = offs(&emulator);
    assert_eq!(sent_offs.len(), 1, "{sent_offs:#?}");
    assert_eq!(sent_offs[0].name, "/relay/0");
    assert_eq!(sent_offs[0].request.query, "turn=off&timer=1");
    assert_eq!(
        performed(&emulator),
        ["/shelly", "/relay/0", "/relay/0", "/relay/0"]
    );

    wait_until(Duration::from_secs(5), "the relay is back on", || {
        emulator.output(0)
    });
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "flipped back after {:?}",
        sent.elapsed()
    );
    assert_eq!(shelly.await_back_on(&started).await, Ok(BackOn::ByItself));
    let calls = emulator.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.name != "/relay/0" || c.request.query != "turn=on"),
        "it came back by itself"
    );
    assert_eq!(
        offs(&emulator).len(),
        1,
        "confirming sends no switching request"
    );
}

#[tokio::test]
async fn gen2_cycle_is_one_switch_set_with_toggle_after() {
    let emulator = Emulator::start(Model::PlusPlugS);
    let shelly = plug(&emulator);
    let started = shelly.power_cycle(1).await.unwrap();
    assert!(started.back_on_in <= Duration::from_secs(1) && !started.back_on_in.is_zero());
    let sent_offs = offs(&emulator);
    assert_eq!(sent_offs.len(), 1);
    assert_eq!(
        sent_offs[0].params,
        serde_json::json!({"id": 0, "on": false, "toggle_after": 1})
    );
    let request = &sent_offs[0].request;
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/rpc")
    );
    assert_eq!(
        performed(&emulator),
        [
            "/shelly",
            "Switch.GetStatus",
            "Switch.Set",
            "Switch.GetStatus"
        ]
    );
    assert!(emulator.timer_running(0));
    wait_until(Duration::from_secs(5), "the switch is back on", || {
        emulator.output(0)
    });
    assert_eq!(shelly.await_back_on(&started).await, Ok(BackOn::ByItself));
}

#[tokio::test]
async fn gen4_cycle_works_like_gen2() {
    let emulator = Emulator::start(Model::Mini1Gen4);
    plug(&emulator).power_cycle(30).await.unwrap();
    assert_eq!(offs(&emulator)[0].params["toggle_after"], 30);
    assert!(!emulator.output(0) && emulator.timer_running(0));
}

#[tokio::test]
async fn a_plug_that_loses_its_timer_is_switched_back_on_and_reported() {
    for model in [Model::PlugS, Model::PlusPlugS] {
        let emulator = Emulator::start(model);
        emulator.lose_timers();
        let e = plug(&emulator).power_cycle(5).await.unwrap_err();
        assert_eq!(
            message(&e),
            format!(
                "plug `modem` ({}): the power cycle is not under way: the plug switched off but started no flip-back timer; it was switched back on at once",
                emulator.url()
            )
        );
        assert!(
            emulator.output(0),
            "{model:?}: the modem must not stay dark"
        );
    }
}

#[tokio::test]
async fn confirmation_switches_on_a_plug_that_lost_its_timer_in_the_off_window() {
    let emulator = Emulator::start(Model::PlugS).power_on("off");
    let shelly = plug(&emulator);
    let started = shelly.power_cycle(1).await.unwrap();
    // Mains fails and returns in the off window: the timer is gone and the
    // plug comes back off, as its power-on setting says.
    emulator.power_failure();
    assert!(!emulator.output(0) && !emulator.timer_running(0));
    assert_eq!(shelly.await_back_on(&started).await, Ok(BackOn::SwitchedOn));
    assert!(emulator.output(0), "the modem must not stay dark");
    let ons = emulator
        .calls()
        .into_iter()
        .filter(|c| c.performed && c.params["turn"] == "on")
        .count();
    assert_eq!(ons, 1);
}

#[tokio::test]
async fn a_cycle_already_under_way_on_the_plug_is_refused() {
    for model in [Model::PlugS, Model::PlusPlugS] {
        let emulator = Emulator::start(model);
        // As after a daemon restart: a cycle runs that this driver did not start.
        plug(&emulator).power_cycle(30).await.unwrap();
        let e = plug(&emulator).power_cycle(30).await.unwrap_err();
        assert!(matches!(e.kind, ErrorKind::AlreadyUnderWay(_)), "{e}");
        assert!(
            message(&e)
                .ends_with("a power cycle is already under way on the plug (back on in ~30 s)"),
            "{e}"
        );
        assert_eq!(offs(&emulator).len(), 1, "{model:?}: no second off");
    }
}

#[test]
fn plugs_refuse_a_second_cycle_without_a_request_and_confirm_the_first() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emulator = Emulator::start(Model::PlusPlugS);
    let plugs = Plugs::from_plugs([plug(&emulator)], runtime.handle().clone());
    // Called from this thread, which is not a runtime thread, like a plugin's.
    assert_eq!(plugs.power_cycle("modem", 1), Ok(()));
    let calls = emulator.calls().len();
    assert_eq!(
        plugs.power_cycle("modem", 1),
        Err("a power cycle of modem is already under way (back on in ~1 s)".into())
    );
    assert_eq!(emulator.calls().len(), calls, "the refusal sent nothing");
    assert_eq!(
        plugs.power_cycle("router", 1),
        Err("no device named `router` is configured (configured: modem)".into())
    );

    // The confirmation reads the switch after the off period (1 s + 2 s
    // margin) and releases the device.
    wait_until(Duration::from_secs(10), "the cycle is confirmed", || {
        plugs.under_way("modem").is_none()
    });
    assert!(emulator.output(0));
    let after: Vec<String> = emulator.calls()[calls..]
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        after,
        ["/shelly", "Switch.GetStatus"],
        "one read, no switching"
    );
    assert_eq!(offs(&emulator).len(), 1);
}

// Authentication.

#[tokio::test]
async fn gen1_basic_auth() {
    let emulator = Emulator::start(Model::PlugS).password(PASSWORD);
    let status = plug(&emulator).status().await.unwrap();
    assert!(status.identity.auth);
    let relay = emulator
        .calls()
        .into_iter()
        .find(|c| c.name == "/relay/0")
        .unwrap();
    assert!(
        relay
            .request
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );

    let e = driver(&emulator.url(), 0, Some("wrong"))
        .power_cycle(5)
        .await
        .unwrap_err();
    assert_eq!(
        message(&e),
        format!(
            "plug `modem` ({}): wrong username or password (HTTP 401)",
            emulator.url()
        )
    );
    let e = driver(&emulator.url(), 0, None).status().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoPassword);
    assert!(message(&e).contains("login enabled and no password is configured"));
    assert!(offs(&emulator).is_empty());
}

#[tokio::test]
async fn gen2_digest_sha256_auth_with_a_fresh_challenge_per_request() {
    let emulator = Emulator::start(Model::PlusPlugS).password(PASSWORD);
    plug(&emulator).power_cycle(30).await.unwrap();
    let calls = emulator.calls();
    let authenticated: Vec<&Call> = calls
        .iter()
        .filter(|c| c.request.header("authorization").is_some())
        .collect();
    assert_eq!(
        authenticated
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["Switch.GetStatus", "Switch.Set", "Switch.GetStatus"]
    );
    for call in &authenticated {
        let header = call.request.header("authorization").unwrap();
        assert!(
            header.starts_with("Digest ") && header.contains("algorithm=SHA-256"),
            "{header}"
        );
        assert!(
            header.contains("username=\"admin\"")
                && header.contains("realm=\"shellyplusplugs-aabbccddeeff\"")
        );
        assert!(call.performed, "accepted: {header}");
    }
    assert_eq!(offs(&emulator).len(), 1);

    let e = driver(&emulator.url(), 0, Some("wrong"))
        .power_cycle(30)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::WrongPassword(""));
    assert_eq!(offs(&emulator).len(), 1);
    // A password changed on the device: good credentials refused.
    emulator.misbehave(Fault::always(Misbehaviour::Unauthorized).on("Switch.GetStatus"));
    let e = plug(&emulator).status().await.unwrap_err();
    assert!(
        message(&e).ends_with("wrong username or password (HTTP 401)"),
        "{e}"
    );
}

// Misbehaviour.

#[tokio::test]
async fn a_hanging_plug_times_out_within_the_configured_timeout() {
    let emulator = Emulator::start(Model::PlugS);
    emulator.misbehave(Fault::always(Misbehaviour::Hang));
    let shelly = Shelly::new("modem", &config(&emulator.url(), 0, Some(PASSWORD)))
        .with_timeouts(Duration::from_millis(500), Duration::from_millis(700));
    let asked = Instant::now();
    let e = shelly.power_cycle(10).await.unwrap_err();
    let took = asked.elapsed();
    assert_eq!(
        message(&e),
        format!("plug `modem` ({}): no answer within 700 ms", emulator.url())
    );
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(1_500),
        "{took:?}"
    );
    assert_eq!(emulator.calls().len(), 1, "a timeout is not retried");
}

#[tokio::test]
async fn nothing_listening_is_unreachable_after_retries() {
    let url = Emulator::start(Model::PlugS).url();
    let e = driver(&url, 0, Some(PASSWORD))
        .power_cycle(10)
        .await
        .unwrap_err();
    assert_eq!(
        message(&e),
        format!("plug `modem` ({url}): unreachable (connection refused)")
    );
}

#[tokio::test]
async fn an_http_500_is_a_clear_error() {
    let emulator = Emulator::start(Model::PlugS);
    emulator.misbehave(Fault::always(Misbehaviour::Status(500)));
    let e = plug(&emulator).status().await.unwrap_err();
    assert_eq!(
        message(&e),
        format!(
            "plug `modem` ({}): answered HTTP 500 to /shelly: HTTP 500: the emulator was told to fail",
            emulator.url()
        )
    );
}

#[tokio::test]
async fn a_truncated_answer_is_a_clear_error() {
    let emulator = Emulator::start(Model::PlusPlugS);
    emulator.misbehave(Fault::always(Misbehaviour::Truncated).on("Switch.GetStatus"));
    let e = plug(&emulator).power_cycle(10).await.unwrap_err();
    assert!(matches!(e.kind, ErrorKind::CutOff(_)), "{e}");
    assert!(message(&e).contains("the answer was cut off"), "{e}");
    assert_eq!(
        emulator
            .calls()
            .iter()
            .filter(|c| c.name == "Switch.GetStatus")
            .count(),
        3,
        "retried twice"
    );
    assert!(
        offs(&emulator).is_empty(),
        "nothing switched without knowing the state"
    );
}

#[tokio::test]
async fn answers_that_are_not_the_expected_json_are_clear_errors() {
    let emulator = Emulator::start(Model::PlugS);
    emulator.misbehave(Fault::next(1, Misbehaviour::NotJson));
    let e = plug(&emulator).status().await.unwrap_err();
    let text = message(&e);
    assert!(
        text.contains("answered something that is not the expected JSON")
            && text.ends_with(": <html><body><h1>Router login</h1></body></html>"),
        "{text}"
    );
    emulator.misbehave(Fault::next(1, Misbehaviour::WrongJson));
    let e = plug(&emulator).status().await.unwrap_err();
    assert!(
        message(&e).ends_with("(missing field `type`): {\"unexpected\":[1,2,3]}"),
        "{e}"
    );
    // The same on the relay itself, after detection succeeded.
    emulator.misbehave(Fault::always(Misbehaviour::WrongJson).on("/relay/0"));
    let e = plug(&emulator).power_cycle(5).await.unwrap_err();
    assert!(message(&e).contains("(missing field `ison`)"), "{e}");
}

#[tokio::test]
async fn a_slow_answer_within_the_timeout_still_works() {
    let emulator = Emulator::start(Model::PlusPlugS).password(PASSWORD);
    emulator.misbehave(Fault::always(Misbehaviour::Slow(Duration::from_millis(
        300,
    ))));
    plug(&emulator).power_cycle(10).await.unwrap();
    assert_eq!(offs(&emulator).len(), 1);
}

#[tokio::test]
async fn a_relay_or_switch_that_does_not_exist() {
    let emulator = Emulator::start(Model::PlugS);
    let e = driver(&emulator.url(), 3, Some(PASSWORD))
        .power_cycle(10)
        .await
        .unwrap_err();
    assert_eq!(
        message(&e),
        format!(
            "plug `modem` ({}): relay 3 does not exist (the plug has relays 0)",
            emulator.url()
        )
    );
    assert_eq!(performed(&emulator), ["/shelly"], "nothing sent to relay 3");

    let emulator = Emulator::start(Model::PlusPlugS);
    let e = driver(&emulator.url(), 3, Some(PASSWORD))
        .power_cycle(10)
        .await
        .unwrap_err();
    assert_eq!(
        message(&e),
        format!(
            "plug `modem` ({}): switch id 3 does not exist (Gen2 error -105: Bad id=3)",
            emulator.url()
        )
    );
    assert!(offs(&emulator).is_empty());
}

#[tokio::test]
async fn a_transport_error_before_confirmation_is_retried() {
    let emulator = Emulator::start(Model::PlugS);
    emulator.misbehave(Fault::next(1, Misbehaviour::Close));
    plug(&emulator).power_cycle(10).await.unwrap();
    assert!(
        !emulator.calls()[0].performed,
        "the first connection was closed"
    );
    assert_eq!(offs(&emulator).len(), 1);

    // The "off" itself lost before reaching the device: sent again.
    let emulator = Emulator::start(Model::PlusPlugS);
    emulator.misbehave(Fault::next(1, Misbehaviour::Close).on("Switch.Set"));
    plug(&emulator).power_cycle(10).await.unwrap();
    let sets: Vec<bool> = emulator
        .calls()
        .iter()
        .filter(|c| c.name == "Switch.Set")
        .map(|c| c.performed)
        .collect();
    assert_eq!(sets, [false, true]);
}

#[tokio::test]
async fn an_off_whose_answer_was_lost_is_never_sent_twice() {
    for (model, call) in [
        (Model::PlugS, "/relay/0?turn=off"),
        (Model::PlusPlugS, "Switch.Set"),
    ] {
        let emulator = Emulator::start(model);
        // The plug switches off, but its answer never arrives.
        emulator.misbehave(Fault::next(1, Misbehaviour::LoseAnswer).on(call));
        let started = plug(&emulator).power_cycle(30).await.unwrap();
        assert!(started.back_on_in > Duration::from_secs(25), "{started:?}");
        assert_eq!(
            offs(&emulator).len(),
            1,
            "{model:?}: exactly one off reached the plug"
        );
    }
}

#[tokio::test]
async fn a_json_rpc_error_frame_is_a_clear_error() {
    let emulator = Emulator::start(Model::PlusPlugS);
    emulator.misbehave(
        Fault::always(Misbehaviour::RpcError(-108, "Resource exhausted".into())).on("Switch.Set"),
    );
    let e = plug(&emulator).power_cycle(10).await.unwrap_err();
    assert_eq!(
        message(&e),
        format!(
            "plug `modem` ({}): refused Switch.Set (Gen2 error -108: Resource exhausted)",
            emulator.url()
        )
    );
    assert!(emulator.output(0));
}

#[tokio::test]
async fn an_off_time_of_zero_is_refused() {
    let emulator = Emulator::start(Model::PlugS);
    let e = plug(&emulator).power_cycle(0).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ZeroOff);
    assert!(emulator.calls().is_empty());
}

// Power-on setting.

#[tokio::test]
async fn preflight_warns_about_power_on_settings_that_leave_the_modem_dark() {
    let cases = [
        (
            Model::PlugS,
            "off",
            Some("comes back off (default_state = \"off\")"),
        ),
        (
            Model::PlugS,
            "last",
            Some(
                "restores its last state, which is off during a power cycle (default_state = \"last\")",
            ),
        ),
        (Model::PlugS, "on", None),
        (
            Model::PlusPlugS,
            "off",
            Some("comes back off (initial_state = \"off\")"),
        ),
        (
            Model::PlusPlugS,
            "restore_last",
            Some("restores its last state"),
        ),
        (
            Model::PlusPlugS,
            "match_input",
            Some("follows its input switch"),
        ),
        (Model::PlusPlugS, "on", None),
    ];
    for (model, setting, expected) in cases {
        let emulator = Emulator::start(model).power_on(setting);
        let plugs = Plugs::from_plugs([plug(&emulator)], tokio::runtime::Handle::current());
        let warnings = plugs.preflight().await;
        match expected {
            None => assert!(warnings.is_empty(), "{model:?} {setting}: {warnings:?}"),
            Some(expected) => {
                assert_eq!(warnings.len(), 1, "{model:?} {setting}: {warnings:?}");
                let prefix = format!(
                    "plug `modem` ({}): after a mains power failure its relay ",
                    emulator.url()
                );
                assert!(warnings[0].starts_with(&prefix), "{}", warnings[0]);
                assert!(warnings[0].contains(expected), "{}", warnings[0]);
                assert!(
                    warnings[0].contains("the modem stays dark"),
                    "{}",
                    warnings[0]
                );
            }
        }
    }
}

#[tokio::test]
async fn preflight_warns_about_unreachable_plugs_and_never_fails() {
    let url = Emulator::start(Model::PlugS).url();
    let emulator = Emulator::start(Model::PlusPlugS).password(PASSWORD);
    let mut devices = BTreeMap::new();
    devices.insert("modem".to_owned(), config(&url, 0, Some(PASSWORD)));
    devices.insert("ont".to_owned(), config(&emulator.url(), 0, Some("wrong")));
    let warnings = Plugs::new(&devices, tokio::runtime::Handle::current())
        .preflight()
        .await;
    assert_eq!(
        warnings,
        [
            format!(
                "plug `modem` ({url}): unreachable (connection refused): power cycles of `modem` will fail until this is fixed"
            ),
            format!(
                "plug `ont` ({}): wrong username or password (HTTP 401): power cycles of `ont` will fail until this is fixed",
                emulator.url()
            ),
        ]
    );
    assert!(warnings.iter().all(|w| !w.contains(PASSWORD)));
}

// The command line.

/// Runs the real binary with a config naming `url` as device `modem`; the
/// password must show in none of its output.
fn wanwatch(url: &str, args: &[&str]) -> (bool, String, String) {
    wanwatch_relay(url, 0, args)
}

/// [`wanwatch`], with the device's `relay` set.
fn wanwatch_relay(url: &str, relay: u32, args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[devices.modem]\nkind = \"shelly\"\naddress = \"{url}\"\npassword = \"{PASSWORD}\"\nrelay = {relay}\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wanwatch"))
        .args(["--log-level", "debug"])
        .args(args)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password leaked:\n{stdout}\n{stderr}"
    );
    (
        out.status.success(),
        stdout.into_owned(),
        stderr.into_owned(),
    )
}

#[test]
fn plug_status_through_the_binary() {
    let emulator = Emulator::start(Model::PlugS)
        .password(PASSWORD)
        .power_on("last");
    let (ok, stdout, stderr) = wanwatch(&emulator.url(), &["plug", "status", "modem"]);
    assert!(ok, "{stderr}");
    let expected = format!(
        "plug modem ({})\n  generation  Gen1\n  model       SHPLG-S\n  firmware    20230913-113421/v1.14.0-gcb84623\n  login       enabled\n  relay 0     on\n  timer       none\n  power-on    last (default_state = \"last\")\nwarning: after a mains power failure its relay restores its last state",
        emulator.url()
    );
    assert!(stdout.starts_with(&expected), "{stdout}");
    assert!(
        stderr.contains("GET /relay/0 → 200"),
        "debug logs show the requests: {stderr}"
    );

    let (ok, _, stderr) = wanwatch(&emulator.url(), &["plug", "status", "router"]);
    assert!(!ok);
    assert_eq!(
        stderr.trim(),
        "no device named `router` (configured: modem)"
    );
}

#[test]
fn plug_cycle_through_the_binary_honours_dry_run_then_cycles_and_confirms() {
    let emulator = Emulator::start(Model::PlusPlugS).password(PASSWORD);
    let (ok, stdout, stderr) = wanwatch(
        &emulator.url(),
        &["plug", "cycle", "modem", "--off", "1s", "--dry-run"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "dry run: would switch plug modem (Gen2, relay 0) off for 1 s, with its own timer switching it back on\n"
    );
    assert!(offs(&emulator).is_empty(), "a dry run switches nothing");

    let (ok, stdout, stderr) =
        wanwatch(&emulator.url(), &["plug", "cycle", "modem", "--off", "1s"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "plug modem: off; the plug switches itself back on in ~1 s\nplug modem: back on\n"
    );
    assert_eq!(offs(&emulator).len(), 1);

    let (ok, _, stderr) = wanwatch(
        &emulator.url(),
        &["plug", "cycle", "modem", "--off", "1500ms"],
    );
    assert!(!ok);
    assert!(stderr.contains("whole number of seconds"), "{stderr}");
}

#[test]
fn credentials_in_the_address_are_refused_without_showing_them() {
    let emulator = Emulator::start(Model::PlugS).password(PASSWORD);
    let url = emulator
        .url()
        .replace("http://", &format!("http://admin:{PASSWORD}@"));
    for args in [&["check"][..], &["plug", "status", "modem"]] {
        let (ok, stdout, stderr) = wanwatch(&url, args);
        assert!(!ok, "{args:?} accepted the address:\n{stdout}\n{stderr}");
        assert!(
            stderr.contains("wanwatch.toml:3:11: devices.modem.address: ")
                && stderr.contains("`username` and `password`"),
            "{args:?}: {stderr}"
        );
    }
    assert!(emulator.calls().is_empty(), "the plug was asked");
}

/// The emulator's recordings are the shared fixtures, unchanged (checked
/// when the fixtures are there, next to the repository).
#[test]
fn the_emulator_serves_the_recorded_answers_unchanged() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/shelly-fixtures");
    if !dir.is_dir() {
        eprintln!("{} is absent: nothing to compare with", dir.display());
        return;
    }
    for (file, key, embedded) in wanwatch_tests::shelly::recorded::ALL {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let recorded: serde_json::Value = serde_json::from_str(&text).unwrap();
        let recorded = key.map_or(recorded.clone(), |k| recorded[k].clone());
        let embedded: serde_json::Value = serde_json::from_str(embedded).unwrap();
        assert_eq!(embedded, recorded, "{file} {key:?}");
    }
}

// Answers with fields left out, as third-party emulators and other
// firmwares give them, and plugs with several switches.

#[tokio::test]
async fn firmware_and_power_on_setting_are_only_shown_so_may_be_missing() {
    for (model, key) in [
        (Model::PlugS, "default_state"),
        (Model::PlusPlugS, "initial_state"),
    ] {
        let emulator = Emulator::start(model)
            .quirk(Quirk::NoFirmware)
            .quirk(Quirk::NoPowerOn);
        let status = plug(&emulator).status().await.unwrap();
        assert_eq!(status.identity.firmware, None, "{model:?}");
        assert_eq!(status.power_on.value, None, "{model:?}");
        assert_eq!(
            status.power_on.to_string(),
            format!("unknown (no `{key}` in the plug's answer)")
        );
        // Not known to be safe, so worth a check by hand.
        let warning = status.power_on_warning().unwrap();
        assert!(
            warning.starts_with(&format!(
                "after a mains power failure its relay may come back off: its power-on setting is unknown (no `{key}` in the plug's answer)"
            )),
            "{warning}"
        );
        let plugs = Plugs::from_plugs([plug(&emulator)], tokio::runtime::Handle::current());
        assert_eq!(plugs.preflight().await.len(), 1, "{model:?}: the warning");
        plug(&emulator).power_cycle(30).await.unwrap();
        assert_eq!(offs(&emulator).len(), 1, "{model:?}");
    }
}

#[test]
fn plug_commands_show_what_the_plug_does_not_report_as_unknown() {
    for (model, generation, key) in [
        (Model::PlugS, 1, "default_state"),
        (Model::PlusPlugS, 2, "initial_state"),
    ] {
        let emulator = Emulator::start(model)
            .password(PASSWORD)
            .quirk(Quirk::NoFirmware)
            .quirk(Quirk::NoPowerOn);
        let (ok, stdout, stderr) = wanwatch(&emulator.url(), &["plug", "status", "modem"]);
        assert!(ok, "{model:?}: {stderr}");
        assert!(
            stdout.contains("\n  firmware    unknown\n")
                && stdout.contains(&format!(
                    "\n  power-on    unknown (no `{key}` in the plug's answer)\nwarning: "
                )),
            "{stdout}"
        );
        let (ok, stdout, stderr) = wanwatch(
            &emulator.url(),
            &["plug", "cycle", "modem", "--off", "1s", "--dry-run"],
        );
        assert!(ok, "{model:?}: {stderr}");
        assert!(
            stdout.ends_with(&format!(
                "dry run: would switch plug modem (Gen{generation}, relay 0) off for 1 s, with its own timer switching it back on\n"
            )),
            "{stdout}"
        );
        assert!(offs(&emulator).is_empty());
    }
}

#[tokio::test]
async fn a_pro_4pm_cycles_the_switch_the_config_names_and_no_other() {
    let emulator = Emulator::start(Model::Pro4Pm);
    let shelly = driver(&emulator.url(), 2, Some(PASSWORD));
    let status = shelly.status().await.unwrap();
    assert_eq!(status.relay, 2);
    assert_eq!(status.identity.model.as_deref(), Some("SPSW-104PE16EU"));
    let started = shelly.power_cycle(1).await.unwrap();
    assert_eq!(
        offs(&emulator)
            .iter()
            .map(|c| c.params.clone())
            .collect::<Vec<_>>(),
        [serde_json::json!({"id": 2, "on": false, "toggle_after": 1})]
    );
    assert!(!emulator.output(2) && emulator.timer_running(2));
    for other in [0, 1, 3] {
        assert!(emulator.output(other), "switch {other} untouched");
    }
    assert_eq!(shelly.await_back_on(&started).await, Ok(BackOn::ByItself));
    assert!(emulator.output(2));
    assert!(
        emulator
            .calls()
            .iter()
            .filter(|c| c.name.starts_with("Switch."))
            .all(|c| c.params["id"] == 2),
        "every switch call names id 2"
    );

    let e = driver(&emulator.url(), 4, Some(PASSWORD))
        .power_cycle(1)
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::NoSuchSwitch { id: 4, .. }),
        "{e}"
    );

    let (ok, stdout, stderr) = wanwatch_relay(&emulator.url(), 3, &["plug", "status", "modem"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\n  relay 3     on\n"), "{stdout}");
}

#[tokio::test]
async fn a_timer_whose_time_left_is_not_reported_is_waited_for_in_full() {
    for model in [Model::PlugS, Model::PlusPlugS] {
        let emulator = Emulator::start(model).quirk(Quirk::NoTimeLeft);
        let shelly = plug(&emulator);
        let asked = Instant::now();
        let started = shelly.power_cycle(3).await.unwrap();
        assert_eq!(
            started.back_on_in,
            Duration::from_secs(3),
            "{model:?}: the off time asked for, not 0 s"
        );
        let status = shelly.status().await.unwrap();
        let timer = status.state.timer.unwrap();
        assert_eq!(timer.remaining, None, "{model:?}");
        assert!(
            timer
                .to_string()
                .starts_with("flips back in an unknown time"),
            "{timer}"
        );
        assert_eq!(
            shelly.await_back_on(&started).await,
            Ok(BackOn::ByItself),
            "{model:?}"
        );
        assert!(asked.elapsed() >= Duration::from_secs(3), "{model:?}");
        assert!(
            emulator
                .calls()
                .iter()
                .all(|c| c.params["turn"] != "on"
                    && !(c.name == "Switch.Set" && c.params["on"] == true)),
            "{model:?}: it came back by itself"
        );
        // A second cycle meanwhile is refused all the same.
        shelly.power_cycle(30).await.unwrap();
        let e = shelly.power_cycle(30).await.unwrap_err();
        assert!(
            message(&e).ends_with(
                "a power cycle is already under way on the plug (the plug does not say when it is back on)"
            ),
            "{e}"
        );
    }
}

#[test]
fn plug_commands_show_a_timer_without_time_left_as_unknown() {
    let emulator = Emulator::start(Model::PlugS)
        .password(PASSWORD)
        .quirk(Quirk::NoTimeLeft);
    let (ok, stdout, stderr) =
        wanwatch(&emulator.url(), &["plug", "cycle", "modem", "--off", "1s"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "plug modem: off; the plug switches itself back on in ~1 s\nplug modem: back on\n"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(plug(&emulator).power_cycle(30)).unwrap();
    let (ok, stdout, stderr) = wanwatch(&emulator.url(), &["plug", "status", "modem"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "\n  relay 0     off\n  timer       flips back in an unknown time (of 30 s)\n"
        ),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_plug_found_off_is_switched_on_and_reported_as_off_before_the_cycle() {
    for model in [Model::PlugS, Model::PlusPlugS] {
        let emulator = Emulator::start(model);
        emulator.set_output(0, false);
        let e = plug(&emulator).power_cycle(10).await.unwrap_err();
        assert!(matches!(e.kind, ErrorKind::WasOff(_)), "{e}");
        assert_eq!(
            message(&e),
            format!(
                "plug `modem` ({}): the relay was already off before the power cycle, so the modem had no power; it was switched on instead",
                emulator.url()
            )
        );
        assert!(emulator.output(0), "{model:?}: the modem has power");
        assert!(!emulator.timer_running(0), "{model:?}");
        assert!(offs(&emulator).is_empty(), "{model:?}: no off was sent");
    }
}

#[test]
fn the_daemon_and_the_command_line_report_a_plug_found_off_alike() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emulator = Emulator::start(Model::PlusPlugS).password(PASSWORD);
    let plugs = Plugs::from_plugs([plug(&emulator)], runtime.handle().clone());
    emulator.set_output(0, false);
    let outcome = plugs.power_cycle("modem", 10).unwrap_err();
    assert!(
        outcome.ends_with(
            "the relay was already off before the power cycle, so the modem had no power; it was switched on instead"
        ),
        "{outcome}"
    );
    assert_eq!(plugs.under_way("modem"), None, "nothing left to confirm");
    assert!(emulator.output(0));

    emulator.set_output(0, false);
    let (ok, stdout, stderr) = wanwatch(
        &emulator.url(),
        &["plug", "cycle", "modem", "--off", "10s", "--dry-run"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "dry run: would switch plug modem (Gen2, relay 0) off for 10 s, with its own timer switching it back on (it is off now, so it would be switched on instead)\n"
    );
    assert!(!emulator.output(0), "a dry run switches nothing");
    let (ok, _, stderr) = wanwatch(&emulator.url(), &["plug", "cycle", "modem", "--off", "10s"]);
    assert!(!ok);
    assert!(
        stderr.contains(&outcome),
        "the same words as the daemon's: {stderr}"
    );
    assert!(emulator.output(0));
    assert!(offs(&emulator).is_empty());
}
