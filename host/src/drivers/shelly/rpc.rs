//! The Gen2+ RPC API: JSON-RPC frames over `POST /rpc`, authenticated with
//! HTTP Digest, and the parsing of their answers.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::transport::{Answer, Auth};
use super::{ErrorKind, Identity, RelayState, Shelly, Timer, seconds};

impl Shelly {
    /// Gen2+: one JSON-RPC call over `POST /rpc`.
    pub(super) async fn rpc<T: DeserializeOwned>(
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
        self.rpc_answer(identity, method, &answer)
    }

    /// Gen2+: the result of a JSON-RPC call from the plug's answer, or the
    /// error it reports.
    pub(super) fn rpc_answer<T: DeserializeOwned>(
        &self,
        identity: &Identity,
        method: &'static str,
        answer: &Answer,
    ) -> Result<T, ErrorKind> {
        let request = format!("{method} (POST /rpc)");
        // Errors come as a frame with `error`, or as a non-200 answer whose
        // body is `{code, message}`; anything else non-200 is plain HTTP.
        let value: Value = match serde_json::from_slice(&answer.body) {
            Ok(value) => value,
            Err(_) if answer.status != 200 => return Err(self.http_error(answer, &request)),
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
                    self.http_error(answer, &request)
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
}

/// Gen2+ `GET /shelly` (the same as `Shelly.GetDeviceInfo`).
#[derive(Deserialize)]
pub(super) struct RpcInfo {
    pub(super) model: Option<String>,
    pub(super) ver: Option<String>,
    pub(super) fw_id: Option<String>,
    #[serde(default)]
    pub(super) auth_en: bool,
}

/// Gen2+: `Switch.GetStatus`.
#[derive(Deserialize)]
pub(super) struct SwitchStatus {
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
pub(super) struct SwitchConfig {
    pub(super) initial_state: Option<String>,
}

/// A Gen2+ timer. The plug reports when it started by its own clock; the
/// remaining time is taken from ours when the two agree (within 2 s), and
/// is the whole duration otherwise (a plug without time sync), which errs on
/// the side of waiting longer.
pub(super) fn rpc_timer(started_at: f64, duration: f64) -> Timer {
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
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;
    use crate::drivers::shelly::PowerOn;

    #[test]
    fn timers_whose_time_left_is_not_reported_are_unknown_not_zero() {
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
    }
}
