//! Shelly smart plugs and relays, every generation, over their local HTTP
//! API.
//!
//! Facts from the Shelly API documentation
//! (<https://shelly-api-docs.shelly.cloud>) this driver relies on:
//!
//! - `GET /shelly` answers without authentication on every generation. Gen1
//!   answers carry no `gen` key; Gen2 and later answer `"gen": 2|3|4` and
//!   speak the RPC API. Later generations kept that API, so any `gen` of 2 or
//!   more is driven as RPC.
//! - Gen1 relays: `GET /relay/<n>?turn=off&timer=<s>` switches off and arms
//!   the relay's own flip-back timer, in one request; the answer and
//!   `GET /relay/<n>` are the relay object (`ison`, `has_timer`,
//!   `timer_remaining`, ...). The power-on setting is
//!   `settings.relays[n].default_state` (`off`, `on`, `last`, `switch`).
//!   Login is HTTP Basic; with it enabled every endpoint but `/shelly`
//!   answers 401.
//! - Gen2+ switches: `Switch.Set {id, on: false, toggle_after: <s>}` does the
//!   same through `POST /rpc` JSON-RPC frames, answered by a frame holding
//!   `result` or `error {code, message}`. `Switch.GetStatus` shows `output`
//!   and, while a flip-back timer runs, `timer_started_at` and
//!   `timer_duration`; `Switch.GetConfig` holds `initial_state` (`off`, `on`,
//!   `restore_last`, `match_input`). An unknown id is error -105.
//!   Authentication is HTTP Digest with SHA-256 (RFC 7616, see
//!   [`super::digest`]), user `admin`, realm = the device id; over HTTP each
//!   request gets its own 401 challenge.
//!
//! The cycle is one request that makes the plug switch itself back on, so
//! the modem comes back even if this daemon, its host or the LAN dies in the
//! middle. Everything else here is about making that request safely: reading
//! the relay first (never a second "off" while a timer runs), retrying only
//! transport errors and only before the plug has confirmed, reading the
//! relay back to verify, and confirming it is on again afterwards.
//!
//! Passwords never appear in errors or logs: requests carry them only in
//! headers marked sensitive, the address is shown without credentials
//! (which the config refuses there anyway), and whatever text of the
//! plug's answers is shown is redacted with [`Secrets`].

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::digest::{self, Challenge};
use crate::config::DeviceConfig;
use crate::http::{self, Timeouts};
use crate::secrets::Secrets;

/// The user name Shelly devices use when none is configured; the only one
/// Gen2+ devices know.
const DEFAULT_USER: &str = "admin";

/// How long after the end of the off period the plug is checked: its timer
/// fires on time, and this leaves room for its clock and the LAN.
pub const BACK_ON_MARGIN: Duration = Duration::from_secs(2);

/// Device answers longer than this are not a Shelly's (the largest, Gen1
/// `/settings`, is a few KiB); reading stops there.
const MAX_ANSWER: usize = 256 * 1024;

/// Timer values beyond this are treated as this, so that no arithmetic on
/// instants can overflow whatever a device reports.
const MAX_TIMER: Duration = Duration::from_secs(7 * 24 * 3600);

/// One Shelly device, as configured under `[devices.<name>]`.
pub struct Shelly {
    name: String,
    /// As configured but without credentials, for messages.
    address: String,
    relay: u32,
    username: String,
    password: Option<String>,
    /// The password's forms, to redact from the plug's answers.
    secrets: Secrets,
    /// The base URL, or why the address is unusable.
    base: Result<Url, String>,
    /// A client with `timeouts`, or why none could be built.
    client: Result<reqwest::Client, String>,
    timeouts: Timeouts,
    retries: u32,
    first_backoff: Duration,
}

/// How the plug answers, from `GET /shelly`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// 1 for the original API, 2 or more for the RPC API.
    pub generation: u32,
    /// The model code, e.g. `SHPLG-S` or `SNPL-00112EU` (None: the plug
    /// does not say).
    pub model: Option<String>,
    /// The firmware version (None: the plug does not say).
    pub firmware: Option<String>,
    /// Whether the plug has login enabled.
    pub auth: bool,
    /// Gen1: how many relays the plug has.
    pub outputs: Option<u32>,
}

impl Identity {
    fn rpc(&self) -> bool {
        self.generation >= 2
    }
}

/// The relay's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayState {
    pub output: bool,
    /// The flip-back timer, while one runs.
    pub timer: Option<Timer>,
}

/// A running flip-back timer. Devices and emulators do not always report
/// its times: None is "the plug does not say", never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub remaining: Option<Duration>,
    pub duration: Option<Duration>,
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.remaining {
            Some(left) => write!(f, "flips back in ~{} s", left.as_secs_f64().ceil())?,
            None => f.write_str("flips back in an unknown time")?,
        }
        if let Some(duration) = self.duration {
            write!(f, " (of {} s)", duration.as_secs_f64().round())?;
        }
        Ok(())
    }
}

/// What a plug shows for a value it does not report.
pub fn or_unknown(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("unknown")
}

/// What the relay does when mains power comes back, as the plug words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerOn {
    /// `default_state` (Gen1) or `initial_state` (Gen2+).
    pub key: &'static str,
    /// None when the plug's answer does not hold the key.
    pub value: Option<String>,
}

