//! The presence join's pure parts: how segments are indexed (time buckets ×
//! hierarchical cell keys), how a probe finds every co-located segment, and
//! the overlap of a case's segment with a contact's (DESIGN §4).
//!
//! A store (RocksDB in the pipeline, a `BTreeMap` in tests) keeps one entry
//! per `(bucket, cell key, subject, segment)` for every bucket a segment's
//! interval touches. To find the segments co-located with a probe segment and
//! overlapping it in time, scan, in each bucket the probe touches:
//!
//! - the range of the probe cell's descendants (one contiguous key range,
//!   see [`crate::cellkey`]), and
//! - the exact keys of its ancestors down to the partition resolution.
//!
//! Candidates are then checked exactly with [`overlap`]: bucketing only
//! narrows the search, it never decides a match.

use std::ops::RangeInclusive;

use epitrace_model::EventTime;

use crate::cellkey::CellKey;
use crate::exposure::Overlap;
use crate::interval::Interval;
use crate::observation::Stream;
use crate::segment::Segment;

/// A time bucket number: `floor(time / width)`.
pub type Bucket = i64;

/// The buckets an interval touches (none for an empty interval, which can
/// overlap nothing).
#[must_use]
pub fn buckets(interval: Interval, width_ms: i64) -> Option<RangeInclusive<Bucket>> {
    if interval.is_empty() || width_ms <= 0 {
        return None;
    }
    let first = interval.start().as_millis().div_euclid(width_ms);
    let last = (interval.end().as_millis() - 1).div_euclid(width_ms);
    Some(first..=last)
}

/// What to read, per bucket, to find every segment co-located with a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The cell and its descendants.
    pub descendants: RangeInclusive<CellKey>,
    /// Its strict ancestors, finest first, down to the partition resolution.
    pub ancestors: Vec<CellKey>,
}

impl Probe {
    /// The probe for a segment cell; `min_res` is the coarsest resolution any
    /// footprint can have (the partition resolution).
    #[must_use]
    pub fn new(cell: CellKey, min_res: u8) -> Self {
        Self {
            descendants: cell.descendants(),
            ancestors: cell.ancestors(min_res).collect(),
        }
    }

    /// Whether a stored key is one this probe reads.
    #[must_use]
    pub fn matches(&self, key: CellKey) -> bool {
        self.descendants.contains(&key) || self.ancestors.contains(&key)
    }
}

/// Where and when a case's segment and a contact's segment were co-located,
/// within the case's infectious window; `None` when they are not co-located or do
/// not overlap, or when one is a path ([`Stream::Transit`]) and the other a
/// dwell: a path meets only paths (see [`crate::transit`]).
#[must_use]
pub fn overlap(case: &Segment, window: Interval, contact: &Segment) -> Option<Overlap> {
    let transit = |s: &Segment| s.key.lane.stream() == Stream::Transit;
    if transit(case) != transit(contact) || !case.cell.co_located(contact.cell) {
        return None;
    }
    let common = case
        .interval()
        .intersect(window)?
        .intersect(contact.interval())?;
    // Co-located cells nest: the finer one is where they met.
    let cell = if case.cell.resolution() >= contact.cell.resolution() {
        case.cell
    } else {
        contact.cell
    };
    Some(Overlap {
        window: common,
        cell,
        case_core: case.core,
        contact_core: contact.core,
    })
}

/// A case's infectious window `[from, until)`; open-ended when `until` is
/// not known yet.
#[must_use]
pub fn infectious_window(from: EventTime, until: Option<EventTime>) -> Interval {
    Interval::new(from, until.unwrap_or(EventTime::MAX).max(from))
}
