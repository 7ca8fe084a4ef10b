//! Notifications that reach people even when the WAN is down.
//!
//! A watchdog notifies mostly about the WAN being down, which is exactly
//! when a notification cannot leave the house. So [`Outbox`] never sends
//! from the caller: [`Outbox::notify`] appends the notification to an
//! on-disk queue (it survives a restart or a power cut) and returns at once,
//! and one delivery task per sink (an [`ntfy`] server, each
//! [`webhook`]) sends the queue oldest first, retrying with
//! exponential backoff and woken early by [`Outbox::wan_up`]. Each sink
//! keeps its own place in the queue: a webhook that is down neither holds
//! back ntfy nor makes it send anything twice. A notification leaves the
//! queue once every sink has it (or has given up on it, see
//! [`Tuning::permanent_attempts`]); one that arrives late says when it was
//! raised.
//!
//! Delivery is at least once: a crash between a sink's acceptance and the
//! queue's update sends that one notification again after the restart.
//!
//! Secrets (tokens, passwords, webhook headers and URL paths, which often
//! carry a token themselves) are redacted in `Debug`, and never written to
//! logs, errors or the status: not even when a server repeats them in its
//! answer ([`Secrets`]).

pub mod ntfy;
mod queue;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::actions::{Notification, Notifier};
use crate::clock::{Clock, SystemClock};
use crate::http::Timeouts;
use crate::human;
use crate::secrets::Secrets;
use crate::state::Millis;

pub use queue::FILE as QUEUE_FILE;

/// The `[notify]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `[notify.ntfy]`: publish to an ntfy server.
    pub ntfy: Option<NtfyConfig>,
    /// `[[notify.webhook]]`: POST a JSON document to each.
    pub webhook: Vec<WebhookConfig>,
    /// How many undelivered notifications the queue keeps; when it is full
    /// the oldest is dropped.
    #[serde(deserialize_with = "at_least_one")]
    pub queue_max: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            ntfy: None,
            webhook: Vec::new(),
            // A day-long outage with a notification every quarter of an
            // hour, in a file of some 50 KB.
            queue_max: 100,
        }
    }
}

/// Whether any sink is configured; without one the daemon keeps its
/// dry-run notifier, which only logs.
pub fn is_configured(config: &NotifyConfig) -> bool {
    config.ntfy.is_some() || !config.webhook.is_empty()
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom(
            "must be at least 1 (the queue holds the notifications waiting for the WAN)",
        ));
    }
    Ok(n)
}

/// `[notify.ntfy]`, validated: the topic follows ntfy's rules, the URLs
/// parse, and at most one kind of credentials is given.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawNtfyConfig")]
pub struct NtfyConfig {
    /// The server, e.g. `https://ntfy.sh` or a self-hosted one.
    pub server: Url,
    /// 1 to 64 characters of `[-_A-Za-z0-9]`.
    pub topic: String,
    pub auth: Option<NtfyAuth>,
    /// ntfy tags; those that name an emoji are shown as one.
    pub tags: Vec<String>,
    /// Opened when the notification is tapped.
    pub click: Option<String>,
    /// Replaces the priority the plugin gave (1 to 5).
    pub priority: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NtfyAuth {
    /// `Authorization: Bearer <token>` (an ntfy access token).
    Token(Secret),
    /// `Authorization: Basic ...`.
    Basic { username: String, password: Secret },
}

/// The section as written; [`NtfyConfig`] is what it means.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNtfyConfig {
    #[serde(default = "default_server")]
    server: HttpUrl,
    topic: Topic,
    token: Option<Secret>,
    username: Option<String>,
    password: Option<Secret>,
    #[serde(default)]
    tags: Vec<String>,
    click: Option<AnyUrl>,
    priority: Option<Priority>,
}

fn default_server() -> HttpUrl {
    HttpUrl(Url::parse("https://ntfy.sh").expect("a literal URL"))
}

impl TryFrom<RawNtfyConfig> for NtfyConfig {
    type Error = String;

