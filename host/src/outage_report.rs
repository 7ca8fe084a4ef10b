//! Outage reports after recovery: once the link has been up for
//! `[reports] stable_for` (2 minutes by default), the report of each outage
//! not yet reported is built from the history database and queued in the
//! [`Outbox`], which delivers it to the watchers and the webhooks that take
//! reports (see docs/outage-reports.md).
//!
//! - Waiting for a stable link keeps a flapping line from sending
//!   half-reports: a new outage (or a sick spell) before `stable_for` has
//!   passed starts the wait again, and the reports then cover every outage
//!   since the last one reported.
//! - A report's id is `outage-<started_at_ms>`: the same for the same
//!   outage however often it is built, so its receivers deduplicate.
//! - Which outages were reported is a cursor file in the state directory,
//!   the start of the last one reported, written (atomically) only after
//!   its report is in the queue file. A crash between the two queues it
//!   again (same id); a clean restart never does. The first run starts the
//!   cursor at now: outages older than the feature are not reported.
//!
//! This hangs off the status the daemon publishes (its state and since
//! when), not the core; the database is read on a blocking thread after the
//! recorder has committed what it gathered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::clock::{Clock, SystemClock};
use crate::fsutil;
use crate::history::aggregate::Aggregate;
use crate::history::stats::TargetStats;
use crate::history::{Cause, HistoryDb, Outage, Recorder, Row};
use crate::notify::Outbox;
use crate::state::{Millis, WanState};
use crate::status::Status;
use crate::watcher::protocol::{OutageReport, Quality, ReportedCycle, ReportedTarget};

/// The cursor's file name in the state directory.
pub const CURSOR_FILE: &str = "reports-cursor.json";

/// How much of the link before and after an outage a report shows.
pub const CONTEXT_MS: Millis = 10 * 60_000;

/// After a failed attempt (the database could not be read, the queue not
/// written), the next one comes this much later.
const RETRY: Duration = Duration::from_secs(60);

/// The `[reports]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// How long the link must have been up before the reports are sent.
    #[serde(with = "crate::config::human_duration")]
    pub stable_for: Duration,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            stable_for: Duration::from_secs(120),
        }
    }
}

/// What the evidence of a cause says, for people.
pub fn evidence(cause: Cause) -> &'static str {
    match cause {
        Cause::Wan => {
            "the internet targets stopped answering while the LAN gateway still answered: the WAN link (the modem or the ISP)"
        }
        Cause::LocalFault => {
            "the LAN gateway did not answer either: a fault inside the house (the router, a cable, this machine's network)"
        }
        Cause::MainsPower => "the mains power was out: the power-detection devices went silent",
        Cause::DnsOnly => {
            "only DNS failed: the DNS probes went unanswered while other internet targets answered"
        }
    }
}

/// The report of an `outage` that has ended (None while it goes on), with
/// the probe `rows` from [`CONTEXT_MS`] before it to `made_at_ms` (at most
/// [`CONTEXT_MS`] after it). Pure.
pub fn build(outage: &Outage, rows: &[Row], made_at_ms: Millis) -> Option<OutageReport> {
    let ended_at_ms = outage.end_ms?;
    let after_until = ended_at_ms.saturating_add(CONTEXT_MS).min(made_at_ms);
    let before_since = outage.start_ms.saturating_sub(CONTEXT_MS);
    // Per target: before, during, after.
    let mut windows: BTreeMap<&str, [Aggregate; 3]> = BTreeMap::new();
    for row in rows {
        let window = if row.at_ms < before_since {
            continue;
        } else if row.at_ms < outage.start_ms {
            0
        } else if row.at_ms < ended_at_ms {
            1
        } else if row.at_ms < after_until {
            2
        } else {
            continue;
        };
        windows.entry(&row.target).or_default()[window].add(row.ok, row.rtt_us);
    }
    Some(OutageReport {
        id: id(outage.start_ms),
        started_at_ms: outage.start_ms,
        down_at_ms: outage.down_ms,
        ended_at_ms,
        duration_ms: outage.duration_ms,
        cause: outage.cause.name().to_owned(),
        evidence: evidence(outage.cause).to_owned(),
        power_cycles: outage
            .power_cycles
            .iter()
            .map(|c| ReportedCycle {
                at_ms: c.at_ms,
                device: c.device.clone(),
                outcome: c.outcome.clone(),
            })
            .collect(),
        fixed_by_cycle: outage.fixed_by_cycle,
        targets: windows
            .into_iter()
            .map(|(name, [before, during, after])| ReportedTarget {
                name: name.to_owned(),
                before: quality(&before),
                during: quality(&during),
                after: quality(&after),
            })
            .collect(),
    })
}

