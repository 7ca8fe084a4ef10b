//! The daily probe files: one CSV row per probe, one file per UTC day.
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
//! (empty when the probe failed), `target` the target's name, in quotes
//! (CSV-style, `"` doubled) when it holds a comma, a quote or a line break.

use std::fs::{File, OpenOptions};
use std::io::{Chain, Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::Failing;
use crate::human;
use crate::state::{Millis, Round};

/// The columns of every history file, its first line.
pub const COLUMNS: [&str; 5] = ["timestamp", "datetime", "status", "ping_ms", "target"];

/// One probe of one target.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub at_ms: Millis,
    pub ok: bool,
    /// Round trip in microseconds, when the target answered.
    pub rtt_us: Option<u32>,
    pub target: String,
}

/// A history file's writer: fields quoted only when they must be (a comma,
/// quote or line break in a target name), so that plain rows stay as the
/// original wan-monitor wrote them.
pub fn writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out)
}

impl Row {
    /// Writes the row as one CSV record.
    pub fn write(&self, out: &mut csv::Writer<impl Write>) -> std::io::Result<()> {
        let datetime = rfc3339_millis(self.at_ms)?;
        let (status, ping) = match (self.ok, self.rtt_us) {
            (true, Some(us)) => ("ok", format!("{}.{:03}", us / 1000, us % 1000)),
            (true, None) => ("ok", String::new()),
            (false, _) => ("fail", String::new()),
        };
        let timestamp = format!("{}.{:03}", self.at_ms / 1000, self.at_ms % 1000);
        out.write_record([&timestamp, &datetime, status, &ping, &self.target])?;
        Ok(())
    }

    /// Parses one record (not the header). The `datetime` column is for
    /// people: `timestamp` is what counts.
    fn parse<'a>(record: &'a csv::ByteRecord) -> Result<Row, String> {
        let fields: Vec<&[u8]> = record.iter().collect();
        let [timestamp, _datetime, status, ping, target] = fields[..] else {
            return Err(format!(
                "has {} columns, expected {} ({})",
                fields.len(),
                COLUMNS.len(),
                COLUMNS.join(",")
            ));
        };
        let text = |column: &str, field: &'a [u8]| {
            std::str::from_utf8(field.trim_ascii()).map_err(|_| format!("{column} is not UTF-8"))
        };
        let (timestamp, status, ping, target) = (
            text("timestamp", timestamp)?,
            text("status", status)?,
            text("ping_ms", ping)?,
            text("target", target)?,
        );
        let at_ms = timestamp
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (s * 1000.0).round())
            .ok_or_else(|| format!("timestamp `{timestamp}` is not Unix seconds"))?;
        // Later times cannot be written as dates, in the report or anywhere.
        if at_ms > human::LAST_MS as f64 {
            return Err(format!(
                "timestamp `{timestamp}` is after the year 9999 (at most {:.3})",
                human::LAST_MS as f64 / 1000.0
            ));
        }
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
            at_ms: at_ms as Millis,
            ok,
            // A failed probe has no round trip, whatever the column says.
            rtt_us: rtt_us.filter(|_| ok),
            target: target.to_owned(),
        })
    }
}

/// Why a history file cannot be read, and where.
#[derive(Debug, PartialEq)]
pub struct ReadError {
    /// The line the record starts on, when the error has one.
    pub line: Option<u64>,
    pub message: String,
}

/// Reads the rows of a history file, one record at a time.
pub struct Reader<R: Read> {
    csv: csv::Reader<Chain<R, &'static [u8]>>,
    record: csv::ByteRecord,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        let csv = csv::ReaderBuilder::new()
            // The header is skipped wherever it is (concatenated files).
            .has_headers(false)
            // A wrong column count is reported by `Row::parse`, by name.
            .flexible(true)
            // Records end at `\n` only (a `\r` before it is trimmed as a
            // blank), and the input with one more: every record then
            // consumes its line break, which `next_row` counts on.
            .terminator(csv::Terminator::Any(b'\n'))
            .comment(Some(b'#'))
            .from_reader(input.chain(&b"\n"[..]));
        Reader {
            csv,
            record: csv::ByteRecord::new(),
        }
    }

    /// The next data row and the line it starts on; None at the end.
    pub fn next_row(&mut self) -> Result<Option<(u64, Row)>, ReadError> {
        loop {
            match self.csv.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => {
                    return Err(ReadError {
                        line: None,
                        message: e.to_string(),
                    });
                }
            }
            // The reader counts every line break it consumed, those of the
            // blank and comment lines it skipped before the record too: the
            // record's first line is found back from its end. A quote left
            // open runs to the end, last break included: not before the
            // line the reading began on, then.
            let began = self.record.position().map_or(1, csv::Position::line);
            let breaks = self.record.as_slice().iter().filter(|&&b| b == b'\n');
            let line = self
                .csv
                .position()
                .line()
                .saturating_sub(breaks.count() as u64 + 1)
                .max(began);
            let blank = self.record.len() == 1 && self.record[0].trim_ascii().is_empty();
            let header = self
                .record
                .iter()
                .map(<[u8]>::trim_ascii)
                .eq(COLUMNS.map(str::as_bytes));
            if blank || header {
                continue;
            }
            return match Row::parse(&self.record) {
                Ok(row) => Ok(Some((line, row))),
                Err(message) => Err(ReadError {
                    line: Some(line),
                    message,
                }),
            };
        }
    }
}

