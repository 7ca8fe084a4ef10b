//! Notifications over real HTTP on 127.0.0.1: the outbox and its sinks
//! against the ntfy emulator and a webhook receiver, including outages,
//! restarts and a damaged queue file.
//!
//! Tests wait for what the servers receive, with a deadline; they never
//! sleep to let something happen.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use wanwatch::actions::{Notification, Notifier};
use wanwatch::config::Config;
use wanwatch::http::Timeouts;
use wanwatch::human;
use wanwatch::notify::ntfy::Ntfy;
use wanwatch::notify::{self, NotifyConfig, Outbox, Tuning};
use wanwatch::state::{Millis, WanState};
use wanwatch_tests::Recorder;
use wanwatch_tests::http::{Reply, Request, Server};
use wanwatch_tests::ntfy::{Credentials, Failure, Message, NtfyServer};

/// Long enough for a slow CI machine; reached only when a test fails.
const WAIT: Duration = Duration::from_secs(20);

/// Retries within milliseconds, so that outages take no time.
fn tuning() -> Tuning {
    Tuning {
        first_retry: Duration::from_millis(20),
        max_retry: Duration::from_millis(200),
        permanent_attempts: 3,
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(2),
        },
    }
}

/// The `[notify]` part of a config file, parsed as the daemon parses it.
fn config(text: &str) -> NotifyConfig {
    match Config::parse(Path::new("test.toml"), text) {
        Ok(config) => config.notify,
        Err(errors) => panic!("{errors:?}"),
    }
}

/// A config with ntfy on `server`'s topic `wan`, then `extra`.
fn ntfy_config(server: &NtfyServer, extra: &str) -> NotifyConfig {
    config(&format!(
        "[notify.ntfy]\nserver = \"{}\"\ntopic = \"wan\"\n{extra}",
        server.url()
    ))
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as Millis
}

fn notification(title: &str, raised_at_ms: Millis) -> Notification {
    Notification {
        title: title.into(),
        body: format!("body of {title}"),
        priority: 4,
        raised_at_ms,
        plugin: "powercycle".into(),
        wan_state: WanState::Down,
        wan_since_ms: raised_at_ms - 40_000,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

fn outbox(config: &NotifyConfig, dir: &Path, rt: &tokio::runtime::Runtime) -> Outbox {
    Outbox::with_tuning(config, &[], dir, rt.handle().clone(), tuning()).expect("outbox")
}

fn titles(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.title.as_str()).collect()
}

#[test]
fn ntfy_message_carries_title_priority_tags_click_and_token() {
    let server = NtfyServer::start();
    server.require(Credentials::Token("tk_house".into()));
    let config = config(&format!(
        r#"[notify.ntfy]
server = "{}"
topic = "wan-home"
token = "tk_house"
tags = ["warning", "house"]
click = "http://127.0.0.1/status"
"#,
        server.url()
    ));
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(&config, dir.path(), &rt);
    // Not ASCII, which header values could not carry as they are.
    let n = notification("Störung: WAN down 🔌", now_ms());
    outbox.notify(&n).unwrap();
    let received = server.accepted().wait_until(WAIT, |m| !m.is_empty());
    assert_eq!(
        received,
        [Message {
            topic: "wan-home".into(),
            title: "Störung: WAN down 🔌".into(),
            // On time: no word about when it was raised.
            message: n.body.clone(),
            priority: 4,
            tags: vec!["warning".into(), "house".into()],
            click: Some("http://127.0.0.1/status".into()),
            authorization: Some("Bearer tk_house".into()),
        }]
    );
}

#[test]
fn ntfy_basic_credentials_and_priority_override() {
    let server = NtfyServer::start();
    let credentials = Credentials::Basic {
        username: "house".into(),
        password: "pa:ss wörd".into(),
    };
    server.require(credentials.clone());
    let config = ntfy_config(
        &server,
        "username = \"house\"\npassword = \"pa:ss wörd\"\npriority = 5\n",
    );
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(&config, dir.path(), &rt);
    outbox.notify(&notification("one", now_ms())).unwrap();
    let received = server.accepted().wait_until(WAIT, |m| !m.is_empty());
    assert_eq!(received[0].authorization, Some(credentials.header()));
    assert_eq!(received[0].priority, 5);
    assert_eq!(received[0].tags, Vec::<String>::new());
    assert_eq!(received[0].click, None);
    // On a server without access control the topic is the password: the
    // status names the server only.
    let status = serde_json::to_string(&outbox.status()).unwrap();
    assert!(
        status.contains(&format!("ntfy {}/…", server.url())),
        "{status}"
    );
    assert!(
        !status.contains("\"wan\"") && !status.contains("/wan"),
        "{status}"
    );
    assert!(!status.contains("wörd"), "{status}");
}

/// One publish straight through the sink, to see its error.
fn publish(
    config: &NotifyConfig,
    rt: &tokio::runtime::Runtime,
) -> Result<(), notify::DeliveryError> {
    let client = notify::http_client(&tuning()).unwrap();
    let ntfy = Ntfy::new(config.ntfy.as_ref().unwrap(), client);
    rt.block_on(ntfy.publish(&notification("t", now_ms()), now_ms()))
}

#[test]
fn ntfy_json_errors_become_clear_messages() {
    let server = NtfyServer::start();
    let url = server.url();
    let rt = runtime();
    let ntfy = |extra: &str| ntfy_config(&server, extra);
    let name = format!("ntfy {url}/…");

    server.fail(Some(Failure::RateLimited));
    let e = publish(&ntfy(""), &rt).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "{name}: rate limited (HTTP 429: limit reached: too many requests, ntfy code 42901, see https://ntfy.sh/docs/publish/#limitations); retrying with backoff"
        )
    );
    assert!(!e.permanent);

    server.fail(Some(Failure::Unavailable));
    let e = publish(&ntfy(""), &rt).unwrap_err();
    assert_eq!(
        e.message,
        format!("{name}: server error (HTTP 503: Service Unavailable)")
    );
    assert!(!e.permanent);
    server.fail(None);

    server.require(Credentials::Token("tk_right".into()));
    let e = publish(&ntfy("token = \"tk_wrong\""), &rt).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "{name}: the server refused the credentials (HTTP 401: unauthorized, ntfy code 40101); check token, or username and password, in [notify.ntfy]"
        )
    );
    assert!(e.permanent);
    assert!(!e.message.contains("tk_"), "a secret in {e}");

    let e = publish(&ntfy(""), &rt).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "{name}: publishing to the topic is forbidden (HTTP 403: forbidden, ntfy code 40301); give [notify.ntfy] credentials with write access to it"
        )
    );
    assert!(e.permanent);

    server.deny("wan");
    let e = publish(&ntfy("token = \"tk_right\""), &rt).unwrap_err();
    assert!(
        e.message.contains("(HTTP 403: forbidden, ntfy code 40301)"),
        "{e}"
    );
    assert!(server.accepted().items().is_empty());
}

