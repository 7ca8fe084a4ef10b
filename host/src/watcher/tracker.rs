//! Which sites are DOWN: pure, time is an input.
//!
//! Durations are measured on the watcher's own timeline (monotonic, see
//! [`crate::clock`]), never on the sites' clocks nor its own wall clock,
//! which NTP may step: a site is DOWN once it has been silent for its
//! `missed_after` on that timeline, and an outage lasts from the last
//! heartbeat before the gap to the first sign of life after it. The wall
//! clock only labels instants for people and the database.
//!
//! After a start, nothing is declared DOWN for one `missed_after` (the
//! grace): the sites had no way to reach a watcher that was away, so a
//! reboot of the watcher's machine must not read as their outage. A site
//! that was already DOWN before the restart stays DOWN without a second
//! announcement ([`Tracker::restore`]).

use std::collections::BTreeMap;

use crate::state::Millis;

/// An instant, as both clocks read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// The timeline (monotonic), for durations.
    pub at: Millis,
    /// The wall clock, for people.
    pub wall: Millis,
}

/// What happened, for the caller to record and announce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `site` has been silent for `silent_ms`; it was last seen at
    /// `last_seen` (wall clock).
    Down {
        site: String,
        last_seen: Millis,
        silent_ms: Millis,
    },
    /// Still DOWN, `remind_every` after the last announcement.
    Reminder {
        site: String,
        last_seen: Millis,
        silent_ms: Millis,
    },
    /// A sign of life after DOWN: the gap lasted `duration_ms` on the
    /// watcher's timeline, from `last_seen` to `back` (wall clock).
    Restored {
        site: String,
        last_seen: Millis,
        back: Millis,
        duration_ms: Millis,
    },
    /// The site's clock crossed `max_clock_skew`, one way or the other:
    /// it is `offset_ms` ahead of the watcher's (behind when negative).
    ClockSkew {
        site: String,
        offset_ms: i64,
        skewed: bool,
    },
}

/// How far a clock that read `sent_at` is ahead of one that read `wall`
/// at the same instant (behind when negative).
pub fn offset_ms(sent_at: Millis, wall: Millis) -> i64 {
    i64::try_from(i128::from(sent_at) - i128::from(wall)).unwrap_or(0)
}

/// What the database remembers of a site across a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remembered {
    /// The last sign of life (wall clock).
    pub last_seen: Option<Millis>,
    /// The site was DOWN (announced) when the watcher stopped; when the
    /// last announcement (DOWN or reminder) went out.
    pub down_announced: Option<Millis>,
    pub skewed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    at: Millis,
    wall: Millis,
}

#[derive(Clone, Debug)]
struct Site {
    missed_after_ms: Millis,
    last_seen: Option<Seen>,
    /// Set while DOWN: when the last announcement went out (timeline).
    announced_at: Option<Millis>,
    skewed: bool,
}

/// Every configured site's state.
#[derive(Clone, Debug)]
pub struct Tracker {
    sites: BTreeMap<String, Site>,
    /// Nothing is declared DOWN before a site's `missed_after` has passed
    /// since this instant (timeline): the grace after a start.
    started: Millis,
    remind_every_ms: Option<Millis>,
    max_skew_ms: Millis,
}

/// A site as the tracker sees it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteView {
    /// The last sign of life (wall clock); None: never heard from.
    pub last_seen: Option<Millis>,
    pub down: bool,
    pub skewed: bool,
}

impl Tracker {
    /// A tracker started at `now` (timeline) for `sites` (name and
    /// `missed_after` in ms), none of them seen yet.
    pub fn new(
        sites: impl IntoIterator<Item = (String, Millis)>,
        remind_every_ms: Option<Millis>,
        max_skew_ms: Millis,
        now: Now,
    ) -> Tracker {
        let sites = sites
            .into_iter()
            .map(|(name, missed_after_ms)| {
                let site = Site {
                    missed_after_ms,
                    last_seen: None,
                    announced_at: None,
                    skewed: false,
                };
                (name, site)
            })
            .collect();
        Tracker {
            sites,
            started: now.at,
            remind_every_ms,
            max_skew_ms,
        }
    }

    /// Restores what the database remembers of `site`, its wall-clock
    /// times placed on the timeline as they are distant from `now`.
    pub fn restore(&mut self, site: &str, remembered: &Remembered, now: Now) {
        let Some(state) = self.sites.get_mut(site) else {
            return;
        };
        let timeline = |wall: Millis| now.at.saturating_sub(now.wall.saturating_sub(wall));
        state.last_seen = remembered.last_seen.map(|wall| Seen {
            at: timeline(wall),
            wall,
        });
        state.announced_at = remembered.down_announced.map(timeline);
        state.skewed = remembered.skewed;
    }

