//! The live daemon as a watchdog that must keep watching: restarted in the
//! middle of an outage, its power-cycle back-off goes on; its wall clock
//! stepped an hour either way (as NTP does to a Raspberry Pi, which has no
//! real-time clock), no transition, cycle or timer moves.
//!
//! The link is a TCP target on 127.0.0.1 that the test opens and closes;
//! the modem's plug is the Shelly emulator on loopback. No ICMP, no root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wanwatch_tests::link::Link;
use wanwatch_tests::shelly::{Emulator, Model};
use wanwatch_tests::{DaemonProcess, skip, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn write_config(dir: &Path, link: &Link, plug: &Emulator, boot_wait: &str) -> PathBuf {
    let config = dir.join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"{start}
[safety]
max_cycles_per_hour = 20

[devices.modem]
kind = "shelly"
address = "{plug}"

[plugins.powercycle]
devices = ["modem"]

[plugins.powercycle.settings]
off_seconds = 1
boot_wait = "{boot_wait}"
max_wait = "{boot_wait}"
max_cycles = 10
"#,
            start = link.daemon_config(dir),
            plug = plug.url(),
        ),
    )
    .unwrap();
    config
}

fn daemon(config: &Path, envs: &[(&str, &str)]) -> DaemonProcess {
    DaemonProcess(
        Command::new(env!("CARGO_BIN_EXE_wanwatch"))
            .args(["run", "--config"])
            .arg(config)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the daemon"),
    )
}

/// Stops the daemon as systemd does, with SIGTERM, and waits for it.
fn stop(mut daemon: DaemonProcess) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) };
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "the daemon exited with {status}");
}

/// When each power cycle of the modem was done, as the status shows them.
fn cycles(status: &Value) -> Vec<u64> {
    status["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["action"] == "power-cycle" && a["outcome"] == "done")
        .map(|a| a["at_ms"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_restart_during_an_outage_keeps_the_power_cycles_going() {
    let link = Link::up();
    let plug = Emulator::start(Model::PlusPlugS);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &link, &plug, "4s");
    let status_file = dir.path().join("status.json");

    let first = daemon(&config, &[]);
    wait_for(&status_file, "the link up", WAIT, |s| s["state"] == "up");
    link.cut();
    let status = wait_for(&status_file, "a first power cycle", WAIT, |s| {
        cycles(s).len() == 1
    });
    assert_eq!(status["state"], "down");
    // Stopped a few seconds into the outage, with the recheck pending.
    stop(first);

    let _second = daemon(&config, &[]);
    let status = wait_for(&status_file, "the back-off going on", WAIT, |s| {
        cycles(s).len() >= 3
    });
    let at = cycles(&status);
    // Each cycle waited for the modem to boot (4 s, plus the cycle itself):
    // told the outage again at start, the policy did not cycle at once.
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= 3_500,
            "cycles too close together: {at:?}"
        );
    }
    assert_eq!(status["state"], "down");
    assert_eq!(status["outage_cycles"], at.len());
}

/// libfaketime, from Debian's `faketime` package: it steps the wall clock
/// of one process, leaving the machine's alone.
fn libfaketime() -> Option<&'static str> {
    let found = ["x86_64", "aarch64"]
        .map(|arch| format!("/usr/lib/{arch}-linux-gnu/faketime/libfaketime.so.1"))
        .into_iter()
        .find(|path| Path::new(path).exists());
    if found.is_none() {
        skip("libfaketime is missing (.ci/run installs the faketime package)");
    }
    found.map(|path| &*path.leak())
}

/// The `previous_duration_ms` of the last transition into `state`.
fn lasted_before(status: &Value, state: &str) -> u64 {
    status["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|t| t["current"] == state)
        .and_then(|t| t["previous_duration_ms"].as_u64())
        .unwrap()
}

#[test]
fn stepping_the_wall_clock_moves_no_transition_cycle_or_timer() {
    let Some(libfaketime) = libfaketime() else {
        return;
    };
    let link = Link::up();
    let plug = Emulator::start(Model::PlusPlugS);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &link, &plug, "5s");
    let status_file = dir.path().join("status.json");
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let _daemon = daemon(
        &config,
        &[
            ("LD_PRELOAD", libfaketime),
            ("FAKETIME_TIMESTAMP_FILE", offset.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            // NTP steps the wall clock only.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let mut status = wait_for(&status_file, "the link up", WAIT, |s| s["state"] == "up");

    for step in ["+1h", "-1h"] {
        let before = cycles(&status).len();
        link.cut();
        wait_for(&status_file, "the link sick", WAIT, |s| {
            s["state"] == "sick"
        });
        std::fs::write(&offset, format!("{step}\n")).unwrap();
        let down = wait_for(&status_file, "the link down, cycled twice", WAIT, |s| {
            s["state"] == "down" && cycles(s).len() >= before + 2
        });
        // Down after `down_after` (1 s) of failing rounds, neither at once
        // ("after 1h00m sick") nor an hour later.
        let sick_for = lasted_before(&down, "down");
        assert!(
            (900..5_000).contains(&sick_for),
            "{step}: down after {sick_for} ms sick"
        );
        // The recheck timer fired on time: 5 s after the first cycle. The
        // timer counts from the round's instant, a cycle's record from when
        // the plug was asked, so a loaded machine shortens the gap by the
        // time the round took; a stepped clock would make it 0 or an hour.
        let at = cycles(&down);
        let gap = at[before + 1] - at[before];
        assert!((4_500..10_000).contains(&gap), "{step}: cycles at {at:?}");
        link.restore();
        status = wait_for(&status_file, "the link up", WAIT, |s| s["state"] == "up");
        let down_for = lasted_before(&status, "up");
        assert!(down_for < 60_000, "{step}: up after {down_for} ms down");
        std::fs::write(&offset, "+0\n").unwrap();
    }
}
