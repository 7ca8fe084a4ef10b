//! [`Runner`]: drives one [`Plugin`] on its own OS thread, in real time.
//!
//! Calls into one plugin are serialized on its thread, and nothing a plugin
//! does (a slow power cycle, a long computation up to its deadline) can delay
//! the prober or another plugin. All the logic stays in [`Plugin`]; this is
//! only the thread, the mailbox and the timer loop, so the simulator can
//! drive `Plugin` itself in virtual time.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Event, Plugin, PluginHealth};
use crate::clock::Clock;

enum Message {
    Event(Event),
    Shutdown,
}

pub struct Runner {
    mailbox: mpsc::Sender<Message>,
    health: Arc<Mutex<PluginHealth>>,
    thread: JoinHandle<()>,
}

impl Runner {
    /// Starts a thread named `plugin-NAME` that delivers events sent with
    /// [`send`](Runner::send), and fires the plugin's timers when `clock`
    /// says they are due.
    ///
    /// Panics if the OS cannot start a thread, as `std::thread::spawn` does.
    pub fn spawn(plugin: Plugin, clock: Arc<dyn Clock>) -> Runner {
        let (mailbox, inbox) = mpsc::channel();
        let health = Arc::new(Mutex::new(plugin.health()));
        let shared = Arc::clone(&health);
        let thread = std::thread::Builder::new()
            .name(format!("plugin-{}", plugin.name()))
            .spawn(move || run(plugin, clock, &inbox, &shared))
            .expect("the OS cannot start a plugin thread");
        Runner {
            mailbox,
            health,
            thread,
        }
    }

    /// Queues `event` for the plugin; never blocks.
    pub fn send(&self, event: Event) {
        // Fails only once the thread is gone, and then there is no one to
        // deliver to anyway.
        let _ = self.mailbox.send(Message::Event(event));
    }

    /// The plugin's health as of its last call.
    pub fn health(&self) -> PluginHealth {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Delivers what is already queued, then stops the thread and waits for it.
    pub fn shutdown(self) {
        let _ = self.mailbox.send(Message::Shutdown);
        if self.thread.join().is_err() {
            tracing::error!("a plugin thread panicked");
        }
    }
}

fn run(
    mut plugin: Plugin,
    clock: Arc<dyn Clock>,
    inbox: &mpsc::Receiver<Message>,
    health: &Mutex<PluginHealth>,
) {
    let deliver = |plugin: &mut Plugin, event: Event| {
        if let Err(e) = plugin.call(&event) {
            tracing::error!(plugin = %e.plugin, callback = e.callback, kind = ?e.kind, "{e}");
        }
        *health.lock().unwrap_or_else(PoisonError::into_inner) = plugin.health();
    };
    loop {
        for name in plugin.take_due_timers(clock.now_ms()) {
            deliver(&mut plugin, Event::Timer(name));
        }
        let message = match plugin.next_timer() {
            None => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(due) => {
                let wait = due.saturating_sub(clock.now_ms());
                inbox.recv_timeout(Duration::from_millis(wait))
            }
        };
        match message {
            Ok(Message::Event(event)) => deliver(&mut plugin, event),
            Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
