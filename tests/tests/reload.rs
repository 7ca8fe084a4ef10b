//! New plugin versions while the plugin runs: quarantine and its end, the
//! swap itself ([`Plugin::reload`]), the contract version check, and hot
//! reload from the file ([`HotReload`]) raced the ways editors and build
//! tools write files.
//!
//! Versions of a plugin are tests/plugins/probe-plugin with a custom section
//! appended: other bytes, so another hash, the same behaviour.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wanwatch::clock::SystemClock;
use wanwatch::plugin::{
    CallErrorKind, Event, HotReload, Plugin, PluginHealth, QUARANTINE_AFTER, Runner, Runtime,
};
use wanwatch::state::WanState;
use wanwatch_tests::{Recorded, RecordingSwitch, plugin_wasm, runtime, test_spec, wan_event};

/// Generous bound for things that should take milliseconds: CI machines are slow.
const PATIENCE: Duration = Duration::from_secs(20);

fn probe_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(plugin_wasm("probe-plugin")).expect("the probe plugin"))
}

/// Version `n` of the probe plugin: its bytes plus a custom section holding `n`.
fn version(n: u32) -> Vec<u8> {
    const NAME: &[u8] = b"wanwatch-test-version";
    let mut bytes = probe_bytes().to_vec();
    let size = 1 + NAME.len() + 4;
    bytes.push(0); // custom section
    bytes.push(u8::try_from(size).expect("a one-byte LEB128 size"));
    bytes.push(u8::try_from(NAME.len()).expect("a one-byte LEB128 length"));
    bytes.extend_from_slice(NAME);
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes
}

/// The version hash the host shows for `bytes`.
fn hash_of(bytes: &[u8]) -> String {
    wanwatch::plugin::version_hash(bytes)
}

