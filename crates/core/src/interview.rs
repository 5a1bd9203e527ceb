//! Interview correlation: what a patient said against what the data shows.
//!
//! An interview entry states a place (a position and how precisely it is
//! known) and a time. It is matched against the case's timeline — its live
//! visits, which hold only the categories its approvals open:
//!
//! - **corroborated** when a visit overlaps the stated time at a place
//!   *near* the stated one: the distance from the stated position to the
//!   visit cell's centre is at most the stated radius plus the cell's
//!   circumradius plus [`InterviewConfig::tolerance_m`]. The corroborating
//!   sources are those visits' sources;
//! - **contradicted** when visits overlap the stated time but none is near:
//!   the data puts the patient elsewhere then (the far visits are named);
//! - **no data** when no visit overlaps the stated time.
//!
//! A stated stay that the data corroborates for part of the time and
//! contradicts for another part is corroborated, with the contradicting
//! visits listed too: the investigator sees both. Pure: the caller passes
//! the visits.
//!
//! ## Interview places as tracing evidence
//!
//! A stated stay is also evidence of its own ([`evidence`]): one segment of
//! the case's first pseudonym, at the footprint of the stated place and
//! radius, over the stated time, from [`Source::Interview`] (confidence
//! [`INTERVIEW_CONFIDENCE`](crate::timeline::INTERVIEW_CONFIDENCE), below a
//! check-in's). The case-router publishes it to the presence join, which
//! pairs it with everyone there then, so a contact is found even where the
//! patient's phone left no record. It is the *case's* evidence only: the
//! join never indexes it as anyone's presence, so it makes nobody a contact
//! of another case. It counts only while the case's INTERVIEW category is
//! open (an approval, or `open_by_default`), like any other category; and
//! it is never a visit of the case's timeline, which stays what the data
//! shows, so that correlation never corroborates a statement with itself.

use epitrace_model::records::{InterviewEntry, ObservationSource};
use epitrace_model::{AccuracyM, CaseId, Cell, LatLng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::footprint::Footprinter;
use crate::observation::{Source, SourceSet, Stream};
use crate::segment::{Lane, Segment, SegmentKey};

/// How near is near: the `[tracing.interview]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterviewConfig {
    /// Slack added to the stated radius and the cell's size, in metres
    /// (GPS error, a venue's extent), at most 10000. Default 100.
    pub tolerance_m: u32,
}

impl Default for InterviewConfig {
    fn default() -> Self {
        Self { tolerance_m: 100 }
    }
}

impl InterviewConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.tolerance_m > 10_000 {
            return Err("tracing.interview.tolerance_m must be between 0 and 10000".into());
        }
        Ok(())
    }
}

/// A place and time as stated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stated {
    /// The place.
    pub position: LatLng,
    /// How precisely it is known, in metres.
    pub radius_m: f64,
    /// Stated arrival, ms.
    pub start_ms: i64,
    /// Stated departure, ms.
    pub end_ms: i64,
}

/// A stay the data shows (a visit of the case's timeline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed<'a> {
    /// Where.
    pub cell: Cell,
    /// From, ms.
    pub start_ms: i64,
    /// Until, ms.
    pub end_ms: i64,
    /// From which data.
    pub sources: &'a [ObservationSource],
}

/// The verdict on one stated stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// The data puts the patient there then.
    Corroborated,
    /// The data puts the patient elsewhere then.
    Contradicted,
    /// No data for that time.
    NoData,
}

/// What the data says about one stated stay.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    /// The verdict.
    pub verdict: Verdict,
    /// The sources of the corroborating visits, deduplicated, in order.
    pub sources: Vec<ObservationSource>,
    /// Indexes (into the visits given) of the corroborating visits.
    pub corroborating: Vec<usize>,
    /// Indexes of the visits that overlap the stated time far away.
    pub contradicting: Vec<usize>,
    /// How much of the stated time the corroborating visits cover, ms.
    pub corroborated_ms: i64,
    /// Distance from the stated place to the nearest overlapping visit's
    /// cell centre, in metres (`None` without overlapping visits).
    pub nearest_m: Option<f64>,
}