#[test]
fn ntfy_bad_topics_are_refused_clearly() {
    // By the config, with the place to fix it...
    let errors = Config::parse(
        Path::new("test.toml"),
        "[notify.ntfy]\ntopic = \"wan/home\"\n",
    )
    .unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "test.toml:2:9: notify.ntfy.topic: `wan/home` is not an ntfy topic: use 1 to 64 letters, digits, `-` and `_`"
    );
    // ...and by the server, for the names it keeps for itself.
    let server = NtfyServer::start();
    let rt = runtime();
    let config = config(&format!(
        "[notify.ntfy]\nserver = \"{}\"\ntopic = \"docs\"\n",
        server.url()
    ));
    let e = publish(&config, &rt).unwrap_err();
    assert_eq!(
        e.message,
        format!(
            "ntfy {}/…: the server rejected the message (HTTP 400: invalid request: invalid topic, ntfy code 40009)",
            server.url()
        )
    );
    assert!(e.permanent);
}

#[test]
fn ntfy_silence_and_refusal_are_transient() {
    let server = NtfyServer::start();
    let url = server.url();
    let rt = runtime();
    let config = ntfy_config(&server, "");

    server.fail(Some(Failure::Hang));
    let e = publish(&config, &rt).unwrap_err();
    assert_eq!(e.message, format!("ntfy {url}/…: no answer: timed out"));
    assert!(!e.permanent);

    server.fail(Some(Failure::Close));
    let e = publish(&config, &rt).unwrap_err();
    assert!(
        e.message.starts_with(&format!("ntfy {url}/…: no answer: ")),
        "{e}"
    );
    assert!(!e.permanent);

    server.go_offline();
    let e = publish(&config, &rt).unwrap_err();
    let refused = format!("ntfy {url}/…: no answer: cannot connect: Connection refused");
    assert!(e.message.starts_with(&refused), "{e}");
    assert!(!e.permanent);
}

