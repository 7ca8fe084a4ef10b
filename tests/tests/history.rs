//! The history database of the live daemon: a transition is committed the
//! moment it happens and survives the daemon being killed; `wanwatch stats`
//! reports the outage.
//!
//! The link is a TCP target on 127.0.0.1 that the test opens and closes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wanwatch::history::HistoryDb;
use wanwatch_tests::link::Link;
use wanwatch_tests::{DaemonProcess, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn daemon(config: &Path) -> DaemonProcess {
    DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), config, Stdio::null())
}

/// Runs `wanwatch ARGS`, which must succeed; its standard output.
fn wanwatch(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_wanwatch"))
        .args(args)
        .output()
        .expect("run wanwatch");
    assert!(
        out.status.success(),
        "wanwatch {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The `wan` events in the database that went to `state`.
fn transitions_to(db: &Path, state: &str) -> usize {
    let Ok(db) = HistoryDb::open(db) else {
        return 0;
    };
    db.events("wan", 0, u64::MAX >> 1, 100)
        .unwrap()
        .iter()
        .filter(|e| e.data["current"] == state)
        .count()
}

#[test]
fn a_transition_is_in_the_database_at_once_survives_a_kill_and_makes_an_outage() {
    let link = Link::up();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(&config, link.daemon_config(dir.path())).unwrap();
    let status_file = dir.path().join("status.json");
    let db = dir.path().join("history.db");

    let mut first = daemon(&config);
    wait_for(&status_file, "the link up", WAIT, |s| s["state"] == "up");
    link.cut();
    wait_for(&status_file, "the link down", WAIT, |s| {
        s["state"] == "down"
    });
    // Committed when it happened, not at the next batch of rounds (5 s).
    let seen = Instant::now();
    while transitions_to(&db, "down") == 0 {
        assert!(
            seen.elapsed() < Duration::from_secs(2),
            "the transition to down is not in the database 2 s after the status showed it"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: nothing is flushed on the way out.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert_eq!(transitions_to(&db, "down"), 1);
    let outages = HistoryDb::open(&db)
        .unwrap()
        .outages(0, u64::MAX >> 1)
        .unwrap();
    assert_eq!(outages.len(), 1);
    assert_eq!(outages[0].end_ms, None);

    link.restore();
    let mut second = daemon(&config);
    wait_for(&status_file, "the link up again", WAIT, |s| {
        s["state"] == "up"
    });
    // SIGTERM, as systemd stops it: the rounds gathered are committed.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(second.0.id() as libc::pid_t, libc::SIGTERM) };
    assert!(second.0.wait().unwrap().success());

    let out = wanwatch(&[
        "stats",
        "--json",
        "--since",
        "1h",
        "--config",
        config.to_str().unwrap(),
    ]);
    let stats: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(stats["outages"], 1, "{stats:#}");
    assert_eq!(stats["outages_by_cause"]["wan"], 1, "{stats:#}");
    // From the first failed round to up again: the second of failing
    // before down, at least.
    assert!(stats["downtime_ms"].as_u64().unwrap() >= 1_000, "{stats:#}");
    // The rounds of the first daemon gathered since its last commit died
    // with it (at most 5 s of them); the second's were committed at stop.
    let target = &stats["targets"][0];
    assert_eq!(target["target"], "internet");
    assert!(target["answered"].as_u64().unwrap() > 0, "{stats:#}");

    // The human table says the same.
    let out = wanwatch(&["stats", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("  outages       1 ("), "{text}");

    // The raw rows, as the daily files `wanwatch simulate` replays.
    let export = dir.path().join("export");
    let out = wanwatch(&[
        "history",
        "export",
        "--since",
        "1h",
        "--csv",
        "--out",
        export.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let file = String::from_utf8(out).unwrap();
    let csv = std::fs::read_to_string(file.lines().next().unwrap()).unwrap();
    assert!(
        csv.starts_with("timestamp,datetime,status,ping_ms,target\n") && csv.contains(",ok,"),
        "{csv}"
    );
    assert!(
        csv.lines().skip(1).all(|l| l.ends_with(",internet")),
        "{csv}"
    );
}
