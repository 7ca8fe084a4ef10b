//! The `https` probe against TLS servers on loopback, every step of it:
//! resolve, connect, TLS (with the certificate verified), HTTP.
//!
//! The certificates are made here, at test time: a test root, which the
//! probe trusts through `ca_file`, and leaves it (or an untrusted root)
//! signs. Every server listens on 127.0.0.1. Names are resolved by the
//! system resolver: `localhost` from /etc/hosts; the name that must not
//! resolve only inside a network and mount namespace of the test's own
//! (see `a_name_that_does_not_resolve_fails_at_resolve`), so that its
//! query cannot leave the machine.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use wanwatch::probe::{HttpsProbe, Probe, Prober, Target};
use wanwatch::state::{Evidence, HttpsEvidence, HttpsStep, ProbeKind, Role};
use wanwatch_tests::skip;

const INTERVAL: Duration = Duration::from_secs(3);
const TIMEOUT: Duration = Duration::from_millis(1500);

/// A certificate authority of the test's own.
struct Root(CertifiedIssuer<'static, KeyPair>);

impl Root {
    fn new(name: &str) -> Root {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Root(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    /// Writes the root's certificate as PEM into `dir`: a `ca_file`.
    fn pem_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("root.pem");
        std::fs::write(&path, self.0.pem()).unwrap();
        path
    }

    /// A server certificate for `names`, signed by this root.
    fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.0)
            .unwrap();
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }
}

struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// What the server does once the TLS handshake is done and the request
/// read.
#[derive(Clone, Copy)]
enum Then {
    Answer(&'static str),
    /// Closes the connection (with a TLS close_notify) without a word.
    Close,
    /// Keeps the connection open and says nothing, past any timeout.
    Silent,
}

/// A TLS server on 127.0.0.1 with `leaf`: its port, and the requests it
/// read.
async fn tls_server(leaf: Leaf, then: Then) -> (u16, mpsc::UnboundedReceiver<String>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(leaf.chain, leaf.key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                // A handshake the client aborts (an untrusted certificate)
                // ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut chunk = [0; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = seen.send(String::from_utf8_lossy(&request).into_owned());
                match then {
                    Then::Answer(answer) => {
                        let _ = tls.write_all(answer.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    }
                    Then::Close => {
                        let _ = tls.shutdown().await;
                    }
                    Then::Silent => tokio::time::sleep(INTERVAL * 2).await,
                }
            });
        }
    });
    (port, requests)
}

/// One round of the https target for `url`, trusting `ca_file`.
async fn probe(url: &str, ca_file: Option<&Path>) -> Evidence {
    let target = Target {
        name: "app".into(),
        role: Role::Wan,
        probe: Probe::Https(HttpsProbe::new(url, ca_file).unwrap()),
    };
    let mut prober = Prober::new(vec![target], INTERVAL, TIMEOUT).unwrap();
    let mut results = prober.round().await.unwrap().results;
    assert_eq!(results.len(), 1);
    results.remove(0)
}

fn steps(e: &Evidence) -> &HttpsEvidence {
    assert_eq!(e.kind, ProbeKind::Https);
    e.https.as_ref().expect("an https probe has step evidence")
}

/// Which step timings are there, in step order.
fn timed(h: &HttpsEvidence) -> [bool; 4] {
    [h.resolve_us, h.connect_us, h.tls_us, h.http_us].map(|t| t.is_some())
}

/// The failed step, its error, and which steps were timed.
fn failure(e: &Evidence) -> (HttpsStep, String, [bool; 4]) {
    assert!(!e.ok && e.rtt_us.is_none(), "{e:?}");
    let h = steps(e);
    assert_eq!(h.status, None, "{h:?}");
    (
        h.failed.expect("a failed step"),
        h.error.clone().expect("an error"),
        timed(h),
    )
}

fn us(t: Option<u32>) -> Duration {
    Duration::from_micros(t.unwrap().into())
}

#[tokio::test]
async fn any_status_is_an_answer_with_every_step_timed() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new("wanwatch test root");
    let ca_file = root.pem_file(dir.path());
    for (answer, status) in [
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200),
        ("HTTP/1.1 503 Service Unavailable\r\n\r\n", 503),
    ] {
        let (port, mut requests) =
            tls_server(root.leaf(&["localhost"]), Then::Answer(answer)).await;
        let url = format!("https://localhost:{port}/health?token=s3cret");
        let e = probe(&url, Some(&ca_file)).await;
        let h = steps(&e);
        assert!(e.ok, "{e:?}");
        assert_eq!((h.failed, h.status, &h.error), (None, Some(status), &None));
        assert_eq!(timed(h), [true; 4], "{h:?}");
        // The round trip runs from the connection to the status line: the
        // three steps after resolving, and within the timeout.
        let rtt = Duration::from_micros(e.rtt_us.unwrap().into());
        let (connect, tls, http) = (us(h.connect_us), us(h.tls_us), us(h.http_us));
        assert!(connect + tls + http <= rtt, "{e:?}");
        assert!(rtt < TIMEOUT && us(h.resolve_us) < TIMEOUT, "{e:?}");
        assert!(!tls.is_zero() && !http.is_zero(), "{h:?}");

        let request = requests.recv().await.unwrap();
        assert!(
            request.starts_with("GET /health?token=s3cret HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("\r\nHost: localhost:{port}\r\n")),
            "{request}"
        );
        assert!(request.contains("\r\nUser-Agent: wanwatch/"), "{request}");
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
    }
}

