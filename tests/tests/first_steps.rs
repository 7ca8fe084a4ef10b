//! What someone trying wanwatch first sees: with no plug and no plugins the
//! daemon is a dry run that logs the power cycle it stands for, its log in
//! a file is plain text, and plugins run in the order of their sections.
//!
//! The link is a TCP target on a closed port of 127.0.0.1: down from the
//! first round. No ICMP, no root.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wanwatch_tests::{DaemonProcess, plugin_wasm, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// A port on 127.0.0.1 that nothing listens on: a TCP probe of it fails.
fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A config probing a closed port every 500 ms, down after 1 s, its HTTP
/// API on a port of its own (tests run side by side), with `rest`
/// appended; no [devices].
fn write_config(dir: &Path, rest: &str) -> PathBuf {
    let config = dir.join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{state}\"\n\
             [probe]\ninterval = \"500ms\"\ntimeout = \"300ms\"\ndown_after = \"1s\"\n\
             [[targets]]\nname = \"internet\"\naddress = \"127.0.0.1\"\nkind = \"tcp\"\nport = {port}\n\
             [http]\nlisten = \"127.0.0.1:{api}\"\n\
             {rest}",
            state = dir.display(),
            port = closed_port(),
            api = closed_port(),
        ),
    )
    .unwrap();
    config
}

/// Runs the daemon on `config`, its log (stderr) going to a file, until
/// the log contains `until`; stops it and returns the log.
fn log_until(config: &Path, until: &str) -> String {
    let log = config.with_file_name("wanwatch.log");
    let daemon = DaemonProcess(
        Command::new(env!("CARGO_BIN_EXE_wanwatch"))
            .args(["run", "--config"])
            .arg(config)
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the daemon"),
    );
    let start = Instant::now();
    let read = || String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
    while !read().contains(until) {
        assert!(
            start.elapsed() < WAIT,
            "no `{until}` in the log after {WAIT:?}:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(daemon);
    read()
}

/// Stops the daemon as systemd does, with SIGTERM, and waits for it.
fn stop(mut daemon: DaemonProcess) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.0.id() as libc::pid_t, libc::SIGTERM) };
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "the daemon exited with {status}");
}

#[test]
fn without_a_plug_the_builtin_policy_says_what_it_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let log = log_until(&config, "would power-cycle modem for 10 s");
    assert!(log.contains("acting as dry run"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let log = log_until(&config, "WAN down");
    assert!(!log.contains('\x1b'), "{log:?}");
}

#[test]
fn plugins_run_in_the_order_of_their_sections() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = plugin_wasm("probe-plugin");
    let mut sections = String::new();
    for name in ["zeta", "alpha"] {
        let file = dir.path().join(format!("{name}.wasm"));
        std::fs::copy(&wasm, &file).unwrap();
        sections += &format!("[plugins.{name}]\nfile = \"{}\"\n", file.display());
    }
    let config = write_config(dir.path(), &sections);

    let check = Command::new(env!("CARGO_BIN_EXE_wanwatch"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    let listed: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("plugin "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, ["zeta", "alpha"], "{out}");

    let daemon = DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &config, Stdio::null());
    let status = wait_for(&dir.path().join("status.json"), "the plugins", WAIT, |s| {
        s["plugins"].as_array().is_some_and(|p| p.len() == 2)
    });
    let running: Vec<&str> = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(running, ["zeta", "alpha"]);
    stop(daemon);
}

#[test]
fn a_plugin_that_traps_while_starting_is_refused_with_its_reason_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[plugins.boom]\nfile = \"{}\"\n",
            plugin_wasm("init-trap").display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wanwatch"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .expect("run the daemon");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 101 is a panic; a refused plugin is an error exit.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("init-trap fails while it is being instantiated"),
        "{stderr}"
    );
    // The guest's own panic message is its reason; the host must not panic.
    assert!(!stderr.contains("thread 'main'"), "{stderr}");
}
