//! Statistics of a window `[since, until)`: pure arithmetic over the
//! window's transitions, outages, power cycles and probe aggregates (the
//! queries that fetch them are in [`super::HistoryDb::stats`]).
//!
//! Definitions:
//! - `up_ms`, `sick_ms`, `down_ms`: time in each state inside the window,
//!   from the transitions; `unknown_ms` the part of the window before the
//!   first known state (and after now). Shares are of the known time. Time
//!   the daemon was not running counts as the state it last saw.
//! - An outage counts when it overlaps the window; its part inside the
//!   window is its downtime there (an outage cut by the window counts once,
//!   with its part). Downtime runs from when the rounds began failing (see
//!   [`super::outages`]), so it includes the sick time before `down`.
//! - MTTR: downtime / outages. MTBF: (known time − downtime) / outages.
//! - Outages per day of week (Monday first) and hour of day are by their
//!   start, in UTC.
//! - Power cycles: those done (or dry-run) inside the window;
//!   `fixed_by_cycle`: outages of the window whose last cycle was followed
//!   by the link coming back within the boot window.
//! - Per target: loss and round-trip percentiles from the probe aggregates
//!   of the whole minutes that start inside the window (see
//!   [`super::aggregate`] for the percentiles' precision).

use std::collections::BTreeMap;

use serde::Serialize;

use super::aggregate::Aggregate;
use super::outages::{Cause, Outage, WanInput};
use crate::human;
use crate::state::{Millis, WanState};

const HOUR_MS: Millis = 3_600_000;
const DAY_MS: Millis = 24 * HOUR_MS;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub since_ms: Millis,
    pub until_ms: Millis,
    pub up_ms: Millis,
    pub sick_ms: Millis,
    pub down_ms: Millis,
    pub unknown_ms: Millis,
    /// Shares of the known time, 0 to 1; None when none is known.
    pub up_share: Option<f64>,
    pub sick_share: Option<f64>,
    pub down_share: Option<f64>,
    pub outages: u32,
    /// Every cause, with 0 for those that did not occur.
    pub outages_by_cause: BTreeMap<&'static str, u32>,
    pub downtime_ms: Millis,
    pub longest_outage_ms: Millis,
    pub mttr_ms: Option<Millis>,
    pub mtbf_ms: Option<Millis>,
    /// Outages by the UTC weekday they started on, Monday first.
    pub outages_by_weekday_utc: [u32; 7],
    /// Outages by the UTC hour they started in.
    pub outages_by_hour_utc: [u32; 24],
    pub power_cycles: u32,
    /// Outages of the window that had at least one power cycle.
    pub outages_with_cycles: u32,
    /// Of those, the outages a cycle fixed.
    pub fixed_by_cycle: u32,
    pub targets: Vec<TargetStats>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TargetStats {
    pub target: String,
    pub sent: u64,
    pub answered: u64,
    pub loss_percent: Option<f64>,
    pub rtt_avg_ms: Option<f64>,
    pub rtt_min_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
    pub rtt_p50_ms: Option<f64>,
    pub rtt_p95_ms: Option<f64>,
    pub rtt_p99_ms: Option<f64>,
}

impl TargetStats {
    pub fn new(target: String, a: &Aggregate) -> TargetStats {
        let ms = |us: f64| (us / 1000.0 * 1000.0).round() / 1000.0;
        let timed = a.rtt_min_us.is_some();
        TargetStats {
            target,
            sent: a.sent,
            answered: a.answered,
            loss_percent: a.loss_percent(),
            rtt_avg_ms: timed.then(|| {
                let count = a.answered.max(1) as f64;
                ms(a.rtt_sum_us as f64 / count)
            }),
            rtt_min_ms: a.rtt_min_us.map(|us| ms(f64::from(us))),
            rtt_max_ms: a.rtt_max_us.map(|us| ms(f64::from(us))),
            rtt_p50_ms: a.quantile_us(0.5).map(ms),
            rtt_p95_ms: a.quantile_us(0.95).map(ms),
            rtt_p99_ms: a.quantile_us(0.99).map(ms),
        }
    }
}

