//! The watcher's database: each site's last sign of life and each outage,
//! as the watcher saw it and as the site reported it, joined into one
//! record. It is what survives a restart ([`Store::remembered`]) and what
//! `wanwatch watcher status`, the API and the dashboard show.
//!
//! One SQLite file, `<state_dir>/watcher.db`, opened like the daemon's
//! history (WAL, `user_version`, a corrupt file moved aside: see
//! [`crate::history::db`]). Schema, version 1:
//!
//! ```text
//! sites    name, last_seen_ms, down (0/1), announced_ms (the last DOWN or
//!          reminder while down), skewed (0/1), skew_ms, heartbeat (the last
//!          one's JSON)
//! outages  id, site; the watcher's view: last_seen_ms (the last heartbeat
//!          before the gap), down_ms (when DOWN was declared), back_ms,
//!          duration_ms (on the watcher's monotonic timeline); the site's
//!          report: report_id (unique per site), report (its JSON),
//!          report_start_ms, report_end_ms, cause
//! ```
//!
//! A record has the watcher's view, the site's report, or both: a short
//! outage never becomes DOWN but is still reported, and an outage whose
//! report never comes keeps only the watcher's view.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::protocol::{Heartbeat, OutageReport};
use super::tracker::Remembered;
use crate::history::HistoryError;
use crate::state::Millis;

/// The file in the state directory.
pub const FILE: &str = "watcher.db";

const SCHEMA_VERSION: i64 = 1;

const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = ["CREATE TABLE sites (
         name TEXT PRIMARY KEY,
         last_seen_ms INTEGER,
         down INTEGER NOT NULL DEFAULT 0,
         announced_ms INTEGER,
         skewed INTEGER NOT NULL DEFAULT 0,
         skew_ms INTEGER,
         heartbeat TEXT
     ) WITHOUT ROWID;
     CREATE TABLE outages (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         site TEXT NOT NULL,
         last_seen_ms INTEGER,
         down_ms INTEGER,
         back_ms INTEGER,
         duration_ms INTEGER,
         report_id TEXT,
         report TEXT,
         report_start_ms INTEGER,
         report_end_ms INTEGER,
         cause TEXT,
         UNIQUE (site, report_id)
     );
     CREATE INDEX outages_by_site ON outages (site, id);"];

/// The database, open for the watcher or for a reader.
pub struct Store {
    conn: Connection,
}

/// Whether a report was new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    New,
    Duplicate,
}

/// A site as shown.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SiteRecord {
    pub name: String,
    /// `up`, `down`, or `waiting` (never heard from).
    pub state: String,
    pub last_seen_ms: Option<Millis>,
    /// The site's clock is off by more than `max_clock_skew`.
    pub clock_skewed: bool,
    /// How far the site's clock was ahead at the last heartbeat (behind
    /// when negative).
    pub clock_offset_ms: Option<i64>,
    /// The last heartbeat as sent: the site's state, version and figures.
    pub heartbeat: Option<Heartbeat>,
}

/// One outage: the watcher's view, the site's report, or both.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutageRecord {
    pub id: i64,
    pub site: String,
    pub watcher: Option<WatcherView>,
    /// The report's cause, when there is a report.
    pub cause: Option<String>,
    pub report: Option<OutageReport>,
}

/// The outage as the watcher saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatcherView {
    /// The last heartbeat before the gap.
    pub last_seen_ms: Millis,
    /// When DOWN was declared.
    pub down_ms: Millis,
    /// The first sign of life after the gap; None while DOWN.
    pub back_ms: Option<Millis>,
    /// From the last heartbeat before the gap to the first after, on the
    /// watcher's monotonic clock; None while DOWN.
    pub duration_ms: Option<Millis>,
}

