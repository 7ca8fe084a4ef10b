//! What a simulation prints: a timeline as events happen, then a summary and
//! the verdict on each expectation.
//!
//! Streams: each event is written when it happens and only counters are
//! kept, so memory does not grow with the length of the scenario. Text for
//! people; with `--json`, one JSON object per line for tools.

use std::io::Write;

use serde_json::json;

use super::scenario::{Check, Counted, Link};
use crate::actions::{Action, ActionRecord};
use crate::human;
use crate::monitor::WanEvent;
use crate::plugin::CallError;
use crate::power::{PowerState, PowerTransition};
use crate::quality::{QualityChange, Settings};
use crate::state::{Millis, WanState};

/// One expectation, checked as the run goes.
struct Live {
    /// Where it is written, for the diff: "file:line:col".
    location: String,
    check: Check,
    /// For counts: the absolute range [from, to) counted.
    from: Millis,
    to: Millis,
    count: u64,
    /// For states and the link: the WAN state and the link's quality at
    /// the instant, once it has passed.
    seen: Option<(WanState, Link)>,
}

/// The whole run's counters, for the summary.
#[derive(Default)]
struct Totals {
    rounds: u64,
    transitions: u64,
    outages: u64,
    down_since: Option<Millis>,
    time_down_ms: Millis,
    longest_down_ms: Millis,
    power_cycles: u64,
    notifications: u64,
    refused: u64,
    plugin_errors: u64,
    degradations: u64,
    degraded_since: Option<Millis>,
    time_degraded_ms: Millis,
}

pub struct Report<W: Write> {
    out: W,
    json: bool,
    start: Millis,
    state: WanState,
    link: Link,
    /// The thresholds, to say which one a degraded link crossed.
    quality: Settings,
    totals: Totals,
    expectations: Vec<Live>,
    /// The earliest state expectation not yet resolved (MAX: none).
    next_state_check: Millis,
}

/// One expectation as the scenario gives it: where, what, and the range or
/// instant as offsets from the start.
pub struct Expectation {
    pub location: String,
    pub check: Check,
    pub range: (Millis, Millis),
}

impl<W: Write> Report<W> {
    pub fn new(
        out: W,
        json: bool,
        start: Millis,
        expectations: Vec<Expectation>,
        quality: Settings,
    ) -> Self {
        let expectations: Vec<Live> = expectations
            .into_iter()
            .map(|e| Live {
                location: e.location,
                check: match e.check {
                    Check::State(state, at) => Check::State(state, start.saturating_add(at)),
                    Check::Link(link, at) => Check::Link(link, start.saturating_add(at)),
                    count => count,
                },
                from: start.saturating_add(e.range.0),
                to: start.saturating_add(e.range.1),
                count: 0,
                seen: None,
            })
            .collect();
        let mut report = Report {
            out,
            json,
            start,
            state: WanState::Up,
            link: Link::Normal,
            quality,
            totals: Totals::default(),
            expectations,
            next_state_check: Millis::MAX,
        };
        report.next_state_check = report.earliest_state_check();
        report
    }

    /// The first lines: what is simulated.
    pub fn header(&mut self, title: &str, reacts: bool) -> std::io::Result<()> {
        if self.json {
            let line = json!({
                "event": "start",
                "scenario": title,
                "start": human::timestamp(self.start),
                "start_ms": self.start,
                "world_reacts": reacts,
            });
            return writeln!(self.out, "{line}");
        }
        writeln!(self.out, "{title}")?;
        if !reacts {
            writeln!(
                self.out,
                "note: recorded data: the world does not react to the plugins' actions; they show what the policy would have done"
            )?;
        }
        Ok(())
    }

    /// Called before each round at `t`: resolves the state expectations of
    /// the instants before it. One comparison when there are none due.
    #[inline]
    pub fn before(&mut self, t: Millis) {
        if t > self.next_state_check {
            self.resolve_states(|at| at < t);
        }
    }

    #[inline]
    pub fn round(&mut self) {
        self.totals.rounds += 1;
    }

