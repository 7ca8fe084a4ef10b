//! What an `https` probe costs beside an ICMP echo, in one run: rounds of
//! 100 https probes against a TLS server on loopback, and rounds of 100
//! ICMP echoes to loopback addresses.
//!
//! Each https probe does all an https probe does: resolve `localhost` with
//! the system resolver (getaddrinfo, /etc/hosts), connect, a full TLS 1.3
//! handshake verified against a test root (made here with rcgen, ECDSA
//! P-256, trusted through `ca_file` besides the webpki roots), `GET /`,
//! and the status line. The server runs on a thread of its own in this
//! process, and its CPU is subtracted, so that what is counted is the
//! prober's side alone (the kernel's work on its behalf included), as for
//! ICMP, whose echo replies the kernel makes in the prober's time.
//!
//! Criterion's "time" is CPU per round of 100 probes, so its milliseconds
//! read as 10 µs per probe; each benchmark also prints CPU per probe and
//! the mean time a probe took (for https, all four steps).
//!
//! Needs root or CAP_NET_RAW for ICMP (or a permissive
//! `net.ipv4.ping_group_range`); that part says why and is skipped without.
//! Run: `cargo bench -p wanwatch --bench https`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;
use wanwatch::probe::{HttpsProbe, Probe, Prober, Target};
use wanwatch::state::{Evidence, Role};

#[path = "support/cpu.rs"]
mod cpu;

const TARGETS: usize = 100;
/// 100 sends 10 ms apart over interval - timeout = 1 s.
const INTERVAL: Duration = Duration::from_millis(1_500);
const TIMEOUT: Duration = Duration::from_millis(500);

/// The CPU time `thread` has used so far.
fn thread_cpu(thread: libc::pthread_t) -> Duration {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: a live thread's id (the server thread never ends) and a
    // valid pointer.
    let rc = unsafe { libc::pthread_getcpuclockid(thread, &mut clock) };
    assert_eq!(rc, 0, "pthread_getcpuclockid: {rc}");
    // SAFETY: timespec is plain data; clock_gettime only writes into it.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a valid pointer.
    let rc = unsafe { libc::clock_gettime(clock, &mut now) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// A TLS server on 127.0.0.1 for `localhost`, answering every request
/// `204`, on a thread of its own: its port and the thread. Writes the root
/// that signed its certificate to `root_pem`.
fn tls_server(root_pem: &Path) -> (u16, libc::pthread_t) {
    use std::os::unix::thread::JoinHandleExt;
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(root_pem, root.pem()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &root)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut chunk = [0; 1024];
                    while !request.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    (port, thread.as_pthread_t())
}

/// Running totals over every round a benchmark ran.
#[derive(Default)]
struct Tally {
    cpu: Duration,
    probes: u64,
    failed: u64,
    /// The time the answered probes took, in µs.
    took_us: u64,
}

impl Tally {
    fn count(&mut self, results: &[Evidence]) {
        for e in results {
            self.probes += 1;
            if !e.ok {
                self.failed += 1;
                continue;
            }
            // For https, every step; rtt_us leaves resolving out.
            self.took_us += match &e.https {
                Some(h) => [h.resolve_us, h.connect_us, h.tls_us, h.http_us]
                    .iter()
                    .map(|t| u64::from(t.unwrap_or_default()))
                    .sum(),
                None => u64::from(e.rtt_us.unwrap_or_default()),
            };
        }
    }

    fn report(&self, who: &str) {
        let answered = self.probes - self.failed;
        if answered > 0 {
            println!(
                "{who}: {:.1} µs of CPU per probe, {:.0} µs per probe ({} probes, {} failed)",
                self.cpu.as_secs_f64() * 1e6 / self.probes as f64,
                self.took_us as f64 / answered as f64,
                self.probes,
                self.failed
            );
        }
    }
}

fn config() -> Criterion {
    // A round lasts about 1 s whatever its CPU cost: 10 samples of about a
    // round each.
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(12))
}

/// Rounds of `targets`, CPU per round less `server`'s.
fn bench_rounds(
    c: &mut Criterion,
    name: &str,
    runtime: &Runtime,
    targets: Vec<Target>,
    server: Option<libc::pthread_t>,
) {
    let mut prober = match runtime.block_on(async { Prober::new(targets, INTERVAL, TIMEOUT) }) {
        Ok(prober) => prober,
        Err(error) => {
            println!("skipped {name}: {error}");
            return;
        }
    };
    let server_cpu = || server.map_or(Duration::ZERO, thread_cpu);
    let mut tally = Tally::default();
    let mut group = c.benchmark_group("probe_100_loopback");
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(name, |b| {
        b.iter_custom(|rounds| {
            let mut spent = Duration::ZERO;
            for _ in 0..rounds {
                let (before, server_before) = (cpu::cpu_time(libc::RUSAGE_SELF), server_cpu());
                let round = runtime.block_on(prober.round()).expect("probed");
                let (after, server_after) = (cpu::cpu_time(libc::RUSAGE_SELF), server_cpu());
                let cpu = (after - before).saturating_sub(server_after - server_before);
                spent += cpu;
                tally.cpu += cpu;
                tally.count(&round.results);
            }
            spent
        })
    });
    group.finish();
    tally.report(name);
}

fn https_beside_icmp(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path().join("root.pem");
    let (port, server) = tls_server(&root);
    let url = format!("https://localhost:{port}/");
    let https: Vec<Target> = (0..TARGETS)
        .map(|i| Target {
            name: format!("https{i}"),
            role: Role::Wan,
            probe: Probe::Https(HttpsProbe::new(&url, Some(&root)).expect("an https probe")),
        })
        .collect();
    let icmp: Vec<Target> = (0..TARGETS)
        .map(|i| Target {
            name: format!("icmp{i}"),
            role: Role::Wan,
            probe: Probe::Icmp {
                address: IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + i as u8)),
            },
        })
        .collect();
    bench_rounds(c, "icmp", &runtime, icmp, None);
    bench_rounds(c, "https", &runtime, https, Some(server));
}

criterion_group! {
    name = benches;
    config = config();
    targets = https_beside_icmp
}
criterion_main!(benches);
