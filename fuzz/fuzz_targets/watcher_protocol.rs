//! What sites send their watcher (heartbeats, outage reports): JSON that
//! parses serializes to JSON that parses to the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wanwatch::watcher::protocol::{Heartbeat, OutageReport};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(bytes) {
        let json = serde_json::to_vec(&value).unwrap();
        let again: T = serde_json::from_slice(&json).unwrap();
        assert_eq!(value, again);
    }
}

fuzz_target!(|bytes: &[u8]| {
    round_trip::<Heartbeat>(bytes);
    round_trip::<OutageReport>(bytes);
});
