//! Crashes lose nothing: the real daemon, in a network namespace behind an
//! emulated router (see `wanwatch_tests::netns`), with the built-in
//! `powercycle` and `notify` policies driving the Shelly plug emulator and
//! the ntfy emulator, while the test flaps the WAN link at random and kills
//! the daemon with SIGKILL at random moments, restarting it each time.
//!
//! Kills are aimed at the writes: during start-up (resume, queue repair,
//! stale temp files), right after a transition (status file, plugins'
//! key-value stores, notification queue, history events), right after a
//! power cycle (the plugin's store and the cap's record) and right after a
//! delivery (the queue's rewrite), or at any moment.
//!
//! While the daemon is dead, after every kill, the test opens what the next
//! start will open: the status file (the host's own reader), each plugin's
//! key-value store, the notification queue (every line whole) and the
//! history database (the host's reader). At the end it checks:
//!
//! - lost notifications: every notification ever *accepted* (seen as a
//!   line of the queue file at any kill: `Outbox::notify` returns, and the
//!   action journal says "queued", only once the line is written and
//!   fsynced) was received by the ntfy emulator, or is still queued;
//! - repeated power cycles: the plug's performed "off" requests, per link
//!   outage (from one link-down to the next), are at most one (the policy's
//!   `boot_wait` is longer than the run, so it cycles once per outage) and
//!   in all at most the host's safety cap;
//! - spurious transitions: in the daemon's history, no "down" that falls
//!   outside a link outage or repeats within one, and no "up" while the
//!   link had been down for a while: a restart that resumed the wrong state
//!   would show as either.
//!
//! `WANWATCH_CHAOS_KILLS` sets the number of kills (200 by default, about
//! 3 minutes), `WANWATCH_CHAOS_SEED` replays a run (the seed is printed).
//! Needs root (namespaces); without it the test says so and is skipped
//! (fails under CI, see `skip`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use wanwatch::history::HistoryDb;
use wanwatch::status::StatusFile;
use wanwatch_tests::netns::{Topology, daemon_config, in_namespace, run_daemon};
use wanwatch_tests::ntfy::{Failure, NtfyServer};
use wanwatch_tests::shelly::{Emulator, Model};
use wanwatch_tests::{DaemonProcess, skip, wait_for};

/// The host's safety cap in this test: low enough to be reached in a run,
/// so that a restart forgetting the cycles of the last hour shows.
const CAP: usize = 12;

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One period of the link being down, on the wall clock.
struct Outage {
    down_ms: u64,
    up_ms: Option<u64>,
    /// Performed "off" requests the plug had received when it began.
    offs_before: usize,
}

/// When the current life of the daemon ends.
#[derive(Clone, Copy, Debug)]
enum Aim {
    /// At a fixed instant.
    At(Instant),
    /// A little after the next log line containing the text.
    After(&'static str, Duration),
}

fn performed_offs(plug: &Emulator) -> usize {
    plug.calls()
        .iter()
        .filter(|c| c.name == "Switch.Set" && c.performed && c.params["on"] == false)
        .count()
}

/// A notification as the queue file holds it: (title, body, raised at).
type Queued = (String, String, u64);

/// Opens everything the next start will open, as it would, and returns the
/// notifications in the queue.
fn check_state(state: &Path, round: usize) -> Vec<Queued> {
    let context = |what: &str| format!("after kill {round}: {what}");
    // The status file: the host's reader, which refuses a torn file.
    StatusFile::new(state.join("status.json"))
        .read()
        .unwrap_or_else(|e| panic!("{}: {e:#}", context("the status file")));
    // Each plugin's key-value store, a whole JSON object of strings, and
    // its timers.
    if let Ok(entries) = std::fs::read_dir(state.join("plugins")) {
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let what = context(&format!("{}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".timers.json") {
                // Its timers: names and when they are due.
                serde_json::from_slice::<BTreeMap<String, Value>>(&bytes)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            } else if name.ends_with(".json") {
                serde_json::from_slice::<BTreeMap<String, String>>(&bytes)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }
    // The queue: every line whole (the daemon would skip a torn one, and
    // with it a notification).
    let mut queued = Vec::new();
    let queue = state.join(wanwatch::notify::QUEUE_FILE);
    if let Ok(text) = std::fs::read_to_string(&queue) {
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{}: {text:?}",
            context("the queue's last line is torn")
        );
        for line in text.lines() {
            let entry: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", context("a queue line")));
            if let Some(n) = entry.get("notification") {
                queued.push((
                    n["title"].as_str().unwrap().to_owned(),
                    n["body"].as_str().unwrap().to_owned(),
                    n["raised_at_ms"].as_u64().unwrap(),
                ));
            }
        }
    }
    // The history: the host's reader.
    let db = wanwatch::history::database_path(state);
    if db.exists() {
        HistoryDb::open(&db)
            .and_then(|h| h.events("wan", 0, u64::MAX, 1))
            .unwrap_or_else(|e| panic!("{}: {e}", context("the history database")));
    }
    // Nothing was found corrupt and moved aside by an earlier start.
    for dir in [state.to_path_buf(), state.join("plugins")] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().contains("corrupt"),
                "{}: {name:?}",
                context("a file was moved aside as corrupt")
            );
        }
    }
    queued
}

