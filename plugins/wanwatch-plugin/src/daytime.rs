//! Local time of day for settings such as "quiet from 22:00 to 07:00":
//! plugins get no time zone database, so a setting gives the offset from
//! UTC, and [`minute_of_day`] turns the host's clock into local minutes.

use serde::{Deserialize, Deserializer};

/// Minutes in a day.
pub const DAY_MINUTES: i64 = 24 * 60;

/// A span of the day in local time, read from "22:00-07:00": minutes since
/// midnight. It may run over midnight; a span whose start is its end is
/// empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DaySpan {
    pub start: i64,
    pub end: i64,
}

impl DaySpan {
    /// Minutes from `minute` (of the day) until the span ends, if `minute`
    /// is in it.
    pub fn remaining(self, minute: i64) -> Option<i64> {
        let since_start = (minute - self.start).rem_euclid(DAY_MINUTES);
        let length = (self.end - self.start).rem_euclid(DAY_MINUTES);
        (since_start < length).then_some(length - since_start)
    }

    /// Minutes from `minute` until the span next starts: 0 inside it.
    pub fn until_start(self, minute: i64) -> i64 {
        match self.remaining(minute) {
            Some(_) => 0,
            None => (self.start - minute).rem_euclid(DAY_MINUTES),
        }
    }
}

/// Local time's offset from UTC, in minutes, read from "+01:00", "-05:30".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UtcOffset(pub i64);

/// The local minute of the day at `ms` since the Unix epoch (what
/// [`now`](crate::now) returns).
pub fn minute_of_day(ms: u64, offset: UtcOffset) -> i64 {
    let minutes = i64::try_from(ms / 60_000).unwrap_or(0);
    (minutes + offset.0).rem_euclid(DAY_MINUTES)
}

/// "HH:MM" as minutes since midnight.
fn clock_time(text: &str) -> Option<i64> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 60 + m)
}

impl<'de> Deserialize<'de> for DaySpan {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let span = text.split_once('-').and_then(|(start, end)| {
            Some(DaySpan {
                start: clock_time(start)?,
                end: clock_time(end)?,
            })
        });
        span.ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a span of hours: write e.g. \"22:00-07:00\""
            ))
        })
    }
}

impl<'de> Deserialize<'de> for UtcOffset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let sign = match text.chars().next() {
            Some('+') => 1,
            Some('-') => -1,
            _ => 0,
        };
        match clock_time(&text[1.min(text.len())..]) {
            Some(minutes) if sign != 0 => Ok(UtcOffset(sign * minutes)),
            _ => Err(serde::de::Error::custom(format!(
                "`{text}` is not a UTC offset: write e.g. \"+01:00\""
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StrDeserializer};

    fn read<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        let d: StrDeserializer<'_, Error> = text.into_deserializer();
        T::deserialize(d).map_err(|e| e.to_string())
    }

    #[test]
    fn spans_over_midnight() {
        let night: DaySpan = read("22:00-07:00").unwrap();
        assert_eq!(
            night,
            DaySpan {
                start: 1320,
                end: 420
            }
        );
        assert_eq!(night.remaining(23 * 60), Some(8 * 60));
        assert_eq!(night.remaining(6 * 60 + 59), Some(1));
        assert_eq!(night.remaining(7 * 60), None);
        assert_eq!(night.until_start(7 * 60), 15 * 60);
        assert_eq!(night.until_start(21 * 60 + 59), 1);
        assert_eq!(night.until_start(22 * 60), 0);
        let empty: DaySpan = read("02:00-02:00").unwrap();
        assert_eq!(empty.remaining(2 * 60), None);
    }

    #[test]
    fn local_minutes_from_the_clock() {
        // 2026-03-10T23:30:00Z.
        let ms = 1_773_185_400_000;
        assert_eq!(minute_of_day(ms, UtcOffset(0)), 23 * 60 + 30);
        assert_eq!(minute_of_day(ms, read("+01:00").unwrap()), 30);
        assert_eq!(minute_of_day(ms, read("-05:30").unwrap()), 18 * 60);
    }

    #[test]
    fn bad_text_says_what_to_write() {
        for bad in ["1-5", "22:00", "24:00-01:00", "22:60-01:00"] {
            let e = read::<DaySpan>(bad).unwrap_err();
            assert!(e.contains("not a span of hours"), "{bad}: {e}");
        }
        for bad in ["2:00", "+2", "", "+25:00"] {
            let e = read::<UtcOffset>(bad).unwrap_err();
            assert!(e.contains("not a UTC offset"), "{bad}: {e}");
        }
    }
}
