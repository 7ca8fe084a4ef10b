//! An ntfy server emulator on 127.0.0.1, for the notification tests.
//!
//! Speaks what wanwatch uses of ntfy's protocol: the JSON publish form
//! (`POST /` with `{"topic", "title", "message", "priority", "tags",
//! "click"}`), ntfy's topic rules (1 to 64 of `[-_A-Za-z0-9]`, a few
//! reserved names), access control by bearer token or user and password,
//! and ntfy's JSON error answers. It can be told to misbehave: rate limit,
//! 503, close the connection, hang, repeat the credentials in its error, or
//! go offline altogether (connections refused) and come back on the same
//! port. It records every request and
//! every accepted message in [`Recorder`]s, which tests wait on with a
//! deadline instead of sleeping.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::Recorder;
use crate::http::{Reply, Request, Server, base64};

/// A message the server accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub title: String,
    pub message: String,
    /// 3 when the publisher gave none, as in ntfy.
    pub priority: u8,
    pub tags: Vec<String>,
    pub click: Option<String>,
    /// The `Authorization` header as received.
    pub authorization: Option<String>,
}

/// How the server misbehaves, before it even looks at a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 429 with ntfy's JSON error.
    RateLimited,
    /// 503 from a proxy in front of ntfy, with an HTML page.
    Unavailable,
    /// Reads the request, closes the connection without an answer.
    Close,
    /// Reads the request and never answers.
    Hang,
    /// 401 with an error that repeats the request's `Authorization` header
    /// and topic, as a server that explains too much does.
    Echo,
}

/// Who may publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    Token(String),
    Basic { username: String, password: String },
}

impl Credentials {
    /// The `Authorization` header that carries these credentials.
    pub fn header(&self) -> String {
        match self {
            Credentials::Token(token) => format!("Bearer {token}"),
            Credentials::Basic { username, password } => {
                format!(
                    "Basic {}",
                    base64(format!("{username}:{password}").as_bytes())
                )
            }
        }
    }
}

#[derive(Default)]
struct Settings {
    failure: Option<Failure>,
    credentials: Option<Credentials>,
    /// Topics that even the right credentials may not publish to.
    denied: Vec<String>,
}

#[derive(Default)]
struct State {
    settings: Mutex<Settings>,
    requests: Recorder<Request>,
    accepted: Recorder<Message>,
}

/// A running emulator; stops when dropped.
pub struct NtfyServer {
    addr: SocketAddr,
    server: Mutex<Option<Server>>,
    state: Arc<State>,
}

