//! The on-disk queue's owner: one delivery task per sink, each with its
//! own place in the queue, its backoff and its status. The queue carries
//! notifications and outage reports; a sink that does not take an item's
//! kind is done with it at once.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::delivery::{Sink, lateness, sink_id};
use super::queue::{Item, Queue};
use super::{
    NotifyConfig, NotifyError, QUEUE_FILE, Tuning, http_client, is_configured, ntfy, watcher,
    webhook,
};
use crate::actions::{Notification, Notifier};
use crate::clock::{Clock, SystemClock};
use crate::heartbeat::HeartbeatConfig;
use crate::human;
use crate::state::Millis;
use crate::watcher::protocol::OutageReport;

/// What the status file shows of the outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Notifications and reports not yet delivered to every sink.
    pub queued: usize,
    pub sinks: Vec<SinkStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStatus {
    /// E.g. `ntfy https://ntfy.sh/…`, `webhook[0] https://host/…` or
    /// `heartbeat[0] wanwatch https://host/… reports`: never the topic, the
    /// hook's path or a token, which are secrets.
    pub name: String,
    /// Notifications and reports this sink has yet to take.
    pub pending: usize,
    /// Delivered since the daemon started.
    pub delivered: u64,
    /// Given up since the daemon started (rejected permanently).
    pub given_up: u64,
    /// Why the last attempt failed, while the sink keeps failing.
    pub failing: Option<String>,
}

/// Whether there is any sink for the outbox: notifications, or outage
/// reports for a watcher.
pub fn is_wanted(notify: &NotifyConfig, heartbeats: &[HeartbeatConfig]) -> bool {
    is_configured(notify) || heartbeats.iter().any(watcher::takes_reports)
}

/// Queues notifications and outage reports on disk and delivers them to
/// every configured sink.
pub struct Outbox {
    shared: Arc<Shared>,
    /// Bumped by `notify`: wakes the idle sink tasks.
    queued: watch::Sender<()>,
    /// Bumped by `wan_up`: cuts every backoff short.
    wan_up: watch::Sender<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<Queue>,
    sinks: Vec<Sink>,
    /// The sinks' names in the queue file, in the order of `sinks`.
    ids: Vec<String>,
    status: Mutex<Vec<SinkStatus>>,
    tuning: Tuning,
}

impl Outbox {
    /// Opens (or creates) the queue in `state_dir` and starts one delivery
    /// task per sink on `handle`: those of `config`, and each watcher of
    /// `heartbeats` that takes reports. What an earlier run left in the
    /// queue is delivered first.
    pub fn new(
        config: &NotifyConfig,
        heartbeats: &[HeartbeatConfig],
        state_dir: &Path,
        handle: tokio::runtime::Handle,
    ) -> Result<Outbox, NotifyError> {
        Outbox::with_tuning(config, heartbeats, state_dir, handle, Tuning::default())
    }

    pub fn with_tuning(
        config: &NotifyConfig,
        heartbeats: &[HeartbeatConfig],
        state_dir: &Path,
        handle: tokio::runtime::Handle,
        tuning: Tuning,
    ) -> Result<Outbox, NotifyError> {
        if !is_wanted(config, heartbeats) {
            return Err(NotifyError::NoSink);
        }
        let client = http_client(&tuning)?;
        let host = hostname();
        let mut sinks = Vec::new();
        let mut ids = Vec::new();
        if let Some(ntfy) = &config.ntfy {
            ids.push(sink_id("ntfy", &format!("{}{}", ntfy.server, ntfy.topic)));
            sinks.push(Sink::Ntfy(ntfy::Ntfy::new(ntfy, client.clone())));
        }
        for (index, webhook) in config.webhook.iter().enumerate() {
            ids.push(sink_id("webhook", webhook.url.as_str()));
            sinks.push(Sink::Webhook(webhook::Webhook::new(
                webhook,
                index,
                client.clone(),
                host.clone(),
            )));
        }
        for (index, heartbeat) in heartbeats.iter().enumerate() {
            if let Some(watcher) = watcher::Watcher::of(heartbeat, index, client.clone()) {
                ids.push(sink_id("watcher", watcher.destination()));
                sinks.push(Sink::Watcher(watcher));
            }
        }
        let path = state_dir.join(QUEUE_FILE);
        let queue = Queue::open(path.clone(), config.queue_max, ids.clone())
            .map_err(|source| NotifyError::Queue { path, source })?;
        let status = sinks
            .iter()
            .map(|s| SinkStatus {
                name: s.name().to_owned(),
                ..SinkStatus::default()
            })
            .collect();
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            sinks,
            ids,
            status: Mutex::new(status),
            tuning,
        });
        let (queued, _) = watch::channel(());
        let (wan_up, _) = watch::channel(());
        let tasks = (0..shared.sinks.len())
            .map(|sink| {
                handle.spawn(deliver(
                    shared.clone(),
                    sink,
                    queued.subscribe(),
                    wan_up.subscribe(),
                ))
            })
            .collect();
        Ok(Outbox {
            shared,
            queued,
            wan_up,
            tasks,
        })
    }

    /// The WAN is back: every sink that is waiting to retry tries now.
    pub fn wan_up(&self) {
        self.wan_up.send_replace(());
    }

    /// Whether any sink takes outage reports.
    pub fn takes_reports(&self) -> bool {
        self.shared.sinks.iter().any(Sink::takes_reports)
    }

    /// Queues an outage report for the sinks that take reports, and returns:
    /// on Ok it is on disk. Even on an error it stays queued in memory.
    pub fn report(&self, report: OutageReport) -> std::io::Result<()> {
        self.queue(Item::Report(report))
    }

    fn queue(&self, item: Item) -> std::io::Result<()> {
        let done: BTreeSet<String> = self
            .shared
            .sinks
            .iter()
            .zip(&self.shared.ids)
            .filter(|(sink, _)| !sink.takes(&item))
            .map(|(_, id)| id.clone())
            .collect();
        let written = lock(&self.shared.queue).push(item, done);
        self.queued.send_replace(());
        written
    }

    pub fn status(&self) -> OutboxStatus {
        let queue = lock(&self.shared.queue);
        let mut sinks = lock(&self.shared.status).clone();
        for (status, id) in sinks.iter_mut().zip(&self.shared.ids) {
            status.pending = queue.pending(id);
        }
        OutboxStatus {
            queued: queue.len(),
            sinks,
        }
    }
}

