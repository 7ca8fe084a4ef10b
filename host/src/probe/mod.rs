//! The probe layer: every target once per round, by its own kind of probe.
//!
//! A [`Prober`] owns the targets and one ICMP socket per address family
//! (the other kinds open a socket per probe). Each [`Prober::round`] probes
//! every target once, the sends spread evenly over the interval (see
//! [`send_offsets`]), and returns when every target has answered or timed
//! out, with the evidence in target order.
//!
//! ICMP echo is the cheapest and the default. The others answer questions
//! ICMP cannot: `tcp` and `http` where ICMP is filtered on the way (or a
//! captive portal answers pings), `dns` whether the resolver works, which is
//! what most people mean by "the internet is down", and `https` whether
//! what apps do works: a name resolved, TLS to it, an HTTP answer.

pub(crate) mod dns;
pub mod gateway;
mod http;
mod https;
mod icmp;
mod tcp;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::clock::{Clock, SystemClock};
use crate::state::{Evidence, HttpsEvidence, ProbeKind, Role, Round};
pub use dns::valid_name as valid_dns_name;
pub use https::{HttpsProbe, parse_url as parse_https_url, roots as https_roots};

/// Something to probe: where and how, and what its answer stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub role: Role,
    pub probe: Probe,
}

/// How a target is probed, and where: every kind but `https` probes an
/// address, never a host name, since a name would mix the resolver's
/// health into every probe (the `dns` kind is there to tell that apart).
/// `https` is the exception because it is the check of what apps do,
/// resolving included; its evidence keeps the resolver's part apart
/// ([`HttpsEvidence`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// An echo request; answered by an echo reply.
    Icmp { address: IpAddr },
    /// A TCP connection; answered when the handshake completes.
    Tcp { address: IpAddr, port: u16 },
    /// `GET /` over plain HTTP/1.1; answered by any HTTP status line, since
    /// a 404 or a redirect proves the path as well as a 200.
    Http { address: IpAddr, port: u16 },
    /// A recursive query for `query` (type A) over UDP; answered by a
    /// response with the query's id and no server failure (NOERROR or
    /// NXDOMAIN: either needed the resolver to work).
    Dns {
        address: IpAddr,
        port: u16,
        query: String,
    },
    /// `GET` of a URL over TLS, its host name resolved by the system;
    /// answered by any HTTP status line.
    Https(HttpsProbe),
}

impl Probe {
    /// What a `dns` target asks for when the config names nothing: a name
    /// that exists, so the answer needs the resolver to reach the internet
    /// unless it has the name cached.
    pub const DEFAULT_DNS_QUERY: &str = "example.com";

    pub fn kind(&self) -> ProbeKind {
        match self {
            Probe::Icmp { .. } => ProbeKind::Icmp,
            Probe::Tcp { .. } => ProbeKind::Tcp,
            Probe::Http { .. } => ProbeKind::Http,
            Probe::Dns { .. } => ProbeKind::Dns,
            Probe::Https(_) => ProbeKind::Https,
        }
    }

    /// The port a probe of this kind uses when the config names none; `tcp`
    /// has no sensible one and must be given its port, and `https` takes
    /// its port from its URL.
    pub fn default_port(kind: ProbeKind) -> Option<u16> {
        match kind {
            ProbeKind::Http => Some(80),
            ProbeKind::Dns => Some(53),
            ProbeKind::Icmp | ProbeKind::Tcp | ProbeKind::Https => None,
        }
    }
}

impl Target {
    /// Where the probe goes, for people: the address, with the port for
    /// the kinds that have one; for `https`, the URL without its query.
    pub fn endpoint(&self) -> String {
        match &self.probe {
            Probe::Icmp { address } => address.to_string(),
            Probe::Tcp { address, port }
            | Probe::Http { address, port }
            | Probe::Dns { address, port, .. } => SocketAddr::new(*address, *port).to_string(),
            Probe::Https(https) => https.shown(),
        }
    }
}

/// Probes a fixed set of targets, one round at a time.
pub struct Prober {
    /// Shared with the task that runs each round.
    shared: Arc<Shared>,
    /// The sequence number of the next echo request. Every probe gets a new
    /// one, so a late reply from an earlier round never counts for this one.
    next_seq: u16,
}

