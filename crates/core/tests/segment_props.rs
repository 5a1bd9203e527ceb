//! Properties of segmentation and of the interval measures that hold for any
//! arrival order, including arrivals far beyond the grace period.

// Helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{at, scenario};
use epitrace_core::interval::{Interval, measure, peak_window, union};
use epitrace_core::testkit::Input;
use epitrace_core::testkit::pipeline::MemoryPipeline;
use epitrace_core::{ChangeKind, Lane, Segment, SubjectTrail};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config(cases: u32, file: &'static str) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(1000, "tests/proptest-regressions/segment_props.txt"))]

    /// Nothing is lost, whatever the order: after a flush, every observation
    /// lies inside a segment of its subject whose cell contains its
    /// footprint — even when arrivals are shuffled far beyond the grace
    /// period and go to the late lane.
    #[test]
    fn every_observation_lands_in_a_segment(s in scenario(), seed in any::<u64>()) {
        let mut inputs: Vec<Input> = s.observations.iter()
            .map(|(subject, obs)| Input::Observation { subject: *subject, obs: *obs })
            .collect();
        // Deterministic Fisher–Yates with a tiny LCG: order unrelated to time.
        let mut x = seed | 1;
        for i in (1..inputs.len()).rev() {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from((x >> 33) % (i as u64 + 1)).unwrap();
            inputs.swap(i, j);
        }
        let mut p = MemoryPipeline::new(s.cfg.clone());
        for input in inputs {
            p.push(input);
        }
        p.finish();
        let segments = p.segments();
        for (subject, obs) in &s.observations {
            let found = segments.get(subject).into_iter().flatten().any(|seg| {
                seg.start() <= obs.time && obs.end() <= seg.end && seg.cell.contains(obs.cell)
            });
            prop_assert!(found, "{:?} at {} lost", subject, obs.time);
        }
    }

    /// The live segments (every change applied in order) are at every step
    /// exactly the closed ones plus the trail's open ones — what lets a
    /// segmenter store only closed segments and read open ones from the
    /// trail when a case looks back.
    #[test]
    fn live_segments_are_closed_plus_open(s in scenario(), seed in any::<u64>()) {
        let mut inputs: Vec<_> = s.observations.clone();
        let mut x = seed | 1;
        for i in (1..inputs.len()).rev() {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from((x >> 33) % (i as u64 + 1)).unwrap();
            inputs.swap(i, j);
        }
        let mut trails: std::collections::BTreeMap<_, SubjectTrail> = Default::default();
        let mut live: std::collections::BTreeMap<_, Segment> = Default::default();
        let mut closed: std::collections::BTreeMap<_, Segment> = Default::default();
        for (subject, obs) in inputs {
            let stream = obs.source.stream();
            let trail = trails.entry((subject, stream)).or_insert_with(|| SubjectTrail::new(stream));
            for change in trail.observe(&s.cfg.segment, obs) {
                let id = (subject, change.segment.key);
                prop_assert!(!closed.contains_key(&id), "a closed segment changed");
                match change.kind {
                    ChangeKind::Retracted => { live.remove(&id); }
                    ChangeKind::Closed => {
                        live.insert(id, change.segment);
                        closed.insert(id, change.segment);
                    }
                    ChangeKind::Opened | ChangeKind::Extended => { live.insert(id, change.segment); }
                }
            }
            let mut rebuilt = closed.clone();
            for ((subject, _), trail) in &trails {
                for seg in trail.open_segments(&s.cfg.segment) {
                    prop_assert!(
                        rebuilt.insert((*subject, seg.key), seg).is_none(),
                        "an open segment is also closed"
                    );
                }
            }
            prop_assert_eq!(&rebuilt, &live);
        }
    }

    /// Within grace, nothing ever goes to the late lane.
    #[test]
    fn within_grace_nothing_is_late(s in scenario()) {
        let mut trails: std::collections::BTreeMap<_, SubjectTrail> = Default::default();
        for input in &s.arrivals {
            if let Input::Observation { subject, obs } = input {
                let stream = obs.source.stream();
                let trail = trails.entry((*subject, stream)).or_insert_with(|| SubjectTrail::new(stream));
                for change in trail.observe(&s.cfg.segment, *obs) {
                    prop_assert_eq!(change.segment.key.lane, Lane::of(stream, 0));
                }
                // The stored form of the state is lossless at every step.
                prop_assert_eq!(&SubjectTrail::decode(&trail.encode()).unwrap(), &*trail);
            }
        }
    }
}

proptest! {
    #![proptest_config(config(2000, "tests/proptest-regressions/interval_props.txt"))]

    /// Union, measure and the sliding-window peak against brute force over
    /// one-minute steps.
    #[test]
    fn interval_measures_match_brute_force(
        raw in prop::collection::vec((0i64..600, 0i64..120), 0..12),
        window in 1i64..300,
    ) {
        let intervals: Vec<Interval> = raw.iter()
            .map(|&(s, l)| Interval::new(at(common::T0 + s * 60_000), at(common::T0 + (s + l) * 60_000)))
            .collect();
        let covered = |minute: i64| raw.iter().any(|&(s, l)| s <= minute && minute < s + l);
        let u = union(intervals);
        prop_assert!(u.windows(2).all(|w| w[0].end() < w[1].start()), "sorted, disjoint, gaps");
        let total: i64 = (0..720).filter(|m| covered(*m)).count().try_into().unwrap();
        prop_assert_eq!(measure(&u), total * 60_000);
        let best = (0..720)
            .map(|s| (s..s + window).filter(|m| covered(*m)).count())
            .max()
            .unwrap_or(0);
        let best = i64::try_from(best).unwrap() * 60_000;
        prop_assert_eq!(peak_window(&u, window * 60_000).map_or(0, |(ms, _)| ms), best);
    }
}