struct World {
    recorded: Recorded,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World {
            recorded: Recorded::new(Arc::new(SystemClock), RecordingSwitch::default()),
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    /// The plugin's file, in the world's directory.
    fn file(&self) -> PathBuf {
        self.dir.path().join("probe.wasm")
    }

    /// Writes version `n` to the plugin's file and loads it with `settings`.
    fn load(&self, n: u32, settings: Value) -> Plugin {
        std::fs::write(self.file(), version(n)).expect("write the plugin");
        let spec = test_spec("probe", self.file(), &settings);
        let host = self.recorded.host(Some(self.dir.path().join("kv")));
        runtime().load(spec, host).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Version `n` running under a [`Runner`], its file watched.
    fn live(&self, n: u32, settings: Value) -> (Runner, HotReload) {
        let runner = Runner::spawn(self.load(n, settings), self.recorded.clock.clone());
        let reload = HotReload::start(runtime().clone(), std::slice::from_ref(&runner))
            .expect("the watcher starts");
        (runner, reload)
    }

    /// The reports notified so far: (callback, body).
    fn reports(&self) -> Vec<(String, Value)> {
        self.recorded.reports("probe")
    }
}

fn up() -> Event {
    wan_event(WanState::Down, WanState::Up)
}

fn down() -> Event {
    wan_event(WanState::Up, WanState::Down)
}

/// Waits until the runner's health satisfies `done`, or fails with it.
fn wait_for(runner: &Runner, what: &str, done: impl Fn(&PluginHealth) -> bool) -> PluginHealth {
    let start = Instant::now();
    loop {
        let health = runner.health();
        if done(&health) {
            return health;
        }
        assert!(start.elapsed() < PATIENCE, "{what}: {health:#?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lets the watcher see and settle whatever happened last.
fn settle() {
    std::thread::sleep(wanwatch::plugin::DEBOUNCE * 3);
}

/// Replaces `path` the way build tools do: a new file renamed over it.
fn rename_over(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn failing_plugins_are_quarantined_until_a_new_version() {
    let world = World::new();
    let mut plugin = world.load(
        1,
        json!({ "on-wan-down": { "fault": "error" }, "on-wan-up": { "report": false } }),
    );
    for _ in 0..QUARANTINE_AFTER {
        let err = plugin.call(&down()).unwrap_err();
        assert_eq!(err.kind, CallErrorKind::GuestError);
    }
    let health = plugin.health();
    assert!(health.quarantined, "{health:#?}");
    assert_eq!(health.calls, u64::from(QUARANTINE_AFTER));

    // Not called, whatever the event, and not counted as a call.
    let err = plugin.call(&up()).unwrap_err();
    assert_eq!(err.kind, CallErrorKind::Quarantined);
    assert!(
        err.to_string()
            .contains("quarantined after 5 failures in a row"),
        "{err}"
    );
    assert_eq!(plugin.health().calls, u64::from(QUARANTINE_AFTER));

    // The same content again is a new version all the same for the plugin;
    // the watcher is what skips unchanged content.
    plugin.reload(runtime(), &version(2)).expect("reload");
    let health = plugin.health();
    assert!(!health.quarantined);
    assert_eq!(health.consecutive_failures, 0);
    plugin.call(&up()).expect("called again");
}

#[test]
fn a_reload_keeps_the_kv_store_and_the_timers() {
    let world = World::new();
    let mut plugin = world.load(1, json!({ "on-wan-down": { "set": [["t1", 60000]] } }));
    let first = plugin.health();
    assert_eq!(first.version, hash_of(&version(1)));
    plugin.call(&down()).expect("down");
    let timer = plugin.next_timer().expect("a timer");

    plugin.reload(runtime(), &version(2)).expect("reload");
    let health = plugin.health();
    assert_eq!(health.version, hash_of(&version(2)));
    assert_ne!(health.version, first.version);
    assert_eq!(health.reloads, 1);
    assert!(health.loaded_at_ms >= first.loaded_at_ms);
    assert_eq!(plugin.next_timer(), Some(timer), "timers survive");

    plugin.call(&up()).expect("up");
    let (callback, report) = world.reports().pop().expect("a report");
    assert_eq!(callback, "on-wan-up");
    assert_eq!(report["counter"], 2, "the kv store survives: {report}");
    assert_eq!(report["instance_calls"], 1, "a new instance: {report}");
}

#[test]
fn a_component_for_another_contract_version_is_refused_by_name() {
    let bytes = std::fs::read(plugin_wasm("wrong-version")).expect("the plugin");
    let err = runtime()
        .prepare("future", "future.wasm", &bytes)
        .err()
        .expect("refused");
    assert_eq!(
        err.to_string(),
        "plugin `future` (future.wasm): was built for wanwatch:policy@0.9.0, this host supports 0.1.x, 0.2.x"
    );
}

#[test]
fn hot_reload_swaps_in_a_file_renamed_over_the_old_one() {
    let world = World::new();
    let (runner, _reload) = world.live(1, json!({}));
    let started = runner.health();
    rename_over(&world.file(), &version(2));
    let want = hash_of(&version(2));
    let health = wait_for(&runner, "version 2", |h| h.version == want);
    assert_eq!(health.reloads, 1);
    assert!(health.loaded_at_ms >= started.loaded_at_ms);
    assert_eq!(health.last_error, None);

    // The new version handles the next callback, with the kv store kept.
    runner.send(up());
    let health = wait_for(&runner, "a call", |h| h.calls == 1);
    assert_eq!(health.failures, 0);
    let (_, report) = world.reports().pop().expect("a report");
    assert_eq!(report["instance_calls"], 1);

    // A second rename works as well: the directory, not the file, is watched.
    rename_over(&world.file(), &version(3));
    let want = hash_of(&version(3));
    wait_for(&runner, "version 3", |h| h.version == want);
    runner.shutdown();
}

#[test]
fn a_file_written_in_small_chunks_is_loaded_once_complete() {
    let world = World::new();
    let (runner, _reload) = world.live(1, json!({}));
    let bytes = version(2);
    // Pauses shorter than the debounce: the watcher waits for the end.
    let mut file = std::fs::File::create(world.file()).expect("create");
    for chunk in bytes.chunks(bytes.len() / 8 + 1) {
        std::io::Write::write_all(&mut file, chunk).expect("write");
        std::io::Write::flush(&mut file).expect("flush");
        std::thread::sleep(Duration::from_millis(30));
    }
    drop(file);
    let want = hash_of(&bytes);
    let health = wait_for(&runner, "version 2", |h| h.version == want);
    assert_eq!(health.reloads, 1, "one reload, not one per chunk");
    assert_eq!(health.last_error, None, "no partial file was tried");

    // Pauses longer than the debounce: the partial files are tried and
    // refused, the running version stays, and the complete file wins.
    let bytes = version(3);
    let mut file = std::fs::File::create(world.file()).expect("create");
    for chunk in bytes.chunks(bytes.len() / 2 + 1) {
        std::io::Write::write_all(&mut file, chunk).expect("write");
        std::thread::sleep(wanwatch::plugin::DEBOUNCE * 2);
        let health = runner.health();
        if health.version != hash_of(&bytes) {
            assert_eq!(health.version, want, "only a complete file replaces");
        }
    }
    drop(file);
    let want = hash_of(&bytes);
    wait_for(&runner, "version 3", |h| h.version == want);
    runner.shutdown();
}

#[test]
fn fifty_quick_rewrites_end_on_the_last_version() {
    let world = World::new();
    let (runner, _reload) = world.live(1, json!({}));
    for n in 2..=51 {
        std::fs::write(world.file(), version(n)).expect("write");
        std::thread::sleep(Duration::from_millis(5));
    }
    let want = hash_of(&version(51));
    let health = wait_for(&runner, "version 51", |h| h.version == want);
    assert!(
        health.reloads < 10,
        "debounced, not one reload per write: {health:#?}"
    );
    settle();
    assert_eq!(runner.health().version, want, "and it stays there");
    runner.send(up());
    wait_for(&runner, "a call", |h| h.calls == 1 && h.failures == 0);
    runner.shutdown();
}

#[test]
fn a_deleted_or_truncated_file_leaves_the_running_version() {
    let world = World::new();
    let (runner, _reload) = world.live(1, json!({}));
    let running = runner.health().version;

    std::fs::remove_file(world.file()).expect("delete");
    let health = wait_for(&runner, "the error", |h| h.last_error.is_some());
    let error = health.last_error.unwrap_or_default();
    assert!(
        error.contains("cannot read the new version")
            && error.contains("the running version stays"),
        "{error}"
    );
    assert_eq!(health.version, running);
    runner.send(up());
    wait_for(&runner, "a call", |h| h.calls == 1 && h.failures == 0);

    // Restored, truncated: refused, with its reason.
    let bytes = version(2);
    std::fs::write(world.file(), &bytes[..bytes.len() / 2]).expect("write");
    let health = wait_for(&runner, "the error", |h| {
        h.last_error
            .as_ref()
            .is_some_and(|e| e.contains("is not a valid component"))
    });
    assert_eq!(health.version, running);
    // The same truncated content again is not tried again.
    let at = health.last_error_at_ms;
    std::fs::write(world.file(), &bytes[..bytes.len() / 2]).expect("write");
    settle();
    assert_eq!(
        runner.health().last_error_at_ms,
        at,
        "one error per content"
    );

    // Not wasm at all.
    std::fs::write(world.file(), b"#!/bin/sh\necho not a plugin\n").expect("write");
    wait_for(&runner, "the error", |h| {
        h.last_error
            .as_ref()
            .is_some_and(|e| e.contains("is not WebAssembly"))
    });
    // A core module: the header of one, and nothing more.
    std::fs::write(world.file(), b"\0asm\x01\0\0\0").expect("write");
    wait_for(&runner, "the error", |h| {
        h.last_error
            .as_ref()
            .is_some_and(|e| e.contains("is not a component"))
    });
    assert_eq!(runner.health().version, running);

    // Restored whole: loaded.
    std::fs::write(world.file(), &bytes).expect("write");
    let want = hash_of(&bytes);
    wait_for(&runner, "version 2", |h| h.version == want);
    runner.shutdown();
}

#[test]
fn a_good_version_clears_the_error_of_a_bad_one() {
    let world = World::new();
    let (runner, _reload) = world.live(1, json!({}));
    let bytes = version(2);
    rename_over(&world.file(), &bytes[..bytes.len() / 2]);
    wait_for(&runner, "the error", |h| h.last_error.is_some());

    rename_over(&world.file(), &bytes);
    let want = hash_of(&bytes);
    let health = wait_for(&runner, "version 2", |h| h.version == want);
    assert_eq!(health.last_error, None, "{health:#?}");
    assert_eq!(health.last_error_at_ms, None, "{health:#?}");
    runner.shutdown();
}

#[test]
fn a_new_version_that_traps_while_starting_leaves_the_running_one() {
    let world = World::new();
    let (runner, _reload) = world.live(1, json!({}));
    let running = runner.health().version;
    let bytes = std::fs::read(plugin_wasm("init-trap")).expect("the plugin");
    rename_over(&world.file(), &bytes);
    let health = wait_for(&runner, "the error", |h| h.last_error.is_some());
    let error = health.last_error.unwrap_or_default();
    assert!(
        error.contains("failed to start: trapped")
            && error.contains("init-trap fails while it is being instantiated"),
        "{error}"
    );
    assert_eq!(health.version, running);
    assert_eq!(health.reloads, 0);
    // Still the old version, which works.
    runner.send(up());
    let health = wait_for(&runner, "a call", |h| h.calls == 1);
    assert_eq!(health.failures, 0);
    assert_eq!(world.reports().pop().expect("a report").0, "on-wan-up");
    runner.shutdown();
}

#[test]
fn timers_armed_by_the_old_version_fire_in_the_new_one() {
    let world = World::new();
    let (runner, _reload) = world.live(1, json!({ "on-wan-down": { "set": [["t1", 5000]] } }));
    runner.send(down());
    wait_for(&runner, "the call", |h| h.calls == 1);
    rename_over(&world.file(), &version(2));
    let want = hash_of(&version(2));
    wait_for(&runner, "version 2", |h| h.version == want);
    let health = wait_for(&runner, "the timer", |h| h.calls == 2);
    assert_eq!(health.failures, 0);
    let (callback, report) = world.reports().pop().expect("a report");
    assert_eq!(callback, "on-timer");
    assert_eq!(report["timer"], "t1");
    assert_eq!(report["counter"], 2, "{report}");
    assert_eq!(
        report["instance_calls"], 1,
        "run by the new instance: {report}"
    );
    runner.shutdown();
}

#[test]
fn a_reconfigured_plugin_keeps_its_timers() {
    // What the daemon does when a plugin's config section changes: stop
    // the runner, load the plugin with its new settings, hand the timers on.
    let world = World::new();
    let runner = Runner::spawn(
        world.load(1, json!({ "on-wan-down": { "set": [["t1", 1500]] } })),
        world.recorded.clock.clone(),
    );
    runner.send(down());
    wait_for(&runner, "the call", |h| h.calls == 1);
    let mut old = runner.stop().expect("the plugin back");
    let mut successor = world.load(1, json!({ "on-timer": { "set": [["t2", 60000]] } }));
    // Read back from where the old one saved them, on the wall clock: to
    // the millisecond the two clocks are read apart.
    let (saved, kept) = (successor.next_timer().unwrap(), old.next_timer().unwrap());
    assert!(saved.abs_diff(kept) <= 2, "{saved} vs {kept}");
    old.hand_timers_to(&mut successor);
    assert_eq!(old.next_timer(), None, "moved, not copied");
    let runner = Runner::spawn(successor, world.recorded.clock.clone());
    wait_for(&runner, "the timer", |h| h.calls == 1);
    let (callback, report) = world.reports().pop().expect("a report");
    assert_eq!(callback, "on-timer");
    assert_eq!(report["timer"], "t1", "armed under the old settings");
    assert_eq!(report["set"]["t2"], "ok", "run with the new ones: {report}");
    runner.shutdown();
}

#[test]
fn a_restart_with_a_broken_file_runs_the_last_good_version() {
    let world = World::new();
    let cache = world.dir.path().join("cache");
    let start = |runtime: &Runtime| {
        let spec = test_spec("probe", world.file(), &json!({}));
        runtime.load(spec, world.recorded.host(Some(world.dir.path().join("kv"))))
    };
    let cut_short = |n: u32| {
        let bytes = version(n);
        std::fs::write(world.file(), &bytes[..bytes.len() / 2]).expect("write");
    };
    std::fs::write(world.file(), version(1)).expect("write");
    let mut plugin = start(&Runtime::with_cache(cache.clone()).expect("a runtime"))
        .unwrap_or_else(|e| panic!("{e}"));
    // A new version swapped in while running becomes the one kept.
    let cached = Runtime::with_cache(cache.clone()).expect("a runtime");
    plugin.reload(&cached, &version(2)).expect("reload");
    drop(plugin);

    // The file is cut short (a build during a power cut), then the daemon
    // restarts: the last version that ran starts, with the file's error.
    cut_short(3);
    let restarted = Runtime::with_cache(cache.clone()).expect("a runtime");
    let mut plugin = start(&restarted).unwrap_or_else(|e| panic!("{e}"));
    let health = plugin.health();
    assert_eq!(health.version, hash_of(&version(2)));
    let error = health.last_error.unwrap_or_default();
    assert!(
        error.starts_with("running its last good version: ")
            && error.contains("is not a valid component"),
        "{error}"
    );
    assert_eq!(plugin.file(), Some(world.file().as_path()), "still watched");
    plugin.call(&up()).expect("it runs");
    drop(plugin);

    // Without a cache nothing is kept, and the file's error stands.
    let error = start(runtime()).err().expect("refused").to_string();
    assert!(error.contains("is not a valid component"), "{error}");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let cache = dir.path().join("cache");
    let bytes = version(7);
    let first = Runtime::with_cache(cache.clone()).expect("a runtime");
    first.prepare("p", "test", &bytes).expect("prepared");
    assert_eq!(first.compiled(), 1);
    first.prepare("p", "test", &bytes).expect("prepared");
    assert_eq!(first.compiled(), 1, "found in the cache");

    // A restart: a new runtime, the same cache, nothing compiled.
    let second = Runtime::with_cache(cache.clone()).expect("a runtime");
    let prepared = second.prepare("p", "test", &bytes).expect("prepared");
    assert_eq!(second.compiled(), 0);
    assert_eq!(prepared.version(), hash_of(&bytes));

    // Other content is another entry, which replaces the one no plugin
    // uses any more; no temporary file is left behind.
    second.prepare("p", "test", &version(8)).expect("prepared");
    assert_eq!(second.compiled(), 1);
    let names = files_in(&cache);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].starts_with(&hash_of(&version(8))) && names[0].ends_with(".cwasm"),
        "keyed by the content hash: {names:?}"
    );
}

#[test]
fn the_compile_cache_keeps_only_the_versions_in_use() {
    let world = World::new();
    let cache = world.dir.path().join("cache");
    let start = |runtime: &Runtime| {
        let spec = test_spec("probe", world.file(), &json!({}));
        runtime
            .load(spec, world.recorded.host(Some(world.dir.path().join("kv"))))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    std::fs::write(world.file(), version(1)).expect("write");
    let runtime = Runtime::with_cache(cache.clone()).expect("a runtime");
    let mut plugin = start(&runtime);
    for n in 2..=4 {
        plugin.reload(&runtime, &version(n)).expect("reload");
    }
    drop(plugin);
    // The running version, which is also the last good one: nothing else.
    let names = files_in(&cache);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with(&hash_of(&version(4))), "{names:?}");
    assert_eq!(names[1], "last-good");
    assert_eq!(files_in(&cache.join("last-good")), ["probe.wasm"]);

    // A restart finds it compiled, and a broken file starts it.
    std::fs::write(world.file(), b"not wasm").expect("write");
    let restarted = Runtime::with_cache(cache.clone()).expect("a runtime");
    assert_eq!(start(&restarted).health().version, hash_of(&version(4)));
    assert_eq!(restarted.compiled(), 0);
}

/// The names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}