impl NtfyServer {
    /// An open server: anyone may publish to any valid topic.
    pub fn start() -> NtfyServer {
        let state = Arc::new(State::default());
        let server = serve(&state, "127.0.0.1:0".parse().expect("literal address"));
        NtfyServer {
            addr: server.addr(),
            server: Mutex::new(Some(server)),
            state,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on only `credentials` may publish: other credentials get
    /// 401, none at all 403 (as ntfy with `auth-default-access: deny-all`).
    pub fn require(&self, credentials: Credentials) {
        lock(&self.state.settings).credentials = Some(credentials);
    }

    /// Publishing to `topic` is forbidden (403) whatever the credentials.
    pub fn deny(&self, topic: &str) {
        lock(&self.state.settings).denied.push(topic.to_owned());
    }

    /// Misbehave from the next request on; `None` to behave again.
    pub fn fail(&self, failure: Option<Failure>) {
        lock(&self.state.settings).failure = failure;
    }

    /// Stops listening: connections are refused, as when the WAN is down.
    pub fn go_offline(&self) {
        lock(&self.server).take();
    }

    /// Listens again, on the same port.
    pub fn come_back(&self) {
        let mut server = lock(&self.server);
        if server.is_none() {
            *server = Some(serve(&self.state, self.addr));
        }
    }

    /// Every request that reached the server, accepted or not.
    pub fn requests(&self) -> &Recorder<Request> {
        &self.state.requests
    }

    /// The messages it accepted, in order.
    pub fn accepted(&self) -> &Recorder<Message> {
        &self.state.accepted
    }
}

fn serve(state: &Arc<State>, addr: SocketAddr) -> Server {
    let state = state.clone();
    Server::start_on(addr, move |request| handle(&state, request))
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"))
}

fn handle(state: &State, request: &Request) -> Reply {
    // Recorded under the settings lock: a test that sees this request and
    // then changes the settings changes them for the next one.
    let settings = lock(&state.settings);
    state.requests.push(request.clone());
    match settings.failure {
        Some(Failure::RateLimited) => {
            return error(429, 42901, "limit reached: too many requests");
        }
        Some(Failure::Unavailable) => {
            return Reply::Response {
                status: 503,
                headers: vec![("content-type".into(), "text/html".into())],
                body: b"<html><body><h1>503 Service Unavailable</h1></body></html>".to_vec(),
            };
        }
        Some(Failure::Close) => return Reply::Close,
        Some(Failure::Hang) => return Reply::Hang,
        Some(Failure::Echo) => {
            let topic = serde_json::from_slice::<Value>(&request.body)
                .ok()
                .and_then(|body| body["topic"].as_str().map(str::to_owned));
            let said = format!(
                "unauthorized: {:?} may not publish to {topic:?}",
                request.header("authorization")
            );
            return error(401, 40101, &said);
        }
        None => {}
    }
    if request.method != "POST" && request.method != "PUT" || request.path != "/" {
        return error(404, 40401, "page not found");
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return error(
            400,
            40017,
            "invalid request: request body must be message JSON",
        );
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let topic = text("topic").unwrap_or_default();
    if !valid_topic(&topic) {
        return error(400, 40009, "invalid request: invalid topic");
    }
    let authorization = request.header("authorization").map(str::to_owned);
    if let Some(required) = &settings.credentials {
        match &authorization {
            Some(given) if *given == required.header() => {}
            Some(_) => return error(401, 40101, "unauthorized"),
            None => return error(403, 40301, "forbidden"),
        }
    }
    if settings.denied.contains(&topic) {
        return error(403, 40301, "forbidden");
    }
    let priority = match body.get("priority") {
        None => 3,
        Some(p) => match p.as_u64() {
            Some(p @ 1..=5) => p as u8,
            _ => return error(400, 40007, "invalid request: priority invalid"),
        },
    };
    let tags = match body.get("tags") {
        None => Vec::new(),
        Some(Value::Array(tags)) if tags.iter().all(Value::is_string) => tags
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            return error(
                400,
                40017,
                "invalid request: request body must be message JSON",
            );
        }
    };
    let message = Message {
        title: text("title").unwrap_or_default(),
        message: text("message").unwrap_or_default(),
        priority,
        tags,
        click: text("click"),
        authorization,
        topic,
    };
    let answer = json!({
        "id": format!("m{}", state.accepted.items().len()),
        "event": "message",
        "topic": message.topic,
        "message": message.message,
    });
    state.accepted.push(message);
    Reply::json(200, answer.to_string())
}

/// ntfy's rules: 1 to 64 of `[-_A-Za-z0-9]`, and not a name ntfy uses for
/// its own pages.
fn valid_topic(topic: &str) -> bool {
    const RESERVED: [&str; 10] = [
        "docs", "static", "file", "app", "metrics", "account", "settings", "signup", "login", "v1",
    ];
    (1..=64).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !RESERVED.contains(&topic)
}

/// ntfy's error answer.
fn error(http: u16, code: u32, error: &str) -> Reply {
    let mut body = json!({"code": code, "http": http, "error": error});
    if http == 429 {
        body["link"] = "https://ntfy.sh/docs/publish/#limitations".into();
    }
    Reply::json(http, body.to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_ntfy_rules() {
        assert!(valid_topic("wan-home_1"));
        assert!(valid_topic(&"x".repeat(64)));
        assert!(!valid_topic(&"x".repeat(65)));
        assert!(!valid_topic(""));
        assert!(!valid_topic("a b"));
        assert!(!valid_topic("docs"));
    }
}
