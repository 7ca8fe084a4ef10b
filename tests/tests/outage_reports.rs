//! Outage reports from the live daemon, once the link has been back for
//! `[reports] stable_for`: to a webhook with `reports = true` and to a
//! receiver of the watcher protocol (an emulator here, built from
//! `wanwatch::watcher::protocol`), through the durable queue.
//!
//! The link is a TCP target on 127.0.0.1 that the test cuts and restores;
//! the plug is the Shelly emulator, cycled by the built-in `powercycle`.

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wanwatch::outage_report::CURSOR_FILE;
use wanwatch::watcher::protocol::OutageReport;
use wanwatch_tests::http::{Reply, Request, Server};
use wanwatch_tests::link::Link;
use wanwatch_tests::shelly::{Emulator, Model};
use wanwatch_tests::{DaemonProcess, Recorder, wait_for};

const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "site-token-7f3a9c41";

/// A daemon of `config`, its log appended to `dir/daemon.log`.
fn daemon(dir: &Path, config: &str) -> DaemonProcess {
    let path = dir.join("wanwatch.toml");
    std::fs::write(&path, config).unwrap();
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .unwrap();
    DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &path, log)
}

fn state_is(status: &Path, state: &str) {
    wait_for(status, &format!("the link {state}"), WAIT, |s| {
        s["state"] == state
    });
}

/// Cuts the link until the daemon says down, then restores it until it
/// says up; returns when the test saw it up.
fn outage(link: &Link, status: &Path) -> Instant {
    link.cut();
    state_is(status, "down");
    link.restore();
    state_is(status, "up");
    Instant::now()
}

