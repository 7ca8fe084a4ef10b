//! Sending one queued item (a notification or an outage report) to one
//! sink: the HTTP request, what counts as a refusal, and the error that
//! says so without leaking a secret.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::queue::Item;
use super::{ntfy, watcher, webhook};
use crate::actions::Notification;
use crate::http::Timeouts;
use crate::human;
use crate::secrets::Secrets;
use crate::state::Millis;

/// The knobs of delivery. The defaults suit the daemon; tests shorten them.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// The wait after the first failure; it doubles with each failure.
    pub first_retry: Duration,
    /// The longest wait between two attempts.
    pub max_retry: Duration,
    /// Attempts before giving up on a notification that a sink rejects
    /// (a 4xx answer other than 429). Not one: a captive portal or a
    /// half-configured proxy answers nonsense for a while after the WAN
    /// returns. Not unbounded: a wrong token would otherwise stall the
    /// sink forever behind its first notification.
    pub permanent_attempts: u32,
    pub timeouts: Timeouts,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            first_retry: Duration::from_secs(2),
            max_retry: Duration::from_secs(300),
            permanent_attempts: 3,
            // Longer than for LAN devices: these services are across the
            // internet, reached over a link that has just come back.
            timeouts: Timeouts {
                connect: Duration::from_secs(10),
                total: Duration::from_secs(30),
            },
        }
    }
}

/// The HTTP client the sinks share, with `tuning`'s timeouts.
pub fn http_client(tuning: &Tuning) -> Result<reqwest::Client, NotifyError> {
    crate::http::client(tuning.timeouts).map_err(|e| NotifyError::Client(describe(e)))
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "no notification sink is configured (add [notify.ntfy], [[notify.webhook]] or a [[heartbeat]] kind = \"wanwatch\" for reports)"
    )]
    NoSink,
    #[error("cannot open the notification queue {}: {source}", path.display())]
    Queue {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// Why a sink did not take a notification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// The sink rejected this request and would reject it again (a 4xx
    /// answer other than 429): retrying will not help.
    pub permanent: bool,
    pub message: String,
}

impl DeliveryError {
    /// A failure to get any answer: connection refused, DNS, timeout. A
    /// request that could not even be built is a bug here, not a reason to
    /// retry.
    fn transport(to: &str, e: reqwest::Error) -> DeliveryError {
        DeliveryError {
            permanent: e.is_builder(),
            message: format!("{to}: no answer: {}", describe(e)),
        }
    }
}

/// A reqwest error as its deepest cause ("Connection refused" lies several
/// levels below "error sending request"), and without its URL, which may
/// hold a secret.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = &e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if e.is_connect() {
        format!("cannot connect: {cause}")
    } else {
        cause.to_string()
    }
}

/// Sends `request` for the sink `name`: Ok on a 2xx answer; a refusal is
/// handed to `refused`, with its status and the start of its body, to be
/// explained in the sink's own terms. Either error is redacted with the
/// sink's `secrets`: the server's words may repeat what it was sent.
pub(crate) async fn send(
    name: &str,
    secrets: &Secrets,
    request: reqwest::RequestBuilder,
    refused: impl FnOnce(reqwest::StatusCode, &[u8]) -> DeliveryError,
) -> Result<(), DeliveryError> {
    let outcome = match request.send().await {
        Err(e) => Err(DeliveryError::transport(name, e)),
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => {
            let status = response.status();
            Err(refused(status, &read_capped(response).await))
        }
    };
    outcome.map_err(|e| DeliveryError {
        message: secrets.redact(&e.message).into_owned(),
        ..e
    })
}