    fn try_from(raw: RawNtfyConfig) -> Result<Self, String> {
        let auth = match (raw.token, raw.username, raw.password) {
            (None, None, None) => None,
            (Some(token), None, None) => Some(NtfyAuth::Token(token)),
            (None, Some(username), Some(password)) => Some(NtfyAuth::Basic { username, password }),
            (Some(_), _, _) => {
                return Err("give either `token` or `username` and `password`, not both".into());
            }
            (None, Some(_), None) => return Err("`username` needs a `password`".into()),
            (None, None, Some(_)) => return Err("`password` needs a `username`".into()),
        };
        Ok(NtfyConfig {
            server: raw.server.0,
            topic: raw.topic.0,
            auth,
            tags: raw.tags,
            click: raw.click.map(|c| c.0.into()),
            priority: raw.priority.map(|p| p.0),
        })
    }
}

/// `[[notify.webhook]]`.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RawWebhookConfig")]
pub struct WebhookConfig {
    pub url: Url,
    /// Sent with every request; values are marked sensitive, so that not
    /// even reqwest's own debug output shows them.
    pub headers: HeaderMap,
}

/// Shows the header names only, and the URL's origin only: webhook URLs
/// often carry their secret in the path.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redacted_url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhookConfig {
    url: HttpUrl,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl TryFrom<RawWebhookConfig> for WebhookConfig {
    type Error = String;

    fn try_from(raw: RawWebhookConfig) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in raw.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: `{name}` is not a valid HTTP header name"))?;
            // The value is not quoted back: it may be a secret.
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                format!("headers: the value of `{name}` is not a valid HTTP header value (printable ASCII only)")
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(WebhookConfig {
            url: raw.url.0,
            headers,
        })
    }
}

/// A password or token: deserialized like a string, never shown.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An ntfy topic: 1 to 64 characters of `[-_A-Za-z0-9]`, as ntfy requires.
struct Topic(String);

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let valid = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not an ntfy topic: use 1 to 64 letters, digits, `-` and `_`"
            )));
        }
        Ok(Topic(s))
    }
}

