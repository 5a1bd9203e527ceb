//! The incremental path (segmenter → co-location index → exposure ledgers,
//! fed in a shuffled arrival order within the grace period) against the
//! brute-force oracle: exactly the same (case, contact) pairs, the same
//! cumulative and peak seconds.

// Helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{Scenario, scenario};
use epitrace_core::testkit::Input;
use epitrace_core::testkit::oracle;
use epitrace_core::testkit::pipeline::MemoryPipeline;
use epitrace_core::{Observation, Stream, TracingConfig};
use epitrace_model::SubjectId;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::FileFailurePersistence;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn run(s: &Scenario, finish: bool) -> MemoryPipeline {
    let mut p = MemoryPipeline::new(s.cfg.clone());
    for input in &s.arrivals {
        p.push(input.clone());
    }
    if finish {
        p.finish();
    }
    p
}

fn compare(s: &Scenario, p: &MemoryPipeline) -> Result<(), TestCaseError> {
    let expected = oracle::exposures(&s.observations, &s.cases, &s.cfg);
    let got = p.exposures();
    let got_keys: Vec<_> = got.keys().collect();
    let expected_keys: Vec<_> = expected.keys().collect();
    prop_assert_eq!(got_keys, expected_keys, "(case, contact) pairs differ");
    for (k, want) in &expected {
        let have = &got[k];
        prop_assert_eq!(
            have.cumulative_ms,
            want.cumulative_ms,
            "cumulative for {:?}",
            k
        );
        prop_assert_eq!(have.peak_ms, want.peak_ms, "peak for {:?}", k);
        // The tolerance is ±1 s; the two paths agree to the ms.
        prop_assert!(have.exposed);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/oracle_props.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// The headline property: same exposures as the oracle, whatever the
    /// arrival order within the grace period, both while segments are still
    /// open and after every segment has closed.
    #[test]
    fn incremental_equals_oracle(s in scenario()) {
        let open = run(&s, false);
        compare(&s, &open)?;
        let mut closed = open;
        closed.finish();
        compare(&s, &closed)?;
    }

    /// The segmenter alone: after all arrivals (any order within grace) and
    /// a flush, each subject's segments are the oracle's in-order walk.
    #[test]
    fn segments_equal_oracle_walk(s in scenario()) {
        let p = run(&s, true);
        let mut by_feed: BTreeMap<(SubjectId, Stream), Vec<Observation>> = BTreeMap::new();
        for (who, obs) in &s.observations {
            by_feed.entry((*who, obs.source.stream())).or_default().push(*obs);
        }
        let segments = p.segments();
        // A subject's segments of one stream, as the oracle sees them, sorted.
        let of = |who: &SubjectId, stream: Stream| {
            let mut v: Vec<_> = segments
                .get(who)
                .into_iter()
                .flatten()
                .filter(|seg| seg.key.lane.stream() == stream)
                .map(|seg| oracle::OracleSegment {
                    cell: seg.cell,
                    start: seg.start().as_millis(),
                    end: seg.end.as_millis(),
                })
                .collect();
            v.sort_by_key(|seg| (seg.start, seg.cell));
            v
        };
        for ((who, stream), obs) in &by_feed {
            let mut want = oracle::segments(obs, s.cfg.segment.max_gap.as_millis());
            want.sort_by_key(|seg| (seg.start, seg.cell));
            prop_assert_eq!(of(who, *stream), want, "segments of {:?} {:?}", who, stream);
            if *stream != Stream::Telecom {
                continue;
            }
            // The paths between its GPS fixes.
            let mut want = oracle::transit_segments(obs, &s.cfg);
            want.sort_by_key(|seg| (seg.start, seg.cell));
            prop_assert_eq!(of(who, Stream::Transit), want, "transit segments of {:?}", who);
        }
    }

    /// Arrival order does not matter at all within grace: the sorted stream
    /// and the shuffled one give identical exposures.
    #[test]
    fn arrival_order_is_irrelevant(s in scenario()) {
        let shuffled = run(&s, false).exposures();
        let mut sorted = s.clone();
        let (mut obs, other): (Vec<Input>, Vec<Input>) = s
            .arrivals
            .iter()
            .cloned()
            .partition(|i| matches!(i, Input::Observation { .. }));
        obs.sort_by_key(|i| match i {
            Input::Observation { obs, .. } => obs.time,
            _ => unreachable!(),
        });
        sorted.arrivals = other.iter().filter(|i| matches!(i, Input::Case(_))).cloned()
            .chain(obs)
            .chain(other.iter().filter(|i| matches!(i, Input::Retract(_))).cloned())
            .collect();
        prop_assert_eq!(run(&sorted, false).exposures(), shuffled);
    }
}

/// Guards the generator: the property above is only evidence if scenarios
/// often contain exposures, near misses and cross-resolution matches.
#[test]
fn scenarios_are_not_vacuous() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let (mut with_exposure, mut with_non_exposed_overlap, mut total) = (0, 0, 0);
    let mut with_transit = 0;
    let mut total_exposures = 0;
    for _ in 0..300 {
        let s = scenario().new_tree(&mut runner).unwrap().current();
        let exposed = oracle::exposures(&s.observations, &s.cases, &s.cfg);
        let mut loose = s.cfg.clone();
        loose.exposure.min_cumulative = epitrace_core::Span::from_millis(1);
        let any_overlap = oracle::exposures(&s.observations, &s.cases, &loose);
        total += 1;
        total_exposures += exposed.len();
        if !exposed.is_empty() {
            with_exposure += 1;
        }
        if any_overlap.len() > exposed.len() {
            with_non_exposed_overlap += 1;
        }
        let mut no_paths = s.cfg.clone();
        no_paths.segment.transit.enabled = false;
        if oracle::exposures(&s.observations, &s.cases, &no_paths) != exposed {
            with_transit += 1;
        }
    }
    println!(
        "{with_exposure}/{total} scenarios with exposures ({total_exposures} in all), {with_non_exposed_overlap} with overlaps below the threshold, {with_transit} where co-travel changes them"
    );
    assert!(
        with_transit * 20 >= total,
        "too few scenarios where co-travel matters: {with_transit}/{total}"
    );
    // About a third (90-107 of 300 depending on the sample drawn).
    assert!(
        with_exposure * 4 >= total,
        "too few scenarios with exposures: {with_exposure}/{total}"
    );
    assert!(
        with_non_exposed_overlap * 10 >= total,
        "too few near misses: {with_non_exposed_overlap}/{total}"
    );
}

#[test]
fn default_config_is_what_scenarios_vary_from() {
    assert_eq!(
        TracingConfig::default().segment.max_gap.as_millis(),
        30 * 60 * 1000
    );
}
