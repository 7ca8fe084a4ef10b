//! The probe layer: ICMP echo to every target once per round.
//!
//! A [`Prober`] owns the targets and one ICMP socket per address family. Each
//! [`Prober::round`] sends one echo request per target, spread evenly over the
//! interval (see [`send_offsets`]), and returns when every target has answered
//! or timed out, with the evidence in target order.

pub mod gateway;
mod icmp;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::clock::{Clock, SystemClock};
use crate::state::{Evidence, ProbeKind, Role, Round};
use icmp::Failure;

/// Something to probe: where, and what its answer stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub role: Role,
    pub kind: ProbeKind,
    pub address: IpAddr,
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
    /// Fails (clear io::Error message) when the ICMP socket cannot be opened,
    /// or when timeout >= interval. Opens sockets only for the address
    /// families among the targets, and must be called inside a tokio runtime.
    pub fn new(targets: Vec<Target>, interval: Duration, timeout: Duration) -> io::Result<Prober> {
        if timeout.is_zero() || timeout >= interval {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "probe timeout ({timeout:?}) must be above zero and shorter than the interval ({interval:?}), so a round ends before the next one starts"
                ),
            ));
        }
        if let Some(target) = targets.iter().find(|t| t.kind != ProbeKind::Icmp) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "target {:?}: only ICMP probes are implemented, not {:?}",
                    target.name, target.kind
                ),
            ));
        }
        let icmp = icmp::Icmp::open(targets.iter().map(|t| t.address))?;
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

    /// Probes every target once and returns the round; `at_ms` = SystemClock
    /// time when the round finished.
    pub async fn round(&mut self) -> Round {
        let first_seq = self.next_seq;
        // Wrapping is harmless: a round is over before the next one starts, so
        // a sequence number is only ever in flight once per target address.
        self.next_seq = first_seq.wrapping_add(self.shared.targets.len() as u16);

        // The round runs as a task of its own, on a runtime worker, where the
        // I/O driver and surge-ping's receive task run: a reply then wakes its
        // probe on the same thread instead of crossing to the caller's (a
        // `block_on` main, say) every time; see docs/PERFORMANCE.md.
        let mut task = AbortOnDrop(tokio::spawn(Arc::clone(&self.shared).probe_all(first_seq)));
        let results = match (&mut task.0).await {
            Ok(results) => results,
            Err(error) => {
                // Only a bug (a panic) or a runtime shutting down gets here.
                tracing::error!(%error, "probe round failed");
                self.shared
                    .targets
                    .iter()
                    .map(|t| evidence(t, None))
                    .collect()
            }
        };
        Round {
            at_ms: SystemClock.now_ms(),
            results,
        }
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
        let (icmp, timeout) = (&self.icmp, self.timeout);
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
                (i, icmp.echo(target.address, seq, timeout).await)
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

/// The evidence for `target` from its probe's outcome: `None` before it is
/// known, then the round-trip time or why it failed.
fn evidence(target: &Target, outcome: Option<Result<Duration, Failure>>) -> Evidence {
    let rtt = match outcome {
        Some(Ok(rtt)) => Some(rtt),
        Some(Err(failure)) => {
            // Debug, not warn: failures are the evidence the state machine
            // judges, and a dead link fails every probe every round.
            tracing::debug!(name = %target.name, address = %target.address, %failure, "probe failed");
            None
        }
        None => None,
    };
    Evidence {
        target: target.name.clone(),
        role: target.role,
        kind: target.kind,
        ok: rtt.is_some(),
        rtt_us: rtt.map(|rtt| u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX)),
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
            kind: ProbeKind::Icmp,
            address,
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

    #[tokio::test]
    async fn new_rejects_kinds_it_cannot_probe() {
        let mut target = loopback_v4(1);
        target.kind = ProbeKind::Dns;
        let error = Prober::new(vec![target], ms(2000), ms(1000))
            .err()
            .expect("must be rejected");
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
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
        let failure = Failure::Other(surge_ping::SurgeError::IOError(unreachable));
        let e = evidence(&target, Some(Err(failure)));
        assert!(!e.ok);
        assert_eq!(e.rtt_us, None);
        let e = evidence(&target, Some(Ok(Duration::from_micros(1234))));
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
        let round = prober.round().await;
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
            let round = prober.round().await;
            assert!(round.at_ms >= before);
            let names: Vec<&str> = round.results.iter().map(|e| e.target.as_str()).collect();
            let expected: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, expected);
            for (e, t) in round.results.iter().zip(&targets) {
                assert!(e.ok, "{} did not answer", t.address);
                assert_eq!((e.role, e.kind), (t.role, t.kind));
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
        let round = prober.round().await;
        let took = start.elapsed();
        assert!(round.results.iter().all(|e| e.ok), "{round:?}");
        // The last send is at 3 * (400 - 200) / 4 = 150 ms; a burst would take
        // well under a millisecond on loopback.
        assert!(took >= ms(150), "round took {took:?}");
        assert!(took < interval, "round took {took:?}");
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

        let round = prober.round().await;
        assert!(round.results[0].ok, "the namespace answers: {round:?}");

        // The peer stays up but ignores echo requests: nothing comes back.
        netns
            .in_ns("echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all")
            .expect("silence the namespace");
        assert!(netns.routed_via_veth(peer));
        let start = std::time::Instant::now();
        let round = prober.round().await;
        let took = start.elapsed();
        assert!(!round.results[0].ok, "{round:?}");
        assert_eq!(round.results[0].rtt_us, None);
        assert!(took >= timeout && took < interval, "took {took:?}");

        // It answers again once it listens, with a new sequence number.
        netns
            .in_ns("echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_all")
            .expect("unsilence the namespace");
        assert!(netns.routed_via_veth(peer));
        assert!(prober.round().await.results[0].ok);

        // The cable pulled: the namespace's end goes down.
        netns
            .in_ns(&format!("ip link set {} down", netns.peer_if))
            .expect("link down");
        if netns.routed_via_veth(peer) {
            let round = prober.round().await;
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
        let round = prober.round().await;
        let took = start.elapsed();
        assert!(!round.results[0].ok, "{round:?}");
        assert_eq!(round.results[0].rtt_us, None);
        // Raw sockets see the error and fail the probe at once; a ping
        // socket does not see it and times out.
        assert!(took < interval, "took {took:?}");
    }
}
