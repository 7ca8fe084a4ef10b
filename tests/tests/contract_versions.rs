//! Contract versions in one live daemon: the `escalate` example as built
//! against contract 0.1.0 before 0.2.0 existed (a committed component,
//! tests/fixtures/plugins/), beside `latest-probe`, a 0.2.0 policy made with
//! the SDK (tests/plugins/). The link is a TCP target on 127.0.0.1 the test
//! cuts and restores; the modem a Shelly emulator; notifications go to a
//! webhook receiver and heartbeats to a Healthchecks stand-in, both on
//! loopback.
//!
//! The 0.1 plugin must act as it always did (one power cycle of the modem
//! when the WAN goes down), through the host's adapter; the 0.2 one must
//! get what 0.2 adds (link quality in the transition, the heartbeat
//! receivers); and status and `plugin inspect` must say which contract each
//! was built for.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use wanwatch_tests::http::{Reply, Server};
use wanwatch_tests::link::Link;
use wanwatch_tests::shelly::{Emulator, Model};
use wanwatch_tests::{DaemonProcess, Recorder, plugin_wasm, wait_for};

const WAIT: Duration = Duration::from_secs(30);
const WANWATCH: &str = env!("CARGO_BIN_EXE_wanwatch");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/plugins/escalate-v0.1.0.wasm")
}

/// A server answering 200 to everything, recording each request's body as
/// JSON (`null` when it is not).
fn receiver() -> (Server, Arc<Recorder<Value>>) {
    let received = Arc::new(Recorder::default());
    let recorder = received.clone();
    let server = Server::start(move |request| {
        recorder.push(serde_json::from_slice(&request.body).unwrap_or(Value::Null));
        Reply::status(200)
    });
    (server, received)
}

/// The notification of `latest` titled `callback`, its body read as JSON.
fn report(received: &[Value], callback: &str) -> Option<Value> {
    received
        .iter()
        .find(|n| n["plugin"] == "latest" && n["title"] == callback)
        .map(|n| serde_json::from_str(n["body"].as_str().unwrap()).unwrap())
}

#[test]
fn a_0_1_plugin_built_before_0_2_works_beside_a_0_2_plugin_in_one_daemon() {
    let link = Link::up();
    let plug = Emulator::start(Model::PlusPlugS);
    let (hook, notifications) = receiver();
    let (pings, pinged) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status.json");
    let config = format!(
        r#"{link}
[devices.modem]
kind = "shelly"
address = "{plug}"

[plugins.escalate]
file = "{escalate}"
devices = ["modem"]

[plugins.escalate.settings]
off_seconds = 1
boot_wait = "1h"

[plugins.latest]
file = "{latest}"
notify = true

[[notify.webhook]]
url = "{hook}/notifications"

[[heartbeat]]
kind = "healthchecks"
url = "{pings}/ping/0b5c1a6e-8a1f-4f9e-9d7b-3c2d1e0f4a5b"
interval = "1s"
timeout = "1s"
"#,
        link = link.daemon_config(dir.path()),
        plug = plug.url(),
        escalate = fixture().display(),
        latest = plugin_wasm("latest-probe").display(),
        hook = hook.url(),
        pings = pings.url(),
    );
    let path = dir.path().join("wanwatch.toml");
    std::fs::write(&path, config).unwrap();
    let log = File::create(dir.path().join("daemon.log")).unwrap();
    let _daemon = DaemonProcess::run(WANWATCH, &path, log);

    // Status names each plugin's contract.
    let up = wait_for(&status, "the link up, both plugins loaded", WAIT, |s| {
        s["state"] == "up" && s["plugins"].as_array().is_some_and(|p| p.len() == 2)
    });
    let contracts: Vec<(&str, &str)> = up["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["contract"].as_str().unwrap()))
        .collect();
    assert_eq!(
        contracts,
        [
            ("escalate", "0.1.0 (adapted to 0.2.0)"),
            ("latest", "0.2.0")
        ],
        "{up:#}"
    );
    // A heartbeat got through, so the receiver has something to show.
    pinged.wait_until(WAIT, |p| !p.is_empty());

    link.cut();
    wait_for(&status, "the 0.1 plugin's power cycle done", WAIT, |s| {
        s["actions"].as_array().is_some_and(|actions| {
            actions.iter().any(|a| {
                a["plugin"] == "escalate" && a["action"] == "power-cycle" && a["outcome"] == "done"
            })
        })
    });
    link.restore();
    let seen = notifications.wait_until(WAIT, |n| {
        report(n, "on-wan-down").is_some() && report(n, "on-wan-up").is_some()
    });

    // One cycle, of the granted device, as escalate always did.
    let offs = plug
        .calls()
        .into_iter()
        .filter(|c| c.performed && c.name == "Switch.Set" && c.params["on"] == false)
        .count();
    assert_eq!(offs, 1, "{:#?}", plug.calls());

    // The 0.2 plugin got the link quality and the heartbeat receivers.
    let down = report(&seen, "on-wan-down").unwrap();
    let quality = &down["quality"];
    assert_eq!(quality["degraded"], false, "{down:#}");
    assert!(quality["loss_percent"].as_f64().is_some(), "{down:#}");
    assert!(quality["targets"].is_array(), "{down:#}");
    assert_eq!(down["evidence"][0]["target"], "internet", "{down:#}");
    assert_eq!(down["evidence"][0]["https"], false, "{down:#}");
    let receivers = down["heartbeats"].as_array().unwrap();
    assert_eq!(receivers.len(), 1, "{down:#}");
    let name = receivers[0]["name"].as_str().unwrap();
    assert!(name.starts_with("heartbeat[0] healthchecks"), "{name}");
    assert!(
        !name.contains("0b5c1a6e"),
        "the secret part is shown: {name}"
    );
    assert!(receivers[0]["last_ok_ms"].as_u64().is_some(), "{down:#}");

    // `plugin inspect` says which contract each targets.
    for (wasm, expected) in [
        (
            fixture(),
            "contract  wanwatch:policy@0.1.0 (supported: adapted to 0.2.0)",
        ),
        (
            plugin_wasm("latest-probe"),
            "contract  wanwatch:policy@0.2.0 (supported: the one this host implements, 0.2.0)",
        ),
    ] {
        let out = Command::new(WANWATCH)
            .args(["plugin", "inspect"])
            .arg(&wasm)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains(expected), "{expected}:\n{text}");
        assert!(text.contains("verdict   accepted by this host"), "{text}");
    }
    let out = Command::new(WANWATCH)
        .args(["plugin", "inspect"])
        .arg(plugin_wasm("latest-probe"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("callbacks on-wan-up, on-wan-sick, on-wan-down, on-timer, on-power-out, on-power-restored, on-link-quality"),
        "{text}"
    );
}
