//! Notifications that reach people even when the WAN is down, and outage
//! reports that leave once it is back.
//!
//! A watchdog notifies mostly about the WAN being down, which is exactly
//! when a notification cannot leave the house. So [`Outbox`] never sends
//! from the caller: its
//! [`notify`](crate::actions::Notifier::notify) appends the notification
//! to an on-disk queue (it survives a restart or a power cut) and returns
//! at once, and one delivery task per sink (an [`ntfy`] server, each
//! [`webhook`], each [`watcher`] for outage reports) sends the queue oldest
//! first, retrying with exponential
//! backoff and woken early by [`Outbox::wan_up`]. Each sink keeps its own
//! place in the queue: a webhook that is down neither holds back ntfy nor
//! makes it send anything twice. A notification leaves the queue once
//! every sink has it (or has given up on it, see
//! [`Tuning::permanent_attempts`]); one that arrives late says when it was
//! raised.
//!
//! The queue carries outage reports ([`crate::outage_report`]) beside the
//! notifications: a sink that does not take reports (ntfy, a webhook
//! without `reports = true`) is done with them at once, as a watcher is
//! with notifications.
//!
//! Delivery is at least once: a crash between a sink's acceptance and the
//! queue's update sends that one item again after the restart (a report
//! with the same id, which its receiver stores once).
//!
//! Secrets (tokens, passwords, webhook headers and URL paths, which often
//! carry a token themselves) are redacted in `Debug`, and never written to
//! logs, errors or the status: not even when a server repeats them in its
//! answer ([`Secrets`](crate::secrets::Secrets)).

mod config;
mod delivery;
pub mod ntfy;
mod outbox;
pub(crate) mod queue;
pub mod watcher;
pub mod webhook;

pub(crate) use config::{HttpUrl, redacted_url};
pub use config::{NotifyConfig, NtfyAuth, NtfyConfig, Secret, WebhookConfig, is_configured};
pub use delivery::{DeliveryError, NotifyError, Tuning, http_client};
pub(crate) use delivery::{answer_text, send};
pub(crate) use outbox::hostname;
pub use outbox::{Outbox, OutboxStatus, SinkStatus, is_wanted};
pub use queue::FILE as QUEUE_FILE;
