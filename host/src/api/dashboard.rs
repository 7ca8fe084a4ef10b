//! The dashboard: one page and its assets, compiled into the binary. It
//! must work with the WAN down, so nothing comes from a CDN: the page draws
//! its own charts from the JSON API and follows the event stream (see
//! `docs/dashboard.md`). Its one endpoint of its own, `/dashboard/series`,
//! gives the round-trip and loss charts their points.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use serde::Serialize;

use super::error::ApiError;
use super::window::{Window, WindowQuery};
use super::{AppState, history, status};
use crate::history::Bucket;

/// A file of the page, served as is.
pub(crate) struct Asset {
    pub(crate) path: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static str,
    /// A strong validator, fixed when the binary is built: a browser asks
    /// again on each load (`no-cache`) and gets a body-less 304 until the
    /// daemon is upgraded.
    pub(crate) etag: &'static str,
}

/// FNV-1a: not cryptographic, only to tell versions of a file apart, and
/// computable at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `"` + 16 hex digits of the hash + `"`, built at compile time.
pub(crate) const fn etag_of(body: &str) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = fnv1a(body.as_bytes());
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

/// An [`Asset`] of `$body` (an `include_str!`), its ETag computed when
/// the binary is built. The watcher's dashboard builds its own with it.
macro_rules! asset {
    ($path:literal, $body:expr, $content_type:literal) => {{
        const BODY: &str = $body;
        const ETAG: [u8; 18] = $crate::api::dashboard::etag_of(BODY);
        $crate::api::dashboard::Asset {
            path: $path,
            content_type: $content_type,
            body: BODY,
            etag: match std::str::from_utf8(&ETAG) {
                Ok(etag) => etag,
                Err(_) => panic!("an ETag is ASCII"),
            },
        }
    }};
}

pub(crate) use asset;

/// The style sheet and the icon, shared with the watcher's page.
pub(crate) static STYLE: Asset = asset!(
    "/dashboard/style.css",
    include_str!("dashboard/style.css"),
    "text/css; charset=utf-8"
);
pub(crate) static ICON: Asset = asset!(
    "/dashboard/icon.svg",
    include_str!("dashboard/icon.svg"),
    "image/svg+xml"
);

static ASSETS: [&Asset; 4] = [
    &asset!(
        "/",
        include_str!("dashboard/index.html"),
        "text/html; charset=utf-8"
    ),
    &asset!(
        "/dashboard/app.js",
        include_str!("dashboard/app.js"),
        "text/javascript; charset=utf-8"
    ),
    &STYLE,
    &ICON,
];

/// The page loads only what the daemon serves: no inline script, no other
/// origin (the API and the event stream are on this one).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// `GET /`, the page's assets under `/dashboard/`, and the charts' data.
pub fn routes() -> Router<AppState> {
    asset_routes(&ASSETS).route("/dashboard/series", get(series))
}

/// A `GET` route for each of `assets`.
pub(crate) fn asset_routes<S: Clone + Send + Sync + 'static>(
    assets: &'static [&'static Asset],
) -> Router<S> {
    assets.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { asset.serve(&headers) }),
        )
    })
}

/// `GET /dashboard/series?since=&until=`: round trip and loss per target,
/// summed into buckets from the history's per-minute (or per-hour)
/// aggregates (see docs/dashboard.md). The window is the API's (`since`
/// defaults to a day).
async fn series(
    State(state): State<AppState>,
    query: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let w = Window::of(query, Duration::from_secs(86_400))?;
    let bucket_ms = bucket_ms(w.since_ms, w.until_ms);
    let found = history::read_history(&state, move |db| {
        db.buckets(w.since_ms, w.until_ms, bucket_ms)
    })
    .await?;
    Ok(status::json(&Series::new(bucket_ms, found)))
}

impl Asset {
    fn serve(&self, request: &HeaderMap) -> Response {
        let fresh = request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == self.etag || tag == "*");
        let headers = [
            (header::ETAG, HeaderValue::from_static(self.etag)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ];
        if fresh {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (
            headers,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            )],
            self.body,
        )
            .into_response()
    }
}

/// Points per target in a chart: one every 4 min over a day, every 2 h
/// over 30 days.
const POINTS: u64 = 360;
const MINUTE_MS: u64 = 60_000;

/// Round trip and loss per target over a window, in buckets of whole
/// minutes.
#[derive(Debug, PartialEq, Serialize)]
struct Series {
    bucket_ms: u64,
    targets: Vec<TargetSeries>,
}

#[derive(Debug, PartialEq, Serialize)]
struct TargetSeries {
    target: String,
    /// Buckets with at least one probe, oldest first.
    points: Vec<Point>,
}

