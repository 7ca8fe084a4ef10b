//! The history database: its schema, how it is opened, and its migrations.
//!
//! One SQLite file, `<state_dir>/history.db`, in WAL mode (readers never
//! block the writer), `synchronous = NORMAL` for the batched probe rows
//! (the recorder raises it to FULL for the commit of each event, see
//! [`super::recorder`]) and a busy timeout so that a reader and the writer
//! wait for each other briefly instead of failing.
//!
//! Schema, version 1 (`PRAGMA user_version`):
//!
//! ```text
//! events        id INTEGER PRIMARY KEY AUTOINCREMENT (never reused, so a
//!               client resumes after the last id it saw), at_ms, kind
//!               ("wan", "power", "quality", "action", "plugin"), data
//!               (the event's JSON)
//! targets       id, name: the probe targets, so that rows hold a number
//! probes        at_ms, target, ok, rtt_us: one raw row per probe
//!               (`raw_retention`, 7 days by default)
//! probe_minutes minute_ms, target, sent, answered, rtt_sum_us, rtt_min_us,
//!               rtt_max_us, rtt_hist (see super::aggregate): per target
//!               and UTC minute (`aggregate_retention`, 2 years)
//! probe_hours   the same per UTC hour, so that a year is 8 760 rows per
//!               target for the statistics
//! ```
//!
//! Outages are not a table: they are derived from the events when asked
//! ([`super::outages`]), so an outage is exactly as durable as its
//! transitions.
//!
//! Migrations: `MIGRATIONS` holds one step per version; opening runs the
//! steps from the file's `user_version` to [`SCHEMA_VERSION`] in order, each
//! in a transaction with its version bump. A file of a newer version than
//! this wanwatch knows is refused, never downgraded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

/// The schema version this wanwatch writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Step `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: the first schema.
    "CREATE TABLE events (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         at_ms INTEGER NOT NULL,
         kind TEXT NOT NULL,
         data TEXT NOT NULL
     );
     CREATE INDEX events_by_kind ON events (kind, at_ms);
     CREATE INDEX events_by_time ON events (at_ms);
     CREATE TABLE targets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
     CREATE TABLE probes (
         at_ms INTEGER NOT NULL,
         target INTEGER NOT NULL,
         ok INTEGER NOT NULL,
         rtt_us INTEGER
     );
     CREATE INDEX probes_by_time ON probes (at_ms);
     CREATE TABLE probe_minutes (
         minute_ms INTEGER NOT NULL,
         target INTEGER NOT NULL,
         sent INTEGER NOT NULL,
         answered INTEGER NOT NULL,
         rtt_sum_us INTEGER NOT NULL,
         rtt_min_us INTEGER,
         rtt_max_us INTEGER,
         rtt_hist BLOB NOT NULL,
         PRIMARY KEY (minute_ms, target)
     ) WITHOUT ROWID;
     CREATE TABLE probe_hours (
         hour_ms INTEGER NOT NULL,
         target INTEGER NOT NULL,
         sent INTEGER NOT NULL,
         answered INTEGER NOT NULL,
         rtt_sum_us INTEGER NOT NULL,
         rtt_min_us INTEGER,
         rtt_max_us INTEGER,
         rtt_hist BLOB NOT NULL,
         PRIMARY KEY (hour_ms, target)
     ) WITHOUT ROWID;",
];

/// How long a connection waits for another's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the history cannot be used, and which file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("the history database {} is corrupt ({source})", path.display())]
    Corrupt {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the history database {} is locked by another process ({source})", path.display())]
    Locked {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the history database {} has schema version {found}, newer than this wanwatch knows ({known}): it was written by a newer wanwatch",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "the history database {} has schema version {found}, older than this wanwatch reads ({known}): the daemon migrates it when it starts",
        path.display()
    )]
    TooOld {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot use the history database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot use the history database {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl HistoryError {
    /// Classifies an SQLite error on `path`.
    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> HistoryError {
        let path = path.to_owned();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                HistoryError::Corrupt { path, source }
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                HistoryError::Locked { path, source }
            }
            _ => HistoryError::Sqlite { path, source },
        }
    }
}

/// Opens the database for writing: creates the file and its directory if
/// needed, and migrates it to [`SCHEMA_VERSION`].
pub fn open_writer(path: &Path) -> Result<Connection, HistoryError> {
    open_migrated(path, &MIGRATIONS)
}

