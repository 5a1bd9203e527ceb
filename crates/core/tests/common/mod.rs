//! Scenario generator shared by the property tests: a few venues, a few
//! subjects visiting them with pings, card payments and check-ins at mixed
//! accuracies, a few cases, and an arrival order that shuffles everything
//! within the grace period.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use epitrace_core::testkit::{CaseSpec, Input};
use epitrace_core::{Interval, Observation, Source, Span, TracingConfig};
use epitrace_model::time::{HOUR_MS, MINUTE_MS};
use epitrace_model::{CaseId, Cell, EventTime, LatLng, SubjectId};
use h3o::Resolution;
use proptest::prelude::*;

/// 2020-05-01T00:00:00Z.
pub const T0: i64 = 1_588_291_200_000;

pub fn at(ms: i64) -> EventTime {
    EventTime::from_millis("t", ms).unwrap()
}

pub fn subject(i: u8) -> SubjectId {
    SubjectId::from_bytes([i; 16])
}

/// Venues a few hundred metres to a few km apart around Itaewon, so that
/// coarse footprints of different venues are often co-located and fine ones
/// never are.
pub const VENUES: [(f64, f64); 4] = [
    (37.5344, 126.9946),
    (37.5350, 126.9952),
    (37.5372, 126.9900),
    (37.5600, 126.9700),
];

pub fn venue_cell(venue: usize, res: u8) -> Cell {
    let (lat, lng) = VENUES[venue % VENUES.len()];
    LatLng::new(lat, lng)
        .unwrap()
        .to_cell(Resolution::try_from(res).unwrap())
}

/// A 10 km line north, ridden in 30 minutes (20 km/h) by cars leaving
/// every 10 minutes from three hours before `T0` (before any visit, so a
/// ride never cuts a stay): riders of one car share a path.
pub const LINE: ((f64, f64), (f64, f64)) = ((37.50, 126.95), (37.59, 126.95));

/// A fix on the line, a fraction `f` of the way, at resolution 10.
pub fn line_cell(f: f64) -> Cell {
    let ((a, b), (c, d)) = LINE;
    LatLng::new(a + (c - a) * f, b + (d - b) * f)
        .unwrap()
        .to_cell(Resolution::Ten)
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub cfg: TracingConfig,
    pub observations: Vec<(SubjectId, Observation)>,
    pub cases: Vec<CaseSpec>,
    /// Everything, in arrival order.
    pub arrivals: Vec<Input>,
}

#[derive(Clone, Debug)]
struct Visit {
    venue: usize,
    start_min: i64,
    len_min: i64,
    pings: Vec<(i64, u8, Source)>,     // (offset min, res, source)
    extra: Option<(i64, Source, i64)>, // (offset min, Card|Checkin, dwell min)
}

fn source_res() -> impl Strategy<Value = (u8, Source)> {
    prop_oneof![
        (6u8..=8).prop_map(|r| (r, Source::Cell)),
        (9u8..=10).prop_map(|r| (r, Source::Gps)),
        Just((10u8, Source::Wifi)),
    ]
}

fn visit() -> impl Strategy<Value = Visit> {
    (
        0usize..VENUES.len(),
        0i64..(36 * 60),
        10i64..240,
        prop::collection::vec((0i64..240, source_res()), 1..12),
        prop::option::weighted(
            0.3,
            (
                0i64..60,
                prop_oneof![Just(Source::Card), Just(Source::Checkin)],
                0i64..180,
            ),
        ),
    )
        .prop_map(|(venue, start_min, len_min, pings, extra)| Visit {
            venue,
            start_min,
            len_min,
            pings: pings
                .into_iter()
                .map(|(off, (res, src))| (off % (len_min + 1), res, src))
                .collect(),
            extra,
        })
}

fn case_spec(n_subjects: u8) -> impl Strategy<Value = (Vec<u8>, i64, Option<i64>)> {
    (
        prop::collection::vec(0..n_subjects, 1..=2),
        -(24 * 60)..(24 * 60i64),
        prop::option::of(60i64..(3 * 24 * 60)),
    )
}

