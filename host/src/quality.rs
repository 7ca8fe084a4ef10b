//! Link quality: per target, a sliding window of loss, round trips and
//! jitter, and the "degraded" signal judged from the `wan` targets.
//!
//! Pure, like the state machine: rounds come in with their time, changes of
//! the signal come out. Degraded is not a fourth WAN state: up, sick and
//! down keep their meaning, and a degraded link is usually up.
//!
//! Each target's window holds its last N probes (N = `quality_window` /
//! `interval`, rounded up), in storage allocated once: a ring of round trips
//! (none for a lost probe), the answered ones kept sorted for percentiles,
//! and a running sum of the differences of successive answers for jitter.
//! A round costs each target a binary search and a shift within the sorted
//! array, and allocates nothing.
//!
//! The judgement (see [`Quality::observe`]):
//! - it reads the **lowest** loss and the **lowest** median round trip
//!   among the `wan` targets: a link is degraded when every target sees it,
//!   not when one target drops ICMP or sits on a slow path;
//! - the link becomes degraded at the first round where the loss is at or
//!   above `degraded_loss`, or the median round trip at or above
//!   `degraded_rtt`, once the window holds at least [`MIN_PROBES`] probes
//!   (or all of a smaller window): a judgement on two probes would call the
//!   line degraded for one lost ping after a start;
//! - it is back to normal only once both figures have stayed below their
//!   thresholds for `degraded_hold` without a break (hysteresis, as
//!   dpinger's alarms have): a figure hovering at the threshold as probes
//!   enter and leave the window would otherwise flip the signal every round;
//! - rounds of a sick link count as ordinary losses; while the link is down
//!   the judgement pauses (no change either way), and when it comes back up
//!   the windows start empty: an outage's losses say nothing about the line
//!   once it is back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::{Millis, Role, Round, WanState};

/// The probes a window must hold before the link is judged: 20 s of rounds
/// at the default 2 s interval. Fewer make figures that mean little: one
/// lost probe of the first three after a start is 33 % loss.
pub const MIN_PROBES: usize = 10;

/// The most probes a window may hold (`quality_window` / `interval`): each
/// round shifts up to this many round trips per target.
pub const MAX_WINDOW_PROBES: usize = 10_000;

/// What the judgement needs from the `[probe]` config.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Probes per window.
    pub window: usize,
    /// Degraded at or above this loss, in percent.
    pub degraded_loss_percent: Option<f32>,
    /// Degraded at or above this median round trip, in microseconds.
    pub degraded_rtt_us: Option<u32>,
    /// How long both figures must stay below their thresholds before a
    /// degraded link is back to normal.
    pub hold_ms: Millis,
}

impl Settings {
    /// How many probes a window of `window` holds at one probe every
    /// `interval`: rounded up, at least 2 (jitter needs two answers).
    pub fn probes(window: Duration, interval: Duration) -> usize {
        let interval = interval.as_nanos().max(1);
        let n = window.as_nanos().div_ceil(interval);
        usize::try_from(n).unwrap_or(usize::MAX).max(2)
    }

    /// Whether a threshold is set: without one the link is never degraded.
    pub fn judges(&self) -> bool {
        self.degraded_loss_percent.is_some() || self.degraded_rtt_us.is_some()
    }

    fn min_probes(&self) -> usize {
        self.window.min(MIN_PROBES)
    }

    /// Whether figures at this loss and median round trip are degraded.
    fn over(&self, loss_percent: f64, rtt_p50_us: Option<u32>) -> bool {
        self.degraded_loss_percent
            .is_some_and(|limit| loss_percent >= f64::from(limit))
            || self
                .degraded_rtt_us
                .zip(rtt_p50_us)
                .is_some_and(|(limit, rtt)| rtt >= limit)
    }
}

