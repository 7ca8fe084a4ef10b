//! The watcher's page at `/`: its sites and their outages, in the
//! daemon's dashboard style (the same style sheet and icon, served from
//! the binary; nothing from another origin). It reads the JSON API.

use std::sync::Arc;

use axum::Router;

use super::service::Watcher;
use crate::api::dashboard::{Asset, ICON, STYLE, asset, asset_routes};

static ASSETS: [&Asset; 4] = [
    &asset!(
        "/",
        include_str!("dashboard/index.html"),
        "text/html; charset=utf-8"
    ),
    &asset!(
        "/dashboard/watcher.js",
        include_str!("dashboard/watcher.js"),
        "text/javascript; charset=utf-8"
    ),
    &STYLE,
    &ICON,
];

/// `GET /` and the page's assets under `/dashboard/`.
pub fn routes() -> Router<Arc<Watcher>> {
    asset_routes(&ASSETS)
}