    fn resolve_states(&mut self, due: impl Fn(Millis) -> bool) {
        let now = (self.state, self.link);
        for e in &mut self.expectations {
            if let Check::State(_, at) | Check::Link(_, at) = e.check
                && e.seen.is_none()
                && due(at)
            {
                e.seen = Some(now);
            }
        }
        self.next_state_check = self.earliest_state_check();
    }

    fn earliest_state_check(&self) -> Millis {
        self.expectations
            .iter()
            .filter(|e| e.seen.is_none())
            .filter_map(|e| match e.check {
                Check::State(_, at) | Check::Link(_, at) => Some(at),
                Check::Count(..) => None,
            })
            .min()
            .unwrap_or(Millis::MAX)
    }

    fn count(&mut self, what: Counted, at: Millis) {
        for e in &mut self.expectations {
            if matches!(e.check, Check::Count(w, _) if w == what) && e.from <= at && at < e.to {
                e.count += 1;
            }
        }
    }

    fn line(&mut self, at: Millis, text: &str) -> std::io::Result<()> {
        writeln!(
            self.out,
            "{}  {:>10}  {text}",
            human::timestamp(at),
            offset(at.saturating_sub(self.start))
        )
    }

    pub fn wan(&mut self, e: &WanEvent) -> std::io::Result<()> {
        let t = &e.transition;
        self.state = t.current;
        self.totals.transitions += 1;
        self.count(Counted::Transitions, t.at_ms);
        if t.current == WanState::Down {
            self.totals.outages += 1;
            self.totals.down_since = Some(t.at_ms);
            self.count(Counted::Outages, t.at_ms);
        } else if t.previous == WanState::Down {
            self.end_down(t.at_ms);
        }
        if self.json {
            let line = json!({
                "event": "transition",
                "at": human::timestamp(t.at_ms),
                "at_ms": t.at_ms,
                "previous": t.previous,
                "current": t.current,
                "previous_duration_ms": t.previous_duration_ms,
                "local_fault": t.local_fault,
                "power": e.power,
                "power_cycles": e.power_cycles,
            });
            return writeln!(self.out, "{line}");
        }
        let mut text = human::wan_change(t, human::When::Beside);
        if e.power == PowerState::Out {
            text += " (mains power out)";
        }
        if t.current == WanState::Up && e.power_cycles > 0 {
            text += &format!(" ({} power cycle(s) in this outage)", e.power_cycles);
        }
        self.line(t.at_ms, &text)
    }

    pub fn quality(&mut self, c: &QualityChange) -> std::io::Result<()> {
        self.link = Link::of(c.degraded);
        if c.degraded {
            self.totals.degradations += 1;
            self.totals.degraded_since = Some(c.at_ms);
            self.count(Counted::Degraded, c.at_ms);
        } else {
            self.end_degraded(c.at_ms);
        }
        if self.json {
            let line = json!({
                "event": "quality",
                "at": human::timestamp(c.at_ms),
                "at_ms": c.at_ms,
                "degraded": c.degraded,
                "previous_duration_ms": c.previous_duration_ms,
                "wan": c.wan,
                "loss_percent": c.quality.loss_percent,
                "rtt_p50_us": c.quality.rtt_p50_us,
            });
            return writeln!(self.out, "{line}");
        }
        let text = human::quality_change(c, &self.quality, human::When::Beside);
        self.line(c.at_ms, &text)
    }

    fn end_degraded(&mut self, at: Millis) {
        if let Some(since) = self.totals.degraded_since.take() {
            self.totals.time_degraded_ms += at.saturating_sub(since);
        }
    }

    fn end_down(&mut self, at: Millis) {
        if let Some(since) = self.totals.down_since.take() {
            let down = at.saturating_sub(since);
            self.totals.time_down_ms += down;
            self.totals.longest_down_ms = self.totals.longest_down_ms.max(down);
        }
    }