    /// A heartbeat from `site`, sent at `sent_at` by its clock.
    pub fn heartbeat(&mut self, site: &str, sent_at: Millis, now: Now) -> Vec<Event> {
        let max_skew_ms = self.max_skew_ms;
        let mut events = Vec::new();
        let Some(state) = self.sites.get_mut(site) else {
            return events;
        };
        let offset_ms = offset_ms(sent_at, now.wall);
        let skewed = offset_ms.unsigned_abs() > max_skew_ms;
        if skewed != state.skewed {
            state.skewed = skewed;
            events.push(Event::ClockSkew {
                site: site.to_owned(),
                offset_ms,
                skewed,
            });
        }
        events.extend(self.alive(site, now));
        events
    }

    /// Any other sign of life from `site` (an outage report): the site is
    /// back if it was DOWN.
    pub fn alive(&mut self, site: &str, now: Now) -> Option<Event> {
        let state = self.sites.get_mut(site)?;
        let before = state.last_seen.replace(Seen {
            at: now.at,
            wall: now.wall,
        });
        state.announced_at.take()?;
        // DOWN is only declared for a site seen before.
        let before = before?;
        Some(Event::Restored {
            site: site.to_owned(),
            last_seen: before.wall,
            back: now.wall,
            duration_ms: now.at.saturating_sub(before.at),
        })
    }

    /// Declares DOWN the sites silent too long, and reminds of those still
    /// DOWN. Called often (see [`Tracker::tick_every`]).
    pub fn tick(&mut self, now: Now) -> Vec<Event> {
        let mut events = Vec::new();
        for (name, state) in &mut self.sites {
            // A site never heard from has nothing to miss yet.
            let Some(seen) = state.last_seen else {
                continue;
            };
            let silent_ms = now.at.saturating_sub(seen.at);
            match state.announced_at {
                Some(announced) => {
                    if let Some(every) = self.remind_every_ms
                        && now.at.saturating_sub(announced) >= every
                    {
                        state.announced_at = Some(now.at);
                        events.push(Event::Reminder {
                            site: name.clone(),
                            last_seen: seen.wall,
                            silent_ms,
                        });
                    }
                }
                None => {
                    let due = (seen.at.max(self.started)).saturating_add(state.missed_after_ms);
                    if now.at >= due {
                        state.announced_at = Some(now.at);
                        events.push(Event::Down {
                            site: name.clone(),
                            last_seen: seen.wall,
                            silent_ms,
                        });
                    }
                }
            }
        }
        events
    }

    /// How often [`Tracker::tick`] should run so that DOWN is declared
    /// within a small share of the shortest `missed_after`.
    pub fn tick_every_ms(&self) -> Millis {
        let shortest = self
            .sites
            .values()
            .map(|s| s.missed_after_ms)
            .min()
            .unwrap_or(1000);
        (shortest / 10).clamp(100, 1000)
    }

