//! A full disk: the real daemon with its state directory on a tiny tmpfs,
//! which the test fills up while the daemon runs, then frees.
//!
//! While it is full, probing and power cycling go on (the WAN goes down,
//! the built-in `powercycle` cycles the Shelly emulator's plug), and each
//! write failure (the status file, the policy's key-value store, the
//! safety cap's record, the history database) is logged once, not at every
//! round. Once there is room again, everything is written again by itself,
//! each saying so once.
//!
//! The tmpfs lives in a mount namespace of the daemon's own (`unshare -m`):
//! it goes when the daemon does, so a test that dies leaves nothing
//! mounted. The test reaches it through `/proc/<pid>/root`. Needs root;
//! without it the test says so and is skipped (fails under CI, see `skip`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wanwatch_tests::link::Link;
use wanwatch_tests::shelly::{Emulator, Model};
use wanwatch_tests::{DaemonProcess, skip, wait_for};

/// Enough for the compiled plugins' cache, the history database and the
/// status file, with a little room.
const TMPFS: &str = "size=8m";

/// Fills the file system of `path` with one file: what no write can then
/// find room for.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = file.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            break;
        }
    }
    // The last partial chunk may leave a few bytes: take those too.
    while file.write_all(&[0]).is_ok() {}
}

/// How many lines of the log contain `text`.
fn count(log: &Path, text: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(text))
        .count()
}

fn performed_offs(plug: &Emulator) -> usize {
    plug.calls()
        .iter()
        .filter(|c| c.name == "Switch.Set" && c.performed && c.params["on"] == false)
        .count()
}

#[test]
fn a_full_disk_is_logged_once_and_writing_resumes_by_itself() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        skip("mounting a tmpfs needs root");
        return;
    }
    let link = Link::up();
    let plug = Emulator::start(Model::PlusPlugS);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"{start}
# Not needed here, and the default port may be taken.
[http]
listen = []

[devices.modem]
kind = "shelly"
address = "{plug}"

[plugins.powercycle]
devices = ["modem"]
deadline = "2s"

[plugins.powercycle.settings]
off_seconds = 1
boot_wait = "1h"
"#,
            start = link.daemon_config(&state),
            plug = plug.url(),
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    // The daemon in a mount namespace of its own, with a tmpfs on its state
    // directory; exec'd, so the child's pid is the daemon's.
    let mut launcher = Command::new("unshare");
    launcher.args(["-m", "--propagation", "private", "sh", "-c"]);
    launcher.arg(format!(
        r#"mount -t tmpfs -o {TMPFS} wanwatch-disk-full "$0" && daemon="$1" && shift && exec "$daemon" "$@""#
    ));
    launcher.arg(&state).arg(env!("CARGO_BIN_EXE_wanwatch"));
    let daemon = DaemonProcess::spawn(launcher, &config, std::fs::File::create(&log).unwrap());
    // The state directory as the daemon sees it.
    let seen: PathBuf = format!("/proc/{}/root{}", daemon.0.id(), state.display()).into();
    let status = seen.join("status.json");
    let minute = Duration::from_secs(60);
    wait_for(&status, "the first status", minute, |s| s["state"] == "up");
    assert!(
        std::fs::read_dir(&state).unwrap().next().is_none(),
        "the tmpfs is the daemon's alone"
    );

    // The disk fills up; the link fails.
    let filler = seen.join("filler");
    fill(&filler);
    link.cut();
    let log_has = |text: &str, n: usize| {
        let deadline = std::time::Instant::now() + minute;
        while count(&log, text) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} in the log:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Probing goes on: the WAN goes down, and the modem is cycled.
    log_has("WAN down", 1);
    let deadline = std::time::Instant::now() + minute;
    while performed_offs(&plug) == 0 {
        assert!(std::time::Instant::now() < deadline, "no power cycle");
        std::thread::sleep(Duration::from_millis(100));
    }
    log_has("power-cycled modem", 1);
    // Rounds go on while the disk stays full: the link back, up again,
    // down again; and 6 s for the status file's cadence (5 s) and the
    // history's commits.
    link.restore();
    log_has("WAN up", 1);
    link.cut();
    log_has("WAN down", 2);
    link.restore();
    log_has("WAN up", 2);
    std::thread::sleep(Duration::from_secs(6));
    let up_before = count(&log, "WAN up");

    // Room again: every writer writes again, by itself.
    std::fs::remove_file(&filler).unwrap();
    link.cut();
    log_has("WAN down", 3);
    link.restore();
    let after = wait_for(&status, "the status file written again", minute, |s| {
        s["transitions"]
            .as_array()
            .is_some_and(|t| t.len() >= 2 * 3)
            && s["state"] == "up"
    });
    log_has("writing the status file", 1);
    log_has("writing what plugin `powercycle` keeps", 1);
    log_has("writing the safety cap's record", 1);
    assert!(count(&log, "WAN up") > up_before);

    // Each failure was logged once, not at every attempt, and so was each
    // recovery.
    let text = std::fs::read_to_string(&log).unwrap();
    for what in [
        "the status file",
        "what plugin `powercycle` keeps",
        "the safety cap's record",
    ] {
        assert_eq!(
            count(&log, &format!("cannot write {what}")),
            1,
            "{what}; log:\n{text}"
        );
        assert_eq!(
            count(&log, &format!("writing {what}")),
            1,
            "{what}; log:\n{text}"
        );
    }
    // SQLite may find room in the pages its write-ahead log already has:
    // it need not fail, but if it does, once, and it says when it is back.
    let history = count(&log, "cannot write the history database");
    assert!(history <= 1, "{text}");
    assert_eq!(
        count(&log, "writing the history database"),
        history,
        "{text}"
    );
    // The policy asked for one cycle per outage, full disk or not; the
    // plug carried out those it was not still confirming from the last.
    let cycles: Vec<&str> = after["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "power-cycle")
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(cycles.len(), 3, "{after:#}");
    let done = cycles.iter().filter(|&&o| o == "done").count();
    assert!(done >= 2, "{after:#}");
    assert_eq!(performed_offs(&plug), done);
    drop(daemon);
}
