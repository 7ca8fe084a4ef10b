//! `wanwatch watcher` as a process on loopback: the test is the sites
//! (heartbeats and reports over HTTP with their tokens) and the ntfy
//! emulator receives what the watcher notifies. Short `missed_after`
//! values ("2s") keep it quick.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use wanwatch_tests::ntfy::{Message, NtfyServer};
use wanwatch_tests::watcher::{VIEWER_TOKEN, WatcherProcess, heartbeat, now_ms, report};

const BIN: &str = env!("CARGO_BIN_EXE_wanwatch");
/// Long enough for a slow CI machine; reached only when a test fails.
const WAIT: Duration = Duration::from_secs(30);
const HOME_TOKEN: &str = "home-site-token-4711";
const CABIN_TOKEN: &str = "cabin-site-token-0815";
const TOPIC: &str = "watcher-topic-secret";
/// The sites' heartbeat interval in these tests.
const INTERVAL: Duration = Duration::from_millis(500);

fn config(ntfy: &NtfyServer, extra: &str) -> String {
    format!(
        "missed_after = \"2s\"\n{extra}\n[notify.ntfy]\nserver = \"{}\"\ntopic = \"{TOPIC}\"\n\
         [sites.home]\ntoken = \"{HOME_TOKEN}\"\n[sites.cabin]\ntoken = \"{CABIN_TOKEN}\"\n",
        ntfy.url()
    )
}