/// The lane of an interview entry's evidence segment: the
/// [`Stream::Interview`] stream, numbered by a 27-bit digest of (case,
/// entry id), so that two entries of one case never share a segment
/// identity unless their digests collide *and* they start at the same
/// instant in the same cell (then they are the same stay anyway).
#[must_use]
pub fn evidence_lane(case: &CaseId, entry_id: &str) -> Lane {
    let mut h = Sha256::new();
    h.update(b"epitrace.interview-lane.v1");
    h.update(
        u64::try_from(case.as_str().len())
            .unwrap_or(u64::MAX)
            .to_le_bytes(),
    );
    h.update(case.as_str().as_bytes());
    h.update(entry_id.as_bytes());
    let d = h.finalize();
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) & ((1 << 27) - 1);
    Lane::of(Stream::Interview, n)
}

/// The evidence segment of an interview entry: the stated place's
/// footprint (its radius as the accuracy) over the stated time, from
/// [`Source::Interview`]. `None` for a retracted entry and for an instant
/// (start = end), which can overlap nothing.
#[must_use]
pub fn evidence(entry: &InterviewEntry, fp: &Footprinter) -> Option<Segment> {
    if entry.retracted || entry.end <= entry.start {
        return None;
    }
    // Validated radii (1..=50 km) are valid accuracies; anything else
    // cannot be placed.
    let accuracy = AccuracyM::new(entry.radius_m).ok()?;
    let cell = fp.cell(entry.position, accuracy);
    Some(Segment {
        key: SegmentKey {
            lane: evidence_lane(&entry.case_id, entry.entry_id.as_str()),
            start: entry.start,
            first_cell: cell,
        },
        cell,
        core: cell,
        end: entry.end,
        sources: SourceSet::of(Source::Interview),
        observations: 1,
    })
}

/// The circumradius of a cell, in metres (its edge length, for a hexagon).
#[must_use]
pub fn cell_radius_m(cell: Cell) -> f64 {
    cell.resolution().edge_length_m()
}