/// The start of an error answer's body: enough to explain it, never so much
/// that a misbehaving server fills memory or the log.
async fn read_capped(mut response: reqwest::Response) -> Vec<u8> {
    const CAP: usize = 4096;
    let mut body = Vec::new();
    while body.len() < CAP {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(CAP);
    body
}

/// A webhook's or the watcher's refusal: rate limits, timeouts and server
/// errors pass (as with ntfy); any other would be repeated.
pub(super) fn refusal(name: &str, status: reqwest::StatusCode, body: &[u8]) -> DeliveryError {
    let detail = answer_text(status, body);
    let http = status.as_u16();
    DeliveryError {
        permanent: !matches!(http, 408 | 429 | 500..=599),
        message: format!("{name}: HTTP {http}: {detail}"),
    }
}

/// A short text body as one line, else the status's reason phrase: a proxy's
/// HTML error page explains nothing in a log line.
pub(crate) fn answer_text(status: reqwest::StatusCode, body: &[u8]) -> String {
    let reason = status.canonical_reason().unwrap_or("no reason given");
    match std::str::from_utf8(body).map(str::trim) {
        Ok(text) if !text.is_empty() && text.len() <= 200 && !text.starts_with('<') => {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        }
        _ => reason.to_owned(),
    }
}

/// How late a delivery must be before the message says when it was raised.
const LATE_AFTER_MS: Millis = 30_000;

/// "raised 2026-11-24T01:30:12Z, delivered 7m08s late", when it is late.
pub(super) fn lateness(n: &Notification, delivered_at_ms: Millis) -> Option<String> {
    let late = delivered_at_ms.saturating_sub(n.raised_at_ms);
    (late >= LATE_AFTER_MS).then(|| {
        format!(
            "raised {}, delivered {} late",
            human::timestamp(n.raised_at_ms),
            human::duration_ms(late)
        )
    })
}

/// A configured destination.
pub(super) enum Sink {
    Ntfy(ntfy::Ntfy),
    Webhook(webhook::Webhook),
    /// A watcher's reports endpoint: outage reports only.
    Watcher(watcher::Watcher),
}

impl Sink {
    pub(super) fn name(&self) -> &str {
        match self {
            Sink::Ntfy(s) => s.name(),
            Sink::Webhook(s) => s.name(),
            Sink::Watcher(s) => s.name(),
        }
    }

    /// Whether the sink takes this kind of item; for one it does not take,
    /// it is done at once.
    pub(super) fn takes(&self, item: &Item) -> bool {
        match item {
            Item::Notification(_) => !matches!(self, Sink::Watcher(_)),
            Item::Report(_) => self.takes_reports(),
        }
    }

    pub(super) fn takes_reports(&self) -> bool {
        match self {
            Sink::Ntfy(_) => false,
            Sink::Webhook(s) => s.takes_reports(),
            Sink::Watcher(_) => true,
        }
    }

    /// Sends an item the sink [`takes`](Sink::takes).
    pub(super) async fn deliver(
        &self,
        item: &Item,
        delivered_at_ms: Millis,
    ) -> Result<(), DeliveryError> {
        match (self, item) {
            (Sink::Ntfy(s), Item::Notification(n)) => s.publish(n, delivered_at_ms).await,
            (Sink::Webhook(s), item) => s.post(item, delivered_at_ms).await,
            (Sink::Watcher(s), Item::Report(r)) => s.post(r).await,
            // Not taken: the outbox settles these without delivering.
            (Sink::Ntfy(_), Item::Report(_)) | (Sink::Watcher(_), Item::Notification(_)) => Ok(()),
        }
    }
}

/// A sink's name in the queue file: a hash of where it delivers, so that it
/// survives reordering the config, names a changed destination as a new
/// sink, and writes no URL (which may hold a secret) to disk.
pub(super) fn sink_id(kind: &str, destination: &str) -> String {
    let hash = Sha256::digest(destination.as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_lateness_only_when_late() {
        let n = Notification {
            title: "t".into(),
            body: "b".into(),
            priority: 3,
            raised_at_ms: 1_700_000_000_000,
            plugin: "p".into(),
            wan_state: crate::state::WanState::Down,
            wan_since_ms: 1_700_000_000_000,
        };
        assert_eq!(lateness(&n, n.raised_at_ms + 29_999), None);
        assert_eq!(
            lateness(&n, n.raised_at_ms + 428_000).as_deref(),
            Some("raised 2023-11-14T22:13:20Z, delivered 7m08s late")
        );
    }

    #[test]
    fn notify_answer_text_is_short_and_single_line() {
        let status = reqwest::StatusCode::BAD_GATEWAY;
        assert_eq!(
            answer_text(status, b"<html><body>proxy</body></html>"),
            "Bad Gateway"
        );
        assert_eq!(
            answer_text(status, b" upstream\n  down \n"),
            "upstream down"
        );
        assert_eq!(answer_text(status, &[b'x'; 300]), "Bad Gateway");
        assert_eq!(answer_text(status, &[0xff, 0xfe]), "Bad Gateway");
    }
}