/// Opens an SQLite database the way the history is (WAL, `synchronous =
/// NORMAL`, the busy timeout) and migrates it with `migrations` (step `i`
/// takes version `i` to `i + 1`): shared with the watcher's database.
pub(crate) fn open_migrated(path: &Path, migrations: &[&str]) -> Result<Connection, HistoryError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| HistoryError::Io {
            path: path.to_owned(),
            source,
        })?;
    }
    let sqlite = |e| HistoryError::sqlite(path, e);
    let conn = Connection::open(path).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    // The first statement that reads the file: garbage shows here.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite)?;
    migrate(path, &conn, migrations)?;
    Ok(conn)
}

/// Opens the database to read it. It must exist, at [`SCHEMA_VERSION`].
///
/// Opened read-write but `query_only`: a read-only SQLite connection cannot
/// recover a WAL left by a daemon that was killed, and fails instead.
pub fn open_reader(path: &Path) -> Result<Connection, HistoryError> {
    open_reader_at(path, SCHEMA_VERSION)
}

/// [`open_reader`] for a database whose schema version must be `known`.
pub(crate) fn open_reader_at(path: &Path, known: i64) -> Result<Connection, HistoryError> {
    let sqlite = |e| HistoryError::sqlite(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(sqlite)?;
    let found = version(&conn).map_err(sqlite)?;
    match found.cmp(&known) {
        std::cmp::Ordering::Equal => Ok(conn),
        std::cmp::Ordering::Greater => Err(HistoryError::TooNew {
            path: path.to_owned(),
            found,
            known,
        }),
        std::cmp::Ordering::Less => Err(HistoryError::TooOld {
            path: path.to_owned(),
            found,
            known,
        }),
    }
}

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Runs the migration steps from the file's version up to ours.
fn migrate(path: &Path, conn: &Connection, migrations: &[&str]) -> Result<(), HistoryError> {
    let sqlite = |e| HistoryError::sqlite(path, e);
    let known = migrations.len() as i64;
    let found = version(conn).map_err(sqlite)?;
    if found > known {
        return Err(HistoryError::TooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (from, step) in migrations.iter().enumerate().skip(found.max(0) as usize) {
        let to = from + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {step}; PRAGMA user_version = {to}; COMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            sqlite(e)
        })?;
        tracing::info!(
            "database {}: migrated to schema version {to}",
            path.display()
        );
    }
    Ok(())
}

/// Moves a corrupt database (and its WAL and shared-memory files) aside as
/// `history.db.corrupt-<now_ms>`, so that a fresh one can be created and
/// the old one still examined. Returns where it went.
pub fn move_aside(path: &Path, now_ms: u64) -> std::io::Result<PathBuf> {
    let aside = suffixed(path, &format!(".corrupt-{now_ms}"));
    std::fs::rename(path, &aside)?;
    for extra in ["-wal", "-shm"] {
        let from = suffixed(path, extra);
        if from.exists() {
            std::fs::rename(&from, suffixed(&aside, extra))?;
        }
    }
    Ok(aside)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn an_empty_file_of_version_0_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        // What an older wanwatch (or a crash before the first step) leaves.
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 0)
            .unwrap();
        let conn = open_writer(&path).unwrap();
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(
            tables(&conn),
            [
                "events",
                "probe_hours",
                "probe_minutes",
                "probes",
                "sqlite_sequence",
                "targets"
            ]
        );
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        drop(conn);
        // Opening again runs no step twice (the CREATEs would fail).
        open_writer(&path).unwrap();
        open_reader(&path).unwrap();
    }

    #[test]
    fn a_newer_version_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let e = open_writer(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the history database {} has schema version 2, newer than this wanwatch knows (1): it was written by a newer wanwatch",
                path.display()
            )
        );
        assert!(matches!(
            open_reader(&path),
            Err(HistoryError::TooNew { found: 2, .. })
        ));
    }

    #[test]
    fn garbage_is_reported_as_corrupt_and_moved_aside_with_its_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        std::fs::write(&path, vec![0xa5_u8; 8192]).unwrap();
        let e = open_writer(&path).unwrap_err();
        // As a crash may leave it beside the file.
        std::fs::write(dir.path().join("history.db-wal"), b"x").unwrap();
        assert!(matches!(e, HistoryError::Corrupt { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&format!(
                "the history database {} is corrupt (",
                path.display()
            )),
            "{e}"
        );
        let aside = move_aside(&path, 77).unwrap();
        assert_eq!(aside, dir.path().join("history.db.corrupt-77"));
        assert_eq!(std::fs::read(&aside).unwrap(), vec![0xa5_u8; 8192]);
        assert!(dir.path().join("history.db.corrupt-77-wal").exists());
        open_writer(&path).unwrap();
    }

    #[test]
    fn a_reader_needs_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let e = open_reader(&path).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "cannot use the history database {}: ",
                path.display()
            )),
            "{e}"
        );
        assert!(!path.exists());
    }
}