#[derive(Debug, PartialEq, Serialize)]
struct Point {
    /// The middle of the bucket.
    at_ms: u64,
    sent: u64,
    answered: u64,
    /// The mean of the round trips measured; None when none was.
    rtt_ms: Option<f64>,
}

/// Buckets for `[since_ms, until_ms)`: about [`POINTS`] (rounded to whole
/// minutes: "the last 24 h" asked a few ms late still gets 4 min), at
/// least a minute each. Aligned on multiples of their length (by the
/// history), so a chart redrawn a minute later keeps its points where they
/// were.
fn bucket_ms(since_ms: u64, until_ms: u64) -> u64 {
    let span = until_ms.saturating_sub(since_ms);
    let minutes = (span / POINTS + MINUTE_MS / 2) / MINUTE_MS;
    minutes.max(1) * MINUTE_MS
}

impl Series {
    fn new(bucket_ms: u64, found: BTreeMap<String, Vec<Bucket>>) -> Series {
        let targets = found
            .into_iter()
            .map(|(target, buckets)| TargetSeries {
                target,
                points: buckets
                    .into_iter()
                    .map(|b| Point {
                        at_ms: b.start_ms + bucket_ms / 2,
                        sent: b.sent,
                        answered: b.answered,
                        // Kinds that answer without a round trip (HTTP) sum
                        // none: no mean of nothing.
                        rtt_ms: (b.rtt_sum_us > 0 && b.answered > 0)
                            .then(|| (b.rtt_sum_us / b.answered) as f64 / 1000.0),
                    })
                    .collect(),
            })
            .collect();
        Series { bucket_ms, targets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_asset_has_its_own_quoted_etag() {
        let tags: std::collections::BTreeSet<_> = ASSETS.iter().map(|a| a.etag).collect();
        assert_eq!(tags.len(), ASSETS.len());
        for tag in tags {
            assert!(tag.len() == 18 && tag.starts_with('"') && tag.ends_with('"'));
        }
    }

    #[test]
    fn a_matching_if_none_match_gets_a_304_without_a_body() {
        let asset = &ASSETS[1];
        let mut request = HeaderMap::new();
        request.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", W/{}", asset.etag)).unwrap(),
        );
        assert_eq!(asset.serve(&request).status(), StatusCode::NOT_MODIFIED);
        let fresh = asset.serve(&HeaderMap::new());
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(
            fresh.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }

    #[test]
    fn the_page_references_only_assets_the_daemon_serves() {
        let page = ASSETS[0].body;
        for reference in page.split(['"', '\'']).filter(|s| s.starts_with('/')) {
            assert!(
                ASSETS.iter().any(|a| a.path == reference),
                "{reference} is not served"
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    #[test]
    fn buckets_are_whole_minutes_about_points_per_window() {
        const DAY: u64 = 86_400_000;
        assert_eq!(bucket_ms(0, 3_600_000), MINUTE_MS);
        assert_eq!(bucket_ms(0, DAY), 4 * MINUTE_MS);
        assert_eq!(bucket_ms(5, 5 + DAY + 40), 4 * MINUTE_MS);
        assert_eq!(bucket_ms(0, 7 * DAY), 28 * MINUTE_MS);
        assert_eq!(bucket_ms(0, 30 * DAY), 120 * MINUTE_MS);
    }

    #[test]
    fn a_series_has_loss_and_the_mean_measured_round_trip_per_bucket() {
        let bucket = |start_ms, sent, answered, rtt_sum_us| Bucket {
            start_ms,
            sent,
            answered,
            rtt_sum_us,
        };
        let found = BTreeMap::from([
            (
                "dns".to_owned(),
                vec![bucket(60_000, 3, 2, 30_500), bucket(180_000, 1, 0, 0)],
            ),
            ("web".to_owned(), vec![bucket(0, 1, 1, 0)]),
        ]);
        let series = Series::new(MINUTE_MS, found);
        let dns = &series.targets[0];
        assert_eq!(dns.target, "dns");
        assert_eq!(
            dns.points,
            [
                Point {
                    at_ms: 90_000,
                    sent: 3,
                    answered: 2,
                    rtt_ms: Some(15.25)
                },
                Point {
                    at_ms: 210_000,
                    sent: 1,
                    answered: 0,
                    rtt_ms: None
                },
            ]
        );
        // Answered without a round trip (an HTTP probe): no mean of nothing.
        assert_eq!(series.targets[1].points[0].rtt_ms, None);
        assert_eq!(series.targets[1].points[0].answered, 1);
    }
}