impl Store {
    /// Opens `path` for the watcher: creates it and its directory if
    /// needed and migrates it. A corrupt file is moved aside (kept to be
    /// examined) and a fresh one started: the watcher must watch.
    pub fn open(path: &Path, now_ms: Millis) -> Result<Store, HistoryError> {
        match Store::open_writer(path) {
            Err(e @ HistoryError::Corrupt { .. }) => {
                let aside = crate::history::db::move_aside(path, now_ms).map_err(|source| {
                    HistoryError::Io {
                        path: path.to_owned(),
                        source,
                    }
                })?;
                tracing::error!(
                    "{e}; moved it to {} and starting a fresh one",
                    aside.display()
                );
                Store::open_writer(path)
            }
            other => other,
        }
    }

    fn open_writer(path: &Path) -> Result<Store, HistoryError> {
        let conn = crate::history::db::open_migrated(path, &MIGRATIONS)?;
        Ok(Store { conn })
    }

    /// Opens an existing database to read it (`wanwatch watcher status`)
    /// while the watcher may be writing it.
    pub fn open_reader(path: &Path) -> Result<Store, String> {
        if !path.exists() {
            return Err(format!(
                "no watcher database at {}: the watcher has not run with this state directory",
                path.display()
            ));
        }
        let conn =
            crate::history::db::open_reader_at(path, SCHEMA_VERSION).map_err(|e| e.to_string())?;
        Ok(Store { conn })
    }

    /// What the database remembers of `site`.
    pub fn remembered(&self, site: &str) -> rusqlite::Result<Remembered> {
        self.conn
            .query_row(
                "SELECT last_seen_ms, down, announced_ms, skewed FROM sites WHERE name = ?1",
                [site],
                |r| {
                    let down: bool = r.get(1)?;
                    Ok(Remembered {
                        last_seen: ms_at(r, 0)?,
                        down_announced: if down { ms_at(r, 2)? } else { None },
                        skewed: r.get(3)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
    }

    /// A heartbeat from `site`, received at `now` (wall clock).
    pub fn heartbeat(
        &self,
        site: &str,
        heartbeat: &Heartbeat,
        offset_ms: i64,
        skewed: bool,
        now: Millis,
    ) -> rusqlite::Result<()> {
        let json = serde_json::to_string(heartbeat).unwrap_or_default();
        self.conn
            .prepare_cached(
                "INSERT INTO sites (name, last_seen_ms, skewed, skew_ms, heartbeat)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (name) DO UPDATE SET last_seen_ms = ?2, skewed = ?3,
                     skew_ms = ?4, heartbeat = ?5",
            )?
            .execute(params![site, sql(now), skewed, offset_ms, json])?;
        Ok(())
    }

    /// Any other sign of life from `site` at `now`.
    pub fn seen(&self, site: &str, now: Millis) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO sites (name, last_seen_ms) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET last_seen_ms = ?2",
            params![site, sql(now)],
        )?;
        Ok(())
    }

    /// `site` is DOWN, announced at `now`: opens its outage.
    pub fn down(&self, site: &str, last_seen: Millis, now: Millis) -> rusqlite::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE sites SET down = 1, announced_ms = ?2 WHERE name = ?1",
            params![site, sql(now)],
        )?;
        tx.execute(
            "INSERT INTO outages (site, last_seen_ms, down_ms) VALUES (?1, ?2, ?3)",
            params![site, sql(last_seen), sql(now)],
        )?;
        tx.commit()
    }

