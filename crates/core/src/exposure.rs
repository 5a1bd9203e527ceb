//! The exposure rule (DESIGN §2): a contact is exposed to a case when the time
//! they were co-located, counted within the case's infectious window, adds up
//! to at least `min_cumulative` within some sliding `window` (15 min in 24 h by
//! default).
//!
//! Time is measured as the *union* of the overlaps of every (case segment,
//! contact segment) pair, so that overlapping segments of one subject (a card
//! payment inside a stretch of tower pings, a late batch overlapping on-time
//! data, a person with both a phone and a card pseudonym in one case) are
//! never counted twice.
//!
//! A [`ContactLedger`] is the state of one (case, contact) pair: the overlap of
//! each segment pair, replaced or removed as segments grow, split or are
//! retracted, so the assessment depends only on the segments as they now are,
//! never on the order in which they arrived.

use std::collections::BTreeMap;

use epitrace_model::{Cell, SubjectId};

use crate::approval::{Category, Gate};
use crate::codec::{Reader, Writer};
use crate::config::ExposureConfig;
use crate::error::CoreError;
use crate::interval::{Interval, measure, peak_window, union};
use crate::likelihood::{Basis, LikelihoodConfig};
use crate::observation::Stream;
use crate::segment::SegmentKey;

/// Where and when one case segment and one contact segment were co-located.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Overlap {
    /// The common time, within the infectious window.
    pub window: Interval,
    /// Where: the finer of the two segment cells.
    pub cell: Cell,
    /// The case segment's core (see [`crate::segment::Segment::core`]).
    pub case_core: Cell,
    /// The contact segment's core.
    pub contact_core: Cell,
}

/// One (case segment, contact segment) pair.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PairKey {
    /// The case's subject (a case may have several pseudonyms).
    pub case_subject: SubjectId,
    /// The case's segment.
    pub case_segment: SegmentKey,
    /// The contact's segment.
    pub contact_segment: SegmentKey,
}

/// The overlaps between one case and one contact, by segment pair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactLedger {
    overlaps: BTreeMap<PairKey, Overlap>,
}

impl ContactLedger {
    /// Records (or, with `None`, forgets) the overlap of one segment pair.
    /// Returns whether anything changed.
    pub fn set(&mut self, pair: PairKey, overlap: Option<Overlap>) -> bool {
        match overlap.filter(|o| !o.window.is_empty()) {
            Some(o) => self.overlaps.insert(pair, o) != Some(o),
            None => self.overlaps.remove(&pair).is_some(),
        }
    }

    /// Forgets every pair involving a contact segment. Returns whether
    /// anything changed.
    pub fn forget_contact_segment(&mut self, segment: SegmentKey) -> bool {
        let before = self.overlaps.len();
        self.overlaps.retain(|p, _| p.contact_segment != segment);
        before != self.overlaps.len()
    }

    /// Forgets every pair involving a case segment. Returns whether anything
    /// changed.
    pub fn forget_case_segment(&mut self, subject: SubjectId, segment: SegmentKey) -> bool {
        let before = self.overlaps.len();
        self.overlaps
            .retain(|p, _| !(p.case_subject == subject && p.case_segment == segment));
        before != self.overlaps.len()
    }

