//! The brute-force oracle: exposures computed from all raw observations and
//! cases at once, as naively as possible.
//!
//! - segmentation: sort each subject's observations and walk them (written
//!   out again here, without the incremental machinery);
//! - transit: every pair of consecutive GPS fixes of a subject sampled
//!   into ticks, the ticks walked like a feed; a path meets only paths;
//! - co-location: h3o's `parent`, not cell keys;
//! - pairs: every case segment against every segment of every other subject;
//! - time: the union is measured on elementary intervals between all
//!   endpoints, and the sliding-window peak by trying every interval start
//!   as a window start — quadratic and cubic, and obviously right.

use std::collections::{BTreeMap, BTreeSet};

use epitrace_model::{CaseId, Cell, SubjectId};

use crate::config::TracingConfig;
use crate::observation::Observation;

use super::CaseSpec;

/// A segment as the oracle sees it: `[start, end)` in `cell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OracleSegment {
    /// A cell containing every footprint of the segment.
    pub cell: Cell,
    /// First observation time, ms.
    pub start: i64,
    /// Latest observation end, ms.
    pub end: i64,
}

/// The oracle's verdict on one (case, contact).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleExposure {
    /// Total co-located time within the infectious window, ms.
    pub cumulative_ms: i64,
    /// Most co-located time within one rule window, ms.
    pub peak_ms: i64,
}

fn contains(outer: Cell, inner: Cell) -> bool {
    inner.index().parent(outer.index().resolution()) == Some(outer.index())
}

/// Segments of one subject's feed, from all of its observations (the caller
/// groups observations by subject and feed).
#[must_use]
pub fn segments(observations: &[Observation], max_gap_ms: i64) -> Vec<OracleSegment> {
    let mut obs: Vec<Observation> = observations.to_vec();
    obs.sort();
    obs.dedup();
    let mut out: Vec<OracleSegment> = Vec::new();
    let mut open = false;
    for o in obs {
        let (t, end) = (o.time.as_millis(), o.end().as_millis());
        if open {
            let last = out.len() - 1;
            let seg = &mut out[last];
            let near = t - seg.end <= max_gap_ms;
            if near && (contains(seg.cell, o.cell) || contains(o.cell, seg.cell)) {
                seg.end = seg.end.max(end);
                if contains(o.cell, seg.cell) {
                    seg.cell = o.cell;
                }
                continue;
            }
        }
        out.push(OracleSegment {
            cell: o.cell,
            start: t,
            end,
        });
        open = true;
    }
    out
}

/// A subject's transit segments: the ticks each GPS fix makes after the
/// two before it among all of its observations
/// ([`crate::transit::ticks_at`]: paths, and runs of paths extended at
/// both ends), walked like a feed.
#[must_use]
pub fn transit_segments(observations: &[Observation], cfg: &TracingConfig) -> Vec<OracleSegment> {
    let mut fixes: Vec<Observation> = observations
        .iter()
        .filter(|o| crate::transit::is_fix(o))
        .copied()
        .collect();
    fixes.sort();
    fixes.dedup();
    let ticks: Vec<Observation> = (1..fixes.len())
        .flat_map(|i| {
            let p = i.checked_sub(2).and_then(|j| fixes.get(j));
            crate::transit::ticks_at(p, &fixes[i - 1], &fixes[i], &cfg.segment.transit)
        })
        .collect();
    segments(&ticks, cfg.segment.max_gap.as_millis())
}

/// Length of the union of `intervals` inside `[lo, hi)`, by elementary
/// intervals.
fn covered(intervals: &[(i64, i64)], lo: i64, hi: i64) -> i64 {
    let mut points: Vec<i64> = intervals
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .chain([lo, hi])
        .filter(|p| (lo..=hi).contains(p))
        .collect();
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .filter(|w| intervals.iter().any(|&(a, b)| a <= w[0] && w[1] <= b))
        .map(|w| w[1] - w[0])
        .sum()
}

/// [`exposures`] with approvals: only the cases' own observations of the
/// `open` categories count (the population's all do), as
/// `crate::approval` gates them.
#[must_use]
pub fn exposures_approved(
    observations: &[(SubjectId, Observation)],
    cases: &[CaseSpec],
    cfg: &TracingConfig,
    open: &[crate::approval::Category],
) -> BTreeMap<(CaseId, SubjectId), OracleExposure> {
    exposures_approved_with_statements(observations, cases, cfg, open, &[])
}

