//! The probe history: one CSV row per probe, one file per UTC day.
//!
//! `[history] dir = "/var/lib/wanwatch/history"` makes the daemon append
//! every probe to `DIR/wan-YYYY-MM-DD.csv`, the kind of log home users keep
//! of their line. The simulator replays the same files (`replay` in a
//! scenario), so "what would this policy have done on my real data?" needs
//! nothing but the log. Writer and reader share [`Row`], so the format has
//! one definition:
//!
//! ```text
//! timestamp,datetime,status,ping_ms,target
//! 1764030612.123,2025-11-25T00:30:12.123Z,ok,9.412,cloudflare
//! 1764030612.123,2025-11-25T00:30:12.123Z,fail,,google
//! ```
//!
//! `timestamp` is Unix seconds with milliseconds (when the round ended; all
//! rows of a round share it), `datetime` the same instant in RFC 3339 UTC
//! for people, `status` `ok` or `fail`, `ping_ms` the round trip in ms
//! (empty when the probe failed), `target` the target's name.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::state::{Millis, Round};

/// The first line of every history file.
pub const HEADER: &str = "timestamp,datetime,status,ping_ms,target";

/// The `[history]` config section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// The directory of the daily files. None: no history is written.
    pub dir: Option<PathBuf>,
}

/// One probe of one target.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub at_ms: Millis,
    pub ok: bool,
    /// Round trip in microseconds, when the target answered.
    pub rtt_us: Option<u32>,
    pub target: String,
}

impl Row {
    /// Writes the row as one CSV line, newline included.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let datetime = rfc3339_millis(self.at_ms);
        let (status, ping) = match (self.ok, self.rtt_us) {
            (true, Some(us)) => ("ok", format!("{}.{:03}", us / 1000, us % 1000)),
            (true, None) => ("ok", String::new()),
            (false, _) => ("fail", String::new()),
        };
        writeln!(
            out,
            "{}.{:03},{datetime},{status},{ping},{}",
            self.at_ms / 1000,
            self.at_ms % 1000,
            self.target
        )
    }

    /// Parses one CSV line (not the header). The `datetime` column is for
    /// people: `timestamp` is what counts.
    pub fn parse(line: &str) -> Result<Row, String> {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [timestamp, _datetime, status, ping, target] = fields[..] else {
            return Err(format!(
                "has {} columns, expected 5 ({HEADER})",
                fields.len()
            ));
        };
        let seconds: f64 = timestamp
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e13)
            .ok_or_else(|| format!("timestamp `{timestamp}` is not Unix seconds"))?;
        let ok = match status {
            "ok" => true,
            "fail" => false,
            other => return Err(format!("status `{other}` is neither `ok` nor `fail`")),
        };
        let rtt_us = match ping {
            "" => None,
            ping => Some(
                ping.parse::<f64>()
                    .ok()
                    .filter(|ms| ms.is_finite() && *ms >= 0.0)
                    .map(|ms| (ms * 1000.0).round().min(f64::from(u32::MAX)) as u32)
                    .ok_or_else(|| format!("ping_ms `{ping}` is not a number of milliseconds"))?,
            ),
        };
        if target.is_empty() {
            return Err("the target is empty".into());
        }
        Ok(Row {
            at_ms: (seconds * 1000.0).round() as Millis,
            ok,
            // A failed probe has no round trip, whatever the column says.
            rtt_us: rtt_us.filter(|_| ok),
            target: target.to_owned(),
        })
    }
}