struct Shared {
    targets: Vec<Target>,
    /// When each target is sent, from the start of a round.
    offsets: Vec<Duration>,
    timeout: Duration,
    icmp: icmp::Icmp,
}

impl Prober {
    /// Fails (clear io::Error message) when an ICMP socket cannot be opened,
    /// or when timeout >= interval. Opens ICMP sockets only for the address
    /// families among the ICMP targets, and must be called inside a tokio
    /// runtime.
    pub fn new(targets: Vec<Target>, interval: Duration, timeout: Duration) -> io::Result<Prober> {
        if timeout.is_zero() || timeout >= interval {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "probe timeout ({timeout:?}) must be above zero and shorter than the interval ({interval:?}), so a round ends before the next one starts"
                ),
            ));
        }
        let icmp = icmp::Icmp::open(targets.iter().filter_map(|t| match t.probe {
            Probe::Icmp { address } => Some(address),
            _ => None,
        }))?;
        let shared = Shared {
            offsets: send_offsets(targets.len(), interval, timeout),
            targets,
            timeout,
            icmp,
        };
        Ok(Prober {
            shared: Arc::new(shared),
            next_seq: 0,
        })
    }

    /// Probes every target once and returns the round, `at_ms` being when
    /// it finished on the [`SystemClock`] timeline; or None when probing
    /// itself failed (a panic in a probe, a runtime shutting down). Such a
    /// round tells nothing about the link, and taken as "every target
    /// failed" it would fake an outage that power-cycles the modem.
    pub async fn round(&mut self) -> Option<Round> {
        let first_seq = self.next_seq;
        // Wrapping is harmless: a round is over before the next one starts, so
        // a sequence number is only ever in flight once per target address.
        self.next_seq = first_seq.wrapping_add(self.shared.targets.len() as u16);

        // The round runs as a task of its own, on a runtime worker, where the
        // I/O driver and surge-ping's receive task run: a reply then wakes its
        // probe on the same thread instead of crossing to the caller's (a
        // `block_on` main, say) every time; see docs/PERFORMANCE.md.
        let mut task = AbortOnDrop(tokio::spawn(Arc::clone(&self.shared).probe_all(first_seq)));
        let results = judged((&mut task.0).await)?;
        Some(Round {
            at_ms: SystemClock.now_ms(),
            results,
        })
    }

    pub fn targets(&self) -> &[Target] {
        &self.shared.targets
    }
}

impl Shared {
    /// Sends each target its request at its offset and collects the evidence,
    /// in target order, once every probe has answered or timed out.
    async fn probe_all(self: Arc<Self>, first_seq: u16) -> Vec<Evidence> {
        let start = Instant::now();
        let this = &self;
        // All probes are polled by this one task: no spawn per probe, and a
        // probe is polled only when its timer or reply wakes it.
        let mut probes: FuturesUnordered<_> = self
            .targets
            .iter()
            .zip(&self.offsets)
            .enumerate()
            .map(|(i, (target, &offset))| async move {
                sleep_until(start + offset).await;
                let seq = first_seq.wrapping_add(i as u16);
                (i, this.probe(target, seq).await)
            })
            .collect();

        let mut results: Vec<Evidence> = self.targets.iter().map(|t| evidence(t, None)).collect();
        while let Some((i, outcome)) = probes.next().await {
            if let (Some(slot), Some(target)) = (results.get_mut(i), self.targets.get(i)) {
                *slot = evidence(target, Some(outcome));
            }
        }
        results
    }

    /// One probe of `target`. `seq` tells this round's echo replies from
    /// late ones.
    async fn probe(&self, target: &Target, seq: u16) -> Outcome {
        let timeout = self.timeout;
        let at = SocketAddr::new;
        let rtt = match &target.probe {
            Probe::Icmp { address } => self
                .icmp
                .echo(*address, seq, timeout)
                .await
                .map_err(|f| f.to_string()),
            // Boxed: inline, their state (buffers, sockets) would make every
            // probe's future as large as the largest, and a round of 1,000
            // ICMP probes measurably slower (docs/PERFORMANCE.md).
            Probe::Tcp { address, port } => {
                Box::pin(tcp::connect(at(*address, *port), timeout)).await
            }
            Probe::Http { address, port } => {
                Box::pin(http::get(at(*address, *port), timeout)).await
            }
            Probe::Dns {
                address,
                port,
                query,
            } => Box::pin(dns::query(at(*address, *port), query, timeout)).await,
            Probe::Https(https) => {
                let (rtt, evidence) = Box::pin(https.probe(timeout)).await;
                return Outcome {
                    rtt,
                    https: Some(evidence),
                };
            }
        };
        rtt.into()
    }
}

