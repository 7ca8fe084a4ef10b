//! The live daemon keeps the config's secrets out of its log and status
//! file, even when a server repeats them in its error answers. It probes a
//! closed TCP port on 127.0.0.1 (no root needed) so that the link goes down
//! and the built-in `notify` policy sends "WAN down".

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use wanwatch_tests::http::{Reply, Server};
use wanwatch_tests::ntfy::{Failure, NtfyServer};
use wanwatch_tests::{DaemonProcess, wait_for};

const TOPIC: &str = "wan-topic-Xq7Zr";
const TOKEN: &str = "tk_Xq7ZrVb2kP9sLm4Tn8Wd1Yc6Hj3";
const HOOK_TOKEN: &str = "hookXq7ZrVb2kP9s";
const HEADER_TOKEN: &str = "hdrXq7ZrVb2kP9s";

#[test]
fn secrets_echoed_by_servers_stay_out_of_the_log_and_the_status() {
    let ntfy = NtfyServer::start();
    ntfy.fail(Some(Failure::Echo));
    // A webhook receiver that repeats the path and headers it was sent.
    let hook = Server::start(|request| Reply::Response {
        status: 400,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: format!(
            "no hook at {} for {:?}",
            request.path,
            request.header("authorization")
        )
        .into_bytes(),
    });
    // A port nothing listens on: the only target fails, the link goes down.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n\
             [probe]\ninterval = \"200ms\"\ntimeout = \"100ms\"\ndown_after = \"500ms\"\n\
             [[targets]]\nname = \"closed\"\naddress = \"127.0.0.1\"\nkind = \"tcp\"\nport = {closed}\n\
             [notify.ntfy]\nserver = \"{}\"\ntopic = \"{TOPIC}\"\ntoken = \"{TOKEN}\"\n\
             [[notify.webhook]]\nurl = \"{}/hooks/{HOOK_TOKEN}\"\n\
             headers = {{ Authorization = \"Bearer {HEADER_TOKEN}\" }}\n",
            dir.path().display(),
            ntfy.url(),
            hook.url(),
        ),
    )
    .unwrap();
    let log = dir.path().join("wanwatch.log");
    let daemon = DaemonProcess(
        Command::new(env!("CARGO_BIN_EXE_wanwatch"))
            .args(["--log-level", "debug", "run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the daemon"),
    );

    let status = wait_for(
        &dir.path().join("status.json"),
        "both sinks failing",
        Duration::from_secs(30),
        |s| {
            let sinks = s["notifications"]["sinks"].as_array();
            sinks.is_some_and(|sinks| {
                sinks.len() == 2 && sinks.iter().all(|s| s["failing"].is_string())
            })
        },
    );
    drop(daemon);
    // The servers did echo the secrets...
    let requests = ntfy.requests().items();
    assert!(
        requests
            .iter()
            .any(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}"))),
        "{requests:?}"
    );
    let failing: Vec<&str> = status["notifications"]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["failing"].as_str())
        .collect();
    assert!(
        failing.iter().all(|f| f.contains("<redacted>")),
        "{failing:?}"
    );
    // ...and neither the status nor the log repeats them.
    let status = status.to_string();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("WAN down"), "{log}");
    for secret in [TOPIC, TOKEN, HOOK_TOKEN, HEADER_TOKEN] {
        assert!(!status.contains(secret), "{secret} in the status: {status}");
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}