/// Starts the daemon; its log lines come through the returned channel and
/// are kept in `log`.
fn start(
    topology: &Topology,
    config: &Path,
    log: &Path,
    life: usize,
) -> (DaemonProcess, mpsc::Receiver<String>) {
    let mut daemon = run_daemon(
        &topology.client,
        env!("CARGO_BIN_EXE_wanwatch"),
        config,
        Stdio::piped(),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = writeln!(file, "==== life {life}");
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(file, "{line}");
            if tx.send(line).is_err() {
                // Still drained, so that the daemon never blocks on it.
                continue;
            }
        }
    });
    (daemon, rx)
}

fn kill(daemon: &mut DaemonProcess) {
    // SAFETY: kill has no memory-safety preconditions; `ip netns exec`
    // execs the daemon, so the child's pid is the daemon's.
    unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGKILL) };
    daemon.0.wait().unwrap();
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
    })
}

#[test]
fn sigkill_at_random_loses_nothing_and_repeats_nothing() {
    let topology = match Topology::create("x") {
        Ok(t) => Arc::new(t),
        Err(e) => {
            skip(&format!(
                "cannot create network namespaces (needs root): {e}"
            ));
            return;
        }
    };
    let kills = env_number("WANWATCH_CHAOS_KILLS").unwrap_or(200) as usize;
    let seed = env_number("WANWATCH_CHAOS_SEED").unwrap_or_else(wall_ms);
    eprintln!("chaos: {kills} kills, seed {seed} (WANWATCH_CHAOS_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);

    let plug = in_namespace(&topology.client, || Emulator::start(Model::PlusPlugS));
    let ntfy = in_namespace(&topology.client, NtfyServer::start);
    // Kept if the test fails, for a look at the log and the files.
    let dir = tempfile::Builder::new()
        .prefix("wanwatch-chaos-")
        .tempdir()
        .unwrap()
        .keep();
    let state = dir.join("state");
    let config = dir.join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"{start}
[devices.modem]
kind = "shelly"
address = "{plug}"

[safety]
max_cycles_per_hour = {CAP}

# The deadlines count wall time, and the machines that run this test are
# often busy building: this test is about crashes, not deadlines.
[plugins.powercycle]
devices = ["modem"]
notify = true
deadline = "2s"

[plugins.powercycle.settings]
off_seconds = 1
# Longer than the run: one cycle per outage, so any second one in an
# outage is a repeat.
boot_wait = "2h"
max_wait = "2h"
max_cycles = 1000

[plugins.notify]
notify = true
deadline = "2s"

[plugins.notify.settings]
min_gap = 0

[notify.ntfy]
server = "{ntfy}"
topic = "chaos"
"#,
            start = daemon_config(&state),
            plug = plug.url(),
            ntfy = ntfy.url(),
        ),
    )
    .unwrap();
    let log = dir.join("daemon.log");
    let status_path = state.join("status.json");

    let began = Instant::now();
    let mut outages: Vec<Outage> = Vec::new();
    let mut link_up = true;
    let mut next_flap = Instant::now() + Duration::from_secs(3);
    // Every notification seen in the queue file, and how often.
    let mut accepted: BTreeMap<Queued, usize> = BTreeMap::new();
    let mut flaps = 0;
    let mut aims: BTreeMap<&'static str, usize> = BTreeMap::new();

    for life in 0..kills {
        let (mut daemon, lines) = start(&topology, &config, &log, life);
        let spawned = Instant::now();
        let ms =
            |rng: &mut StdRng, lo: u64, hi: u64| Duration::from_millis(rng.random_range(lo..hi));
        let (name, mut aim) = match rng.random_range(0..100) {
            // Start-up: resume, queue repair, stale temp files, history open.
            0..20 => ("start-up", Aim::At(spawned + ms(&mut rng, 0, 400))),
            // Status, stores, queue and history written for a transition.
            20..55 => ("transition", Aim::After("WAN ", ms(&mut rng, 0, 40))),
            // The powercycle plugin's store, the cap's record.
            55..65 => (
                "power cycle",
                Aim::After("power-cycled", ms(&mut rng, 0, 15)),
            ),
            // The queue's rewrite once ntfy took one.
            65..75 => ("delivery", Aim::After(": delivered", ms(&mut rng, 0, 15))),
            // The status file's cadence, history commits, anything.
            _ => ("any moment", Aim::At(spawned + ms(&mut rng, 200, 2000))),
        };
        *aims.entry(name).or_default() += 1;
        // An aimed kill that sees no such line in time happens anyway.
        let give_up = spawned + Duration::from_secs(4);
        loop {
            let now = Instant::now();
            let kill_at = match aim {
                Aim::At(at) => at,
                Aim::After(..) => give_up,
            };
            if now >= kill_at {
                break;
            }
            if now >= next_flap {
                flaps += 1;
                link_up = !link_up;
                // Times taken before the change: the daemon may see it
                // before `ip` returns.
                if link_up {
                    outages.last_mut().unwrap().up_ms = Some(wall_ms());
                    topology.wan_link(true);
                    ntfy.fail(None);
                    next_flap = now + ms(&mut rng, 1000, 2500);
                } else {
                    outages.push(Outage {
                        down_ms: wall_ms(),
                        up_ms: None,
                        offs_before: performed_offs(&plug),
                    });
                    // ntfy is on the internet: unreachable while the link
                    // is down, so notifications wait in the queue.
                    ntfy.fail(Some(Failure::Unavailable));
                    topology.wan_link(false);
                    // Some blips (sick, then up), mostly outages.
                    next_flap = now
                        + if rng.random_bool(0.3) {
                            ms(&mut rng, 200, 800)
                        } else {
                            ms(&mut rng, 1400, 3000)
                        };
                }
                continue;
            }
            let wait = kill_at.min(next_flap) - now;
            match lines.recv_timeout(wait) {
                Ok(line) => {
                    if let Aim::After(text, delay) = aim
                        && line.contains(text)
                    {
                        aim = Aim::At(Instant::now() + delay);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let exit = daemon.0.wait().unwrap();
                    panic!(
                        "life {life}: the daemon exited by itself ({exit}); log in {}:\n{}",
                        log.display(),
                        tail(&log)
                    );
                }
            }
        }
        kill(&mut daemon);
        for queued in check_state(&state, life + 1) {
            *accepted.entry(queued).or_default() += 1;
        }
    }
    let chaos_time = began.elapsed();

    // The link comes back for good: the last start delivers what is left.
    if !link_up {
        outages.last_mut().unwrap().up_ms = Some(wall_ms());
        topology.wan_link(true);
        ntfy.fail(None);
    }
    let started = wall_ms();
    let (mut daemon, lines) = start(&topology, &config, &log, kills);
    // Drained so that the pipe never fills up.
    std::thread::spawn(move || lines.iter().for_each(drop));
    wait_for(
        &status_path,
        "up with an empty queue",
        Duration::from_secs(60),
        |s| {
            s["updated_at_ms"].as_u64() > Some(started)
                && s["state"] == "up"
                && s["notifications"]["queued"] == 0
        },
    );
    // SAFETY: as in `kill`.
    unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) };
    assert!(daemon.0.wait().unwrap().success());
    let left = check_state(&state, kills + 1);
    assert!(left.is_empty(), "still queued: {left:#?}");

    // Lost: accepted notifications, counted by title and body, that ntfy
    // did not receive as often (ntfy receives a late one with a line about
    // its lateness after the body).
    let received = ntfy.accepted().items();
    let mut wanted: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (title, body, _) in accepted.keys() {
        *wanted.entry((title.clone(), body.clone())).or_default() += 1;
    }
    let mut lost = 0;
    for ((title, body), count) in &wanted {
        let got = received
            .iter()
            .filter(|m| &m.title == title && m.message.starts_with(body.as_str()))
            .count();
        if got < *count {
            eprintln!("lost: {} of {title:?} / {body:?}", count - got);
            lost += count - got;
        }
    }

    // Repeated power cycles: per outage, from its start to the next one's.
    let offs = performed_offs(&plug);
    let mut repeated = Vec::new();
    for (i, outage) in outages.iter().enumerate() {
        let until = outages.get(i + 1).map_or(offs, |o| o.offs_before);
        if until - outage.offs_before > 1 {
            repeated.push((outage.down_ms, until - outage.offs_before));
        }
    }

    // Spurious transitions, in the daemon's own history.
    let history = HistoryDb::open(&wanwatch::history::database_path(&state)).unwrap();
    let events = history.events("wan", 0, u64::MAX, 1_000_000).unwrap();
    let mut spurious = Vec::new();
    let mut downs_in: BTreeMap<usize, usize> = BTreeMap::new();
    let slack = 600;
    for e in &events {
        let at = e.at_ms;
        let current = e.data["current"].as_str().unwrap_or_default();
        let within = outages
            .iter()
            .position(|o| o.down_ms <= at && at <= o.up_ms.unwrap_or(u64::MAX) + slack);
        match current {
            "down" => match within {
                Some(i) => *downs_in.entry(i).or_default() += 1,
                None => spurious.push(format!("down at {at} with the link up")),
            },
            "up" if outages
                .iter()
                .any(|o| o.down_ms + slack < at && at < o.up_ms.unwrap_or(u64::MAX)) =>
            {
                spurious.push(format!("up at {at} with the link down"));
            }
            _ => {}
        }
    }
    // One "up" per link-up period (from the link coming up to its next
    // outage): a second one means the daemon resumed "down" after the link
    // was back, and came "up" again.
    let mut ups_in: BTreeMap<usize, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.data["current"] == "up") {
        let after = outages
            .iter()
            .rposition(|o| o.up_ms.is_some_and(|up| up <= e.at_ms));
        if let Some(i) = after {
            *ups_in.entry(i).or_default() += 1;
        }
    }
    for (i, n) in ups_in {
        if n > 1 {
            spurious.push(format!(
                "{n} ups after the outage at {}",
                outages[i].down_ms
            ));
        }
    }
    for (i, n) in downs_in {
        if n > 1 {
            spurious.push(format!("{n} downs in the outage at {}", outages[i].down_ms));
        }
    }
    let downs = events
        .iter()
        .filter(|e| e.data["current"] == "down")
        .count();

    let notifications = received.len();
    eprintln!(
        "chaos: {kills} kills ({aims:?}) in {:.0?}, seed {seed}; {flaps} flaps, {} outages ({downs} \
         went down), {offs} power cycles (cap {CAP}), {} notifications accepted and seen queued, \
         {notifications} received; lost {lost}, repeated cycles {}, spurious transitions {}",
        chaos_time,
        outages.len(),
        wanted.values().sum::<usize>(),
        repeated.len(),
        spurious.len(),
    );
    let failed = format!("seed {seed}, log {}", log.display());
    assert_eq!(lost, 0, "{failed}");
    assert!(
        repeated.is_empty(),
        "repeated cycles {repeated:?}; {failed}"
    );
    assert!(
        offs <= CAP,
        "{offs} cycles, more than the cap {CAP}; {failed}"
    );
    assert!(spurious.is_empty(), "{spurious:#?}; {failed}");
    // The run did exercise what it checks.
    assert!(offs > 0 && notifications > 0 && downs > 0, "{failed}");
    let text = std::fs::read_to_string(&log).unwrap();
    for sign in [
        "corrupt",
        "is incomplete",
        "not a queued notification",
        "panicked",
    ] {
        assert!(!text.contains(sign), "the log says {sign:?}; {failed}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The end of the log, for a failure message.
fn tail(log: &PathBuf) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