/// A report's id: stable for the outage.
pub fn id(started_at_ms: Millis) -> String {
    format!("outage-{started_at_ms}")
}

/// The figures `wanwatch stats` gives, rounded the same way.
fn quality(a: &Aggregate) -> Quality {
    let stats = TargetStats::new(String::new(), a);
    Quality {
        sent: stats.sent,
        answered: stats.answered,
        loss_percent: stats.loss_percent,
        rtt_mean_ms: stats.rtt_avg_ms,
    }
}

/// What the cursor file holds.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Cursor {
    /// Every outage that started at or before this instant is reported.
    reported_through_ms: Millis,
}

fn read_cursor(path: &Path) -> Result<Option<Millis>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Cursor>(&bytes)
            .map(|c| Some(c.reported_through_ms))
            .map_err(|e| format!("{}: not a reports cursor: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn write_cursor(path: &Path, reported_through_ms: Millis) -> Result<(), String> {
    let bytes = serde_json::to_vec(&Cursor {
        reported_through_ms,
    })
    .unwrap_or_default();
    fsutil::write_atomic(path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The task that sends the reports; stops when dropped.
pub struct Reporter {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a report round needs.
struct Sources {
    recorder: Recorder,
    outbox: Arc<Outbox>,
    cursor: PathBuf,
}

impl Reporter {
    /// Starts reporting if any sink of `outbox` takes reports; says once
    /// why not if there is no history database to build them from. Creates
    /// the cursor at now on a first run. `status` is the daemon's status as
    /// it publishes it (wall clock).
    pub fn start(
        config: &ReportsConfig,
        state_dir: &Path,
        recorder: Option<Recorder>,
        outbox: Option<Arc<Outbox>>,
        status: watch::Receiver<Status>,
    ) -> Option<Reporter> {
        let outbox = outbox.filter(|o| o.takes_reports())?;
        let Some(recorder) = recorder else {
            tracing::warn!(
                "outage reports need the history database ([history] database = true): none will be sent"
            );
            return None;
        };
        let cursor = state_dir.join(CURSOR_FILE);
        let fresh = match read_cursor(&cursor) {
            Ok(found) => found.is_none(),
            // Rather than every outage in the history again.
            Err(e) => {
                tracing::warn!("outage reports: {e}; starting it again at now");
                true
            }
        };
        if fresh && let Err(e) = write_cursor(&cursor, SystemClock.wall_ms()) {
            tracing::error!("outage reports: {e}; none will be sent");
            return None;
        }
        let sources = Arc::new(Sources {
            recorder,
            outbox,
            cursor,
        });
        let task = tokio::spawn(run(config.stable_for, sources, status));
        Some(Reporter { task })
    }
}

/// Waits for the link to be up for `stable_for`, then reports; once per up
/// period.
async fn run(stable_for: Duration, sources: Arc<Sources>, mut status: watch::Receiver<Status>) {
    let stable_ms = stable_for.as_millis() as Millis;
    // The start of the up period whose outages are reported.
    let mut reported: Option<Millis> = None;
    loop {
        let (state, since) = {
            let s = status.borrow_and_update();
            (s.state, s.since_ms)
        };
        let wait = if state != WanState::Up || reported == Some(since) {
            None
        } else {
            let due = since.saturating_add(stable_ms);
            match due.checked_sub(SystemClock.wall_ms()).filter(|&ms| ms > 0) {
                Some(ms) => Some(Duration::from_millis(ms)),
                None => {
                    let sources = sources.clone();
                    match tokio::task::spawn_blocking(move || report_pending(&sources)).await {
                        Ok(Ok(())) => {
                            reported = Some(since);
                            None
                        }
                        Ok(Err(e)) => {
                            tracing::error!(
                                "outage reports: {e}; trying again in {}",
                                humantime::format_duration(RETRY)
                            );
                            Some(RETRY)
                        }
                        Err(e) => {
                            tracing::error!("outage reports: the report round failed: {e}");
                            Some(RETRY)
                        }
                    }
                }
            }
        };
        let changed = match wait {
            Some(wait) => tokio::select! {
                () = tokio::time::sleep(wait) => Ok(()),
                changed = status.changed() => changed,
            },
            None => status.changed().await,
        };
        if changed.is_err() {
            return;
        }
    }
}

/// Queues the report of every ended outage that started after the cursor,
/// oldest first, moving the cursor past each once it is queued. Blocking.
fn report_pending(sources: &Sources) -> Result<(), String> {
    // The probe rounds are committed every few seconds: the last ones too.
    sources.recorder.flush();
    // Written at start: gone since, it starts again at now.
    let now = SystemClock.wall_ms();
    let through = read_cursor(&sources.cursor)?.unwrap_or(now);
    let db = HistoryDb::open(&sources.recorder.database()).map_err(|e| e.to_string())?;
    let outages = db
        .outages(through.saturating_add(1), now)
        .map_err(|e| e.to_string())?;
    for outage in outages
        .iter()
        .filter(|o| o.start_ms > through && o.end_ms.is_some())
    {
        let mut rows = Vec::new();
        let until = outage
            .end_ms
            .unwrap_or(now)
            .saturating_add(CONTEXT_MS)
            .min(now);
        db.probe_rows(outage.start_ms.saturating_sub(CONTEXT_MS), until, |row| {
            rows.push(row);
            true
        })
        .map_err(|e| e.to_string())?;
        let Some(report) = build(outage, &rows, now) else {
            continue;
        };
        let id = report.id.clone();
        sources
            .outbox
            .report(report)
            .map_err(|e| format!("{id} is queued only in memory: {e}"))?;
        tracing::info!("outage report {id} queued");
        write_cursor(&sources.cursor, outage.start_ms)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::outages::Cycle;

    fn row(at_ms: Millis, target: &str, ok: bool, rtt_us: Option<u32>) -> Row {
        Row {
            at_ms,
            ok,
            rtt_us,
            target: target.into(),
        }
    }

    const START: Millis = 1_700_000_000_000;

    fn outage() -> Outage {
        Outage {
            start_ms: START,
            down_ms: START + 9_000,
            end_ms: Some(START + 60_000),
            duration_ms: 60_000,
            cause: Cause::LocalFault,
            power_cycles: vec![Cycle {
                at_ms: START + 20_000,
                device: "modem".into(),
                outcome: "done".into(),
            }],
            fixed_by_cycle: Some(1),
        }
    }

    #[test]
    fn report_splits_the_rows_before_during_and_after() {
        let rows = [
            // Too early for the report.
            row(START - CONTEXT_MS - 1, "wan", true, Some(1_000)),
            row(START - 2_000, "wan", true, Some(10_000)),
            row(START - 1_000, "wan", true, Some(20_000)),
            row(START, "wan", false, None),
            row(START + 30_000, "wan", false, None),
            row(START + 59_999, "wan", true, Some(5_000)),
            row(START + 60_000, "wan", true, Some(4_000)),
            row(START + 60_000, "gw", false, None),
            // After the report was made.
            row(START + 70_000, "wan", true, Some(4_000)),
        ];
        let report = build(&outage(), &rows, START + 65_000).unwrap();
        assert_eq!(report.id, "outage-1700000000000");
        assert_eq!(
            (report.started_at_ms, report.down_at_ms, report.ended_at_ms),
            (START, START + 9_000, START + 60_000)
        );
        assert_eq!(report.duration_ms, 60_000);
        assert_eq!(report.cause, "local-fault");
        assert!(
            report.evidence.contains("LAN gateway"),
            "{}",
            report.evidence
        );
        assert_eq!(
            report.power_cycles,
            [ReportedCycle {
                at_ms: START + 20_000,
                device: "modem".into(),
                outcome: "done".into()
            }]
        );
        assert_eq!(report.fixed_by_cycle, Some(1));
        let names: Vec<&str> = report.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["gw", "wan"]);
        let wan = &report.targets[1];
        assert_eq!(
            wan.before,
            Quality {
                sent: 2,
                answered: 2,
                loss_percent: Some(0.0),
                rtt_mean_ms: Some(15.0)
            }
        );
        assert_eq!(
            wan.during,
            Quality {
                sent: 3,
                answered: 1,
                loss_percent: Some(100.0 * 2.0 / 3.0),
                rtt_mean_ms: Some(5.0)
            }
        );
        assert_eq!(
            (wan.after.sent, wan.after.answered, wan.after.rtt_mean_ms),
            (1, 1, Some(4.0))
        );
        let gw = &report.targets[0];
        assert_eq!(gw.before, Quality::default());
        assert_eq!(
            (gw.after.sent, gw.after.loss_percent, gw.after.rtt_mean_ms),
            (1, Some(100.0), None)
        );
    }

    #[test]
    fn report_of_an_outage_under_way_is_none() {
        let open = Outage {
            end_ms: None,
            ..outage()
        };
        assert_eq!(build(&open, &[], START + 65_000), None);
    }

    #[test]
    fn report_every_cause_has_evidence_text() {
        for cause in Cause::ALL {
            assert!(evidence(cause).len() > 20, "{cause:?}");
        }
    }

    #[test]
    fn report_cursor_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CURSOR_FILE);
        assert_eq!(read_cursor(&path), Ok(None));
        write_cursor(&path, START).unwrap();
        assert_eq!(read_cursor(&path), Ok(Some(START)));
        std::fs::write(&path, b"{\"reported_through_ms\": ").unwrap();
        let e = read_cursor(&path).unwrap_err();
        assert!(e.contains("not a reports cursor"), "{e}");
    }

    fn parse(text: &str) -> Result<crate::config::Config, String> {
        crate::config::Config::parse(Path::new("wanwatch.toml"), text)
            .map_err(|e| crate::config::describe(&e))
    }

    #[test]
    fn report_config_defaults_and_errors_name_the_key() {
        let config = parse("").unwrap();
        assert_eq!(config.reports.stable_for, Duration::from_secs(120));
        let config = parse("[reports]\nstable_for = \"30s\"\n").unwrap();
        assert_eq!(config.reports.stable_for, Duration::from_secs(30));
        let e = parse("[reports]\nstable_for = \"soon\"\n").unwrap_err();
        assert!(
            e.starts_with("wanwatch.toml:2:14: reports.stable_for: "),
            "{e}"
        );
        let e = parse("[reports]\nstable = \"2m\"\n").unwrap_err();
        assert!(e.contains("wanwatch.toml:2:1: reports.stable: "), "{e}");
        let e = parse("[[notify.webhook]]\nurl = \"https://h.example\"\nreports = \"yes\"\n")
            .unwrap_err();
        assert!(e.contains("wanwatch.toml:3:11"), "{e}");
    }
}
