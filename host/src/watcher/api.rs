//! The watcher's HTTP routes: what the sites send (each with its own
//! token, see [`super::protocol`]) and what people read (the viewer token
//! when one is set): the sites, their outages, the dashboard. Errors are
//! the daemon API's JSON `{"error", "status"}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use super::dashboard;
use super::service::Watcher;
use super::store::Stored;
use crate::api::auth::{bearer, require_token, unauthorized};
use crate::api::error::{ApiError, as_json, method_not_allowed};
use crate::api::{BODY_TIMEOUT, REQUEST_TIMEOUT};

/// The largest request body: a report with a few dozen targets is a few
/// KB; a heartbeat a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Outages answered by default, and at most.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// Every route, with limits and JSON errors around them.
pub fn router(watcher: Arc<Watcher>) -> Router {
    let read = Router::new()
        .route("/api/v1/sites", get(sites))
        .route("/api/v1/sites/{site}", get(site))
        .route("/api/v1/sites/{site}/outages", get(site_outages))
        .route("/api/v1/outages", get(outages))
        .merge(dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(
            watcher.viewer.clone(),
            require_token,
        ));
    let sent = Router::new()
        .route("/api/v1/sites/{site}/heartbeat", post(heartbeat))
        .route("/api/v1/sites/{site}/reports", post(report));
    read.merge(sent)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::map_response(as_json))
        .with_state(watcher)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see docs/watcher.md)")
}

/// Why a site's request is refused.
enum Refusal {
    Unauthorized,
    BadBody(serde_json::Error),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized => unauthorized(
                "unknown site or wrong token (`Authorization: Bearer <the site's token>`)",
            ),
            Refusal::BadBody(e) => {
                ApiError::bad_request(format!("the body is not the expected JSON: {e}"))
                    .into_response()
            }
        }
    }
}

/// The site's request, authenticated before its body is read as `T`.
fn admit<T: DeserializeOwned>(
    watcher: &Watcher,
    site: &str,
    headers: &HeaderMap,
    peer: SocketAddr,
    body: &[u8],
) -> Result<T, Refusal> {
    watcher
        .authenticate(site, bearer(headers), peer.ip())
        .map_err(|_| Refusal::Unauthorized)?;
    serde_json::from_slice(body).map_err(Refusal::BadBody)
}

/// Runs blocking work of the watcher's (SQLite, the queue's fsync) off the
/// server's thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal("the watcher failed", e))
}

/// `POST /api/v1/sites/{site}/heartbeat`: 204.
async fn heartbeat(
    State(watcher): State<Arc<Watcher>>,
    Path(site): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let heartbeat = match admit(&watcher, &site, &headers, peer, &body) {
        Ok(heartbeat) => heartbeat,
        Err(refusal) => return refusal.into_response(),
    };
    match blocking(move || watcher.heartbeat(&site, &heartbeat)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/sites/{site}/reports`: 201 `{"stored": "new"}`, or 200
/// `{"stored": "duplicate"}` for an id already stored.
async fn report(
    State(watcher): State<Arc<Watcher>>,
    Path(site): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let report: super::protocol::OutageReport = match admit(&watcher, &site, &headers, peer, &body)
    {
        Ok(report) => report,
        Err(refusal) => return refusal.into_response(),
    };
    if report.id.is_empty() || report.id.len() > 128 {
        return ApiError::bad_request("a report's id is 1 to 128 characters").into_response();
    }
    let stored = blocking(move || watcher.report(&site, &report)).await;
    match stored {
        Ok(Ok(Stored::New)) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({"stored": "new"})),
        )
            .into_response(),
        Ok(Ok(Stored::Duplicate)) => {
            axum::Json(serde_json::json!({"stored": "duplicate"})).into_response()
        }
        Ok(Err(e)) => ApiError::internal("cannot store the report", e).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/sites`: `{"sites": [...]}`, in config order.
async fn sites(State(watcher): State<Arc<Watcher>>) -> Result<Response, ApiError> {
    let sites = blocking(move || watcher.sites())
        .await?
        .map_err(|e| ApiError::internal("cannot read the sites", e))?;
    Ok(axum::Json(serde_json::json!({ "sites": sites })).into_response())
}

/// `GET /api/v1/sites/{site}`.
async fn site(
    State(watcher): State<Arc<Watcher>>,
    Path(site): Path<String>,
) -> Result<Response, ApiError> {
    let found = blocking(move || watcher.site(&site))
        .await?
        .map_err(|e| ApiError::internal("cannot read the site", e))?;
    let site = found.ok_or_else(unknown_site)?;
    Ok(axum::Json(site).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    limit: Option<usize>,
}

pub fn limit(query: Result<Query<Limit>, QueryRejection>) -> Result<usize, ApiError> {
    let Query(Limit { limit }) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}"
        ))),
    }
}

fn unknown_site() -> ApiError {
    ApiError::not_found("no such site (see [sites.<name>] in the watcher's config)")
}

/// `GET /api/v1/sites/{site}/outages?limit=`: `{"outages": [...]}`, newest
/// first.
async fn site_outages(
    State(watcher): State<Arc<Watcher>>,
    Path(site): Path<String>,
    query: Result<Query<Limit>, QueryRejection>,
) -> Result<Response, ApiError> {
    let limit = limit(query)?;
    if !watcher.is_site(&site) {
        return Err(unknown_site());
    }
    let outages = blocking(move || watcher.outages(Some(&site), limit))
        .await?
        .map_err(|e| ApiError::internal("cannot read the outages", e))?;
    Ok(axum::Json(serde_json::json!({ "outages": outages })).into_response())
}

/// `GET /api/v1/outages?limit=`: every site's, newest first.
async fn outages(
    State(watcher): State<Arc<Watcher>>,
    query: Result<Query<Limit>, QueryRejection>,
) -> Result<Response, ApiError> {
    let limit = limit(query)?;
    let outages = blocking(move || watcher.outages(None, limit))
        .await?
        .map_err(|e| ApiError::internal("cannot read the outages", e))?;
    Ok(axum::Json(serde_json::json!({ "outages": outages })).into_response())
}
