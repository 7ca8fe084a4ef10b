//! The HTTP API over real HTTP against the live daemon: every endpoint,
//! bad input answered with JSON errors, the bearer token, the event stream
//! and its resumption, no secret in any answer, and a flood of
//! connections that does not delay the watchdog.
//!
//! The link is a TCP target on 127.0.0.1 that the test opens and closes;
//! the modem's plug is the Shelly emulator, notifications go to the ntfy
//! emulator, all on loopback. No ICMP, no root.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::Value;
use wanwatch_tests::link::Link;
use wanwatch_tests::ntfy::NtfyServer;
use wanwatch_tests::shelly::{Emulator, Model};
use wanwatch_tests::{DaemonProcess, wait_for};

/// Long enough for a slow CI machine; reached only when a test fails.
const WAIT: Duration = Duration::from_secs(30);

const PLUG_PASSWORD: &str = "hunter2-plug";
const NTFY_TOPIC: &str = "secret-topic-4711";
const NTFY_TOKEN: &str = "tk_ntfysecret";
const API_TOKEN: &str = "api-token-0123456789";

/// A free port on `ip`: bound by the system, then let go for the daemon.
fn free_port(ip: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A client for loopback: no proxy from the environment, no time limit
/// (event streams last).
fn http() -> reqwest::Client {
    wanwatch::http::install_crypto_provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A daemon probing `link` every 500 ms, with the API on `listen`; `extra`
/// is appended to its config.
struct Daemon {
    dir: tempfile::TempDir,
    /// Killed when the test ends.
    process: DaemonProcess,
    base: String,
}

impl Daemon {
    fn start(link: &Link, listen: SocketAddr, extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("wanwatch.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n[http]\nlisten = \"{listen}\"\n{extra}\n",
                link.daemon_config(dir.path())
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let process = DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &config, log);
        let daemon = Daemon {
            dir,
            process,
            base: format!("http://{listen}"),
        };
        wait_for(&daemon.status_file(), "the WAN up", WAIT, |s| {
            s["state"] == "up"
        });
        daemon
    }

    fn status_file(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }
}

/// An answer: status, `WWW-Authenticate`, body as text and as JSON.
struct Answer {
    status: StatusCode,
    authenticate: Option<String>,
    text: String,
    json: Value,
}

impl Answer {
    /// The answer of an error: JSON naming its status, and its message.
    fn error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.json["status"], status.as_u16(), "{}", self.text);
        self.json["error"].as_str().expect("an error message")
    }
}

/// A client that keeps every answer, to check them all for secrets.
struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    answers: Vec<String>,
}

