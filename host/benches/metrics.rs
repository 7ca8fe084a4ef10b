//! The Prometheus exporter: what one probe round costs the daemon's event
//! loop (`Metrics::observe`), and what one scrape costs (`GET /metrics`
//! without the HTTP: the text encoded from the registry and the status).
//!
//! cargo bench -p wanwatch --bench metrics

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::sync::watch;
use wanwatch::actions::{Action, ActionRecord};
use wanwatch::events::{Observed, Observer};
use wanwatch::metrics::Metrics;
use wanwatch::monitor::WanEvent;
use wanwatch::plugin::PluginHealth;
use wanwatch::power::PowerState;
use wanwatch::state::{Evidence, ProbeKind, Role, Round, Transition, WanState};
use wanwatch::status::Status;

/// The README's default setup: the gateway and two internet targets.
fn round(at_ms: u64) -> Round {
    let target = |name: &str, role, rtt_us| Evidence {
        target: name.into(),
        role,
        kind: ProbeKind::Icmp,
        ok: true,
        rtt_us: Some(rtt_us),
        https: None,
    };
    Round {
        at_ms,
        results: vec![
            target("gateway", Role::Lan, 400),
            target("cloudflare", Role::Wan, 9_000),
            target("google", Role::Wan, 12_000),
        ],
    }
}

/// A daemon a few days in: every target seen, outages and cycles counted,
/// two plugins.
fn busy() -> (Metrics, watch::Sender<Status>) {
    let mut status = Status::new(WanState::Up, 1_700_000_000_000, false);
    status.last_round_at_ms = Some(1_700_000_100_000);
    for name in ["powercycle", "notify"] {
        status.plugins.push(PluginHealth {
            name: name.into(),
            calls: 40,
            failures: 1,
            consecutive_failures: 0,
            last_error: None,
            last_error_at_ms: None,
            version: "0123456789ab".into(),
            contract: "0.2.0".into(),
            loaded_at_ms: 1_700_000_000_000,
            reloads: 0,
            quarantined: false,
            callback_us: 12_000,
        });
    }
    let status = watch::Sender::new(status);
    let metrics = Metrics::new(status.subscribe());
    for at_ms in 0..1_000 {
        metrics.observe(&Observed::Round(round(at_ms)));
    }
    for (previous, current) in [
        (WanState::Up, WanState::Sick),
        (WanState::Sick, WanState::Down),
        (WanState::Down, WanState::Up),
    ] {
        metrics.observe(&Observed::Wan(WanEvent {
            transition: Transition {
                previous,
                current,
                at_ms: 0,
                previous_duration_ms: 0,
                local_fault: false,
                evidence: vec![],
            },
            power: PowerState::On,
            power_cycles: 0,
            quality: Default::default(),
        }));
    }
    metrics.observe(&Observed::Action(ActionRecord {
        at_ms: 0,
        plugin: "powercycle".into(),
        action: Action::PowerCycle {
            device: "modem".into(),
            off_seconds: 10,
        },
        outcome: "done".into(),
    }));
    (metrics, status)
}

fn metrics(c: &mut Criterion) {
    let (metrics, _status) = busy();
    let r = Observed::Round(round(0));
    c.bench_function("metrics_observe_round_3_targets", |b| {
        b.iter(|| metrics.observe(black_box(&r)))
    });
    let mut group = c.benchmark_group("metrics_scrape");
    group.bench_function("openmetrics", |b| {
        b.iter(|| black_box(metrics.scrape(black_box("*/*"))))
    });
    group.bench_function("prometheus_text", |b| {
        b.iter(|| black_box(metrics.scrape(black_box("text/plain"))))
    });
    group.finish();
    println!("one scrape: {} bytes", metrics.scrape("*/*").1.len());
}

criterion_group!(benches, metrics);
criterion_main!(benches);
