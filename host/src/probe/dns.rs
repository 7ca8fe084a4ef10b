//! DNS probes: one recursive query over UDP to a resolver.
//!
//! A resolver answers when a response with the query's id comes back with
//! NOERROR or NXDOMAIN: both needed it to resolve (or to have resolved).
//! SERVFAIL, REFUSED and the like mean it is there but not working, which is
//! what "DNS is down" means to the people in the house.
//!
//! The message format is RFC 1035 section 4.1; only the 12-byte header of
//! the response is read.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// Header flags of the query: a standard query, recursion desired.
const RD: u16 = 0x0100;
const QR: u8 = 0x80;
const NOERROR: u8 = 0;
const NXDOMAIN: u8 = 3;

/// Asks `server` for the A records of `name` and waits up to `timeout` for
/// its answer; the round-trip time.
pub(super) async fn query(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    // A fresh id and source port per probe, as RFC 5452 asks of resolvers,
    // so a late or forged answer is not taken for this one.
    let id = RandomState::new().hash_one(name) as u16;
    let message = encode(id, name)?;
    let start = Instant::now();
    match tokio::time::timeout(timeout, exchange(server, &message, id)).await {
        Ok(Ok(())) => Ok(start.elapsed()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("no answer from the resolver".into()),
    }
}

async fn exchange(server: SocketAddr, message: &[u8], id: u16) -> Result<(), String> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    // Connected: the kernel drops datagrams from anyone else, and an ICMP
    // "port unreachable" comes back as an error on receive.
    socket
        .connect(server)
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    socket
        .send(message)
        .await
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut answer = [0; 512];
    loop {
        let n = socket
            .recv(&mut answer)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        match judge(&answer[..n], id) {
            Judgement::Answer => return Ok(()),
            Judgement::Failed(rcode) => {
                return Err(format!("the resolver failed ({})", rcode_name(rcode)));
            }
            // Not ours (a late answer to nothing we still wait for): keep waiting.
            Judgement::Other => continue,
        }
    }
}

/// A query message for the A records of `name`, checked as the config
/// checks it (so every label is 1 to 63 bytes).
pub fn encode(id: u16, name: &str) -> Result<Vec<u8>, String> {
    valid_name(name)?;
    let mut m = Vec::with_capacity(18 + name.len());
    for word in [id, RD, 1, 0, 0, 0] {
        m.extend_from_slice(&word.to_be_bytes());
    }
    for label in name.trim_end_matches('.').split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&TYPE_A.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Judgement {
    Answer,
    Failed(u8),
    Other,
}

pub fn judge(answer: &[u8], id: u16) -> Judgement {
    let [hi, lo, flags, rflags, ..] = *answer else {
        return Judgement::Other;
    };
    if answer.len() < 12 || u16::from_be_bytes([hi, lo]) != id || flags & QR == 0 {
        return Judgement::Other;
    }
    match rflags & 0x0f {
        NOERROR | NXDOMAIN => Judgement::Answer,
        rcode => Judgement::Failed(rcode),
    }
}

/// The RFC 1035 / RFC 6895 name of a response code.
fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE {other}"),
    }
}

/// Whether `name` can be asked for: what the config checks.
pub fn valid_name(name: &str) -> Result<(), String> {
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    let ok = name.len() <= 253
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a DNS name: use labels of 1 to 63 letters, digits, `-` and `_`, separated by dots"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_rfc_1035() {
        let m = encode(0x1234, "example.com.").unwrap();
        assert_eq!(
            m,
            [
                0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header
                7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0, // name
                0, 1, 0, 1, // A, IN
            ]
        );
    }

    #[test]
    fn only_our_response_without_a_server_failure_is_an_answer() {
        let header = |id: u16, flags: u8, rflags: u8| {
            let mut h = id.to_be_bytes().to_vec();
            h.extend([flags, rflags, 0, 1, 0, 1, 0, 0, 0, 0]);
            h
        };
        assert_eq!(judge(&header(7, 0x81, 0x80), 7), Judgement::Answer);
        assert_eq!(judge(&header(7, 0x81, 0x83), 7), Judgement::Answer);
        assert_eq!(judge(&header(7, 0x81, 0x82), 7), Judgement::Failed(2));
        assert_eq!(judge(&header(8, 0x81, 0x80), 7), Judgement::Other);
        // A query, not a response.
        assert_eq!(judge(&header(7, 0x01, 0x00), 7), Judgement::Other);
        assert_eq!(judge(&header(7, 0x81, 0x80)[..11], 7), Judgement::Other);
        assert_eq!(judge(&[], 7), Judgement::Other);
        assert_eq!(rcode_name(2), "SERVFAIL");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("example.com").is_ok());
        assert!(valid_name("example.com.").is_ok());
        assert!(valid_name("_dmarc.example.com").is_ok());
        assert!(valid_name("").is_err());
        assert!(valid_name("a..b").is_err());
        assert!(valid_name("exa mple.com").is_err());
        assert!(valid_name(&format!("{}.com", "a".repeat(64))).is_err());
    }
}