#[tokio::test]
async fn a_closed_port_fails_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = Root::new("wanwatch test root").pem_file(dir.path());
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = probe(&format!("https://127.0.0.1:{port}/"), Some(&ca_file)).await;
    assert_eq!(
        failure(&e),
        (
            HttpsStep::Connect,
            "connection refused".into(),
            [true, true, false, false]
        )
    );
}

#[tokio::test]
async fn an_untrusted_root_fails_at_tls() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = Root::new("wanwatch test root").pem_file(dir.path());
    let stranger = Root::new("someone else's root");
    let (port, _) = tls_server(stranger.leaf(&["localhost"]), Then::Silent).await;
    let e = probe(&format!("https://localhost:{port}/"), Some(&trusted)).await;
    let (step, error, timed) = failure(&e);
    assert_eq!((step, timed), (HttpsStep::Tls, [true, true, true, false]));
    assert!(
        error.starts_with("certificate is not signed by a trusted root"),
        "{error}"
    );
    // Nor do the webpki roots alone trust a test root.
    let e = probe(&format!("https://localhost:{port}/"), None).await;
    assert_eq!(failure(&e).0, HttpsStep::Tls);
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_at_tls() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new("wanwatch test root");
    let ca_file = root.pem_file(dir.path());
    let (port, _) = tls_server(root.leaf(&["wanwatch.test"]), Then::Silent).await;
    let e = probe(&format!("https://localhost:{port}/"), Some(&ca_file)).await;
    assert_eq!(
        failure(&e),
        (
            HttpsStep::Tls,
            "certificate is not valid for name localhost".into(),
            [true, true, true, false]
        )
    );
}

#[tokio::test]
async fn a_server_that_closes_without_a_status_line_fails_at_http() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new("wanwatch test root");
    let ca_file = root.pem_file(dir.path());
    let (port, mut requests) = tls_server(root.leaf(&["127.0.0.1"]), Then::Close).await;
    let e = probe(&format!("https://127.0.0.1:{port}/"), Some(&ca_file)).await;
    assert_eq!(
        failure(&e),
        (
            HttpsStep::Http,
            "the connection closed without an answer".into(),
            [true; 4]
        )
    );
    assert!(
        requests
            .recv()
            .await
            .unwrap()
            .starts_with("GET / HTTP/1.1\r\n")
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_at_http() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new("wanwatch test root");
    let ca_file = root.pem_file(dir.path());
    let (port, _) = tls_server(root.leaf(&["localhost"]), Then::Silent).await;
    let started = std::time::Instant::now();
    let e = probe(&format!("https://localhost:{port}/"), Some(&ca_file)).await;
    let took = started.elapsed();
    let (step, error, timed) = failure(&e);
    assert_eq!(
        (step, error.as_str(), timed),
        (HttpsStep::Http, "no HTTP answer", [true; 4])
    );
    // The whole probe stays within the target's timeout: the steps add up
    // to it (give or take the timer's millisecond), and the round ends
    // before the interval.
    let h = steps(&e);
    let all = us(h.resolve_us) + us(h.connect_us) + us(h.tls_us) + us(h.http_us);
    let ms = Duration::from_millis;
    assert!(all >= TIMEOUT - ms(50) && all <= TIMEOUT + ms(20), "{h:?}");
    assert!(took < INTERVAL, "{took:?}");
}

/// Set in the child that runs inside the namespaces: the directory with
/// its resolv.conf and nsswitch.conf.
const IN_NAMESPACES: &str = "WANWATCH_TEST_HTTPS_NETNS";

