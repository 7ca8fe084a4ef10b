//! The simulator's speed: probe rounds per second when the plugins see only
//! the transitions (target: at least 5 million per second on one core; one
//! simulated year of 1-second rounds in under 7 s).
//!
//! cargo bench -p wanwatch --bench simulate
//!
//! Runs the whole simulator, `wanwatch simulate` minus the printing: the
//! built-in plugins loaded (their compilation counted), a synthetic world
//! with a handful of outages, the report streamed to a sink. First one
//! simulated year, timed once and printed; then 30 days under criterion.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wanwatch::sim::{self, Options};

/// A scenario of `days` of 1-second rounds with an outage of each kind
/// every 30 days, and a lossy week.
fn scenario(days: u64) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let mut text = format!("duration = \"{days}days\"\ninterval = \"1s\"\n");
    for month in 0..days.div_ceil(30) {
        let d = month * 30;
        text += &format!(
            "[[cause]]\nkind = \"modem-hang\"\nat = \"{}days 3h\"\n\
             [[cause]]\nkind = \"isp-outage\"\nat = \"{}days 2h\"\nduration = \"2h\"\n\
             [[cause]]\nkind = \"lan-fault\"\nat = \"{}days 1h\"\nduration = \"20m\"\n",
            d + 5,
            d + 12,
            d + 20
        );
    }
    text += "[[segment]]\nat = \"40days\"\nwan = \"1% loss\"\n[[segment]]\nat = \"47days\"\n";
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn run(path: &std::path::Path) {
    let met = sim::run(path, None, &Options::default(), std::io::sink()).unwrap();
    black_box(met);
}

fn simulate(c: &mut Criterion) {
    let year = scenario(365);
    let started = Instant::now();
    run(year.path());
    let elapsed = started.elapsed();
    let rounds = 365 * 86_400;
    println!(
        "one simulated year ({rounds} rounds of 1 s): {:.2} s, {:.1} million rounds/s",
        elapsed.as_secs_f64(),
        rounds as f64 / elapsed.as_secs_f64() / 1e6
    );

    let month = scenario(30);
    let mut group = c.benchmark_group("simulate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(30 * 86_400));
    group.bench_function("30_days_1s_rounds", |b| b.iter(|| run(month.path())));
    group.finish();
}

criterion_group!(benches, simulate);
criterion_main!(benches);
