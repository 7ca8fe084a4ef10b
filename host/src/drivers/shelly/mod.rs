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
//!
//! One concept per file: this one is the plug a driver user calls (status,
//! cycle, confirmation); `gen1` and `rpc` speak the two APIs and parse
//! their answers; `transport` makes one authenticated request and reads
//! its answer; `error` says what went wrong, for a person.

mod error;
mod gen1;
mod rpc;
mod transport;

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde_json::{Value, json};

use crate::config::DeviceConfig;
use crate::http::{self, Timeouts};
use crate::secrets::Secrets;

use error::human;
pub use error::{ErrorKind, ShellyError};
use gen1::Gen1Info;
#[cfg(test)]
use rpc::rpc_timer;
use rpc::{RpcInfo, SwitchConfig, SwitchStatus};
use transport::{Answer, Auth, client};

/// The user name Shelly devices use when none is configured; the only one
/// Gen2+ devices know.
const DEFAULT_USER: &str = "admin";

/// How long after the end of the off period the plug is checked: its timer
/// fires on time, and this leaves room for its clock and the LAN.
pub const BACK_ON_MARGIN: Duration = Duration::from_secs(2);

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
        self.identity_answer(&answer)
    }

    /// The identity in the answer to `GET /shelly`.
    fn identity_answer(&self, answer: &Answer) -> Result<Identity, ErrorKind> {
        let value: Value = self.json(answer, "/shelly")?;
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
            self.gen1_power_on().await
        }
    }
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

/// Seconds from a device, as a duration no arithmetic can overflow.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s)
        .unwrap_or(Duration::ZERO)
        .min(MAX_TIMER)
}

/// The fuzz target's way in (fuzz/fuzz_targets/shelly_answer.rs): one
/// answer read by every parse of a device answer, each outcome as the text
/// a log or the status would show.
#[cfg(fuzzing)]
impl Shelly {
    pub fn read_answer(&self, status: u16, challenges: Vec<String>, body: &[u8]) -> Vec<String> {
        let answer = Answer {
            status,
            challenges,
            body: body.to_vec(),
        };
        let gen1 = Identity {
            generation: 1,
            model: None,
            firmware: None,
            auth: true,
            outputs: Some(1),
        };
        let gen2 = Identity {
            generation: 2,
            outputs: None,
            ..gen1.clone()
        };
        let shown = |outcome: Result<String, ErrorKind>| {
            outcome.unwrap_or_else(|kind| self.error(kind).to_string())
        };
        vec![
            shown(self.identity_answer(&answer).map(|i| format!("{i:?}"))),
            shown(
                self.gen1_relay_answer("/relay/0", &gen1, &answer)
                    .map(|r| format!("{r:?}")),
            ),
            shown(
                self.gen1_power_on_answer(&answer)
                    .map(|p| format!("{p:?} {:?}", p.danger())),
            ),
            shown(
                self.rpc_answer::<SwitchStatus>(&gen2, "Switch.GetStatus", &answer)
                    .map(|s| format!("{:?}", RelayState::from(s))),
            ),
            shown(
                self.rpc_answer::<SwitchConfig>(&gen2, "Switch.GetConfig", &answer)
                    .map(|c| format!("{:?}", c.initial_state.map(|v| self.scrub(&v)))),
            ),
            shown(
                // The driver only needs a result, and shows none.
                self.rpc_answer::<Value>(&gen2, "Switch.Set", &answer)
                    .map(|_| "switched".into()),
            ),
            shown(
                transport::pick_challenge(&answer.challenges)
                    .map(|c| format!("{c:?}"))
                    .map_err(|e| ErrorKind::Authentication(self.scrub(&e))),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeviceKind;

    pub(super) fn config(address: &str) -> DeviceConfig {
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
}
