//! The live daemon judging the link by TCP, HTTP and DNS probes of servers
//! the test runs on 127.0.0.1: a resolver that starts failing takes the
//! link down (with `min_ok` counting it), and brings it back when it
//! answers again. No ICMP, so no root needed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use wanwatch_tests::{DaemonProcess, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// Serves every connection on `listener` in a thread: reads the request
/// head, answers `answer`, closes.
fn serve(listener: TcpListener, answer: &'static [u8]) {
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut head = Vec::new();
            let mut byte = [0];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let _ = stream.write_all(answer);
        }
    });
}

/// A resolver that answers NOERROR while `working`, SERVFAIL otherwise.
fn resolver(socket: UdpSocket, working: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut message = [0; 512];
        while let Ok((n, from)) = socket.recv_from(&mut message) {
            let mut answer = message[..n.max(12)].to_vec();
            answer[2] |= 0x80;
            answer[3] = if working.load(Ordering::SeqCst) {
                0x80
            } else {
                0x82
            };
            let _ = socket.send_to(&answer, from);
        }
    });
}

fn answered(status: &Value) -> Vec<bool> {
    status["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["ok"].as_bool().unwrap_or(false))
        .collect()
}

#[test]
fn a_failing_resolver_takes_the_link_down_and_back() {
    let localhost = (Ipv4Addr::LOCALHOST, 0);
    let tcp = TcpListener::bind(localhost).unwrap();
    let http = TcpListener::bind(localhost).unwrap();
    let dns = UdpSocket::bind(localhost).unwrap();
    let ports = [&tcp, &http].map(|l| l.local_addr().unwrap().port());
    let dns_port = dns.local_addr().unwrap().port();
    serve(tcp, b"");
    serve(http, b"HTTP/1.1 204 No Content\r\n\r\n");
    let working = Arc::new(AtomicBool::new(true));
    resolver(dns, working.clone());

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n\
             [probe]\ninterval = \"500ms\"\ntimeout = \"300ms\"\ndown_after = \"1s\"\nmin_ok = 3\n\
             [[targets]]\nname = \"web-tcp\"\naddress = \"127.0.0.1\"\nkind = \"tcp\"\nport = {}\n\
             [[targets]]\nname = \"web\"\naddress = \"127.0.0.1\"\nkind = \"http\"\nport = {}\n\
             [[targets]]\nname = \"resolver\"\naddress = \"127.0.0.1\"\nkind = \"dns\"\nport = {dns_port}\nquery = \"wanwatch.example\"\n",
            dir.path().display(),
            ports[0],
            ports[1],
        ),
    )
    .unwrap();
    let _daemon = DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &config, Stdio::null());
    let status_file = dir.path().join("status.json");

    let status = wait_for(&status_file, "every target answering", WAIT, |s| {
        answered(s) == [true, true, true]
    });
    let targets = status["targets"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = targets
        .iter()
        .map(|t| (t["kind"].as_str().unwrap(), t["address"].as_str().unwrap()))
        .collect();
    let (tcp_at, http_at, dns_at) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
        format!("127.0.0.1:{dns_port}"),
    );
    assert_eq!(
        seen,
        [
            ("tcp", tcp_at.as_str()),
            ("http", http_at.as_str()),
            ("dns", dns_at.as_str())
        ]
    );
    assert!(targets.iter().all(|t| t["rtt_us"].is_u64()), "{status:#}");
    assert_eq!(status["state"], "up");

    working.store(false, Ordering::SeqCst);
    let status = wait_for(&status_file, "the link down", WAIT, |s| {
        s["state"] == "down"
    });
    assert_eq!(answered(&status), [true, true, false], "{status:#}");

    working.store(true, Ordering::SeqCst);
    let status = wait_for(&status_file, "the link up again", WAIT, |s| {
        s["state"] == "up"
    });
    let states: Vec<&str> = status["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["current"].as_str().unwrap())
        .collect();
    // Ends with: a busy machine may have made a round miss before.
    assert!(states.ends_with(&["sick", "down", "up"]), "{status:#}");
}
