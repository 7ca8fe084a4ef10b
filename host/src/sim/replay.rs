//! Replay: recorded probe history (the daemon's `[history]` CSV, see
//! [`crate::history`]) as the simulator's rounds.
//!
//! Streams: one record at a time, one round at a time, however long the log.
//! Rows become rounds by time: a round gathers the rows that follow its
//! first one within the probe interval, one per target (a target seen again
//! begins the next round). A target the config does not name counts as a
//! `wan` target.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::history::{self, Row};
use crate::state::{Evidence, Millis, ProbeKind, Role, Round};

pub struct Replay {
    /// Files still to read, in reverse order (popped from the back).
    files: Vec<PathBuf>,
    current: Option<Reader>,
    /// A row read ahead that belongs to the next round.
    pending: Option<Row>,
    /// The configured targets by name: a row's role and kind. A target
    /// the config does not name is taken for an ICMP `wan` target.
    targets: HashMap<String, (Role, ProbeKind)>,
    interval_ms: Millis,
    last_at_ms: Millis,
}

struct Reader {
    path: PathBuf,
    rows: history::Reader<File>,
}

impl Replay {
    /// `sources`: files, or directories whose `*.csv` files are read in name
    /// order (daily files sort by date).
    pub fn open(
        sources: &[PathBuf],
        targets: &[Evidence],
        interval_ms: Millis,
    ) -> Result<Replay, String> {
        let mut files = Vec::new();
        for source in sources {
            if source.is_dir() {
                let mut csv: Vec<PathBuf> = std::fs::read_dir(source)
                    .map_err(|e| format!("{}: {e}", source.display()))?
                    .filter_map(|entry| entry.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "csv"))
                    .collect();
                if csv.is_empty() {
                    return Err(format!("{}: no .csv file in it", source.display()));
                }
                csv.sort();
                files.extend(csv);
            } else {
                files.push(source.clone());
            }
        }
        files.reverse();
        Ok(Replay {
            files,
            current: None,
            pending: None,
            targets: targets
                .iter()
                .map(|e| (e.target.clone(), (e.role, e.kind)))
                .collect(),
            interval_ms,
            last_at_ms: 0,
        })
    }

    /// The next recorded round, None at the end.
    pub fn next_round(&mut self) -> Result<Option<Round>, String> {
        let Some(first) = self
            .pending
            .take()
            .map_or_else(|| self.next_row(), |r| Ok(Some(r)))?
        else {
            return Ok(None);
        };
        let mut round = Round {
            at_ms: first.at_ms,
            results: Vec::new(),
        };
        let opened = first.at_ms;
        self.push(&mut round, first);
        while let Some(row) = self.next_row()? {
            let seen = round.results.iter().any(|e| e.target == row.target);
            if seen || row.at_ms.saturating_sub(opened) >= self.interval_ms {
                self.pending = Some(row);
                break;
            }
            round.at_ms = round.at_ms.max(row.at_ms);
            self.push(&mut round, row);
        }
        Ok(Some(round))
    }

    fn push(&self, round: &mut Round, row: Row) {
        let (role, kind) = self
            .targets
            .get(&row.target)
            .copied()
            .unwrap_or((Role::Wan, ProbeKind::Icmp));
        round.results.push(Evidence {
            role,
            target: row.target,
            kind,
            ok: row.ok,
            rtt_us: row.rtt_us,
            https: None,
        });
    }

    /// The next data row of any file, checked to go forward in time.
    fn next_row(&mut self) -> Result<Option<Row>, String> {
        loop {
            let reader = match &mut self.current {
                Some(reader) => reader,
                None => match self.files.pop() {
                    Some(path) => self.current.insert(Reader::open(path)?),
                    None => return Ok(None),
                },
            };
            let (line, row) = match reader.rows.next_row() {
                Ok(Some(row)) => row,
                Ok(None) => {
                    self.current = None;
                    continue;
                }
                Err(e) => {
                    let line = e.line.map_or_else(String::new, |l| format!(":{l}"));
                    return Err(format!("{}{line}: {}", reader.path.display(), e.message));
                }
            };
            if row.at_ms < self.last_at_ms {
                return Err(format!(
                    "{}:{line}: goes back in time (to {}, after {}): the rows must be in time order, and the files in name order",
                    reader.path.display(),
                    crate::human::timestamp(row.at_ms),
                    crate::human::timestamp(self.last_at_ms)
                ));
            }
            self.last_at_ms = row.at_ms;
            return Ok(Some(row));
        }
    }
}

