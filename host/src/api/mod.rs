//! The HTTP API: versioned JSON under `/api/v1/`, the event stream, and
//! the routes of the metrics exporter and the dashboard, on one server.
//!
//! The API only reads what the daemon publishes (the status as last
//! written, the history database, its live events) and asks it for two
//! things: a manual power cycle, through the same [`Actions`] gateway as
//! the plugins (same safety cap, same journal), and a probe round now.
//! See docs/api.md for the endpoints, authentication and limits.

pub mod auth;
pub mod dashboard;
pub mod error;
mod server;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Deserializer};
use tokio::sync::{Notify, watch};

use crate::actions::Actions;
use crate::notify::Secret;
use crate::status::Status;

pub use server::Server;

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
        let key = |k: &str| vec!["http".to_owned(), k.to_owned()];
        let mut errors = Vec::new();
        match &self.token {
            Some(token) if token.expose().trim().is_empty() => {
                errors.push((key("token"), "must not be empty".to_owned()));
            }
            Some(_) => {}
            None => {
                if let Some(open) = self.listen.iter().find(|a| !a.ip().is_loopback()) {
                    errors.push((
                        key("listen"),
                        format!(
                            "{open} is not a loopback address: set [http] token, which every request must then carry as `Authorization: Bearer <token>`"
                        ),
                    ));
                }
            }
        }
        errors
    }
}

/// `"127.0.0.1:8786"` or `["127.0.0.1:8786", "[::1]:8786"]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
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
    pub metrics: Arc<crate::metrics::Metrics>,
    token: Option<Arc<auth::Token>>,
}

/// What the daemon hands the API.
pub struct Parts {
    pub status: watch::Receiver<Status>,
    pub actions: Arc<Actions>,
    pub devices: Vec<String>,
    pub probe_now: Arc<Notify>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    fn new(parts: Parts, config: &HttpConfig) -> AppState {
        AppState {
            status: parts.status,
            actions: parts.actions,
            devices: parts.devices.into(),
            probe_now: parts.probe_now,
            metrics: parts.metrics,
            token: config
                .token
                .as_ref()
                .map(|t| Arc::new(auth::Token::new(t.expose()))),
        }
    }
}

/// Every route the server answers, with authentication, limits and JSON
/// errors around them.
pub fn router(state: AppState) -> Router {
    let api = Router::new().route("/api/v1/status", get(status::status));
    api.merge(crate::metrics::routes())
        .merge(dashboard::routes())
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::map_response(error::as_json))
        .with_state(state)
}
