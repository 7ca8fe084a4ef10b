//! The pure core: one state-machine step (target: under 100 ns), and one
//! round of the link-quality windows.
//!
//! cargo bench -p wanwatch --bench core

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wanwatch::config::ProbeConfig;
use wanwatch::quality::Quality;
use wanwatch::state::{Evidence, ProbeKind, Role, Round, StateMachine, Thresholds, WanState};

fn round(at_ms: u64, wan_ok: bool) -> Round {
    let target = |name: &str, role, ok| Evidence {
        target: name.into(),
        role,
        kind: ProbeKind::Icmp,
        ok,
        rtt_us: ok.then_some(9_000),
        https: None,
    };
    Round {
        at_ms,
        results: vec![
            target("gateway", Role::Lan, true),
            target("cloudflare", Role::Wan, wan_ok),
            target("google", Role::Wan, wan_ok),
        ],
    }
}

fn state_machine(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_machine_step");
    // The common case: the link is up and stays up.
    group.bench_function("steady", |b| {
        let mut machine = StateMachine::new(Thresholds::default(), 0);
        let mut r = round(0, true);
        b.iter(|| {
            r.at_ms += 2_000;
            black_box(machine.observe(black_box(&r)))
        })
    });
    // The worst case: every step is a transition (up ↔ sick), which clones
    // the round's evidence into the transition.
    group.bench_function("flapping", |b| {
        let mut machine = StateMachine::new(Thresholds::default(), 0);
        // Time stands still, so sick never turns into down.
        let rounds = [round(0, false), round(0, true)];
        let mut i = 0usize;
        b.iter(|| {
            i += 1;
            black_box(machine.observe(black_box(&rounds[i % 2])))
        })
    });
    group.finish();
}

/// One round of three targets into full default windows (5 minutes at
/// 2 s: 150 probes each) with both thresholds set: evictions, sorted
/// inserts and the judgement, every round.
fn quality_round(c: &mut Criterion) {
    let probe = ProbeConfig {
        degraded_loss: Some(wanwatch::config::Percent(10.0)),
        degraded_rtt: Some(std::time::Duration::from_millis(250)),
        ..ProbeConfig::default()
    };
    let mut r = round(0, true);
    let targets = r.results.iter().map(|e| (e.target.clone(), e.role));
    let mut quality = Quality::new(probe.quality(probe.interval), targets, 0);
    let mut i = 0u32;
    c.bench_function("quality_round", |b| {
        b.iter(|| {
            // Round trips that move around the window, one probe in 16 lost.
            i = i.wrapping_add(1);
            r.at_ms += 2_000;
            for e in &mut r.results[1..] {
                e.ok = !i.is_multiple_of(16);
                e.rtt_us =
                    e.ok.then_some(9_000 + i.wrapping_mul(2_654_435_761) % 4_000);
            }
            black_box(quality.observe(black_box(&r), WanState::Up))
        })
    });
}

criterion_group!(benches, state_machine, quality_round);
criterion_main!(benches);