prop_compose! {
    pub fn scenario()(
        n_subjects in 2u8..=6,
    )(
        visits in prop::collection::vec(prop::collection::vec(visit(), 1..6), n_subjects as usize),
        cases in prop::collection::vec(case_spec(n_subjects), 1..=3),
        jitter in prop::collection::vec(0.0f64..=1.0, 200),
        case_arrival in prop::collection::vec(0.0f64..=1.0, 3),
        retract in prop::option::weighted(0.15, 0usize..3),
        min_cumulative_min in prop_oneof![Just(15i64), 1i64..60],
        rides in prop::collection::vec(
            prop::option::weighted(0.8, (0i64..2, prop::collection::vec(0.0f64..=1.0, 2..10))),
            n_subjects as usize,
        ),
    ) -> Scenario {
        let mut cfg = TracingConfig::default();
        cfg.exposure.min_cumulative = Span::minutes(min_cumulative_min);
        let grace = cfg.segment.grace.as_millis();

        let mut observations = Vec::new();
        for (i, subject_visits) in visits.iter().enumerate() {
            let who = subject(u8::try_from(i).unwrap());
            for v in subject_visits {
                let base = T0 + v.start_min * MINUTE_MS;
                for &(off, res, source) in &v.pings {
                    observations.push((who, Observation {
                        time: at(base + off * MINUTE_MS),
                        cell: venue_cell(v.venue, res),
                        source,
                        dwell: Span::ZERO,
                    }));
                }
                if let Some((off, source, dwell)) = v.extra {
                    observations.push((who, Observation {
                        time: at(base + off * MINUTE_MS),
                        cell: venue_cell(v.venue, 10),
                        source,
                        dwell: Span::minutes(dwell),
                    }));
                }
            }
        }

        // Rides: GPS fixes on the line at random moments of the ride.
        for (i, ride) in rides.iter().enumerate() {
            let who = subject(u8::try_from(i).unwrap());
            if let Some((car, fractions)) = ride {
                let start = T0 - 3 * HOUR_MS + car * 10 * MINUTE_MS;
                for &f in fractions {
                    #[allow(clippy::cast_possible_truncation)]
                    let t = start + (f * 30.0 * MINUTE_MS as f64) as i64;
                    observations.push((who, Observation {
                        time: at(t),
                        cell: line_cell(f),
                        source: Source::Gps,
                        dwell: Span::ZERO,
                    }));
                }
            }
        }

        let cases: Vec<CaseSpec> = cases
            .iter()
            .enumerate()
            .map(|(i, (subjects, from_min, len_min))| {
                let mut subjects: Vec<SubjectId> = subjects.iter().map(|s| subject(*s)).collect();
                subjects.sort();
                subjects.dedup();
                let from = at(T0 + from_min * MINUTE_MS);
                let until = len_min.map_or(EventTime::MAX, |l| at(T0 + (from_min + l) * MINUTE_MS));
                CaseSpec {
                    case: CaseId::new(format!("C{i}")).unwrap(),
                    subjects,
                    window: Interval::new(from, until),
                }
            })
            .collect();

        // Arrival order: each observation at time + U[0, grace]; cases at a
        // random point of the stream (before, during or after their trail).
        let span = 4 * 24 * HOUR_MS;
        let mut keyed: Vec<(i64, usize, Input)> = Vec::new();
        for (n, (who, obs)) in observations.iter().enumerate() {
            let j = jitter[n % jitter.len()];
            #[allow(clippy::cast_possible_truncation)]
            let delay = (j * grace as f64) as i64;
            keyed.push((obs.time.as_millis() + delay, n, Input::Observation { subject: *who, obs: *obs }));
        }
        for (i, case) in cases.iter().enumerate() {
            #[allow(clippy::cast_possible_truncation)]
            let key = T0 - HOUR_MS + (case_arrival[i] * span as f64) as i64;
            keyed.push((key, usize::MAX - i, Input::Case(case.clone())));
        }
        keyed.sort_by_key(|(k, n, _)| (*k, *n));
        let mut arrivals: Vec<Input> = keyed.into_iter().map(|(_, _, input)| input).collect();

        // Sometimes a case is retracted at the end: it must leave no exposure.
        let mut live_cases = cases.clone();
        if let Some(r) = retract.filter(|r| *r < cases.len()) {
            arrivals.push(Input::Retract(cases[r].case.clone()));
            live_cases.remove(r);
        }
        Scenario { cfg, observations, cases: live_cases, arrivals }
    }
}
