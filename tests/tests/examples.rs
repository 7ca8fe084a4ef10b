//! The shipped example configs are valid configs: a user copies them first.
//! Parsed only: `wanwatch check` would contact the example plug addresses.
//! `watcher*.toml` are the watcher's (`wanwatch watcher check`), the rest
//! the daemon's; the systemd units pass `systemd-analyze verify`.

use std::path::Path;

use wanwatch::config::Config;
use wanwatch::watcher::WatcherConfig;

fn is_watcher_config(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("watcher"))
}

#[test]
fn every_example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") && !is_watcher_config(&path) {
            if let Err(errors) = Config::load(&path) {
                panic!("{}", wanwatch::config::describe(&errors));
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "found {seen} example configs in {}",
        dir.display()
    );
}

#[test]
fn the_complete_example_sets_up_every_part() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wanwatch.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(config.devices.contains_key("modem"));
    assert!(config.notify.ntfy.is_some());
    assert_eq!(config.power.devices.len(), 3);
    assert_eq!(
        config.plugins.keys().collect::<Vec<_>>(),
        ["powercycle", "notify"]
    );
}

/// The package's /etc/wanwatch/wanwatch.toml: the daemon starts on install,
/// so the config it starts with switches nothing and notifies nobody until
/// the user fills it in (a dry run on the built-in defaults).
#[test]
fn the_packaged_config_is_the_safe_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../debian/wanwatch.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(config.devices.is_empty());
    assert!(config.notify.ntfy.is_none());
    assert!(config.notify.webhook.is_empty());
    assert!(wanwatch::daemon::dry_run_reason(&config, false).is_some());
    assert!(config.targets.is_empty(), "the built-in targets");
}

#[test]
fn the_watcher_example_sets_up_every_part() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/watcher.toml");
    let config =
        WatcherConfig::load(&path).unwrap_or_else(|e| panic!("{}", wanwatch::config::describe(&e)));
    assert_eq!(config.sites.keys().collect::<Vec<_>>(), ["cabin", "home"]);
    assert!(config.notify.ntfy.is_some());
    assert!(config.token.is_some());
    assert!(config.remind_every.is_some());
}

/// The units, with the binary this test was built with in place of
/// /usr/bin/wanwatch, where the package installs it (verify checks that
/// it exists).
#[test]
fn the_systemd_units_verify() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        wanwatch_tests::skip("systemd-analyze is not installed");
        return;
    };
    assert!(out.status.success());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/systemd");
    let tmp = tempfile::tempdir().unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/usr/bin/wanwatch", env!("CARGO_BIN_EXE_wanwatch"));
        let unit = tmp.path().join(path.file_name().unwrap());
        std::fs::write(&unit, text).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{}: {stderr}",
            path.display()
        );
        seen += 1;
    }
    assert_eq!(seen, 2, "the daemon's unit and the watcher's");
}
