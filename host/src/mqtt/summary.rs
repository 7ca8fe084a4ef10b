//! The figures behind the Home Assistant sensors: round trip and loss over
//! the last `stats_interval`, outages today and the last outage's length.
//!
//! Summarised rather than per round: at a 2 s probe interval a sensor fed
//! every round would write 43,200 states a day per sensor into Home
//! Assistant's database, for figures nobody reads at that grain (the raw
//! rounds are on their own topic for whoever wants them).

use serde::Serialize;

use crate::state::{Millis, Role, Round, Transition, WanState};
use crate::status::Status;

const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// The payload of the `stats` topic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Mean round trip of the `wan` targets' answers, in ms; null when none
    /// answered.
    pub rtt_ms: Option<f64>,
    /// Share of `wan` probes unanswered, in %; null when none was sent.
    pub loss_pct: Option<f64>,
    /// Probe rounds summarised.
    pub rounds: u32,
    /// Outages (the WAN went down) since midnight UTC.
    pub outages_today: u32,
    /// How long the last outage lasted, in seconds; null before the first.
    pub last_outage_s: Option<u64>,
    /// When this summary was made (ms since the epoch).
    pub at_ms: Millis,
}

/// Rounds and transitions gathered since the last summary. Times are on
/// the wall clock, as the events carry them.
#[derive(Debug, Default)]
pub struct Summary {
    rounds: u32,
    sent: u32,
    answered: u32,
    rtt_sum_us: u64,
    /// The UTC day `outages_today` counts, as days since the epoch.
    day: Millis,
    outages_today: u32,
    last_outage_ms: Option<Millis>,
}

impl Summary {
    /// Outage figures from the transitions the status keeps (a restart
    /// carries them on), as of `now_ms`.
    pub fn resume(status: &Status, now_ms: Millis) -> Summary {
        let day = now_ms / DAY_MS;
        Summary {
            day,
            outages_today: status
                .transitions
                .iter()
                .filter(|t| t.current == WanState::Down && t.at_ms / DAY_MS == day)
                .count() as u32,
            last_outage_ms: status
                .transitions
                .iter()
                .rev()
                .find(|t| t.previous == WanState::Down)
                .map(|t| t.previous_duration_ms),
            ..Summary::default()
        }
    }

    pub fn round(&mut self, round: &Round) {
        self.rounds += 1;
        for evidence in round.results.iter().filter(|e| e.role == Role::Wan) {
            self.sent += 1;
            if evidence.ok {
                self.answered += 1;
                self.rtt_sum_us += u64::from(evidence.rtt_us.unwrap_or(0));
            }
        }
    }

    pub fn transition(&mut self, t: &Transition) {
        self.roll_day(t.at_ms);
        if t.current == WanState::Down {
            self.outages_today += 1;
        }
        if t.previous == WanState::Down {
            self.last_outage_ms = Some(t.previous_duration_ms);
        }
    }

    /// The summary as of `now_ms`; the round-trip and loss window starts
    /// again.
    pub fn take(&mut self, now_ms: Millis) -> Stats {
        self.roll_day(now_ms);
        let stats = Stats {
            rtt_ms: (self.answered > 0)
                .then(|| self.rtt_sum_us as f64 / f64::from(self.answered) / 1000.0),
            loss_pct: (self.sent > 0)
                .then(|| f64::from(self.sent - self.answered) * 100.0 / f64::from(self.sent)),
            rounds: self.rounds,
            outages_today: self.outages_today,
            last_outage_s: self.last_outage_ms.map(|ms| ms / 1000),
            at_ms: now_ms,
        };
        self.rounds = 0;
        self.sent = 0;
        self.answered = 0;
        self.rtt_sum_us = 0;
        stats
    }

    fn roll_day(&mut self, now_ms: Millis) {
        let day = now_ms / DAY_MS;
        if day > self.day {
            self.day = day;
            self.outages_today = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Evidence;

    fn evidence(role: Role, rtt_us: Option<u32>) -> Evidence {
        Evidence::icmp("t", role, rtt_us)
    }

    fn transition(
        previous: WanState,
        current: WanState,
        at_ms: Millis,
        lasted: Millis,
    ) -> Transition {
        Transition {
            previous,
            current,
            at_ms,
            previous_duration_ms: lasted,
            local_fault: false,
            evidence: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_loss_count_the_wan_targets_of_the_window_only() {
        let mut summary = Summary::default();
        summary.round(&Round {
            at_ms: 1,
            results: vec![
                evidence(Role::Lan, Some(100_000)),
                evidence(Role::Wan, Some(10_000)),
                evidence(Role::Wan, None),
            ],
        });
        summary.round(&Round {
            at_ms: 2,
            results: vec![
                evidence(Role::Wan, Some(20_000)),
                evidence(Role::Wan, Some(30_000)),
            ],
        });
        let stats = summary.take(3);
        assert_eq!(stats.rtt_ms, Some(20.0));
        assert_eq!(stats.loss_pct, Some(25.0));
        assert_eq!(stats.rounds, 2);
        let empty = summary.take(4);
        assert_eq!(
            (empty.rtt_ms, empty.loss_pct, empty.rounds),
            (None, None, 0)
        );
    }

    #[test]
    fn outages_are_counted_per_utc_day_and_the_last_one_measured() {
        let mut status = Status::new(WanState::Up, 0, false);
        let day = 20_000 * DAY_MS;
        status.record_transition(&transition(WanState::Up, WanState::Down, day - 10, 5));
        status.record_transition(&transition(
            WanState::Down,
            WanState::Up,
            day + 5_000,
            5_010,
        ));
        status.record_transition(&transition(
            WanState::Up,
            WanState::Down,
            day + 9_000,
            4_000,
        ));
        let mut summary = Summary::resume(&status, day + 10_000);
        let stats = summary.take(day + 10_000);
        assert_eq!((stats.outages_today, stats.last_outage_s), (1, Some(5)));
        summary.transition(&transition(
            WanState::Down,
            WanState::Up,
            day + 70_000,
            61_000,
        ));
        summary.transition(&transition(
            WanState::Up,
            WanState::Down,
            day + 80_000,
            10_000,
        ));
        assert_eq!(summary.take(day + 90_000).outages_today, 2);
        let tomorrow = summary.take(day + DAY_MS);
        assert_eq!(
            (tomorrow.outages_today, tomorrow.last_outage_s),
            (0, Some(61))
        );
    }
}
