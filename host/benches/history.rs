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
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use rusqlite::params;
use wanwatch::actions::{Action, ActionRecord};
use wanwatch::events::{Observed, Observer};
use wanwatch::history::aggregate::Aggregate;
use wanwatch::history::{HistoryConfig, HistoryDb, Recorder, db};
use wanwatch::monitor::WanEvent;
use wanwatch::power::PowerState;
use wanwatch::state::{Evidence, ProbeKind, Role, Round, Transition, WanState};

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const YEAR: u64 = 365 * 24 * HOUR;
const TARGETS: [&str; 3] = ["gateway", "cloudflare", "google"];
const OUTAGES: u64 = 300;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A small deterministic generator (xorshift), so every run builds the
/// same year.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn wan(at_ms: u64, previous: WanState, current: WanState, previous_duration_ms: u64) -> Observed {
    Observed::Wan(WanEvent {
        transition: Transition {
            previous,
            current,
            at_ms,
            previous_duration_ms,
            local_fault: false,
            evidence: Vec::new(),
        },
        power: PowerState::On,
        power_cycles: 0,
    })
}

/// Writes the year ending at `end` into the database at `path`.
fn generate_year(path: &Path, end: u64) {
    let mut conn = db::open_writer(path).unwrap();
    let start = end - YEAR;
    let mut noise = Noise(0x5eed);
    let tx = conn.transaction().unwrap();
    for (i, name) in TARGETS.iter().enumerate() {
        tx.execute(
            "INSERT INTO targets (id, name) VALUES (?1, ?2)",
            params![i as i64 + 1, name],
        )
        .unwrap();
    }
    {
        let mut minute_row = tx
            .prepare("INSERT INTO probe_minutes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .unwrap();
        let mut hour_row = tx
            .prepare("INSERT INTO probe_hours VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .unwrap();
        let insert = |stmt: &mut rusqlite::Statement, at: u64, target: usize, a: &Aggregate| {
            stmt.execute(params![
                at as i64,
                target as i64 + 1,
                a.sent as i64,
                a.answered as i64,
                a.rtt_sum_us as i64,
                a.rtt_min_us,
                a.rtt_max_us,
                a.hist_blob()
            ])
            .unwrap();
        };
        for hour in (start - start % HOUR..end).step_by(HOUR as usize) {
            for target in 0..TARGETS.len() {
                let mut whole = Aggregate::default();
                for minute in (hour..hour + HOUR).step_by(MINUTE as usize) {
                    let mut a = Aggregate::default();
                    // A round every 2 s; 0.5 % loss; 8 to 40 ms.
                    for _ in 0..30 {
                        let n = noise.next();
                        let ok = !n.is_multiple_of(200);
                        a.add(ok, ok.then_some(8_000 + (n >> 8) as u32 % 32_000));
                    }
                    insert(&mut minute_row, minute, target, &a);
                    whole.merge(&a);
                }
                insert(&mut hour_row, hour, target, &whole);
            }
        }
        let mut event = tx
            .prepare("INSERT INTO events (at_ms, kind, data) VALUES (?1, ?2, ?3)")
            .unwrap();
        let mut record = |e: &Observed, at: u64| {
            event
                .execute(params![
                    at as i64,
                    e.kind(),
                    serde_json::to_string(e).unwrap()
                ])
                .unwrap();
        };
        let spacing = YEAR / OUTAGES;
        for i in 0..OUTAGES {
            let sick = start + i * spacing + noise.next() % (spacing / 2);
            let down = sick + 9_000;
            let up = down + 60_000 + noise.next() % (2 * HOUR);
            record(&wan(sick, WanState::Up, WanState::Sick, 1_000), sick);
            record(&wan(down, WanState::Sick, WanState::Down, 9_000), down);
            let cycle = down + 30_000;
            let cycled = Observed::Action(ActionRecord {
                at_ms: cycle,
                plugin: "powercycle".into(),
                action: Action::PowerCycle {
                    device: "modem".into(),
                    off_seconds: 10,
                },
                outcome: "done".into(),
            });
            record(&cycled, cycle);
            record(&wan(up, WanState::Down, WanState::Up, up - down), up);
        }
    }
    tx.commit().unwrap();
}

fn stats_over_a_year(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let end = now_ms();
    let started = Instant::now();
    generate_year(&path, end);
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