/// One target's window, as status, history, API and plugins show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetQuality {
    pub target: String,
    pub role: Role,
    /// Probes in the window.
    pub probes: u32,
    /// Share of them that got no answer, in percent.
    pub loss_percent: f32,
    /// Median and 95th percentile of the answered round trips, by nearest
    /// rank; None when nothing answered.
    pub rtt_p50_us: Option<u32>,
    pub rtt_p95_us: Option<u32>,
    /// Mean absolute difference of successive round trips (RFC 3550).
    pub jitter_us: Option<u32>,
}

/// The link's quality, judged from the `wan` targets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkQuality {
    pub degraded: bool,
    /// The lowest loss among the `wan` targets, in percent.
    pub loss_percent: f32,
    /// The lowest median round trip among the `wan` targets.
    pub rtt_p50_us: Option<u32>,
    /// Every target's window, in target order.
    pub targets: Vec<TargetQuality>,
}

/// A change of the degraded signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityChange {
    /// True when the link became degraded, false when back to normal.
    pub degraded: bool,
    pub at_ms: Millis,
    pub previous_duration_ms: Millis,
    /// The WAN state when it changed.
    pub wan: WanState,
    pub quality: LinkQuality,
}

/// One probe in a window.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// None: lost.
    rtt_us: Option<u32>,
    /// |this round trip - the next answered one|, once a later probe in the
    /// window has answered: the jitter term that leaves with this probe.
    to_next_us: Option<u32>,
}

/// A target's last N probes. Every buffer is allocated at construction.
#[derive(Clone, Debug)]
struct Window {
    slots: Box<[Slot]>,
    /// The oldest probe's slot.
    head: usize,
    len: usize,
    lost: usize,
    /// The answered round trips, ascending.
    sorted: Vec<u32>,
    /// Sum of the `to_next_us` in the window.
    jitter_sum_us: u64,
    /// The newest answered probe's slot, while it is in the window.
    last_answered: Option<usize>,
}

impl Window {
    fn new(capacity: usize) -> Window {
        let capacity = capacity.max(1);
        Window {
            slots: vec![Slot::default(); capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            lost: 0,
            sorted: Vec::with_capacity(capacity),
            jitter_sum_us: 0,
            last_answered: None,
        }
    }

    fn push(&mut self, rtt_us: Option<u32>) {
        let capacity = self.slots.len();
        if self.len == capacity {
            self.evict();
        }
        let i = (self.head + self.len) % capacity;
        self.slots[i] = Slot {
            rtt_us,
            to_next_us: None,
        };
        self.len += 1;
        let Some(rtt) = rtt_us else {
            self.lost += 1;
            return;
        };
        // Within capacity: the sorted array never holds more than the ring.
        let at = self.sorted.partition_point(|&x| x < rtt);
        self.sorted.insert(at, rtt);
        if let Some(previous) = self.last_answered {
            let slot = &mut self.slots[previous];
            let difference = slot.rtt_us.map_or(0, |p| p.abs_diff(rtt));
            slot.to_next_us = Some(difference);
            self.jitter_sum_us += u64::from(difference);
        }
        self.last_answered = Some(i);
    }

    fn evict(&mut self) {
        let slot = self.slots[self.head];
        match slot.rtt_us {
            None => self.lost -= 1,
            Some(rtt) => {
                if let Ok(at) = self.sorted.binary_search(&rtt) {
                    self.sorted.remove(at);
                }
                self.jitter_sum_us -= slot.to_next_us.map_or(0, u64::from);
                if self.last_answered == Some(self.head) {
                    self.last_answered = None;
                }
            }
        }
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.lost = 0;
        self.sorted.clear();
        self.jitter_sum_us = 0;
        self.last_answered = None;
    }

    fn loss_percent(&self) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        self.lost as f64 * 100.0 / self.len as f64
    }

    /// The `p`th percentile of the answered round trips by nearest rank:
    /// the value at rank ceil(p / 100 × n) of the n sorted ones (1-based).
    fn percentile(&self, p: usize) -> Option<u32> {
        let rank = (p * self.sorted.len()).div_ceil(100).max(1);
        self.sorted.get(rank - 1).copied()
    }