    pub fn view(&self, site: &str) -> Option<SiteView> {
        self.sites.get(site).map(|s| SiteView {
            last_seen: s.last_seen.map(|seen| seen.wall),
            down: s.announced_at.is_some(),
            skewed: s.skewed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;
    /// An arbitrary start, with the wall clock 1 h ahead of the timeline.
    const T0: Millis = 1_000_000_000;
    const WALL: Millis = 3_600_000;

    fn at(ms: Millis) -> Now {
        Now {
            at: T0 + ms,
            wall: T0 + WALL + ms,
        }
    }

    fn tracker(remind: Option<Millis>) -> Tracker {
        Tracker::new(
            [("home".to_owned(), 3 * MIN), ("cabin".to_owned(), 10 * MIN)],
            remind,
            MIN,
            at(0),
        )
    }

    fn names(events: &[Event]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                Event::Down { .. } => "down",
                Event::Reminder { .. } => "reminder",
                Event::Restored { .. } => "restored",
                Event::ClockSkew { .. } => "skew",
            })
            .collect()
    }

    #[test]
    fn silence_for_missed_after_is_down_once_then_restored_with_the_gap() {
        let mut t = tracker(None);
        assert!(t.heartbeat("home", at(0).wall, at(0)).is_empty());
        assert!(t.tick(at(3 * MIN - 1)).is_empty());
        assert_eq!(
            t.tick(at(3 * MIN)),
            [Event::Down {
                site: "home".into(),
                last_seen: at(0).wall,
                silent_ms: 3 * MIN
            }]
        );
        // Once only, and no reminders when they are off.
        assert!(t.tick(at(60 * MIN)).is_empty());
        assert!(t.view("home").unwrap().down);
        assert_eq!(
            t.heartbeat("home", at(47 * MIN).wall, at(47 * MIN)),
            [Event::Restored {
                site: "home".into(),
                last_seen: at(0).wall,
                back: at(47 * MIN).wall,
                duration_ms: 47 * MIN
            }]
        );
        assert!(!t.view("home").unwrap().down);
        // A site's own missed_after; a site never heard from is not DOWN.
        assert!(t.tick(at(49 * MIN)).is_empty());
    }

    #[test]
    fn durations_follow_the_timeline_not_the_wall_clock() {
        let mut t = tracker(None);
        t.heartbeat("home", at(0).wall, at(0));
        // NTP steps the wall clock back an hour: the silence is still
        // measured on the timeline.
        let stepped = Now {
            at: T0 + 3 * MIN,
            wall: T0 + 3 * MIN,
        };
        assert_eq!(names(&t.tick(stepped)), ["down"]);
    }

    #[test]
    fn reminders_come_every_remind_every_while_down() {
        let mut t = tracker(Some(10 * MIN));
        t.heartbeat("home", at(0).wall, at(0));
        assert_eq!(names(&t.tick(at(3 * MIN))), ["down"]);
        assert!(t.tick(at(13 * MIN - 1)).is_empty());
        assert_eq!(
            t.tick(at(13 * MIN)),
            [Event::Reminder {
                site: "home".into(),
                last_seen: at(0).wall,
                silent_ms: 13 * MIN
            }]
        );
        assert!(t.tick(at(20 * MIN)).is_empty());
        assert_eq!(names(&t.tick(at(23 * MIN))), ["reminder"]);
    }

    #[test]
    fn after_a_restart_there_is_a_grace_and_no_second_down() {
        let mut t = tracker(Some(10 * MIN));
        let remembered_down = Remembered {
            last_seen: Some(at(0).wall),
            down_announced: Some(at(3 * MIN).wall),
            skewed: false,
        };
        // Started an hour later; "cabin" was last seen 50 min before that,
        // long past its missed_after.
        let start = at(60 * MIN);
        let mut t2 = Tracker::new(
            [("home".to_owned(), 3 * MIN), ("cabin".to_owned(), 10 * MIN)],
            None,
            MIN,
            start,
        );
        t2.restore("home", &remembered_down, start);
        t2.restore(
            "cabin",
            &Remembered {
                last_seen: Some(at(10 * MIN).wall),
                ..Remembered::default()
            },
            start,
        );
        assert!(t2.view("home").unwrap().down);
        assert!(t2.tick(start).is_empty(), "no second DOWN, no false DOWN");
        assert!(t2.tick(at(69 * MIN)).is_empty(), "the grace");
        assert_eq!(
            t2.tick(at(70 * MIN)),
            [Event::Down {
                site: "cabin".into(),
                last_seen: at(10 * MIN).wall,
                silent_ms: 60 * MIN
            }]
        );
        // The outage's duration spans the restart.
        assert_eq!(
            t2.alive("home", at(80 * MIN)),
            Some(Event::Restored {
                site: "home".into(),
                last_seen: at(0).wall,
                back: at(80 * MIN).wall,
                duration_ms: 80 * MIN
            })
        );
        // A reminder cadence restored too.
        t.restore("home", &remembered_down, at(5 * MIN));
        assert_eq!(names(&t.tick(at(13 * MIN))), ["reminder"]);
    }

    #[test]
    fn a_site_heard_again_within_the_grace_is_not_down() {
        let start = at(60 * MIN);
        let mut t = Tracker::new([("home".to_owned(), 3 * MIN)], None, MIN, start);
        t.restore(
            "home",
            &Remembered {
                last_seen: Some(at(59 * MIN).wall),
                ..Remembered::default()
            },
            start,
        );
        assert!(t.tick(at(62 * MIN)).is_empty());
        t.heartbeat("home", at(62 * MIN).wall, at(62 * MIN));
        assert!(t.tick(at(64 * MIN)).is_empty());
        assert_eq!(names(&t.tick(at(65 * MIN))), ["down"]);
    }

    #[test]
    fn a_clock_off_by_more_than_max_skew_is_flagged_once_per_change() {
        let mut t = tracker(None);
        let now = at(0);
        assert!(t.heartbeat("home", now.wall + MIN, now).is_empty());
        assert_eq!(
            t.heartbeat("home", now.wall - 2 * MIN, now),
            [Event::ClockSkew {
                site: "home".into(),
                offset_ms: -120_000,
                skewed: true
            }]
        );
        assert!(t.heartbeat("home", now.wall - 3 * MIN, now).is_empty());
        assert!(t.view("home").unwrap().skewed);
        assert_eq!(names(&t.heartbeat("home", now.wall, now)), ["skew"]);
        assert!(!t.view("home").unwrap().skewed);
    }

    #[test]
    fn unknown_sites_are_ignored_and_ticks_scale_with_missed_after() {
        let mut t = tracker(None);
        assert!(t.heartbeat("nobody", 0, at(0)).is_empty());
        assert_eq!(t.alive("nobody", at(0)), None);
        assert_eq!(t.tick_every_ms(), 1000);
        let fast = Tracker::new([("a".to_owned(), 2000)], None, MIN, at(0));
        assert_eq!(fast.tick_every_ms(), 200);
    }
}
