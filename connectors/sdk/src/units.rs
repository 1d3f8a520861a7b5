//! Human units in configs: sizes (`10MB`, `512KiB`, or a plain byte count) and
//! durations (`250ms`, `5s`, `2m`, `1h`, or plain seconds).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A duration written as `250ms`, `5s`, `2m`, `1h` or plain seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0 as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{v:.1} {}", UNITS[unit])
        }
    }
}

/// Why a size or a duration in a config or on the command line is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("`{0}` is not a size; write e.g. 10MB, 512KiB or 1048576")]
    NotSize(String),
    #[error("unknown size unit `{0}`; use B, KB, KiB, MB, MiB, GB or GiB")]
    SizeUnit(String),
    #[error("`{0}` is too large; sizes are at most 1PiB")]
    TooLarge(String),
    #[error("`{0}` is not a duration; write e.g. 250ms, 5s, 2m, 1h or 7d")]
    NotDuration(String),
    #[error("unknown duration unit `{0}`; use ms, s, m, h or d")]
    DurationUnit(String),
    #[error("`{0}` is too long; durations are at most 3650d")]
    TooLong(String),
    #[error("`{0}` is zero; give a duration above 0, e.g. 1s")]
    Zero(String),
}

/// Parse `10MB`, `10 MiB`, `512k`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| UnitError::NotSize(s.to_string()))?;
    if !num.is_finite() {
        return Err(UnitError::NotSize(s.to_string()));
    }
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(UnitError::SizeUnit(other.to_string())),
    };
    let bytes = num * mult as f64;
    if bytes > MAX_SIZE as f64 {
        return Err(UnitError::TooLarge(s.to_string()));
    }
    Ok(bytes as u64)
}

/// The largest size a config may give (1 PiB): anything larger is a typo.
pub const MAX_SIZE: u64 = 1 << 50;

/// The longest duration a config may give (10 years): timers and clocks
/// overflow long before `Duration::MAX`, and anything longer is a typo.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86400);

/// Parse `250ms`, `5s`, `2m`, `1h`, `30` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| UnitError::NotDuration(s.to_string()))?;
    let secs = match unit.trim() {
        "ms" => num / 1000.0,
        "" | "s" => num,
        "m" | "min" => num * 60.0,
        "h" => num * 3600.0,
        "d" => num * 86400.0,
        other => return Err(UnitError::DurationUnit(other.to_string())),
    };
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(UnitError::TooLong(s.to_string())),
    }
}

/// [`parse_duration`], refusing zero: for intervals and timeouts.
pub fn parse_positive_duration(s: &str) -> Result<Duration, UnitError> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(UnitError::Zero(s.to_string()));
    }
    Ok(d)
}

struct UnitVisitor<F>(F, &'static str);

impl<'de, T, F: Fn(&str) -> Result<T, UnitError>> Visitor<'de> for UnitVisitor<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        (self.0)(&v.to_string()).map_err(E::custom)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor(
            |s: &str| parse_size(s).map(ByteSize),
            "a size like 10MB",
        ))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitVisitor(
            |s: &str| parse_duration(s).map(HumanDuration),
            "a duration like 5s",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("2 MiB").unwrap(), 2 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
    }

    #[test]
    fn out_of_range_values_are_errors_not_panics() {
        // Regression: `Duration::from_secs_f64` panicked on these.
        assert!(parse_duration("99999999999999999999999s").is_err());
        assert!(parse_duration("3651d").is_err());
        assert!(parse_duration(&f64::MAX.to_string()).is_err());
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION);
        assert!(parse_positive_duration("0").is_err());
        assert!(parse_positive_duration("0ms").is_err());
        assert!(parse_size("99999999999999999999999GiB").is_err());
        assert!(parse_size("2000000GiB").is_err());
    }
}
