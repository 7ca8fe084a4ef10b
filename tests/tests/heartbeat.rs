//! Heartbeats from the real daemon over real HTTP on 127.0.0.1: a real
//! Prometheus Pushgateway (Debian's), emulators of Healthchecks, Uptime
//! Kuma and a watcher built from their documented APIs, and a link the
//! test cuts and restores.
//!
//! Tests wait for what the servers receive, with a deadline. The one
//! sleep shows an absence (no heartbeat while the WAN is down), which
//! only waiting can show.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wanwatch_tests::http::{Reply, Server};
use wanwatch_tests::link::Link;
use wanwatch_tests::pings::{Healthchecks, Signal, UptimeKuma};
use wanwatch_tests::pushgateway::{self, Pushgateway};
use wanwatch_tests::{DaemonProcess, skip, wait_for};

/// Long enough for a slow CI machine; reached only when a test fails.
const WAIT: Duration = Duration::from_secs(30);

/// A heartbeat sink's section, beating every second.
fn section(kind: &str, url: &str, extra: &str) -> String {
    format!(
        "\n[[heartbeat]]\nkind = \"{kind}\"\nurl = \"{url}\"\ninterval = \"1s\"\ntimeout = \"1s\"\n{extra}"
    )
}

fn daemon(dir: &Path, config: &str) -> DaemonProcess {
    let path = dir.join("wanwatch.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &path, log)
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap()
}

/// The gaps between `times`, which must be about one interval (1 s): none
/// much shorter, and on average close to it.
fn assert_every_second(what: &str, times: &[Instant]) {
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(500))
            && mean >= Duration::from_millis(800)
            && mean <= Duration::from_millis(1400),
        "{what}: heartbeats not every second: {gaps:?}"
    );
}