impl PowerOn {
    /// Why the setting would leave the modem without power after a mains
    /// failure during the off window, if it would.
    pub fn danger(&self) -> Option<&'static str> {
        let Some(value) = &self.value else {
            // Not known to be safe: worth checking by hand.
            return Some("may come back off: its power-on setting is unknown");
        };
        match value.as_str() {
            "on" => None,
            "off" => Some("comes back off"),
            "last" | "restore_last" => {
                Some("restores its last state, which is off during a power cycle")
            }
            "switch" | "match_input" => {
                Some("follows its input switch, whatever that is at the time")
            }
            _ => Some("has a power-on setting this driver does not know"),
        }
    }

    /// `initial_state = "on"`, or that the plug's answer lacks the key.
    fn setting(&self) -> String {
        match &self.value {
            Some(value) => format!("{} = \"{value}\"", self.key),
            None => format!("no `{}` in the plug's answer", self.key),
        }
    }
}

impl fmt::Display for PowerOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", or_unknown(&self.value), self.setting())
    }
}

/// Everything `wanwatch plug status` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlugStatus {
    pub identity: Identity,
    pub relay: u32,
    pub state: RelayState,
    pub power_on: PowerOn,
}

impl PlugStatus {
    /// The warning to give when a mains failure during a power cycle would
    /// leave the modem dark.
    pub fn power_on_warning(&self) -> Option<String> {
        self.power_on.danger().map(|why| {
            format!(
                "after a mains power failure its relay {why} ({}): \
                 if mains fails while the modem is power-cycled, the modem stays dark until someone \
                 switches the plug on; set the plug's power-on default to \"on\" in its web interface or app",
                self.power_on.setting()
            )
        })
    }
}

/// A power cycle the plug has accepted and confirmed under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleStarted {
    /// When the plug's timer will switch it back on, from the read-back;
    /// the off time asked for when the plug does not say.
    pub back_on_in: Duration,
    /// The off time asked for.
    pub off: Duration,
}

/// How the plug came back on after a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackOn {
    /// By its own timer, as intended.
    ByItself,
    /// Its timer was gone and the relay still off, so the driver switched it
    /// on.
    SwitchedOn,
}

/// A failure, naming the device: `plug `modem` (192.168.1.50): ...`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("plug `{device}` ({address}): {kind}")]
pub struct ShellyError {
    pub device: String,
    pub address: String,
    pub kind: ErrorKind,
}

