//! Throughput of the segmenter path, measured stage by stage on one core.
//!
//! Input: N synthetic location pings (default 1,000,000; `EPITRACE_BENCH_N`)
//! of 10,000 phones, as Avro single-object frames in memory. Stages, each
//! timed over the whole input and repeated (`EPITRACE_BENCH_REPS`, default
//! 3), medians reported:
//!
//! 1. `decode`: Avro decode only — the baseline (the hand-written reader
//!    the pipeline uses for pings);
//! 2. `decode (generic)`: the same through apache-avro's `Value` path, for
//!    comparison;
//! 3. `decode+footprint`: decode and accuracy → H3 cell, memoised as the
//!    segmenter does (`Ingest::ping_cached`);
//! 4. `segmenter`: the segmenter processor exactly as the pipeline runs it
//!    (decode, footprint, trail state machine, state in RocksDB on disk
//!    through a transaction per batch of 5,000, output frames encoded);
//! 5. `presence-join`: the join processor over the segmenter's outputs
//!    (index in RocksDB, probes, candidates).
//!
//! `EPITRACE_BENCH_STAGES=segmenter` skips the presence join (for
//! profiling the segmenter alone). `EPITRACE_BENCH_SMOKE=1` (what `make
//! test` sets) runs 20,000 pings once: the bench must run, its figures
//! mean nothing.
//!
//! Kafka is not in the loop: this measures the processors, not the broker.
//! Run with `make bench` (release build).

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use std::time::Instant;

use epitrace_bench::median;
use epitrace_core::{FootprintCache, Ingest, TracingConfig};
use epitrace_model::codec::{
    DecodeOptions, SINGLE_OBJECT_HEADER_LEN, decode_single_object, encode_single_object,
    read_generic,
};
use epitrace_model::records::{
    ApprovalWindow, CaseStatus, DataCategory, LocationPing, LocationSource, SubjectCase,
};
use epitrace_model::topics::{CASES_BY_SUBJECT, SEGMENTS, TELECOM};
use epitrace_model::{AccuracyM, CaseId, EventTime, LatLng, ProviderId, SubjectId};
use epitrace_processors::presence_join::PresenceJoin;
use epitrace_processors::segmenter::Segmenter;
use epitrace_state::{KvStore, RocksStore, StoreOptions, Txn};
use epitrace_stream::{InputRecord, OutputRecord, Processor};

const SUBJECTS: u32 = 10_000;
const BATCH: usize = 5_000;
/// 2020-05-02T00:00:00Z.
const T0: i64 = 1_588_377_600_000;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn subject(i: u32) -> SubjectId {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&i.to_be_bytes());
    b[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
    SubjectId::from_bytes(b)
}

/// Pings of 10,000 phones: each stays at one of 2,000 tower sites (a grid
/// over central Seoul, 500–1500 m accuracy) or, one time in five, reports a
/// GPS fix near it; ~100 pings a phone, every 1–12 min, moving every few
/// hours. Returned in time order, as (key, frame) pairs.
fn pings(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = Lcg(7);
    let provider = ProviderId::new("telco-a").unwrap();
    let sites: Vec<LatLng> = (0..2_000)
        .map(|i| {
            LatLng::new(
                37.45 + f64::from(i / 50) * 0.004,
                126.90 + f64::from(i % 50) * 0.005,
            )
            .unwrap()
        })
        .collect();
    let per_subject = n.div_ceil(SUBJECTS as usize);
    let mut rows: Vec<(i64, LocationPing)> = Vec::with_capacity(n);
    for s in 0..SUBJECTS {
        let mut t = T0 + i64::try_from(rng.below(3_600_000)).unwrap();
        let mut site = rng.below(2_000) as usize;
        for k in 0..per_subject {
            if k % 30 == 29 {
                site = rng.below(2_000) as usize;
            }
            let gps = rng.below(5) == 0;
            let pos = sites[site];
            let (position, accuracy, source) = if gps {
                let jitter = (rng.below(100) as f64 - 50.0) * 1e-5;
                (
                    LatLng::new(pos.lat() + jitter, pos.lng()).unwrap(),
                    20.0,
                    LocationSource::Gps,
                )
            } else {
                (pos, 500.0 + rng.below(1000) as f64, LocationSource::Cell)
            };
            rows.push((
                t,
                LocationPing {
                    subject: subject(s),
                    provider: provider.clone(),
                    observed_at: EventTime::from_millis("t", t).unwrap(),
                    position,
                    accuracy: AccuracyM::new(accuracy).unwrap(),
                    source,
                    site_id: None,
                },
            ));
            t += 60_000 + i64::try_from(rng.below(660_000)).unwrap();
        }
    }
    rows.sort_by_key(|(t, _)| *t);
    rows.truncate(n);
    // Keyed by the subject, as producers key them (the segmenter refuses
    // a record keyed otherwise).
    rows.iter()
        .map(|(_, p)| {
            (
                p.subject.as_bytes().to_vec(),
                encode_single_object(p).unwrap(),
            )
        })
        .collect()
}

