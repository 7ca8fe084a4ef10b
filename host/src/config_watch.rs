//! When to reload the config: on SIGHUP, and when the config file changes.
//!
//! Like the plugin watcher, it watches the file's directory rather than the
//! file, because editors save by renaming a new file over the old one, which
//! silently ends a watch on the file itself; and it waits for a quiet moment
//! ([`DEBOUNCE`]) so that a file saved in several writes is read once, whole.
//! Whether the new config is any good is for the daemon to decide.

use std::path::{Path, PathBuf};
use std::time::Duration;

use file_watch::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Quiet time after the file's last change before it is read.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Why a reload was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Hangup,
    FileChanged,
}

/// Sends a [`Trigger`] for every reload request; stops when dropped.
pub struct ConfigWatch {
    /// Kept alive for as long as the file is to be watched.
    _watcher: Option<RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl ConfigWatch {
    /// Starts listening for SIGHUP and watching `path`. A watch that cannot
    /// be set up is logged: SIGHUP still works.
    pub fn start(path: &Path, triggers: mpsc::Sender<Trigger>) -> ConfigWatch {
        let (events_tx, events) = mpsc::unbounded_channel();
        let watcher = watch_file(path, events_tx)
            .inspect_err(|e| {
                tracing::warn!(
                    "cannot watch {} for changes ({e}): reload the config with SIGHUP",
                    path.display()
                )
            })
            .ok();
        let task = tokio::spawn(triggers_loop(events, triggers));
        ConfigWatch {
            _watcher: watcher,
            task,
        }
    }
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn watch_file(
    path: &Path,
    events: mpsc::UnboundedSender<()>,
) -> file_watch::Result<RecommendedWatcher> {
    let file: PathBuf = std::path::absolute(path)?;
    let dir = file.parent().unwrap_or(Path::new("/")).to_owned();
    // Not a line is logged per event here: the daemon's own log file may be
    // in this directory, and each line would be an event again (the watcher
    // crate's own lines are dropped for that reason, see cli.rs).
    let mut watcher =
        file_watch::recommended_watcher(move |event: file_watch::Result<file_watch::Event>| {
            let Ok(event) = event else { return };
            // Reads, the daemon's own included, change nothing.
            let writes = !matches!(event.kind, EventKind::Access(_));
            if writes && event.paths.contains(&file) {
                let _ = events.send(());
            }
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

async fn triggers_loop(mut events: mpsc::UnboundedReceiver<()>, triggers: mpsc::Sender<Trigger>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())
        .inspect_err(|e| tracing::warn!("cannot listen for SIGHUP: {e}"))
        .ok();
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let quiet = async {
            match due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
        };
        let hup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let trigger = tokio::select! {
            Some(()) = events.recv() => {
                due = Some(tokio::time::Instant::now() + DEBOUNCE);
                continue;
            }
            Some(()) = hup => Trigger::Hangup,
            () = quiet => {
                due = None;
                Trigger::FileChanged
            }
        };
        if triggers.send(trigger).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_config_file_triggers() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("wanwatch.toml");
        std::fs::write(&config, "").unwrap();
        let (tx, mut triggers) = mpsc::channel(8);
        let _watch = ConfigWatch::start(&config, tx);

        // The daemon's log beside the config: written to all the time.
        let log = dir.path().join("wanwatch.log");
        for i in 0..50 {
            std::fs::write(&log, format!("line {i}\n")).unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let quiet = tokio::time::timeout(DEBOUNCE * 3, triggers.recv()).await;
        assert!(quiet.is_err(), "another file triggered {quiet:?}");

        std::fs::write(&config, "# changed\n").unwrap();
        let trigger = tokio::time::timeout(Duration::from_secs(10), triggers.recv()).await;
        assert_eq!(trigger, Ok(Some(Trigger::FileChanged)));
    }
}
