//! The HTTP APIs' query strings (the daemon's history window, the watcher's
//! `limit`), through axum's `Query` extractor as the handlers get them.
#![no_main]
use std::time::Duration;

use axum::extract::Query;
use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use wanwatch::api::window::{MAX_LIMIT, Window, WindowQuery};
use wanwatch::fuzzing::{WatcherLimit, watcher_limit};

fuzz_target!(|query: &str| {
    let Ok(uri) = format!("/api/v1/history/rounds?{query}").parse::<Uri>() else {
        return;
    };
    match Window::of(
        Query::<WindowQuery>::try_from_uri(&uri),
        Duration::from_secs(3600),
    ) {
        Ok(w) => assert!(
            w.since_ms <= w.until_ms && (1..=MAX_LIMIT).contains(&w.limit),
            "{w:?}"
        ),
        Err(e) => assert_eq!(e.status, 400, "{}", e.message),
    }
    if let Ok(limit) = watcher_limit(Query::<WatcherLimit>::try_from_uri(&uri)) {
        assert!(limit >= 1);
    }
});
