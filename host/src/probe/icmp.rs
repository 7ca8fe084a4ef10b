//! ICMP echo through surge-ping, over one shared socket per address family.
//!
//! One socket per family (not per target) keeps the number of descriptors and
//! receive tasks constant however many targets there are: surge-ping's client
//! runs a single receive task that hands each reply to the waiting probe by
//! (address, identifier, sequence).
//!
//! Socket type: we ask for a DGRAM ICMP socket (Linux "ping socket") and let
//! surge-ping fall back to RAW. A ping socket works unprivileged wherever
//! `net.ipv4.ping_group_range` admits the daemon's group, and the kernel then
//! delivers only our own replies to it. When the range excludes us (the kernel
//! default "1 0" excludes even root), RAW works as root or with CAP_NET_RAW;
//! a raw socket sees every echo reply on the host, so our identifier must be
//! unlikely to match another pinger's (see [`Icmp::open`]), and a filter keeps
//! the other ICMP traffic out (see [`filter_raw_socket`]).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};

use super::gateway;

/// Echo payload size: the 56 bytes of ping(8) and fping, so our requests look
/// like any other ping to the networks on the way.
const PAYLOAD: [u8; 56] = [0; 56];

pub(super) struct Icmp {
    v4: Option<Client>,
    v6: Option<Client>,
    /// The echo identifier. With a ping socket the kernel overwrites it; with
    /// a raw socket it tells our replies from those of other pingers.
    ident: PingIdentifier,
}

impl Icmp {
    /// Opens a socket for each family that `addrs` contains, and only those:
    /// an IPv4-only setup must not fail on a host without IPv6.
    ///
    /// Must be called inside a tokio runtime (the client spawns its receive
    /// task); outside one it fails rather than panics.
    pub(super) fn open(addrs: impl IntoIterator<Item = IpAddr>) -> io::Result<Icmp> {
        let (mut need_v4, mut need_v6) = (false, false);
        for addr in addrs {
            match addr {
                IpAddr::V4(_) => need_v4 = true,
                IpAddr::V6(_) => need_v6 = true,
            }
        }
        if (need_v4 || need_v6) && tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "cannot open ICMP sockets outside a tokio runtime",
            ));
        }
        let client = |kind: ICMP| {
            let family = if kind == ICMP::V4 { "IPv4" } else { "IPv6" };
            Client::new(&Config::builder().kind(kind).build()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open an {family} ICMP socket (need root, CAP_NET_RAW or net.ipv4.ping_group_range): {e}"),
                )
            })
        };
        let v4 = need_v4.then(|| client(ICMP::V4)).transpose()?;
        let v6 = need_v6.then(|| client(ICMP::V6)).transpose()?;
        for (client, kind) in [(&v4, ICMP::V4), (&v6, ICMP::V6)] {
            if let Some(client) = client {
                filter_raw_socket(client, kind);
            }
        }
        Ok(Icmp {
            v4,
            v6,
            // Random per prober, from std's per-process random hash keys: the
            // pid alone would collide between two probers in one process.
            ident: PingIdentifier(RandomState::new().hash_one(std::process::id()) as u16),
        })
    }

    /// Sends one echo request to `addr` and waits up to `timeout` for the
    /// reply; returns the round-trip time. A send error (network unreachable,
    /// ...) or an ICMP error is returned as soon as it happens.
    pub(super) async fn echo(
        &self,
        addr: IpAddr,
        seq: u16,
        timeout: Duration,
    ) -> Result<Duration, Failure> {
        let client = match addr {
            IpAddr::V4(_) => self.v4.as_ref(),
            IpAddr::V6(_) => self.v6.as_ref(),
        };
        // `open` made a client for every family among the targets.
        let client = client.ok_or_else(|| {
            Failure::Other(SurgeError::IOError(io::Error::other(
                "no ICMP socket for this address family",
            )))
        })?;
        // A pinger is two reference counts on the shared socket: cheaper to make
        // per probe than to keep one per target behind a lock.
        let mut pinger = client.pinger(addr, self.ident).await;
        pinger.timeout(timeout);
        // Looked up per probe: a file read, small next to the probe, and it
        // follows the interface if it is re-created while the daemon runs.
        if let IpAddr::V6(v6) = addr
            && v6.is_unicast_link_local()
        {
            pinger.scope_id(gateway::scope_id(v6));
        }
        let (reply, rtt) = pinger
            .ping(PingSequence(seq), &PAYLOAD)
            .await
            .map_err(|error| match error {
                SurgeError::Timeout { .. } => Failure::Timeout,
                error => Failure::Other(error),
            })?;
        // surge-ping hands over an ICMP error quoting our request (a router's
        // "unreachable") like a reply: only an echo reply means the target is up.
        let (icmp_type, echo_reply, code, from) = match &reply {
            IcmpPacket::V4(p) => (
                p.get_icmp_type().0,
                ICMPV4_ECHO_REPLY,
                p.get_icmp_code().0,
                IpAddr::from(p.get_source()),
            ),
            IcmpPacket::V6(p) => (
                p.get_icmpv6_type().0,
                ICMPV6_ECHO_REPLY,
                p.get_icmpv6_code().0,
                IpAddr::from(p.get_source()),
            ),
        };
        if icmp_type == echo_reply {
            Ok(rtt)
        } else {
            Err(Failure::IcmpError {
                icmp_type,
                code,
                from,
            })
        }
    }
}

