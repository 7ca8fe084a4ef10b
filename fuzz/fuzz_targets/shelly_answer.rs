//! Shelly answers (Gen1 `/shelly`, `/relay/0`, `/settings`; Gen2+ JSON-RPC
//! frames and `WWW-Authenticate` challenges), as the driver reads them:
//! never a panic, and never the plug's password in what is shown.
//!
//! Input: one byte for the HTTP status, then the challenge header up to a
//! NUL byte (if any), then the body.
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wanwatch::config::{DeviceConfig, DeviceKind};
use wanwatch::drivers::shelly::Shelly;

const PASSWORD: &str = "s3cret-Pa55word";

static PLUG: LazyLock<Shelly> = LazyLock::new(|| {
    let config = DeviceConfig {
        kind: DeviceKind::Shelly,
        address: "192.0.2.1".into(),
        relay: 0,
        username: None,
        password: Some(PASSWORD.into()),
    };
    Shelly::new("modem", &config)
});

fuzz_target!(|data: &[u8]| {
    let Some((&status, rest)) = data.split_first() else {
        return;
    };
    let status = [200, 401, 404, 500, 400][usize::from(status) % 5];
    let (challenges, body) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (
            vec![String::from_utf8_lossy(&rest[..nul]).into_owned()],
            &rest[nul + 1..],
        ),
        None => (Vec::new(), rest),
    };
    // The password's start: an answer that holds the password, cut short,
    // must not show its start either (when nothing else in the challenge or
    // the body begins so).
    let start = &PASSWORD[..8];
    let text = String::from_utf8_lossy(rest);
    let once = text.contains(PASSWORD) && text.matches(start).count() == 1;
    for shown in PLUG.read_answer(status, challenges, body) {
        assert!(!shown.contains(PASSWORD), "{shown}");
        assert!(!(once && shown.contains(start)), "{shown}");
    }
});
