//! Finding the default gateways, the natural `lan` targets.
//!
//! Read straight from procfs rather than through netlink: two small text
//! files, read once at start-up, need no extra dependency. The parsers are
//! pure so they are tested on sample text; only [`default_gateways`] and
//! [`scope_id`] touch the file system.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `RTF_UP | RTF_GATEWAY` from `<linux/route.h>`: a usable route via a gateway.
const RTF_UP_GATEWAY: u32 = 0x0001 | 0x0002;

/// The default gateways (IPv4 first, then IPv6), read from /proc/net/route and
/// /proc/net/ipv6_route. A family whose table cannot be read or has no default
/// route via a gateway is simply absent.
pub fn default_gateways() -> Vec<IpAddr> {
    let v4 = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|text| parse_ipv4_routes(&text))
        .map(IpAddr::V4);
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route")
        .ok()
        .and_then(|text| parse_ipv6_routes(&text))
        .map(IpAddr::V6);
    v4.into_iter().chain(v6).collect()
}

/// The gateway of the IPv4 default route with the lowest metric, from the text
/// of /proc/net/route. A default route without a gateway (a point-to-point
/// link such as PPP) has no address to probe and is skipped.
pub fn parse_ipv4_routes(text: &str) -> Option<Ipv4Addr> {
    text.lines()
        // The first line is the column header.
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            let (dest, gateway, flags, metric, mask) = (
                hex_u32(f.get(1)?)?,
                hex_u32(f.get(2)?)?,
                hex_u32(f.get(3)?)?,
                f.get(6)?.parse::<u32>().ok()?,
                hex_u32(f.get(7)?)?,
            );
            let default = dest == 0 && mask == 0 && gateway != 0;
            (default && flags & RTF_UP_GATEWAY == RTF_UP_GATEWAY).then_some((metric, gateway))
        })
        .min_by_key(|&(metric, _)| metric)
        // The kernel prints the network-order address as a native-endian
        // integer, so its native bytes are the address bytes.
        .map(|(_, gateway)| Ipv4Addr::from(gateway.to_ne_bytes()))
}

/// The next hop of the IPv6 default route (`::/0`) with the lowest metric,
/// from the text of /proc/net/ipv6_route.
pub fn parse_ipv6_routes(text: &str) -> Option<Ipv6Addr> {
    ipv6_default_routes(text)
        .min_by_key(|route| route.metric)
        .map(|route| route.next_hop)
}

/// The interface index to use as the scope of `addr`, a link-local next hop
/// of an IPv6 default route, or 0 when it is not one (0 means "no scope").
///
/// Default IPv6 gateways are almost always link-local (fe80::/10), which can
/// only be reached with the interface given, and a [`Target`](super::Target)
/// carries just the address.
pub(super) fn scope_id(addr: Ipv6Addr) -> u32 {
    let Ok(text) = std::fs::read_to_string("/proc/net/ipv6_route") else {
        return 0;
    };
    let Some(iface) = ipv6_route_interface(&text, addr) else {
        return 0;
    };
    let Ok(name) = std::ffi::CString::new(iface) else {
        return 0;
    };
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

/// The interface of the IPv6 default route whose next hop is `addr`.
fn ipv6_route_interface(text: &str, addr: Ipv6Addr) -> Option<&str> {
    ipv6_default_routes(text)
        .filter(|route| route.next_hop == addr)
        .min_by_key(|route| route.metric)
        .map(|route| route.iface)
}

struct Ipv6Route<'a> {
    next_hop: Ipv6Addr,
    metric: u32,
    iface: &'a str,
}

/// The usable `::/0` routes via a gateway. Unlike /proc/net/route, this file
/// has no header, and prints addresses as 32 hex digits in network order.
fn ipv6_default_routes(text: &str) -> impl Iterator<Item = Ipv6Route<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // dest dest_len src src_len next_hop metric refcnt use flags iface
        let (dest, dest_len, next_hop, metric, flags, iface) = (
            hex_u128(f.first()?)?,
            hex_u32(f.get(1)?)?,
            hex_u128(f.get(4)?)?,
            hex_u32(f.get(5)?)?,
            hex_u32(f.get(8)?)?,
            *f.get(9)?,
        );
        // The kernel's "unreachable" default on `lo` has no next hop.
        let default = dest == 0 && dest_len == 0 && next_hop != 0;
        (default && flags & RTF_UP_GATEWAY == RTF_UP_GATEWAY).then(|| Ipv6Route {
            next_hop: Ipv6Addr::from(next_hop),
            metric,
            iface,
        })
    })
}

