//! The dashboard: the page at `/` and its assets, compiled into the binary.

use axum::Router;

use super::AppState;

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
