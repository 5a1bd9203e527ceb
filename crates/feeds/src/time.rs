//! Timestamps in files: RFC 3339 (`2020-05-02T13:05:00Z`, an offset such as
//! `+09:00`, optional fraction) or integer milliseconds since the epoch.

use epitrace_model::EventTime;
use epitrace_model::time::{DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS};

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad {what}"));
    }
    s.parse().map_err(|_| format!("bad {what}"))
}

/// Parses a timestamp (see the module docs) into an [`EventTime`].
///
/// # Errors
/// A reason: malformed, or outside 2000–2099.
pub fn parse_time(field: &'static str, s: &str) -> Result<EventTime, String> {
    let s = s.trim();
    let ms = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<i64>()
            .map_err(|_| "epoch milliseconds out of range".to_owned())?
    } else {
        rfc3339(s)?
    };
    EventTime::from_millis(field, ms).map_err(|_| "outside 2000-01-01 .. 2100-01-01".to_owned())
}

fn rfc3339(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err("not RFC 3339 (2020-05-02T13:05:00Z) or epoch milliseconds".to_owned());
    }
    let (y, mo, d) = (
        number(&s[0..4], "year")?,
        number(&s[5..7], "month")?,
        number(&s[8..10], "day")?,
    );
    let (h, mi, se) = (
        number(&s[11..13], "hour")?,
        number(&s[14..16], "minute")?,
        number(&s[17..19], "second")?,
    );
    let days_in = [
        31,
        if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > days_in[usize::try_from(mo - 1).unwrap_or(0)]
        || h > 23
        || mi > 59
        || se > 59
    {
        return Err("not a valid date and time".to_owned());
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err("empty fraction of a second".to_owned());
        }
        let f = &r[..digits];
        let padded = format!("{:0<3}", &f[..f.len().min(3)]);
        frac_ms = number(&padded, "fraction")?;
        rest = &r[digits..];
    }
    let offset_ms = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (number(&rest[1..3], "offset hours")? * HOUR_MS
                + number(&rest[4..6], "offset minutes")? * MINUTE_MS)
        }
        _ => return Err("expected Z or an offset like +09:00 after the time".to_owned()),
    };
    Ok(
        days_from_civil(y, mo, d) * DAY_MS
            + h * HOUR_MS
            + mi * MINUTE_MS
            + se * SECOND_MS
            + frac_ms
            - offset_ms,
    )
}

/// Formats a time as RFC 3339 in UTC (`2020-05-02T13:05:00Z`, with
/// milliseconds only when there are any).
#[must_use]
pub fn format_time(t: EventTime) -> String {
    let full = t.to_string(); // 2020-05-02T13:05:00.000Z
    match full.strip_suffix(".000Z") {
        Some(whole) => format!("{whole}Z"),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_offsets_fractions_and_epoch_millis() {
        let t = |s: &str| parse_time("t", s).map(EventTime::as_millis);
        assert_eq!(t("2020-05-02T00:00:00Z"), Ok(1_588_377_600_000));
        assert_eq!(t("2020-05-02T09:00:00+09:00"), Ok(1_588_377_600_000));
        assert_eq!(t("2020-05-02T00:00:00.5Z"), Ok(1_588_377_600_500));
        assert_eq!(t("1588377600000"), Ok(1_588_377_600_000));
        assert!(t("2020-02-30T00:00:00Z").is_err());
        assert!(t("2020-05-02 00:00").is_err());
        assert!(t("1999-12-31T23:59:59Z").is_err(), "before 2000");
        assert!(t("").is_err());
        for ms in [1_588_377_600_000, 1_588_377_600_123, 4_102_444_799_999] {
            let e = EventTime::from_millis("t", ms).unwrap();
            assert_eq!(t(&format_time(e)), Ok(ms));
        }
        assert_eq!(
            format_time(EventTime::from_millis("t", 1_588_377_600_000).unwrap()),
            "2020-05-02T00:00:00Z"
        );
    }
}
