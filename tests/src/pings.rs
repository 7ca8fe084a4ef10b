//! Emulators of the Healthchecks and Uptime Kuma ping APIs on 127.0.0.1,
//! built from their documentation, for the heartbeat tests.
//!
//! - Healthchecks (self-hosted form): `HEAD`, `GET` or `POST`
//!   `/ping/<uuid>` signals success, `/ping/<uuid>/fail` failure,
//!   `/ping/<uuid>/start` a start, `/ping/<uuid>/log` a log entry,
//!   `/ping/<uuid>/<0-255>` an exit status; the first 100 kB of the body
//!   are the ping's log. Answers `200 OK` with `OK`, `404` with `not found`
//!   for an unknown check, `400` for anything else under `/ping/`.
//! - Uptime Kuma: any method on `/api/push/<token>`, with the query
//!   parameters `status` (`up` by default; anything else is down), `msg`
//!   (`OK` by default) and `ping` (a number, else none). Answers
//!   `{"ok": true}`, or `404` `{"ok": false, "msg": "Monitor not found or
//!   not active."}` for an unknown token.
//!
//! Every ping a server takes is recorded, with when it arrived, in a
//! [`Recorder`] the tests wait on.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::Recorder;
use crate::http::{Reply, Request, Server};

/// What a Healthchecks ping signals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    Success,
    Start,
    Fail,
    Log,
    ExitStatus(u8),
}

/// A ping Healthchecks took.
#[derive(Clone, Debug)]
pub struct HcPing {
    pub signal: Signal,
    pub method: String,
    /// The log: the body, at most 100 kB of it.
    pub body: String,
    pub at: Instant,
}

/// A Healthchecks server with one check.
pub struct Healthchecks {
    server: Server,
    uuid: String,
    pings: Arc<Recorder<HcPing>>,
}

impl Healthchecks {
    pub fn start(uuid: &str) -> Healthchecks {
        let pings = Arc::new(Recorder::default());
        let (known, recorded) = (uuid.to_owned(), pings.clone());
        let server = Server::start(move |request| hc_answer(&known, &recorded, request));
        Healthchecks {
            server,
            uuid: uuid.to_owned(),
            pings,
        }
    }

    /// The check's ping URL, as Healthchecks shows it.
    pub fn ping_url(&self) -> String {
        format!("{}/ping/{}", self.server.url(), self.uuid)
    }

    pub fn pings(&self) -> &Recorder<HcPing> {
        &self.pings
    }
}

fn hc_answer(uuid: &str, pings: &Recorder<HcPing>, request: &Request) -> Reply {
    let text = |status: u16, body: &str| Reply::Response {
        status,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: body.as_bytes().to_vec(),
    };
    if !matches!(request.method.as_str(), "GET" | "HEAD" | "POST") {
        return text(405, "method not allowed");
    }
    let parts: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let (check, signal) = match parts.as_slice() {
        ["ping", check] => (*check, Signal::Success),
        ["ping", check, "start"] => (*check, Signal::Start),
        ["ping", check, "fail"] => (*check, Signal::Fail),
        ["ping", check, "log"] => (*check, Signal::Log),
        ["ping", check, code] => match code.parse() {
            Ok(code) => (*check, Signal::ExitStatus(code)),
            Err(_) => return text(400, "invalid url format"),
        },
        _ => return text(400, "invalid url format"),
    };
    if check != uuid {
        return text(404, "not found");
    }
    let body = &request.body[..request.body.len().min(100_000)];
    pings.push(HcPing {
        signal,
        method: request.method.clone(),
        body: String::from_utf8_lossy(body).into_owned(),
        at: Instant::now(),
    });
    text(200, "OK")
}

/// A push Uptime Kuma took.
#[derive(Clone, Debug)]
pub struct Push {
    /// `up`, or `down` for anything else, as Kuma reads it.
    pub status: String,
    pub msg: String,
    pub ping: Option<f64>,
    /// The raw query, to check what else came along.
    pub query: String,
    pub at: Instant,
}

/// An Uptime Kuma server with one push monitor.
pub struct UptimeKuma {
    server: Server,
    token: String,
    pushes: Arc<Recorder<Push>>,
}

impl UptimeKuma {
    pub fn start(token: &str) -> UptimeKuma {
        let pushes = Arc::new(Recorder::default());
        let (known, recorded) = (token.to_owned(), pushes.clone());
        let server = Server::start(move |request| kuma_answer(&known, &recorded, request));
        UptimeKuma {
            server,
            token: token.to_owned(),
            pushes,
        }
    }

    /// The monitor's push URL, as Kuma shows it (with its default query).
    pub fn push_url(&self) -> String {
        format!(
            "{}/api/push/{}?status=up&msg=OK&ping=",
            self.server.url(),
            self.token
        )
    }

    pub fn pushes(&self) -> &Recorder<Push> {
        &self.pushes
    }
}

fn kuma_answer(token: &str, pushes: &Recorder<Push>, request: &Request) -> Reply {
    let Some(pushed) = request.path.strip_prefix("/api/push/") else {
        return Reply::json(404, json!({"error": "not found"}).to_string());
    };
    if pushed != token {
        return Reply::json(
            404,
            json!({"ok": false, "msg": "Monitor not found or not active."}).to_string(),
        );
    }
    let status = match request.param("status").as_deref() {
        None | Some("up") => "up",
        Some(_) => "down",
    };
    pushes.push(Push {
        status: status.into(),
        msg: request
            .param("msg")
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "OK".into()),
        ping: request.param("ping").and_then(|p| p.parse().ok()),
        query: request.query.clone(),
        at: Instant::now(),
    });
    Reply::json(200, json!({"ok": true}).to_string())
}
