//! Endpoints answered from the status the daemon last wrote.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// `GET /api/v1/status`: what the status file holds.
pub async fn status(State(state): State<AppState>) -> Response {
    json(&*state.status.borrow())
}

/// Serialized while the status is borrowed, without copying it.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => ApiError::internal("cannot serialize the answer", e).into_response(),
    }
}
