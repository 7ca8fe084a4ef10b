//! Endpoints answered from the history database, each query on a blocking
//! thread with a connection of its own (SQLite reads wait for the disk).

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::status::json;
use super::window::{Window, WindowQuery};
use crate::history::{HistoryDb, HistoryError, Recorder};

const DAY: Duration = Duration::from_secs(86_400);

pub fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "history is not available (see the daemon's log for why)",
    )
}

/// Runs `query` against the recorder's database on a blocking thread.
pub async fn read<T: Send + 'static>(
    recorder: &Recorder,
    query: impl FnOnce(&HistoryDb) -> Result<T, HistoryError> + Send + 'static,
) -> Result<T, ApiError> {
    let database = recorder.database();
    tokio::task::spawn_blocking(move || query(&HistoryDb::open(&database)?))
        .await
        .map_err(|e| ApiError::internal("the history query did not complete", e))?
        .map_err(|e| {
            tracing::warn!("API: history: {e}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the history database cannot answer: {e}"),
            )
        })
}

/// Runs `query` against the daemon's history, or answers 503 when it has
/// none.
pub async fn read_history<T: Send + 'static>(
    state: &AppState,
    query: impl FnOnce(&HistoryDb) -> Result<T, HistoryError> + Send + 'static,
) -> Result<T, ApiError> {
    read(state.history.as_ref().ok_or_else(unavailable)?, query).await
}

/// The events of one kind in the window, oldest first.
async fn of_kind(
    state: &AppState,
    kind: &'static str,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let w = Window::of(query, 7 * DAY)?;
    let events = read_history(state, move |db| {
        db.events(kind, w.since_ms, w.until_ms, w.limit)
    })
    .await?;
    Ok(json(&events))
}

/// `GET /api/v1/transitions?since=&until=&limit=`: WAN state changes.
pub async fn transitions(
    State(state): State<AppState>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    of_kind(&state, "wan", query).await
}

/// `GET /api/v1/power?since=&until=&limit=`: mains power changes.
pub async fn power(
    State(state): State<AppState>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    of_kind(&state, "power", query).await
}

/// `GET /api/v1/quality?since=&until=&limit=`: the link becoming degraded
/// and back to normal.
pub async fn quality(
    State(state): State<AppState>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    of_kind(&state, "quality", query).await
}

/// `GET /api/v1/actions?since=&until=&limit=`: power cycles and
/// notifications requested, with their outcome.
pub async fn actions(
    State(state): State<AppState>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    of_kind(&state, "action", query).await
}

/// `GET /api/v1/outages?since=&until=`: outages with their cause, length
/// and cycles.
pub async fn outages(
    State(state): State<AppState>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let w = Window::of(query, 30 * DAY)?;
    let mut outages = read_history(&state, move |db| db.outages(w.since_ms, w.until_ms)).await?;
    // The most recent ones, as with the other lists.
    let excess = outages.len().saturating_sub(w.limit);
    outages.drain(..excess);
    Ok(json(&outages))
}

/// `GET /api/v1/stats?since=&until=`: uptime, outages, MTTR and MTBF,
/// cycles, and per target loss and round trip.
pub async fn stats(
    State(state): State<AppState>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let w = Window::of(query, 30 * DAY)?;
    let stats = read_history(&state, move |db| db.stats(w.since_ms, w.until_ms)).await?;
    Ok(json(&stats))
}