    /// The mean absolute difference of successive answered round trips.
    fn jitter_us(&self) -> Option<u32> {
        let pairs = self.sorted.len().checked_sub(1).filter(|&n| n > 0)?;
        u32::try_from(self.jitter_sum_us / pairs as u64).ok()
    }
}

#[derive(Clone, Debug)]
struct Tracked {
    name: String,
    role: Role,
    window: Window,
}

/// The windows of every target and the degraded signal.
#[derive(Clone, Debug)]
pub struct Quality {
    settings: Settings,
    targets: Vec<Tracked>,
    degraded: bool,
    /// When the signal took its current value.
    since_ms: Millis,
    /// While degraded: since when both figures have been below their
    /// thresholds, without a break.
    below_since: Option<Millis>,
    /// The WAN state of the last round.
    wan: WanState,
}

impl Quality {
    /// Windows for `targets` (name and role), in the order the rounds give
    /// their evidence; the signal starts normal at `now_ms`.
    pub fn new(
        settings: Settings,
        targets: impl IntoIterator<Item = (String, Role)>,
        now_ms: Millis,
    ) -> Quality {
        let window = settings.window.min(MAX_WINDOW_PROBES);
        Quality {
            settings,
            targets: targets
                .into_iter()
                .map(|(name, role)| Tracked {
                    name,
                    role,
                    window: Window::new(window),
                })
                .collect(),
            degraded: false,
            since_ms: now_ms,
            below_since: None,
            wan: WanState::Up,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn degraded(&self) -> bool {
        self.degraded
    }

    /// When the signal took its current value.
    pub fn since_ms(&self) -> Millis {
        self.since_ms
    }

    /// Feeds a round (its evidence in target order) and the WAN state the
    /// state machine reached with it; returns the change of the signal it
    /// causes, if any. Allocates only for a change.
    pub fn observe(&mut self, round: &Round, wan: WanState) -> Option<QualityChange> {
        if self.wan == WanState::Down && wan != WanState::Down {
            for t in &mut self.targets {
                t.window.clear();
            }
            self.below_since = None;
        }
        self.wan = wan;
        for (t, evidence) in self.targets.iter_mut().zip(&round.results) {
            t.window.push(evidence.rtt_us.filter(|_| evidence.ok));
        }
        if wan == WanState::Down || !self.settings.judges() {
            return None;
        }
        let (probes, loss, rtt) = self.link();
        if probes < self.settings.min_probes() {
            return None;
        }
        let now = round.at_ms;
        match (self.degraded, self.settings.over(loss, rtt)) {
            (false, true) => Some(self.change(true, now)),
            (true, true) => {
                self.below_since = None;
                None
            }
            (true, false) => {
                let below_since = *self.below_since.get_or_insert(now);
                (now.saturating_sub(below_since) >= self.settings.hold_ms)
                    .then(|| self.change(false, now))
            }
            (false, false) => None,
        }
    }

    /// What status, API and plugins show: every window's figures.
    pub fn snapshot(&self) -> LinkQuality {
        let (_, loss, rtt) = self.link();
        LinkQuality {
            degraded: self.degraded,
            loss_percent: loss as f32,
            rtt_p50_us: rtt,
            targets: self
                .targets
                .iter()
                .map(|t| TargetQuality {
                    target: t.name.clone(),
                    role: t.role,
                    probes: u32::try_from(t.window.len).unwrap_or(u32::MAX),
                    loss_percent: t.window.loss_percent() as f32,
                    rtt_p50_us: t.window.percentile(50),
                    rtt_p95_us: t.window.percentile(95),
                    jitter_us: t.window.jitter_us(),
                })
                .collect(),
        }
    }

    /// The figures the judgement reads: the fewest probes, the lowest loss
    /// and the lowest median round trip among the `wan` targets (no probes
    /// and no loss without one).
    fn link(&self) -> (usize, f64, Option<u32>) {
        let mut probes = None::<usize>;
        let mut loss = None::<f64>;
        let mut rtt = None::<u32>;
        for t in self.targets.iter().filter(|t| t.role == Role::Wan) {
            let w = &t.window;
            probes = Some(probes.map_or(w.len, |p| p.min(w.len)));
            loss = Some(loss.map_or(w.loss_percent(), |l| l.min(w.loss_percent())));
            if let Some(p50) = w.percentile(50) {
                rtt = Some(rtt.map_or(p50, |r| r.min(p50)));
            }
        }
        (probes.unwrap_or(0), loss.unwrap_or(0.0), rtt)
    }

    fn change(&mut self, degraded: bool, now: Millis) -> QualityChange {
        let previous_duration_ms = now.saturating_sub(self.since_ms);
        self.degraded = degraded;
        self.since_ms = now;
        self.below_since = None;
        QualityChange {
            degraded,
            at_ms: now,
            previous_duration_ms,
            wan: self.wan,
            quality: self.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Evidence;

    fn window(capacity: usize, probes: &[Option<u32>]) -> Window {
        let mut w = Window::new(capacity);
        for &p in probes {
            w.push(p);
        }
        w
    }

    /// (probes, loss %, p50, p95, jitter)
    fn figures(w: &Window) -> (usize, f64, Option<u32>, Option<u32>, Option<u32>) {
        (
            w.len,
            w.loss_percent(),
            w.percentile(50),
            w.percentile(95),
            w.jitter_us(),
        )
    }

    #[test]
    fn an_empty_window_has_no_figures() {
        assert_eq!(figures(&Window::new(5)), (0, 0.0, None, None, None));
        // One answer: percentiles, but no pair for jitter.
        assert_eq!(
            figures(&window(5, &[Some(7)])),
            (1, 0.0, Some(7), Some(7), None)
        );
    }

    #[test]
    fn figures_of_a_partly_filled_window() {
        // 40, lost, 10, 30, 20 in a window of 10: 1 lost in 5 = 20 %.
        // Sorted answers: 10 20 30 40 (n = 4).
        // p50: rank ceil(0.50 × 4) = 2 → 20; p95: rank ceil(0.95 × 4) = 4 → 40.
        // Jitter over successive answers 40 → 10 → 30 → 20 (the loss is
        // skipped): |40-10| + |10-30| + |30-20| = 30 + 20 + 10 = 60, over
        // 3 pairs = 20.
        let w = window(10, &[Some(40), None, Some(10), Some(30), Some(20)]);
        assert_eq!(figures(&w), (5, 20.0, Some(20), Some(40), Some(20)));
    }

    #[test]
    fn nearest_rank_on_twenty_answers() {
        // 1..=20: p50 rank ceil(10) = 10 → 10; p95 rank ceil(19) = 19 → 19.
        // Jitter: 19 steps of 1 over 19 pairs = 1.
        let probes: Vec<_> = (1..=20).map(Some).collect();
        let w = window(20, &probes);
        assert_eq!(figures(&w), (20, 0.0, Some(10), Some(19), Some(1)));
        // 21 answers: p50 rank ceil(10.5) = 11; p95 rank ceil(19.95) = 20.
        let probes: Vec<_> = (1..=21).map(Some).collect();
        let w = window(21, &probes);
        assert_eq!((w.percentile(50), w.percentile(95)), (Some(11), Some(20)));
    }

    #[test]
    fn eviction_drops_the_oldest_probe_from_every_figure() {
        // Window of 4. Pushes: 100, lost, 50, 70, 10, lost.
        // After 4 pushes: [100, lost, 50, 70]: loss 1/4 = 25 %; sorted
        // 50 70 100; p50 rank ceil(1.5) = 2 → 70; p95 rank ceil(2.85) = 3 →
        // 100; jitter over 100 → 50 → 70: (50 + 20) / 2 = 35.
        // 5th push evicts 100: [lost, 50, 70, 10]: loss 25 %; sorted
        // 10 50 70; p50 → 50; p95 → 70; jitter over 50 → 70 → 10:
        // (20 + 60) / 2 = 40 (the pair 100 → 50 left with 100).
        let mut w = window(4, &[Some(100), None, Some(50), Some(70)]);
        assert_eq!(figures(&w), (4, 25.0, Some(70), Some(100), Some(35)));
        w.push(Some(10));
        assert_eq!(figures(&w), (4, 25.0, Some(50), Some(70), Some(40)));
        // 6th push evicts the loss, adds one: [50, 70, 10, lost]: 25 %,
        // same answers, same figures.
        w.push(None);
        assert_eq!(figures(&w), (4, 25.0, Some(50), Some(70), Some(40)));
        // 7th evicts 50: [70, 10, lost, 30]: sorted 10 30 70; p50 rank 2 →
        // 30; jitter 70 → 10 → 30: (60 + 20) / 2 = 40.
        w.push(Some(30));
        assert_eq!(figures(&w), (4, 25.0, Some(30), Some(70), Some(40)));
    }

    #[test]
    fn wrap_around_many_times_keeps_the_sums_exact() {
        // A window of 3 fed a repeating 10, 40, lost: after any number of
        // full turns it holds [10, 40, lost]: one pair, |10 - 40| = 30 (the
        // pair 40 → 10 across the previous turn's loss left with that 40).
        let mut w = Window::new(3);
        for i in 0..3_000 {
            w.push([Some(10), Some(40), None][i % 3]);
        }
        assert_eq!(figures(&w), (3, 100.0 / 3.0, Some(10), Some(40), Some(30)));
        assert_eq!(w.jitter_sum_us, 30);
        // Only losses for a full turn: nothing answered is left, and the
        // newest answer left with its slot, so the next answer pairs with
        // nothing.
        for _ in 0..3 {
            w.push(None);
        }
        assert_eq!(figures(&w), (3, 100.0, None, None, None));
        w.push(Some(500));
        w.push(Some(200));
        assert_eq!(w.jitter_us(), Some(300));
    }

    #[test]
    fn equal_round_trips_leave_one_copy_each() {
        // Duplicates: evicting one 20 must leave the other.
        let mut w = window(3, &[Some(20), Some(20), Some(5)]);
        w.push(Some(9));
        // [20, 5, 9]: sorted 5 9 20; jitter (15 + 4) / 2 = 9 (integer µs).
        assert_eq!(w.sorted, [5, 9, 20]);
        assert_eq!(w.jitter_us(), Some(9));
    }

    #[test]
    fn a_window_never_grows_its_storage() {
        let mut w = Window::new(150);
        let capacity = w.sorted.capacity();
        for i in 0..10_000u32 {
            w.push((i % 7 != 0).then_some(i.wrapping_mul(2_654_435_761) % 900_000));
        }
        assert_eq!(w.sorted.capacity(), capacity);
        assert_eq!(w.len, 150);
    }

    #[test]
    fn probes_per_window_round_up() {
        let s = |secs| Duration::from_secs(secs);
        assert_eq!(Settings::probes(s(300), s(2)), 150);
        assert_eq!(Settings::probes(s(301), s(2)), 151);
        assert_eq!(Settings::probes(s(1), s(2)), 2);
    }

    // The judgement. One wan target "a" and one lan target "gw", rounds
    // every second; `rtt` None is a lost probe.

    const HOLD: Millis = 60_000;

    fn quality(loss: Option<f32>, rtt_ms: Option<u32>) -> Quality {
        let settings = Settings {
            window: 20,
            degraded_loss_percent: loss,
            degraded_rtt_us: rtt_ms.map(|ms| ms * 1_000),
            hold_ms: HOLD,
        };
        let targets = [("gw".to_string(), Role::Lan), ("a".to_string(), Role::Wan)];
        Quality::new(settings, targets, 0)
    }

    fn round(at_ms: Millis, rtt_ms: Option<u32>) -> Round {
        Round {
            at_ms,
            results: vec![
                Evidence::icmp("gw", Role::Lan, Some(500)),
                Evidence::icmp("a", Role::Wan, rtt_ms.map(|ms| ms * 1_000)),
            ],
        }
    }

    /// Feeds `n` rounds one second apart from `from_ms`; the changes.
    fn feed(
        q: &mut Quality,
        from_ms: Millis,
        n: u64,
        rtt_ms: Option<u32>,
        wan: WanState,
    ) -> Vec<QualityChange> {
        (0..n)
            .filter_map(|i| q.observe(&round(from_ms + i * 1_000, rtt_ms), wan))
            .collect()
    }

    #[test]
    fn no_threshold_no_judgement() {
        let mut q = quality(None, None);
        assert!(feed(&mut q, 0, 50, None, WanState::Sick).is_empty());
        // The windows are kept all the same, for status and metrics.
        let shown = q.snapshot();
        assert_eq!(shown.loss_percent, 100.0);
        assert_eq!(shown.targets[0].rtt_p50_us, Some(500));
        assert_eq!(shown.targets[1].probes, 20);
    }

    #[test]
    fn judged_only_once_the_window_holds_the_minimum() {
        let mut q = quality(Some(10.0), None);
        // Nine lost probes: 100 % loss, but fewer than MIN_PROBES.
        assert!(feed(&mut q, 1_000, 9, None, WanState::Sick).is_empty());
        let changes = feed(&mut q, 10_000, 1, None, WanState::Sick);
        assert_eq!(changes.len(), 1);
        let c = &changes[0];
        assert!(c.degraded);
        assert_eq!((c.at_ms, c.previous_duration_ms), (10_000, 10_000));
        assert_eq!(c.wan, WanState::Sick);
        assert_eq!(c.quality.loss_percent, 100.0);
        assert!(c.quality.degraded);
    }

    #[test]
    fn exactly_at_the_loss_threshold_is_degraded() {
        let mut q = quality(Some(10.0), None);
        // Nine answers then one loss: 1 in 10 = 10 %, at the threshold.
        assert!(feed(&mut q, 0, 9, Some(20), WanState::Up).is_empty());
        let changes = feed(&mut q, 9_000, 1, None, WanState::Sick);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].quality.loss_percent, 10.0);
        // An answer makes it 1 in 11 = 9.09 %: below, but held.
        assert!(feed(&mut q, 10_000, 1, Some(20), WanState::Up).is_empty());
        assert!(q.degraded());
    }

    #[test]
    fn exactly_at_the_rtt_threshold_is_degraded_and_just_below_is_not() {
        let mut q = quality(None, Some(250));
        assert!(feed(&mut q, 0, 10, Some(249), WanState::Up).is_empty());
        // 20 probes: ten at 249 ms, ten at 250 ms: p50 rank 10 is 249.
        assert!(feed(&mut q, 10_000, 10, Some(250), WanState::Up).is_empty());
        // One more at 250 evicts a 249: rank 10 is now 250.
        let changes = feed(&mut q, 20_000, 1, Some(250), WanState::Up);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].quality.rtt_p50_us, Some(250_000));
    }

