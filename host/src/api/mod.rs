//! The HTTP API: versioned JSON under `/api/v1/`, the event stream, and
//! the routes of the metrics exporter and the dashboard, on one server.
//!
//! The API only reads what the daemon publishes (the status as last
//! written, the history database, its live events) and asks it for two
//! things: a manual power cycle, through the same [`Actions`] gateway as
//! the plugins (same safety cap, same journal), and a probe round now.
//! See docs/api.md for the endpoints, authentication and limits.

pub mod auth;
pub mod control;
pub mod dashboard;
pub mod error;
pub mod events;
mod history;
mod server;
mod status;
pub mod window;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Deserializer};
use tokio::sync::{Notify, watch};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::actions::Actions;
use crate::history::Recorder;
use crate::notify::Secret;
use crate::status::Status;

pub use server::{HEADER_TIMEOUT, MAX_CONNECTIONS, MAX_HEADER_BYTES, MAX_HEADERS, Server};

/// The largest request body (a power cycle's is a few bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// A request's body must arrive within this time.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A request must be answered within this time (a power cycle waits for
/// its plug's confirmation); an event stream's body is not limited.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The port the API listens on by default.
pub const DEFAULT_PORT: u16 = 8786;

/// `[http]`: where the API listens and the token it asks for.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// One address or a list; empty turns the server off.
    #[serde(deserialize_with = "one_or_many")]
    pub listen: Vec<SocketAddr>,
    /// Required on any address that is not loopback; when set, every
    /// request needs it (see [`auth`]).
    pub token: Option<Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))],
            token: None,
        }
    }
}

impl HttpConfig {
    /// The checks serde cannot make: each is a key path under `http` and a
    /// message (see [`crate::config::Config::check`]).
    pub fn check(&self) -> Vec<(Vec<String>, String)> {
        check_listen(&["http"], &self.listen, self.token.as_ref(), "[http] token")
    }
}