/// Correlates one stated stay with the case's visits.
#[must_use]
pub fn correlate(stated: &Stated, visits: &[Observed<'_>], cfg: &InterviewConfig) -> Correlation {
    let mut sources: Vec<ObservationSource> = Vec::new();
    let mut corroborating = Vec::new();
    let mut contradicting = Vec::new();
    let mut covered: Vec<(i64, i64)> = Vec::new();
    let mut nearest_m: Option<f64> = None;
    for (i, v) in visits.iter().enumerate() {
        let from = v.start_ms.max(stated.start_ms);
        let until = v.end_ms.min(stated.end_ms);
        // A point stay (start = end) on either side overlaps at an instant.
        if from > until {
            continue;
        }
        let d = stated.position.distance_m(v.cell.center());
        nearest_m = Some(nearest_m.map_or(d, |n: f64| n.min(d)));
        if d <= stated.radius_m + cell_radius_m(v.cell) + f64::from(cfg.tolerance_m) {
            corroborating.push(i);
            covered.push((from, until));
            for s in v.sources {
                if !sources.contains(s) {
                    sources.push(*s);
                }
            }
        } else {
            contradicting.push(i);
        }
    }
    sources.sort_by_key(|s| s.as_symbol());
    covered.sort_unstable();
    let mut corroborated_ms = 0;
    let mut run: Option<(i64, i64)> = None;
    for (a, b) in covered {
        run = match run {
            Some((s, e)) if a <= e => Some((s, e.max(b))),
            Some((s, e)) => {
                corroborated_ms += e - s;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((s, e)) = run {
        corroborated_ms += e - s;
    }
    let verdict = if !corroborating.is_empty() {
        Verdict::Corroborated
    } else if !contradicting.is_empty() {
        Verdict::Contradicted
    } else {
        Verdict::NoData
    };
    Correlation {
        verdict,
        sources,
        corroborating,
        contradicting,
        corroborated_ms,
        nearest_m,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use h3o::Resolution;

    const MIN: i64 = 60_000;

    fn at(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).unwrap()
    }

    // Itaewon, and Gangnam about 6 km away.
    const ITAEWON: (f64, f64) = (37.5345, 126.9946);
    const GANGNAM: (f64, f64) = (37.4979, 127.0276);

    fn stated(p: (f64, f64), start: i64, end: i64) -> Stated {
        Stated {
            position: at(p.0, p.1),
            radius_m: 50.0,
            start_ms: start * MIN,
            end_ms: end * MIN,
        }
    }

    fn visit(
        p: (f64, f64),
        res: Resolution,
        start: i64,
        end: i64,
        s: &[ObservationSource],
    ) -> Observed<'_> {
        Observed {
            cell: at(p.0, p.1).to_cell(res),
            start_ms: start * MIN,
            end_ms: end * MIN,
            sources: s,
        }
    }

    #[test]
    fn a_stay_near_and_during_a_visit_is_corroborated_by_its_sources() {
        let card = [ObservationSource::Card];
        let towers = [ObservationSource::Cell, ObservationSource::Wifi];
        let visits = [
            visit(ITAEWON, Resolution::Ten, 0, 30, &card),
            visit(ITAEWON, Resolution::Eight, 20, 90, &towers),
            visit(GANGNAM, Resolution::Ten, 200, 260, &card),
        ];
        let c = correlate(
            &stated(ITAEWON, 10, 60),
            &visits,
            &InterviewConfig::default(),
        );
        assert_eq!(c.verdict, Verdict::Corroborated);
        assert_eq!(c.corroborating, [0, 1]);
        assert_eq!(
            c.sources,
            [
                ObservationSource::Card,
                ObservationSource::Cell,
                ObservationSource::Wifi
            ]
        );
        assert_eq!(c.corroborated_ms, 50 * MIN);
        assert!(c.contradicting.is_empty());
    }

    #[test]
    fn a_stay_where_the_data_puts_the_patient_elsewhere_is_contradicted() {
        let card = [ObservationSource::Card];
        let visits = [visit(GANGNAM, Resolution::Ten, 0, 60, &card)];
        let c = correlate(
            &stated(ITAEWON, 10, 20),
            &visits,
            &InterviewConfig::default(),
        );
        assert_eq!(c.verdict, Verdict::Contradicted);
        assert_eq!(c.contradicting, [0]);
        assert!(c.nearest_m.unwrap() > 4_000.0, "{:?}", c.nearest_m);
        // A coarse tower visit covering both places is near enough to both.
        let coarse = [visit(GANGNAM, Resolution::Five, 0, 60, &card)];
        let c = correlate(
            &stated(ITAEWON, 10, 20),
            &coarse,
            &InterviewConfig::default(),
        );
        assert_eq!(c.verdict, Verdict::Corroborated);
    }

    #[test]
    fn a_stay_at_a_time_without_data_has_no_data() {
        let card = [ObservationSource::Card];
        let visits = [visit(ITAEWON, Resolution::Ten, 0, 60, &card)];
        let c = correlate(
            &stated(ITAEWON, 61, 120),
            &visits,
            &InterviewConfig::default(),
        );
        assert_eq!(c.verdict, Verdict::NoData);
        assert_eq!(c.nearest_m, None);
        assert_eq!(
            correlate(&stated(ITAEWON, 0, 10), &[], &InterviewConfig::default()).verdict,
            Verdict::NoData
        );
    }

    #[test]
    fn the_tolerance_decides_the_margin() {
        let card = [ObservationSource::Card];
        // ~300 m north of the stated place, a fine cell (res 10, ~76 m).
        let visits = [visit(
            (ITAEWON.0 + 0.0027, ITAEWON.1),
            Resolution::Ten,
            0,
            60,
            &card,
        )];
        let tight = InterviewConfig { tolerance_m: 0 };
        let loose = InterviewConfig { tolerance_m: 300 };
        assert_eq!(
            correlate(&stated(ITAEWON, 0, 60), &visits, &tight).verdict,
            Verdict::Contradicted
        );
        assert_eq!(
            correlate(&stated(ITAEWON, 0, 60), &visits, &loose).verdict,
            Verdict::Corroborated
        );
    }
}