impl Stats {
    /// The statistics as `wanwatch stats` prints them.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let d = human::duration_ms;
        let pct = |share: Option<f64>| share.map_or("-".into(), |s| format!("{:.3}%", 100.0 * s));
        let mut out = format!(
            "{} to {} ({})\n",
            human::timestamp(self.since_ms),
            human::timestamp(self.until_ms),
            d(self.until_ms - self.since_ms)
        );
        let _ = write!(
            out,
            "  up {}  sick {}  down {}",
            pct(self.up_share),
            pct(self.sick_share),
            pct(self.down_share)
        );
        if self.unknown_ms > 0 {
            let _ = write!(out, "  (no data for {})", d(self.unknown_ms));
        }
        let causes: Vec<String> = self
            .outages_by_cause
            .iter()
            .map(|(cause, n)| format!("{cause} {n}"))
            .collect();
        let _ = write!(
            out,
            "\n  outages       {} ({})\n  downtime      {}, longest {}\n",
            self.outages,
            causes.join(", "),
            d(self.downtime_ms),
            d(self.longest_outage_ms)
        );
        let or_dash = |ms: Option<Millis>| ms.map_or("-".into(), d);
        let _ = writeln!(
            out,
            "  MTTR          {}   MTBF {}",
            or_dash(self.mttr_ms),
            or_dash(self.mtbf_ms)
        );
        let _ = writeln!(
            out,
            "  power cycles  {}; {} of {} outages with cycles fixed by one",
            self.power_cycles, self.fixed_by_cycle, self.outages_with_cycles
        );
        if self.outages > 0 {
            let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let weekdays: Vec<String> = days
                .iter()
                .zip(self.outages_by_weekday_utc)
                .map(|(day, n)| format!("{day} {n}"))
                .collect();
            let hours: Vec<String> = (0..24)
                .filter(|&h| self.outages_by_hour_utc[h] > 0)
                .map(|h| format!("{h:02}h {}", self.outages_by_hour_utc[h]))
                .collect();
            let _ = writeln!(out, "  by weekday    {} (UTC)", weekdays.join("  "));
            let _ = writeln!(out, "  by hour       {} (UTC)", hours.join("  "));
        }
        if !self.targets.is_empty() {
            let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}ms"));
            let _ = writeln!(
                out,
                "  {:<14} {:>9} {:>7} {:>9} {:>9} {:>9}",
                "target", "probes", "loss", "p50", "p95", "p99"
            );
            for t in &self.targets {
                let _ = writeln!(
                    out,
                    "  {:<14} {:>9} {:>7} {:>9} {:>9} {:>9}",
                    t.target,
                    t.sent,
                    t.loss_percent.map_or("-".into(), |l| format!("{l:.2}%")),
                    ms(t.rtt_p50_ms),
                    ms(t.rtt_p95_ms),
                    ms(t.rtt_p99_ms)
                );
            }
        }
        out
    }
}

/// Time in each state inside `[since, until)`: (up, sick, down, unknown).
/// `transitions` in time order, from the last one at or before `since`.
pub fn time_in_states(
    transitions: &[WanInput],
    since: Millis,
    until: Millis,
) -> (Millis, Millis, Millis, Millis) {
    let mut spent = [0; 3];
    let slot = |s: WanState| match s {
        WanState::Up => 0,
        WanState::Sick => 1,
        WanState::Down => 2,
    };
    let overlap = |from: Millis, to: Millis| to.min(until).saturating_sub(from.max(since));
    if let Some(first) = transitions.first() {
        // Before the first transition, its previous state, for as long as
        // it says.
        let from = first.at_ms.saturating_sub(first.previous_duration_ms);
        spent[slot(first.previous)] += overlap(from, first.at_ms);
    }
    for (i, t) in transitions.iter().enumerate() {
        let to = transitions.get(i + 1).map_or(until, |next| next.at_ms);
        spent[slot(t.current)] += overlap(t.at_ms, to);
    }
    let known = spent.iter().sum::<Millis>();
    let unknown = until.saturating_sub(since).saturating_sub(known);
    (spent[0], spent[1], spent[2], unknown)
}

