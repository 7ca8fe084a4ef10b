//! One `wanwatch watcher` process with 1,000 simulated sites, each sending
//! a heartbeat every 60 s, spread evenly, over HTTP on loopback with its
//! own token: the watcher's CPU share (utime + stime of /proc/PID/stat,
//! which counts threads that have ended too) and resident memory over
//! one heartbeat interval, after a warm-up round in which every site is
//! first seen.
//!
//! cargo build --release && cargo bench -p wanwatch --bench watcher
//!
//! A bench binary rather than criterion: the figure is one long sample of
//! a separate process. Environment: `WATCHER_SITES` (default 1000),
//! `WATCHER_SECONDS` (the heartbeat interval, default 60: a smaller value
//! compresses time, the same heartbeats at a higher rate, and measures
//! over that shorter interval), `WANWATCH_BIN` (another build).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "support/proc.rs"]
mod proc;
use proc::status_field;

const VIEWER: &str = "bench-viewer-token";

fn main() {
    let binary = proc::release_binary();
    let sites = env("WATCHER_SITES", 1000);
    let interval = Duration::from_secs(env("WATCHER_SECONDS", 60).max(1));
    let dir = tempfile::tempdir().expect("a temp dir");
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let mut config = format!(
        "state_dir = {:?}\nlisten = \"{addr}\"\ntoken = \"{VIEWER}\"\nmissed_after = \"{}s\"\n",
        dir.path().join("state"),
        interval.as_secs() * 3
    );
    for i in 0..sites {
        config += &format!("[sites.site-{i}]\ntoken = \"token-of-site-{i}\"\n");
    }
    let path = dir.path().join("watcher.toml");
    std::fs::write(&path, config).unwrap();
    let watcher = Watcher(
        Command::new(&binary)
            .args(["watcher", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the watcher"),
    );
    let pid = watcher.0.id();
    wanwatch::http::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let base = format!("http://{addr}");
        wait_listening(&client, &base).await;
        println!(
            "{sites} sites, one heartbeat each every {} s ({:.1} a second), on loopback",
            interval.as_secs(),
            sites as f64 / interval.as_secs_f64()
        );
        let sender = Sender::new(client.clone(), base.clone(), sites);
        // A first round: every site is seen (its row inserted).
        sender.round(interval).await;
        let (cpu0, at0) = (cpu_seconds(pid), Instant::now());
        sender.round(interval).await;
        let (cpu1, elapsed) = (cpu_seconds(pid), at0.elapsed());
        let rss_kib = status_field(pid, "VmRSS:");
        let up = up_sites(&client, &base).await;
        (cpu1 - cpu0, elapsed, rss_kib, up, sender)
    });
    let (cpu_s, elapsed, rss_kib, up, sender) = result;
    drop(watcher);
    let sent = sender.sent.load(Ordering::Relaxed);
    let failed = sender.failed.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *sender.latencies.lock().unwrap());
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    println!(
        "watcher CPU: {:.3} s over {:.1} s = {:.2} % of a core ({:.2} ms per heartbeat)",
        cpu_s,
        elapsed.as_secs_f64(),
        100.0 * cpu_s / elapsed.as_secs_f64(),
        1000.0 * cpu_s / sites as f64
    );
    println!("watcher RSS: {:.1} MB", rss_kib as f64 / 1024.0);
    println!(
        "heartbeats: {sent} sent, {failed} failed; answered in p50 {:.2} ms, p99 {:.2} ms; {up}/{sites} sites up",
        pct(0.5),
        pct(0.99)
    );
    if failed > 0 || up != sites {
        eprintln!("the watcher did not take every heartbeat");
        std::process::exit(1);
    }
}

/// The watcher process, stopped (SIGTERM) when the bench ends or fails.
struct Watcher(std::process::Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// The simulated sites.
struct Sender {
    client: reqwest::Client,
    base: String,
    sites: u64,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    /// Each heartbeat's answer time, in µs.
    latencies: Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Sender {
    fn new(client: reqwest::Client, base: String, sites: u64) -> Sender {
        Sender {
            client,
            base,
            sites,
            sent: Arc::default(),
            failed: Arc::default(),
            latencies: Arc::default(),
        }
    }

    /// One heartbeat from every site, spread evenly over `interval`.
    async fn round(&self, interval: Duration) {
        let step = interval / self.sites as u32;
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(self.sites as usize);
        for i in 0..self.sites {
            tokio::time::sleep_until(start + step * i as u32).await;
            let request = self
                .client
                .post(format!("{}/api/v1/sites/site-{i}/heartbeat", self.base))
                .bearer_auth(format!("token-of-site-{i}"))
                .header("content-type", "application/json")
                .body(heartbeat(now_ms()));
            let (sent, failed, latencies) = (
                self.sent.clone(),
                self.failed.clone(),
                self.latencies.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let at = Instant::now();
                let ok = matches!(request.send().await, Ok(a) if a.status().as_u16() == 204);
                sent.fetch_add(1, Ordering::Relaxed);
                if ok {
                    latencies
                        .lock()
                        .unwrap()
                        .push(at.elapsed().as_micros() as u64);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        tokio::time::sleep_until(start + interval).await;
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A heartbeat as the daemon sends one.
fn heartbeat(at: u64) -> String {
    format!(
        r#"{{"sent_at_ms":{at},"version":"bench","state":"up","state_since_ms":{},"interval_s":60,"summary":{{"rtt_ms":12.5,"loss_percent":0.0,"outages_today":0,"last_outage_ms":null,"dry_run":false}}}}"#,
        at - 3_600_000
    )
}

async fn wait_listening(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client
            .get(format!("{base}/api/v1/sites"))
            .bearer_auth(VIEWER)
            .send()
            .await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "the watcher does not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many sites the watcher says are up.
async fn up_sites(client: &reqwest::Client, base: &str) -> u64 {
    let sites: serde_json::Value = client
        .get(format!("{base}/api/v1/sites"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("the sites")
        .json()
        .await
        .expect("JSON");
    sites["sites"].as_array().map_or(0, |s| {
        s.iter().filter(|s| s["state"] == "up").count() as u64
    })
}

/// The process's CPU time so far (utime + stime, every thread's, those
/// that ended included), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the watcher's stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after it.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / per_second
}