    /// A reminder for `site` went out at `now`.
    pub fn reminded(&self, site: &str, now: Millis) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE sites SET announced_ms = ?2 WHERE name = ?1",
            params![site, sql(now)],
        )?;
        Ok(())
    }

    /// `site` is back at `back`: closes its open outage, and returns it.
    pub fn restored(
        &self,
        site: &str,
        back: Millis,
        duration_ms: Millis,
    ) -> rusqlite::Result<Option<OutageRecord>> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "UPDATE sites SET down = 0, announced_ms = NULL WHERE name = ?1",
            [site],
        )?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM outages WHERE site = ?1 AND down_ms IS NOT NULL
                 AND back_ms IS NULL ORDER BY id DESC LIMIT 1",
                [site],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = id {
            tx.execute(
                "UPDATE outages SET back_ms = ?2, duration_ms = ?3 WHERE id = ?1",
                params![id, sql(back), sql(duration_ms)],
            )?;
        }
        tx.commit()?;
        id.map(|id| self.outage(id))
            .transpose()
            .map(Option::flatten)
    }

    /// Stores `site`'s report once per id, joined with the watcher's
    /// outage of the site whose span overlaps the report's (an open one
    /// reaching up to `now`), or as a record of its own.
    pub fn report(
        &self,
        site: &str,
        report: &OutageReport,
        now: Millis,
    ) -> rusqlite::Result<Stored> {
        let tx = self.conn.unchecked_transaction()?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT id FROM outages WHERE site = ?1 AND report_id = ?2",
                params![site, report.id],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_some() {
            return Ok(Stored::Duplicate);
        }
        let json = serde_json::to_string(report).unwrap_or_default();
        let joined: Option<i64> = tx
            .query_row(
                "SELECT id FROM outages WHERE site = ?1 AND report_id IS NULL
                 AND down_ms IS NOT NULL AND last_seen_ms <= ?2
                 AND COALESCE(back_ms, ?4) >= ?3
                 ORDER BY id DESC LIMIT 1",
                params![
                    site,
                    sql(report.ended_at_ms),
                    sql(report.started_at_ms),
                    sql(now)
                ],
                |r| r.get(0),
            )
            .optional()?;
        let id = match joined {
            Some(id) => id,
            None => {
                tx.execute("INSERT INTO outages (site) VALUES (?1)", [site])?;
                tx.last_insert_rowid()
            }
        };
        tx.execute(
            "UPDATE outages SET report_id = ?2, report = ?3, report_start_ms = ?4,
                 report_end_ms = ?5, cause = ?6 WHERE id = ?1",
            params![
                id,
                report.id,
                json,
                sql(report.started_at_ms),
                sql(report.ended_at_ms),
                report.cause
            ],
        )?;
        tx.commit()?;
        Ok(Stored::New)
    }

    /// Every site of `names` (the configured ones, in order) as recorded.
    pub fn sites(&self, names: &[String]) -> rusqlite::Result<Vec<SiteRecord>> {
        names.iter().map(|name| self.site(name)).collect()
    }

    /// `name` as recorded; `waiting` when never heard from.
    pub fn site(&self, name: &str) -> rusqlite::Result<SiteRecord> {
        let record = self
            .conn
            .query_row(
                "SELECT last_seen_ms, down, skewed, skew_ms, heartbeat FROM sites WHERE name = ?1",
                [name],
                |r| {
                    let last_seen_ms = ms_at(r, 0)?;
                    let down: bool = r.get(1)?;
                    let heartbeat: Option<String> = r.get(4)?;
                    Ok(SiteRecord {
                        name: name.to_owned(),
                        state: match (down, last_seen_ms) {
                            (true, _) => "down",
                            (false, Some(_)) => "up",
                            (false, None) => "waiting",
                        }
                        .to_owned(),
                        last_seen_ms,
                        clock_skewed: r.get(2)?,
                        clock_offset_ms: r.get(3)?,
                        heartbeat: heartbeat.and_then(|h| serde_json::from_str(&h).ok()),
                    })
                },
            )
            .optional()?;
        Ok(record.unwrap_or_else(|| SiteRecord {
            name: name.to_owned(),
            state: "waiting".to_owned(),
            ..SiteRecord::default()
        }))
    }

    /// The latest `limit` outages of `site` (every site when None), newest
    /// first.
    pub fn outages(&self, site: Option<&str>, limit: usize) -> rusqlite::Result<Vec<OutageRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, site, last_seen_ms, down_ms, back_ms, duration_ms, cause, report
             FROM outages WHERE ?1 IS NULL OR site = ?1 ORDER BY
             COALESCE(last_seen_ms, report_start_ms) DESC, id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![site, limit as i64], outage_row)?;
        rows.collect()
    }

    fn outage(&self, id: i64) -> rusqlite::Result<Option<OutageRecord>> {
        self.conn
            .query_row(
                "SELECT id, site, last_seen_ms, down_ms, back_ms, duration_ms, cause, report
                 FROM outages WHERE id = ?1",
                [id],
                outage_row,
            )
            .optional()
    }
}

