//! The whole topology driven in memory by the engine's `TopologyDriver`
//! (Kafka Streams' `TopologyTestDriver`): every registered processor over
//! the in-memory store twin, through the same batch step production runs,
//! each output appended to its topic and read by the processors that
//! consume it, until nothing is left to process. No broker, so it runs in
//! a second over several scenario seeds and batch sizes; the result must
//! equal the brute-force oracle. (The end-to-end test does the same through
//! a real Kafka broker and RocksDB.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use epitrace_core::testkit::{CaseSpec, oracle};
use epitrace_core::{Ingest, TracingConfig};
use epitrace_engine::TopologyDriver;
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{DeadLetter, Exposure, ExposureStatus};
use epitrace_model::topics::{APPROVALS, CANDIDATES, CASES, DEADLETTER, EXPOSURES};
use epitrace_model::{CaseId, SubjectId};
use epitrace_processors::PipelineConfig;
use epitrace_processors::registry::test_driver;
use epitrace_sim::{Scenario, nightlife};

/// The wall clock the processors see (2026-11-18).
const NOW_MS: i64 = 1_795_000_000_000;

/// The scenario's trail, cases, approvals and late records, in that order.
fn pipe_scenario(driver: &mut TopologyDriver, s: &Scenario) {
    for r in s.trail.iter() {
        driver.pipe(r.topic(), Some(&r.key()), Some(&r.encode().unwrap()));
    }
    for c in &s.cases {
        let payload = encode_single_object(c).unwrap();
        driver.pipe(CASES, Some(c.case_id.as_str().as_bytes()), Some(&payload));
    }
    for a in s.approvals() {
        let payload = encode_single_object(&a).unwrap();
        driver.pipe(
            APPROVALS,
            Some(a.case_id.as_str().as_bytes()),
            Some(&payload),
        );
    }
    for r in s.late.iter() {
        driver.pipe(r.topic(), Some(&r.key()), Some(&r.encode().unwrap()));
    }
}

#[test]
fn processors_in_memory_equal_the_oracle() {
    let pipeline = PipelineConfig::default();
    let cfg = TracingConfig::default();
    for (seed, batch) in [(1, 1), (2, 7), (3, 100), (4, 5000), (5, 33)] {
        let s = nightlife(80, seed).unwrap();
        let mut driver = test_driver(&pipeline, NOW_MS).unwrap();
        driver.set_batch_size(batch);
        pipe_scenario(&mut driver, &s);
        for m in &s.malformed {
            driver.pipe(m.topic, Some(&m.key), Some(&m.payload));
        }
        let stats = driver.run().unwrap();
        assert!(stats.batches > 0);
        let log: BTreeMap<&str, Vec<Vec<u8>>> = [EXPOSURES, DEADLETTER]
            .into_iter()
            .map(|t| {
                let payloads = driver
                    .read(t)
                    .into_iter()
                    .filter_map(|r| r.payload.clone())
                    .collect();
                (t, payloads)
            })
            .collect();
        let mut dead: Vec<String> = log[DEADLETTER]
            .iter()
            .map(|b| {
                let d: DeadLetter = decode_single_object(b, &DecodeOptions::default()).unwrap();
                d.reason_code.as_str().to_owned()
            })
            .collect();

        let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
        for bytes in &log[EXPOSURES] {
            let e: Exposure = decode_single_object(bytes, &DecodeOptions::default()).unwrap();
            latest.insert((e.case_id.clone(), e.contact), e);
        }
        latest.retain(|_, e| e.status != ExposureStatus::Retracted);

        let ingest = Ingest::new(&cfg);
        let obs: Vec<_> = s.feed().map(|r| r.observation(&ingest)).collect();
        let specs: Vec<CaseSpec> = s.live_cases().iter().map(CaseSpec::from_event).collect();
        let expected = oracle::exposures(&obs, &specs, &cfg);
        assert!(!expected.is_empty());
        let got: Vec<_> = latest
            .iter()
            .map(|(k, e)| (k.clone(), i64::from(e.cumulative_s)))
            .collect();
        let want: Vec<_> = expected
            .iter()
            .map(|(k, e)| (k.clone(), e.cumulative_ms / 1000))
            .collect();
        assert_eq!(got, want, "seed {seed}, batch {batch}");

        dead.sort();
        let mut want_dead: Vec<String> = s.malformed.iter().map(|m| m.reason.to_owned()).collect();
        want_dead.sort();
        assert_eq!(dead, want_dead);
    }
}

/// The presence join's in-memory copies of its state (`join.cache_segments`)
/// are for speed only: with none, one entry, or the default, it sends the
/// same candidates in the same order, byte for byte, at any batch size.
#[test]
fn the_join_cache_changes_no_output() {
    let s = nightlife(80, 6).unwrap();
    for batch in [1, 50, 5000] {
        let mut runs: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
        for cache in [0, 1, 32_768] {
            let mut pipeline = PipelineConfig::default();
            pipeline.tracing.join.cache_segments = cache;
            let mut driver = test_driver(&pipeline, NOW_MS).unwrap();
            driver.set_batch_size(batch);
            pipe_scenario(&mut driver, &s);
            driver.run().unwrap();
            let candidates = driver
                .read(CANDIDATES)
                .into_iter()
                .filter_map(|r| r.payload.clone())
                .collect();
            runs.push((cache, candidates));
        }
        let (_, first) = &runs[0];
        assert!(!first.is_empty(), "batch {batch}: no candidates at all");
        for (cache, candidates) in &runs[1..] {
            assert!(
                candidates == first,
                "batch {batch}: cache {cache} sent {} candidates, no cache {}",
                candidates.len(),
                first.len()
            );
        }
    }
}

/// The final exposures, likelihood and evidence included, do not depend on
/// how records were batched (which changes how the segmenter's partitions
/// interleave at the presence join): what every exposure says is a function
/// of the data only.
#[test]
fn the_final_exposures_do_not_depend_on_batching() {
    let pipeline = PipelineConfig::default();
    let s = nightlife(80, 3).unwrap();
    let mut runs = Vec::new();
    for batch in [1, 7, 100, 5000] {
        let mut driver = test_driver(&pipeline, NOW_MS).unwrap();
        driver.set_batch_size(batch);
        pipe_scenario(&mut driver, &s);
        driver.run().unwrap();
        let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
        for r in driver.read(EXPOSURES) {
            let e: Exposure =
                decode_single_object(r.payload.as_ref().unwrap(), &DecodeOptions::default())
                    .unwrap();
            latest.insert((e.case_id.clone(), e.contact), e);
        }
        latest.retain(|_, e| e.status != ExposureStatus::Retracted);
        let finals: Vec<_> = latest
            .into_values()
            .map(|e| {
                let b = e.basis.expect("a basis");
                assert_eq!(b.total_s(), u64::from(e.cumulative_s));
                (
                    e.exposure_id,
                    e.windows,
                    e.cumulative_s,
                    e.likelihood.expect("a likelihood"),
                    e.contact_class.expect("a class"),
                    b,
                )
            })
            .collect();
        assert!(!finals.is_empty());
        runs.push((batch, finals));
    }
    for (batch, finals) in &runs[1..] {
        assert_eq!(finals, &runs[0].1, "batch {batch} against batch 1");
    }
}
