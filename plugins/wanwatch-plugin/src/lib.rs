//! Helpers for wanwatch policy plugins written in Rust: the small pieces
//! every policy needs and that the contract does not provide, such as
//! reading durations from settings and writing them for people.
//!
//! It has no bindings of its own: a policy generates them with
//! `wit_bindgen::generate!({ world: "policy", path: ".../wit" })`.

use serde::{Deserialize, Deserializer};

/// A duration in whole seconds, read from settings written as a number of
/// seconds or as "90s", "3m", "2h".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub u64);

impl Seconds {
    pub fn as_millis(self) -> u64 {
        self.0.saturating_mul(1000)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Seconds(n)),
            Raw::Text(text) => parse_seconds(&text).map(Seconds).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration: write seconds, or e.g. \"90s\", \"3m\", \"2h\""
                ))
            }),
        }
    }
}

/// "90", "90s", "3m", "2h" as seconds.
fn parse_seconds(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

/// A duration in the compact form wanwatch uses everywhere: "850ms",
/// "9.2s", "7m08s", "2h03m", "3d04h".
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{}.{}s", s, (ms % 1000) / 100),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_from_numbers_and_text() {
        assert_eq!(parse_seconds("90"), Some(90));
        assert_eq!(parse_seconds("90s"), Some(90));
        assert_eq!(parse_seconds("3m"), Some(180));
        assert_eq!(parse_seconds("2h"), Some(7200));
        assert_eq!(parse_seconds("2 parsecs"), None);
        assert_eq!(parse_seconds("m"), None);
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(428_000), "7m08s");
        assert_eq!(human_duration(9_250), "9.2s");
    }
}
