//! `GET /api/v1/status` under load: median and p99 latency and throughput
//! of the HTTP API, served by the daemon's server (its own thread and
//! runtime, every limit in place) on loopback, with a status as a
//! three-target daemon with two plugins and a full transition list writes
//! it, to 32 concurrent keep-alive clients.
//!
//! cargo bench -p wanwatch --bench api
//!
//! A bench binary rather than criterion: the figure is a latency
//! distribution under concurrency, not the time of one call. `API_CLIENTS`
//! and `API_REQUESTS` (per client) change the load (defaults 32 and 2000).
//! The clients run on the same machine, so they share its cores with the
//! server: on 2 cores the figures are the server's worst case.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wanwatch::actions::Actions;
use wanwatch::api::{HttpConfig, Parts, Server};
use wanwatch::clock::SystemClock;
use wanwatch::metrics::Metrics;
use wanwatch::status::Status;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A status as a daemon with three targets, two plugins and twenty
/// transitions writes it (3.1 KB of JSON).
fn status() -> Status {
    let at = 1_764_547_200_000u64;
    let transitions: Vec<_> = (0..20)
        .map(|i| {
            let (previous, current) = if i % 2 == 0 {
                ("up", "down")
            } else {
                ("down", "up")
            };
            json!({"previous": previous, "current": current, "at_ms": at + i * 60_000,
                   "previous_duration_ms": 60_000, "local_fault": false})
        })
        .collect();
    let targets: Vec<_> = [
        ("gateway", "lan", "192.168.1.1"),
        ("cloudflare", "wan", "1.1.1.1"),
        ("google", "wan", "8.8.8.8"),
    ]
    .iter()
    .map(|(name, role, ip)| {
        json!({"address": ip, "target": name, "role": role, "kind": "icmp", "ok": true,
                   "rtt_us": 11_234, "at_ms": at})
    })
    .collect();
    let plugins: Vec<_> = ["powercycle", "notify"]
        .iter()
        .map(|name| {
            json!({"name": name, "calls": 42, "failures": 0, "consecutive_failures": 0,
                   "last_error": null, "last_error_at_ms": null, "version": "f9361e3bc6ef",
                   "loaded_at_ms": at, "reloads": 0, "quarantined": false})
        })
        .collect();
    serde_json::from_value(json!({
        "state": "up", "since_ms": at, "updated_at_ms": at, "dry_run": false,
        "power": "on", "transitions": transitions, "targets": targets, "actions": [],
        "plugins": plugins, "notifications": {"queued": 0, "sinks": []},
        "last_round_at_ms": at, "dropped_rounds": 0, "outage_cycles": 0, "refusals": []
    }))
    .expect("a valid status")
}

fn main() {
    let clients = env("API_CLIENTS", 32);
    let requests = env("API_REQUESTS", 2000);
    let (_status_now, status) = tokio::sync::watch::channel(status());
    let config = HttpConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        token: None,
    };
    let parts = Parts {
        metrics: Arc::new(Metrics::new(status.clone())),
        status,
        actions: Arc::new(Actions::dry_run(Arc::new(SystemClock), 4)),
        devices: Vec::new(),
        probe_now: Arc::new(tokio::sync::Notify::new()),
        history: None,
    };
    let server = Server::start(&config, parts).expect("the server starts");
    let url = format!("http://{}/api/v1/status", server.addresses()[0]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    wanwatch::http::install_crypto_provider();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move {
                    // One connection per client, kept alive.
                    let client = reqwest::Client::builder()
                        .no_proxy()
                        .pool_max_idle_per_host(1)
                        .build()
                        .unwrap();
                    let mut latencies = Vec::with_capacity(requests);
                    for _ in 0..requests {
                        let start = Instant::now();
                        let response = client.get(&url).send().await.unwrap();
                        assert!(response.status().is_success());
                        response.bytes().await.unwrap();
                        latencies.push(start.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    server.stop();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "GET /api/v1/status, {clients} keep-alive clients x {requests} requests: median {:?}, p99 {:?}, max {:?}, {:.0} requests/s",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
}
