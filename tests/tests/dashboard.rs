//! The dashboard in a real headless Chromium against the live daemon: the
//! page loads without a console error, shows the state, and follows an
//! outage as it happens, without a reload. Screenshots (desktop and phone
//! width) are kept in target/artifacts/.
//!
//! The link is a TCP target on 127.0.0.1 that the test cuts and restores;
//! the API listens on loopback. No ICMP, no root.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use wanwatch_tests::link::Link;
use wanwatch_tests::webdriver::{self, Browser};
use wanwatch_tests::{DaemonProcess, skip, wait_for};

const WAIT: Duration = Duration::from_secs(30);
/// Every asset the page loads, together (the budget).
const PAGE_WEIGHT_BUDGET: u64 = 300 * 1024;

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

fn daemon(dir: &Path, link: &Link, http_port: u16) -> DaemonProcess {
    let config = dir.join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n",
            link.daemon_config(dir)
        ),
    )
    .unwrap();
    DaemonProcess::run(env!("CARGO_BIN_EXE_wanwatch"), &config, Stdio::null())
}

/// Waits until something listens on the port.
fn wait_listening(port: u16) {
    let start = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(start.elapsed() < WAIT, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// target/artifacts/, where CI keeps what a run leaves to look at.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The whole page at `width`, as a PNG in `path`.
fn screenshot(browser: &Browser, width: u32, mobile: bool, path: &Path) {
    browser.viewport(width, 900, mobile);
    let redrawn = "return [...document.querySelectorAll('.chart svg')] \
        .every(s => Math.abs(s.viewBox.baseVal.width - s.parentNode.clientWidth) < 2)";
    browser.wait_until("the charts redrawn for the width", WAIT, redrawn);
    let height = browser.eval("return document.documentElement.scrollHeight");
    browser.viewport(width, height.as_u64().expect("a height") as u32, mobile);
    browser.screenshot(path);
    println!("screenshot: {}", path.display());
}

fn text(browser: &Browser, id: &str) -> Value {
    browser.eval(&format!(
        "return document.getElementById('{id}').textContent"
    ))
}

#[test]
fn the_dashboard_follows_an_outage_live_without_console_errors() {
    if let Some(reason) = webdriver::unavailable() {
        skip(&reason);
        return;
    }
    let link = Link::up();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _daemon = daemon(dir.path(), &link, port);
    let status_file = dir.path().join("status.json");
    wait_for(&status_file, "the link up", WAIT, |s| s["state"] == "up");
    wait_listening(port);

    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://127.0.0.1:{port}/"));
    browser.wait_until(
        "the page to show the link up, its stream connected",
        WAIT,
        "return document.getElementById('state')?.textContent === 'up' \
         && document.getElementById('live')?.dataset.live === 'live'",
    );
    // Survives only if the page is never reloaded.
    browser.eval("window.sameLoad = true; return true");

    // The page and its assets, as loaded: not the data the page fetches.
    let weight = browser.eval(
        "return performance.getEntriesByType('navigation') \
           .concat(performance.getEntriesByType('resource') \
             .filter(e => e.initiatorType !== 'fetch' && !new URL(e.name).pathname.startsWith('/api/'))) \
           .reduce((sum, e) => sum + e.encodedBodySize, 0)",
    );
    let weight = weight.as_u64().expect("a size in bytes");
    let first_paint = browser.eval(
        "const p = performance.getEntriesByName('first-contentful-paint')[0]; \
         return p ? p.startTime : null",
    );
    println!("page weight: {weight} bytes; first contentful paint: {first_paint} ms");
    assert!(
        weight > 0 && weight < PAGE_WEIGHT_BUDGET,
        "page weight {weight} bytes"
    );
    assert!(first_paint.is_number(), "the page painted");

    link.cut();
    wait_for(&status_file, "the link down", WAIT, |s| {
        s["state"] == "down"
    });
    let shown = browser.wait_until(
        "the page to show the link down, told by the event stream",
        WAIT,
        "const live = document.getElementById('live'); \
         return document.getElementById('state')?.textContent === 'down' \
           && Number(live.dataset.events) >= 1 \
           && document.querySelector('#timeline .seg-down') !== null \
           && live.dataset.events",
    );
    println!("events received while down: {shown}");
    assert_eq!(browser.eval("return window.sameLoad === true"), true);

    link.restore();
    wait_for(&status_file, "the link up again", WAIT, |s| {
        s["state"] == "up"
    });
    browser.wait_until(
        "the page to show the link up again and the outage in its table",
        WAIT,
        "return document.getElementById('state')?.textContent === 'up' \
         && document.querySelectorAll('#outages tbody td:not(.empty)').length > 0",
    );
    assert_eq!(browser.eval("return window.sameLoad === true"), true);
    assert_eq!(text(&browser, "live"), "live");

    let dir = artifacts();
    screenshot(&browser, 1280, false, &dir.join("dashboard.png"));
    screenshot(&browser, 390, true, &dir.join("dashboard-phone.png"));
    let phone_overflow = browser
        .eval("return document.documentElement.scrollWidth > document.documentElement.clientWidth");
    assert_eq!(
        phone_overflow, false,
        "the page scrolls sideways on a phone"
    );

    let errors: Vec<Value> = browser
        .console()
        .into_iter()
        .filter(|m| m["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