impl Notifier for Outbox {
    /// Queues the notification and returns: the sink tasks deliver it when
    /// they can. Fails only if the queue file cannot be written, and even
    /// then the notification stays queued in memory.
    fn notify(&self, n: &Notification) -> Result<(), String> {
        self.queue(Item::Notification(n.clone()))
            .map_err(|e| format!("queued, but only in memory: cannot write the queue file: {e}"))
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // A task may be in the middle of updating the queue file on a
        // blocking thread, which no abort reaches; closing the queue under
        // its lock makes sure nothing writes the file after this returns,
        // when a successor may already own it.
        lock(&self.shared.queue).close();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One sink's delivery task: the oldest item the sink does not have yet,
/// until there is none; then it waits for the next.
async fn deliver(
    shared: Arc<Shared>,
    sink: usize,
    mut queued: watch::Receiver<()>,
    mut wan_up: watch::Receiver<()>,
) {
    let tuning = &shared.tuning;
    let name = shared.sinks[sink].name();
    let id = &shared.ids[sink];
    let mut backoff = tuning.first_retry;
    // How often the sink has rejected the notification at the head: (id,
    // count).
    let mut rejected: Option<(u64, u32)> = None;
    loop {
        // This may wait for a `notify` fsyncing its append; notifications
        // are few, so that is rare and short.
        let next = lock(&shared.queue).oldest_pending(id);
        let Some(entry) = next else {
            // A change after the check above is not lost: the receiver
            // sees every version it has not yet seen.
            tokio::select! {
                changed = queued.changed() => if changed.is_err() { return },
                changed = wan_up.changed() => if changed.is_err() { return },
            }
            continue;
        };
        // Queued before this sink was configured to leave out its kind.
        if !shared.sinks[sink].takes(&entry.item) {
            settle(&shared, entry.id, sink).await;
            continue;
        }
        let now = SystemClock.now_ms();
        let error = match shared.sinks[sink].deliver(&entry.item, now).await {
            Ok(()) => {
                match &entry.item {
                    Item::Notification(n) => {
                        let late = lateness(n, now)
                            .map(|l| format!(" ({l})"))
                            .unwrap_or_default();
                        tracing::info!("{name}: delivered {:?}{late}", n.title);
                    }
                    Item::Report(r) => tracing::info!("{name}: delivered outage report {}", r.id),
                }
                settle(&shared, entry.id, sink).await;
                let mut status = lock(&shared.status);
                status[sink].delivered += 1;
                if status[sink].failing.take().is_some() {
                    tracing::info!("{name}: delivering again");
                }
                backoff = tuning.first_retry;
                continue;
            }
            Err(e) => e,
        };
        if error.permanent {
            let count = match rejected {
                Some((head, count)) if head == entry.id => count + 1,
                _ => 1,
            };
            rejected = Some((entry.id, count));
            if count >= tuning.permanent_attempts {
                // The error names the sink.
                tracing::error!(
                    "gave up on the {} after {count} attempts: {error}",
                    entry.item.describe()
                );
                settle(&shared, entry.id, sink).await;
                let mut status = lock(&shared.status);
                status[sink].given_up += 1;
                status[sink].failing = Some(error.message);
                backoff = tuning.first_retry;
                continue;
            }
        }
        {
            // Never the status lock while taking the queue's: `status()`
            // takes them the other way round.
            let pending = lock(&shared.queue).pending(id);
            // During a long outage every retry fails the same way: say it
            // once, not every few minutes.
            let mut status = lock(&shared.status);
            if status[sink].failing.as_ref() != Some(&error.message) {
                tracing::warn!(
                    "{error}; will retry in {} ({pending} queued)",
                    human::duration_ms(backoff.as_millis() as Millis),
                );
            } else {
                tracing::debug!("still failing: {error}");
            }
            status[sink].failing = Some(error.message);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(tuning.max_retry),
            changed = wan_up.changed() => {
                if changed.is_err() {
                    return;
                }
                backoff = tuning.first_retry;
            }
        }
    }
}

/// Records that `sink` is done with item `id`, on a blocking thread:
/// the queue file is fsynced, which on an SD card can take long enough to
/// stall the probes sharing this runtime.
async fn settle(shared: &Arc<Shared>, id: u64, sink: usize) {
    let shared = shared.clone();
    let done =
        tokio::task::spawn_blocking(move || lock(&shared.queue).settle(id, &shared.ids[sink]))
            .await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(
            "cannot update the notification queue file: {e}; after a restart, delivered notifications and reports may be sent again"
        ),
        Err(e) => tracing::error!("the notification queue update failed: {e}"),
    }
}

/// This machine's name, for the webhook document (several houses may send
/// to one webhook), the MQTT client id and the Pushgateway's `instance`.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    // POSIX leaves a truncated name unterminated: take the whole buffer then.
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
