//! CPU cost of ICMP probing: wanwatch's `Prober` against fping, in one run.
//!
//! Both ping the same 1,000 loopback addresses (127.0.x.y, all of which
//! answer), one request each, 1 ms apart. What is measured is CPU time (user +
//! system, from `getrusage`), not wall time: a round is paced by its schedule
//! and lasts about a second whatever it costs. Criterion's "time" is therefore
//! CPU per round of 1,000 probes, so its milliseconds read as microseconds per
//! probe; each benchmark also prints that figure directly.
//!
//! `wanwatch_with_history` is the multi-thread prober with every round handed
//! to the history database's recorder, as the daemon does: the recorder's
//! writer thread is in this process, so its CPU (SQLite inserts, commits) is
//! counted too. Each sample of 2 rounds ends by waiting for the writer to
//! commit them, so that none of its work escapes the measurement: a commit
//! every 2 rounds, about what the daemon does (every 5 s, rounds every 2 s).
//!
//! Needs root or CAP_NET_RAW (or a permissive `net.ipv4.ping_group_range`),
//! and fping (`apt-get install -y fping`); a part that cannot run says why and
//! is skipped. Run: `cargo bench -p wanwatch --bench probe`.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
#[path = "support/cpu.rs"]
mod cpu;
use cpu::cpu_time;
use tokio::runtime::Runtime;
use wanwatch::events::{Observed, Observer};
use wanwatch::history::{HistoryConfig, Recorder};
use wanwatch::probe::{Probe, Prober, Target};
use wanwatch::state::Role;

const TARGETS: usize = 1_000;
/// 1,000 sends 1 ms apart fit in interval - timeout = 1 s, the same pace as
/// fping's `-i 1`.
const INTERVAL: Duration = Duration::from_millis(1_100);
const TIMEOUT: Duration = Duration::from_millis(100);

/// 127.0.1.1 ... 127.0.4.250: every one answers, from the loopback interface.
fn addresses() -> Vec<Ipv4Addr> {
    (0..TARGETS)
        .map(|i| Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8))
        .collect()
}

/// Running totals, to print the CPU per probe over every round a bench ran.
#[derive(Default)]
struct Tally {
    cpu: Duration,
    probes: u64,
    failed: u64,
}

impl Tally {
    fn report(&self, who: &str) {
        if self.probes > 0 {
            let per_probe = self.cpu.as_secs_f64() * 1e6 / self.probes as f64;
            println!(
                "{who}: {per_probe:.1} µs of CPU per probe ({} probes, {} failed)",
                self.probes, self.failed
            );
        }
    }
}

fn config() -> Criterion {
    // Criterion plans by wall time, and a round lasts about 1 s whatever its
    // CPU cost (1,000 sends 1 ms apart): one warm-up round, then 10 samples
    // of 2 rounds (18 s / 10 / ~1 s, rounded up), about 21 s per benchmark.
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(18))
}

/// `history`: a recorder every round is handed to.
fn bench_wanwatch(c: &mut Criterion, name: &str, runtime: Runtime, history: Option<&Recorder>) {
    let targets: Vec<Target> = addresses()
        .into_iter()
        .map(|a| Target {
            name: a.to_string(),
            role: Role::Wan,
            probe: Probe::Icmp {
                address: IpAddr::V4(a),
            },
        })
        .collect();
    let mut prober = match runtime.block_on(async { Prober::new(targets, INTERVAL, TIMEOUT) }) {
        Ok(prober) => prober,
        Err(error) => {
            println!("skipped {name}: {error}");
            return;
        }
    };
    let mut tally = Tally::default();
    let mut group = c.benchmark_group("probe_1000_loopback");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(name, |b| {
        b.iter_custom(|rounds| {
            let mut cpu = Duration::ZERO;
            for _ in 0..rounds {
                let before = cpu_time(libc::RUSAGE_SELF);
                let round = runtime.block_on(prober.round()).expect("probed");
                if let Some(recorder) = history {
                    recorder.observe(&Observed::Round(round.clone()));
                }
                let spent = cpu_time(libc::RUSAGE_SELF) - before;
                cpu += spent;
                tally.cpu += spent;
                tally.probes += round.results.len() as u64;
                tally.failed += round.results.iter().filter(|e| !e.ok).count() as u64;
            }
            if let Some(recorder) = history {
                // What the writer has left to do is the rounds' cost too.
                let before = cpu_time(libc::RUSAGE_SELF);
                recorder.flush();
                let spent = cpu_time(libc::RUSAGE_SELF) - before;
                cpu += spent;
                tally.cpu += spent;
            }
            cpu
        })
    });
    group.finish();
    tally.report(name);
}

fn wanwatch_multi_thread(c: &mut Criterion) {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => bench_wanwatch(c, "wanwatch_multi_thread", runtime, None),
        Err(error) => println!("skipped wanwatch_multi_thread: {error}"),
    }
}

fn wanwatch_with_history(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let recorder = Recorder::start(dir.path().join("history.db"), &HistoryConfig::default());
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => bench_wanwatch(c, "wanwatch_with_history", runtime, Some(&recorder)),
        Err(error) => println!("skipped wanwatch_with_history: {error}"),
    }
    recorder.stop();
}

fn wanwatch_current_thread(c: &mut Criterion) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => bench_wanwatch(c, "wanwatch_current_thread", runtime, None),
        Err(error) => println!("skipped wanwatch_current_thread: {error}"),
    }
}

fn fping(c: &mut Criterion) {
    // -c 1: one request per target; -i 1: 1 ms between sends, the same pace
    // as the prober above (-p, the period between requests to one target,
    // does not apply with one request each); -t 100: the same timeout;
    // -q: no per-reply lines, only the summary.
    let mut args: Vec<String> = ["-c", "1", "-q", "-i", "1", "-t", "100"]
        .map(String::from)
        .to_vec();
    args.extend(addresses().iter().map(Ipv4Addr::to_string));
    let run = || {
        Command::new("fping")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    match run() {
        // fping exits 0 when every target answered.
        Ok(status) if status.success() => {}
        Ok(status) => {
            println!("skipped fping: it {status} on the loopback targets (need root?)");
            return;
        }
        Err(error) => {
            println!("skipped fping: {error} (install it: apt-get install -y fping)");
            return;
        }
    }
    let mut tally = Tally::default();
    let mut group = c.benchmark_group("probe_1000_loopback");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("fping", |b| {
        b.iter_custom(|runs| {
            let mut cpu = Duration::ZERO;
            for _ in 0..runs {
                // RUSAGE_CHILDREN grows when a child is waited for, which
                // `status()` does.
                let before = cpu_time(libc::RUSAGE_CHILDREN);
                let answered = run().is_ok_and(|status| status.success());
                let spent = cpu_time(libc::RUSAGE_CHILDREN) - before;
                cpu += spent;
                tally.cpu += spent;
                tally.probes += TARGETS as u64;
                // fping does not say how many failed, only that some did.
                tally.failed += u64::from(!answered);
            }
            cpu
        })
    });
    group.finish();
    tally.report("fping (failed = runs with a failure)");
}

criterion_group! {
    name = benches;
    config = config();
    targets = wanwatch_multi_thread, wanwatch_with_history, wanwatch_current_thread, fping
}
criterion_main!(benches);
