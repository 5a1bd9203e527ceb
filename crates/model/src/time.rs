//! Event time.

use std::fmt;

use crate::error::ModelError;

/// Milliseconds in one second.
pub const SECOND_MS: i64 = 1_000;
/// Milliseconds in one minute.
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds in one day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// When something happened in the world (not when epitrace saw it), in
/// milliseconds since the Unix epoch, UTC.
///
/// Valid from 2000-01-01T00:00:00Z (inclusive) to 2100-01-01T00:00:00Z
/// (exclusive): anything outside is a corrupt or mis-scaled timestamp (seconds
/// sent as milliseconds, microseconds sent as milliseconds). Whether a time is
/// too far in the *future* depends on a reference clock that this crate does
/// not read; see [`EventTime::check_not_after`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventTime(i64);

impl EventTime {
    /// 2000-01-01T00:00:00Z.
    pub const MIN: Self = Self(946_684_800_000);
    /// 2100-01-01T00:00:00Z minus one millisecond.
    pub const MAX: Self = Self(4_102_444_800_000 - 1);

    /// Validates milliseconds since the epoch.
    ///
    /// # Errors
    /// [`ModelError::TimestampOutOfRange`] outside [`Self::MIN`]..=[`Self::MAX`];
    /// `field` names the record field in the error.
    pub const fn from_millis(field: &'static str, millis: i64) -> Result<Self, ModelError> {
        if millis < Self::MIN.0 || millis > Self::MAX.0 {
            return Err(ModelError::TimestampOutOfRange { field, millis });
        }
        Ok(Self(millis))
    }

    /// Milliseconds since the epoch.
    #[must_use]
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Rejects a time more than `skew_ms` after `now`: a device or provider
    /// clock that is wrong, which would otherwise hold windows open.
    ///
    /// # Errors
    /// [`ModelError::TimestampInFuture`].
    pub const fn check_not_after(
        self,
        field: &'static str,
        now: Self,
        skew_ms: i64,
    ) -> Result<Self, ModelError> {
        if self.0 > now.0.saturating_add(skew_ms) {
            return Err(ModelError::TimestampInFuture {
                field,
                millis: self.0,
                now_ms: now.0,
                skew_ms,
            });
        }
        Ok(self)
    }

    /// This time plus `ms` (may be negative), clamped to the valid range.
    #[must_use]
    pub const fn saturating_add_ms(self, ms: i64) -> Self {
        let v = self.0.saturating_add(ms);
        if v < Self::MIN.0 {
            Self::MIN
        } else if v > Self::MAX.0 {
            Self::MAX
        } else {
            Self(v)
        }
    }

    /// Milliseconds from `earlier` to `self` (negative when `earlier` is later).
    #[must_use]
    pub const fn millis_since(self, earlier: Self) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Debug for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventTime({self})")
    }
}

impl fmt::Display for EventTime {
    /// RFC 3339 in UTC with milliseconds, e.g. `2020-05-02T01:30:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(DAY_MS);
        let ms_of_day = self.0.rem_euclid(DAY_MS);
        let (y, m, d) = civil_from_days(days);
        let h = ms_of_day / HOUR_MS;
        let min = ms_of_day % HOUR_MS / MINUTE_MS;
        let s = ms_of_day % MINUTE_MS / SECOND_MS;
        let ms = ms_of_day % SECOND_MS;
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
    }
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
const fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_checked() {
        assert!(EventTime::from_millis("t", EventTime::MIN.as_millis()).is_ok());
        assert_eq!(
            EventTime::from_millis("t", EventTime::MIN.as_millis() - 1),
            Err(ModelError::TimestampOutOfRange {
                field: "t",
                millis: 946_684_799_999
            })
        );
        assert!(EventTime::from_millis("t", EventTime::MAX.as_millis() + 1).is_err());
        // Seconds mistaken for milliseconds land in 1970.
        assert!(EventTime::from_millis("t", 1_588_377_600).is_err());
    }

    #[test]
    fn future_is_relative_to_reference() {
        let now = EventTime::from_millis("t", 1_588_377_600_000).unwrap();
        let t = now.saturating_add_ms(DAY_MS);
        assert!(t.check_not_after("t", now, DAY_MS).is_ok());
        assert!(
            t.saturating_add_ms(1)
                .check_not_after("t", now, DAY_MS)
                .is_err()
        );
    }

    #[test]
    fn displays_rfc3339() {
        let t = EventTime::from_millis("t", 1_588_383_000_123).unwrap();
        assert_eq!(t.to_string(), "2020-05-02T01:30:00.123Z");
        assert_eq!(EventTime::MIN.to_string(), "2000-01-01T00:00:00.000Z");
    }
}
