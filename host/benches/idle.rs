//! What an idle daemon costs a small box: CPU share and resident memory of
//! the release binary with the built-in policies, probing three loopback
//! targets (ICMP as root, else TCP) every 2 s for a minute, on its first
//! start and on a restart, and the size of the binary. Targets: under 0.1 %
//! of a core and under 25 MB RSS. A third run restarts it on a week of
//! generated history (raw rows and aggregates, a few outages) and asks its
//! HTTP server for the dashboard, a week's statistics and chart series and
//! the status, as someone opening the dashboard would, before measuring.
//!
//! cargo build --release && cargo bench -p wanwatch --bench idle
//!
//! A bench binary rather than criterion: the figure is one long sample of a
//! separate process, read from /proc. `IDLE_SECONDS` shortens or lengthens
//! the sample (default 60); `WANWATCH_BIN` measures another build of the
//! binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/generated_history.rs"]
mod generated_history;
#[path = "support/proc.rs"]
mod proc;
use proc::status_field;

const WEEK_MS: u64 = 7 * 24 * generated_history::HOUR;

fn main() {
    let binary = proc::release_binary();
    let seconds: u64 = std::env::var("IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let dir = tempfile::tempdir().expect("a temp dir");
    // ICMP, the default kind, as root; TCP (no privilege needed) otherwise.
    // SAFETY: geteuid has no preconditions.
    let icmp = unsafe { libc::geteuid() } == 0;
    let targets: String = (1..=3)
        .map(|i| match icmp {
            true => format!("[[targets]]\nname = \"lo{i}\"\naddress = \"127.0.0.{i}\"\n"),
            false => format!(
                "[[targets]]\nname = \"lo{i}\"\naddress = \"127.0.0.1\"\nkind = \"tcp\"\nport = {port}\n"
            ),
        })
        .collect();
    println!(
        "3 {} targets on loopback",
        if icmp { "ICMP" } else { "TCP" }
    );
    let config = dir.path().join("wanwatch.toml");
    let api = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[http]\nlisten = \"{api}\"\n{targets}",
            dir.path()
        ),
    )
    .unwrap();
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    println!("release binary: {:.1} MB", size as f64 / 1e6);
    // The first start compiles the built-in plugins (pages of the compiler
    // in the binary are touched); a restart finds them in the cache, as
    // every start after the first does.
    for (run, history) in [
        ("first start (compiles the plugins)", false),
        ("restart (plugins from the cache)", false),
        (
            "restart on a week of history, dashboard and API asked",
            true,
        ),
    ] {
        let mut asked = None;
        if history {
            let db = dir.path().join("history.db");
            for leftover in ["history.db", "history.db-wal", "history.db-shm"] {
                let _ = std::fs::remove_file(dir.path().join(leftover));
            }
            let names = ["lo1", "lo2", "lo3"];
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            generated_history::generate(&db, now, WEEK_MS, &names, 10, true);
            asked = Some(api);
        }
        let idle = measure(&binary, &config, Duration::from_secs(seconds), asked);
        println!(
            "{run}: CPU {:.3} s in {:.0} s = {:.3} % of a core ({:.0} ms a minute); RSS {:.1} MB, of which anonymous {:.1} MB",
            idle.cpu_s,
            idle.elapsed.as_secs_f64(),
            100.0 * idle.cpu_s / idle.elapsed.as_secs_f64(),
            1000.0 * idle.cpu_s * 60.0 / idle.elapsed.as_secs_f64(),
            idle.rss_kib as f64 / 1000.0,
            idle.anon_kib as f64 / 1000.0,
        );
    }
}

struct Idle {
    cpu_s: f64,
    elapsed: Duration,
    rss_kib: u64,
    anon_kib: u64,
}

/// Runs the daemon on `config`, lets it settle, and measures it idle;
/// with `api`, after asking its HTTP server what the dashboard asks.
fn measure(
    binary: &Path,
    config: &Path,
    over: Duration,
    api: Option<std::net::SocketAddr>,
) -> Idle {
    let mut daemon = Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let pid = daemon.id();
    // Past the start (plugins compiled or read from the cache, first rounds).
    std::thread::sleep(Duration::from_secs(10));
    for path in api.iter().flat_map(|_| {
        [
            "/",
            "/dashboard/app.js",
            "/api/v1/status",
            "/api/v1/stats?since=7d",
            "/api/v1/outages?since=7d",
            "/dashboard/series?since=7d",
        ]
    }) {
        let address = api.expect("asked only with an address");
        let bytes = get(address, path);
        println!("  GET {path}: {bytes} bytes");
    }
    let (cpu0, at0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(over);
    let (cpu1, elapsed) = (cpu_seconds(pid), at0.elapsed());
    let rss_kib = status_field(pid, "VmRSS:");
    let anon_kib = status_field(pid, "RssAnon:");
    // SIGTERM, as systemd stops it: the next run finds the cache written.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let _ = daemon.wait();
    Idle {
        cpu_s: cpu1 - cpu0,
        elapsed,
        rss_kib,
        anon_kib,
    }
}

/// `GET path` over HTTP/1.1; the size of the whole answer.
fn get(address: std::net::SocketAddr, path: &str) -> usize {
    let mut stream = TcpStream::connect(address).expect("the daemon's HTTP server");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("a request sent");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("an answer");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "GET {path}: {}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    answer.len()
}

/// CPU time of all the process's threads so far, in seconds, from
/// /proc/PID/task/*/schedstat (nanoseconds; stat's clock ticks are 10 ms,
/// too coarse for a few tens of ms a minute). Threads that ended are not
/// counted: an idle daemon starts none.
fn cpu_seconds(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's threads");
    let nanos: u64 = tasks
        .filter_map(|task| {
            let mut stat = String::new();
            std::fs::File::open(task.ok()?.path().join("schedstat"))
                .and_then(|mut f| f.read_to_string(&mut stat))
                .ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    nanos as f64 / 1e9
}