/// A webhook receiver: records every request, answers with `status(n)` for
/// the `n`th (from 0).
fn webhook_server(
    status: impl Fn(usize) -> u16 + Send + Sync + 'static,
) -> (Server, Arc<Recorder<Request>>) {
    let received = Arc::new(Recorder::default());
    let count = AtomicUsize::new(0);
    let recorder = received.clone();
    let server = Server::start(move |request| {
        recorder.push(request.clone());
        Reply::status(status(count.fetch_add(1, Ordering::SeqCst)))
    });
    (server, received)
}

#[test]
fn webhook_receives_the_document_with_every_field() {
    let (server, received) = webhook_server(|_| 200);
    let config = config(&format!(
        "[[notify.webhook]]\nurl = \"{}/hook/s3cret\"\nheaders = {{ Authorization = \"Bearer hook-token\", X-House = \"home\" }}\n",
        server.url()
    ));
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(&config, dir.path(), &rt);
    let raised = now_ms() - 120_000;
    let mut n = notification("WAN down", raised);
    n.wan_since_ms = raised - 32_000;
    let before = now_ms();
    outbox.notify(&n).unwrap();
    let request = received.wait_until(WAIT, |r| !r.is_empty()).remove(0);
    let after = now_ms();

    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook/s3cret");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer hook-token"));
    assert_eq!(request.header("x-house"), Some("home"));
    let doc: Value = serde_json::from_slice(&request.body).unwrap();
    let delivered = doc["delivered_at_ms"].as_u64().unwrap();
    assert!((before..=after).contains(&delivered), "{doc}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "event": "notification",
            "title": "WAN down",
            "body": "body of WAN down",
            "priority": 4,
            "plugin": "powercycle",
            "state": "down",
            "state_since": human::timestamp(raised - 32_000),
            "state_since_ms": raised - 32_000,
            "state_duration_ms": 32_000,
            "raised_at": human::timestamp(raised),
            "raised_at_ms": raised,
            "delivered_at": human::timestamp(delivered),
            "delivered_at_ms": delivered,
            "host": host.trim(),
        })
    );
    // The URL's path holds the hook's secret: the status shows the origin.
    let status = outbox.status();
    assert_eq!(
        status.sinks[0].name,
        format!("webhook[0] {}/…", server.url())
    );
}

