//! A generated history database, as the recorder stores it, for the
//! benchmarks that need history without living through it (`history`:
//! statistics over a year; `idle`: the daemon's memory with a week of it).

use std::path::Path;

use rusqlite::params;
use wanwatch::actions::{Action, ActionRecord};
use wanwatch::events::Observed;
use wanwatch::history::aggregate::Aggregate;
use wanwatch::history::db;
use wanwatch::monitor::WanEvent;
use wanwatch::power::PowerState;
use wanwatch::state::{Transition, WanState};

pub const MINUTE: u64 = 60_000;
pub const HOUR: u64 = 60 * MINUTE;

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

pub fn wan(
    at_ms: u64,
    previous: WanState,
    current: WanState,
    previous_duration_ms: u64,
) -> Observed {
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
        quality: Default::default(),
    })
}

/// Writes `span` ms of history ending at `end` into the database at
/// `path`: `targets` probed every 2 s (0.5 % loss, round trips 8 to 40 ms)
/// as per-minute and per-hour aggregates, and, with `raw`, as raw rows too
/// (the recorder keeps those a week); `outages` spread evenly, each with its
/// transitions and a power cycle.
pub fn generate(path: &Path, end: u64, span: u64, targets: &[&str], outages: u64, raw: bool) {
    let mut conn = db::open_writer(path).unwrap();
    let start = end - span;
    let mut noise = Noise(0x5eed);
    let tx = conn.transaction().unwrap();
    for (i, name) in targets.iter().enumerate() {
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
        let mut probe_row = tx
            .prepare("INSERT INTO probes (at_ms, target, ok, rtt_us) VALUES (?1, ?2, ?3, ?4)")
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
            for target in 0..targets.len() {
                let mut whole = Aggregate::default();
                for minute in (hour..hour + HOUR).step_by(MINUTE as usize) {
                    let mut a = Aggregate::default();
                    // A round every 2 s; 0.5 % loss; 8 to 40 ms.
                    for round in 0..30 {
                        let n = noise.next();
                        let ok = !n.is_multiple_of(200);
                        let rtt_us = ok.then_some(8_000 + (n >> 8) as u32 % 32_000);
                        a.add(ok, rtt_us);
                        if raw {
                            let at = minute + round * 2_000;
                            probe_row
                                .execute(params![at as i64, target as i64 + 1, ok, rtt_us])
                                .unwrap();
                        }
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
        let spacing = span / outages.max(1);
        for i in 0..outages {
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
