//! Reading the history database: events, outages, statistics, raw probe
//! rows. One read-only connection per [`HistoryDb`]; WAL lets it read while
//! the daemon writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use super::aggregate::Aggregate;
use super::db::{self, HistoryError};
use super::outages::{self, Input, Outage, WanInput};
use super::recorder::read_aggregate;
use super::stats::{self, Stats, TargetStats};
use super::{Row, StoredEvent};
use crate::clock::{Clock, SystemClock};
use crate::state::Millis;

const MINUTE_MS: Millis = 60_000;
const HOUR_MS: Millis = 3_600_000;

/// Probe results of one target summed over a stretch of time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub start_ms: Millis,
    pub sent: u64,
    pub answered: u64,
    /// Summed over the answers that measured a round trip.
    pub rtt_sum_us: u64,
}

pub struct HistoryDb {
    path: PathBuf,
    conn: Connection,
}

/// An instant as SQLite's INTEGER (i64); later ones are the last it holds.
fn sql(ms: Millis) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

impl HistoryDb {
    /// Opens an existing database, read-only.
    pub fn open(path: &Path) -> Result<HistoryDb, HistoryError> {
        Ok(HistoryDb {
            path: path.to_owned(),
            conn: db::open_reader(path)?,
        })
    }

    fn error(&self, e: rusqlite::Error) -> HistoryError {
        HistoryError::sqlite(&self.path, e)
    }

