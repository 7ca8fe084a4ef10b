//! `GET /metrics` on the live daemon: the values after an outage and a
//! recovery, both text formats, and promtool's verdict on the output and
//! on the alert rules of docs/prometheus/.
//!
//! The link is a TCP target on 127.0.0.1, closed at first (down from the
//! first rounds), then opened; the modem's plug is the Shelly emulator on
//! loopback. No ICMP, no root.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wanwatch_tests::link::Link;
use wanwatch_tests::shelly::{Emulator, Model};
use wanwatch_tests::{DaemonProcess, skip, wait_for};

const WAIT: Duration = Duration::from_secs(30);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A port on 127.0.0.1 that nothing listens on (yet).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

fn write_config(dir: &Path, link: &Link, api: u16, plug: &Emulator) -> PathBuf {
    let config = dir.join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"{start}
[http]
listen = "127.0.0.1:{api}"

[devices.modem]
kind = "shelly"
address = "{plug}"

[plugins.powercycle]
devices = ["modem"]

# One cycle: the next would come after a boot wait longer than the test.
[plugins.powercycle.settings]
off_seconds = 1
boot_wait = "10m"
max_wait = "10m"
"#,
            start = link.daemon_config(dir),
            plug = plug.url(),
        ),
    )
    .unwrap();
    config
}

/// `GET /metrics` with `accept`: the content type and the body.
fn scrape(port: u16, accept: &str) -> (String, String) {
    get(port, "/metrics", accept)
}

/// `GET path` with `accept`: the content type and the body of a 200.
fn get(port: u16, path: &str, accept: &str) -> (String, String) {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the API");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .expect("a content type");
    (content_type, body.to_owned())
}

