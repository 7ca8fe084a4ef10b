//! A plugin's key-value file (`<plugin>.json`): loaded as it parses, its
//! size counted as the saved file's, or moved aside and started afresh.
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use wanwatch::fuzzing::Kv;

fuzz_target!(|bytes: &[u8]| {
    let dir = wanwatch_fuzz::scratch();
    std::fs::write(dir.join("policy.json"), bytes).unwrap();
    let kv = Kv::load("policy", Some(&dir), 7).expect("a scratch file loads");
    let (entries, size) = kv.contents();
    match serde_json::from_slice::<BTreeMap<String, String>>(bytes) {
        Ok(parsed) => {
            assert_eq!(entries, &parsed);
            // The size the limits are checked against is the saved file's
            // (an empty store, `{}`, is one byte more).
            let saved = serde_json::to_vec(entries).unwrap().len();
            assert_eq!(size + usize::from(entries.is_empty()), saved);
        }
        Err(_) => {
            assert!(entries.is_empty());
            let aside = std::fs::read(dir.join("policy.json.corrupt-7")).expect("kept aside");
            assert_eq!(aside, bytes, "the corrupt file is kept as it was");
        }
    }
});
