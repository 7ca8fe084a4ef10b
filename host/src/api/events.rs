//! `GET /api/v1/events`: Server-Sent Events of what the history records
//! (transitions, mains power changes, actions, plugin health; never
//! rounds) as it happens.
//!
//! Each event's `id:` is its id in the database, so a client that comes
//! back with `Last-Event-ID` gets what it missed, replayed from the
//! database, then the live events, with no gap and no duplicate: the
//! stream subscribes to the live events before it replays, and skips
//! every id it has sent already. A client too slow for the live events
//! (the daemon never waits for it) is resynchronised from the database.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::{broadcast, mpsc, watch};

use super::AppState;
use super::error::ApiError;
use super::history::{read, unavailable};
use crate::history::{Recorder, StoredEvent};

/// Event streams open at once: each holds a connection for as long as
/// its client likes, and the rest of the server's connections stay for
/// requests.
pub const MAX_STREAMS: usize = 32;
/// Comments sent on a quiet stream, so that proxies do not cut it.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events read from the database per query while replaying.
const REPLAY_PAGE: usize = 500;
/// Events waiting for a slow client before the stream stops reading the
/// live ones (and later catches up from the database).
const BUFFERED: usize = 64;

pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let recorder = state.history.clone().ok_or_else(unavailable)?;
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} event streams are open already; try again later"),
        )
    })?;
    let after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID must be an event id (a whole number)")
                })?,
        ),
    };
    // First, so that nothing stored during the replay is missed.
    let live = recorder.subscribe();
    let (sender, mut events) = mpsc::channel(BUFFERED);
    tokio::spawn(async move {
        feed(recorder, live, after, sender, state.stopping.clone()).await;
        drop(permit);
    });
    let stream = futures_util::stream::poll_fn(move |cx| events.poll_recv(cx).map(|e| e.map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Sends the stream's events: the replay after `after`, then the live ones.
/// Ends when the client goes, the server stops or the recorder ends.
async fn feed(
    recorder: Recorder,
    mut live: broadcast::Receiver<Arc<StoredEvent>>,
    after: Option<i64>,
    events: mpsc::Sender<Event>,
    mut stopping: watch::Receiver<bool>,
) {
    // The last id sent; None until one is, when the client gave none.
    let mut sent = after;
    if let Some(after) = after {
        match replay(&recorder, after, &events).await {
            Some(last) => sent = Some(last),
            None => return,
        }
    }
    loop {
        let received = tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => return,
            () = events.closed() => return,
            received = live.recv() => received,
        };
        match received {
            Ok(event) => {
                if sent.is_some_and(|sent| event.id <= sent) {
                    continue;
                }
                if events.send(sse(&event)).await.is_err() {
                    return;
                }
                sent = Some(event.id);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let Some(from) = sent else {
                    // Nothing sent yet and no id to resume from: the
                    // client is told, and reconnects.
                    let _ = events.send(lagged(missed)).await;
                    return;
                };
                match replay(&recorder, from, &events).await {
                    Some(last) => sent = Some(last),
                    None => return,
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends every stored event after `after`; the last id sent (or `after`),
/// or None when the stream must end.
async fn replay(recorder: &Recorder, mut after: i64, events: &mpsc::Sender<Event>) -> Option<i64> {
    loop {
        let page = match read(recorder, move |db| db.events_after(after, REPLAY_PAGE)).await {
            Ok(page) => page,
            Err(e) => {
                let _ = events.send(error_event(&e.message)).await;
                return None;
            }
        };
        for event in &page {
            events.send(sse(event)).await.ok()?;
            after = event.id;
        }
        if page.len() < REPLAY_PAGE {
            return Some(after);
        }
    }
}

fn sse(event: &StoredEvent) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .json_data(event)
        .unwrap_or_else(|e| error_event(&format!("cannot serialize event {}: {e}", event.id)))
}

fn lagged(missed: u64) -> Event {
    error_event(&format!(
        "this stream fell {missed} events behind before its first event and ends; reconnect (with Last-Event-ID to miss nothing)"
    ))
}

/// The `error` event that ends a stream, with why.
fn error_event(message: &str) -> Event {
    Event::default()
        .event("error")
        .data(serde_json::json!({ "error": message }).to_string())
}
