//! The one source of time for everything above the prober.
//!
//! Two clocks, for two purposes:
//!
//! - the **timeline** ([`Clock::now_ms`]): every duration, the down
//!   detection, plugin timers, deadlines' bookkeeping and the safety cap's
//!   window. In the daemon it is monotonic and counts time asleep
//!   (`CLOCK_BOOTTIME`), anchored to the wall clock once, when the process
//!   first reads it: a Raspberry Pi has no real-time clock, and NTP steps its
//!   wall clock at boot and whenever it corrects, which must not make a sick
//!   link "down after 1h" nor keep a dead one sick for an hour.
//! - the **wall clock** ([`Clock::wall_ms`]): timestamps people read (the
//!   status file, the transition log line, the history) and the plugins'
//!   `clock` import, so that a policy's "quiet hours" follow the time of
//!   day. A timeline instant is shown as wall-clock time by
//!   [`wall_of`] (the current distance between the two clocks applied), so
//!   after a step every timestamp reads in the corrected time.
//!
//! The simulator substitutes a virtual clock, where the two are one.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::state::Millis;

pub trait Clock: Send + Sync {
    /// The timeline: milliseconds, on the scale of the Unix epoch, never
    /// stepped.
    fn now_ms(&self) -> Millis;

    /// The wall clock: milliseconds since the Unix epoch, as the system
    /// says now. A virtual clock has no other time than its timeline.
    fn wall_ms(&self) -> Millis {
        self.now_ms()
    }

    /// What seeds the plugins' WASI random sources: None for real
    /// randomness. A virtual clock gives one, so that a simulation is
    /// replayed byte for byte, a plugin's `HashMap` included.
    fn random_seed(&self) -> Option<u64> {
        None
    }
}

/// `at`, an instant of `clock`'s timeline, as wall-clock time now.
pub fn wall_of(clock: &dyn Clock, at: Millis) -> Millis {
    shift(at, offset(clock))
}

/// `wall`, a wall-clock time (read back from a file, say), on `clock`'s
/// timeline.
pub fn timeline_of(clock: &dyn Clock, wall: Millis) -> Millis {
    shift(wall, offset(clock).saturating_neg())
}

/// How far the wall clock is ahead of the timeline, in ms.
pub fn offset(clock: &dyn Clock) -> i64 {
    let (wall, now) = (clock.wall_ms(), clock.now_ms());
    i64::try_from(i128::from(wall) - i128::from(now)).unwrap_or(0)
}

/// `at` moved by `by` ms, saturating at the ends of the scale.
pub fn shift(at: Millis, by: i64) -> Millis {
    at.saturating_add_signed(by)
}

/// The daemon's clock: the timeline on `CLOCK_BOOTTIME`, the wall clock on
/// the system's. All `SystemClock`s of a process share one anchor, so their
/// timelines agree.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// The wall clock and the monotonic clock read together once: the
/// timeline is `wall + (boottime now - boottime then)`.
struct Anchor {
    wall_ms: Millis,
    boot_ms: Millis,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        boot_ms: boottime_ms(),
        wall_ms: system_wall_ms(),
    })
}

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        let anchor = anchor();
        anchor
            .wall_ms
            .saturating_add(boottime_ms().saturating_sub(anchor.boot_ms))
    }

    fn wall_ms(&self) -> Millis {
        system_wall_ms()
    }
}

fn system_wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Milliseconds of `CLOCK_BOOTTIME`: monotonic, never stepped, and counting
/// time the machine spent suspended (`CLOCK_MONOTONIC` does not), so a
/// plugin timer due in an hour is due an hour of real time later.
/// std's `Instant` is `CLOCK_MONOTONIC`, hence libc.
fn boottime_ms() -> Millis {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const ID: libc::clockid_t = libc::CLOCK_BOOTTIME;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const ID: libc::clockid_t = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to; the clock id is one the
    // kernel supports (BOOTTIME since Linux 2.6.39), so this cannot fail.
    unsafe { libc::clock_gettime(ID, &mut ts) };
    (ts.tv_sec as Millis)
        .saturating_mul(1000)
        .saturating_add(ts.tv_nsec as Millis / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Skewed {
        now: Millis,
        wall: Millis,
    }
    impl Clock for Skewed {
        fn now_ms(&self) -> Millis {
            self.now
        }
        fn wall_ms(&self) -> Millis {
            self.wall
        }
    }

    #[test]
    fn wall_and_timeline_convert_by_their_current_distance() {
        // The wall clock was stepped an hour forward since the anchor.
        let clock = Skewed {
            now: 10_000,
            wall: 3_610_000,
        };
        assert_eq!(offset(&clock), 3_600_000);
        assert_eq!(wall_of(&clock, 9_000), 3_609_000);
        assert_eq!(timeline_of(&clock, 3_609_000), 9_000);
        // ...and an hour back: instants before the epoch saturate.
        let clock = Skewed {
            now: 3_610_000,
            wall: 10_000,
        };
        assert_eq!(wall_of(&clock, 3_609_000), 9_000);
        assert_eq!(wall_of(&clock, 5), 0);
    }

    #[test]
    fn system_timeline_starts_at_the_wall_clock_and_never_goes_back() {
        let (now, wall) = (SystemClock.now_ms(), SystemClock.wall_ms());
        assert!(now.abs_diff(wall) < 1_000, "{now} vs {wall}");
        let mut last = now;
        for _ in 0..1_000 {
            let next = SystemClock.now_ms();
            assert!(next >= last);
            last = next;
        }
    }
}
