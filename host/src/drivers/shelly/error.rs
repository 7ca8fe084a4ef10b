//! What went wrong with a plug, worded for the person reading the log or
//! `wanwatch plug status`: every message names the device and says what to
//! do when there is something to do.

use std::time::Duration;

use super::CycleStarted;

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
    pub(super) fn transient(&self) -> bool {
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
pub(super) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::ErrorKind;
    use crate::drivers::shelly::Shelly;
    use crate::drivers::shelly::tests::config;

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
}