/// The evidence of a round's task, or None (logged) if the task failed.
fn judged(joined: Result<Vec<Evidence>, tokio::task::JoinError>) -> Option<Vec<Evidence>> {
    joined
        .inspect_err(|error| tracing::error!(%error, "probe round lost: probing failed, not the link; the round is dropped"))
        .ok()
}

/// Aborts the round's task when `round()` is dropped mid-way (the daemon
/// shutting down), so no probes outlive their caller.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// When each of `n` targets is sent, from the start of a round: target i at
/// i * (interval - timeout) / n.
///
/// Spread rather than sent in one burst, because a burst of many requests
/// brings their replies back at once and overflows the socket's receive
/// buffer. The last send is at most `interval - timeout` in, so every reply
/// deadline falls inside the interval.
pub fn send_offsets(n: usize, interval: Duration, timeout: Duration) -> Vec<Duration> {
    let window = interval.saturating_sub(timeout).as_nanos();
    (0..n)
        .map(|i| {
            // u128 nanoseconds: i * window cannot overflow, and the quotient
            // is below `window`, which came from a Duration.
            let nanos = window * i as u128 / n as u128;
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        })
        .collect()
}

/// What one probe found: its round-trip time or why it failed, and for
/// `https` how each step went.
struct Outcome {
    rtt: Result<Duration, String>,
    https: Option<HttpsEvidence>,
}

impl From<Result<Duration, String>> for Outcome {
    fn from(rtt: Result<Duration, String>) -> Self {
        Outcome { rtt, https: None }
    }
}