    /// Whether no overlap is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.overlaps.is_empty()
    }

    /// The recorded pairs and their overlaps.
    pub fn pairs(&self) -> impl Iterator<Item = (&PairKey, &Overlap)> {
        self.overlaps.iter()
    }

    /// Applies the rule.
    #[must_use]
    pub fn assess(&self, cfg: &ExposureConfig) -> Assessment {
        self.assess_gated(cfg, Gate::OPEN)
    }

    /// Applies the rule to the overlaps whose case segment comes from a
    /// category `gate` opens (see [`crate::approval`]).
    #[must_use]
    pub fn assess_gated(&self, cfg: &ExposureConfig, gate: Gate) -> Assessment {
        let open: Vec<&Overlap> = self
            .overlaps
            .iter()
            .filter(|(p, _)| gate.allows_stream(p.case_segment.lane.stream()))
            .map(|(_, o)| o)
            .collect();
        let evidence = self
            .overlaps
            .keys()
            .filter(|p| gate.allows_stream(p.case_segment.lane.stream()))
            .fold(Gate::CLOSED, |g, p| {
                g.with(Category::of_stream(p.case_segment.lane.stream()))
            });
        let mut assessment = Assessment::of(open.iter().map(|o| o.window).collect(), cfg);
        assessment.evidence = evidence;
        assessment.first_cell = open
            .iter()
            .min_by_key(|o| (o.window.start(), o.cell))
            .map(|o| o.cell);
        assessment
    }

    /// The [`Basis`] of the overlaps whose case segment comes from a
    /// category `gate` opens: the time [`ContactLedger::assess_gated`]
    /// counts, by how precisely the less precisely placed side is known.
    #[must_use]
    pub fn basis_gated(&self, gate: Gate, cfg: &LikelihoodConfig) -> Basis {
        let open = || {
            self.overlaps
                .iter()
                .filter(move |(p, _)| gate.allows_stream(p.case_segment.lane.stream()))
        };
        let mut basis = Basis::of(open().map(|(_, o)| o), cfg);
        // A path meets only paths: the case side tells which overlaps are
        // co-travel.
        let paths = open()
            .filter(|(p, _)| p.case_segment.lane.stream() == Stream::Transit)
            .map(|(_, o)| o.window)
            .collect();
        basis.transit_ms = measure(&union(paths));
        basis
    }

    /// The state as bytes (format version 2: with both segments' cores),
    /// for a processor's store.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_version(2);
        w.len(self.overlaps.len());
        for (pair, overlap) in &self.overlaps {
            w.subject(pair.case_subject);
            w.segment_key(pair.case_segment);
            w.segment_key(pair.contact_segment);
            w.interval(overlap.window);
            w.cell(overlap.cell);
            w.cell(overlap.case_core);
            w.cell(overlap.contact_core);
        }
        w.finish()
    }

    /// Reads [`ContactLedger::encode`] back, and format version 1 (written
    /// before overlaps kept the cores: both read as the meeting cell).
    ///
    /// # Errors
    /// [`CoreError::CorruptState`].
    pub fn decode(bytes: &[u8]) -> Result<Self, CoreError> {
        let (mut r, version) = Reader::new_of("contact ledger", bytes, 1..=2)?;
        let n = r.len(80)?;
        let mut overlaps = BTreeMap::new();
        for _ in 0..n {
            let pair = PairKey {
                case_subject: r.subject()?,
                case_segment: r.segment_key()?,
                contact_segment: r.segment_key()?,
            };
            let (window, cell) = (r.interval()?, r.cell()?);
            let (case_core, contact_core) = if version >= 2 {
                (r.cell()?, r.cell()?)
            } else {
                (cell, cell)
            };
            let overlap = Overlap {
                window,
                cell,
                case_core,
                contact_core,
            };
            overlaps.insert(pair, overlap);
        }
        r.end()?;
        Ok(Self { overlaps })
    }
}

/// The rule applied to one (case, contact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// When they were co-located: sorted, disjoint.
    pub windows: Vec<Interval>,
    /// Total co-located time within the infectious window, in ms.
    pub cumulative_ms: i64,
    /// The most co-located time within any one rule window, in ms.
    pub peak_ms: i64,
    /// The earliest rule window holding `peak_ms`.
    pub peak_window: Option<Interval>,
    /// Whether `peak_ms >= min_cumulative`.
    pub exposed: bool,
    /// Where the earliest overlap happened (set by [`ContactLedger::assess`]).
    pub first_cell: Option<Cell>,
    /// The categories of the case's data the counted overlaps come from
    /// (set by [`ContactLedger::assess_gated`]; a [`Gate`] used as a set).
    pub evidence: Gate,
}

impl Assessment {
    /// Applies the rule to raw (possibly overlapping) co-location intervals.
    #[must_use]
    pub fn of(overlaps: Vec<Interval>, cfg: &ExposureConfig) -> Self {
        let windows = union(overlaps);
        let cumulative_ms = measure(&windows);
        let peak = peak_window(&windows, cfg.window.as_millis());
        let peak_ms = peak.map_or(0, |(ms, _)| ms);
        Self {
            cumulative_ms,
            peak_ms,
            peak_window: peak.map(|(_, w)| w),
            exposed: peak_ms >= cfg.min_cumulative.as_millis(),
            windows,
            first_cell: None,
            evidence: Gate::CLOSED,
        }
    }
}