fn input<'a>(topic: &'a str, key: &'a [u8], payload: &'a [u8], i: usize) -> InputRecord<'a> {
    InputRecord {
        topic,
        partition: 0,
        offset: i64::try_from(i).unwrap(),
        key: Some(key),
        payload: Some(payload),
        timestamp_ms: Some(T0),
        received_at_ms: T0 + 86_400_000,
    }
}

/// Runs a processor over frames in batches of 5,000, state in `store`.
fn drive(
    p: &mut dyn Processor,
    topic: &str,
    frames: &[(Vec<u8>, Vec<u8>)],
    store: &dyn KvStore,
) -> Vec<OutputRecord> {
    let mut all_out = Vec::new();
    for (b, chunk) in frames.chunks(BATCH).enumerate() {
        let mut txn = Txn::new(store);
        let mut out = Vec::new();
        for (i, (key, payload)) in chunk.iter().enumerate() {
            let rec = input(topic, key, payload, b * BATCH + i);
            p.process(&rec, &mut txn, &mut out).unwrap();
            txn.set_offset(topic, 0, rec.offset + 1);
        }
        p.end_batch(&mut txn, &mut out).unwrap();
        store.write(txn.into_write_set()).unwrap();
        all_out.extend(out);
    }
    all_out
}

fn main() {
    let smoke = epitrace_bench::smoke();
    let n: usize = std::env::var("EPITRACE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 20_000 } else { 1_000_000 });
    let reps: usize = std::env::var("EPITRACE_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 1 } else { 3 });
    let cfg = TracingConfig::default();
    println!("generating {n} pings of {SUBJECTS} phones…");
    let frames: Vec<(Vec<u8>, Vec<u8>)> = pings(n);
    // 10 of the phones (0.1%) are cases: their segments probe everyone.
    let case_frames: Vec<(Vec<u8>, Vec<u8>)> = (0..10)
        .map(|i| {
            let sc = SubjectCase {
                subject: subject(i * 997),
                case_id: CaseId::new(format!("C{i}")).unwrap(),
                status: CaseStatus::Confirmed,
                infectious_from: EventTime::from_millis("t", T0 - 86_400_000).unwrap(),
                infectious_until: None,
                confirmed_at: EventTime::from_millis("t", T0).unwrap(),
                // Every category approved: the timelines are published.
                approvals: DataCategory::ALL
                    .iter()
                    .map(|&category| ApprovalWindow {
                        category,
                        expires_at: EventTime::from_millis("t", T0 + 90 * 86_400_000).unwrap(),
                    })
                    .collect(),
            };
            (
                sc.subject.as_bytes().to_vec(),
                encode_single_object(&sc).unwrap(),
            )
        })
        .collect();
    let opts = DecodeOptions::default();
    let ingest = Ingest::new(&cfg);
    let (mut decode, mut generic, mut footprint) = (vec![], vec![], vec![]);
    let (mut segmenter, mut join) = (vec![], vec![]);
    let mut segment_updates = 0usize;
    let mut candidates = 0usize;
    for rep in 0..reps {
        let t = Instant::now();
        let mut ok = 0usize;
        for (_, f) in &frames {
            ok += usize::from(decode_single_object::<LocationPing>(f, &opts).is_ok());
        }
        assert_eq!(ok, n);
        decode.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut ok = 0usize;
        for (_, f) in &frames {
            let datum = &f[SINGLE_OBJECT_HEADER_LEN..];
            ok += usize::from(read_generic::<LocationPing>(datum).is_ok());
        }
        assert_eq!(ok, n);
        generic.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut cells = 0u64;
        let mut cache = FootprintCache::new(16);
        for (_, f) in &frames {
            let ping = decode_single_object::<LocationPing>(f, &opts).unwrap();
            let (_, obs) = ingest.ping_cached(&ping, &mut cache);
            cells ^= obs.cell.raw();
        }
        std::hint::black_box(cells);
        footprint.push(t.elapsed().as_secs_f64());

        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segmenter::new(&cfg);
        let opts = StoreOptions::default();
        let seg_store = RocksStore::open(dir.path().join("seg"), Segmenter::STORES, &opts).unwrap();
        // The case tags first, untimed: their subjects' segments then probe everyone.
        drive(&mut seg, CASES_BY_SUBJECT, &case_frames, &seg_store);
        let t = Instant::now();
        let outs = drive(&mut seg, TELECOM, &frames, &seg_store);
        segmenter.push(t.elapsed().as_secs_f64());
        // The join reads presence.segments only (the segmenter also writes
        // the case subjects' visits to tracing.timelines).
        let outs: Vec<OutputRecord> = outs.into_iter().filter(|o| o.topic == SEGMENTS).collect();
        segment_updates = outs.len();

        if std::env::var("EPITRACE_BENCH_STAGES").is_ok_and(|s| !s.contains("join")) {
            join.push(f64::NAN);
            continue;
        }
        let seg_frames: Vec<(Vec<u8>, Vec<u8>)> =
            outs.into_iter().map(|o| (o.key, o.payload)).collect();
        let mut pj = PresenceJoin::new(&cfg, 21 * 86_400_000);
        let t = Instant::now();
        let join_store =
            RocksStore::open(dir.path().join("join"), PresenceJoin::STORES, &opts).unwrap();
        let outs = drive(&mut pj, SEGMENTS, &seg_frames, &join_store);
        join.push(t.elapsed().as_secs_f64());
        candidates = outs.len();
        println!(
            "rep {rep}: decode {:.2}s, generic {:.2}s, footprint {:.2}s, segmenter {:.2}s, join {:.2}s",
            decode[rep], generic[rep], footprint[rep], segmenter[rep], join[rep]
        );
    }
    let base = median(decode.clone());
    println!();
    println!(
        "{n} pings, {segment_updates} segment updates, {candidates} candidates; medians of {reps} runs"
    );
    println!(
        "{:<18} {:>12} {:>10} {:>14}",
        "stage", "records/s", "ns/record", "vs decode-only"
    );
    for (name, times, count) in [
        ("decode", &decode, n),
        ("decode (generic)", &generic, n),
        ("decode+footprint", &footprint, n),
        ("segmenter", &segmenter, n),
        ("presence-join", &join, segment_updates),
    ] {
        let m = median(times.clone());
        if m.is_nan() {
            continue; // stage skipped
        }
        println!(
            "{name:<18} {:>12.0} {:>10.0} {:>13.2}x",
            count as f64 / m,
            m * 1e9 / count.max(1) as f64,
            m / base * (n as f64 / count.max(1) as f64)
        );
    }
}
