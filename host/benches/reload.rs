//! Hot reload, through the built-in `powercycle` plugin (versions of it are
//! its bytes plus a custom section, so each has its own hash):
//! - latency from the rename of a new file to the new version handling the
//!   next callback, target under 150 ms (compiling is most of it);
//! - a swap alone (prepare from the compile cache, then swap);
//! - 1,000 reload cycles: resident memory grows by less than 5 MB;
//! - a restart with an unchanged plugin set: plugins ready in under 50 ms,
//!   found compiled in the cache.
//!
//! cargo bench -p wanwatch --bench reload
//!
//! Figures, not a criterion sampling: the reload path is dominated by
//! compiling, which criterion's thousands of iterations would only repeat.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wanwatch::actions::Actions;
use wanwatch::clock::{Clock, SystemClock};
use wanwatch::config::PluginConfig;
use wanwatch::plugin::{
    Event, HostContext, HotReload, Plugin, PluginSpec, Runner, Runtime, WasmSource, builtin,
    version_hash,
};
use wanwatch::state::{Transition, WanState};

/// `powercycle` with a custom section holding `n`.
fn version(n: u32) -> Vec<u8> {
    let mut bytes = builtin::wasm("powercycle")
        .expect("the built-in plugin")
        .to_vec();
    let name = b"bench-version";
    bytes.extend_from_slice(&[0, (1 + name.len() + 4) as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes
}

fn host() -> HostContext {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    HostContext {
        actions: Arc::new(Actions::dry_run(clock.clone(), 4)),
        clock,
        kv_dir: None,
        heartbeats: Default::default(),
    }
}

fn load(runtime: &Runtime, name: &str, file: Option<&Path>) -> Plugin {
    let mut spec =
        PluginSpec::from_config(name, &PluginConfig::new(None)).expect("the built-in plugin");
    if let Some(file) = file {
        spec.source = WasmSource::File(file.to_owned());
    }
    runtime.load(spec, host()).unwrap_or_else(|e| panic!("{e}"))
}

fn sick() -> Event {
    Event::wan(Transition {
        previous: WanState::Up,
        current: WanState::Sick,
        at_ms: 1_700_000_000_000,
        previous_duration_ms: 1,
        local_fault: false,
        evidence: Vec::new(),
    })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Resident memory, from /proc/self/statm.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let runtime = Runtime::with_cache(dir.path().join("cache")).expect("a runtime");

    // Rename to next callback, through the watcher and the runner.
    let file = dir.path().join("powercycle.wasm");
    std::fs::write(&file, version(0)).expect("write");
    let runner = Runner::spawn(
        load(&runtime, "powercycle", Some(&file)),
        Arc::new(SystemClock),
    );
    let _watch = HotReload::start(runtime.clone(), std::slice::from_ref(&runner)).expect("watch");
    let mut latencies = Vec::new();
    for n in 1..=10 {
        let bytes = version(n);
        let want = version_hash(&bytes);
        let calls = runner.health().calls;
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, &bytes).expect("write");
        let start = Instant::now();
        std::fs::rename(&tmp, &file).expect("rename");
        while runner.health().version != want {
            std::thread::sleep(Duration::from_millis(1));
        }
        runner.send(sick());
        while runner.health().calls == calls {
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(start.elapsed());
    }
    runner.shutdown();
    println!(
        "rename to next callback: median {:?} (settling {:?} after a rename, new content compiled each time)",
        median(latencies),
        wanwatch::plugin::RENAMED
    );

    // A swap alone, from the cache: two versions, alternately.
    let mut plugin = load(&runtime, "powercycle", None);
    let (a, b) = (version(1), version(2));
    let mut swaps = Vec::new();
    for i in 0..200 {
        let bytes = if i % 2 == 0 { &a } else { &b };
        let start = Instant::now();
        plugin.reload(&runtime, bytes).expect("reload");
        swaps.push(start.elapsed());
    }
    println!("swap (cached prepare + swap): median {:?}", median(swaps));

    // Memory across reloads: warm up, then 1,000 cycles.
    for i in 0..100 {
        plugin
            .reload(&runtime, if i % 2 == 0 { &a } else { &b })
            .expect("reload");
        plugin.call(&sick()).expect("call");
    }
    let before = rss_bytes();
    for i in 0..1_000 {
        plugin
            .reload(&runtime, if i % 2 == 0 { &a } else { &b })
            .expect("reload");
        plugin.call(&sick()).expect("call");
    }
    let after = rss_bytes();
    println!(
        "1,000 reload cycles: resident memory {} KiB -> {} KiB ({:+} KiB)",
        before / 1024,
        after / 1024,
        (after as i64 - before as i64) / 1024
    );

    // A restart with the plugin set unchanged: a new runtime on the same cache.
    // (`notify` was not loaded yet: once, so that the cache has it.)
    drop(load(&runtime, "notify", None));
    let start = Instant::now();
    let restarted = Runtime::with_cache(dir.path().join("cache")).expect("a runtime");
    let plugins = [
        load(&restarted, "powercycle", None),
        load(&restarted, "notify", None),
    ];
    let ready = start.elapsed();
    println!(
        "restart, unchanged plugins: {} ready in {ready:?}, {} compiled",
        plugins.len(),
        restarted.compiled()
    );
    let start = Instant::now();
    let cold = Runtime::new().expect("a runtime");
    let plugins = [load(&cold, "powercycle", None), load(&cold, "notify", None)];
    println!(
        "start without cache: {} ready in {:?}, {} compiled",
        plugins.len(),
        start.elapsed(),
        cold.compiled()
    );
}
