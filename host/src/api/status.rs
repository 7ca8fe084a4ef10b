//! Endpoints answered from the status the daemon last wrote: cheap, and
//! never touching the disk.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// `GET /api/v1/status`: what the status file holds.
pub async fn status(State(state): State<AppState>) -> Response {
    json(&*state.status.borrow())
}

/// `GET /api/v1/targets`: each target's last probe.
pub async fn targets(State(state): State<AppState>) -> Response {
    json(&state.status.borrow().targets)
}

/// `GET /api/v1/plugins`: each plugin's health, version and last fault,
/// and the requests refused for want of a grant.
pub async fn plugins(State(state): State<AppState>) -> Response {
    let status = state.status.borrow();
    json(&serde_json::json!({
        "plugins": status.plugins,
        "refusals": status.refusals,
    }))
}

/// `GET /api/v1/notifications`: the notification queue, per sink.
pub async fn notifications(State(state): State<AppState>) -> Response {
    let status = state.status.borrow();
    let queue = status.notifications.clone().unwrap_or_default();
    json(&serde_json::json!({
        "configured": status.notifications.is_some(),
        "queued": queue.queued,
        "sinks": queue.sinks,
    }))
}

/// Serialized while the status is borrowed, without copying it.
pub(super) fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => ApiError::internal("cannot serialize the answer", e).into_response(),
    }
}