#[cfg(test)]
mod tests {
    use epitrace_model::{EventTime, LatLng};
    use h3o::Resolution;

    use super::*;
    use crate::segment::Lane;

    fn ledger() -> (ContactLedger, PairKey, Overlap) {
        let t = |m: i64| {
            EventTime::from_millis("t", 1_588_377_600_000 + m * 60_000).unwrap_or(EventTime::MIN)
        };
        let pos = LatLng::new(37.5665, 126.978).unwrap_or_else(|_| unreachable!());
        let (fine, wide) = (pos.to_cell(Resolution::Ten), pos.to_cell(Resolution::Seven));
        let key = |m| SegmentKey {
            lane: Lane::ON_TIME,
            start: t(m),
            first_cell: fine,
        };
        let pair = PairKey {
            case_subject: SubjectId::from_bytes([1; 16]),
            case_segment: key(0),
            contact_segment: key(5),
        };
        let overlap = Overlap {
            window: Interval::new(t(5), t(40)),
            cell: fine,
            case_core: fine,
            contact_core: wide,
        };
        let mut l = ContactLedger::default();
        l.set(pair, Some(overlap));
        (l, pair, overlap)
    }

    #[test]
    fn the_ledger_keeps_the_coarser_cell_and_reads_format_1() {
        let (l, pair, overlap) = ledger();
        assert_eq!(ContactLedger::decode(&l.encode()).ok(), Some(l));
        // Format 1 (before the coarser cell): the same bytes without it,
        // read with the coarser cell equal to the cell.
        let mut w = Writer::with_version(1);
        w.len(1);
        w.subject(pair.case_subject);
        w.segment_key(pair.case_segment);
        w.segment_key(pair.contact_segment);
        w.interval(overlap.window);
        w.cell(overlap.cell);
        let old = ContactLedger::decode(&w.finish()).unwrap_or_default();
        let got: Vec<Overlap> = old.pairs().map(|(_, o)| *o).collect();
        assert_eq!(
            got,
            [Overlap {
                case_core: overlap.cell,
                contact_core: overlap.cell,
                ..overlap
            }]
        );
        assert!(ContactLedger::decode(&[3, 0, 0, 0, 0]).is_err(), "format 3");
    }

    #[test]
    fn the_basis_counts_only_the_open_categories() {
        let (l, _, _) = ledger();
        let cfg = LikelihoodConfig::default();
        assert_eq!(l.basis_gated(Gate::OPEN, &cfg).wide_ms, 35 * 60_000);
        assert_eq!(l.basis_gated(Gate::CLOSED, &cfg), Basis::default());
    }

    #[test]
    fn co_travel_is_the_time_of_the_pairs_of_paths() {
        let (mut l, pair, overlap) = ledger();
        let cfg = LikelihoodConfig::default();
        assert_eq!(l.basis_gated(Gate::OPEN, &cfg).transit_ms, 0);
        // Two paths met over minutes 20-50: 15 of them beyond the dwell's.
        let path = |k: SegmentKey| SegmentKey {
            lane: Lane::of(Stream::Transit, 0),
            ..k
        };
        let paths = PairKey {
            case_segment: path(pair.case_segment),
            contact_segment: path(pair.contact_segment),
            ..pair
        };
        let later = Overlap {
            window: Interval::new(
                overlap.window.start().saturating_add_ms(15 * 60_000),
                overlap.window.end().saturating_add_ms(10 * 60_000),
            ),
            ..overlap
        };
        l.set(paths, Some(later));
        let b = l.basis_gated(Gate::OPEN, &cfg);
        assert_eq!(b.transit_ms, 30 * 60_000);
        assert_eq!(b.total_ms(), 45 * 60_000);
        // A path is LOCATION data.
        let location = Gate::CLOSED.with(Category::Location);
        assert_eq!(l.basis_gated(location, &cfg).transit_ms, 30 * 60_000);
    }
}