    /// A quality degraded by slow answers at 0..20 s (20 rounds).
    fn degraded_by_rtt() -> Quality {
        let mut q = quality(None, Some(250));
        let changes = feed(&mut q, 0, 20, Some(900), WanState::Up);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].at_ms, 9_000);
        q
    }

    #[test]
    fn back_to_normal_only_after_the_hold() {
        let mut q = degraded_by_rtt();
        // Fast answers from 20 s: the median drops below 250 ms once they
        // are 10 of the 20 (at 29 s). Below since 29 s: normal at 89 s.
        assert!(feed(&mut q, 20_000, 9, Some(20), WanState::Up).is_empty());
        assert!(feed(&mut q, 29_000, 60, Some(20), WanState::Up).is_empty());
        assert!(q.degraded(), "one round (1 s) before the hold ends");
        let mut q2 = q.clone();
        // One millisecond before the hold ends: still degraded.
        assert_eq!(q2.observe(&round(88_999, Some(20)), WanState::Up), None);
        let changes = feed(&mut q, 89_000, 1, Some(20), WanState::Up);
        assert_eq!(changes.len(), 1);
        let c = &changes[0];
        assert!(!c.degraded);
        // Degraded at 9 s, normal at 89 s.
        assert_eq!((c.at_ms, c.previous_duration_ms), (89_000, 80_000));
        assert_eq!(c.wan, WanState::Up);
        assert!(!c.quality.degraded);
    }

    #[test]
    fn a_spike_during_the_hold_starts_it_again() {
        let mut q = degraded_by_rtt();
        // Fast answers at 20..59 s: below from 29 s (see above).
        assert!(feed(&mut q, 20_000, 40, Some(20), WanState::Up).is_empty());
        // Slow ones at 60..70 s: at 70 s they are 11 of the 20 (51..70), so
        // rank 10 is slow again: over, 41 s into the hold.
        assert!(feed(&mut q, 60_000, 11, Some(900), WanState::Up).is_empty());
        // Fast from 71 s: the slow ones stay 11 of the 20 until the one of
        // 60 s leaves at 80 s (window 61..80: 10 slow, 10 fast, rank 10
        // fast). Below since 80 s: normal at 140 s, not 89 s.
        let changes = feed(&mut q, 71_000, 70, Some(20), WanState::Up);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].at_ms, 140_000);
    }

    #[test]
    fn the_judgement_pauses_while_down_and_starts_afresh_after() {
        let mut q = degraded_by_rtt();
        // Down for a long time: no change, whatever the figures.
        assert!(feed(&mut q, 20_000, 300, None, WanState::Down).is_empty());
        assert!(q.degraded());
        assert_eq!(q.snapshot().loss_percent, 100.0);
        // Back up: the outage's losses are gone from the windows.
        assert!(feed(&mut q, 320_000, 1, Some(20), WanState::Up).is_empty());
        let shown = q.snapshot();
        assert_eq!((shown.targets[1].probes, shown.loss_percent), (1, 0.0));
        // Not judged until ten probes (329 s), then held: normal at 389 s.
        let changes = feed(&mut q, 321_000, 100, Some(20), WanState::Up);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].at_ms, 389_000);
        assert_eq!(changes[0].previous_duration_ms, 380_000);
    }

    #[test]
    fn the_lowest_figures_among_wan_targets_decide() {
        let settings = Settings {
            window: 10,
            degraded_loss_percent: Some(25.0),
            degraded_rtt_us: Some(250_000),
            hold_ms: HOLD,
        };
        // Alone, "a" would be degraded by its loss (up to 100 %) and then
        // by its round trips, "b" by its loss (30 %); the lowest of their
        // losses peaks at 20 % (round 15: a 4 lost in 10, b 2).
        let targets = [("a".to_string(), Role::Wan), ("b".to_string(), Role::Wan)];
        let mut q = Quality::new(settings, targets, 0);
        for i in 0..20 {
            // "a" drops every probe (ICMP filtered), "b" answers in 20 ms;
            // then "a" answers in 900 ms and "b" drops every third.
            let (a, b) = if i < 10 {
                (None, Some(20_000))
            } else {
                (Some(900_000), (i % 3 != 0).then_some(20_000))
            };
            let r = Round {
                at_ms: i * 1_000,
                results: vec![
                    Evidence::icmp("a", Role::Wan, a),
                    Evidence::icmp("b", Role::Wan, b),
                ],
            };
            assert_eq!(q.observe(&r, WanState::Up), None, "round {i}");
        }
        let shown = q.snapshot();
        // a: 0 % loss, p50 900 ms; b: 3 lost in 10 (12, 15, 18), p50 20 ms.
        assert_eq!(shown.loss_percent, 0.0);
        assert_eq!(shown.rtt_p50_us, Some(20_000));
        assert_eq!(shown.targets[1].loss_percent, 30.0);
    }
}
