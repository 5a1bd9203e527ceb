//! The four processors driven in memory — a topology test driver in the
//! manner of Kafka Streams': the real `Processor` implementations over the
//! in-memory store twin, each output routed to the processors that read its
//! topic, until nothing is left to process. No broker, so it runs in
//! milliseconds over several scenario seeds and batch sizes; the result must
//! equal the brute-force oracle. (The end-to-end test does the same through
//! a real Kafka broker and RocksDB.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, VecDeque};

use epitrace_core::testkit::{CaseSpec, oracle};
use epitrace_core::{Ingest, TracingConfig};
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{Exposure, ExposureStatus};
use epitrace_model::topics::{CASES, EXPOSURES};
use epitrace_model::{CaseId, SubjectId};
use epitrace_processors::case_router::CaseRouter;
use epitrace_processors::exposure_aggregator::ExposureAggregator;
use epitrace_processors::presence_join::PresenceJoin;
use epitrace_processors::segmenter::Segmenter;
use epitrace_sim::nightlife;
use epitrace_state::{KvStore, MemStore, Txn};
use epitrace_stream::{InputRecord, OutputRecord, ProcessError, Processor};

struct Node {
    processor: Box<dyn Processor>,
    store: MemStore,
    inputs: Vec<String>,
}

/// Runs every node until all topic queues are drained; returns every record
/// each topic received, in order, and the dead letters.
fn drive(
    nodes: &mut [Node],
    seed_records: Vec<OutputRecord>,
    batch: usize,
) -> (BTreeMap<String, Vec<Vec<u8>>>, Vec<String>) {
    let mut log: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    // Per node, the records it has yet to read.
    let mut queues: Vec<VecDeque<OutputRecord>> = vec![VecDeque::new(); nodes.len()];
    let mut dead = Vec::new();
    let route = |recs: Vec<OutputRecord>,
                 queues: &mut Vec<VecDeque<OutputRecord>>,
                 log: &mut BTreeMap<String, Vec<Vec<u8>>>,
                 nodes: &[Node]| {
        for r in recs {
            log.entry(r.topic.clone())
                .or_default()
                .push(r.payload.clone());
            for (i, n) in nodes.iter().enumerate() {
                if n.inputs.contains(&r.topic) {
                    queues[i].push_back(r.clone());
                }
            }
        }
    };
    route(seed_records, &mut queues, &mut log, nodes);
    let mut offset = 0i64;
    loop {
        let mut progressed = false;
        for i in 0..nodes.len() {
            if queues[i].is_empty() {
                continue;
            }
            progressed = true;
            let take: Vec<OutputRecord> = (0..batch).map_while(|_| queues[i].pop_front()).collect();
            let node = &mut nodes[i];
            let mut txn = Txn::new(&node.store);
            let mut out = Vec::new();
            for r in &take {
                offset += 1;
                let rec = InputRecord {
                    topic: &r.topic,
                    partition: 0,
                    offset,
                    key: Some(&r.key),
                    payload: Some(&r.payload),
                    timestamp_ms: Some(1_795_000_000_000 + offset),
                    received_at_ms: 1_795_000_000_000,
                };
                match node.processor.process(&rec, &mut txn, &mut out) {
                    Ok(()) => {}
                    Err(ProcessError::Rejected { reason, .. }) => dead.push(reason.to_owned()),
                    Err(ProcessError::Fatal(e)) => panic!("{}: {e}", node.processor.name()),
                }
                txn.set_offset(&r.topic, 0, offset + 1);
            }
            node.processor.end_batch(&mut txn, &mut out).unwrap();
            node.store.write(txn.into_write_set()).unwrap();
            route(out, &mut queues, &mut log, nodes);
        }
        if !progressed {
            return (log, dead);
        }
    }
}

fn nodes(cfg: &TracingConfig) -> Vec<Node> {
    let node = |p: Box<dyn Processor>, stores: &[&str]| Node {
        inputs: p.inputs(),
        processor: p,
        store: MemStore::new(stores).unwrap(),
    };
    vec![
        node(Box::<CaseRouter>::default(), &[]),
        node(Box::new(Segmenter::new(cfg)), Segmenter::STORES),
        node(
            Box::new(PresenceJoin::new(cfg, 21 * 86_400_000)),
            PresenceJoin::STORES,
        ),
        node(
            Box::new(ExposureAggregator::new(cfg)),
            ExposureAggregator::STORES,
        ),
    ]
}

#[test]
fn processors_in_memory_equal_the_oracle() {
    let cfg = TracingConfig::default();
    for (seed, batch) in [(1, 1), (2, 7), (3, 100), (4, 5000), (5, 33)] {
        let s = nightlife(80, seed).unwrap();
        let frame = |r: &epitrace_sim::FeedRecord| OutputRecord {
            topic: r.topic().into(),
            key: r.key(),
            payload: r.encode().unwrap(),
            timestamp_ms: None,
        };
        let mut input: Vec<OutputRecord> = s.trail.iter().map(frame).collect();
        input.extend(s.cases.iter().map(|c| OutputRecord {
            topic: CASES.into(),
            key: c.case_id.as_str().as_bytes().to_vec(),
            payload: encode_single_object(c).unwrap(),
            timestamp_ms: None,
        }));
        input.extend(s.late.iter().map(frame));
        input.extend(s.malformed.iter().map(|m| OutputRecord {
            topic: m.topic.into(),
            key: m.key.clone(),
            payload: m.payload.clone(),
            timestamp_ms: None,
        }));
        let mut ns = nodes(&cfg);
        let (log, mut dead) = drive(&mut ns, input, batch);

        let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
        for bytes in log.get(EXPOSURES).into_iter().flatten() {
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
