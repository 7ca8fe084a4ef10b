//! Prometheus metrics at `GET /metrics`.

use axum::Router;

use crate::api::AppState;

/// The exporter's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