fn http() -> reqwest::Client {
    wanwatch::http::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A site sending to the watcher.
struct Site {
    http: reqwest::Client,
    base: String,
    name: &'static str,
    token: &'static str,
}

impl Site {
    fn new(watcher: &WatcherProcess, name: &'static str, token: &'static str) -> Site {
        Site {
            http: http(),
            base: watcher.base(),
            name,
            token,
        }
    }

    async fn send(&self, what: &str, body: &Value) -> (StatusCode, Value) {
        self.try_send(what, body).await.unwrap()
    }

    async fn try_send(&self, what: &str, body: &Value) -> reqwest::Result<(StatusCode, Value)> {
        let answer = self
            .http
            .post(format!("{}/api/v1/sites/{}/{what}", self.base, self.name))
            .bearer_auth(self.token)
            .json(body)
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn heartbeat(&self) {
        let (status, body) = self.send("heartbeat", &heartbeat(now_ms())).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    async fn report(&self, report: &Value) -> (StatusCode, Value) {
        self.send("reports", report).await
    }
}

/// A site heartbeating every [`INTERVAL`] in the background until dropped;
/// failures (the watcher restarting) are ignored, as a daemon does.
struct Heartbeating(tokio::task::JoinHandle<()>);

impl Heartbeating {
    fn start(site: Site) -> Heartbeating {
        Heartbeating(tokio::spawn(async move {
            loop {
                let _ = site.try_send("heartbeat", &heartbeat(now_ms())).await;
                tokio::time::sleep(INTERVAL).await;
            }
        }))
    }
}

impl Drop for Heartbeating {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn get(watcher: &WatcherProcess, path: &str) -> Value {
    let answer = http()
        .get(format!("{}{path}", watcher.base()))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{path}");
    answer.json().await.unwrap()
}

fn titled<'a>(messages: &'a [Message], title: &str) -> Vec<&'a Message> {
    messages.iter().filter(|m| m.title == title).collect()
}

/// Waits until the ntfy emulator has a message titled `title`; returns it.
fn wait_title(ntfy: &NtfyServer, title: &str) -> Message {
    let messages = ntfy
        .accepted()
        .wait_until(WAIT, |m| m.iter().any(|m| m.title == title));
    titled(&messages, title)[0].clone()
}

/// Waits until a message's title starts with `prefix`; returns it.
fn wait_prefix(ntfy: &NtfyServer, prefix: &str) -> Message {
    let messages = ntfy
        .accepted()
        .wait_until(WAIT, |m| m.iter().any(|m| m.title.starts_with(prefix)));
    messages
        .into_iter()
        .find(|m| m.title.starts_with(prefix))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_down_once_with_reminders_then_restored_with_its_duration() {
    let ntfy = NtfyServer::start();
    let watcher = WatcherProcess::start(BIN, &config(&ntfy, "remind_every = \"3s\""));
    let home = Site::new(&watcher, "home", HOME_TOKEN);
    for _ in 0..3 {
        home.heartbeat().await;
        tokio::time::sleep(INTERVAL).await;
    }
    home.heartbeat().await;
    let last = Instant::now();
    let down = wait_title(&ntfy, "home: home network DOWN");
    let after = last.elapsed();
    // Never before missed_after; within missed_after and one heartbeat
    // interval (the watcher checks 10 times per missed_after), plus the
    // delivery to ntfy.
    assert!(after >= Duration::from_secs(2), "DOWN after {after:?}");
    assert!(
        after < Duration::from_secs(2) + INTERVAL + Duration::from_secs(1),
        "DOWN after {after:?}"
    );
    assert_eq!(down.priority, 4);
    assert!(
        down.message
            .starts_with("home: home network DOWN, no heartbeat for 2 s (last seen "),
        "{}",
        down.message
    );
    let reminder = wait_title(&ntfy, "home: home network still DOWN");
    assert_eq!(reminder.priority, 4);
    let site = get(&watcher, "/api/v1/sites/home").await;
    assert_eq!(site["state"], "down", "{site}");
    home.heartbeat().await;
    let gap = last.elapsed();
    let restored = wait_prefix(&ntfy, "home: home network RESTORED after ");
    let messages = ntfy.accepted().items();
    assert_eq!(
        titled(&messages, "home: home network DOWN").len(),
        1,
        "{messages:#?}"
    );
    // The duration as the watcher saw it: from the last heartbeat before
    // the gap to the first after.
    let outages = get(&watcher, "/api/v1/sites/home/outages").await;
    let outage = &outages["outages"][0];
    let duration = outage["watcher"]["duration_ms"].as_u64().unwrap();
    assert!(
        duration <= gap.as_millis() as u64 + 100 && duration + 1000 >= gap.as_millis() as u64,
        "{duration} ms for a gap of {gap:?}"
    );
    let seconds = (duration + 500) / 1000;
    assert_eq!(
        restored.title,
        format!("home: home network RESTORED after {seconds} s")
    );
    assert_eq!(outage["report"], Value::Null);
    // The cabin was never heard from: waiting, not DOWN.
    let sites = get(&watcher, "/api/v1/sites").await;
    assert_eq!(sites["sites"][0]["name"], "cabin");
    assert_eq!(sites["sites"][0]["state"], "waiting");
    assert_eq!(sites["sites"][1]["state"], "up");
    assert!(titled(&messages, "cabin: home network DOWN").is_empty());
    // `wanwatch watcher status` reads the same from the database.
    let status = Command::new(BIN)
        .args(["watcher", "status", "--config"])
        .arg(&watcher.config)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(
        text.contains("home             UP       last seen "),
        "{text}"
    );
    assert!(
        text.contains("cabin            WAITING  never heard from"),
        "{text}"
    );
    assert!(
        text.contains(&format!("silent {seconds} s (watcher); no report yet")),
        "{text}"
    );
    // The page is served, in the daemon's style.
    let page = http()
        .get(format!("{}/", watcher.base()))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("/dashboard/style.css") && page.contains("/dashboard/watcher.js"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_during_an_outage_gives_no_second_down_and_no_false_one() {
    let ntfy = NtfyServer::start();
    let mut watcher = WatcherProcess::start(BIN, &config(&ntfy, ""));
    let home = Site::new(&watcher, "home", HOME_TOKEN);
    home.heartbeat().await;
    let last = Instant::now();
    let cabin = Heartbeating::start(Site::new(&watcher, "cabin", CABIN_TOKEN));
    wait_title(&ntfy, "home: home network DOWN");
    // Stopped as systemd stops it: cleanly.
    let status = watcher.stop();
    assert!(status.success(), "{status:?}\n{}", watcher.log_text());
    // The cabin's heartbeats go nowhere for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    watcher.restart();
    let restarted = Instant::now();
    // Observe well past the grace: the cabin must not be taken for DOWN
    // (it was silent longer than missed_after, but the watcher was away),
    // nor the home announced again.
    while restarted.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(INTERVAL).await;
    }
    let messages = ntfy.accepted().items();
    assert_eq!(
        titled(&messages, "home: home network DOWN").len(),
        1,
        "{messages:#?}"
    );
    assert!(
        titled(&messages, "cabin: home network DOWN").is_empty(),
        "{messages:#?}"
    );
    let site = get(&watcher, "/api/v1/sites/home").await;
    assert_eq!(site["state"], "down");
    assert_eq!(get(&watcher, "/api/v1/sites/cabin").await["state"], "up");
    // Killed this time, and back: the same.
    watcher.kill();
    watcher.restart();
    home.heartbeat().await;
    let gap = last.elapsed();
    let restored = wait_prefix(&ntfy, "home: home network RESTORED after ");
    let outages = get(&watcher, "/api/v1/sites/home/outages").await;
    assert_eq!(outages["outages"].as_array().unwrap().len(), 1, "{outages}");
    let duration = outages["outages"][0]["watcher"]["duration_ms"]
        .as_u64()
        .unwrap();
    // The outage spans both restarts.
    assert!(
        duration + 1000 >= gap.as_millis() as u64 && duration <= gap.as_millis() as u64 + 100,
        "{duration} ms for a gap of {gap:?}"
    );
    assert_eq!(
        restored.title,
        format!(
            "home: home network RESTORED after {} s",
            (duration + 500) / 1000
        )
    );
    drop(cabin);
    let messages = ntfy.accepted().items();
    assert!(titled(&messages, "cabin: home network DOWN").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_stored_once_joined_with_the_outage_and_restored_carries_its_cause() {
    let ntfy = NtfyServer::start();
    let watcher = WatcherProcess::start(BIN, &config(&ntfy, ""));
    let home = Site::new(&watcher, "home", HOME_TOKEN);
    home.heartbeat().await;
    let started = now_ms();
    wait_title(&ntfy, "home: home network DOWN");
    // Back: the report arrives before any heartbeat.
    let outage = report(
        &format!("outage-{started}"),
        started + 200,
        now_ms(),
        "local-fault",
    );
    assert_eq!(
        home.report(&outage).await,
        (StatusCode::CREATED, serde_json::json!({"stored": "new"}))
    );
    let restored = wait_prefix(&ntfy, "home: home network RESTORED after ");
    assert!(
        restored
            .message
            .contains("\ncause: local-fault (the LAN gateway did not answer either)\npower cycles: 1, back after cycle 1"),
        "{}",
        restored.message
    );
    // Delivered again (a crash between sending and recording): stored once.
    assert_eq!(
        home.report(&outage).await,
        (StatusCode::OK, serde_json::json!({"stored": "duplicate"}))
    );
    home.heartbeat().await;
    // A short outage the watcher never saw: a record of its own.
    let short = report("outage-short", now_ms() - 1000, now_ms(), "wan");
    assert_eq!(home.report(&short).await.0, StatusCode::CREATED);
    let outages = get(&watcher, "/api/v1/sites/home/outages").await;
    let outages = outages["outages"].as_array().unwrap().clone();
    assert_eq!(outages.len(), 2, "{outages:#?}");
    assert_eq!(outages[0]["report"]["id"], "outage-short");
    assert_eq!(outages[0]["watcher"], Value::Null);
    let joined = &outages[1];
    assert_eq!(joined["report"], outage, "both views in one record");
    assert_eq!(joined["cause"], "local-fault");
    assert!(joined["watcher"]["duration_ms"].as_u64().unwrap() >= 2000);
    let messages = ntfy.accepted().items();
    assert_eq!(
        messages
            .iter()
            .filter(|m| m.title.starts_with("home: home network RESTORED"))
            .count(),
        1,
        "{messages:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_401_json_and_logged_once_without_the_token() {
    let ntfy = NtfyServer::start();
    let watcher = WatcherProcess::start(BIN, &config(&ntfy, ""));
    let wrong = Site::new(&watcher, "home", "wrong-token-never-logged");
    let unknown = Site::new(&watcher, "attic", "attic-token-never-logged");
    let cabin_token_for_home = Site::new(&watcher, "home", CABIN_TOKEN);
    for _ in 0..5 {
        for site in [&wrong, &unknown, &cabin_token_for_home] {
            let (status, body) = site.send("heartbeat", &heartbeat(now_ms())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["status"], 401, "{body}");
            assert!(!body.to_string().contains("never-logged"));
        }
    }
    let (status, _) = wrong.report(&report("outage-1", 1, 2, "wan")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let none = http()
        .post(format!("{}/api/v1/sites/home/heartbeat", watcher.base()))
        .json(&heartbeat(now_ms()))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    // The viewer token is not a site's, and the read API needs it.
    let viewer = Site::new(&watcher, "home", VIEWER_TOKEN);
    assert_eq!(
        viewer.send("heartbeat", &heartbeat(now_ms())).await.0,
        StatusCode::UNAUTHORIZED
    );
    let anonymous = http()
        .get(format!("{}/api/v1/sites", watcher.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let home = Site::new(&watcher, "home", HOME_TOKEN);
    let token = http()
        .get(format!("{}/api/v1/sites", watcher.base()))
        .bearer_auth(HOME_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        token.status(),
        StatusCode::UNAUTHORIZED,
        "a site's token reads nothing"
    );
    // Bad input from an authenticated site: JSON errors.
    let (status, body) = home
        .send("heartbeat", &serde_json::json!({"sent_at_ms": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], 400);
    let huge = "x".repeat(100_000);
    let (status, body) = home
        .send("reports", &serde_json::json!({ "id": huge }))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["status"], 413);
    let missing = get_status(&watcher, "/api/v1/sites/attic").await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    let log = watcher.log_text();
    assert!(!log.contains("never-logged"), "{log}");
    assert!(
        !log.contains(CABIN_TOKEN) && !log.contains(VIEWER_TOKEN),
        "{log}"
    );
    // Once per site and address in a minute, however many refusals.
    assert_eq!(
        log.matches("refused a request for site home from 127.0.0.1: wrong token")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("refused a request for site attic from 127.0.0.1: no such site")
            .count(),
        1,
        "{log}"
    );
}

async fn get_status(watcher: &WatcherProcess, path: &str) -> StatusCode {
    http()
        .get(format!("{}{path}", watcher.base()))
        .bearer_auth(VIEWER_TOKEN)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_off_by_more_than_max_clock_skew_flags_the_site() {
    let ntfy = NtfyServer::start();
    let watcher = WatcherProcess::start(BIN, &config(&ntfy, "max_clock_skew = \"1m\""));
    let home = Site::new(&watcher, "home", HOME_TOKEN);
    home.heartbeat().await;
    assert_eq!(
        get(&watcher, "/api/v1/sites/home").await["clock_skewed"],
        false
    );
    for _ in 0..3 {
        let (status, _) = home
            .send("heartbeat", &heartbeat(now_ms() - 5 * 60_000))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let site = get(&watcher, "/api/v1/sites/home").await;
    assert_eq!(site["clock_skewed"], true, "{site}");
    let offset = site["clock_offset_ms"].as_i64().unwrap();
    assert!((-301_000..=-299_000).contains(&offset), "{offset}");
    let status = Command::new(BIN)
        .args(["watcher", "status", "--json", "--config"])
        .arg(&watcher.config)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["sites"][1]["name"], "home");
    assert_eq!(json["sites"][1]["clock_skewed"], true, "{json}");
    home.heartbeat().await;
    assert_eq!(
        get(&watcher, "/api/v1/sites/home").await["clock_skewed"],
        false
    );
    let log = watcher.log_text();
    assert_eq!(
        log.matches("home: its clock is 5m00s behind the watcher's")
            .count(),
        1,
        "once per change: {log}"
    );
    assert_eq!(
        log.matches("home: its clock is right again").count(),
        1,
        "{log}"
    );
}

#[test]
fn bad_configs_are_refused_with_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "missed_after = \"3m\"\nlisten = \"0.0.0.0:8787\"\n[sites.home]\ntoken = \"\"\n",
    )
    .unwrap();
    for args in [
        &["watcher", "check", "--config"][..],
        &["watcher", "--config"],
    ] {
        let out = Command::new(BIN).args(args).arg(&bad).output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        let path = bad.display();
        assert!(
            stderr.contains(&format!(
                "{path}:2:10: listen: 0.0.0.0:8787 is not a loopback address: set `token`"
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("{path}:4:9: sites.home.token: must not be empty")),
            "{stderr}"
        );
    }
    std::fs::write(&bad, "[sites.home]\ntoken = \"t\"\nmissed_afer = \"3m\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["watcher", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "{}:3:1: sites.home.missed_afer: unknown field `missed_afer`",
            bad.display()
        )),
        "{stderr}"
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/watcher.toml");
    let out = Command::new(BIN)
        .args(["watcher", "check", "--config", example])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "config OK: 2 site(s)\n  site cabin            DOWN after 15m of silence\n  site home             DOWN after 3m of silence\n"
    );
}
