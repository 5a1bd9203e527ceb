//! Case timelines (`tracing.timelines`): where a case subject was and for how
//! long, over the case's infectious window.
//!
//! A visit is one of the subject's segments, clipped to the window. It is
//! identified like its segment (`(case, subject, lane, start, first cell)`,
//! see [`crate::ids::visit_id`]), so a segment that grows updates its visit
//! and a replay gives the same ids. Zero-length stays (a lone ping) are not
//! visits.

use epitrace_model::Cell;

use crate::interval::Interval;
use crate::observation::{Source, SourceSet};
use crate::segment::Segment;

/// The part of `segment` inside `window`, when it has a length.
#[must_use]
pub fn clip(segment: &Segment, window: Interval) -> Option<Interval> {
    segment
        .interval()
        .intersect(window)
        .filter(|i| !i.is_empty())
}

/// The confidence of a place stated in interview: below a check-in (0.95),
/// a fix (0.9), a card (0.8) and a fine tower cell (0.6).
pub const INTERVIEW_CONFIDENCE: f64 = 0.5;

/// Confidence that the subject was in the visit's cell for the whole visit:
/// the best of its sources. A check-in is a declaration at the venue (0.95);
/// a GPS or Wi-Fi fix is within tens of metres (0.9); a card payment places
/// the card, not necessarily its holder, at the merchant (0.8); a tower
/// record only bounds the phone to the tower's coverage, the coarser the
/// less telling (0.6 at res 9 and finer, 0.45 at 8, 0.3 at 7, 0.15 coarser);
/// a place stated in interview is the patient's memory, below every record
/// of the place itself ([`INTERVIEW_CONFIDENCE`], 0.5).
/// A heuristic for ordering and display, not a probability model.
#[must_use]
pub fn confidence(sources: SourceSet, cell: Cell) -> f64 {
    let tower = match u8::from(cell.resolution()) {
        9.. => 0.6,
        8 => 0.45,
        7 => 0.3,
        _ => 0.15,
    };
    sources
        .iter()
        .map(|s| match s {
            Source::Checkin => 0.95,
            Source::Gps | Source::Wifi => 0.9,
            Source::Card => 0.8,
            Source::Cell => tower,
            Source::Interview => INTERVIEW_CONFIDENCE,
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use epitrace_model::{EventTime, LatLng};
    use h3o::Resolution;

    use super::*;
    use crate::segment::{Lane, SegmentKey};

    fn at(min: i64) -> EventTime {
        EventTime::from_millis("t", 1_588_377_600_000 + min * 60_000).unwrap()
    }

    fn segment(start: i64, end: i64, sources: &[Source], res: Resolution) -> Segment {
        let cell = LatLng::new(37.5344, 126.9946).unwrap().to_cell(res);
        let mut set = SourceSet::of(sources[0]);
        for s in &sources[1..] {
            set.insert(*s);
        }
        Segment {
            key: SegmentKey {
                lane: Lane::ON_TIME,
                start: at(start),
                first_cell: cell,
            },
            cell,
            core: cell,
            end: at(end),
            sources: set,
            observations: 2,
        }
    }

    #[test]
    fn visits_are_clipped_to_the_window_and_never_empty() {
        let s = segment(0, 60, &[Source::Gps], Resolution::Ten);
        let w = Interval::new(at(30), at(600));
        assert_eq!(clip(&s, w), Some(Interval::new(at(30), at(60))));
        assert_eq!(
            clip(&s, Interval::new(at(60), at(90))),
            None,
            "touching is not inside"
        );
        assert_eq!(
            clip(&segment(5, 5, &[Source::Cell], Resolution::Eight), w),
            None
        );
    }

    #[test]
    fn confidence_is_the_best_source() {
        let c = |sources: &[Source], res| {
            confidence(
                segment(0, 10, sources, res).sources,
                segment(0, 10, sources, res).cell,
            )
        };
        assert!((c(&[Source::Cell], Resolution::Six) - 0.15).abs() < 1e-9);
        assert!((c(&[Source::Cell], Resolution::Nine) - 0.6).abs() < 1e-9);
        assert!((c(&[Source::Cell, Source::Card], Resolution::Seven) - 0.8).abs() < 1e-9);
        assert!((c(&[Source::Checkin, Source::Gps], Resolution::Ten) - 0.95).abs() < 1e-9);
    }
}
