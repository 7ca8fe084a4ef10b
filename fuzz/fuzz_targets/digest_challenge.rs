//! `WWW-Authenticate: Digest ...` challenges (Gen2+ Shelly plugs): what is
//! parsed is answered, and the answer's parameters read back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wanwatch::drivers::digest::Challenge;

fuzz_target!(|header: &str| {
    let Ok(challenge) = Challenge::parse(header) else {
        return;
    };
    let answer = challenge.authorization("admin", "pass\"word\\", "POST", "/rpc", "0a1b");
    // The answer carries realm, nonce, opaque and qop as the challenge did,
    // quoted: read as a challenge, it is the same one.
    assert_eq!(Challenge::parse(&answer), Ok(challenge), "{answer}");
});
