//! The notification queue file (notify-queue.jsonl): opened, it keeps every
//! line that parses and some sink still waits for (up to its size), skips
//! the rest, and a second open finds what the first one left.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wanwatch::fuzzing::{Queue, QueueEntry};

const MAX: usize = 8;

fuzz_target!(|bytes: &[u8]| {
    let sinks = vec!["ntfy".to_string(), "webhook".to_string()];
    let waiting = bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<QueueEntry>(line).ok())
        .filter(|e| !sinks.iter().all(|s| e.done.contains(s)))
        .count();
    let dir = wanwatch_fuzz::scratch();
    let path = dir.join("notify-queue.jsonl");
    std::fs::write(&path, bytes).unwrap();
    let queue = Queue::open(path.clone(), MAX, sinks.clone()).expect("a scratch file opens");
    assert_eq!(queue.len(), waiting.min(MAX), "lost or invented an entry");
    let first: Vec<_> = sinks
        .iter()
        .map(|s| (queue.pending(s), queue.oldest_pending(s)))
        .collect();
    drop(queue);
    let again = Queue::open(path, MAX, sinks.clone()).expect("the queue it wrote opens");
    let second: Vec<_> = sinks
        .iter()
        .map(|s| (again.pending(s), again.oldest_pending(s)))
        .collect();
    assert_eq!(first, second);
});
