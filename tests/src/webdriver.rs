//! A real headless Chromium, driven through chromedriver's W3C WebDriver
//! protocol (plain JSON over HTTP on loopback), for the dashboard's tests.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Flags that run Chromium here: as root (no sandbox), without a display
/// or GPU, and without any traffic of its own (updates, sync, QUIC probes):
/// the tests' network is loopback only.
const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Why a browser cannot be started here, if it cannot (for `skip`).
pub fn unavailable() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|tool| !Path::new(tool).exists())
        .map(|tool| format!("{tool} is not installed (Debian packages chromium, chromium-driver)"))
}

/// One browser session; closed, with its chromedriver, on drop.
pub struct Browser {
    driver: Child,
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A fresh browser (an empty profile) with a window of `width` ×
    /// `height` CSS pixels, keeping the console's messages for
    /// [`Browser::console`].
    pub fn start(width: u32, height: u32) -> Browser {
        let port = {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = wanwatch::http::builder(wanwatch::http::Timeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(60),
        })
        .no_proxy()
        .build()
        .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            client,
            runtime,
            session: String::new(),
            _profile: profile,
        };
        browser.wait_ready();
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        ));
        args.push(format!("--window-size={width},{height}"));
        let created = browser.call(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            }}})),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        browser
    }

    /// Polls chromedriver's `/status` until it accepts sessions.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.runtime.block_on(async {
                let answer = self
                    .client
                    .get(format!("{}/status", self.base))
                    .send()
                    .await
                    .ok()?;
                answer.json::<Value>().await.ok()
            });
            if status.is_some_and(|s| s["value"]["ready"] == true) {
                return;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One WebDriver command; its `value`. Panics on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let answer: Value = self.runtime.block_on(async {
            let request = match method {
                "GET" => self.client.get(url),
                "DELETE" => self.client.delete(url),
                _ => self.client.post(url).json(&body.unwrap_or(json!({}))),
            };
            let answer = request.send().await.expect("chromedriver answers");
            answer.json().await.expect("chromedriver answers JSON")
        });
        let value = answer["value"].clone();
        assert!(
            value.get("error").is_none(),
            "WebDriver {method} {path}: {value}"
        );
        value
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Loads `url` and waits until its `load` event.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body: `return ...`) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Polls `script` until it returns something truthy, and returns that;
    /// fails with `what` and the last value after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let value = self.eval(script);
            let truthy = !matches!(value, Value::Null | Value::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return value;
            }
            if start.elapsed() >= timeout {
                let page = self.eval("return location.href + '\\n' + document.body?.innerText");
                let console = self.console();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last: {value}\npage: {}\nconsole: {console:#?}",
                    page.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Shows the page in a viewport of `width` × `height` CSS pixels, as a
    /// phone (`mobile`: its viewport rules, touch) or a desktop would:
    /// through the DevTools protocol, as a window could not be made taller
    /// than the (virtual) screen.
    pub fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
            })),
        );
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot is base64"))
            .expect("a screenshot is base64");
        std::fs::write(path, png).unwrap();
    }

    /// The console's messages since the last call (chromedriver's browser
    /// log): `{level, message, source, timestamp}`.
    pub fn console(&self) -> Vec<Value> {
        let log = self.session_call("POST", "/se/log", Some(json!({ "type": "browser" })));
        log.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("{}/session/{}", self.base, self.session);
            let _ = self
                .runtime
                .block_on(async { self.client.delete(path).send().await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