fn hex_u32(field: &str) -> Option<u32> {
    u32::from_str_radix(field, 16).ok()
}

fn hex_u128(field: &str) -> Option<u128> {
    u128::from_str_radix(field, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE_HEADER: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";

    fn ipv4_table(rows: &[&str]) -> String {
        let mut text = ROUTE_HEADER.to_owned();
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        text
    }

    // The samples are from little-endian machines, as procfs prints them there.
    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_default_route_is_found() {
        let text = ipv4_table(&[
            "eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
            "eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0",
        ]);
        assert_eq!(
            parse_ipv4_routes(&text),
            Some(Ipv4Addr::new(192, 168, 2, 1))
        );
    }

    #[test]
    fn ipv4_without_default_route_is_none() {
        let text = ipv4_table(&[
            "eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0",
            "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0",
        ]);
        assert_eq!(parse_ipv4_routes(&text), None);
        assert_eq!(parse_ipv4_routes(ROUTE_HEADER), None);
        assert_eq!(parse_ipv4_routes(""), None);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_lowest_metric_default_route_wins() {
        let text = ipv4_table(&[
            // Wi-Fi, listed first but with the worse metric.
            "wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0",
            "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0",
            "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0",
            "wlan0\t0000000A\t00000000\t0001\t0\t0\t600\t000000FF\t0\t0\t0",
        ]);
        assert_eq!(
            parse_ipv4_routes(&text),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_default_routes_without_gateway_or_down_are_skipped() {
        let text = ipv4_table(&[
            // PPP: default route straight onto the link, no gateway.
            "ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0",
            // Flags lack RTF_UP.
            "eth1\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0",
            "eth0\t00000000\t0100000A\t0003\t0\t0\t50\t00000000\t0\t0\t0",
            "garbage line",
        ]);
        assert_eq!(parse_ipv4_routes(&text), Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    /// A realistic table: a global prefix, link-local, a default route via a
    /// link-local router, local addresses, multicast and the kernel's
    /// unreachable default on `lo`.
    const IPV6_TABLE: &str = "\
20010db8000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe80000000000000021122fffe334455 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000600 00000001 00000000 00000003    wlan0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn ipv6_lowest_metric_default_route_wins() {
        let expected: Ipv6Addr = "fe80::211:22ff:fe33:4455".parse().unwrap();
        assert_eq!(parse_ipv6_routes(IPV6_TABLE), Some(expected));
    }

    #[test]
    fn ipv6_global_next_hop_is_found() {
        let text = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n";
        assert_eq!(parse_ipv6_routes(text), Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn ipv6_without_default_route_is_none() {
        // Only the kernel's unreachable default and connected prefixes.
        let text: String = IPV6_TABLE
            .lines()
            .filter(|l| !l.contains(" 00000003 "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse_ipv6_routes(&text), None);
        assert_eq!(parse_ipv6_routes(""), None);
    }

    #[test]
    fn ipv6_next_hop_interface_is_found() {
        let wlan: Ipv6Addr = "fe80::1".parse().unwrap();
        assert_eq!(ipv6_route_interface(IPV6_TABLE, wlan), Some("wlan0"));
        let unknown: Ipv6Addr = "fe80::2".parse().unwrap();
        assert_eq!(ipv6_route_interface(IPV6_TABLE, unknown), None);
    }

    #[test]
    fn default_gateways_reads_procfs_without_panicking() {
        // Whatever this machine's tables hold, IPv4 comes before IPv6.
        let gateways = default_gateways();
        assert!(
            gateways
                .windows(2)
                .all(|w| w[0].is_ipv4() || w[1].is_ipv6())
        );
    }
}
