//! The DNS probe: a datagram judged against the query id, and queries
//! encoded for any name the config lets through.
//!
//! Input: two bytes of query id, then the datagram (also read as a name).
#![no_main]
use libfuzzer_sys::fuzz_target;
use wanwatch::fuzzing::{DnsJudgement, dns_judge, dns_query};

fuzz_target!(|data: &[u8]| {
    let [hi, lo, datagram @ ..] = data else {
        return;
    };
    let id = u16::from_be_bytes([*hi, *lo]);
    let judgement = dns_judge(datagram, id);
    if judgement != DnsJudgement::Other {
        assert!(datagram.len() >= 12 && datagram[..2] == [*hi, *lo] && datagram[2] & 0x80 != 0);
    }
    let Ok(name) = std::str::from_utf8(datagram) else {
        return;
    };
    let Ok(query) = dns_query(id, name) else {
        return;
    };
    assert!(query.len() <= 512, "a query fits one UDP datagram");
    // The question's labels spell the name.
    let mut labels = Vec::new();
    let mut at = 12;
    while query[at] != 0 {
        let len = usize::from(query[at]);
        labels.push(std::str::from_utf8(&query[at + 1..at + 1 + len]).unwrap());
        at += 1 + len;
    }
    assert_eq!(labels.join("."), name.trim_end_matches('.'));
    assert_eq!(query.len(), at + 5);
    // The query with the response bit set is an answer to itself.
    let mut answer = query.clone();
    answer[2] |= 0x80;
    assert_eq!(dns_judge(&answer, id), DnsJudgement::Answer);
});