    pub fn power(&mut self, t: &PowerTransition) -> std::io::Result<()> {
        if self.json {
            let line = json!({
                "event": "power",
                "at": human::timestamp(t.at_ms),
                "at_ms": t.at_ms,
                "previous": t.previous,
                "current": t.current,
                "previous_duration_ms": t.previous_duration_ms,
            });
            return writeln!(self.out, "{line}");
        }
        self.line(t.at_ms, &human::power_change(t, human::When::Beside))
    }

    pub fn action(&mut self, r: &ActionRecord) -> std::io::Result<()> {
        // The outcomes `Actions` journals for a request it carried out.
        let ok = matches!(r.outcome.as_str(), "done" | "queued" | "dry-run");
        self.count(Counted::Actions, r.at_ms);
        if !ok {
            self.totals.refused += 1;
            self.count(Counted::Refused, r.at_ms);
        }
        let text = match &r.action {
            Action::PowerCycle {
                device,
                off_seconds,
            } => {
                if ok {
                    self.totals.power_cycles += 1;
                    self.count(Counted::PowerCycles, r.at_ms);
                }
                format!("power-cycle {device} for {off_seconds} s")
            }
            Action::Notify { title, priority } => {
                if ok {
                    self.totals.notifications += 1;
                    self.count(Counted::Notifications, r.at_ms);
                }
                format!("notify \"{title}\" (priority {priority})")
            }
        };
        if self.json {
            let mut line = json!({
                "event": "action",
                "at": human::timestamp(r.at_ms),
                "at_ms": r.at_ms,
                "plugin": r.plugin,
                "ok": ok,
                "outcome": r.outcome,
            });
            if let (Ok(serde_json::Value::Object(action)), Some(obj)) =
                (serde_json::to_value(&r.action), line.as_object_mut())
            {
                obj.extend(action);
            }
            return writeln!(self.out, "{line}");
        }
        let outcome = if ok { "" } else { " REFUSED: " };
        let reason = if ok { "" } else { r.outcome.as_str() };
        let text = format!("{}: {text}{outcome}{reason}", r.plugin);
        self.line(r.at_ms, &text)
    }

    pub fn plugin_error(&mut self, at: Millis, e: &CallError) -> std::io::Result<()> {
        self.totals.plugin_errors += 1;
        self.count(Counted::PluginErrors, at);
        if self.json {
            let line = json!({
                "event": "plugin_error",
                "at": human::timestamp(at),
                "at_ms": at,
                "plugin": e.plugin,
                "callback": e.callback,
                "kind": e.kind,
                "message": e.message,
                "stderr": e.stderr,
            });
            return writeln!(self.out, "{line}");
        }
        self.line(at, &format!("ERROR {e}"))
    }

