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
//! unlikely to match another pinger's (see [`Icmp::open`]).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence, SurgeError};

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
        Ok(Icmp {
            v4: need_v4.then(|| client(ICMP::V4)).transpose()?,
            v6: need_v6.then(|| client(ICMP::V6)).transpose()?,
            // Random per prober, from std's per-process random hash keys: the
            // pid alone would collide between two probers in one process.
            ident: PingIdentifier(RandomState::new().hash_one(std::process::id()) as u16),
        })
    }

    /// Sends one echo request to `addr` and waits up to `timeout` for the
    /// reply; returns the round-trip time. A send error (network unreachable,
    /// ...) is returned at once, without waiting.
    pub(super) async fn echo(
        &self,
        addr: IpAddr,
        seq: u16,
        timeout: Duration,
    ) -> Result<Duration, SurgeError> {
        let client = match addr {
            IpAddr::V4(_) => self.v4.as_ref(),
            IpAddr::V6(_) => self.v6.as_ref(),
        };
        // `open` made a client for every family among the targets.
        let client = client.ok_or_else(|| {
            SurgeError::IOError(io::Error::other("no ICMP socket for this address family"))
        })?;
        // A pinger is two reference counts on the shared socket: cheaper to make
        // per probe than to keep one per target behind a lock.
        let mut pinger = client.pinger(addr, self.ident).await;
        pinger.timeout(timeout);
        if let IpAddr::V6(v6) = addr
            && v6.is_unicast_link_local()
        {
            pinger.scope_id(gateway::scope_id(v6));
        }
        let (_reply, rtt) = pinger.ping(PingSequence(seq), &PAYLOAD).await?;
        Ok(rtt)
    }
}
