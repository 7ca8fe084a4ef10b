//! The plugin runtime, through the built-in `powercycle` plugin:
//! - one callback (`on-wan-sick`, which makes one host call: a kv write),
//!   target: median under 10 µs;
//! - a fresh instantiation, as after a fault, target: under 1 ms.
//!
//! cargo bench -p wanwatch --bench plugin
//!
//! The key-value store is in memory (no `kv_dir`): this measures the
//! runtime, not the disk's fsync.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wanwatch::actions::Actions;
use wanwatch::clock::SystemClock;
use wanwatch::config::PluginConfig;
use wanwatch::plugin::{Event, HostContext, Plugin, PluginSpec, Runtime};
use wanwatch::state::{Evidence, ProbeKind, Role, Transition, WanState};

fn powercycle(runtime: &Runtime) -> Plugin {
    let spec = PluginSpec::from_config("powercycle", &PluginConfig::new(None))
        .expect("the built-in plugin");
    let clock = Arc::new(SystemClock);
    let host = HostContext {
        actions: Arc::new(Actions::dry_run(clock.clone(), 4)),
        clock,
        kv_dir: None,
        heartbeats: Default::default(),
    };
    runtime.load(spec, host).unwrap_or_else(|e| panic!("{e}"))
}

fn sick() -> Event {
    let target = |name: &str, role| Evidence {
        target: name.into(),
        role,
        kind: ProbeKind::Icmp,
        ok: false,
        rtt_us: None,
        https: None,
    };
    Event::wan(Transition {
        previous: WanState::Up,
        current: WanState::Sick,
        at_ms: 1_700_000_000_000,
        previous_duration_ms: 3_600_000,
        local_fault: false,
        evidence: vec![
            target("gateway", Role::Lan),
            target("cloudflare", Role::Wan),
            target("google", Role::Wan),
        ],
    })
}

fn plugin(c: &mut Criterion) {
    let runtime = Runtime::new().expect("the runtime starts");
    let mut plugin = powercycle(&runtime);
    let mut group = c.benchmark_group("plugin");
    group.measurement_time(Duration::from_secs(5));
    let event = sick();
    group.bench_function("callback", |b| {
        b.iter(|| {
            plugin
                .call(black_box(&event))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    group.bench_function("instantiate", |b| {
        b.iter(|| plugin.restart().unwrap_or_else(|e| panic!("{e}")))
    });
    group.finish();
}

criterion_group!(benches, plugin);
criterion_main!(benches);
