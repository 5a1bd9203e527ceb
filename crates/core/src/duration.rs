//! Durations as operators write them in configuration: `"90s"`, `"30m"`,
//! `"1h30m"`, `"21d"`.

use std::fmt;
use std::str::FromStr;

use epitrace_model::time::{DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::CoreError;

/// A non-negative span of time with millisecond precision.
///
/// Parses and prints as a sequence of `<integer><unit>` parts with units `d`,
/// `h`, `m`, `s` and `ms` (e.g. `"1h30m"`); in configuration files it is
/// written as such a string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(i64);

impl Span {
    /// Zero length.
    pub const ZERO: Self = Self(0);

    /// A span of `ms` milliseconds; negative values are clamped to zero.
    #[must_use]
    pub const fn from_millis(ms: i64) -> Self {
        if ms < 0 { Self(0) } else { Self(ms) }
    }

    /// A span of whole minutes.
    #[must_use]
    pub const fn minutes(m: i64) -> Self {
        Self::from_millis(m.saturating_mul(MINUTE_MS))
    }

    /// A span of whole hours.
    #[must_use]
    pub const fn hours(h: i64) -> Self {
        Self::from_millis(h.saturating_mul(HOUR_MS))
    }

    /// A span of whole days.
    #[must_use]
    pub const fn days(d: i64) -> Self {
        Self::from_millis(d.saturating_mul(DAY_MS))
    }

    /// Length in milliseconds.
    #[must_use]
    pub const fn as_millis(self) -> i64 {
        self.0
    }
}

const UNITS: [(&str, i64); 5] = [
    ("d", DAY_MS),
    ("h", HOUR_MS),
    ("m", MINUTE_MS),
    ("s", SECOND_MS),
    ("ms", 1),
];

impl FromStr for Span {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, CoreError> {
        let bad = |reason: &'static str| CoreError::InvalidDuration {
            text: text.to_owned(),
            reason,
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad("empty"));
        }
        let mut total: i64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("expected a number"));
            }
            let value: i64 = rest[..digits]
                .parse()
                .map_err(|_| bad("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(|| bad("unit must be one of d, h, m, s, ms"))?;
            total = value
                .checked_mul(scale)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| bad("too large"))?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (name, scale) in UNITS {
            if rest >= scale {
                write!(f, "{}{name}", rest / scale)?;
                rest %= scale;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Span({self})")
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, ms) in [
            ("90s", 90_000),
            ("30m", 1_800_000),
            ("1h30m", 5_400_000),
            ("21d", 21 * DAY_MS),
            ("250ms", 250),
            ("0s", 0),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.as_millis(), ms, "{text}");
            assert_eq!(span.to_string().parse::<Span>().unwrap(), span);
        }
        assert_eq!(Span::from_millis(5_400_000).to_string(), "1h30m");
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            "",
            "m",
            "15",
            "15 minutes",
            "-5m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(text.parse::<Span>().is_err(), "{text:?} should not parse");
        }
    }
}
