//! Living under systemd: its notify protocol (sd_notify(3), through the
//! sd-notify crate) and whether the log goes to the journal.
//!
//! What the daemon tells systemd, and when (docs/systemd.md):
//! - `READY=1` once the config is loaded, the plugins run and the first probe
//!   round has been judged: `systemctl start` returns then, and units ordered
//!   after wanwatch start against a watchdog that is watching;
//! - `STATUS=` the WAN state and since when (`systemctl status`), sent again
//!   when it changes, that is on each transition;
//! - `WATCHDOG=1` only from the main loop, after a probe round was judged,
//!   at most every half `WatchdogSec=`: a daemon whose rounds stop reaching
//!   its main loop (a wedged task, a blocked log, a deadlock) stops pinging,
//!   and systemd restarts it;
//! - `RELOADING=1` and `READY=1` around a config reload, `STOPPING=1` when
//!   it stops.
//!
//! Every call is a no-op when systemd asked for none (`NOTIFY_SOCKET`
//! unset): run by hand, in a test, or by another supervisor.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::state::{Millis, WanState};

/// The daemon's (or the watcher's) side of `Type=notify`, told of the
/// moments systemd cares about.
pub struct Supervisor {
    /// Whether systemd listens (`NOTIFY_SOCKET` set at start).
    listening: bool,
    ready: bool,
    watchdog: Option<Watchdog>,
    /// The WAN state and since when (the daemon's timeline) that the last
    /// `STATUS=` said, so that it is sent again only when they change.
    said: Option<(WanState, Millis)>,
    /// A failure to notify is logged once, not at every round.
    failed: bool,
}

impl Supervisor {
    /// As the environment systemd set up says: `NOTIFY_SOCKET`, and
    /// `WATCHDOG_USEC` (for this process, `WATCHDOG_PID`) for the watchdog.
    /// `round_every`: the probe interval, to warn of a watchdog too short
    /// for it; None for the watcher, which has no rounds.
    pub fn from_env(round_every: Option<Duration>) -> Supervisor {
        let listening = std::env::var_os("NOTIFY_SOCKET").is_some();
        let watchdog = sd_notify::watchdog_enabled().filter(|_| listening);
        if let (Some(timeout), Some(every)) = (watchdog, round_every) {
            // Pings follow rounds: with fewer than two rounds per period a
            // late round is enough for systemd to kill a healthy daemon.
            if timeout < every * 2 {
                tracing::warn!(
                    "WatchdogSec= ({}) is shorter than two probe intervals ({} each): systemd may restart wanwatch when nothing is wrong",
                    humantime::format_duration(timeout),
                    humantime::format_duration(every)
                );
            }
        }
        Supervisor {
            listening,
            ready: false,
            watchdog: watchdog.map(Watchdog::new),
            said: None,
            failed: false,
        }
    }

    /// Whether the process was started with the watchdog on.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog.as_ref().map(|w| w.timeout)
    }

    /// A probe round was judged, the WAN now being in `state` since
    /// `since_ms`: the first round makes the daemon ready; each feeds the
    /// watchdog; `describe` gives the `STATUS=` line when they changed.
    pub fn round_handled(
        &mut self,
        now: Instant,
        state: WanState,
        since_ms: Millis,
        describe: impl FnOnce() -> String,
    ) {
        let mut states = Vec::new();
        if !self.ready {
            self.ready = true;
            states.push(NotifyState::Ready);
        }
        let status = (self.said != Some((state, since_ms))).then(describe);
        if let Some(status) = &status {
            self.said = Some((state, since_ms));
            states.push(NotifyState::Status(status));
        }
        if self.watchdog.as_mut().is_some_and(|w| w.ping_due(now)) {
            states.push(NotifyState::Watchdog);
        }
        self.send(&states);
    }

    /// Ready, saying `status` (the watcher, once it listens).
    pub fn ready(&mut self, status: &str) {
        self.ready = true;
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A config reload begins. With the monotonic time, which systemd 253
    /// and later want for `Type=notify-reload`.
    pub fn reloading(&mut self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    /// The reload is over, applied or rejected: ready again (not before
    /// the first round, whose READY=1 is still to come).
    pub fn reloaded(&mut self) {
        if self.ready {
            self.send(&[NotifyState::Ready]);
        }
    }

    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        if !self.listening || states.is_empty() {
            return;
        }
        match sd_notify::notify(states) {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                tracing::warn!("cannot notify systemd (NOTIFY_SOCKET): {e}");
            }
            Err(_) => {}
        }
    }
}