    fn query_events(
        &self,
        sql_text: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<StoredEvent>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare_cached(sql_text)
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(args, |r| {
                let data: String = r.get(3)?;
                Ok(StoredEvent {
                    id: r.get(0)?,
                    at_ms: r.get::<_, i64>(1)?.max(0) as u64,
                    kind: r.get(2)?,
                    // Written by the recorder from a serde value: always
                    // JSON, unless someone edited the file.
                    data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Events of every kind with an id above `after_id`, in id order, at
    /// most `limit`.
    pub fn events_after(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, HistoryError> {
        self.query_events(
            "SELECT id, at_ms, kind, data FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            params![after_id, limit as i64],
        )
    }

    /// Events of `kind` in `[since, until)`: the newest `limit` of them,
    /// oldest first.
    pub fn events(
        &self,
        kind: &str,
        since_ms: u64,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, HistoryError> {
        let mut events = self.query_events(
            "SELECT id, at_ms, kind, data FROM events
             WHERE kind = ?1 AND at_ms >= ?2 AND at_ms < ?3
             ORDER BY at_ms DESC, id DESC LIMIT ?4",
            params![kind, sql(since_ms), sql(until_ms), limit as i64],
        )?;
        events.reverse();
        Ok(events)
    }

    /// What outages and time in states are derived from, for a window that
    /// begins at `since`: from the last time the link came up at or before
    /// it (an outage under way at `since` began after that), to `until`.
    fn inputs(&self, since: Millis, until: Millis) -> Result<Vec<Input>, HistoryError> {
        let events = self.query_events(
            "SELECT id, at_ms, kind, data FROM events
             WHERE kind IN ('wan', 'action') AND at_ms < ?2 AND at_ms >= coalesce(
                 (SELECT max(at_ms) FROM events WHERE kind = 'wan' AND at_ms <= ?1
                  AND json_extract(data, '$.current') = 'up'), 0)
             ORDER BY at_ms, id",
            params![sql(since), sql(until)],
        )?;
        Ok(events.iter().filter_map(Input::from_event).collect())
    }

    /// The outages that overlap `[since, until)`, oldest first. One still
    /// under way lasts to now.
    pub fn outages(&self, since_ms: u64, until_ms: u64) -> Result<Vec<Outage>, HistoryError> {
        let inputs = self.inputs(since_ms, until_ms)?;
        let mut found = outages::derive(&inputs, SystemClock.wall_ms());
        found.retain(|o| o.start_ms < until_ms && o.start_ms + o.duration_ms > since_ms);
        Ok(found)
    }

    /// The statistics of `[since, until)` (see [`super::stats`]); the
    /// window ends at now at the latest.
    pub fn stats(&self, since_ms: u64, until_ms: u64) -> Result<Stats, HistoryError> {
        let now = SystemClock.wall_ms();
        let until = until_ms.min(now);
        let since = since_ms.min(until);
        let inputs = self.inputs(since, until)?;
        let found = outages::derive(&inputs, now);
        let mut transitions: Vec<WanInput> = inputs
            .iter()
            .filter_map(|i| match i {
                Input::Wan(t) => Some(t.clone()),
                Input::Cycle(_) => None,
            })
            .collect();
        if transitions.is_empty() {
            // No transition before `until` at all (the inputs reach back to
            // the last up, or to the beginning): the state machine starts
            // up and every change is recorded, so the link was up from the
            // first probe recorded. A new install's first day is then up,
            // not unknown.
            transitions.extend(self.first_probe_minute(until)?.map(WanInput::up_from));
        }
        // Time in states counts from the last transition at or before since.
        let first = transitions
            .iter()
            .rposition(|t| t.at_ms <= since)
            .unwrap_or(0);
        let cycles = inputs
            .iter()
            .filter(|i| matches!(i, Input::Cycle(c) if c.at_ms >= since))
            .count();
        let targets = self.target_stats(since, until)?;
        Ok(stats::compute(
            since,
            until,
            &transitions[first..],
            &found,
            cycles as u32,
            targets,
        ))
    }

    /// Loss and round trips per target over the whole minutes that start in
    /// `[since, until)`: hourly rows for the whole hours, minute rows for
    /// the edges, so a year reads 8 760 rows per target.
    fn target_stats(&self, since: Millis, until: Millis) -> Result<Vec<TargetStats>, HistoryError> {
        let first_minute = since.div_ceil(MINUTE_MS) * MINUTE_MS;
        let first_hour = since.div_ceil(HOUR_MS) * HOUR_MS;
        let last_hour = (until / HOUR_MS * HOUR_MS).max(first_hour);
        let mut totals: BTreeMap<String, Aggregate> = BTreeMap::new();
        let ranges = [
            ("probe_hours", "hour_ms", first_hour, last_hour),
            (
                "probe_minutes",
                "minute_ms",
                first_minute,
                first_hour.min(until),
            ),
            (
                "probe_minutes",
                "minute_ms",
                last_hour.max(first_minute),
                until,
            ),
        ];
        for (table, column, from, to) in ranges {
            if from >= to {
                continue;
            }
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT a.sent, a.answered, a.rtt_sum_us, a.rtt_min_us, a.rtt_max_us,
                            a.rtt_hist, t.name
                     FROM {table} a JOIN targets t ON t.id = a.target
                     WHERE a.{column} >= ?1 AND a.{column} < ?2"
                ))
                .map_err(|e| self.error(e))?;
            let mut rows = stmt
                .query(params![sql(from), sql(to)])
                .map_err(|e| self.error(e))?;
            while let Some(row) = rows.next().map_err(|e| self.error(e))? {
                let a = read_aggregate(row).map_err(|e| self.error(e))?;
                let name: String = row.get(6).map_err(|e| self.error(e))?;
                totals.entry(name).or_default().merge(&a);
            }
        }
        Ok(totals
            .into_iter()
            .map(|(name, a)| TargetStats::new(name, &a))
            .collect())
    }

    /// Probe results per target summed into buckets of `bucket_ms` (whole
    /// minutes), aligned on multiples of it, for the minutes that start in
    /// `[since, until)`: from the per-hour aggregates when buckets are
    /// whole hours, else the per-minute ones, so a 30-day chart reads 720
    /// rows per target, not 1.3 M probes, and reaches as far back as the
    /// aggregates (2 years), not the raw rows (7 days). Per target (by
    /// name), the buckets that saw a probe, oldest first.
    pub fn buckets(
        &self,
        since: Millis,
        until: Millis,
        bucket_ms: Millis,
    ) -> Result<BTreeMap<String, Vec<Bucket>>, HistoryError> {
        let bucket_ms = bucket_ms.max(MINUTE_MS) / MINUTE_MS * MINUTE_MS;
        let (table, column) = if bucket_ms.is_multiple_of(HOUR_MS) {
            ("probe_hours", "hour_ms")
        } else {
            ("probe_minutes", "minute_ms")
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT t.name, a.{column} / ?3 AS b, SUM(a.sent), SUM(a.answered),
                        SUM(a.rtt_sum_us)
                 FROM {table} a JOIN targets t ON t.id = a.target
                 WHERE a.{column} >= ?1 AND a.{column} < ?2
                 GROUP BY t.name, b ORDER BY t.name, b"
            ))
            .map_err(|e| self.error(e))?;
        let mut rows = stmt
            .query(params![sql(since), sql(until), sql(bucket_ms)])
            .map_err(|e| self.error(e))?;
        let mut found: BTreeMap<String, Vec<Bucket>> = BTreeMap::new();
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            let read = || -> rusqlite::Result<(String, Bucket)> {
                let count = |i| row.get::<_, i64>(i).map(|n| n.max(0) as u64);
                Ok((
                    row.get(0)?,
                    Bucket {
                        start_ms: count(1)? * bucket_ms,
                        sent: count(2)?,
                        answered: count(3)?,
                        rtt_sum_us: count(4)?,
                    },
                ))
            };
            let (target, bucket) = read().map_err(|e| self.error(e))?;
            found.entry(target).or_default().push(bucket);
        }
        Ok(found)
    }

    /// The start of the first minute with probe results before `until`.
    fn first_probe_minute(&self, until: Millis) -> Result<Option<Millis>, HistoryError> {
        self.conn
            .query_row(
                "SELECT min(minute_ms) FROM probe_minutes WHERE minute_ms < ?1",
                [sql(until)],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|first| first.map(|ms| ms.max(0) as Millis))
            .map_err(|e| self.error(e))
    }

    /// Calls `each` with every raw probe row in `[since, until)`, in time
    /// order, until it returns false.
    pub fn probe_rows(
        &self,
        since_ms: u64,
        until_ms: u64,
        mut each: impl FnMut(Row) -> bool,
    ) -> Result<(), HistoryError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT p.at_ms, p.ok, p.rtt_us, t.name FROM probes p
                 JOIN targets t ON t.id = p.target
                 WHERE p.at_ms >= ?1 AND p.at_ms < ?2 ORDER BY p.at_ms, p.rowid",
            )
            .map_err(|e| self.error(e))?;
        let mut rows = stmt
            .query(params![sql(since_ms), sql(until_ms)])
            .map_err(|e| self.error(e))?;
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            let read = || -> rusqlite::Result<Row> {
                Ok(Row {
                    at_ms: row.get::<_, i64>(0)?.max(0) as u64,
                    ok: row.get(1)?,
                    rtt_us: row.get(2)?,
                    target: row.get(3)?,
                })
            };
            if !each(read().map_err(|e| self.error(e))?) {
                break;
            }
        }
        Ok(())
    }
}