/// An instant as RFC 3339 UTC with milliseconds.
fn rfc3339_millis(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Appends every probe round to the day's file.
pub struct History {
    dir: PathBuf,
    /// The open file and the UTC date it is for.
    file: Option<(String, BufWriter<File>)>,
    /// Whether the last write failed, so that a full disk is logged once,
    /// not every round.
    failing: bool,
}

impl History {
    pub fn new(dir: PathBuf) -> History {
        History {
            dir,
            file: None,
            failing: false,
        }
    }

    /// Appends the round's probes. Disk trouble is logged, never returned:
    /// losing history must not stop the watchdog.
    pub fn record(&mut self, round: &Round) {
        match self.append(round) {
            Ok(()) if self.failing => {
                self.failing = false;
                tracing::info!("writing the probe history in {} again", self.dir.display());
            }
            Ok(()) => {}
            Err(e) => {
                // Reopen on the next round: the file may have been moved.
                self.file = None;
                if !self.failing {
                    self.failing = true;
                    tracing::error!(
                        "cannot write the probe history in {}: {e}",
                        self.dir.display()
                    );
                }
            }
        }
    }

    fn append(&mut self, round: &Round) -> std::io::Result<()> {
        let date = rfc3339_millis(round.at_ms)[..10].to_owned();
        let out = match &mut self.file {
            Some((open_date, out)) if *open_date == date => out,
            file => {
                let (path, new) = day_file(&self.dir, &date)?;
                let mut out =
                    BufWriter::new(OpenOptions::new().append(true).create(true).open(path)?);
                if new {
                    writeln!(out, "{HEADER}")?;
                }
                &mut file.insert((date, out)).1
            }
        };
        for e in &round.results {
            let row = Row {
                at_ms: round.at_ms,
                ok: e.ok,
                rtt_us: e.rtt_us,
                target: e.target.clone(),
            };
            row.write(out)?;
        }
        out.flush()
    }
}

/// The path of the day's file, and whether it is new (needs the header).
fn day_file(dir: &Path, date: &str) -> std::io::Result<(PathBuf, bool)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("wan-{date}.csv"));
    let new = std::fs::metadata(&path).map_or(true, |m| m.len() == 0);
    Ok((path, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Evidence, ProbeKind, Role};

    fn round(at_ms: Millis) -> Round {
        let e = |target: &str, ok, rtt_us| Evidence {
            target: target.into(),
            role: Role::Wan,
            kind: ProbeKind::Icmp,
            ok,
            rtt_us,
        };
        Round {
            at_ms,
            results: vec![e("cloudflare", true, Some(9_412)), e("google", false, None)],
        }
    }

    #[test]
    fn writes_a_daily_file_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = History::new(dir.path().join("h"));
        history.record(&round(1_764_030_612_123));
        history.record(&round(1_764_030_614_123));
        // Past midnight UTC: a new file.
        history.record(&round(1_764_115_200_000));
        let text = std::fs::read_to_string(dir.path().join("h/wan-2025-11-25.csv")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], HEADER);
        assert_eq!(
            lines[1],
            "1764030612.123,2025-11-25T00:30:12.123Z,ok,9.412,cloudflare"
        );
        assert_eq!(
            lines[2],
            "1764030612.123,2025-11-25T00:30:12.123Z,fail,,google"
        );
        assert_eq!(lines.len(), 5);
        assert_eq!(
            Row::parse(lines[1]).unwrap(),
            Row {
                at_ms: 1_764_030_612_123,
                ok: true,
                rtt_us: Some(9_412),
                target: "cloudflare".into()
            }
        );
        let next = std::fs::read_to_string(dir.path().join("h/wan-2025-11-26.csv")).unwrap();
        assert_eq!(next.lines().count(), 3);
    }

    #[test]
    fn bad_rows_say_why() {
        assert!(Row::parse("1,x,ok,1").unwrap_err().contains("4 columns"));
        assert!(
            Row::parse("soon,x,ok,1,a")
                .unwrap_err()
                .contains("timestamp")
        );
        assert!(Row::parse("1,x,maybe,1,a").unwrap_err().contains("status"));
        assert!(Row::parse("1,x,ok,fast,a").unwrap_err().contains("ping_ms"));
        assert!(Row::parse("1,x,ok,1,").unwrap_err().contains("target"));
    }
}
