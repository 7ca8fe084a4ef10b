//! [`Runner`]: drives one [`Plugin`] on its own OS thread, in real time.
//!
//! Calls into one plugin are serialized on its thread, and nothing a plugin
//! does (a slow power cycle, a long computation up to its deadline) can delay
//! the prober or another plugin. All the logic stays in [`Plugin`]; this is
//! only the thread, the mailbox and the timer loop, so the simulator can
//! drive `Plugin` itself in virtual time.
//!
//! A new version (from [`HotReload`](super::HotReload)) arrives compiled, in
//! the same mailbox as events, so it is swapped in between two callbacks: a
//! callback in flight finishes on the old version.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{CallErrorKind, Event, Plugin, PluginHealth, Prepared};
use crate::clock::Clock;

enum Message {
    Event(Event),
    /// A new version to swap in.
    Swap(Box<Prepared>),
    /// A new version that could not be prepared: for the health record.
    ReloadFailed(String),
    Shutdown,
}

pub struct Runner {
    mailbox: mpsc::Sender<Message>,
    health: Arc<Mutex<PluginHealth>>,
    file: Option<PathBuf>,
    /// Gives the plugin back when the thread stops.
    thread: JoinHandle<Plugin>,
    /// Disconnected when the thread ends: a join with a time limit.
    ended: mpsc::Receiver<()>,
}

/// The longest [`Runner::stop`] waits for a callback under way. A plugin may
/// be in a host call that waits for a device, or in guest code up to its
/// deadline; shutdown and reload must not wait on it.
pub const STOP_WAIT: Duration = Duration::from_secs(1);

/// Sends new versions to a [`Runner`]'s plugin; outlives nothing: once the
/// runner is shut down, what is sent is dropped.
#[derive(Clone)]
pub struct Mailbox(mpsc::Sender<Message>);

impl Mailbox {
    /// Queues `event` for the plugin; never blocks.
    pub fn send(&self, event: Event) {
        // Fails only once the thread is gone, and then there is no one to
        // deliver to anyway.
        let _ = self.0.send(Message::Event(event));
    }

    pub(super) fn swap(&self, next: Prepared) {
        let _ = self.0.send(Message::Swap(Box::new(next)));
    }

    pub(super) fn reload_failed(&self, message: String) {
        let _ = self.0.send(Message::ReloadFailed(message));
    }
}

impl Runner {
    /// Starts a thread named `plugin-NAME` that delivers events sent with
    /// [`send`](Runner::send), and fires the plugin's timers when `clock`
    /// says they are due.
    ///
    /// Panics if the OS cannot start a thread, as `std::thread::spawn` does.
    pub fn spawn(plugin: Plugin, clock: Arc<dyn Clock>) -> Runner {
        Runner::start(plugin, clock, None)
    }

    /// Like [`spawn`](Runner::spawn), for `plugin` replacing `predecessor`
    /// (the same plugin with another config): its thread first stops the
    /// predecessor, then takes over its timers and its key-value store as
    /// the predecessor left it on disk, then delivers what was sent to it
    /// meanwhile. The caller does not wait for any of that.
    pub fn succeed(plugin: Plugin, clock: Arc<dyn Clock>, predecessor: Runner) -> Runner {
        Runner::start(plugin, clock, Some(predecessor))
    }

    fn start(mut plugin: Plugin, clock: Arc<dyn Clock>, predecessor: Option<Runner>) -> Runner {
        let (mailbox, inbox) = mpsc::channel();
        let health = Arc::new(Mutex::new(plugin.health()));
        let shared = Arc::clone(&health);
        let file = plugin.file().map(Path::to_owned);
        let (ending, ended) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("plugin-{}", plugin.name()))
            .spawn(move || {
                let _ending = ending;
                if let Some(predecessor) = predecessor {
                    plugin.take_over(predecessor.stop());
                }
                run(plugin, clock, &inbox, &shared)
            })
            .expect("the OS cannot start a plugin thread");
        Runner {
            mailbox,
            health,
            file,
            thread,
            ended,
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> String {
        self.health().name
    }

    /// The file the plugin was loaded from, if not built in.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Where events for the plugin go, for a sender that outlives a borrow.
    pub fn mailbox(&self) -> Mailbox {
        Mailbox(self.mailbox.clone())
    }

    /// Queues `event` for the plugin; never blocks.
    pub fn send(&self, event: Event) {
        self.mailbox().send(event);
    }

    /// The plugin's health as of its last call.
    pub fn health(&self) -> PluginHealth {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Delivers what is already queued, stops the thread, and returns the
    /// plugin's final health.
    pub fn shutdown(self) -> PluginHealth {
        let health = self.health.clone();
        drop(self.stop());
        health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Delivers what is already queued, stops the thread, and gives the
    /// plugin back. None if its thread panicked, or if it is still in a
    /// callback after [`STOP_WAIT`]: the thread is then left to finish on
    /// its own (what the plugin keeps on disk is saved as each callback
    /// ends).
    pub fn stop(self) -> Option<Plugin> {
        let _ = self.mailbox.send(Message::Shutdown);
        if let Err(RecvTimeoutError::Timeout) = self.ended.recv_timeout(STOP_WAIT) {
            tracing::warn!(
                plugin = self.name(),
                "plugin still busy after {}: not waiting for it",
                humantime::format_duration(STOP_WAIT)
            );
            return None;
        }
        self.thread
            .join()
            .inspect_err(|_| tracing::error!("a plugin thread panicked"))
            .ok()
    }
}

fn run(
    mut plugin: Plugin,
    clock: Arc<dyn Clock>,
    inbox: &mpsc::Receiver<Message>,
    health: &Mutex<PluginHealth>,
) -> Plugin {
    let publish = |plugin: &Plugin| {
        *health.lock().unwrap_or_else(PoisonError::into_inner) = plugin.health();
    };
    let deliver = |plugin: &mut Plugin, event: Event| {
        match plugin.call(&event) {
            // Said once, when the quarantine began.
            Err(e) if e.kind == CallErrorKind::Quarantined => {
                tracing::debug!(plugin = %e.plugin, callback = e.callback, "{e}");
            }
            Err(e) => {
                tracing::error!(plugin = %e.plugin, callback = e.callback, kind = ?e.kind, "{e}");
            }
            Ok(()) => {}
        }
        publish(plugin);
    };
    loop {
        // What is in the mailbox goes before due timers: at start, the
        // transition the plugin starts in comes before its timers that fell
        // due while the daemon was not running.
        let message = match inbox.try_recv() {
            Ok(message) => Ok(message),
            Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {
                for name in plugin.take_due_timers(clock.now_ms()) {
                    deliver(&mut plugin, Event::Timer(name));
                }
                match plugin.next_timer() {
                    None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    Some(due) => {
                        let wait = due.saturating_sub(clock.now_ms());
                        inbox.recv_timeout(Duration::from_millis(wait))
                    }
                }
            }
        };
        match message {
            Ok(Message::Event(event)) => deliver(&mut plugin, event),
            Ok(Message::Swap(next)) => {
                let version = next.version().to_owned();
                match plugin.swap(*next) {
                    Ok(()) => tracing::info!(plugin = plugin.name(), version, "plugin reloaded"),
                    Err(e) => tracing::error!(
                        plugin = plugin.name(),
                        "{e}\n  keeping version {}",
                        plugin.health().version
                    ),
                }
                publish(&plugin);
            }
            Ok(Message::ReloadFailed(message)) => {
                plugin.note_error(message);
                publish(&plugin);
            }
            Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => return plugin,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
