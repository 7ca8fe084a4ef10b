//! The pure core: one state-machine step (target: under 100 ns).
//!
//! cargo bench -p wanwatch --bench core

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wanwatch::state::{Evidence, ProbeKind, Role, Round, StateMachine, Thresholds};

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

criterion_group!(benches, state_machine);
criterion_main!(benches);