/// [`exposures_approved`] with places the cases stated in interview
/// ([`exposures_with_statements`]), which count only when INTERVIEW is
/// among the `open` categories.
#[must_use]
pub fn exposures_approved_with_statements(
    observations: &[(SubjectId, Observation)],
    cases: &[CaseSpec],
    cfg: &TracingConfig,
    open: &[crate::approval::Category],
    stated: &[(CaseId, OracleSegment)],
) -> BTreeMap<(CaseId, SubjectId), OracleExposure> {
    let case_subjects: BTreeSet<SubjectId> = cases
        .iter()
        .flat_map(|c| c.subjects.iter().copied())
        .collect();
    let kept: Vec<(SubjectId, Observation)> = observations
        .iter()
        .filter(|(subject, o)| {
            !case_subjects.contains(subject)
                || open.contains(&crate::approval::Category::of_stream(o.source.stream()))
        })
        .cloned()
        .collect();
    let stated = if open.contains(&crate::approval::Category::Interview) {
        stated
    } else {
        &[]
    };
    exposures_with_statements(&kept, cases, cfg, stated)
}

/// Every (case, contact) that meets the rule, from everything at once.
#[must_use]
pub fn exposures(
    observations: &[(SubjectId, Observation)],
    cases: &[CaseSpec],
    cfg: &TracingConfig,
) -> BTreeMap<(CaseId, SubjectId), OracleExposure> {
    exposures_with_statements(observations, cases, cfg, &[])
}

/// [`exposures`] with places the cases stated in interview: each stated
/// stay is one more segment of its case's own (never merged with another,
/// never anyone's contact segment).
#[must_use]
pub fn exposures_with_statements(
    observations: &[(SubjectId, Observation)],
    cases: &[CaseSpec],
    cfg: &TracingConfig,
    stated: &[(CaseId, OracleSegment)],
) -> BTreeMap<(CaseId, SubjectId), OracleExposure> {
    let max_gap = cfg.segment.max_gap.as_millis();
    // Each feed of a subject is segmented on its own.
    let mut by_feed: BTreeMap<(SubjectId, u8), Vec<Observation>> = BTreeMap::new();
    for (subject, obs) in observations {
        by_feed
            .entry((*subject, obs.source.stream() as u8))
            .or_default()
            .push(*obs);
    }
    let mut segs: BTreeMap<SubjectId, Vec<OracleSegment>> = BTreeMap::new();
    for ((subject, _), obs) in &by_feed {
        segs.entry(*subject)
            .or_default()
            .extend(segments(obs, max_gap));
    }
    // Paths, apart: a path meets only paths.
    let mut paths: BTreeMap<SubjectId, Vec<OracleSegment>> = BTreeMap::new();
    for ((subject, stream), obs) in &by_feed {
        if *stream == crate::observation::Stream::Telecom as u8 {
            paths.insert(*subject, transit_segments(obs, cfg));
        }
    }

    let mut out = BTreeMap::new();
    for case in cases {
        let own: BTreeSet<SubjectId> = case.subjects.iter().copied().collect();
        let (w_lo, w_hi) = (
            case.window.start().as_millis(),
            case.window.end().as_millis(),
        );
        let mut per_contact: BTreeMap<SubjectId, Vec<(i64, i64)>> = BTreeMap::new();
        let statements = stated
            .iter()
            .filter(|(c, _)| *c == case.case)
            .map(|(_, seg)| seg);
        let case_segments = own
            .iter()
            .flat_map(|subject| segs.get(subject).into_iter().flatten())
            .chain(statements)
            .map(|s| (s, &segs));
        let case_paths = own
            .iter()
            .flat_map(|subject| paths.get(subject).into_iter().flatten())
            .map(|s| (s, &paths));
        for (cs, others) in case_segments.chain(case_paths) {
            for (contact, contact_segs) in others {
                if own.contains(contact) {
                    continue;
                }
                for ks in contact_segs {
                    if !(contains(cs.cell, ks.cell) || contains(ks.cell, cs.cell)) {
                        continue;
                    }
                    let lo = cs.start.max(ks.start).max(w_lo);
                    let hi = cs.end.min(ks.end).min(w_hi);
                    if lo < hi {
                        per_contact.entry(*contact).or_default().push((lo, hi));
                    }
                }
            }
        }
        let window = cfg.exposure.window.as_millis();
        for (contact, intervals) in per_contact {
            let cumulative_ms = covered(&intervals, i64::MIN / 4, i64::MAX / 4);
            let peak_ms = intervals
                .iter()
                .map(|&(start, _)| covered(&intervals, start, start.saturating_add(window)))
                .max()
                .unwrap_or(0);
            if peak_ms >= cfg.exposure.min_cumulative.as_millis() {
                out.insert(
                    (case.case.clone(), contact),
                    OracleExposure {
                        cumulative_ms,
                        peak_ms,
                    },
                );
            }
        }
    }
    out
}