/// Polls `f` until it gives something, for what the daemon writes to files.
fn until<T>(what: &str, f: impl Fn() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = f() {
            return found;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A webhook receiver that answers 200 and records each document with the
/// instant it arrived.
fn webhook() -> (Server, Arc<Recorder<(Instant, Value)>>) {
    let received = Arc::new(Recorder::default());
    let recorder = received.clone();
    let server = Server::start(move |request| {
        let document = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        recorder.push((Instant::now(), document));
        Reply::status(200)
    });
    (server, received)
}

fn reports(received: &[(Instant, Value)]) -> Vec<(Instant, Value)> {
    received
        .iter()
        .filter(|(_, d)| d["event"] == "outage-report")
        .cloned()
        .collect()
}

/// The watcher's side of the protocol for site `home` with [`TOKEN`]:
/// heartbeats get 204; a report 201 `{"stored":"new"}` the first time its
/// id is seen, 200 `{"stored":"duplicate"}` after; a wrong token 401.
struct WatcherEmulator {
    server: Server,
    /// Every report POST with the right token.
    posts: Arc<Recorder<Request>>,
    stored: Arc<Mutex<BTreeSet<String>>>,
}

impl WatcherEmulator {
    fn start_on(addr: SocketAddr) -> WatcherEmulator {
        let posts = Arc::new(Recorder::default());
        let stored = Arc::new(Mutex::new(BTreeSet::new()));
        let (recorder, ids) = (posts.clone(), stored.clone());
        let server = Server::start_on(addr, move |request: &Request| {
            if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
                return Reply::json(
                    401,
                    r#"{"error":"unknown site or wrong token","status":401}"#,
                );
            }
            match (request.method.as_str(), request.path.as_str()) {
                ("POST", "/api/v1/sites/home/heartbeat") => Reply::status(204),
                ("POST", "/api/v1/sites/home/reports") => {
                    let Ok(report) = serde_json::from_slice::<OutageReport>(&request.body) else {
                        return Reply::json(400, r#"{"error":"not a report","status":400}"#);
                    };
                    // Stored before it is seen: a test that saw the post
                    // finds it stored.
                    let new = ids.lock().unwrap().insert(report.id);
                    recorder.push(request.clone());
                    if new {
                        Reply::json(201, r#"{"stored":"new"}"#)
                    } else {
                        Reply::json(200, r#"{"stored":"duplicate"}"#)
                    }
                }
                _ => Reply::json(404, r#"{"error":"not found","status":404}"#),
            }
        })
        .unwrap();
        WatcherEmulator {
            server,
            posts,
            stored,
        }
    }

    fn reports(&self) -> Vec<OutageReport> {
        self.posts
            .items()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }

    fn config(&self) -> String {
        heartbeat_config(&self.server.url())
    }
}

fn heartbeat_config(url: &str) -> String {
    format!(
        "\n[[heartbeat]]\nkind = \"wanwatch\"\nurl = \"{url}\"\nsite = \"home\"\ntoken = \"{TOKEN}\"\n"
    )
}

/// The link's daemon config with `[reports] stable_for` and `sinks`.
fn config(link: &Link, dir: &Path, stable_for: &str, sinks: &str) -> String {
    format!(
        "{}\n[reports]\nstable_for = \"{stable_for}\"\n{sinks}",
        link.daemon_config(dir)
    )
}

fn ms(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not a number of ms: {v}"))
}

#[test]
fn a_webhook_with_reports_gets_one_report_per_outage_with_cause_cycles_and_figures() {
    let link = Link::up();
    let plug = Emulator::start(Model::PlusPlugS);
    let (hook, received) = webhook();
    let (plain, plain_received) = webhook();
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status.json");
    let sinks = format!(
        r#"
[devices.modem]
kind = "shelly"
address = "{plug}"

[plugins.powercycle]
devices = ["modem"]

[plugins.powercycle.settings]
off_seconds = 1

[[notify.webhook]]
url = "{hook}/reports"
reports = true

[[notify.webhook]]
url = "{plain}/plain"
"#,
        plug = plug.url(),
        hook = hook.url(),
        plain = plain.url(),
    );
    let _daemon = daemon(dir.path(), &config(&link, dir.path(), "2s", &sinks));
    state_is(&status, "up");

    link.cut();
    state_is(&status, "down");
    // The modem is cycled, and the link comes back after it.
    wait_for(&status, "a power cycle done", WAIT, |s| {
        s["actions"].as_array().is_some_and(|actions| {
            actions
                .iter()
                .any(|a| a["action"] == "power-cycle" && a["outcome"] == "done")
        })
    });
    link.restore();
    state_is(&status, "up");

    let first = received.wait_until(WAIT, |r| reports(r).len() == 1);
    let report = &reports(&first)[0].1;
    assert_eq!(report["cause"], "wan", "{report:#}");
    assert!(
        report["evidence"]
            .as_str()
            .unwrap()
            .contains("internet targets"),
        "{report:#}"
    );
    let started = ms(&report["started_at_ms"]);
    assert_eq!(report["id"], format!("outage-{started}"));
    assert!(started < ms(&report["down_at_ms"]), "{report:#}");
    assert!(ms(&report["down_at_ms"]) < ms(&report["ended_at_ms"]));
    assert_eq!(
        ms(&report["ended_at_ms"]) - started,
        ms(&report["duration_ms"])
    );
    // Sick for `down_after` (1 s) before down, then down until the cycle
    // was done and a round answered.
    assert!(ms(&report["duration_ms"]) > 1_000, "{report:#}");
    let cycles = report["power_cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 1, "{report:#}");
    assert_eq!(cycles[0]["device"], "modem");
    assert_eq!(cycles[0]["outcome"], "done");
    assert_eq!(report["fixed_by_cycle"], 1);
    // The one target: answering before and after, silent during.
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{report:#}");
    let target = &targets[0];
    assert_eq!(target["name"], "internet");
    let (before, during, after) = (&target["before"], &target["during"], &target["after"]);
    // A probe is timed from when it was sent, the outage from the round
    // that judged it: the first unanswered probe may fall just before.
    assert!(ms(&before["answered"]) > 0, "{report:#}");
    assert!(
        ms(&before["sent"]) - ms(&before["answered"]) <= 1,
        "{report:#}"
    );
    assert!(before["rtt_mean_ms"].as_f64().is_some(), "{report:#}");
    assert!(ms(&during["sent"]) >= 3, "{report:#}");
    assert!(
        during["loss_percent"].as_f64().unwrap() > 50.0,
        "{report:#}"
    );
    assert!(ms(&after["answered"]) > 0, "{report:#}");
    assert!(report["host"].as_str().is_some_and(|h| !h.is_empty()));

    // A second outage: one more report, of that outage.
    outage(&link, &status);
    let both = reports(&received.wait_until(WAIT, |r| reports(r).len() == 2));
    let second = &both[1].1;
    assert!(ms(&second["started_at_ms"]) > ms(&report["ended_at_ms"]));
    assert_ne!(second["id"], report["id"]);

    // The webhook without `reports = true` got the notifications only, and
    // the queue holds nothing for it.
    wait_for(&status, "the queue empty", WAIT, |s| {
        s["notifications"]["queued"] == 0
    });
    assert!(
        reports(&plain_received.items()).is_empty(),
        "{:#?}",
        plain_received.items()
    );
    assert_eq!(reports(&received.items()).len(), 2);
}

#[test]
fn a_flap_shorter_than_stable_for_delays_the_report() {
    let link = Link::up();
    let (hook, received) = webhook();
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status.json");
    let hook = format!(
        "[[notify.webhook]]\nurl = \"{}/\"\nreports = true\n",
        hook.url()
    );
    let config = config(&link, dir.path(), "4s", &hook);
    let _daemon = daemon(dir.path(), &config);
    state_is(&status, "up");

    outage(&link, &status);
    // Back less than `stable_for` ago: down again.
    link.cut();
    state_is(&status, "down");
    assert!(
        reports(&received.items()).is_empty(),
        "a report left before the link was stable: {:#?}",
        received.items()
    );
    link.restore();
    state_is(&status, "up");
    let back = Instant::now();

    let got = reports(&received.wait_until(WAIT, |r| reports(r).len() == 2));
    // Both once the link had been up for 4 s after the second outage (less
    // the status file's and the test's lag).
    for (arrived, _) in &got {
        let waited = arrived.duration_since(back);
        assert!(waited >= Duration::from_secs(3), "sent {waited:?} after up");
    }
    let (first, second) = (&got[0].1, &got[1].1);
    assert!(
        ms(&first["ended_at_ms"]) <= ms(&second["started_at_ms"]),
        "{got:#?}"
    );
    assert_ne!(first["id"], second["id"]);
}

#[test]
fn a_watcher_gets_the_report_with_its_token_and_a_restart_does_not_send_it_again() {
    let link = Link::up();
    let watcher = WatcherEmulator::start_on((Ipv4Addr::LOCALHOST, 0).into());
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status.json");
    let config = config(&link, dir.path(), "2s", &watcher.config());
    let mut first = daemon(dir.path(), &config);
    let shown = wait_for(&status, "the link up", WAIT, |s| s["state"] == "up");
    // The watcher is a sink of the queue, named without its token.
    let sinks = shown["notifications"]["sinks"].as_array().unwrap();
    assert_eq!(
        sinks[0]["name"],
        format!("heartbeat[0] wanwatch {} reports", watcher.server.url())
    );

    outage(&link, &status);
    watcher.posts.wait_until(WAIT, |p| p.len() == 1);
    let report = &watcher.reports()[0];
    assert_eq!(report.id, format!("outage-{}", report.started_at_ms));
    assert_eq!(report.cause, "wan");
    assert!(report.power_cycles.iter().all(|c| c.outcome == "dry-run"));
    wait_for(&status, "the report delivered", WAIT, |s| {
        s["notifications"]["sinks"][0]["delivered"] == 1
    });

    // SIGTERM, as systemd stops it.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(first.0.id() as libc::pid_t, libc::SIGTERM) };
    assert!(first.0.wait().unwrap().success());
    let _second = daemon(dir.path(), &config);
    state_is(&status, "up");
    // The next outage's report comes after whatever the restart would
    // have sent: the first is not among them.
    outage(&link, &status);
    watcher.posts.wait_until(WAIT, |p| p.len() >= 2);
    let ids: Vec<String> = watcher.reports().into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(watcher.stored.lock().unwrap().len(), 2);

    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(log.contains("outage report"), "{log}");
    assert!(!log.contains(TOKEN), "the token is in the log: {log}");
    let shown = std::fs::read_to_string(&status).unwrap();
    assert!(!shown.contains(TOKEN), "the token is in the status");
}

#[test]
fn a_report_queued_while_the_watcher_is_away_arrives_after_a_kill_and_restart() {
    let link = Link::up();
    // A port nothing listens on yet: the watcher is away.
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status.json");
    let config = config(
        &link,
        dir.path(),
        "2s",
        &heartbeat_config(&format!("http://{addr}")),
    );
    let mut first = daemon(dir.path(), &config);
    state_is(&status, "up");
    outage(&link, &status);

    // Queued (on disk), and the cursor moved past it.
    let queue = dir.path().join("notify-queue.jsonl");
    let queued: OutageReport = until("the report in the queue file", || {
        let text = std::fs::read_to_string(&queue).ok()?;
        let line: Value = serde_json::from_str(text.lines().next()?).ok()?;
        serde_json::from_value(line.get("report")?.clone()).ok()
    });
    until("the cursor past the report", || {
        let cursor: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CURSOR_FILE)).ok()?).ok()?;
        (cursor["reported_through_ms"] == queued.started_at_ms).then_some(())
    });
    wait_for(&status, "the watcher failing", WAIT, |s| {
        s["notifications"]["sinks"][0]["failing"].is_string()
    });
    first.0.kill().unwrap();
    first.0.wait().unwrap();

    let watcher = WatcherEmulator::start_on(addr);
    let _second = daemon(dir.path(), &config);
    watcher.posts.wait_until(WAIT, |p| !p.is_empty());
    wait_for(&status, "the queue empty", WAIT, |s| {
        s["notifications"]["queued"] == 0
    });
    // Once, and the very report that was queued.
    assert_eq!(watcher.reports(), [queued]);
}