/// The evidence for `target` from its probe's outcome: `None` before it is
/// known, then the round-trip time or why it failed.
fn evidence(target: &Target, outcome: Option<Outcome>) -> Evidence {
    let (rtt, https) = match outcome {
        Some(Outcome {
            rtt: Ok(rtt),
            https,
        }) => (Some(rtt), https),
        Some(Outcome {
            rtt: Err(failure),
            https,
        }) => {
            // Debug, not warn: failures are the evidence the state machine
            // judges, and a dead link fails every probe every round.
            tracing::debug!(name = %target.name, endpoint = %target.endpoint(), %failure, "probe failed");
            (None, https)
        }
        None => (None, None),
    };
    Evidence {
        target: target.name.clone(),
        role: target.role,
        kind: target.probe.kind(),
        ok: rtt.is_some(),
        rtt_us: rtt.map(|rtt| u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX)),
        https,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::process::Command;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn icmp_target(name: &str, role: Role, address: IpAddr) -> Target {
        Target {
            name: name.to_owned(),
            role,
            probe: Probe::Icmp { address },
        }
    }

    fn loopback_v4(last: u8) -> Target {
        icmp_target(
            &format!("lo{last}"),
            Role::Wan,
            Ipv4Addr::new(127, 0, 0, last).into(),
        )
    }

    /// ::1 is usable when a socket can be bound to it.
    fn ipv6_loopback_available() -> bool {
        std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
    }

    #[tokio::test]
    async fn a_round_whose_task_panicked_is_dropped_not_failed() {
        let panicked = tokio::spawn(async { panic!("a probe's bug") }).await;
        assert!(judged(panicked.map(|()| Vec::new())).is_none());
        let fine = tokio::spawn(async { Vec::new() }).await;
        assert_eq!(judged(fine), Some(Vec::new()));
    }

    #[test]
    fn send_offsets_spread_sends_over_interval_minus_timeout() {
        assert_eq!(
            send_offsets(4, ms(400), ms(200)),
            [ms(0), ms(50), ms(100), ms(150)]
        );
        assert_eq!(send_offsets(1, ms(2000), ms(1000)), [Duration::ZERO]);
        assert!(send_offsets(0, ms(2000), ms(1000)).is_empty());
    }

    #[test]
    fn send_offsets_keep_every_deadline_inside_the_interval() {
        let (interval, timeout) = (Duration::from_millis(1100), Duration::from_millis(100));
        let offsets = send_offsets(1000, interval, timeout);
        assert_eq!(offsets[1], ms(1));
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert!(offsets.iter().all(|&o| o + timeout < interval));
    }

    #[tokio::test]
    async fn new_rejects_a_timeout_not_shorter_than_the_interval() {
        for (interval, timeout) in [
            (ms(1000), ms(1000)),
            (ms(1000), ms(2000)),
            (ms(1000), ms(0)),
        ] {
            let error = Prober::new(vec![loopback_v4(1)], interval, timeout)
                .err()
                .expect("must be rejected");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
            assert!(
                error.to_string().contains("shorter than the interval"),
                "{error}"
            );
        }
    }

    #[test]
    fn new_outside_a_runtime_fails_instead_of_panicking() {
        let error = Prober::new(vec![loopback_v4(1)], ms(2000), ms(1000))
            .err()
            .expect("no runtime, no socket");
        assert!(error.to_string().contains("tokio runtime"), "{error}");
    }

    #[test]
    fn a_send_error_is_a_failed_probe() {
        let target = loopback_v4(1);
        let unreachable = io::Error::from_raw_os_error(libc::ENETUNREACH);
        let e = evidence(&target, Some(Err(unreachable.to_string()).into()));
        assert!(!e.ok);
        assert_eq!(e.rtt_us, None);
        let e = evidence(&target, Some(Ok(Duration::from_micros(1234)).into()));
        assert_eq!((e.ok, e.rtt_us), (true, Some(1234)));
    }

    #[test]
    fn the_round_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        fn check(prober: &mut Prober) {
            assert_send(&prober.round());
        }
        let _ = check;
    }

    #[tokio::test]
    async fn empty_round_returns_at_once() {
        let mut prober = Prober::new(Vec::new(), ms(2000), ms(1000)).expect("no sockets needed");
        let round = prober.round().await.expect("probed");
        assert!(round.results.is_empty());
        assert!(round.at_ms > 0);
    }

    #[tokio::test]
    async fn loopback_round_answers_with_rtt_in_target_order() {
        let mut targets = vec![icmp_target("v4", Role::Lan, Ipv4Addr::LOCALHOST.into())];
        if ipv6_loopback_available() {
            // IPv6 first and IPv4 last too, so order is not by family.
            targets.insert(0, icmp_target("v6", Role::Wan, Ipv6Addr::LOCALHOST.into()));
            targets.push(icmp_target(
                "v6-again",
                Role::Wan,
                Ipv6Addr::LOCALHOST.into(),
            ));
        } else {
            println!("skipped the IPv6 part: ::1 is not available on this machine");
        }
        let (interval, timeout) = (ms(1000), ms(500));
        let mut prober = Prober::new(targets.clone(), interval, timeout).expect("ICMP sockets");
        assert_eq!(prober.targets(), targets.as_slice());

        for _ in 0..2 {
            let before = SystemClock.now_ms();
            let round = prober.round().await.expect("probed");
            assert!(round.at_ms >= before);
            let names: Vec<&str> = round.results.iter().map(|e| e.target.as_str()).collect();
            let expected: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, expected);
            for (e, t) in round.results.iter().zip(&targets) {
                assert!(e.ok, "{} did not answer", t.endpoint());
                assert_eq!((e.role, e.kind), (t.role, ProbeKind::Icmp));
                let rtt = e.rtt_us.expect("rtt recorded");
                assert!(u128::from(rtt) < timeout.as_micros(), "rtt {rtt} µs");
            }
        }
    }

    #[tokio::test]
    async fn round_spreads_its_sends_and_ends_within_the_interval() {
        let targets: Vec<Target> = (1..=4).map(loopback_v4).collect();
        let (interval, timeout) = (ms(400), ms(200));
        let mut prober = Prober::new(targets, interval, timeout).expect("ICMP socket");
        let start = std::time::Instant::now();
        let round = prober.round().await.expect("probed");
        let took = start.elapsed();
        assert!(round.results.iter().all(|e| e.ok), "{round:?}");
        // The last send is at 3 * (400 - 200) / 4 = 150 ms; a burst would take
        // well under a millisecond on loopback.
        assert!(took >= ms(150), "round took {took:?}");
        assert!(took < interval, "round took {took:?}");
    }

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn on_loopback(name: &str, probe: Probe) -> Target {
        Target {
            name: name.to_owned(),
            role: Role::Wan,
            probe,
        }
    }

    /// One round of `targets`, with a timeout short enough for a test.
    async fn one_round(targets: Vec<Target>) -> Vec<Evidence> {
        let mut prober = Prober::new(targets, ms(1000), ms(300)).expect("prober");
        prober.round().await.expect("probed").results
    }

    /// A TCP listener on 127.0.0.1 and its port.
    async fn listen() -> (tokio::net::TcpListener, u16) {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    /// A port on 127.0.0.1 where nothing listens.
    async fn closed_port() -> u16 {
        listen().await.1
    }

    /// An HTTP server on 127.0.0.1 that answers every request with
    /// `answer` (nothing at all when `None`), and the requests it read.
    async fn http_server(
        answer: Option<&'static str>,
    ) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (listener, port) = listen().await;
        let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut chunk = [0; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = seen.send(String::from_utf8_lossy(&request).into_owned());
                match answer {
                    Some(answer) => {
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                    // Keep the connection open and silent past the timeout.
                    None => tokio::time::sleep(ms(2000)).await,
                }
            }
        });
        (port, requests)
    }

    /// A resolver on 127.0.0.1 that first sends a response with another id
    /// (which must be ignored), then answers with `rcode`, or stays silent
    /// when `None`; and the names it was asked for.
    async fn resolver(rcode: Option<u8>) -> (u16, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let (seen, queries) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut query = [0; 512];
            while let Ok((n, from)) = socket.recv_from(&mut query).await {
                let _ = seen.send(query[12..n].to_vec());
                let Some(rcode) = rcode else { continue };
                let mut answer = query[..n].to_vec();
                answer[2] |= 0x80;
                answer[3] = 0x80 | rcode;
                let mut stray = answer.clone();
                stray[1] ^= 0xff;
                let _ = socket.send_to(&stray, from).await;
                let _ = socket.send_to(&answer, from).await;
            }
        });
        (port, queries)
    }

    #[tokio::test]
    async fn tcp_answers_when_the_handshake_completes() {
        let (_listener, open) = listen().await;
        let closed = closed_port().await;
        let results = one_round(vec![
            on_loopback(
                "open",
                Probe::Tcp {
                    address: LO,
                    port: open,
                },
            ),
            on_loopback(
                "closed",
                Probe::Tcp {
                    address: LO,
                    port: closed,
                },
            ),
        ])
        .await;
        assert!(results[0].ok && results[0].rtt_us.is_some(), "{results:?}");
        assert_eq!(results[0].kind, ProbeKind::Tcp);
        assert!(!results[1].ok && results[1].rtt_us.is_none(), "{results:?}");
        let e = tcp::connect(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), closed), ms(300)).await;
        assert!(
            e.unwrap_err()
                .starts_with("cannot connect: Connection refused")
        );
    }

    #[tokio::test]
    async fn http_answers_with_any_status_line() {
        let (not_found, mut requests) =
            http_server(Some("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")).await;
        let (not_http, _) = http_server(Some("SSH-2.0-OpenSSH_9.2\r\n")).await;
        let (silent, _) = http_server(None).await;
        let results = one_round(vec![
            on_loopback(
                "404",
                Probe::Http {
                    address: LO,
                    port: not_found,
                },
            ),
            on_loopback(
                "ssh",
                Probe::Http {
                    address: LO,
                    port: not_http,
                },
            ),
            on_loopback(
                "silent",
                Probe::Http {
                    address: LO,
                    port: silent,
                },
            ),
            on_loopback(
                "closed",
                Probe::Http {
                    address: LO,
                    port: closed_port().await,
                },
            ),
        ])
        .await;
        let ok: Vec<bool> = results.iter().map(|e| e.ok).collect();
        assert_eq!(ok, [true, false, false, false], "{results:?}");
        assert_eq!(results[0].kind, ProbeKind::Http);
        let request = requests.recv().await.unwrap();
        assert!(request.starts_with("GET / HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains(&format!("\r\nHost: 127.0.0.1:{not_found}\r\n")),
            "{request}"
        );
        let silent = http::get(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), silent), ms(200)).await;
        assert_eq!(silent.unwrap_err(), "no HTTP answer");
    }

    #[tokio::test]
    async fn dns_answers_unless_the_resolver_fails() {
        let (noerror, mut queries) = resolver(Some(0)).await;
        let (nxdomain, _) = resolver(Some(3)).await;
        let (servfail, _) = resolver(Some(2)).await;
        let (silent, _) = resolver(None).await;
        let dns = |port| Probe::Dns {
            address: LO,
            port,
            query: "wanwatch.example".into(),
        };
        let results = one_round(vec![
            on_loopback("noerror", dns(noerror)),
            on_loopback("nxdomain", dns(nxdomain)),
            on_loopback("servfail", dns(servfail)),
            on_loopback("silent", dns(silent)),
            on_loopback("closed", dns(closed_port().await)),
        ])
        .await;
        let ok: Vec<bool> = results.iter().map(|e| e.ok).collect();
        assert_eq!(ok, [true, true, false, false, false], "{results:?}");
        assert_eq!(results[0].kind, ProbeKind::Dns);
        assert_eq!(
            queries.recv().await.unwrap(),
            b"\x08wanwatch\x07example\x00\x00\x01\x00\x01"
        );
        let at = |port| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
        let e = dns::query(at(servfail), "wanwatch.example", ms(300)).await;
        assert_eq!(e.unwrap_err(), "the resolver failed (SERVFAIL)");
        let e = dns::query(at(silent), "wanwatch.example", ms(200)).await;
        assert_eq!(e.unwrap_err(), "no answer from the resolver");
    }

    /// A veth pair from the host into a network namespace of the test's own,
    /// removed on drop.
    struct Netns {
        name: String,
        host_if: String,
        peer_if: String,
        peer_addr: Ipv4Addr,
    }

    fn ip(args: &[&str]) -> io::Result<()> {
        let output = Command::new("ip").args(args).output()?;
        if output.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    impl Netns {
        /// The namespace for test number `tag`: names and a /30 of its own,
        /// 10.254.x.(4 tag) with x from the pid, so that tests running at the
        /// same time, in this process or another, do not clash.
        fn create(tag: u8) -> io::Result<Netns> {
            let pid = std::process::id();
            let x = (pid % 250) as u8 + 1;
            let netns = Netns {
                name: format!("ww-probe-{pid}-{tag}"),
                host_if: format!("wwp{pid}{tag}h"),
                peer_if: format!("wwp{pid}{tag}n"),
                peer_addr: Ipv4Addr::new(10, 254, x, 4 * tag + 2),
            };
            let host_cidr = format!("{}/30", Ipv4Addr::new(10, 254, x, 4 * tag + 1));
            let peer_cidr = format!("{}/30", netns.peer_addr);
            ip(&["netns", "add", &netns.name])?;
            // From here on, drop cleans up whatever was made.
            let (ns, host_if, peer_if) = (&netns.name, &netns.host_if, &netns.peer_if);
            ip(&[
                "link", "add", host_if, "type", "veth", "peer", "name", peer_if,
            ])?;
            ip(&["link", "set", peer_if, "netns", ns])?;
            ip(&["addr", "add", &host_cidr, "dev", host_if])?;
            ip(&["link", "set", host_if, "up"])?;
            netns.in_ns(&format!("ip addr add {peer_cidr} dev {peer_if}"))?;
            netns.in_ns(&format!("ip link set {peer_if} up"))?;
            Ok(netns)
        }

        /// True when traffic to `addr` leaves by our veth, and so can go
        /// nowhere but into our namespace. Checked before every probe, so a
        /// half-made setup never sends to the host's real network.
        fn routed_via_veth(&self, addr: Ipv4Addr) -> bool {
            Command::new("ip")
                .args(["-o", "route", "get", &addr.to_string()])
                .output()
                .is_ok_and(|out| {
                    let text = String::from_utf8_lossy(&out.stdout);
                    out.status.success() && text.split_whitespace().any(|w| w == self.host_if)
                })
        }

        fn in_ns(&self, command: &str) -> io::Result<()> {
            ip(&["netns", "exec", &self.name, "sh", "-c", command])
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            // Deleting one end of a veth pair deletes both, and the routes
            // through it; errors are moot (the link may never have been made).
            let _ = ip(&["link", "del", &self.host_if]);
            let _ = ip(&["netns", "del", &self.name]);
        }
    }

    fn netns_or_skip(tag: u8) -> Option<Netns> {
        match Netns::create(tag) {
            Ok(netns) => Some(netns),
            Err(error) => {
                println!("skipped: cannot create network namespaces (need root): {error}");
                None
            }
        }
    }

    #[tokio::test]
    async fn a_silent_target_fails_after_the_timeout() {
        let Some(netns) = netns_or_skip(1) else {
            return;
        };
        let peer = netns.peer_addr;
        assert!(netns.routed_via_veth(peer), "veth route missing");
        let target = icmp_target("ns", Role::Lan, peer.into());
        let (interval, timeout) = (ms(1000), ms(300));
        let mut prober = Prober::new(vec![target], interval, timeout).expect("ICMP socket");

        let round = prober.round().await.expect("probed");
        assert!(round.results[0].ok, "the namespace answers: {round:?}");

        // The peer stays up but ignores echo requests: nothing comes back.
        netns
            .in_ns("echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all")
            .expect("silence the namespace");
        assert!(netns.routed_via_veth(peer));
        let start = std::time::Instant::now();
        let round = prober.round().await.expect("probed");
        let took = start.elapsed();
        assert!(!round.results[0].ok, "{round:?}");
        assert_eq!(round.results[0].rtt_us, None);
        assert!(took >= timeout && took < interval, "took {took:?}");

        // It answers again once it listens, with a new sequence number.
        netns
            .in_ns("echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_all")
            .expect("unsilence the namespace");
        assert!(netns.routed_via_veth(peer));
        assert!(prober.round().await.expect("probed").results[0].ok);

        // The cable pulled: the namespace's end goes down.
        netns
            .in_ns(&format!("ip link set {} down", netns.peer_if))
            .expect("link down");
        if netns.routed_via_veth(peer) {
            let round = prober.round().await.expect("probed");
            assert!(!round.results[0].ok, "{round:?}");
        } else {
            println!("skipped the link-down part: the host dropped the veth route");
        }
    }

    #[tokio::test]
    async fn an_icmp_error_is_not_an_answer() {
        let Some(netns) = netns_or_skip(2) else {
            return;
        };
        // An address beyond the namespace, routed into it, where a router
        // with no way on answers "host unreachable" instead of an echo reply.
        let beyond = Ipv4Addr::new(10, 254, netns.peer_addr.octets()[2], 200);
        let via = netns.peer_addr.to_string();
        ip(&[
            "route",
            "add",
            &format!("{beyond}/32"),
            "via",
            &via,
            "dev",
            &netns.host_if,
        ])
        .expect("route into the namespace");
        netns
            .in_ns(&format!(
                "echo 1 > /proc/sys/net/ipv4/ip_forward && ip route add unreachable {beyond}/32"
            ))
            .expect("make the namespace a router with no way on");
        assert!(
            netns.routed_via_veth(beyond),
            "route into the namespace missing"
        );

        let target = icmp_target("beyond", Role::Wan, beyond.into());
        let (interval, timeout) = (ms(2000), ms(1000));
        let mut prober = Prober::new(vec![target], interval, timeout).expect("ICMP socket");
        let start = std::time::Instant::now();
        let round = prober.round().await.expect("probed");
        let took = start.elapsed();
        assert!(!round.results[0].ok, "{round:?}");
        assert_eq!(round.results[0].rtt_us, None);
        // Raw sockets see the error and fail the probe at once; a ping
        // socket does not see it and times out.
        assert!(took < interval, "took {took:?}");
    }
}