/// An http(s) URL without credentials in it: credentials have their own
/// keys, so that the URL can be logged.
struct HttpUrl(Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let url = Url::parse(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{s}` is not a URL ({e}); write e.g. \"https://ntfy.example.org\""
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(serde::de::Error::custom(format!(
                "`{s}` is not an http:// or https:// URL"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            // Not quoted back: it holds a password.
            return Err(serde::de::Error::custom(
                "the URL contains credentials; give them as `username`/`password` or `token` (ntfy) or in `headers` (webhook)",
            ));
        }
        Ok(HttpUrl(url))
    }
}

/// Any absolute URL (ntfy's click action also opens `mailto:` or `geo:`).
struct AnyUrl(Url);

impl<'de> Deserialize<'de> for AnyUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Url::parse(&s)
            .map(AnyUrl)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a URL ({e})")))
    }
}

struct Priority(u8);

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = i64::deserialize(d)?;
        match u8::try_from(p) {
            Ok(p @ 1..=5) => Ok(Priority(p)),
            _ => Err(serde::de::Error::custom(format!(
                "is {p}; ntfy priorities go from 1 (min) to 5 (urgent)"
            ))),
        }
    }
}

/// The scheme, host and port of a URL, and `/…` when there is more: what
/// logs may show of a URL whose path may be a secret.
fn redacted_url(url: &Url) -> String {
    let origin = url.origin().ascii_serialization();
    if url.path() == "/" && url.query().is_none() {
        origin
    } else {
        format!("{origin}/…")
    }
}

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
    #[error("no notification sink is configured (add [notify.ntfy] or [[notify.webhook]])")]
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
async fn send(
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

/// A short text body as one line, else the status's reason phrase: a proxy's
/// HTML error page explains nothing in a log line.
fn answer_text(status: reqwest::StatusCode, body: &[u8]) -> String {
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
fn lateness(n: &Notification, delivered_at_ms: Millis) -> Option<String> {
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
enum Sink {
    Ntfy(ntfy::Ntfy),
    Webhook(webhook::Webhook),
}

impl Sink {
    fn name(&self) -> &str {
        match self {
            Sink::Ntfy(s) => s.name(),
            Sink::Webhook(s) => s.name(),
        }
    }

    async fn deliver(
        &self,
        n: &Notification,
        delivered_at_ms: Millis,
    ) -> Result<(), DeliveryError> {
        match self {
            Sink::Ntfy(s) => s.publish(n, delivered_at_ms).await,
            Sink::Webhook(s) => s.post(n, delivered_at_ms).await,
        }
    }
}

/// A sink's name in the queue file: a hash of where it delivers, so that it
/// survives reordering the config, names a changed destination as a new
/// sink, and writes no URL (which may hold a secret) to disk.
fn sink_id(kind: &str, destination: &str) -> String {
    let hash = Sha256::digest(destination.as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}-{hex}")
}

/// What the status file shows of the outbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxStatus {
    /// Notifications not yet delivered to every sink.
    pub queued: usize,
    pub sinks: Vec<SinkStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkStatus {
    /// E.g. `ntfy https://ntfy.sh/…` or `webhook[0] https://host/…`: never
    /// the topic or the hook's path, which are secrets.
    pub name: String,
    /// Notifications this sink has yet to take.
    pub pending: usize,
    /// Delivered since the daemon started.
    pub delivered: u64,
    /// Given up since the daemon started (rejected permanently).
    pub given_up: u64,
    /// Why the last attempt failed, while the sink keeps failing.
    pub failing: Option<String>,
}

/// Queues notifications on disk and delivers them to every configured sink.
pub struct Outbox {
    shared: Arc<Shared>,
    /// Bumped by `notify`: wakes the idle sink tasks.
    queued: watch::Sender<()>,
    /// Bumped by `wan_up`: cuts every backoff short.
    wan_up: watch::Sender<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<queue::Queue>,
    sinks: Vec<Sink>,
    /// The sinks' names in the queue file, in the order of `sinks`.
    ids: Vec<String>,
    status: Mutex<Vec<SinkStatus>>,
    tuning: Tuning,
}

impl Outbox {
    /// Opens (or creates) the queue in `state_dir` and starts one delivery
    /// task per sink on `handle`. What an earlier run left in the queue is
    /// delivered first.
    pub fn new(
        config: &NotifyConfig,
        state_dir: &Path,
        handle: tokio::runtime::Handle,
    ) -> Result<Outbox, NotifyError> {
        Outbox::with_tuning(config, state_dir, handle, Tuning::default())
    }

    pub fn with_tuning(
        config: &NotifyConfig,
        state_dir: &Path,
        handle: tokio::runtime::Handle,
        tuning: Tuning,
    ) -> Result<Outbox, NotifyError> {
        if !is_configured(config) {
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
        let path = state_dir.join(QUEUE_FILE);
        let queue = queue::Queue::open(path.clone(), config.queue_max, ids.clone())
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
        let written = lock(&self.shared.queue).push(n.clone());
        self.queued.send_replace(());
        written.map_err(|e| format!("queued, but only in memory: cannot write the queue file: {e}"))
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

/// One sink's delivery task: the oldest notification the sink does not have
/// yet, until there is none; then it waits for the next.
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
        let n = &entry.notification;
        let now = SystemClock.now_ms();
        let error = match shared.sinks[sink].deliver(n, now).await {
            Ok(()) => {
                let late = lateness(n, now)
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default();
                tracing::info!("{name}: delivered {:?}{late}", n.title);
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
                    "gave up on the notification raised {}, title {:?}, after {count} attempts: {error}",
                    human::timestamp(n.raised_at_ms),
                    n.title,
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

/// Records that `sink` is done with notification `id`, on a blocking thread:
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
            "cannot update the notification queue file: {e}; after a restart, delivered notifications may be sent again"
        ),
        Err(e) => tracing::error!("the notification queue update failed: {e}"),
    }
}

/// This machine's name, for the webhook document: several houses may send
/// to one webhook.
fn hostname() -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        Config::parse(Path::new("wanwatch.toml"), text)
            .map(|c| c.notify)
            .map_err(|errors| crate::config::describe(&errors))
    }

    #[test]
    fn notify_defaults_have_no_sink() {
        let config = parse("").unwrap();
        assert!(!is_configured(&config));
        assert_eq!(config.queue_max, 100);
    }

    #[test]
    fn notify_ntfy_defaults_to_the_public_server() {
        let config = parse("[notify.ntfy]\ntopic = \"wan-home_1\"\n").unwrap();
        let ntfy = config.ntfy.unwrap();
        assert_eq!(ntfy.server.as_str(), "https://ntfy.sh/");
        assert_eq!(ntfy.topic, "wan-home_1");
        assert_eq!(ntfy.auth, None);
    }

    #[test]
    fn notify_secrets_are_redacted() {
        let config = parse(
            "[notify.ntfy]\ntopic = \"t\"\nusername = \"me\"\npassword = \"hunter2\"\n\
             [[notify.webhook]]\nurl = \"https://hooks.example/api/webhooks/123/s3cr3t\"\n\
             headers = { Authorization = \"Bearer tok3n\" }\n",
        )
        .unwrap();
        let debug = format!("{config:?}");
        for secret in ["hunter2", "s3cr3t", "tok3n"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        assert!(debug.contains("https://hooks.example/…"), "{debug}");
        assert!(debug.contains("authorization"), "{debug}");
        assert!(format!("{:?}", Secret::new("x")) == "<redacted>");
    }

    #[test]
    fn notify_bad_topic_is_located() {
        assert_eq!(
            parse("[notify.ntfy]\ntopic = \"wan alerts!\"\n").unwrap_err(),
            "wanwatch.toml:2:9: notify.ntfy.topic: `wan alerts!` is not an ntfy topic: use 1 to 64 letters, digits, `-` and `_`"
        );
        let long = "x".repeat(65);
        assert!(parse(&format!("[notify.ntfy]\ntopic = \"{long}\"\n")).is_err());
    }

    #[test]
    fn notify_conflicting_credentials_are_rejected() {
        let e = parse(
            "[notify.ntfy]\ntopic = \"t\"\ntoken = \"tk\"\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("wanwatch.toml:1:1: notify.ntfy: give either `token`"),
            "{e}"
        );
        let e = parse("[notify.ntfy]\ntopic = \"t\"\nusername = \"u\"\n").unwrap_err();
        assert!(
            e.ends_with("notify.ntfy: `username` needs a `password`"),
            "{e}"
        );
    }

    #[test]
    fn notify_bad_values_name_their_key() {
        let e = parse("[notify.ntfy]\ntopic = \"t\"\npriority = 7\n").unwrap_err();
        assert_eq!(
            e,
            "wanwatch.toml:3:12: notify.ntfy.priority: is 7; ntfy priorities go from 1 (min) to 5 (urgent)"
        );
        let e = parse("[notify.ntfy]\ntopic = \"t\"\nserver = \"ftp://x\"\n").unwrap_err();
        assert!(
            e.contains("notify.ntfy.server: `ftp://x` is not an http:// or https:// URL"),
            "{e}"
        );
        let e = parse("[notify.ntfy]\ntopic = \"t\"\nserver = \"https://u:pw@x\"\n").unwrap_err();
        assert!(
            e.contains("contains credentials") && !e.contains("pw@"),
            "{e}"
        );
        let e = parse("[notify]\nqueue_max = 0\n").unwrap_err();
        assert!(
            e.starts_with("wanwatch.toml:2:13: notify.queue_max: must be at least 1"),
            "{e}"
        );
        let e = parse(
            "[[notify.webhook]]\nurl = \"http://127.0.0.1/\"\nheaders = { \"bad name\" = \"v\" }\n",
        )
        .unwrap_err();
        assert!(
            e.contains("notify.webhook[0]: headers: `bad name` is not a valid HTTP header name"),
            "{e}"
        );
        let e = parse("[notify.ntfy]\ntopic = \"t\"\ntitle = \"x\"\n").unwrap_err();
        assert!(
            e.starts_with("wanwatch.toml:3:1: notify.ntfy.title: unknown field `title`"),
            "{e}"
        );
    }

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
