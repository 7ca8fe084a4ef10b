//! The benchmarks that measure a wanwatch process: the binary, and what
//! /proc says of it.

use std::path::{Path, PathBuf};

/// The release binary (or `WANWATCH_BIN`); exits saying how to build it
/// when it is missing.
pub fn release_binary() -> PathBuf {
    let binary = std::env::var_os("WANWATCH_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/wanwatch"),
        PathBuf::from,
    );
    if !binary.is_file() {
        eprintln!(
            "no release binary at {}: run `cargo build --release` first",
            binary.display()
        );
        std::process::exit(1);
    }
    binary
}

/// A `kB` field of /proc/PID/status (`VmRSS:`, `RssAnon:`); 0 when absent.
pub fn status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