impl Client {
    fn new(base: &str, token: Option<&str>) -> Client {
        Client {
            http: http(),
            base: base.to_owned(),
            token: token.map(str::to_owned),
            answers: Vec::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("an answer");
        let status = response.status();
        let authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        self.answers.push(text.clone());
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
        Answer {
            status,
            authenticate,
            text,
            json,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, body: &str) -> Answer {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        self.send(request).await
    }

    /// Fails if any answer so far holds one of `secrets`.
    fn assert_no_secret(&self, secrets: &[&str]) {
        for answer in &self.answers {
            for secret in secrets {
                assert!(
                    !answer.contains(secret),
                    "`{secret}` in an answer: {answer}"
                );
            }
        }
    }
}

/// Sends raw bytes and returns the status line of the answer.
fn raw_status_line(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_json_and_bad_requests_say_what_is_wrong() {
    let link = Link::up();
    let plug = Emulator::start(Model::PlusPlugS).password(PLUG_PASSWORD);
    let ntfy = NtfyServer::start();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let daemon = Daemon::start(
        &link,
        listen,
        &format!(
            r#"
[safety]
max_cycles_per_hour = 2

[devices.modem]
kind = "shelly"
address = "{plug}"
password = "{PLUG_PASSWORD}"

[plugins.notify]
notify = true

[notify.ntfy]
server = "{ntfy}"
topic = "{NTFY_TOPIC}"
token = "{NTFY_TOKEN}"
"#,
            plug = plug.url(),
            ntfy = ntfy.url(),
        ),
    );
    let mut api = Client::new(&daemon.base, None);
    // The database is open and migrated before the server starts: no 503
    // while the daemon starts.
    let transitions = api.get("/api/v1/transitions").await;
    assert_eq!(transitions.status, StatusCode::OK, "{}", transitions.text);

    let status = api.get("/api/v1/status").await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.json["state"], "up", "{}", status.text);
    let targets = api.get("/api/v1/targets").await;
    assert_eq!(targets.json[0]["target"], "internet", "{}", targets.text);
    let plugins = api.get("/api/v1/plugins").await;
    assert_eq!(
        plugins.json["plugins"][0]["name"], "notify",
        "{}",
        plugins.text
    );
    assert!(plugins.json["plugins"][0]["version"].is_string());
    let notifications = api.get("/api/v1/notifications").await;
    assert_eq!(
        notifications.json["configured"], true,
        "{}",
        notifications.text
    );
    assert_eq!(
        notifications.json["sinks"].as_array().map(Vec::len),
        Some(1)
    );
    for path in ["transitions", "outages", "power", "actions", "stats"] {
        let answer = api.get(&format!("/api/v1/{path}?since=7d")).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    let transitions = api
        .get("/api/v1/transitions?since=1h&until=0s&limit=10")
        .await;
    assert!(transitions.json.is_array(), "{}", transitions.text);

    // Unknown routes, wrong methods, bad query values.
    api.get("/api/v1/nope").await.error(StatusCode::NOT_FOUND);
    api.get("/nope").await.error(StatusCode::NOT_FOUND);
    api.post("/api/v1/status", "")
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
    api.get("/api/v1/probe")
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED);
    let e = api.get("/api/v1/transitions?since=yesterday").await;
    assert!(
        e.error(StatusCode::BAD_REQUEST)
            .starts_with("since: `yesterday`")
    );
    let e = api.get("/api/v1/outages?until=2026-13-01T00:00:00Z").await;
    assert!(e.error(StatusCode::BAD_REQUEST).starts_with("until: "));
    let e = api.get("/api/v1/stats?since=1000&until=10").await;
    assert!(e.error(StatusCode::BAD_REQUEST).contains("is after until"));
    let e = api.get("/api/v1/power?limit=0").await;
    assert!(
        e.error(StatusCode::BAD_REQUEST)
            .starts_with("limit must be")
    );
    let e = api.get("/api/v1/actions?bogus=1").await;
    assert!(e.error(StatusCode::BAD_REQUEST).contains("bogus"));
    let request = api
        .http
        .get(format!("{}/api/v1/events", daemon.base))
        .header("last-event-id", "last");
    let e = api.send(request).await;
    assert!(
        e.error(StatusCode::BAD_REQUEST)
            .starts_with("Last-Event-ID")
    );

    // Power cycles: through the safety cap (2 per hour) and the journal.
    let e = api.post("/api/v1/devices/fridge/cycle", "").await;
    assert!(e.error(StatusCode::NOT_FOUND).contains("configured: modem"));
    let e = api
        .post("/api/v1/devices/modem/cycle", r#"{"off_seconds": 0}"#)
        .await;
    assert!(
        e.error(StatusCode::BAD_REQUEST)
            .starts_with("off_seconds must be")
    );
    let e = api
        .post("/api/v1/devices/modem/cycle", r#"{"off": 1}"#)
        .await;
    assert!(e.error(StatusCode::BAD_REQUEST).contains("unknown field"));
    let big = format!(r#"{{"off_seconds": 1, "pad": "{}"}}"#, "x".repeat(20_000));
    api.post("/api/v1/devices/modem/cycle", &big)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE);
    let done = api
        .post("/api/v1/devices/modem/cycle", r#"{"off_seconds": 1}"#)
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.json["outcome"], "done");
    // The plug's cycle is under way: a second one is refused, and that
    // attempt takes its slot under the cap too (see Actions::power_cycle).
    let e = api.post("/api/v1/devices/modem/cycle", "").await;
    assert!(e.error(StatusCode::CONFLICT).contains("already under way"));
    let e = api.post("/api/v1/devices/modem/cycle", "").await;
    assert!(
        e.error(StatusCode::TOO_MANY_REQUESTS)
            .contains("safety cap")
    );
    let journal = wait_for(
        &daemon.status_file(),
        "the API's cycles journalled",
        WAIT,
        |s| {
            s["actions"].as_array().is_some_and(|a| {
                a.iter()
                    .filter(|a| a["plugin"] == "api" && a["action"] == "power-cycle")
                    .count()
                    == 3
            })
        },
    );
    assert_eq!(
        journal["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["outcome"] == "done")
            .count(),
        1
    );
    let journalled = api.get("/api/v1/actions").await;
    assert!(journalled.text.contains("\"api\""), "{}", journalled.text);

    // Headers beyond the limits are refused before any handler runs.
    let long = format!(
        "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "x".repeat(10_000)
    );
    assert!(raw_status_line(listen, long.as_bytes()).starts_with("HTTP/1.1 431"));
    let many: String = (0..40).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let many = format!("GET /api/v1/status HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert!(raw_status_line(listen, many.as_bytes()).starts_with("HTTP/1.1 431"));

    api.assert_no_secret(&[PLUG_PASSWORD, NTFY_TOPIC, NTFY_TOKEN]);
    let log = daemon.log();
    for secret in [PLUG_PASSWORD, NTFY_TOPIC, NTFY_TOKEN] {
        assert!(!log.contains(secret), "`{secret}` in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_every_request_needs_it() {
    let link = Link::up();
    let ip = Ipv4Addr::new(127, 0, 0, 2);
    let listen = SocketAddr::from((ip, free_port(ip)));
    let daemon = Daemon::start(&link, listen, &format!("token = \"{API_TOKEN}\"\n"));

    let mut anonymous = Client::new(&daemon.base, None);
    for path in ["/api/v1/status", "/api/v1/nope", "/"] {
        let e = anonymous.get(path).await;
        assert!(
            e.error(StatusCode::UNAUTHORIZED)
                .contains("Authorization: Bearer")
        );
        assert_eq!(e.authenticate.as_deref(), Some("Bearer realm=\"wanwatch\""));
    }
    anonymous
        .post("/api/v1/probe", "")
        .await
        .error(StatusCode::UNAUTHORIZED);
    let mut wrong = Client::new(&daemon.base, Some("api-token-012345678"));
    let e = wrong.get("/api/v1/status").await;
    assert_eq!(
        e.error(StatusCode::UNAUTHORIZED),
        "the bearer token is wrong"
    );

    let mut api = Client::new(&daemon.base, Some(API_TOKEN));
    let status = api.get("/api/v1/status").await;
    assert_eq!(status.json["state"], "up", "{}", status.text);
    let before = status.json["last_round_at_ms"].as_u64().unwrap();
    let probe = api.post("/api/v1/probe", "").await;
    assert_eq!(probe.status, StatusCode::ACCEPTED, "{}", probe.text);
    wait_for(
        &daemon.status_file(),
        "a round after the request",
        WAIT,
        |s| s["last_round_at_ms"].as_u64() > Some(before),
    );

    for client in [&anonymous, &wrong, &api] {
        client.assert_no_secret(&[API_TOKEN]);
    }
    assert!(!daemon.log().contains(API_TOKEN), "the token in the log");
}

#[test]
fn check_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        "[http]\nlisten = [\"127.0.0.1:8786\", \"0.0.0.0:8786\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wanwatch"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "{}:2:10: http.listen: 0.0.0.0:8786 is not a loopback address: set [http] token",
            config.display()
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_leaves_the_watchdog_watching() {
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let listen = taken.local_addr().unwrap();
    let link = Link::up();
    let daemon = Daemon::start(&link, listen, "");
    let first = wanwatch_tests::read_status(&daemon.status_file()).unwrap();
    wait_for(&daemon.status_file(), "rounds going on", WAIT, |s| {
        s["last_round_at_ms"].as_u64() > first["last_round_at_ms"].as_u64()
    });
    let log = daemon.log();
    assert!(
        log.contains(&format!("HTTP API: cannot listen on {listen}")),
        "{log}"
    );
}

/// One event of a stream.
#[derive(Debug)]
struct StreamEvent {
    id: i64,
    kind: String,
    data: Value,
}

/// An event stream, read event by event.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(base: &str, last_event_id: Option<i64>) -> EventStream {
        let mut request = http().get(format!("{base}/api/v1/events"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), within [`WAIT`].
    async fn next(&mut self) -> StreamEvent {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let frame: String = self.buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        frame
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(|v| v.trim_start().to_owned())
                    };
                    let Some(data) = field("data:") else { continue };
                    return StreamEvent {
                        id: field("id:").and_then(|id| id.parse().ok()).unwrap_or(-1),
                        kind: field("event:").unwrap_or_default(),
                        data: serde_json::from_str(&data).unwrap(),
                    };
                }
                let chunk = self
                    .response
                    .chunk()
                    .await
                    .unwrap()
                    .expect("the stream ended");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event in time")
    }

    /// The next WAN transition to `state`, skipping other events.
    async fn wan(&mut self, state: &str) -> StreamEvent {
        loop {
            let event = self.next().await;
            if event.kind == "wan" && event.data["data"]["current"] == state {
                return event;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_tells_transitions_and_resumes_where_it_left() {
    let link = Link::up();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let mut daemon = Daemon::start(&link, listen, "");
    let mut stream = EventStream::open(&daemon.base, None).await;
    link.cut();
    let down = stream.wan("down").await;
    assert!(down.id > 0, "{down:?}");
    drop(stream);

    // Missed while away: the link comes back.
    link.restore();
    wait_for(&daemon.status_file(), "the WAN up again", WAIT, |s| {
        s["state"] == "up"
    });
    let mut stream = EventStream::open(&daemon.base, Some(down.id)).await;
    let replayed = stream.next().await;
    assert!(replayed.id > down.id, "{replayed:?} after {down:?}");
    let up = if replayed.kind == "wan" && replayed.data["data"]["current"] == "up" {
        replayed
    } else {
        stream.wan("up").await
    };
    // And live again, after the replay, with no id twice.
    link.cut();
    let sick = stream.wan("sick").await;
    assert!(sick.id > up.id, "{sick:?} after {up:?}");

    // A stop ends the stream; the daemon does not wait for its client.
    // SAFETY: kill only sends a signal to the daemon this test started.
    unsafe { libc::kill(daemon.process.0.id() as i32, libc::SIGTERM) };
    let ended = tokio::time::timeout(WAIT, async {
        while let Ok(Some(_)) = stream.response.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived the daemon");
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = daemon.process.0.try_wait().unwrap() {
            break exit;
        }
        assert!(started.elapsed() < WAIT, "the daemon did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

/// Raises this process's open-file limit to its hard limit, for `wanted`
/// sockets; false if the hard limit is lower.
fn allow_open_files(wanted: u64) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return false;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur >= wanted
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connections_does_not_delay_the_watchdog() {
    const FLOOD: usize = 500;
    if !allow_open_files(FLOOD as u64 + 256) {
        wanwatch_tests::skip("the open-file limit is below 756");
        return;
    }
    let link = Link::up();
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
    let daemon = Daemon::start(&link, listen, "\n[plugins.notify]\nnotify = true\n");

    // Slow clients: each sends half a request and holds on.
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| {
            let mut stream = TcpStream::connect(listen).unwrap();
            let _ = stream.write_all(b"GET /api/v1/status HTTP/1.1\r\n");
            stream
        })
        .collect();

    let cut_at = now_ms();
    link.cut();
    // The notify plugin raises its alert when the WAN is down: probing,
    // the state machine and the plugins kept their pace.
    let status = wait_for(&daemon.status_file(), "the plugin's alert", WAIT, |s| {
        s["actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["action"] == "notify"))
    });
    let alert = status["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "notify")
        .unwrap();
    let late = alert["at_ms"].as_u64().unwrap().saturating_sub(cut_at);
    // interval (500 ms) + down_after (1 s) + a margin for a loaded machine.
    assert!(late < 3_500, "the alert came {late} ms after the cut");

    // The server closes every slow client (the held ones after its header
    // timeout, those over its cap at once) and answers again.
    let started = Instant::now();
    let deadline = wanwatch::api::HEADER_TIMEOUT + WAIT;
    for mut stream in flood {
        let left = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).unwrap();
        // End of file or a reset: closed by the server.
        if let Err(e) = stream.read_to_end(&mut Vec::new()) {
            assert!(
                !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "a slow client still held after {:?}",
                started.elapsed()
            );
        }
    }
    let mut api = Client::new(&daemon.base, None);
    assert_eq!(api.get("/api/v1/status").await.json["state"], "down");
}
