package dev.epitrace.producer;

import java.nio.charset.StandardCharsets;

/**
 * Timestamps in provider files, exactly as {@code crates/feeds/src/time.rs} reads them: RFC 3339
 * ({@code 2020-05-02T13:05:00Z}, an offset such as {@code +09:00}, an optional fraction of a
 * second, of which milliseconds are kept) or integer milliseconds since the epoch. Valid from
 * 2000-01-01 (inclusive) to 2100-01-01 (exclusive).
 */
final class Times {
    private Times() {}

    static final long SECOND_MS = 1_000L;
    static final long MINUTE_MS = 60 * SECOND_MS;
    static final long HOUR_MS = 60 * MINUTE_MS;
    static final long DAY_MS = 24 * HOUR_MS;
    /** 2000-01-01T00:00:00Z. */
    static final long MIN_MS = 946_684_800_000L;
    /** 2100-01-01T00:00:00Z minus one millisecond. */
    static final long MAX_MS = 4_102_444_800_000L - 1;

    /** Milliseconds since the epoch of a timestamp, or the reason it is refused. */
    static long parse(String value) throws Refusal {
        String s = Text.trim(value);
        long ms;
        if (Text.allAsciiDigits(s)) {
            try {
                ms = Long.parseLong(s);
            } catch (NumberFormatException e) {
                throw new Refusal("epoch milliseconds out of range");
            }
        } else {
            ms = rfc3339(s.getBytes(StandardCharsets.UTF_8));
        }
        if (ms < MIN_MS || ms > MAX_MS) {
            throw new Refusal("outside 2000-01-01 .. 2100-01-01");
        }
        return ms;
    }

    /** Days since 1970-01-01 of a civil date (proleptic Gregorian). */
    static long daysFromCivil(long y, long m, long d) {
        y = m <= 2 ? y - 1 : y;
        long era = Math.floorDiv(y, 400);
        long yoe = y - era * 400;
        long mp = m > 2 ? m - 3 : m + 9;
        long doy = (153 * mp + 2) / 5 + d - 1;
        long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146_097 + doe - 719_468;
    }

    /** ASCII digits [from, to) of b as a number, or "bad WHAT". */
    private static long number(byte[] b, int from, int to, String what) throws Refusal {
        if (from >= to || to > b.length) {
            throw new Refusal("bad " + what);
        }
        long v = 0;
        for (int i = from; i < to; i++) {
            if (b[i] < '0' || b[i] > '9') {
                throw new Refusal("bad " + what);
            }
            if (v > (Long.MAX_VALUE - 9) / 10) {
                throw new Refusal("bad " + what);
            }
            v = v * 10 + (b[i] - '0');
        }
        return v;
    }

    private static long rfc3339(byte[] b) throws Refusal {
        if (b.length < 20
                || b[4] != '-'
                || b[7] != '-'
                || !(b[10] == 'T' || b[10] == 't' || b[10] == ' ')
                || b[13] != ':'
                || b[16] != ':') {
            throw new Refusal("not RFC 3339 (2020-05-02T13:05:00Z) or epoch milliseconds");
        }
        long y = number(b, 0, 4, "year");
        long mo = number(b, 5, 7, "month");
        long d = number(b, 8, 10, "day");
        long h = number(b, 11, 13, "hour");
        long mi = number(b, 14, 16, "minute");
        long se = number(b, 17, 19, "second");
        boolean leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        int[] daysIn = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        if (mo < 1 || mo > 12 || d < 1 || d > daysIn[(int) mo - 1] || h > 23 || mi > 59 || se > 59) {
            throw new Refusal("not a valid date and time");
        }
        int rest = 19;
        long fracMs = 0;
        if (rest < b.length && b[rest] == '.') {
            int start = rest + 1;
            int end = start;
            while (end < b.length && b[end] >= '0' && b[end] <= '9') {
                end++;
            }
            if (end == start) {
                throw new Refusal("empty fraction of a second");
            }
            // The first three digits, padded on the right with zeros: milliseconds.
            for (int i = 0; i < 3; i++) {
                fracMs = fracMs * 10 + (start + i < end ? b[start + i] - '0' : 0);
            }
            rest = end;
        }
        int left = b.length - rest;
        long offsetMs;
        if (left == 1 && (b[rest] == 'Z' || b[rest] == 'z')) {
            offsetMs = 0;
        } else if (left == 6 && (b[rest] == '+' || b[rest] == '-') && b[rest + 3] == ':') {
            long sign = b[rest] == '-' ? -1 : 1;
            offsetMs = sign * (number(b, rest + 1, rest + 3, "offset hours") * HOUR_MS
                    + number(b, rest + 4, rest + 6, "offset minutes") * MINUTE_MS);
        } else {
            throw new Refusal("expected Z or an offset like +09:00 after the time");
        }
        return daysFromCivil(y, mo, d) * DAY_MS + h * HOUR_MS + mi * MINUTE_MS + se * SECOND_MS + fracMs - offsetMs;
    }
}
