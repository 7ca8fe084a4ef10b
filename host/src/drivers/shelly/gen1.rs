//! The Gen1 HTTP API: `/relay/<n>` requests and `/settings`, authenticated
//! with HTTP Basic, and the parsing of their answers.

use reqwest::Method;
use serde::Deserialize;

use super::transport::{Answer, Auth};
use super::{ErrorKind, Identity, PowerOn, RelayState, Shelly, Timer, seconds};

impl Shelly {
    /// Gen1: fails early for a relay number the plug said it does not have.
    pub(super) fn check_relay(&self, identity: &Identity) -> Result<(), ErrorKind> {
        match identity.outputs {
            Some(n) if self.relay >= n => Err(ErrorKind::NoSuchRelay {
                relay: self.relay,
                outputs: identity.outputs,
            }),
            _ => Ok(()),
        }
    }

    /// Gen1: a `/relay/<n>` request, whose answer is the relay object.
    pub(super) async fn gen1_relay(
        &self,
        target: &str,
        identity: &Identity,
    ) -> Result<RelayState, ErrorKind> {
        let answer = self
            .exchange(Method::GET, target, None, Auth::Basic)
            .await?;
        self.gen1_relay_answer(target, identity, &answer)
    }

    /// Gen1: the relay object in the answer to a `/relay/<n>` request.
    pub(super) fn gen1_relay_answer(
        &self,
        target: &str,
        identity: &Identity,
        answer: &Answer,
    ) -> Result<RelayState, ErrorKind> {
        if answer.status == 404 {
            return Err(ErrorKind::NoSuchRelay {
                relay: self.relay,
                outputs: identity.outputs,
            });
        }
        let relay: Gen1Relay = self.typed(self.json(answer, target)?, &answer.body)?;
        Ok(relay.into())
    }

    /// Gen1: the power-on setting of the relay, from `GET /settings`.
    pub(super) async fn gen1_power_on(&self) -> Result<PowerOn, ErrorKind> {
        let answer = self
            .exchange(Method::GET, "/settings", None, Auth::Basic)
            .await?;
        self.gen1_power_on_answer(&answer)
    }

    /// Gen1: the power-on setting of the relay in the answer to
    /// `GET /settings`.
    pub(super) fn gen1_power_on_answer(&self, answer: &Answer) -> Result<PowerOn, ErrorKind> {
        const KEY: &str = "default_state";
        let settings: Gen1Settings = self.typed(self.json(answer, "/settings")?, &answer.body)?;
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

// Device answers. Only what the driver acts on is required: what is only
// shown is optional, as emulators and other firmwares omit fields.

/// Gen1 `GET /shelly`.
#[derive(Deserialize)]
pub(super) struct Gen1Info {
    /// Required: with no `gen`, it is what tells a Gen1 Shelly from any
    /// other JSON (a router's login page, say).
    #[serde(rename = "type")]
    pub(super) model: String,
    pub(super) fw: Option<String>,
    #[serde(default)]
    pub(super) auth: bool,
    pub(super) num_outputs: Option<u32>,
}

/// Gen1: the relay object of `/relay/<n>`.
#[derive(Deserialize)]
pub(super) struct Gen1Relay {
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

/// Gen1: `GET /settings`.
#[derive(Deserialize)]
pub(super) struct Gen1Settings {
    relays: Option<Vec<Gen1RelaySettings>>,
}

#[derive(Deserialize)]
pub(super) struct Gen1RelaySettings {
    default_state: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;

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
    }

    #[test]
    fn power_on_settings_that_are_not_reported_are_unknown() {
        let settings: Gen1Settings = serde_json::from_value(json!({"fw": "x"})).unwrap();
        assert!(settings.relays.is_none());
        let settings: Gen1Settings =
            serde_json::from_value(json!({"relays": [{"appliance_type": "Light", "ison": true}]}))
                .unwrap();
        assert_eq!(settings.relays.unwrap()[0].default_state, None);
    }
}