/// The value of `metric` for the heartbeat group job `wanwatch`, instance
/// `house`, in a scrape of the Pushgateway.
fn group_value(scrape: &str, metric: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
        let (labels, value) = rest.split_once("} ")?;
        (labels.contains("job=\"wanwatch\"") && labels.contains("instance=\"house\""))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Waits until the group's `push_time_seconds` is later than `after`;
/// returns it and the scrape that showed it.
fn wait_for_push(gateway: &Pushgateway, after: Option<f64>, what: &str) -> (f64, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let scrape = gateway.metrics();
        if let Some(at) = group_value(&scrape, "push_time_seconds").filter(|&at| Some(at) > after) {
            return (at, scrape);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{scrape}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn heartbeats_go_out_every_interval_while_the_wan_is_up_and_stop_while_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let Some(gateway) = Pushgateway::start(dir.path()) else {
        skip(&format!(
            "{} is missing (.ci/run installs prometheus-pushgateway)",
            pushgateway::BINARY
        ));
        return;
    };
    let hc = Healthchecks::start("5f1e2b9c-hc-check");
    let kuma = UptimeKuma::start("KumaPushT0ken");
    let link = Link::up();
    let config = link.daemon_config(dir.path())
        + &section("healthchecks", &hc.ping_url(), "")
        + &section("uptime-kuma", &kuma.push_url(), "")
        + &section("pushgateway", &gateway.url(), "instance = \"house\"\n");
    let status_file = dir.path().join("status.json");
    let _daemon = daemon(dir.path(), &config);
    wait_for(&status_file, "the link up", WAIT, |s| s["state"] == "up");

    let pings = hc.pings().wait_until(WAIT, |p| p.len() >= 5);
    let times: Vec<Instant> = pings.iter().map(|p| p.at).collect();
    assert_every_second("healthchecks", &times[1..]);
    for ping in &pings {
        // Success (not /fail: nothing is degraded), with the summary as log.
        assert_eq!(
            (&ping.signal, ping.method.as_str()),
            (&Signal::Success, "POST")
        );
        assert!(
            ping.body.starts_with("WAN up since ") && ping.body.contains(", loss 0 %"),
            "{ping:?}"
        );
    }
    let pushes = kuma.pushes().wait_until(WAIT, |p| p.len() >= 5);
    let times: Vec<Instant> = pushes.iter().map(|p| p.at).collect();
    assert_every_second("uptime kuma", &times[1..]);
    for push in &pushes {
        assert_eq!(push.status, "up", "{push:?}");
        assert!(push.msg.starts_with("WAN up since "), "{push:?}");
        // The round trip of the TCP probe to 127.0.0.1: a few ms at most.
        assert!(
            push.ping.is_some_and(|ms| ms > 0.0 && ms < 1000.0),
            "{push:?}"
        );
        // The URL's own `status=up&msg=OK&ping=` replaced, not repeated.
        assert_eq!(push.query.matches("status=").count(), 1, "{push:?}");
    }
    let (first_push, scrape) = wait_for_push(&gateway, None, "the first push");
    assert_eq!(
        group_value(&scrape, "wanwatch_wan_up"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        group_value(&scrape, "wanwatch_degraded"),
        Some(0.0),
        "{scrape}"
    );
    assert_eq!(
        group_value(&scrape, "wanwatch_wan_loss_ratio"),
        Some(0.0),
        "{scrape}"
    );
    assert!(
        group_value(&scrape, "wanwatch_wan_rtt_seconds").is_some_and(|s| s > 0.0 && s < 1.0),
        "{scrape}"
    );
    let since = group_value(&scrape, "wanwatch_wan_state_since_timestamp_seconds");
    assert!(since.is_some_and(|s| s <= first_push), "{scrape}");
    // The Pushgateway's own clock moves on with each push.
    wait_for_push(&gateway, Some(first_push), "a second push");

    link.cut();
    wait_for(&status_file, "the link down", WAIT, |s| {
        s["state"] == "down"
    });
    // A heartbeat under way when the state changed may still arrive.
    let down = Instant::now() + Duration::from_millis(200);
    let down_wall = unix_seconds() + 0.2;
    std::thread::sleep(Duration::from_secs(3));
    let after = |times: Vec<Instant>| times.into_iter().filter(|&at| at > down).count();
    assert_eq!(after(hc.pings().items().iter().map(|p| p.at).collect()), 0);
    assert_eq!(
        after(kuma.pushes().items().iter().map(|p| p.at).collect()),
        0
    );
    let last_push = group_value(&gateway.metrics(), "push_time_seconds");
    assert!(
        last_push.is_some_and(|at| at <= down_wall),
        "pushed while down"
    );

    link.restore();
    wait_for(&status_file, "the link up again", WAIT, |s| {
        s["state"] == "up"
    });
    let back = hc.pings().items().len();
    hc.pings().wait_until(WAIT, |p| p.len() >= back + 2);
    let back = kuma.pushes().items().len();
    kuma.pushes().wait_until(WAIT, |p| p.len() >= back + 2);
    wait_for_push(&gateway, last_push, "a push after the link came back");
}

/// A watcher that takes the site `home`'s heartbeats with its token, and
/// records them; told to, it answers 500 with a text that repeats the
/// request's path and `Authorization`, as a server that explains too much.
struct Watcher {
    server: Server,
    failing: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    heartbeats: Arc<Mutex<Vec<Value>>>,
}

impl Watcher {
    fn start(token: &'static str) -> Watcher {
        let failing = Arc::new(AtomicBool::new(true));
        let requests = Arc::new(AtomicUsize::new(0));
        let heartbeats = Arc::new(Mutex::new(Vec::new()));
        let (f, r, h) = (failing.clone(), requests.clone(), heartbeats.clone());
        let server = Server::start(move |request| {
            r.fetch_add(1, Ordering::SeqCst);
            let authorization = request.header("authorization").unwrap_or_default();
            if f.load(Ordering::SeqCst) {
                let echo = format!("no site at {} for {authorization}", request.path);
                return Reply::Response {
                    status: 500,
                    headers: vec![],
                    body: echo.into_bytes(),
                };
            }
            if request.method != "POST"
                || request.path != "/api/v1/sites/home/heartbeat"
                || authorization != format!("Bearer {token}")
            {
                return Reply::json(
                    401,
                    r#"{"error":"unknown site or wrong token","status":401}"#,
                );
            }
            match serde_json::from_slice(&request.body) {
                Ok(heartbeat) => {
                    h.lock().unwrap().push(heartbeat);
                    Reply::status(204)
                }
                Err(_) => Reply::json(400, r#"{"error":"not a heartbeat","status":400}"#),
            }
        });
        Watcher {
            server,
            failing,
            requests,
            heartbeats,
        }
    }
}

#[test]
fn a_failing_sink_is_in_the_status_logged_once_and_no_secret_leaks() {
    const TOKEN: &str = "s1te-T0ken-home";
    const UUID: &str = "S3cret-check-uuid";
    let watcher = Watcher::start(TOKEN);
    // Healthchecks behind a proxy that fails, repeating the secret path.
    let proxy = Server::start(|request| Reply::Response {
        status: 502,
        headers: vec![],
        body: format!("upstream down for {}", request.path).into_bytes(),
    });
    let link = Link::up();
    let dir = tempfile::tempdir().unwrap();
    let config = link.daemon_config(dir.path())
        + &section(
            "wanwatch",
            &watcher.server.url(),
            &format!("site = \"home\"\ntoken = \"{TOKEN}\"\n"),
        )
        + &section("healthchecks", &format!("{}/ping/{UUID}", proxy.url()), "");
    let status_file = dir.path().join("status.json");
    let mut daemon = daemon(dir.path(), &config);

    let failing = |s: &Value, i: usize| s["heartbeats"][i]["failing"].as_str().map(str::to_owned);
    let status = wait_for(&status_file, "both sinks failing", WAIT, |s| {
        failing(s, 0).is_some() && failing(s, 1).is_some()
    });
    let watcher_failure = failing(&status, 0).unwrap();
    assert!(
        watcher_failure.starts_with(&format!(
            "heartbeat[0] wanwatch {}: HTTP 500: no site at /api/v1/sites/home/heartbeat for Bearer <redacted>",
            watcher.server.url()
        )),
        "{watcher_failure}"
    );
    assert_eq!(
        failing(&status, 1).unwrap(),
        format!(
            "heartbeat[1] healthchecks {}/…: HTTP 502: upstream down for <redacted>",
            proxy.url()
        )
    );
    // Several beats fail; the log says so once per sink.
    let started = Instant::now();
    while watcher.requests.load(Ordering::SeqCst) < 4 {
        assert!(
            started.elapsed() < WAIT,
            "the watcher is not sent heartbeats"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = log(dir.path());
    assert_eq!(
        text.matches("heartbeat failed: heartbeat[0]").count(),
        1,
        "{text}"
    );
    assert_eq!(
        text.matches("heartbeat failed: heartbeat[1]").count(),
        1,
        "{text}"
    );

    // `wanwatch status` shows it too.
    let out = Command::new(env!("CARGO_BIN_EXE_wanwatch"))
        .args(["status", "--config"])
        .arg(dir.path().join("wanwatch.toml"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("\nheartbeats:\n")
            && shown.contains("heartbeat[1] healthchecks")
            && shown.contains("0 sent, FAILING: "),
        "{shown}"
    );

    // The watcher recovers: one line says so, and the heartbeats carry
    // the site's state and summary.
    watcher.failing.store(false, Ordering::SeqCst);
    let status = wait_for(&status_file, "the watcher taking heartbeats", WAIT, |s| {
        failing(s, 0).is_none() && s["heartbeats"][0]["sent"].as_u64() >= Some(1)
    });
    assert!(status["heartbeats"][0]["last_ok_at_ms"].as_u64().is_some());
    let heartbeat = watcher.heartbeats.lock().unwrap()[0].clone();
    assert_eq!(heartbeat["state"], "up", "{heartbeat}");
    assert_eq!(heartbeat["interval_s"], 1, "{heartbeat}");
    assert_eq!(
        heartbeat["version"],
        env!("CARGO_PKG_VERSION"),
        "{heartbeat}"
    );
    assert_eq!(heartbeat["summary"]["loss_percent"], 0.0, "{heartbeat}");
    assert!(
        heartbeat["summary"]["rtt_ms"].as_f64().is_some(),
        "{heartbeat}"
    );
    let text = log(dir.path());
    assert_eq!(
        text.matches("heartbeats get through again").count(),
        1,
        "{text}"
    );

    // SIGTERM: the daemon's last status and log are complete.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) };
    assert!(daemon.0.wait().unwrap().success());
    let text = log(dir.path());
    let status = std::fs::read_to_string(&status_file).unwrap();
    for secret in [TOKEN, UUID] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
        assert!(
            !status.contains(secret),
            "{secret} in the status:\n{status}"
        );
        assert!(
            !shown.contains(secret),
            "{secret} in `wanwatch status`:\n{shown}"
        );
    }
}