#[test]
fn each_sink_keeps_its_own_place_in_the_queue() {
    let ntfy = NtfyServer::start();
    // The webhook fails its first three requests.
    let (hook, hook_received) = webhook_server(|n| if n < 3 { 500 } else { 200 });
    let config = ntfy_config(
        &ntfy,
        &format!("[[notify.webhook]]\nurl = \"{}/\"\n", hook.url()),
    );
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(&config, dir.path(), &rt);
    for title in ["a", "b"] {
        outbox.notify(&notification(title, now_ms())).unwrap();
    }
    // ntfy is not held back by the failing webhook.
    ntfy.accepted().wait_until(WAIT, |m| m.len() == 2);
    hook_received.wait_until(WAIT, |r| r.len() == 5);
    outbox.notify(&notification("c", now_ms())).unwrap();
    let hook_titles: Vec<String> = hook_received
        .wait_until(WAIT, |r| r.len() == 6)
        .iter()
        .map(|r| {
            let doc: Value = serde_json::from_slice(&r.body).unwrap();
            doc["title"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(hook_titles, ["a", "a", "a", "a", "b", "c"]);
    // Whatever the webhook went through, ntfy got each exactly once (a
    // repeat would have come before `c`).
    let received = ntfy.accepted().wait_until(WAIT, |m| m.len() == 3);
    assert_eq!(titles(&received), ["a", "b", "c"]);
}

#[test]
fn queued_through_an_outage_and_a_restart_arrive_once_in_order() {
    let server = NtfyServer::start();
    let config = ntfy_config(&server, "");
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    // Raised during an outage of some minutes, as the plugin saw it.
    let start = now_ms() - 600_000;
    let raised = [start, start + 60_000, start + 120_000];

    // First the ntfy server answers 503...
    server.fail(Some(Failure::Unavailable));
    let first = outbox(&config, dir.path(), &rt);
    first.notify(&notification("one", raised[0])).unwrap();
    first.notify(&notification("two", raised[1])).unwrap();
    // ...retried with backoff...
    server.requests().wait_until(WAIT, |r| r.len() >= 3);
    // ...then it cannot be reached at all, and the daemon restarts.
    server.go_offline();
    first.notify(&notification("three", raised[2])).unwrap();
    assert_eq!(first.status().queued, 3);
    drop(first);
    let queue = std::fs::read_to_string(dir.path().join(notify::QUEUE_FILE)).unwrap();
    assert_eq!(queue.lines().count(), 3);

    let second = outbox(&config, dir.path(), &rt);
    assert_eq!(second.status().queued, 3);
    server.fail(None);
    server.come_back();
    second.wan_up();
    let received = server.accepted().wait_until(WAIT, |m| m.len() >= 3);
    assert_eq!(titles(&received), ["one", "two", "three"]);
    for (message, raised) in received.iter().zip(raised) {
        let line = format!("\n\nraised {}, delivered ", human::timestamp(raised));
        assert!(
            message
                .message
                .starts_with(&format!("body of {}", message.title)),
            "{message:?}"
        );
        assert!(message.message.contains(&line), "{message:?}");
        assert!(message.message.ends_with(" late"), "{message:?}");
    }
    // Nothing comes twice: anything repeated would arrive before this.
    second.notify(&notification("four", now_ms())).unwrap();
    let received = server.accepted().wait_until(WAIT, |m| m.len() >= 4);
    assert_eq!(titles(&received), ["one", "two", "three", "four"]);
    assert_eq!(received[3].message, "body of four");
}

#[test]
fn rate_limited_messages_are_retried_until_accepted() {
    let server = NtfyServer::start();
    let config = ntfy_config(&server, "");
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    server.fail(Some(Failure::RateLimited));
    let outbox = outbox(&config, dir.path(), &rt);
    outbox.notify(&notification("one", now_ms())).unwrap();
    server.requests().wait_until(WAIT, |r| r.len() >= 4);
    let failing = outbox.status().sinks[0].failing.clone().unwrap();
    assert!(failing.contains("rate limited (HTTP 429"), "{failing}");
    server.fail(None);
    let received = server.accepted().wait_until(WAIT, |m| !m.is_empty());
    assert_eq!(titles(&received), ["one"]);
}

#[test]
fn rejected_notification_is_given_up_after_a_few_attempts() {
    let server = NtfyServer::start();
    server.require(Credentials::Token("tk_new".into()));
    let config = ntfy_config(&server, "token = \"tk_old\"\n");
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(&config, dir.path(), &rt);
    outbox.notify(&notification("rejected", now_ms())).unwrap();
    server.requests().wait_until(WAIT, |r| r.len() >= 3);
    // The server now takes the configured token; the rejected notification
    // is not sent again, the next one goes through.
    server.require(Credentials::Token("tk_old".into()));
    outbox.notify(&notification("next", now_ms())).unwrap();
    let received = server.accepted().wait_until(WAIT, |m| !m.is_empty());
    assert_eq!(titles(&received), ["next"]);
    assert_eq!(server.requests().items().len(), 4);
    let status = outbox.status();
    assert_eq!(status.sinks[0].given_up, 1);
    assert!(!format!("{status:?}").contains("tk_old"));
}

#[test]
fn full_queue_drops_the_oldest() {
    let server = NtfyServer::start();
    server.go_offline();
    let config = ntfy_config(&server, "[notify]\nqueue_max = 3\n");
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let outbox = outbox(&config, dir.path(), &rt);
    for title in ["1", "2", "3", "4", "5"] {
        outbox.notify(&notification(title, now_ms())).unwrap();
    }
    outbox.notify(&notification("6", now_ms())).unwrap();
    assert_eq!(outbox.status().queued, 3);
    server.come_back();
    outbox.wan_up();
    let received = server.accepted().wait_until(WAIT, |m| m.len() >= 3);
    assert_eq!(titles(&received), ["4", "5", "6"]);
}

#[test]
fn torn_last_line_of_the_queue_is_skipped() {
    let server = NtfyServer::start();
    server.go_offline();
    let config = ntfy_config(&server, "");
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let first = outbox(&config, dir.path(), &rt);
    first.notify(&notification("one", now_ms())).unwrap();
    first.notify(&notification("two", now_ms())).unwrap();
    drop(first);
    // A power cut in the middle of appending a third.
    let path = dir.path().join(notify::QUEUE_FILE);
    let mut queue = std::fs::read(&path).unwrap();
    queue.extend_from_slice(br#"{"id":2,"notification":{"title":"thr"#);
    std::fs::write(&path, &queue).unwrap();

    let second = outbox(&config, dir.path(), &rt);
    assert_eq!(second.status().queued, 2);
    second.notify(&notification("four", now_ms())).unwrap();
    server.come_back();
    second.wan_up();
    let received = server.accepted().wait_until(WAIT, |m| m.len() >= 3);
    assert_eq!(titles(&received), ["one", "two", "four"]);
}