impl Reader {
    fn open(path: PathBuf) -> Result<Reader, String> {
        let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Reader {
            rows: history::Reader::new(file),
            path,
        })
    }
}

/// For messages: the files of a replay.
pub fn describe(sources: &[PathBuf]) -> String {
    sources
        .iter()
        .map(|p| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| Path::new(n).display().to_string(),
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "timestamp,datetime,status,ping_ms,target";

    fn replay(text: &str) -> (tempfile::TempDir, Replay) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wan-2025-11-25.csv");
        std::fs::write(&path, text).unwrap();
        let targets = [Evidence {
            target: "gateway".into(),
            role: Role::Lan,
            kind: ProbeKind::Icmp,
            ok: true,
            rtt_us: None,
            https: None,
        }];
        let replay = Replay::open(&[dir.path().to_owned()], &targets, 2_000).unwrap();
        (dir, replay)
    }

    #[test]
    fn rows_group_into_rounds_by_time_and_target() {
        let (_dir, mut r) = replay(&format!(
            "{HEADER}\n10.000,x,ok,1.0,gateway\n10.100,x,fail,,google\n12.000,x,ok,1.5,gateway\n12.000,x,ok,9.0,google\n12.500,x,ok,9.0,google\n"
        ));
        let first = r.next_round().unwrap().unwrap();
        assert_eq!(first.at_ms, 10_100);
        assert_eq!(first.results.len(), 2);
        assert_eq!(first.results[0].role, Role::Lan);
        assert_eq!(first.results[1].role, Role::Wan);
        assert!(!first.results[1].ok);
        let second = r.next_round().unwrap().unwrap();
        assert_eq!((second.at_ms, second.results.len()), (12_000, 2));
        // google again: a new round.
        let third = r.next_round().unwrap().unwrap();
        assert_eq!((third.at_ms, third.results.len()), (12_500, 1));
        assert!(r.next_round().unwrap().is_none());
    }

    #[test]
    fn bad_rows_are_located() {
        let (_dir, mut r) = replay(&format!(
            "{HEADER}\n10,x,ok,1.0,gateway\n9,x,ok,1.0,gateway\n"
        ));
        let e = r.next_round().unwrap_err();
        assert!(e.ends_with("wan-2025-11-25.csv:3: goes back in time (to 1970-01-01T00:00:09Z, after 1970-01-01T00:00:10Z): the rows must be in time order, and the files in name order"), "{e}");
        let (_dir, mut r) = replay("10,x,up,1.0,gateway\n");
        assert!(r.next_round().unwrap_err().contains(":1: status `up`"));
        let (_dir, mut r) = replay(&format!(
            "{HEADER}\n10,x,ok,1.0,gateway\n253402300800.000,x,ok,1.0,gateway\n"
        ));
        let e = r.next_round().unwrap_err();
        assert!(
            e.ends_with("wan-2025-11-25.csv:3: timestamp `253402300800.000` is after the year 9999 (at most 253402300799.999)"),
            "{e}"
        );
    }

    #[test]
    fn target_names_with_commas_quotes_and_line_breaks_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = history::History::new(dir.path().to_owned());
        let probe = |target: &str, ok, rtt_us| Evidence {
            target: target.into(),
            role: Role::Wan,
            kind: ProbeKind::Icmp,
            ok,
            rtt_us,
            https: None,
        };
        let rounds = [1_764_030_612_123, 1_764_030_614_123].map(|at_ms| Round {
            at_ms,
            results: vec![
                probe("my \"fast\", line\nnumber 2", true, Some(9_412)),
                probe("plain", false, None),
            ],
        });
        for round in &rounds {
            history.record(round);
        }
        let mut replay = Replay::open(&[dir.path().to_owned()], &[], 2_000).unwrap();
        for round in rounds {
            assert_eq!(replay.next_round().unwrap(), Some(round));
        }
        assert_eq!(replay.next_round().unwrap(), None);
    }
}
