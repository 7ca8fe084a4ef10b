//! `wanwatch history export --csv`: raw probe rows of the database as the
//! daily CSV files of `[history] dir` ([`super::daily`]), so that any
//! stretch of the last `raw_retention` can be replayed by `wanwatch
//! simulate`.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::HistoryDb;
use super::daily::{COLUMNS, rfc3339_millis, writer};
use crate::state::Millis;

/// Writes the rows of `[since, until)` to `out/wan-YYYY-MM-DD.csv`, one
/// file per UTC day with rows. Refuses to overwrite a file: `out` may be
/// the daemon's own `[history] dir`. Returns the files written.
pub fn export_csv(
    db: &HistoryDb,
    since_ms: Millis,
    until_ms: Millis,
    out: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut written: Vec<PathBuf> = Vec::new();
    let mut file: Option<(String, csv::Writer<File>)> = None;
    let mut failure = None;
    let mut write = |row: super::Row| -> Result<(), String> {
        let mut date = rfc3339_millis(row.at_ms).map_err(|e| e.to_string())?;
        date.truncate("YYYY-MM-DD".len());
        let csv = match &mut file {
            Some((open, csv)) if *open == date => csv,
            slot => {
                if let Some((_, mut done)) = slot.take() {
                    done.flush().map_err(|e| format!("cannot write: {e}"))?;
                }
                let path = out.join(format!("wan-{date}.csv"));
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => format!(
                            "{} exists: not overwritten (export to another --out)",
                            path.display()
                        ),
                        _ => format!("cannot create {}: {e}", path.display()),
                    })?;
                let mut csv = writer(f);
                csv.write_record(COLUMNS)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                written.push(path);
                &mut slot.insert((date, csv)).1
            }
        };
        row.write(csv).map_err(|e| format!("cannot write: {e}"))
    };
    db.probe_rows(since_ms, until_ms, |row| match write(row) {
        Ok(()) => true,
        Err(e) => {
            failure = Some(e);
            false
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some((_, mut csv)) = file {
        csv.flush().map_err(|e| format!("cannot write: {e}"))?;
    }
    Ok(written)
}
