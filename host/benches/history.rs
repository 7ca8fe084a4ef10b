//! The history database: statistics over a generated year (target: under
//! 100 ms), and what recording costs the daemon per probe round.
//!
//! cargo bench -p wanwatch --bench history
//!
//! The year: 3 targets probed every 2 s, as the recorder stores them
//! (per-minute and per-hour aggregates; the raw rows are kept a week only
//! and not read by the statistics), and 300 outages with their transitions
//! and power cycles. Generating it takes a while (1.6 M minute rows).

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use wanwatch::events::{Observed, Observer};
use wanwatch::history::{HistoryConfig, HistoryDb, Recorder};
use wanwatch::state::{Evidence, ProbeKind, Role, Round};

#[path = "support/generated_history.rs"]
mod generated_history;
use generated_history::HOUR;

const YEAR: u64 = 365 * 24 * HOUR;
const TARGETS: [&str; 3] = ["gateway", "cloudflare", "google"];
const OUTAGES: u64 = 300;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn stats_over_a_year(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let end = now_ms();
    let started = Instant::now();
    generated_history::generate(&path, end, YEAR, &TARGETS, OUTAGES, false);
    eprintln!(
        "generated a year in {:.1?}: {} MB",
        started.elapsed(),
        std::fs::metadata(&path).unwrap().len() / 1_000_000
    );
    let check = HistoryDb::open(&path)
        .unwrap()
        .stats(end - YEAR, end)
        .unwrap();
    assert_eq!(check.outages, OUTAGES as u32);
    assert_eq!(check.targets.len(), 3);
    let mut group = c.benchmark_group("history");
    group.sample_size(20);
    // As `wanwatch stats` and the API do it: open, query, compute.
    group.bench_function("stats_over_a_year", |b| {
        b.iter(|| {
            let db = HistoryDb::open(&path).unwrap();
            black_box(db.stats(end - YEAR, end).unwrap())
        })
    });
    group.bench_function("stats_over_30_days", |b| {
        b.iter(|| {
            let db = HistoryDb::open(&path).unwrap();
            black_box(db.stats(end - 30 * 24 * HOUR, end).unwrap())
        })
    });
    group.finish();
}

fn round(at_ms: u64) -> Observed {
    Observed::Round(Round {
        at_ms,
        results: TARGETS
            .iter()
            .map(|name| Evidence {
                target: (*name).into(),
                role: Role::Wan,
                kind: ProbeKind::Icmp,
                ok: true,
                rtt_us: Some(9_412),
                https: None,
            })
            .collect(),
    })
}

fn recording(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::start(dir.path().join("history.db"), &HistoryConfig::default());
    let mut group = c.benchmark_group("history");
    let mut at = now_ms();
    // What the probing path pays: `observe` of one round (a clone and a
    // queue send); the writer is kept drained outside the timing.
    group.bench_function("observe_round", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for i in 0..iters {
                let r = round(at);
                at += 2_000;
                let t = Instant::now();
                recorder.observe(black_box(&r));
                spent += t.elapsed();
                if i % 256 == 255 {
                    recorder.flush();
                }
            }
            recorder.flush();
            spent
        })
    });
    // What the writer thread pays per commit: 5 s of rounds at the default
    // 2 s interval (3 rounds of 3 targets), gathered and committed.
    group.bench_function("writer_commit_of_3_rounds", |b| {
        b.iter(|| {
            for _ in 0..3 {
                recorder.observe(&round(at));
                at += 2_000;
            }
            recorder.flush();
        })
    });
    group.finish();
    recorder.stop();
}

criterion_group!(benches, recording, stats_over_a_year);
criterion_main!(benches);
