//! Mains power-outage detection, the PowerMon way.
//!
//! Several always-on devices around the house (smart plugs, a printer, a
//! NAS) are polled over HTTP; any HTTP answer means the device has power.
//! When more than a configured share of them stop answering, the mains are
//! out: the WAN is then down because the modem has no power, and cycling its
//! plug would achieve nothing.
//!
//! [`PowerMonitor`] is pure, like the WAN state machine: it takes each poll
//! round with its time and returns the transition, if any. [`Poller`] does
//! the I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http;
use crate::state::Millis;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    #[default]
    On,
    Out,
}

impl PowerState {
    pub const ALL: [PowerState; 2] = [PowerState::On, PowerState::Out];

    /// The name people and other tools know it by.
    pub fn name(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Out => "out",
        }
    }
}

impl std::fmt::Display for PowerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether one power-detection device answered in a poll round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvidence {
    pub device: String,
    pub answered: bool,
}

/// One poll of every power-detection device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerRound {
    pub at_ms: Millis,
    pub devices: Vec<DeviceEvidence>,
}

/// A change of the mains power state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PowerTransition {
    pub previous: PowerState,
    pub current: PowerState,
    pub at_ms: Millis,
    pub previous_duration_ms: Millis,
    pub devices: Vec<DeviceEvidence>,
}

impl PowerTransition {
    /// The devices that did not answer.
    pub fn silent(&self) -> impl Iterator<Item = &str> {
        self.devices
            .iter()
            .filter(|d| !d.answered)
            .map(|d| d.device.as_str())
    }
}

#[derive(Clone, Debug)]
pub struct PowerMonitor {
    /// The power is out when more than this share of the devices is silent.
    out_share: f64,
    state: PowerState,
    since_ms: Millis,
}

impl PowerMonitor {
    pub fn new(out_share: f64, now_ms: Millis) -> Self {
        PowerMonitor {
            out_share,
            state: PowerState::On,
            since_ms: now_ms,
        }
    }

    pub fn state(&self) -> PowerState {
        self.state
    }

    pub fn since_ms(&self) -> Millis {
        self.since_ms
    }

    /// Feeds one poll round; returns the transition it causes, if any. A
    /// round with no devices says nothing about the power.
    pub fn observe(&mut self, round: &PowerRound) -> Option<PowerTransition> {
        if round.devices.is_empty() {
            return None;
        }
        let silent = round.devices.iter().filter(|d| !d.answered).count();
        let share = silent as f64 / round.devices.len() as f64;
        let next = if share > self.out_share {
            PowerState::Out
        } else {
            PowerState::On
        };
        if next == self.state {
            return None;
        }
        let transition = PowerTransition {
            previous: self.state,
            current: next,
            at_ms: round.at_ms,
            previous_duration_ms: round.at_ms.saturating_sub(self.since_ms),
            devices: round.devices.clone(),
        };
        self.state = next;
        self.since_ms = round.at_ms;
        Some(transition)
    }
}

/// Polls the power-detection devices over HTTP.
pub struct Poller {
    client: reqwest::Client,
    devices: Vec<(String, reqwest::Url)>,
}

impl Poller {
    /// `devices`: name and address (a URL or host[:port]) of each device.
    /// Fails on an address that is not one (config validation catches
    /// these first) or when no HTTP client can be built.
    pub fn new<'a>(
        devices: impl IntoIterator<Item = (&'a String, &'a String)>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let devices = devices
            .into_iter()
            .map(|(name, address)| {
                let url = http::base_url(address).map_err(|e| format!("{name}: {e}"))?;
                Ok((name.clone(), url))
            })
            .collect::<Result<_, String>>()?;
        let timeouts = http::Timeouts {
            connect: timeout,
            total: timeout,
        };
        // LAN devices: a proxy from the environment must not stand in for them.
        let client = http::builder(timeouts)
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Poller { client, devices })
    }

    /// Polls every device at once; any HTTP answer, even an error status or
    /// a login page, means the device is powered.
    pub async fn round(&self) -> Vec<DeviceEvidence> {
        let polls = self.devices.iter().map(|(name, url)| async move {
            let answered = self.client.get(url.clone()).send().await.is_ok();
            DeviceEvidence {
                device: name.clone(),
                answered,
            }
        });
        futures_util::future::join_all(polls).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(at_ms: Millis, answered: &[bool]) -> PowerRound {
        PowerRound {
            at_ms,
            devices: answered
                .iter()
                .enumerate()
                .map(|(i, &answered)| DeviceEvidence {
                    device: format!("plug{i}"),
                    answered,
                })
                .collect(),
        }
    }

    #[test]
    fn half_silent_is_not_an_outage_more_than_half_is() {
        let mut m = PowerMonitor::new(0.5, 0);
        assert_eq!(m.observe(&round(1_000, &[true, false])), None);
        let t = m.observe(&round(2_000, &[false, false, true])).unwrap();
        assert_eq!((t.previous, t.current), (PowerState::On, PowerState::Out));
        assert_eq!(t.previous_duration_ms, 2_000);
        let t = m.observe(&round(62_000, &[true, false, true])).unwrap();
        assert_eq!((t.previous, t.current), (PowerState::Out, PowerState::On));
        assert_eq!(t.previous_duration_ms, 60_000);
    }

    #[test]
    fn no_devices_says_nothing() {
        let mut m = PowerMonitor::new(0.5, 0);
        assert_eq!(m.observe(&round(1_000, &[])), None);
        assert_eq!(m.state(), PowerState::On);
    }
}
