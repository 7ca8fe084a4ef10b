//! What waits to be handed to the MQTT client: filled by the observer on
//! the daemon's event loop (it never waits), emptied by the connection's
//! forwarding task (which waits for the broker).
//!
//! Bounded without losing what matters while the broker is away: a
//! retained value (state, power, stats) keeps only its newest payload per
//! topic, and all of them are sent again after each reconnect; of the
//! rounds only the newest waits; transitions and actions wait in order, up
//! to [`EVENTS`], past which the oldest go.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rumqttc::QoS;
use tokio::sync::Notify;

/// Transitions and actions kept while the broker is away: days of a
/// flapping line.
const EVENTS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
}

impl Message {
    /// Retained, at least once: a value that stands until replaced.
    pub fn retained(topic: String, payload: impl Into<Vec<u8>>) -> Message {
        Message {
            topic,
            payload: payload.into(),
            qos: QoS::AtLeastOnce,
            retain: true,
        }
    }

    /// Not retained, at least once: something that happened.
    pub fn event(topic: String, payload: impl Into<Vec<u8>>) -> Message {
        Message {
            topic,
            payload: payload.into(),
            qos: QoS::AtLeastOnce,
            retain: false,
        }
    }
}

/// One request for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Publish(Message),
    Subscribe(String),
}

#[derive(Default)]
struct Pending {
    /// After a connect: availability, subscriptions, discovery, in order.
    first: VecDeque<Request>,
    /// The newest value of every retained topic, sent or not.
    retained: BTreeMap<String, Message>,
    /// Topics of `retained` not handed over since they changed.
    dirty: BTreeSet<String>,
    events: VecDeque<Message>,
    round: Option<Message>,
    /// Events dropped since the queue last emptied (logged once).
    dropped: u64,
}

#[derive(Default)]
pub struct Queue {
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A retained value: replaces the topic's previous one.
    pub fn retain(&self, message: Message) {
        let mut pending = self.lock();
        pending.dirty.insert(message.topic.clone());
        pending.retained.insert(message.topic.clone(), message);
        drop(pending);
        self.wake.notify_one();
    }

    /// An event: kept in order, the oldest dropped past [`EVENTS`].
    pub fn event(&self, message: Message) {
        let mut pending = self.lock();
        if pending.events.len() == EVENTS {
            pending.events.pop_front();
            pending.dropped += 1;
            if pending.dropped == 1 {
                tracing::warn!(
                    "MQTT: the broker has been away for {EVENTS} transitions and actions: dropping the oldest"
                );
            }
        }
        pending.events.push_back(message);
        drop(pending);
        self.wake.notify_one();
    }

    /// A round: replaces one not yet handed over.
    pub fn round(&self, message: Message) {
        self.lock().round = Some(message);
        self.wake.notify_one();
    }

    /// A new connection: `first` goes before anything else, then every
    /// retained value again (a broker that restarted without persistence
    /// has lost them).
    pub fn connected(&self, first: Vec<Request>) {
        let mut pending = self.lock();
        pending.first = first.into();
        pending.dirty = pending.retained.keys().cloned().collect();
        drop(pending);
        self.wake.notify_one();
    }

    /// The next request, if any: the connect's first, the changed retained
    /// values, the events, the round.
    pub fn next(&self) -> Option<Request> {
        let mut pending = self.lock();
        if let Some(request) = pending.first.pop_front() {
            return Some(request);
        }
        if let Some(topic) = pending.dirty.pop_first() {
            return pending.retained.get(&topic).cloned().map(Request::Publish);
        }
        if let Some(event) = pending.events.pop_front() {
            return Some(Request::Publish(event));
        }
        if let Some(round) = pending.round.take() {
            return Some(Request::Publish(round));
        }
        pending.dropped = 0;
        None
    }

    /// Waits until something was added since the last wait.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(topic: &str, payload: &str) -> Option<Request> {
        let message = if topic.ends_with("state") {
            Message::retained(topic.into(), payload)
        } else {
            Message::event(topic.into(), payload)
        };
        Some(Request::Publish(message))
    }

    #[test]
    fn retained_values_coalesce_and_come_back_after_a_reconnect() {
        let queue = Queue::default();
        queue.retain(Message::retained("w/state".into(), "up"));
        queue.event(Message::event("w/transition".into(), "1"));
        queue.round(Message::event("w/round".into(), "r1"));
        queue.retain(Message::retained("w/state".into(), "down"));
        queue.round(Message::event("w/round".into(), "r2"));
        queue.event(Message::event("w/transition".into(), "2"));
        assert_eq!(queue.next(), publish("w/state", "down"));
        assert_eq!(queue.next(), publish("w/transition", "1"));
        assert_eq!(queue.next(), publish("w/transition", "2"));
        assert_eq!(queue.next(), publish("w/round", "r2"));
        assert_eq!(queue.next(), None);
        queue.connected(vec![Request::Subscribe("w/device/+/cycle".into())]);
        assert_eq!(
            queue.next(),
            Some(Request::Subscribe("w/device/+/cycle".into()))
        );
        assert_eq!(queue.next(), publish("w/state", "down"));
        assert_eq!(queue.next(), None);
    }

    #[test]
    fn events_past_the_bound_drop_the_oldest() {
        let queue = Queue::default();
        for i in 0..=EVENTS {
            queue.event(Message::event("w/action".into(), i.to_string()));
        }
        assert_eq!(queue.next(), publish("w/action", "1"));
    }
}