/// Every sample, by its series (name and labels as written).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample: series and value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `promtool` with `args` and `stdin`; None when it is not installed.
fn promtool(args: &[&str], stdin: &str) -> Option<std::process::Output> {
    let child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip("promtool is missing (.ci/run installs the prometheus package)");
            return None;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

fn assert_success(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "promtool rejects {what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn metrics_follow_an_outage_and_a_recovery() {
    let link = Link::up();
    link.cut();
    let api = free_port();
    let plug = Emulator::start(Model::PlusPlugS);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &link, api, &plug);
    let status_file = dir.path().join("status.json");
    let _daemon = DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &config, Stdio::null());

    let status = wait_for(&status_file, "the WAN down, the modem cycled", WAIT, |s| {
        s["state"] == "down"
            && s["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["outcome"] == "done"))
    });
    let (content_type, text) = scrape(api, "*/*");
    assert_eq!(content_type, OPENMETRICS);
    assert!(text.ends_with("# EOF\n"), "{text}");
    let down = samples(&text);
    let at = |series: &str| down.get(series).copied();
    assert_eq!(
        at(r#"wanwatch_wan_state{state="down"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(at(r#"wanwatch_wan_state{state="up"}"#), Some(0.0));
    let since = status["since_ms"].as_f64().unwrap() / 1000.0;
    assert_eq!(
        at("wanwatch_wan_state_since_timestamp_seconds"),
        Some(since)
    );
    assert_eq!(
        at(r#"wanwatch_wan_transitions_total{from="up",to="sick"}"#),
        Some(1.0)
    );
    assert_eq!(
        at(r#"wanwatch_wan_transitions_total{from="sick",to="down"}"#),
        Some(1.0)
    );
    assert_eq!(at(r#"wanwatch_outages_total{cause="wan"}"#), Some(1.0));
    assert_eq!(
        at(r#"wanwatch_power_cycles_total{device="modem",outcome="done"}"#),
        Some(1.0)
    );
    assert!(at(r#"wanwatch_probes_sent_total{target="internet"}"#) >= Some(3.0));
    assert_eq!(
        at(r#"wanwatch_probes_answered_total{target="internet"}"#),
        None
    );
    let last_round = at("wanwatch_last_round_timestamp_seconds").unwrap();
    assert!(
        (now_s() - last_round).abs() < 10.0,
        "last round at {last_round}"
    );
    // Told of up → sick and sick → down, at least.
    assert!(at(r#"wanwatch_plugin_callbacks_total{plugin="powercycle"}"#) >= Some(2.0));
    assert_eq!(
        at(r#"wanwatch_plugin_failures_total{plugin="powercycle"}"#),
        Some(0.0)
    );
    assert!(at(r#"wanwatch_plugin_callback_seconds_total{plugin="powercycle"}"#) > Some(0.0));
    assert_eq!(
        at(r#"wanwatch_plugin_quarantined{plugin="powercycle"}"#),
        Some(0.0)
    );
    assert_eq!(at("wanwatch_dry_run"), Some(0.0));
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        at(&format!(r#"wanwatch_build_info{{version="{version}"}}"#)),
        Some(1.0)
    );

    // The link comes back: the kernel completes the probes' handshakes.
    link.restore();
    wait_for(&status_file, "the WAN up", WAIT, |s| s["state"] == "up");
    let (_, text) = scrape(api, OPENMETRICS);
    let up = samples(&text);
    let at = |series: &str| up.get(series).copied();
    assert_eq!(at(r#"wanwatch_wan_state{state="up"}"#), Some(1.0), "{text}");
    assert_eq!(
        at(r#"wanwatch_wan_transitions_total{from="down",to="up"}"#),
        Some(1.0)
    );
    assert_eq!(at(r#"wanwatch_outages_total{cause="wan"}"#), Some(1.0));
    let answered = at(r#"wanwatch_probes_answered_total{target="internet"}"#).unwrap();
    assert!(answered >= 1.0);
    assert_eq!(
        at(r#"wanwatch_probe_rtt_seconds_count{target="internet"}"#),
        Some(answered)
    );
    // The quality windows, from the status: no threshold is set, so the
    // link is never degraded; the window started afresh when the WAN came
    // back, and loopback answers in well under a second.
    assert_eq!(at("wanwatch_link_degraded"), Some(0.0), "{text}");
    let loss = at(r#"wanwatch_quality_loss_ratio{target="internet"}"#).unwrap();
    assert!((0.0..=1.0).contains(&loss), "{loss}");
    assert!(at(r#"wanwatch_quality_rtt_p50_seconds{target="internet"}"#) < Some(1.0));
    // Loopback answers in well under a second.
    assert_eq!(
        at(r#"wanwatch_probe_rtt_seconds_bucket{le="1.0",target="internet"}"#),
        Some(answered)
    );

    // What promtool reads: the Prometheus text format, asked for alone.
    let (content_type, text) = scrape(api, "text/plain");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(
        samples(&text).get(r#"wanwatch_wan_state{state="up"}"#),
        Some(&1.0)
    );
    if let Some(output) = promtool(&["check", "metrics"], &text) {
        assert_success(&output, &format!("the metrics:\n{text}"));
    }
}

/// A link whose every round trip reaches the threshold (1 µs: loopback
/// answers slower) is degraded once its window (2 s: 4 probes) is full:
/// the change is in the status, the metrics and the history's API.
#[test]
fn a_degraded_link_shows_in_the_status_the_metrics_and_the_history() {
    let link = Link::up();
    let api = free_port();
    let plug = Emulator::start(Model::PlusPlugS);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &link, api, &plug);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "down_after = \"1s\"\n",
        "down_after = \"1s\"\nquality_window = \"2s\"\ndegraded_rtt = \"1us\"\n",
    );
    assert!(text.contains("degraded_rtt"), "{text}");
    std::fs::write(&config, text).unwrap();
    let status_file = dir.path().join("status.json");
    let _daemon = DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &config, Stdio::null());

    let status = wait_for(&status_file, "the link degraded", WAIT, |s| {
        s["quality"]["degraded"] == true
    });
    assert_eq!(status["state"], "up");
    assert_eq!(status["quality"]["degraded_rtt_us"], 1);
    assert!(
        status["quality"]["rtt_p50_us"].as_u64() >= Some(1),
        "{status}"
    );
    assert_eq!(status["quality"]["targets"][0]["target"], "internet");
    let (_, text) = scrape(api, OPENMETRICS);
    assert_eq!(
        samples(&text).get("wanwatch_link_degraded"),
        Some(&1.0),
        "{text}"
    );
    // The observers are told after the status is written: the history
    // records it a moment later.
    let start = std::time::Instant::now();
    let events = loop {
        let (content_type, body) = get(api, "/api/v1/quality", "application/json");
        assert_eq!(content_type, "application/json");
        let events: serde_json::Value = serde_json::from_str(&body).unwrap();
        if events.as_array().is_some_and(|e| !e.is_empty()) || start.elapsed() > WAIT {
            break events;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let event = &events[0];
    assert_eq!(event["kind"], "quality", "{events}");
    assert_eq!(event["data"]["degraded"], true, "{events}");
    assert_eq!(event["data"]["wan"], "up", "{events}");
}

/// The rules are valid, and fire when they should: `promtool test rules`
/// runs docs/prometheus/<name>.rules.test.yml against each
/// <name>.rules.yml (the daemon's metrics, and the heartbeat's dead man's
/// switch).
#[test]
fn the_documented_alert_rules_are_valid_and_fire_when_they_should() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus");
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    for rules in ["wanwatch", "heartbeat"] {
        let Some(output) = promtool(
            &["check", "rules", &file(&format!("{rules}.rules.yml"))],
            "",
        ) else {
            return;
        };
        assert_success(&output, &format!("the {rules} rules"));
        let test = file(&format!("{rules}.rules.test.yml"));
        let output = promtool(&["test", "rules", &test], "").unwrap();
        assert_success(&output, &format!("the {rules} rules' tests"));
    }
}