    /// Writes the summary and the verdict on each expectation; true when
    /// every expectation is met. `end`: when virtual time stopped.
    pub fn finish(mut self, end: Millis) -> std::io::Result<bool> {
        self.resolve_states(|at| at <= end);
        self.end_down(end);
        self.end_degraded(end);
        let t = &self.totals;
        let elapsed = end.saturating_sub(self.start);
        if self.json {
            let line = json!({
                "event": "summary",
                "duration_ms": elapsed,
                "rounds": t.rounds,
                "transitions": t.transitions,
                "outages": t.outages,
                "time_down_ms": t.time_down_ms,
                "longest_outage_ms": t.longest_down_ms,
                "power_cycles": t.power_cycles,
                "notifications": t.notifications,
                "refused": t.refused,
                "plugin_errors": t.plugin_errors,
                "degradations": t.degradations,
                "time_degraded_ms": t.time_degraded_ms,
            });
            writeln!(self.out, "{line}")?;
        } else {
            writeln!(
                self.out,
                "\nsummary: {} simulated, {} probe rounds\n  transitions    {}\n  time down      {} in {} outage(s), the longest {}\n  degraded       {} in {} period(s)\n  power cycles   {}\n  notifications  {}\n  refused        {} action request(s)\n  plugin errors  {}",
                human::duration_ms(elapsed),
                t.rounds,
                t.transitions,
                human::duration_ms(t.time_down_ms),
                t.outages,
                human::duration_ms(t.longest_down_ms),
                human::duration_ms(t.time_degraded_ms),
                t.degradations,
                t.power_cycles,
                t.notifications,
                t.refused,
                t.plugin_errors,
            )?;
        }
        let mut failed = 0;
        for e in &self.expectations {
            let (what, expected, actual, met) = match e.check {
                Check::Count(counted, count) => {
                    let what = format!("{}{}", counted.key(), range(e.from, e.to, self.start));
                    (
                        what,
                        count.to_string(),
                        e.count.to_string(),
                        count.admits(e.count),
                    )
                }
                Check::State(state, at) => {
                    let what = format!("state at {}", offset(at.saturating_sub(self.start)));
                    let seen = e.seen.map(|(s, _)| s);
                    (
                        what,
                        state.to_string(),
                        seen_or_ended(seen),
                        seen == Some(state),
                    )
                }
                Check::Link(link, at) => {
                    let what = format!("link at {}", offset(at.saturating_sub(self.start)));
                    let seen = e.seen.map(|(_, l)| l);
                    (
                        what,
                        link.to_string(),
                        seen_or_ended(seen),
                        seen == Some(link),
                    )
                }
            };
            if !met {
                failed += 1;
            }
            if self.json {
                let line = json!({
                    "event": "expectation",
                    "location": e.location,
                    "check": what,
                    "expected": expected,
                    "actual": actual,
                    "met": met,
                });
                writeln!(self.out, "{line}")?;
            } else if !met {
                writeln!(
                    self.out,
                    "\nexpectation not met: {}: {what}\n  - expected: {expected}\n  + actual:   {actual}",
                    e.location
                )?;
            }
        }
        if !self.json && !self.expectations.is_empty() {
            let total = self.expectations.len();
            writeln!(
                self.out,
                "\nexpectations: {} of {total} met{}",
                total - failed,
                if failed == 0 { "" } else { " (FAILED)" }
            )?;
        }
        self.out.flush()?;
        Ok(failed == 0)
    }
}

/// What an instant's expectation saw, or that the run ended before it.
fn seen_or_ended(seen: Option<impl ToString>) -> String {
    seen.map_or_else(
        || "(the run ended before that time)".to_owned(),
        |s| s.to_string(),
    )
}

/// A count's range for messages: "" for the whole run, else
/// " in [+0:10:00, +1:00:00)".
fn range(from: Millis, to: Millis, start: Millis) -> String {
    match (from == start, to == Millis::MAX) {
        (true, true) => String::new(),
        (_, true) => format!(" in [{}, end)", offset(from - start)),
        _ => format!(" in [{}, {})", offset(from - start), offset(to - start)),
    }
}

/// An offset from the start: "+1:02:03", hours unbounded.
pub fn offset(ms: Millis) -> String {
    let s = ms / 1000;
    format!("+{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scenario::Count;

    #[test]
    fn offsets_read_as_hours_minutes_seconds() {
        assert_eq!(offset(0), "+0:00:00");
        assert_eq!(offset(3_723_000), "+1:02:03");
        assert_eq!(offset(400 * 3_600_000), "+400:00:00");
    }

    #[test]
    fn an_unmet_count_prints_a_diff() {
        let mut out = Vec::new();
        let report = Report::new(
            &mut out,
            false,
            1_000,
            vec![Expectation {
                location: "s.toml:9:1".into(),
                check: Check::Count(Counted::PowerCycles, Count { min: 2, max: 2 }),
                range: (0, Millis::MAX),
            }],
            crate::config::ProbeConfig::default().quality(std::time::Duration::from_secs(2)),
        );
        assert!(!report.finish(61_000).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "expectation not met: s.toml:9:1: power_cycles\n  - expected: 2\n  + actual:   0\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("expectations: 0 of 1 met (FAILED)\n"),
            "{text}"
        );
    }
}