/// An instant as RFC 3339 UTC with milliseconds. The clock may be wrong,
/// but must not crash the daemon.
pub(super) fn rfc3339_millis(ms: Millis) -> std::io::Result<String> {
    human::timestamp_millis(ms).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} cannot be written as a date", human::timestamp(ms)),
        )
    })
}

/// Appends every probe round to the day's file.
pub struct History {
    dir: PathBuf,
    /// The open file and the UTC date it is for.
    file: Option<(String, csv::Writer<File>)>,
    /// So that a full disk is logged once, not every round.
    failing: Failing,
}

impl History {
    pub fn new(dir: PathBuf) -> History {
        History {
            dir,
            file: None,
            failing: Failing::default(),
        }
    }

    /// Appends the round's probes. Disk trouble is logged, never returned:
    /// losing history must not stop the watchdog.
    pub fn record(&mut self, round: &Round) {
        let appended = self.append(round);
        if appended.is_err() {
            // Reopen on the next round: the file may have been moved.
            self.file = None;
        }
        self.failing.outcome(
            format_args!("the probe history in {}", self.dir.display()),
            appended,
        );
    }

    fn append(&mut self, round: &Round) -> std::io::Result<()> {
        let mut date = rfc3339_millis(round.at_ms)?;
        date.truncate("YYYY-MM-DD".len());
        let out = match &mut self.file {
            Some((open_date, out)) if *open_date == date => out,
            file => {
                let (path, new) = day_file(&self.dir, &date)?;
                let mut out = writer(OpenOptions::new().append(true).create(true).open(path)?);
                if new {
                    out.write_record(COLUMNS)?;
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
            https: None,
        };
        Round {
            at_ms,
            results: vec![e("cloudflare", true, Some(9_412)), e("google", false, None)],
        }
    }

    fn read(text: impl AsRef<[u8]>) -> Result<Vec<(u64, Row)>, ReadError> {
        let mut reader = Reader::new(text.as_ref());
        let mut rows = Vec::new();
        while let Some(row) = reader.next_row()? {
            rows.push(row);
        }
        Ok(rows)
    }

    fn error(text: &str) -> String {
        let e = read(text).unwrap_err();
        format!("{}: {}", e.line.unwrap_or(0), e.message)
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
        // Unix line ends, as before.
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines[0], "timestamp,datetime,status,ping_ms,target");
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
            read(&text).unwrap()[0],
            (
                2,
                Row {
                    at_ms: 1_764_030_612_123,
                    ok: true,
                    rtt_us: Some(9_412),
                    target: "cloudflare".into()
                }
            )
        );
        let next = std::fs::read_to_string(dir.path().join("h/wan-2025-11-26.csv")).unwrap();
        assert_eq!(next.lines().count(), 3);
    }

    #[test]
    fn a_round_past_the_year_9999_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut history = History::new(dir.path().to_owned());
        history.record(&round(human::LAST_MS + 1));
        assert!(history.failing.is_failing());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn reads_what_people_write_too() {
        // Blanks around fields, blank lines, comments, a header again.
        let rows = read(
            "# from my router\n\n1.5 , x , ok , 2 , a\n   \ntimestamp,datetime,status,ping_ms,target\n2,x,fail,,b\n",
        )
        .unwrap();
        let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [3, 6]);
        assert_eq!(
            rows[0].1,
            Row {
                at_ms: 1_500,
                ok: true,
                rtt_us: Some(2_000),
                target: "a".into()
            }
        );
    }

    #[test]
    fn lines_are_counted_across_quoted_line_breaks() {
        let rows = read("1,x,ok,1,\"a\nb\"\r\n\r\n# c\n2,x,ok,1,a\r\n3,x,ok,1,a").unwrap();
        let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 5, 6]);
        assert_eq!(rows[0].1.target, "a\nb");
        assert_eq!(
            error("1,x,ok,1,\"a\n\nb\"\n\n2,x,up,1,a"),
            "5: status `up` is neither `ok` nor `fail`"
        );
        assert_eq!(
            error("1,x,ok,1,a\n2,\"x,ok,1,a\n3,x,ok,1,a\n"),
            "2: has 2 columns, expected 5 (timestamp,datetime,status,ping_ms,target)"
        );
    }

    #[test]
    fn bad_rows_say_why_and_where() {
        assert_eq!(
            error("timestamp,datetime,status,ping_ms,target\n1,x,ok,1\n"),
            "2: has 4 columns, expected 5 (timestamp,datetime,status,ping_ms,target)"
        );
        assert_eq!(
            error("soon,x,ok,1,a"),
            "1: timestamp `soon` is not Unix seconds"
        );
        assert_eq!(
            error("1,x,ok,1,a\n253402300800,x,ok,1,a\n"),
            "2: timestamp `253402300800` is after the year 9999 (at most 253402300799.999)"
        );
        assert_eq!(
            error("1,x,maybe,1,a"),
            "1: status `maybe` is neither `ok` nor `fail`"
        );
        assert_eq!(
            error("1,x,ok,fast,a"),
            "1: ping_ms `fast` is not a number of milliseconds"
        );
        assert_eq!(error("1,x,ok,1,"), "1: the target is empty");
        assert_eq!(
            read(b"1,x,ok,1,a\n2,x,ok,1,\"b\xff\"\n").unwrap_err(),
            ReadError {
                line: Some(2),
                message: "target is not UTF-8".into()
            }
        );
    }
}
