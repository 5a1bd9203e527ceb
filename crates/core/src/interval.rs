//! Half-open time intervals and the measures the exposure rule needs.

use std::fmt;

use epitrace_model::EventTime;

/// The half-open interval `[start, end)` of event time; `start <= end`.
/// Empty when `start == end` (an instant: a single location ping).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    start: EventTime,
    end: EventTime,
}

impl Interval {
    /// `[start, end)`; the bounds are swapped if given in the wrong order.
    #[must_use]
    pub fn new(start: EventTime, end: EventTime) -> Self {
        if start <= end {
            Self { start, end }
        } else {
            Self {
                start: end,
                end: start,
            }
        }
    }

    /// An instant `[t, t)`.
    #[must_use]
    pub const fn instant(t: EventTime) -> Self {
        Self { start: t, end: t }
    }

    /// Inclusive start.
    #[must_use]
    pub const fn start(self) -> EventTime {
        self.start
    }

    /// Exclusive end.
    #[must_use]
    pub const fn end(self) -> EventTime {
        self.end
    }

    /// Length in milliseconds.
    #[must_use]
    pub const fn len_ms(self) -> i64 {
        self.end.millis_since(self.start)
    }

    /// Whether the interval holds no instant.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// The common part, if it is not empty.
    #[must_use]
    pub fn intersect(self, other: Self) -> Option<Self> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(Self { start, end })
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} .. {})", self.start, self.end)
    }
}

/// Sorts, then merges overlapping and touching intervals; drops empty ones.
/// The result is sorted and disjoint, with gaps between neighbours.
#[must_use]
pub fn union(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.retain(|i| !i.is_empty());
    intervals.sort_unstable();
    let mut out: Vec<Interval> = Vec::with_capacity(intervals.len());
    for next in intervals {
        match out.last_mut() {
            Some(last) if next.start <= last.end => last.end = last.end.max(next.end),
            _ => out.push(next),
        }
    }
    out
}

/// Total length of disjoint intervals, in milliseconds.
#[must_use]
pub fn measure(disjoint: &[Interval]) -> i64 {
    disjoint.iter().map(|i| i.len_ms()).sum()
}

/// The most time the sorted, disjoint `intervals` put into any window
/// `[s, s + window_ms)`, and the earliest such window.
///
/// A best window can always start at the start of one of the intervals (slide
/// any window right until its start meets an interval: it loses nothing), so
/// only those starts are tried, with a two-pointer sweep: O(n).
#[must_use]
pub fn peak_window(disjoint: &[Interval], window_ms: i64) -> Option<(i64, Interval)> {
    let mut best: Option<(i64, Interval)> = None;
    let mut j = 0; // first interval not wholly inside the current window
    let mut full = 0i64; // total length of intervals i..j
    for (i, first) in disjoint.iter().enumerate() {
        let start = first.start;
        let stop = start.saturating_add_ms(window_ms);
        if j < i {
            j = i;
            full = 0;
        }
        while j < disjoint.len() && disjoint[j].end <= stop {
            full += disjoint[j].len_ms();
            j += 1;
        }
        let partial = disjoint
            .get(j)
            .filter(|next| next.start < stop)
            .map_or(0, |next| stop.millis_since(next.start));
        let total = full + partial;
        if best.is_none_or(|(b, _)| total > b) {
            best = Some((total, Interval::new(start, stop)));
        }
        if j > i {
            full -= first.len_ms();
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use epitrace_model::time::{HOUR_MS, MINUTE_MS};

    fn t(min: i64) -> EventTime {
        EventTime::MIN.saturating_add_ms(HOUR_MS * 24 * 7000 + min * MINUTE_MS)
    }
    fn iv(a: i64, b: i64) -> Interval {
        Interval::new(t(a), t(b))
    }

    #[test]
    fn union_merges_overlapping_and_touching() {
        let u = union(vec![iv(10, 20), iv(0, 5), iv(5, 7), iv(15, 30), iv(40, 40)]);
        assert_eq!(u, vec![iv(0, 7), iv(10, 30)]);
        assert_eq!(measure(&u), 27 * MINUTE_MS);
    }

    #[test]
    fn peak_window_slides() {
        let u = union(vec![
            iv(0, 10),
            iv(1000, 1010),
            iv(1430, 1450),
            iv(2000, 2100),
        ]);
        // 24 h = 1440 min: [1000, 2440) holds 10 + 20 + 100.
        let (best, window) = peak_window(&u, 24 * HOUR_MS).unwrap();
        assert_eq!(best, 130 * MINUTE_MS);
        assert_eq!(window.start(), t(1000));
        // A window cutting an interval counts only the part inside.
        let (best, _) = peak_window(&u, 50 * MINUTE_MS).unwrap();
        assert_eq!(best, 50 * MINUTE_MS);
        assert_eq!(peak_window(&[], HOUR_MS), None);
    }
}