const ICMPV4_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// Why a probe got no answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// Nothing came back within the timeout.
    Timeout,
    /// A router (or the target) answered with an ICMP error, such as
    /// destination unreachable, instead of an echo reply.
    IcmpError {
        icmp_type: u8,
        code: u8,
        from: IpAddr,
    },
    /// The request could not be sent (network unreachable, ...), or the
    /// socket failed.
    Other(SurgeError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("no reply"),
            Failure::IcmpError {
                icmp_type,
                code,
                from,
            } => {
                write!(f, "ICMP error type {icmp_type} code {code} from {from}")
            }
            Failure::Other(error) => error.fmt(f),
        }
    }
}

/// `SOL_RAW` and `ICMP_FILTER` from `<linux/icmp.h>`, `ICMP6_FILTER` from
/// `<linux/icmpv6.h>`: the libc crate does not have them.
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;
const ICMP6_FILTER: libc::c_int = 1;

/// On a raw socket, has the kernel deliver only echo replies and the errors
/// that can quote an echo request, as ping(8) does. A raw socket otherwise
/// receives every ICMP packet for the host, our own requests among them when
/// they go through loopback, and each costs a wake-up, a read and a decode.
/// A ping (DGRAM) socket gets only its own replies and needs no filter.
///
/// Best effort: without the filter, surge-ping discards what is not ours.
fn filter_raw_socket(client: &Client, kind: ICMP) {
    let socket = client.get_socket();
    if socket.get_type() != socket2::Type::RAW {
        return;
    }
    let fd = socket.get_native_sock();
    // In both filters a set bit blocks that ICMP type.
    let rc = match kind {
        ICMP::V4 => {
            // Echo reply, destination unreachable, time exceeded, parameter problem.
            let pass = [ICMPV4_ECHO_REPLY, 3, 11, 12]
                .iter()
                .fold(0u32, |m, &t| m | 1 << t);
            let blocked: u32 = !pass;
            // SAFETY: a live socket, and a pointer to a u32 of the length given.
            unsafe { setsockopt(fd, SOL_RAW, ICMP_FILTER, &blocked) }
        }
        ICMP::V6 => {
            // Destination unreachable, packet too big, time exceeded,
            // parameter problem, echo reply.
            let mut blocked = [u32::MAX; 8];
            for t in [1, 2, 3, 4, ICMPV6_ECHO_REPLY] {
                blocked[usize::from(t >> 5)] &= !(1 << (t & 31));
            }
            // SAFETY: a live socket, and a pointer to the 32-byte icmp6_filter.
            unsafe { setsockopt(fd, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &blocked) }
        }
    };
    if rc != 0 {
        tracing::debug!(
            error = %io::Error::last_os_error(),
            "cannot set an ICMP filter on the raw socket; unfiltered"
        );
    }
}

/// `setsockopt(2)` with `value` as the option's bytes.
///
/// # Safety
/// `fd` must be an open socket.
unsafe fn setsockopt<T>(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> libc::c_int {
    // SAFETY: `value` is valid for `size_of::<T>()` bytes for the call.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    }
}
