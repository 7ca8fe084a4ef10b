//! [`HotReload`]: swaps in a plugin's new version when its file changes.
//!
//! What it watches is the file's directory, not the file: editors and build
//! tools replace a file by renaming a new one over it, which silently ends a
//! watch on the file itself. A file renamed into place is complete (that is
//! why tools rename), so it is read at once ([`RENAMED`] later, which only
//! gathers the burst of events one rename makes). Any other change is
//! debounced ([`DEBOUNCE`] after the last event), so a file written in
//! pieces is read once it is complete. Content already tried is skipped by
//! its hash, so a `touch` costs nothing.
//!
//! Compiling happens here, on the watcher's thread: neither the prober nor
//! the plugin's own thread waits for it. The plugin's [`Runner`] receives the
//! compiled version and swaps it in between two callbacks. Content that is
//! not a working plugin (half-written, truncated, not wasm, the wrong
//! contract version, deleted) never replaces the running version: one error
//! is logged, and recorded in the plugin's health.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use file_watch::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use file_watch::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::runner::Mailbox;
use super::runtime::version_hash;
use super::{Runner, Runtime};

/// Quiet time after a file's last event before it is read: long enough for
/// a build tool's burst of writes, short next to a probe interval.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Quiet time after a new file was renamed over a plugin's file: the rename
/// is atomic, so this only lets the rename's own events (from, to, both)
/// arrive, to be handled once.
pub const RENAMED: Duration = Duration::from_millis(10);

/// Watches the files of a set of running plugins; stops when dropped.
pub struct HotReload {
    /// Dropped first, which ends the thread's event stream.
    watcher: Option<RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

/// One watched plugin file.
struct Watched {
    plugin: String,
    mailbox: Mailbox,
    /// The hash of the content last tried (12 hex digits, as
    /// [`PluginHealth::version`](super::PluginHealth::version)); None after
    /// the file could not be read, so that any content that returns is tried.
    tried: Option<String>,
    /// When the debounce of pending events ends.
    due: Option<Instant>,
}

impl HotReload {
    /// Watches the file of every runner loaded from one. A directory that
    /// cannot be watched is logged and skipped: the plugin runs on, without
    /// hot reload.
    pub fn start(runtime: Runtime, runners: &[Runner]) -> std::io::Result<HotReload> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = file_watch::recommended_watcher(tx).map_err(std::io::Error::other)?;
        let mut files = HashMap::new();
        for runner in runners {
            let Some(file) = runner.file() else { continue };
            // Events name the watched directory joined with the file name,
            // so both are taken absolute, once.
            let file = std::path::absolute(file)?;
            let health = runner.health();
            let Some(dir) = file.parent() else { continue };
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::error!(
                    plugin = %health.name,
                    "cannot watch {} for new versions of the plugin: {e}",
                    dir.display()
                );
                continue;
            }
            files.insert(
                file,
                Watched {
                    plugin: health.name,
                    mailbox: runner.mailbox(),
                    tried: Some(health.version),
                    due: None,
                },
            );
        }
        let thread = std::thread::Builder::new()
            .name("plugin-watch".into())
            .spawn(move || watch(&runtime, &rx, files))?;
        Ok(HotReload {
            watcher: Some(watcher),
            thread: Some(thread),
        })
    }
}

impl Drop for HotReload {
    fn drop(&mut self) {
        drop(self.watcher.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the plugin watcher thread panicked");
        }
    }
}

fn watch(
    runtime: &Runtime,
    events: &mpsc::Receiver<file_watch::Result<file_watch::Event>>,
    mut files: HashMap<PathBuf, Watched>,
) {
    loop {
        let next = files.values().filter_map(|w| w.due).min();
        let received = match next {
            None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => events.recv_timeout(due.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(Ok(event)) => {
                // Reads (ours included) change nothing.
                if matches!(event.kind, EventKind::Access(a) if a != AccessKind::Close(AccessMode::Write))
                {
                    continue;
                }
                for path in &event.paths {
                    if let Some(watched) = files.get_mut(path) {
                        // The last event decides: a write after a rename
                        // waits for the debounce again.
                        let quiet = if renamed_onto(&event, path) {
                            RENAMED
                        } else {
                            DEBOUNCE
                        };
                        watched.due = Some(Instant::now() + quiet);
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("watching the plugin files: {e}"),
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        for (path, watched) in &mut files {
            if watched.due.is_some_and(|due| due <= now) {
                watched.due = None;
                reload(runtime, path, watched);
            }
        }
    }
}

/// Whether `event` is another file renamed onto `path` (rather than `path`
/// renamed away, or written).
fn renamed_onto(event: &file_watch::Event, path: &Path) -> bool {
    match event.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => true,
        // Paths are [from, to].
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            event.paths.get(1).is_some_and(|to| to == path)
        }
        _ => false,
    }
}

/// Reads the settled file and, if its content is new, prepares it and sends
/// it to the plugin's runner, or says why it is not a working plugin.
fn reload(runtime: &Runtime, path: &Path, watched: &mut Watched) {
    let plugin = watched.plugin.as_str();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            watched.tried = None;
            let message = format!(
                "plugin `{plugin}` ({}): cannot read the new version: {e}; the running version stays",
                path.display()
            );
            tracing::error!(plugin, "{message}");
            watched.mailbox.reload_failed(message);
            return;
        }
    };
    let version = version_hash(&bytes);
    if watched.tried.as_ref() == Some(&version) {
        return;
    }
    watched.tried = Some(version);
    match runtime.prepare(plugin, &path.display().to_string(), &bytes) {
        Ok(prepared) => watched.mailbox.swap(prepared),
        Err(e) => {
            let message = format!("{e}; the running version stays");
            tracing::error!(plugin, "{message}");
            watched.mailbox.reload_failed(message);
        }
    }
}
