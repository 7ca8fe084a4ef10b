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
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use surge_ping::SurgeError;
use tokio::time::{Instant, sleep_until};

use crate::clock::{Clock, SystemClock};
use crate::state::{Evidence, ProbeKind, Role, Round};

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
    targets: Vec<Target>,
    /// When each target is sent, from the start of a round.
    offsets: Vec<Duration>,
    timeout: Duration,
    icmp: icmp::Icmp,
    /// The sequence number of the next echo request. Every probe gets a new
    /// one, so a late reply from an earlier round never counts for this one.
    next_seq: u16,
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
        Ok(Prober {
            offsets: send_offsets(targets.len(), interval, timeout),
            targets,
            timeout,
            icmp,
            next_seq: 0,
        })
    }

    /// Probes every target once and returns the round; `at_ms` = SystemClock
    /// time when the round finished.
    pub async fn round(&mut self) -> Round {
        let start = Instant::now();
        let first_seq = self.next_seq;
        // Wrapping is harmless: a round is over before the next one starts, so
        // a sequence number is only ever in flight once per target address.
        self.next_seq = first_seq.wrapping_add(self.targets.len() as u16);

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

        let mut results: Vec<Evidence> = self
            .targets
            .iter()
            .map(|t| evidence(t, None))
            .collect();
        while let Some((i, outcome)) = probes.next().await {
            if let (Some(slot), Some(target)) = (results.get_mut(i), self.targets.get(i)) {
                *slot = evidence(target, Some(outcome));
            }
        }
        Round {
            at_ms: SystemClock.now_ms(),
            results,
        }
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
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
fn evidence(target: &Target, outcome: Option<Result<Duration, SurgeError>>) -> Evidence {
    let rtt = match outcome {
        Some(Ok(rtt)) => Some(rtt),
        Some(Err(SurgeError::Timeout { .. })) => {
            tracing::debug!(target = %target.name, address = %target.address, "no reply");
            None
        }
        Some(Err(error)) => {
            tracing::debug!(target = %target.name, address = %target.address, %error, "probe failed");
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

    const MS: Duration = Duration::from_millis(1);

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
            send_offsets(4, 400 * MS, 200 * MS),
            [0 * MS, 50 * MS, 100 * MS, 150 * MS]
        );
        assert_eq!(send_offsets(1, 2000 * MS, 1000 * MS), [Duration::ZERO]);
        assert!(send_offsets(0, 2000 * MS, 1000 * MS).is_empty());
    }

    #[test]
    fn send_offsets_keep_every_deadline_inside_the_interval() {
        let (interval, timeout) = (Duration::from_millis(1100), Duration::from_millis(100));
        let offsets = send_offsets(1000, interval, timeout);
        assert_eq!(offsets[1], MS);
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert!(offsets.iter().all(|&o| o + timeout < interval));
    }

    #[tokio::test]
    async fn new_rejects_a_timeout_not_shorter_than_the_interval() {
        for (interval, timeout) in [(MS * 1000, MS * 1000), (MS * 1000, MS * 2000), (MS * 1000, MS * 0)] {
            let error = Prober::new(vec![loopback_v4(1)], interval, timeout)
                .err()
                .expect("must be rejected");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
            assert!(error.to_string().contains("shorter than the interval"), "{error}");
        }
    }

    #[tokio::test]
    async fn new_rejects_kinds_it_cannot_probe() {
        let mut target = loopback_v4(1);
        target.kind = ProbeKind::Dns;
        let error = Prober::new(vec![target], MS * 2000, MS * 1000)
            .err()
            .expect("must be rejected");
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
    }

    #[test]
    fn new_outside_a_runtime_fails_instead_of_panicking() {
        let error = Prober::new(vec![loopback_v4(1)], MS * 2000, MS * 1000)
            .err()
            .expect("no runtime, no socket");
        assert!(error.to_string().contains("tokio runtime"), "{error}");
    }

    #[test]
    fn a_send_error_is_a_failed_probe() {
        let target = loopback_v4(1);
        let unreachable = io::Error::from_raw_os_error(libc::ENETUNREACH);
        let e = evidence(&target, Some(Err(SurgeError::IOError(unreachable))));
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
        let mut prober = Prober::new(Vec::new(), MS * 2000, MS * 1000).expect("no sockets needed");
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
            targets.push(icmp_target("v6-again", Role::Wan, Ipv6Addr::LOCALHOST.into()));
        } else {
            println!("skipped the IPv6 part: ::1 is not available on this machine");
        }
        let (interval, timeout) = (MS * 1000, MS * 500);
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
        let (interval, timeout) = (MS * 400, MS * 200);
        let mut prober = Prober::new(targets, interval, timeout).expect("ICMP socket");
        let start = std::time::Instant::now();
        let round = prober.round().await;
        let took = start.elapsed();
        assert!(round.results.iter().all(|e| e.ok), "{round:?}");
        // The last send is at 3 * (400 - 200) / 4 = 150 ms; a burst would take
        // well under a millisecond on loopback.
        assert!(took >= MS * 150, "round took {took:?}");
        assert!(took < interval, "round took {took:?}");
    }

    /// A veth pair from the host into a network namespace of the test's own,
    /// removed on drop.
    struct Netns {
        name: String,
        host_if: String,
        peer_if: String,
        host_addr: Ipv4Addr,
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
        fn create() -> io::Result<Netns> {
            let pid = std::process::id();
            // A /30 inside the veth pair; the third octet from the pid so that
            // concurrent runs do not share a prefix.
            let x = (pid % 250) as u8 + 1;
            let netns = Netns {
                name: format!("ww-probe-{pid}"),
                host_if: format!("wwp{pid}h"),
                peer_if: format!("wwp{pid}n"),
                host_addr: Ipv4Addr::new(10, 254, x, 1),
                peer_addr: Ipv4Addr::new(10, 254, x, 2),
            };
            ip(&["netns", "add", &netns.name])?;
            // From here on, drop cleans up whatever was made.
            let (ns, host_if, peer_if) = (&netns.name, &netns.host_if, &netns.peer_if);
            ip(&["link", "add", host_if, "type", "veth", "peer", "name", peer_if])?;
            ip(&["link", "set", peer_if, "netns", ns])?;
            ip(&["addr", "add", &format!("{}/30", netns.host_addr), "dev", host_if])?;
            ip(&["link", "set", host_if, "up"])?;
            let peer_cidr = format!("{}/30", netns.peer_addr);
            ip(&["netns", "exec", ns, "ip", "addr", "add", &peer_cidr, "dev", peer_if])?;
            ip(&["netns", "exec", ns, "ip", "link", "set", peer_if, "up"])?;
            Ok(netns)
        }

        /// True when traffic to the peer leaves by our veth, and so can go
        /// nowhere but into our namespace. Checked before every probe, so a
        /// half-made setup never sends to the host's real network.
        fn peer_routed_via_veth(&self) -> bool {
            let peer = self.peer_addr.to_string();
            Command::new("ip")
                .args(["-o", "route", "get", &peer])
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
            // Deleting one end of a veth pair deletes both; errors are moot
            // here (the link may never have been made).
            let _ = ip(&["link", "del", &self.host_if]);
            let _ = ip(&["netns", "del", &self.name]);
        }
    }

    #[tokio::test]
    async fn a_silent_target_fails_after_the_timeout() {
        let netns = match Netns::create() {
            Ok(netns) => netns,
            Err(error) => {
                println!("skipped: cannot create network namespaces (need root): {error}");
                return;
            }
        };
        assert!(netns.peer_routed_via_veth(), "veth route missing");
        let target = icmp_target("ns", Role::Lan, netns.peer_addr.into());
        let (interval, timeout) = (MS * 1000, MS * 300);
        let mut prober = Prober::new(vec![target], interval, timeout).expect("ICMP socket");

        let round = prober.round().await;
        assert!(round.results[0].ok, "the namespace answers: {round:?}");

        // The peer stays up but ignores echo requests: nothing comes back.
        netns
            .in_ns("echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all")
            .expect("silence the namespace");
        assert!(netns.peer_routed_via_veth());
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
        assert!(netns.peer_routed_via_veth());
        assert!(prober.round().await.results[0].ok);

        // The cable pulled: the namespace's end goes down.
        netns
            .in_ns(&format!("ip link set {} down", netns.peer_if))
            .expect("link down");
        if netns.peer_routed_via_veth() {
            let round = prober.round().await;
            assert!(!round.results[0].ok, "{round:?}");
        } else {
            println!("skipped the link-down part: the host dropped the veth route");
        }
    }
}
