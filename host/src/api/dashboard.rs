//! The dashboard: one page and its assets, compiled into the binary. It
//! must work with the WAN down, so nothing comes from a CDN: the page draws
//! its own charts from the JSON API and follows the event stream (see
//! `docs/dashboard.md`).

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::AppState;

/// A file of the page, served as is.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// A strong validator, fixed when the binary is built: a browser asks
    /// again on each load (`no-cache`) and gets a body-less 304 until the
    /// daemon is upgraded.
    etag: &'static str,
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
const fn etag_of(body: &str) -> [u8; 18] {
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

macro_rules! asset {
    ($path:literal, $file:literal, $content_type:literal) => {{
        const BODY: &str = include_str!($file);
        const ETAG: [u8; 18] = etag_of(BODY);
        Asset {
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

static ASSETS: [Asset; 4] = [
    asset!("/", "dashboard/index.html", "text/html; charset=utf-8"),
    asset!(
        "/dashboard/app.js",
        "dashboard/app.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/dashboard/style.css",
        "dashboard/style.css",
        "text/css; charset=utf-8"
    ),
    asset!("/dashboard/icon.svg", "dashboard/icon.svg", "image/svg+xml"),
];

/// The page loads only what the daemon serves: no inline script, no other
/// origin (the API and the event stream are on this one).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// `GET /` and the page's assets under `/dashboard/`.
pub fn routes() -> Router<AppState> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { asset.serve(&headers) }),
        )
    })
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
}