/// When to ping systemd's watchdog: asked only when a round was judged, it
/// says yes at most every half period, as sd_watchdog_enabled(3)
/// recommends, so that one late round is not yet a restart.
#[derive(Debug)]
struct Watchdog {
    timeout: Duration,
    last_ping: Option<Instant>,
}

impl Watchdog {
    fn new(timeout: Duration) -> Watchdog {
        Watchdog {
            timeout,
            last_ping: None,
        }
    }

    fn ping_due(&mut self, now: Instant) -> bool {
        let due = self
            .last_ping
            .is_none_or(|last| now.saturating_duration_since(last) >= self.timeout / 2);
        if due {
            self.last_ping = Some(now);
        }
        due
    }
}

/// The `STATUS=` line for the WAN `state` since `since` (an RFC 3339
/// instant, as the log writes them: a state can last for days), probed
/// through `targets` targets.
pub fn wan_status(state: WanState, since: &str, targets: usize, dry_run: bool) -> String {
    let plural = if targets == 1 { "" } else { "s" };
    let dry = if dry_run { ", dry run" } else { "" };
    format!("WAN {state} since {since} ({targets} target{plural}{dry})")
}

/// Whether stderr is the journal: systemd sets `JOURNAL_STREAM` to the
/// device and inode of the stream it connected stdout/stderr to; a child
/// that inherited the variable but writes elsewhere (a redirect, a pipe)
/// does not match (systemd.exec(5), "Environment variables").
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata());
    stderr.is_ok_and(|m| is_journal_stream(&stream, m.dev(), m.ino()))
}

/// Whether `JOURNAL_STREAM`'s value `stream` names the file `dev`:`ino`.
fn is_journal_stream(stream: &OsStr, dev: u64, ino: u64) -> bool {
    let parsed = stream.to_str().and_then(|s| {
        let (d, i) = s.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    });
    parsed == Some((dev, ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_at_most_every_half_period() {
        let mut watchdog = Watchdog::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        // Rounds every 2 s: the first pings, then one in every 5 s or more.
        let pinged: Vec<u64> = (0..=12)
            .map(|i| i * 2)
            .filter(|&s| watchdog.ping_due(at(s)))
            .collect();
        assert_eq!(pinged, [0, 6, 12, 18, 24]);
    }

    #[test]
    fn rounds_further_apart_than_half_a_period_each_ping() {
        let mut watchdog = Watchdog::new(Duration::from_secs(2));
        let start = Instant::now();
        assert!((0..5).all(|i| watchdog.ping_due(start + Duration::from_secs(3 * i))));
    }

    #[test]
    fn the_journal_is_only_the_stream_systemd_named() {
        let stream = OsStr::new("64769:1234567");
        assert!(is_journal_stream(stream, 64769, 1234567));
        // Inherited, but stderr was redirected: another file.
        assert!(!is_journal_stream(stream, 64769, 7654321));
        assert!(!is_journal_stream(stream, 2049, 1234567));
        for garbled in ["", "64769", "64769:", ":1234567", "x:1", "64769:1234567:1"] {
            assert!(
                !is_journal_stream(OsStr::new(garbled), 64769, 1234567),
                "{garbled:?}"
            );
        }
    }

    #[test]
    fn the_status_says_the_state_since_when_and_how_many_targets() {
        let since = "2026-12-02T14:02:11Z";
        assert_eq!(
            wan_status(WanState::Up, since, 3, false),
            "WAN up since 2026-12-02T14:02:11Z (3 targets)"
        );
        assert_eq!(
            wan_status(WanState::Down, since, 1, true),
            "WAN down since 2026-12-02T14:02:11Z (1 target, dry run)"
        );
    }
}
