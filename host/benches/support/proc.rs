//! What /proc says of a process, for the benchmarks that measure one.

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