/// The rule for every listener (the daemon's `[http]`, the watcher's): a
/// token, when set, is not empty, and any address that is not loopback
/// needs one. `section` is the key path of `listen` and `token`'s table;
/// `token_name` how the message names the token.
pub(crate) fn check_listen(
    section: &[&str],
    listen: &[SocketAddr],
    token: Option<&Secret>,
    token_name: &str,
) -> Vec<(Vec<String>, String)> {
    let key = |k: &str| {
        section
            .iter()
            .chain([&k])
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let mut errors = Vec::new();
    match token {
        Some(token) if token.expose().trim().is_empty() => {
            errors.push((key("token"), "must not be empty".to_owned()));
        }
        Some(_) => {}
        None => {
            if let Some(open) = listen.iter().find(|a| !a.ip().is_loopback()) {
                errors.push((
                    key("listen"),
                    format!(
                        "{open} is not a loopback address: set {token_name}, which every request must then carry as `Authorization: Bearer <token>`"
                    ),
                ));
            }
        }
    }
    errors
}

/// `"127.0.0.1:8786"` or `["127.0.0.1:8786", "[::1]:8786"]`.
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let addresses = match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    };
    addresses
        .iter()
        .map(|a| {
            a.parse().map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{a}` is not an address and port (e.g. \"127.0.0.1:{DEFAULT_PORT}\" or \"[::1]:{DEFAULT_PORT}\")"
                ))
            })
        })
        .collect()
}

/// What the handlers share: the daemon's published state and the ways to
/// ask it for something.
#[derive(Clone)]
pub struct AppState {
    /// The status as last written (wall clock).
    pub status: watch::Receiver<Status>,
    /// For manual power cycles: the plugins' gateway, with its cap.
    pub actions: Arc<Actions>,
    /// The configured devices, by name.
    pub devices: Arc<[String]>,
    /// Wakes the probe loop for a round now.
    pub probe_now: Arc<Notify>,
    /// The history database and its live events; None when it is off.
    pub history: Option<Recorder>,
    /// The Prometheus exporter's registry, fed by the daemon's events.
    pub metrics: Arc<crate::metrics::Metrics>,
    token: Option<Arc<auth::Token>>,
    /// Becomes true when the server stops: ends the event streams.
    stopping: watch::Receiver<bool>,
    /// Event streams open at once (see [`events::MAX_STREAMS`]).
    streams: Arc<tokio::sync::Semaphore>,
}

/// What the daemon hands the API.
pub struct Parts {
    pub status: watch::Receiver<Status>,
    pub actions: Arc<Actions>,
    pub devices: Vec<String>,
    pub probe_now: Arc<Notify>,
    pub history: Option<Recorder>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    fn new(
        parts: Parts,
        token: Option<Arc<auth::Token>>,
        stopping: watch::Receiver<bool>,
    ) -> AppState {
        AppState {
            status: parts.status,
            actions: parts.actions,
            devices: parts.devices.into(),
            probe_now: parts.probe_now,
            history: parts.history,
            metrics: parts.metrics,
            token,
            stopping,
            streams: Arc::new(tokio::sync::Semaphore::new(events::MAX_STREAMS)),
        }
    }
}

impl Server {
    /// Serves the daemon's API as `config` says. None when the config
    /// turns the server off or no address could be bound: the watchdog
    /// does not need its API to watch, so it goes on without it, and says
    /// why in the log.
    pub fn start(config: &HttpConfig, parts: Parts) -> Option<Server> {
        if config.listen.is_empty() {
            tracing::info!("HTTP API off ([http] listen = [])");
            return None;
        }
        let token = config
            .token
            .as_ref()
            .map(|t| Arc::new(auth::Token::new(t.expose())));
        let server = Server::serve("HTTP API", &config.listen, |stopping| {
            router(AppState::new(parts, token, stopping))
        });
        let Some(server) = server else {
            tracing::error!(
                "HTTP API: no address could be bound; going on without it (change [http] listen)"
            );
            return None;
        };
        for address in server.addresses() {
            tracing::info!(
                "dashboard on http://{address}/, API under /api/v1/, metrics at /metrics"
            );
        }
        Some(server)
    }
}

/// Every route the server answers, with authentication, limits and JSON
/// errors around them.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/targets", get(status::targets))
        .route("/api/v1/plugins", get(status::plugins))
        .route("/api/v1/notifications", get(status::notifications))
        .route("/api/v1/transitions", get(history::transitions))
        .route("/api/v1/outages", get(history::outages))
        .route("/api/v1/power", get(history::power))
        .route("/api/v1/quality", get(history::quality))
        .route("/api/v1/actions", get(history::actions))
        .route("/api/v1/stats", get(history::stats))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/devices/{name}/cycle", post(control::cycle))
        .route("/api/v1/probe", post(control::probe));
    api.merge(crate::metrics::routes())
        .merge(dashboard::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.token.clone(),
            auth::require_token,
        ))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::map_response(error::as_json))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn errors(text: &str) -> String {
        match Config::parse(Path::new("wanwatch.toml"), text) {
            Ok(_) => String::new(),
            Err(errors) => crate::config::describe(&errors),
        }
    }

    #[test]
    fn listen_is_one_address_or_a_list_and_on_loopback_by_default() {
        let config = Config::parse(Path::new("w.toml"), "").unwrap();
        assert_eq!(config.http.listen, ["127.0.0.1:8786".parse().unwrap()]);
        let one = Config::parse(Path::new("w.toml"), "[http]\nlisten = \"[::1]:80\"\n").unwrap();
        assert_eq!(one.http.listen, ["[::1]:80".parse().unwrap()]);
        let off = Config::parse(Path::new("w.toml"), "[http]\nlisten = []\n").unwrap();
        assert!(off.http.listen.is_empty());
    }

    #[test]
    fn bad_addresses_and_open_listeners_without_a_token_are_located() {
        assert_eq!(
            errors("[http]\nlisten = \"localhost\"\n"),
            "wanwatch.toml:2:10: http.listen: `localhost` is not an address and port (e.g. \"127.0.0.1:8786\" or \"[::1]:8786\")"
        );
        assert_eq!(
            errors("[http]\nlisten = [\"127.0.0.1:1\", \"192.168.1.2:8786\"]\n"),
            "wanwatch.toml:2:10: http.listen: 192.168.1.2:8786 is not a loopback address: set [http] token, which every request must then carry as `Authorization: Bearer <token>`"
        );
        assert_eq!(
            errors("[http]\nlisten = \"0.0.0.0:8786\"\ntoken = \"a-long-secret\"\n"),
            ""
        );
        assert_eq!(
            errors("[http]\ntoken = \" \"\n"),
            "wanwatch.toml:2:9: http.token: must not be empty"
        );
    }

    #[test]
    fn the_token_is_never_shown() {
        let config = Config::parse(
            Path::new("w.toml"),
            "[http]\ntoken = \"tok-visible-never\"\n",
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("tok-visible-never"));
    }
}