/// What went wrong, for a person; see [`ShellyError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    #[error("the address is not usable: {0}")]
    BadAddress(String),
    #[error(
        "the plug has login enabled and no password is configured (HTTP 401): set `password` in its [devices] section"
    )]
    NoPassword,
    #[error("wrong username or password (HTTP 401){0}")]
    WrongPassword(&'static str),
    #[error("asks for authentication that cannot be answered: {0}")]
    Authentication(String),
    #[error("unreachable ({0})")]
    Unreachable(String),
    #[error("the connection broke before the answer ({0})")]
    ConnectionLost(String),
    #[error("no answer within {}{}", human(*.0), .1)]
    Timeout(Duration, &'static str),
    #[error("the answer was cut off ({0})")]
    CutOff(String),
    #[error("relay {relay} does not exist ({})", relays(*.outputs))]
    NoSuchRelay { relay: u32, outputs: Option<u32> },
    #[error("switch id {id} does not exist (Gen{generation} error {code}: {message})")]
    NoSuchSwitch {
        id: u32,
        generation: u32,
        code: i64,
        message: String,
    },
    #[error("answered something that is not the expected JSON ({0}): {1}")]
    NotExpectedJson(String, String),
    #[error("answered HTTP {status} to {request}: {excerpt}")]
    Http {
        status: u16,
        request: String,
        excerpt: String,
    },
    #[error("refused {method} (Gen{generation} error {code}: {message})")]
    Rpc {
        method: &'static str,
        generation: u32,
        code: i64,
        message: String,
    },
    #[error("refusing an off time of 0 s, which would switch the plug off for good")]
    ZeroOff,
    #[error("a power cycle is already under way on the plug ({})", back_on(*.0))]
    AlreadyUnderWay(Option<Duration>),
    #[error("the power cycle is not under way: {0}")]
    NotUnderWay(String),
    #[error("the relay was already off before the power cycle, so the modem had no power; {0}")]
    WasOff(String),
    #[error("the plug accepted the power cycle, but reading its relay back failed: {0}")]
    Unverified(Box<ErrorKind>, CycleStarted),
    #[error("the plug is still off after its off period, with its timer still running")]
    StillOff,
}

impl ErrorKind {
    /// Transport errors worth another try: the request certainly or probably
    /// did not reach the plug, or its answer was lost. Timeouts are not: a
    /// plug that did not answer within the total timeout will not do better
    /// at once, and the caller has waited long enough.
    fn transient(&self) -> bool {
        matches!(
            self,
            ErrorKind::Unreachable(_) | ErrorKind::ConnectionLost(_) | ErrorKind::CutOff(_)
        )
    }
}

fn back_on(remaining: Option<Duration>) -> String {
    match remaining {
        Some(left) => format!("back on in ~{} s", left.as_secs_f64().ceil()),
        None => "the plug does not say when it is back on".into(),
    }
}

fn relays(outputs: Option<u32>) -> String {
    match outputs {
        None => "the plug does not say how many it has".into(),
        Some(0) => "the plug has no relays".into(),
        Some(n) => {
            let list: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            format!("the plug has relays {}", list.join(", "))
        }
    }
}

/// "10 s", "1.5 s", "300 ms".
fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

/// A device answer, read to its end.
struct Answer {
    status: u16,
    challenges: Vec<String>,
    body: Vec<u8>,
}

impl Shelly {
    pub fn new(name: &str, config: &DeviceConfig) -> Shelly {
        let timeouts = Timeouts::default();
        let username = config.username.as_deref().unwrap_or(DEFAULT_USER);
        Shelly {
            name: name.to_owned(),
            address: http::without_credentials(&config.address).into_owned(),
            relay: config.relay,
            username: username.to_owned(),
            password: config.password.clone().filter(|p| !p.is_empty()),
            secrets: Secrets::of_device(config, username),
            base: http::base_url(&config.address).map_err(|e| e.to_string()),
            client: client(timeouts),
            timeouts,
            retries: 3,
            first_backoff: Duration::from_millis(500),
        }
    }

    /// Replaces the connect and total timeouts (3 s and 10 s by default);
    /// each applies to every HTTP request.
    pub fn with_timeouts(mut self, connect: Duration, total: Duration) -> Shelly {
        self.timeouts = Timeouts { connect, total };
        self.client = client(self.timeouts);
        self
    }

    /// Replaces how many times a transport error is retried (3 by default)
    /// and the first wait (0.5 s, doubling).
    pub fn with_retries(mut self, retries: u32, first_backoff: Duration) -> Shelly {
        self.retries = retries;
        self.first_backoff = first_backoff;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn error(&self, kind: ErrorKind) -> ShellyError {
        ShellyError {
            device: self.name.clone(),
            address: self.address.clone(),
            kind,
        }
    }

    /// Identity, relay state and power-on setting.
    pub async fn status(&self) -> Result<PlugStatus, ShellyError> {
        self.status_inner().await.map_err(|k| self.error(k))
    }

    async fn status_inner(&self) -> Result<PlugStatus, ErrorKind> {
        let identity = self.retrying(|| self.identify()).await?;
        let state = self.retrying(|| self.read_state(&identity)).await?;
        let power_on = self.retrying(|| self.read_power_on(&identity)).await?;
        Ok(PlugStatus {
            identity,
            relay: self.relay,
            state,
            power_on,
        })
    }

    /// Switches the relay off with its flip-back timer set to `off_seconds`,
    /// in one request, and verifies by reading the relay back that the cycle
    /// is under way. Refuses when a timer already runs with the relay off;
    /// a relay found off without one is switched on instead
    /// ([`ErrorKind::WasOff`]).
    pub async fn power_cycle(&self, off_seconds: u32) -> Result<CycleStarted, ShellyError> {
        self.power_cycle_inner(off_seconds)
            .await
            .map_err(|k| self.error(k))
    }

    async fn power_cycle_inner(&self, off_seconds: u32) -> Result<CycleStarted, ErrorKind> {
        if off_seconds == 0 {
            return Err(ErrorKind::ZeroOff);
        }
        let off = Duration::from_secs(off_seconds.into());
        let identity = self.retrying(|| self.identify()).await?;
        match self.retrying(|| self.read_state(&identity)).await? {
            RelayState {
                output: false,
                timer: Some(timer),
            } => return Err(ErrorKind::AlreadyUnderWay(timer.remaining)),
            // The modem has been without power for who knows how long: it
            // has had its "off", and switching it on is what reboots it.
            // Another off period would only keep it dark longer (and some
            // plugs arm no timer for an "off" that changes nothing). Not
            // reported as a cycle, because the one asked for did not take
            // place: the journal says why, and a policy rechecks after the
            // modem's boot time as after any failed attempt.
            RelayState {
                output: false,
                timer: None,
            } => {
                tracing::warn!(device = %self.name, "plug `{}`: relay {} was already off before the power cycle; switching it on", self.name, self.relay);
                let outcome = self
                    .switch_on(&identity, "it was switched on instead")
                    .await;
                return Err(ErrorKind::WasOff(outcome));
            }
            RelayState { output: true, .. } => {}
        }

        // Retry transport errors, but only until the plug has confirmed: the
        // lost request may have reached it, so look before sending another.
        let mut backoff = self.first_backoff;
        let mut attempt = 0;
        loop {
            match self.send_off(&identity, off_seconds).await {
                Ok(()) => break,
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!(device = %self.name, "plug `{}`: {e}; retrying in {}", self.name, human(backoff));
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    if let Ok(RelayState {
                        output: false,
                        timer: Some(_),
                    }) = self.read_state(&identity).await
                    {
                        tracing::info!(device = %self.name, "plug `{}`: the lost request did reach the plug", self.name);
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let confirmed_at = Instant::now();

        let after = match self.retrying(|| self.read_state(&identity)).await {
            Ok(state) => state,
            Err(e) => {
                return Err(ErrorKind::Unverified(
                    Box::new(e),
                    CycleStarted {
                        back_on_in: off,
                        off,
                    },
                ));
            }
        };
        match after {
            RelayState {
                output: false,
                timer: Some(timer),
            } => Ok(CycleStarted {
                // The timer was set to `off` a moment ago: waiting that long
                // errs on the late side, never declares the cycle failed early.
                back_on_in: timer.remaining.unwrap_or(off),
                off,
            }),
            // A read-back slower than the off period finds the cycle over.
            RelayState { output: true, .. } if confirmed_at.elapsed() >= off => Ok(CycleStarted {
                back_on_in: Duration::ZERO,
                off,
            }),
            RelayState { output: true, .. } => Err(ErrorKind::NotUnderWay(
                "the plug accepted the command but its relay is still on".into(),
            )),
            RelayState {
                output: false,
                timer: None,
            } => {
                // Off with no timer would leave the modem dark for good.
                let outcome = self
                    .switch_on(&identity, "it was switched back on at once")
                    .await;
                Err(ErrorKind::NotUnderWay(format!(
                    "the plug switched off but started no flip-back timer; {outcome}"
                )))
            }
        }
    }

    /// Switches a relay found off without a timer on, so that the modem does
    /// not stay dark; says how that went, `done` when it worked.
    async fn switch_on(&self, identity: &Identity, done: &str) -> String {
        match self.retrying(|| self.send_on(identity)).await {
            Ok(()) => done.to_owned(),
            Err(e) => format!("switching it on failed ({e}): THE MODEM HAS NO POWER"),
        }
    }

    /// Waits until the cycle's off period is over, then confirms the relay is
    /// on again. Should the plug have lost its timer (it rebooted, say) and
    /// be still off, switches it on: the modem must not stay dark.
    pub async fn await_back_on(&self, started: &CycleStarted) -> Result<BackOn, ShellyError> {
        tokio::time::sleep(started.back_on_in + BACK_ON_MARGIN).await;
        self.confirm_back_on(started, true)
            .await
            .map_err(|k| self.error(k))
    }

    async fn confirm_back_on(
        &self,
        started: &CycleStarted,
        may_wait: bool,
    ) -> Result<BackOn, ErrorKind> {
        let identity = self.retrying(|| self.identify()).await?;
        match self.retrying(|| self.read_state(&identity)).await? {
            RelayState { output: true, .. } => Ok(BackOn::ByItself),
            RelayState {
                output: false,
                timer: Some(timer),
            } if may_wait => {
                // The plug's clock runs behind ours: give it its time, once
                // (the whole off time when it does not say how much is left).
                let left = timer.remaining.unwrap_or(started.off);
                tokio::time::sleep(left + BACK_ON_MARGIN).await;
                Box::pin(self.confirm_back_on(started, false)).await
            }
            RelayState { timer: Some(_), .. } => Err(ErrorKind::StillOff),
            RelayState { timer: None, .. } => {
                self.retrying(|| self.send_on(&identity)).await?;
                Ok(BackOn::SwitchedOn)
            }
        }
    }

    /// Runs `op`, retrying transient errors with a doubling backoff.
    async fn retrying<T, F: Future<Output = Result<T, ErrorKind>>>(
        &self,
        mut op: impl FnMut() -> F,
    ) -> Result<T, ErrorKind> {
        let mut backoff = self.first_backoff;
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    tracing::debug!(device = %self.name, "plug `{}`: {e}; retrying in {}", self.name, human(backoff));
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                result => return result,
            }
        }
    }

    /// `GET /shelly`: the generation, and how to talk to the plug.
    async fn identify(&self) -> Result<Identity, ErrorKind> {
        let answer = self
            .exchange(Method::GET, "/shelly", None, Auth::None)
            .await?;
        let value: Value = self.json(&answer, "/shelly")?;
        let identity = parse_identity(value).map_err(|why| self.not_expected(why, &answer.body))?;
        let scrub = |text: Option<String>| text.map(|t| self.scrub(&t));
        Ok(Identity {
            model: scrub(identity.model),
            firmware: scrub(identity.firmware),
            ..identity
        })
    }

    async fn read_state(&self, identity: &Identity) -> Result<RelayState, ErrorKind> {
        if identity.rpc() {
            let status: SwitchStatus = self
                .rpc(identity, "Switch.GetStatus", json!({ "id": self.relay }))
                .await?;
            Ok(status.into())
        } else {
            self.check_relay(identity)?;
            let relay = self
                .gen1_relay(&format!("/relay/{}", self.relay), identity)
                .await?;
            Ok(relay)
        }
    }

    async fn send_off(&self, identity: &Identity, off_seconds: u32) -> Result<(), ErrorKind> {
        if identity.rpc() {
            let params = json!({ "id": self.relay, "on": false, "toggle_after": off_seconds });
            let _: Value = self.rpc(identity, "Switch.Set", params).await?;
        } else {
            self.check_relay(identity)?;
            let target = format!("/relay/{}?turn=off&timer={off_seconds}", self.relay);
            self.gen1_relay(&target, identity).await?;
        }
        tracing::info!(device = %self.name, "plug `{}`: switched off for {off_seconds} s", self.name);
        Ok(())
    }

    async fn send_on(&self, identity: &Identity) -> Result<(), ErrorKind> {
        if identity.rpc() {
            let _: Value = self
                .rpc(
                    identity,
                    "Switch.Set",
                    json!({ "id": self.relay, "on": true }),
                )
                .await?;
        } else {
            self.gen1_relay(&format!("/relay/{}?turn=on", self.relay), identity)
                .await?;
        }
        tracing::warn!(device = %self.name, "plug `{}`: switched on by wanwatch", self.name);
        Ok(())
    }

    async fn read_power_on(&self, identity: &Identity) -> Result<PowerOn, ErrorKind> {
        if identity.rpc() {
            let config: SwitchConfig = self
                .rpc(identity, "Switch.GetConfig", json!({ "id": self.relay }))
                .await?;
            Ok(PowerOn {
                key: "initial_state",
                value: config.initial_state.map(|v| self.scrub(&v)),
            })
        } else {
            const KEY: &str = "default_state";
            let answer = self
                .exchange(Method::GET, "/settings", None, Auth::Basic)
                .await?;
            let settings: Gen1Settings =
                self.typed(self.json(&answer, "/settings")?, &answer.body)?;
            // Without a list there is nothing to check the relay against:
            // `/relay/<n>` does that.
            let Some(relays) = settings.relays else {
                return Ok(PowerOn {
                    key: KEY,
                    value: None,
                });
            };
            let outputs = u32::try_from(relays.len()).ok();
            let relay = usize::try_from(self.relay)
                .ok()
                .and_then(|i| relays.into_iter().nth(i));
            let relay = relay.ok_or(ErrorKind::NoSuchRelay {
                relay: self.relay,
                outputs,
            })?;
            Ok(PowerOn {
                key: KEY,
                value: relay.default_state.map(|v| self.scrub(&v)),
            })
        }
    }

    /// Gen1: fails early for a relay number the plug said it does not have.
    fn check_relay(&self, identity: &Identity) -> Result<(), ErrorKind> {
        match identity.outputs {
            Some(n) if self.relay >= n => Err(ErrorKind::NoSuchRelay {
                relay: self.relay,
                outputs: identity.outputs,
            }),
            _ => Ok(()),
        }
    }

    /// Gen1: a `/relay/<n>` request, whose answer is the relay object.
    async fn gen1_relay(&self, target: &str, identity: &Identity) -> Result<RelayState, ErrorKind> {
        let answer = self
            .exchange(Method::GET, target, None, Auth::Basic)
            .await?;
        if answer.status == 404 {
            return Err(ErrorKind::NoSuchRelay {
                relay: self.relay,
                outputs: identity.outputs,
            });
        }
        let relay: Gen1Relay = self.typed(self.json(&answer, target)?, &answer.body)?;
        Ok(relay.into())
    }

    /// Gen2+: one JSON-RPC call over `POST /rpc`.
    async fn rpc<T: DeserializeOwned>(
        &self,
        identity: &Identity,
        method: &'static str,
        params: Value,
    ) -> Result<T, ErrorKind> {
        // `src` names the caller; the Shelly docs list it as required.
        let frame = json!({ "id": 1, "src": "wanwatch", "method": method, "params": params });
        let body = frame.to_string().into_bytes();
        let answer = self
            .exchange(Method::POST, "/rpc", Some(body), Auth::Digest)
            .await?;
        let request = format!("{method} (POST /rpc)");
        // Errors come as a frame with `error`, or as a non-200 answer whose
        // body is `{code, message}`; anything else non-200 is plain HTTP.
        let value: Value = match serde_json::from_slice(&answer.body) {
            Ok(value) => value,
            Err(_) if answer.status != 200 => return Err(self.http_error(&answer, &request)),
            Err(e) => return Err(self.not_expected(e.to_string(), &answer.body)),
        };
        let error = value
            .get("error")
            .or_else(|| (answer.status != 200).then_some(&value));
        if let Some(error) = error {
            let code = error.get("code").and_then(Value::as_i64);
            let message = error.get("message").and_then(Value::as_str);
            let (Some(code), Some(message)) = (code, message) else {
                return Err(if answer.status != 200 {
                    self.http_error(&answer, &request)
                } else {
                    self.not_expected("an `error` without code and message".into(), &answer.body)
                });
            };
            let message = self.scrub(message);
            return Err(match code {
                // RFC 7616 challenge inside the frame, as over WebSocket.
                401 if self.password.is_none() => ErrorKind::NoPassword,
                401 => ErrorKind::WrongPassword(self.user_hint()),
                -105 if method.starts_with("Switch.") => ErrorKind::NoSuchSwitch {
                    id: self.relay,
                    generation: identity.generation,
                    code,
                    message,
                },
                _ => ErrorKind::Rpc {
                    method,
                    generation: identity.generation,
                    code,
                    message,
                },
            });
        }
        match value.get("result") {
            Some(result) => self.typed(result.clone(), &answer.body),
            None => {
                Err(self.not_expected("a frame without `result` or `error`".into(), &answer.body))
            }
        }
    }

    /// One request, authenticated as `auth` says, read to the end.
    async fn exchange(
        &self,
        method: Method,
        target: &str,
        body: Option<Vec<u8>>,
        auth: Auth,
    ) -> Result<Answer, ErrorKind> {
        let base = self
            .base
            .as_ref()
            .map_err(|e| ErrorKind::BadAddress(e.clone()))?;
        let client = self
            .client
            .as_ref()
            .map_err(|e| ErrorKind::BadAddress(e.clone()))?;
        let url = Url::parse(&format!("{}{target}", base.as_str().trim_end_matches('/')))
            .map_err(|e| ErrorKind::BadAddress(e.to_string()))?;
        let request = |authorization: Option<HeaderValue>| {
            let mut request = client.request(method.clone(), url.clone());
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            match (auth, &self.password) {
                (Auth::Basic, Some(password)) => request.basic_auth(&self.username, Some(password)),
                _ => match authorization {
                    Some(value) => request.header(AUTHORIZATION, value),
                    None => request,
                },
            }
        };
        let answer = self.read(request(None), &method, target).await?;
        if answer.status != 401 || auth == Auth::None {
            return Ok(answer);
        }
        let Some(password) = &self.password else {
            return Err(ErrorKind::NoPassword);
        };
        if auth == Auth::Basic {
            return Err(ErrorKind::WrongPassword(""));
        }
        // RFC 7616 §3.3: answer the server's challenge with the same request.
        let challenge = pick_challenge(&answer.challenges)
            .map_err(|e| ErrorKind::Authentication(self.scrub(&e)))?;
        let uri = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let header = challenge.authorization(
            &self.username,
            password,
            method.as_str(),
            &uri,
            &digest::cnonce(),
        );
        let mut value = HeaderValue::from_str(&header).map_err(|_| {
            ErrorKind::Authentication("the challenge holds characters a header cannot carry".into())
        })?;
        value.set_sensitive(true);
        let answer = self.read(request(Some(value)), &method, target).await?;
        if answer.status == 401 {
            return Err(ErrorKind::WrongPassword(self.user_hint()));
        }
        Ok(answer)
    }

    /// Sends a request and reads the whole answer, classifying failures.
    async fn read(
        &self,
        request: reqwest::RequestBuilder,
        method: &Method,
        target: &str,
    ) -> Result<Answer, ErrorKind> {
        let mut response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        tracing::debug!(device = %self.name, "{method} {target} → {status}");
        let challenges = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(ErrorKind::NotExpectedJson(
                    format!("an answer longer than {} KiB", MAX_ANSWER / 1024),
                    self.excerpt(&body),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            challenges,
            body,
        })
    }

    /// What a transport failure means for a person.
    fn transport(&self, e: &reqwest::Error) -> ErrorKind {
        if e.is_timeout() {
            return if e.is_connect() {
                ErrorKind::Timeout(
                    self.timeouts.connect.min(self.timeouts.total),
                    " (connecting)",
                )
            } else {
                ErrorKind::Timeout(self.timeouts.total, "")
            };
        }
        let cause = root_cause(e);
        if e.is_connect() {
            ErrorKind::Unreachable(cause)
        } else if e.is_body() || e.is_decode() {
            ErrorKind::CutOff(cause)
        } else {
            ErrorKind::ConnectionLost(cause)
        }
    }

    /// The answer as JSON, after the status checks every request shares.
    fn json(&self, answer: &Answer, request: &str) -> Result<Value, ErrorKind> {
        if answer.status != 200 {
            return Err(self.http_error(answer, request));
        }
        serde_json::from_slice(&answer.body)
            .map_err(|e| self.not_expected(e.to_string(), &answer.body))
    }

    fn typed<T: DeserializeOwned>(&self, value: Value, body: &[u8]) -> Result<T, ErrorKind> {
        serde_json::from_value(value).map_err(|e| self.not_expected(e.to_string(), body))
    }

    fn http_error(&self, answer: &Answer, request: &str) -> ErrorKind {
        ErrorKind::Http {
            status: answer.status,
            request: request.to_owned(),
            excerpt: self.excerpt(&answer.body),
        }
    }

    fn not_expected(&self, why: String, body: &[u8]) -> ErrorKind {
        ErrorKind::NotExpectedJson(self.scrub(&why), self.excerpt(body))
    }

    /// The start of an answer, on one line, for an error message.
    fn excerpt(&self, body: &[u8]) -> String {
        const LEN: usize = 80;
        let text = String::from_utf8_lossy(body);
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.is_empty() {
            return "(an empty answer)".into();
        }
        let mut excerpt: String = one_line.chars().take(LEN).collect();
        if one_line.chars().count() > LEN {
            excerpt.push('…');
        }
        self.scrub(&excerpt)
    }

    /// Text that came from the plug, without the secrets it was sent.
    fn scrub(&self, text: &str) -> String {
        self.secrets.redact(text).into_owned()
    }

    fn user_hint(&self) -> &'static str {
        if self.username == DEFAULT_USER {
            ""
        } else {
            "; Gen2 and later plugs only know the user `admin`"
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    /// `/shelly` is open on every generation.
    None,
    /// Gen1: HTTP Basic, sent with the request when a password is configured.
    Basic,
    /// Gen2+: HTTP Digest, in answer to the plug's 401 challenge.
    Digest,
}

/// A client for a plug, with `timeouts`.
fn client(timeouts: Timeouts) -> Result<reqwest::Client, String> {
    // A proxy from the environment cannot reach a LAN device, and would see
    // the credentials.
    http::builder(timeouts)
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {}", root_cause(&e)))
}

/// Picks the Digest challenge among the `WWW-Authenticate` headers.
fn pick_challenge(headers: &[String]) -> Result<Challenge, String> {
    let mut why = "the plug answered 401 without a challenge".to_owned();
    for header in headers {
        match Challenge::parse(header) {
            Ok(challenge) => return Ok(challenge),
            Err(e) => why = format!("the plug {e}"),
        }
    }
    Err(why)
}

/// The innermost cause of an error: the useful part ("Connection refused"),
/// without the URL and wrappers around it.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as Io;
        let plain = match io.kind() {
            Io::ConnectionRefused => Some("connection refused"),
            Io::ConnectionReset => Some("connection reset"),
            Io::HostUnreachable => Some("no route to host"),
            Io::NetworkUnreachable => Some("network unreachable"),
            Io::UnexpectedEof => Some("the connection closed early"),
            _ => None,
        };
        if let Some(plain) = plain {
            return plain.into();
        }
    }
    cause.to_string()
}

// Device answers. Only what the driver acts on is required: what is only
// shown is optional, as emulators and other firmwares omit fields.

/// Gen1 `GET /shelly`.
#[derive(Deserialize)]
struct Gen1Info {
    /// Required: with no `gen`, it is what tells a Gen1 Shelly from any
    /// other JSON (a router's login page, say).
    #[serde(rename = "type")]
    model: String,
    fw: Option<String>,
    #[serde(default)]
    auth: bool,
    num_outputs: Option<u32>,
}

/// Gen2+ `GET /shelly` (the same as `Shelly.GetDeviceInfo`).
#[derive(Deserialize)]
struct RpcInfo {
    model: Option<String>,
    ver: Option<String>,
    fw_id: Option<String>,
    #[serde(default)]
    auth_en: bool,
}

/// The identity in a `GET /shelly` answer (not scrubbed yet), or why the
/// answer is not a Shelly's.
fn parse_identity(value: Value) -> Result<Identity, String> {
    let Some(generation) = value.get("gen") else {
        let info: Gen1Info = serde_json::from_value(value).map_err(|e| e.to_string())?;
        return Ok(Identity {
            generation: 1,
            model: Some(info.model),
            firmware: info.fw,
            auth: info.auth,
            outputs: info.num_outputs,
        });
    };
    let generation = generation
        .as_u64()
        .and_then(|g| u32::try_from(g).ok())
        .filter(|g| *g >= 2)
        .ok_or_else(|| format!("`gen` is {generation}"))?;
    let info: RpcInfo = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok(Identity {
        generation,
        model: info.model,
        firmware: info.ver.or(info.fw_id),
        auth: info.auth_en,
        outputs: None,
    })
}

/// Gen1: the relay object of `/relay/<n>`.
#[derive(Deserialize)]
struct Gen1Relay {
    ison: bool,
    #[serde(default)]
    has_timer: bool,
    timer_remaining: Option<f64>,
    timer_duration: Option<f64>,
}

impl From<Gen1Relay> for RelayState {
    fn from(relay: Gen1Relay) -> RelayState {
        RelayState {
            output: relay.ison,
            timer: relay.has_timer.then(|| Timer {
                remaining: relay.timer_remaining.map(seconds),
                duration: relay.timer_duration.map(seconds),
            }),
        }
    }
}

/// Gen2+: `Switch.GetStatus`.
#[derive(Deserialize)]
struct SwitchStatus {
    output: bool,
    timer_started_at: Option<f64>,
    timer_duration: Option<f64>,
}

impl From<SwitchStatus> for RelayState {
    fn from(status: SwitchStatus) -> RelayState {
        // Either key says a timer runs; without its start, the time left is
        // unknown (not zero, and not "no timer").
        let timer = match (status.timer_started_at, status.timer_duration) {
            (Some(started), Some(duration)) => Some(rpc_timer(started, duration)),
            (None, None) => None,
            (_, duration) => Some(Timer {
                remaining: None,
                duration: duration.map(seconds),
            }),
        };
        RelayState {
            output: status.output,
            timer,
        }
    }
}

/// Gen2+: `Switch.GetConfig`.
#[derive(Deserialize)]
struct SwitchConfig {
    initial_state: Option<String>,
}

/// Gen1: `GET /settings`.
#[derive(Deserialize)]
struct Gen1Settings {
    relays: Option<Vec<Gen1RelaySettings>>,
}

#[derive(Deserialize)]
struct Gen1RelaySettings {
    default_state: Option<String>,
}

/// Seconds from a device, as a duration no arithmetic can overflow.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s)
        .unwrap_or(Duration::ZERO)
        .min(MAX_TIMER)
}

/// A Gen2+ timer. The plug reports when it started by its own clock; the
/// remaining time is taken from ours when the two agree (within 2 s), and
/// is the whole duration otherwise (a plug without time sync), which errs on
/// the side of waiting longer.
fn rpc_timer(started_at: f64, duration: f64) -> Timer {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let elapsed = now - started_at;
    let remaining = if (-2.0..=duration).contains(&elapsed) {
        duration - elapsed.max(0.0)
    } else {
        duration
    };
    Timer {
        remaining: Some(seconds(remaining)),
        duration: Some(seconds(duration)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeviceKind;

    fn config(address: &str) -> DeviceConfig {
        DeviceConfig {
            kind: DeviceKind::Shelly,
            address: address.into(),
            relay: 0,
            username: None,
            password: Some("s3cret".into()),
        }
    }

    #[test]
    fn bad_address_is_a_clear_error() {
        let shelly = Shelly::new("modem", &config("http://[bad"));
        let e = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(shelly.status())
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("plug `modem` (http://[bad): the address is not usable:"),
            "{e}"
        );
    }

    #[test]
    fn credentials_in_the_address_are_neither_used_nor_shown() {
        let shelly = Shelly::new("modem", &config("http://admin:hunter2@192.0.2.1"));
        let e = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(shelly.status())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "plug `modem` (http://…@192.0.2.1): the address is not usable: holds a user name or password (not repeated here)"
        );
    }

    #[test]
    fn messages_read_as_sentences() {
        let shelly = Shelly::new("modem", &config("192.168.1.50"));
        let e = |kind| shelly.error(kind).to_string();
        assert_eq!(
            e(ErrorKind::WrongPassword("")),
            "plug `modem` (192.168.1.50): wrong username or password (HTTP 401)"
        );
        assert_eq!(
            e(ErrorKind::Unreachable("connection refused".into())),
            "plug `modem` (192.168.1.50): unreachable (connection refused)"
        );
        assert_eq!(
            e(ErrorKind::Timeout(Duration::from_secs(10), "")),
            "plug `modem` (192.168.1.50): no answer within 10 s"
        );
        assert_eq!(
            e(ErrorKind::NoSuchRelay {
                relay: 3,
                outputs: Some(1)
            }),
            "plug `modem` (192.168.1.50): relay 3 does not exist (the plug has relays 0)"
        );
        assert_eq!(
            e(ErrorKind::AlreadyUnderWay(Some(Duration::from_millis(
                6_200
            )))),
            "plug `modem` (192.168.1.50): a power cycle is already under way on the plug (back on in ~7 s)"
        );
        assert_eq!(
            e(ErrorKind::AlreadyUnderWay(None)),
            "plug `modem` (192.168.1.50): a power cycle is already under way on the plug (the plug does not say when it is back on)"
        );
    }

    #[test]
    fn excerpts_are_short_one_line_and_scrubbed() {
        let shelly = Shelly::new("modem", &config("192.168.1.50"));
        assert_eq!(
            shelly.excerpt(b"{\n  \"pw\": \"s3cret\"\n}"),
            "{ \"pw\": \"<redacted>\" }"
        );
        let long = shelly.excerpt("x".repeat(500).as_bytes());
        assert_eq!(long.chars().count(), 81);
        assert_eq!(shelly.excerpt(b""), "(an empty answer)");
    }

    #[test]
    fn device_numbers_never_overflow() {
        assert_eq!(seconds(-1.0), Duration::ZERO);
        assert_eq!(seconds(1e300), Duration::ZERO);
        assert_eq!(seconds(1e9), MAX_TIMER);
        assert_eq!(seconds(2.5), Duration::from_millis(2_500));
        // A plug whose clock is years off: the whole duration.
        assert_eq!(
            rpc_timer(1000.0, 10.0).remaining,
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn power_on_settings() {
        let p = |key, value: &str| PowerOn {
            key,
            value: Some(value.into()),
        };
        assert_eq!(p("default_state", "on").danger(), None);
        assert!(p("default_state", "off").danger().is_some());
        assert!(
            p("default_state", "last")
                .danger()
                .unwrap()
                .contains("last state")
        );
        assert!(
            p("initial_state", "restore_last")
                .danger()
                .unwrap()
                .contains("last state")
        );
        assert!(
            p("initial_state", "match_input")
                .danger()
                .unwrap()
                .contains("input")
        );
        assert!(p("initial_state", "new_thing").danger().is_some());
    }

    // Parsing, on recorded answers (/work/shared/shelly-fixtures) with the
    // fields emulators leave out removed.

    const GEN1_SHELLY: &str = r#"{"auth":false,"discoverable":true,"fw":"20230913-113421/v1.14.0-gcb84623","mac":"AABBCCDDEEFF","num_outputs":1,"type":"SHPLG-S"}"#;
    const GEN2_SHELLY: &str = r#"{"app":"PlusPlugS","auth_domain":null,"auth_en":false,"fw_id":"20231219-134003/1.1.0-g34b5d4f","gen":2,"id":"shellyplusplugs-aabbccddeeff","model":"SNPL-00112EU","ver":"1.1.0"}"#;

    /// `json` without the top-level `keys`.
    fn without(json: &str, keys: &[&str]) -> Value {
        let mut value: Value = serde_json::from_str(json).unwrap();
        for key in keys {
            value.as_object_mut().unwrap().remove(*key);
        }
        value
    }

    #[test]
    fn identities_without_what_is_only_shown() {
        let gen1 = parse_identity(without(GEN1_SHELLY, &[])).unwrap();
        assert_eq!(
            gen1.firmware.as_deref(),
            Some("20230913-113421/v1.14.0-gcb84623")
        );
        let gen1 = parse_identity(without(GEN1_SHELLY, &["fw", "auth", "num_outputs"])).unwrap();
        assert_eq!(
            gen1,
            Identity {
                generation: 1,
                model: Some("SHPLG-S".into()),
                firmware: None,
                auth: false,
                outputs: None,
            }
        );
        let gen2 = parse_identity(without(GEN2_SHELLY, &["model", "ver", "fw_id"])).unwrap();
        assert_eq!(
            (gen2.generation, gen2.model, gen2.firmware),
            (2, None, None)
        );
        assert_eq!(
            parse_identity(without(GEN2_SHELLY, &["ver"]))
                .unwrap()
                .firmware
                .as_deref(),
            Some("20231219-134003/1.1.0-g34b5d4f")
        );
        // What tells a Shelly from other JSON stays required.
        assert_eq!(
            parse_identity(without(GEN1_SHELLY, &["type"])).unwrap_err(),
            "missing field `type`"
        );
        assert_eq!(
            parse_identity(json!({"gen": "2"})).unwrap_err(),
            "`gen` is \"2\""
        );
    }

    #[test]
    fn timers_whose_time_left_is_not_reported_are_unknown_not_zero() {
        let gen1 =
            |json: Value| RelayState::from(serde_json::from_value::<Gen1Relay>(json).unwrap());
        // As recorded, with a timer running.
        let running = json!({"has_timer": true, "ison": false, "overpower": false, "source": "http", "timer_duration": 10, "timer_remaining": 7, "timer_started": 1707332241});
        assert_eq!(
            gen1(running.clone()).timer,
            Some(Timer {
                remaining: Some(Duration::from_secs(7)),
                duration: Some(Duration::from_secs(10))
            })
        );
        let mut quiet = running;
        quiet.as_object_mut().unwrap().remove("timer_remaining");
        let timer = gen1(quiet.clone()).timer.unwrap();
        assert_eq!(timer.remaining, None);
        assert_eq!(timer.to_string(), "flips back in an unknown time (of 10 s)");
        quiet.as_object_mut().unwrap().remove("timer_duration");
        assert_eq!(
            gen1(quiet).timer.unwrap().to_string(),
            "flips back in an unknown time"
        );
        assert_eq!(
            gen1(json!({"ison": true})),
            RelayState {
                output: true,
                timer: None
            }
        );

        let gen2 =
            |json: Value| RelayState::from(serde_json::from_value::<SwitchStatus>(json).unwrap());
        let state =
            gen2(json!({"id": 0, "output": false, "source": "HTTP_in", "timer_duration": 10}));
        assert_eq!(
            state.timer,
            Some(Timer {
                remaining: None,
                duration: Some(Duration::from_secs(10))
            })
        );
        assert_eq!(
            gen2(json!({"id": 0, "output": true, "source": "init"})).timer,
            None
        );
    }

    #[test]
    fn power_on_settings_that_are_not_reported_are_unknown() {
        // `switch:0` of the Plus Plug S recording, without `initial_state`.
        let config: SwitchConfig = serde_json::from_value(json!({"auto_off": false, "auto_off_delay": 60.0, "auto_on": false, "id": 0, "name": "Switch Test Name 0"})).unwrap();
        let power_on = PowerOn {
            key: "initial_state",
            value: config.initial_state,
        };
        assert_eq!(
            power_on.to_string(),
            "unknown (no `initial_state` in the plug's answer)"
        );
        assert!(power_on.danger().unwrap().contains("unknown"));

        let settings: Gen1Settings = serde_json::from_value(json!({"fw": "x"})).unwrap();
        assert!(settings.relays.is_none());
        let settings: Gen1Settings =
            serde_json::from_value(json!({"relays": [{"appliance_type": "Light", "ison": true}]}))
                .unwrap();
        assert_eq!(settings.relays.unwrap()[0].default_state, None);
    }
}