fn outage_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutageRecord> {
    let last_seen = ms_at(r, 2)?;
    let down = ms_at(r, 3)?;
    let report: Option<String> = r.get(7)?;
    Ok(OutageRecord {
        id: r.get(0)?,
        site: r.get(1)?,
        watcher: last_seen
            .zip(down)
            .map(|(last_seen_ms, down_ms)| WatcherView {
                last_seen_ms,
                down_ms,
                back_ms: ms_at(r, 4).ok().flatten(),
                duration_ms: ms_at(r, 5).ok().flatten(),
            }),
        cause: r.get(6)?,
        report: report.and_then(|r| serde_json::from_str(&r).ok()),
    })
}

/// A time for SQLite, whose integers are signed.
fn sql(ms: Millis) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A time read back (a negative one, which this never writes, as 0).
fn ms_at(r: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Option<Millis>> {
    Ok(r.get::<_, Option<i64>>(column)?.map(|v| v.max(0) as Millis))
}

/// The database of `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::WanState;

    fn report(id: &str, start: Millis, end: Millis) -> OutageReport {
        OutageReport::plain(id, start, end, "wan")
    }

    fn heartbeat() -> Heartbeat {
        Heartbeat {
            sent_at_ms: 5,
            version: "1".into(),
            state: WanState::Up,
            state_since_ms: 1,
            interval_s: 60,
            summary: Default::default(),
        }
    }

    #[test]
    fn an_outage_is_remembered_and_joined_with_its_report_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        let store = Store::open(&path, 1).unwrap();
        assert_eq!(store.site("home").unwrap().state, "waiting");
        store
            .heartbeat("home", &heartbeat(), -3, false, 1000)
            .unwrap();
        store.down("home", 1000, 4000).unwrap();
        drop(store);
        let store = Store::open(&path, 1).unwrap();
        assert_eq!(
            store.remembered("home").unwrap(),
            Remembered {
                last_seen: Some(1000),
                down_announced: Some(4000),
                skewed: false
            }
        );
        assert_eq!(store.site("home").unwrap().state, "down");
        // The report comes first, while the watcher still sees it DOWN.
        let r = report("outage-900", 900, 9000);
        assert_eq!(store.report("home", &r, 8000).unwrap(), Stored::New);
        assert_eq!(store.report("home", &r, 8000).unwrap(), Stored::Duplicate);
        let closed = store.restored("home", 9500, 8500).unwrap().unwrap();
        assert_eq!(closed.cause.as_deref(), Some("wan"));
        assert_eq!(closed.report.as_ref(), Some(&r));
        assert_eq!(
            closed.watcher,
            Some(WatcherView {
                last_seen_ms: 1000,
                down_ms: 4000,
                back_ms: Some(9500),
                duration_ms: Some(8500)
            })
        );
        // A report of a short outage the watcher never saw: its own record.
        store
            .report("home", &report("outage-20000", 20000, 20100), 30000)
            .unwrap();
        let all = store.outages(Some("home"), 10).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].watcher, None);
        assert_eq!(all[1].id, closed.id);
        assert_eq!(store.remembered("home").unwrap().down_announced, None);
        assert!(store.outages(Some("cabin"), 10).unwrap().is_empty());
        Store::open_reader(&path).unwrap().site("home").unwrap();
    }

    #[test]
    fn a_corrupt_database_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        std::fs::write(&path, vec![0xa5_u8; 8192]).unwrap();
        let store = Store::open(&path, 77).unwrap();
        store.seen("home", 1).unwrap();
        assert!(dir.path().join("watcher.db.corrupt-77").exists());
    }
}