/// A name that does not resolve fails at resolve, without a DNS query
/// leaving the machine: the test runs itself again in a new network
/// namespace (only `lo`, brought up, so no packet can leave) and mount
/// namespace, where /etc/resolv.conf names a resolver of the test's own on
/// 127.0.0.1 that answers NXDOMAIN, and /etc/nsswitch.conf asks only
/// /etc/hosts and DNS (no mDNS, no systemd-resolved over D-Bus, which
/// would resolve outside the namespace). The resolver seeing the query
/// proves that the system resolver was asked, and asked it.
#[test]
fn a_name_that_does_not_resolve_fails_at_resolve() {
    if let Some(dir) = std::env::var_os(IN_NAMESPACES) {
        return in_namespaces(Path::new(&dir));
    }
    let can = Command::new("unshare")
        .args(["--net", "--mount", "true"])
        .status();
    if !can.is_ok_and(|s| s.success()) {
        return skip("cannot create network and mount namespaces (unshare; needs root)");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    std::fs::write(dir.path().join("nsswitch.conf"), "hosts: files dns\n").unwrap();
    let name = "a_name_that_does_not_resolve_fails_at_resolve";
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACES, dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
}

fn in_namespaces(dir: &Path) {
    let sh = |command: &str| {
        let status = Command::new("sh").args(["-c", command]).status().unwrap();
        assert!(status.success(), "{command}");
    };
    sh("ip link set lo up");
    for file in ["resolv.conf", "nsswitch.conf"] {
        sh(&format!(
            "mount --bind {} /etc/{file}",
            dir.join(file).display()
        ));
    }
    let links = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    assert!(links.contains(": lo:"), "{links}");

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut queries = nxdomain_resolver().await;
        let root = Root::new("wanwatch test root");
        let ca_file = root.pem_file(dir);
        let e = probe("https://wanwatch-nowhere.test/", Some(&ca_file)).await;
        let (step, error, timed) = failure(&e);
        assert_eq!(
            (step, timed),
            (HttpsStep::Resolve, [true, false, false, false])
        );
        assert!(
            error.starts_with("cannot resolve wanwatch-nowhere.test: "),
            "{error}"
        );
        let query = queries.recv().await.unwrap();
        assert_eq!(query, b"\x10wanwatch-nowhere\x04test\x00");
    });
}

/// A resolver on 127.0.0.1:53 that answers every query NXDOMAIN, and the
/// names it was asked for (in wire form).
async fn nxdomain_resolver() -> mpsc::UnboundedReceiver<Vec<u8>> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 53)).await.unwrap();
    let (seen, queries) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut query = [0; 512];
        while let Ok((n, from)) = socket.recv_from(&mut query).await {
            let name_end = query[12..n]
                .iter()
                .position(|&b| b == 0)
                .map(|i| 12 + i + 1);
            let _ = seen.send(query[12..name_end.unwrap_or(n)].to_vec());
            let mut answer = query[..n].to_vec();
            answer[2] |= 0x80; // a response
            answer[3] = 0x80 | 3; // recursion available, NXDOMAIN
            let _ = socket.send_to(&answer, from).await;
        }
    });
    queries
}

#[tokio::test]
async fn a_config_with_an_https_target_probes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new("wanwatch test root");
    root.pem_file(dir.path());
    let (port, _) = tls_server(
        root.leaf(&["localhost"]),
        Then::Answer("HTTP/1.1 204 No Content\r\n\r\n"),
    )
    .await;
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[targets]]\nname = \"app\"\nkind = \"https\"\nurl = \"https://localhost:{port}/\"\nca_file = \"root.pem\"\n"
        ),
    )
    .unwrap();
    let config = wanwatch::config::Config::load(&config).unwrap();
    let targets = wanwatch::daemon::targets(&config).unwrap();
    assert_eq!(targets[0].endpoint(), format!("https://localhost:{port}/"));
    let mut prober = Prober::new(targets, INTERVAL, TIMEOUT).unwrap();
    let e = &prober.round().await.unwrap().results[0];
    assert!(e.ok, "{e:?}");
    assert_eq!(steps(e).status, Some(204));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_daemon_shows_the_failed_step_without_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new("wanwatch test root");
    root.pem_file(dir.path());
    let (good, _) = tls_server(
        root.leaf(&["localhost"]),
        Then::Answer("HTTP/1.1 200 OK\r\n\r\n"),
    )
    .await;
    let (portal, _) = tls_server(root.leaf(&["wanwatch.test"]), Then::Silent).await;
    let config = dir.path().join("wanwatch.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n\
             [probe]\ninterval = \"500ms\"\ntimeout = \"300ms\"\n\
             [[targets]]\nname = \"app\"\nkind = \"https\"\nurl = \"https://localhost:{good}/?token=s3cret\"\nca_file = \"root.pem\"\n\
             [[targets]]\nname = \"portal\"\nkind = \"https\"\nurl = \"https://localhost:{portal}/\"\nca_file = \"root.pem\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_wanwatch");
    let _daemon = wanwatch_tests::DaemonProcess::run(bin, &config, std::process::Stdio::null());
    let status_file = dir.path().join("status.json");
    let status = tokio::task::spawn_blocking(move || {
        wanwatch_tests::wait_for(
            &status_file,
            "both targets probed",
            Duration::from_secs(30),
            |s| s["targets"][0]["ok"] == true && s["targets"][1]["https"]["failed"] == "tls",
        )
    })
    .await
    .unwrap();
    let targets = &status["targets"];
    assert_eq!(targets[0]["address"], format!("https://localhost:{good}/"));
    assert_eq!(targets[0]["https"]["status"], 200);
    assert_eq!(
        targets[1]["https"]["error"],
        "certificate is not valid for name localhost"
    );
    assert!(!status.to_string().contains("s3cret"), "{status:#}");

    let out = Command::new(bin)
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("failed at tls: certificate is not valid for name localhost"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}
