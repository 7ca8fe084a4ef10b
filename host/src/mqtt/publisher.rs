//! The daemon's events as MQTT messages: an [`Observer`] that turns each
//! one into its messages and queues them, never waiting for the broker.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::queue::{Message, Queue};
use super::summary::Summary;
use super::topics::Topics;
use crate::events::{Observed, Observer};
use crate::state::Millis;
use crate::status::Status;

pub struct Publisher {
    topics: Topics,
    queue: Arc<Queue>,
    stats_every_ms: Millis,
    summary: Mutex<(Summary, Option<Millis>)>,
}

impl Publisher {
    /// Starts from `status` (wall clock), the daemon's as it starts: its
    /// state and power are published as soon as the broker is there, and,
    /// when the link's quality is `judged`, that it is normal (the signal
    /// starts so at every start).
    pub fn new(
        topics: Topics,
        queue: Arc<Queue>,
        stats_every: Duration,
        status: &Status,
        judged: bool,
    ) -> Publisher {
        queue.retain(Message::retained(topics.state(), status.state.name()));
        if let Some(power) = status.power {
            queue.retain(Message::retained(topics.power(), power.name()));
        }
        if judged {
            queue.retain(Message::retained(topics.quality(), quality(false)));
        }
        Publisher {
            summary: Mutex::new((Summary::resume(status, status.updated_at_ms), None)),
            topics,
            queue,
            stats_every_ms: stats_every.as_millis() as Millis,
        }
    }

    /// Publishes the summary when `force`d or when it is due.
    fn stats(&self, now_ms: Millis, force: bool) {
        let mut guard = self.summary.lock().unwrap_or_else(PoisonError::into_inner);
        let (summary, last) = &mut *guard;
        let due = last.is_none_or(|last| now_ms.saturating_sub(last) >= self.stats_every_ms);
        if !(force || due) {
            return;
        }
        *last = Some(now_ms);
        let stats = summary.take(now_ms);
        drop(guard);
        self.queue
            .retain(Message::retained(self.topics.stats(), json(&stats)));
    }
}

fn json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl Observer for Publisher {
    fn observe(&self, event: &Observed) {
        match event {
            Observed::Round(round) => {
                self.queue
                    .round(Message::event(self.topics.round(), json(round)));
                self.summary
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
                    .round(round);
                self.stats(round.at_ms, false);
            }
            Observed::Wan(event) => {
                let t = &event.transition;
                self.queue
                    .retain(Message::retained(self.topics.state(), t.current.name()));
                self.queue
                    .event(Message::event(self.topics.transition(), json(event)));
                self.summary
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
                    .transition(t);
                // Outages today and the last one's length changed.
                self.stats(t.at_ms, true);
            }
            Observed::Power(t) => self
                .queue
                .retain(Message::retained(self.topics.power(), t.current.name())),
            Observed::Action(record) => self
                .queue
                .event(Message::event(self.topics.action(), json(record))),
            Observed::Quality(change) => self.queue.retain(Message::retained(
                self.topics.quality(),
                quality(change.degraded),
            )),
            Observed::Plugin(_) => {}
        }
    }
}

fn quality(degraded: bool) -> &'static str {
    if degraded { "degraded" } else { "normal" }
}
