//! What the API may ask the daemon to do: a manual power cycle, and a
//! probe round now.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

use super::AppState;
use super::error::ApiError;
use crate::actions::{Actions, CAP_REFUSAL};

/// The name manual cycles are journalled under, beside the plugins'.
pub const REQUESTER: &str = "api";
/// How long the device stays off unless the request says otherwise: the
/// built-in powercycle policy's default.
pub const DEFAULT_OFF_SECONDS: u32 = 10;
/// The longest a request may keep a device off.
pub const MAX_OFF_SECONDS: u32 = 600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CycleRequest {
    off_seconds: Option<u32>,
}

/// `POST /api/v1/devices/{name}/cycle`, with an optional JSON body
/// `{"off_seconds": N}`: a power cycle through the plugins' gateway, so
/// the same safety cap and journal apply.
pub async fn cycle(
    State(state): State<AppState>,
    Path(device): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !state.devices.contains(&device) {
        let known = if state.devices.is_empty() {
            "no device is configured".to_owned()
        } else {
            format!("configured: {}", state.devices.join(", "))
        };
        return Err(ApiError::not_found(format!(
            "no device `{device}` ({known})"
        )));
    }
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        CycleRequest { off_seconds: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be JSON like {{\"off_seconds\": 10}}: {e}"
            ))
        })?
    };
    let off_seconds = request.off_seconds.unwrap_or(DEFAULT_OFF_SECONDS);
    if !(1..=MAX_OFF_SECONDS).contains(&off_seconds) {
        return Err(ApiError::bad_request(format!(
            "off_seconds must be 1 to {MAX_OFF_SECONDS}, not {off_seconds}"
        )));
    }
    let result = cycle_device(
        state.actions.clone(),
        REQUESTER,
        device.clone(),
        off_seconds,
    )
    .await
    .map_err(|e| ApiError::internal("the power cycle did not complete", e))?;
    match result {
        Ok(()) => {
            let outcome = if state.status.borrow().dry_run {
                "dry-run"
            } else {
                "done"
            };
            Ok(Json(serde_json::json!({
                "device": device,
                "off_seconds": off_seconds,
                "outcome": outcome,
            }))
            .into_response())
        }
        // The safety cap's answer (see actions::CycleCap).
        Err(reason) if reason.starts_with(CAP_REFUSAL) => {
            Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, reason))
        }
        // The drivers' word for a plug whose last cycle is not over.
        Err(reason) if reason.contains("already under way") => {
            Err(ApiError::new(StatusCode::CONFLICT, reason))
        }
        Err(reason) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the power cycle failed: {reason}"),
        )),
    }
}

/// A manual power cycle of `device` for `requester` (the API, a Home
/// Assistant button over MQTT): through the plugins' gateway, so the same
/// safety cap and journal apply. Err: the cycle's task panicked.
pub async fn cycle_device(
    actions: Arc<Actions>,
    requester: &'static str,
    device: String,
    off_seconds: u32,
) -> Result<Result<(), String>, tokio::task::JoinError> {
    // The plug confirms its flip-back: seconds, off the async threads.
    tokio::task::spawn_blocking(move || actions.power_cycle(requester, &device, off_seconds)).await
}

/// `POST /api/v1/probe`: a probe round now. Requests made while one is
/// pending are one round.
pub async fn probe(State(state): State<AppState>) -> Response {
    state.probe_now.notify_one();
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "probe": "requested" })),
    )
        .into_response()
}