/// The statistics from what the window's queries found; `until` is
/// already cut at now.
pub fn compute(
    since: Millis,
    until: Millis,
    transitions: &[WanInput],
    outages: &[Outage],
    power_cycles: u32,
    targets: Vec<TargetStats>,
) -> Stats {
    let (up_ms, sick_ms, down_ms, unknown_ms) = time_in_states(transitions, since, until);
    let known = up_ms + sick_ms + down_ms;
    let share = |ms: Millis| (known > 0).then(|| ms as f64 / known as f64);
    let mut by_cause: BTreeMap<&'static str, u32> =
        Cause::ALL.iter().map(|c| (c.name(), 0)).collect();
    let mut by_weekday = [0; 7];
    let mut by_hour = [0; 24];
    let (mut count, mut downtime, mut longest) = (0u32, 0, 0);
    let (mut with_cycles, mut fixed) = (0, 0);
    for o in outages {
        let end = o.start_ms + o.duration_ms;
        let inside = end.min(until).saturating_sub(o.start_ms.max(since));
        if inside == 0 {
            continue;
        }
        count += 1;
        downtime += inside;
        longest = longest.max(inside);
        *by_cause.entry(o.cause.name()).or_default() += 1;
        // 1970-01-01 was a Thursday: day 0 is weekday 3, Monday being 0.
        by_weekday[((o.start_ms / DAY_MS + 3) % 7) as usize] += 1;
        by_hour[((o.start_ms % DAY_MS) / HOUR_MS) as usize] += 1;
        with_cycles += u32::from(!o.power_cycles.is_empty());
        fixed += u32::from(o.fixed_by_cycle.is_some());
    }
    let per_outage = |ms: Millis| (count > 0).then(|| ms / Millis::from(count));
    Stats {
        since_ms: since,
        until_ms: until,
        up_ms,
        sick_ms,
        down_ms,
        unknown_ms,
        up_share: share(up_ms),
        sick_share: share(sick_ms),
        down_share: share(down_ms),
        outages: count,
        outages_by_cause: by_cause,
        downtime_ms: downtime,
        longest_outage_ms: longest,
        mttr_ms: per_outage(downtime),
        mtbf_ms: per_outage(known.saturating_sub(downtime)),
        outages_by_weekday_utc: by_weekday,
        outages_by_hour_utc: by_hour,
        power_cycles,
        outages_with_cycles: with_cycles,
        fixed_by_cycle: fixed,
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::outages::tests::{cycle, wan};
    use crate::history::outages::{Input, derive};
    use WanState::{Down, Sick, Up};

    fn transitions(inputs: &[Input]) -> Vec<WanInput> {
        inputs
            .iter()
            .filter_map(|i| match i {
                Input::Wan(t) => Some(t.clone()),
                Input::Cycle(_) => None,
            })
            .collect()
    }

    /// Monday 2024-01-01 00:00 UTC.
    const MONDAY: Millis = 1_704_067_200_000;
    const MIN: Millis = 60_000;

    /// Up since the day before; sick 10:00, down 10:01, cycle 10:05, up
    /// 10:08 (an outage of 8 min, fixed by the cycle); sick 12:00, up
    /// 12:00:30 (no outage); sick 13:00, down 13:01, up 13:31 (30 min).
    fn day() -> Vec<Input> {
        let at = |h: Millis, m: Millis| MONDAY + h * 60 * MIN + m * MIN;
        vec![
            wan(at(10, 0), Up, Sick, 34 * 60 * MIN),
            wan(at(10, 1), Sick, Down, MIN),
            cycle(at(10, 5)),
            wan(at(10, 8), Down, Up, 7 * MIN),
            wan(at(12, 0), Up, Sick, 112 * MIN),
            wan(at(12, 0) + 30_000, Sick, Up, 30_000),
            wan(at(13, 0), Up, Sick, 60 * MIN - 30_000),
            wan(at(13, 1), Sick, Down, MIN),
            wan(at(13, 31), Down, Up, 30 * MIN),
        ]
    }

    #[test]
    fn a_whole_day() {
        let inputs = day();
        let (since, until) = (MONDAY, MONDAY + DAY_MS);
        let outages = derive(&inputs, until);
        let s = compute(since, until, &transitions(&inputs), &outages, 1, Vec::new());
        // Sick: 1 min + 30 s + 1 min; down: 7 + 30 min.
        assert_eq!(s.sick_ms, 2 * MIN + 30_000);
        assert_eq!(s.down_ms, 37 * MIN);
        assert_eq!(s.up_ms, DAY_MS - 39 * MIN - 30_000);
        assert_eq!(s.unknown_ms, 0);
        assert_eq!(s.outages, 2);
        assert_eq!(s.outages_by_cause["wan"], 2);
        assert_eq!(s.outages_by_cause["dns-only"], 0);
        assert_eq!(s.downtime_ms, 39 * MIN);
        assert_eq!(s.longest_outage_ms, 31 * MIN);
        assert_eq!(s.mttr_ms, Some(39 * MIN / 2));
        assert_eq!(s.mtbf_ms, Some((DAY_MS - 39 * MIN) / 2));
        assert_eq!(s.outages_by_weekday_utc, [2, 0, 0, 0, 0, 0, 0]);
        assert_eq!(s.outages_by_hour_utc[10], 1);
        assert_eq!(s.outages_by_hour_utc[13], 1);
        assert_eq!(
            (s.power_cycles, s.outages_with_cycles, s.fixed_by_cycle),
            (1, 1, 1)
        );
        let text = s.render();
        assert!(
            text.starts_with("2024-01-01T00:00:00Z to 2024-01-02T00:00:00Z (1d00h)\n  up 97.257%  sick 0.174%  down 2.569%\n  outages       2 (dns-only 0, local-fault 0, mains-power 0, wan 2)\n  downtime      39m00s, longest 31m00s\n"),
            "{text}"
        );
        assert!(
            text.contains("  by hour       10h 1  13h 1 (UTC)\n"),
            "{text}"
        );
        let share = s.down_share.unwrap();
        assert!((share - (37.0 / 1440.0)).abs() < 1e-12, "{share}");
    }

    #[test]
    fn a_window_that_cuts_an_outage_in_half() {
        let inputs = day();
        // 13:16 to the end of the day: the last 15 minutes of the 31-minute
        // outage (13:00 to 13:31).
        let since = MONDAY + 13 * 60 * MIN + 16 * MIN;
        let until = MONDAY + DAY_MS;
        let outages = derive(&inputs, until);
        let from_last = &transitions(&inputs)[7..];
        let s = compute(since, until, from_last, &outages, 0, Vec::new());
        assert_eq!(s.outages, 1);
        assert_eq!(s.downtime_ms, 15 * MIN);
        assert_eq!(s.longest_outage_ms, 15 * MIN);
        assert_eq!(s.down_ms, 15 * MIN);
        assert_eq!(s.sick_ms, 0);
        assert_eq!(s.up_ms, until - since - 15 * MIN);
        assert_eq!(s.mttr_ms, Some(15 * MIN));
        // Counted where it started, though the window begins later.
        assert_eq!(s.outages_by_hour_utc[13], 1);
        // And a window that ends in its middle: 13:00 to 13:11.
        let s = compute(
            MONDAY + 13 * 60 * MIN,
            MONDAY + 13 * 60 * MIN + 11 * MIN,
            &transitions(&inputs)[6..],
            &outages,
            0,
            Vec::new(),
        );
        assert_eq!((s.outages, s.downtime_ms), (1, 11 * MIN));
        assert_eq!((s.sick_ms, s.down_ms), (MIN, 10 * MIN));
    }

    #[test]
    fn before_the_first_known_state_is_unknown() {
        let t = transitions(&[wan(10_000, Up, Sick, 4_000)]);
        assert_eq!(time_in_states(&t, 0, 20_000), (4_000, 10_000, 0, 6_000));
        assert_eq!(time_in_states(&[], 0, 20_000), (0, 0, 0, 20_000));
        let s = compute(0, 20_000, &[], &[], 0, Vec::new());
        assert_eq!((s.up_share, s.mttr_ms, s.mtbf_ms), (None, None, None));
    }
}
