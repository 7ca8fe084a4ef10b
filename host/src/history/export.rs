//! `wanwatch history export --csv`: raw probe rows of the database as the
//! daily CSV files of `[history] dir` (`daily.rs`), so that any
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Observed, Observer};
    use crate::history::{HistoryConfig, Recorder};
    use crate::state::{Evidence, ProbeKind, Role, Round};

    /// 2025-11-25T23:59:40Z: the rounds run past midnight.
    const START: Millis = 1_764_115_180_000;

    #[test]
    fn an_export_replays_in_the_simulator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.db");
        let recorder = Recorder::start(path.clone(), &HistoryConfig::default());
        // Every 2 s: 5 rounds up, 10 failed (20 s: down after 9 s), 5 up.
        for i in 0..20u64 {
            let ok = !(5..15).contains(&i);
            let probe = |target: &str| Evidence {
                target: target.into(),
                role: Role::Wan,
                kind: ProbeKind::Icmp,
                ok,
                rtt_us: ok.then_some(9_412),
                https: None,
            };
            recorder.observe(&Observed::Round(Round {
                at_ms: START + i * 2_000,
                results: vec![probe("cloudflare"), probe("google")],
            }));
        }
        recorder.stop();
        let out = dir.path().join("export");
        let db = HistoryDb::open(&path).unwrap();
        let files = export_csv(&db, START, START + 60_000, &out).unwrap();
        assert_eq!(
            files,
            [
                out.join("wan-2025-11-25.csv"),
                out.join("wan-2025-11-26.csv")
            ]
        );
        let first = std::fs::read_to_string(&files[0]).unwrap();
        assert_eq!(
            first.lines().take(2).collect::<Vec<_>>(),
            [
                "timestamp,datetime,status,ping_ms,target",
                "1764115180.000,2025-11-25T23:59:40.000Z,ok,9.412,cloudflare"
            ]
        );
        // Never over a file that is there.
        let again = export_csv(&db, START, START + 60_000, &out).unwrap_err();
        assert!(
            again.contains("wan-2025-11-25.csv exists: not overwritten"),
            "{again}"
        );

        let scenario = dir.path().join("replay.toml");
        std::fs::write(
            &scenario,
            format!(
                "interval = \"2s\"\n[replay]\nfiles = [{:?}]\n",
                out.display().to_string()
            ),
        )
        .unwrap();
        let mut report = Vec::new();
        let options = crate::sim::Options {
            json: true,
            until: None,
            no_expect: true,
        };
        crate::sim::run(&scenario, None, &options, &mut report).unwrap();
        let report = String::from_utf8(report).unwrap();
        let states: Vec<String> = report
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["event"] == "transition")
            .map(|e| e["current"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(states, ["sick", "down", "up"], "{report}");
    }
}
