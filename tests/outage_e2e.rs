//! A broker outage longer than the delivery timeout, ridden through: the
//! pipeline runs on a broker of its own (`scripts/kafka-local.sh` on free
//! ports), which is stopped while the feeds are being published and
//! processed and started again 10 s later. No processor may fail, the
//! outputs of the batches caught in the outage must be sent again rather
//! than lost, and in the end `tracing.exposures` must equal the brute-force
//! oracle (duplicates allowed: at-least-once, identical by id).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use epitrace_core::testkit::{CaseSpec, oracle};
use epitrace_core::{Ingest, TracingConfig};
use epitrace_e2e::{LocalBroker, parse_exposition, read_all, total};
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{Exposure, ExposureStatus};
use epitrace_model::topics::{APPROVALS, CASES, EXPOSURES};
use epitrace_model::{CaseId, SubjectId};
use epitrace_ops::Telemetry;
use epitrace_processors::topology::{TopologyConfig, topic_specs};
use epitrace_processors::{Pipeline, PipelineConfig, ProcessorKind};
use epitrace_sim::nightlife;
use epitrace_stream::admin::create_topics;
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};

/// Every processor started, once ready.
async fn start_ready(cfg: &PipelineConfig) -> (Pipeline, Telemetry) {
    let telemetry = Telemetry::new().unwrap();
    let pipeline = Pipeline::start(cfg, &ProcessorKind::ALL, &telemetry).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !telemetry.health.is_ready() {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (pipeline, telemetry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_longer_than_the_delivery_timeout_loses_nothing_and_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path());
    let brokers = broker.brokers();
    let kafka = KafkaConfig {
        // Far shorter than the outage: batches caught in it time out.
        delivery_timeout_ms: 2_000,
        ..KafkaConfig::for_brokers(&brokers)
    };
    let topology = TopologyConfig::default();
    create_topics(&kafka, &topic_specs(&topology))
        .await
        .unwrap();

    let scenario = nightlife(120, 17).unwrap();
    let cfg = PipelineConfig {
        kafka: kafka.clone(),
        tracing: TracingConfig::default(),
        topology,
        state_dir: dir.path().join("state"),
        ..PipelineConfig::default()
    };
    let ingest = Ingest::new(&cfg.tracing);
    let observations: Vec<_> = scenario.feed().map(|r| r.observation(&ingest)).collect();
    let live: Vec<CaseSpec> = scenario
        .live_cases()
        .iter()
        .map(CaseSpec::from_event)
        .collect();
    let expected = oracle::exposures(&observations, &live, &cfg.tracing);
    assert!(expected.len() >= 10, "{}", expected.len());

    let (pipeline, telemetry) = start_ready(&cfg).await;

    // The test's own producer waits out the outage (its records are
    // queued, not lost).
    let publisher = Publisher::new(&KafkaConfig {
        delivery_timeout_ms: 60_000,
        ..KafkaConfig::for_brokers(&brokers)
    })
    .unwrap();
    let mut records: Vec<OutputRecord> = Vec::new();
    let frame = |r: &epitrace_sim::FeedRecord| OutputRecord {
        topic: r.topic().into(),
        key: r.key(),
        payload: r.encode().unwrap(),
        timestamp_ms: None,
    };
    records.extend(scenario.trail.iter().map(frame));
    records.extend(scenario.cases.iter().map(|c| OutputRecord {
        topic: CASES.into(),
        key: c.case_id.as_str().as_bytes().to_vec(),
        payload: encode_single_object(c).unwrap(),
        timestamp_ms: None,
    }));
    records.extend(scenario.approvals().iter().map(|a| OutputRecord {
        topic: APPROVALS.into(),
        key: a.case_id.as_str().as_bytes().to_vec(),
        payload: encode_single_object(a).unwrap(),
        timestamp_ms: None,
    }));
    records.extend(scenario.late.iter().map(frame));
    // Published in slices, so that the pipeline is busy producing when the
    // broker goes away.
    // A slice the brokers never acknowledge (librdkafka's idempotent
    // producer has been seen to stall after the broker restarts) is sent
    // again by a new producer, as a provider would: duplicates of feed
    // records are harmless (the same observation twice is one segment).
    let retry_brokers = brokers.clone();
    let publishing = tokio::spawn(async move {
        let mut publisher = publisher;
        for chunk in records.chunks(200) {
            let mut attempts = 0;
            while let Err(e) = publisher.send_all(chunk).await {
                attempts += 1;
                assert!(
                    attempts < 3,
                    "a slice not taken after {attempts} attempts: {e}"
                );
                println!("a slice not acknowledged ({e}); sending it again");
                publisher = Publisher::new(&KafkaConfig {
                    delivery_timeout_ms: 60_000,
                    ..KafkaConfig::for_brokers(&retry_brokers)
                })
                .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let down = Instant::now();
    broker.run("stop");
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.run("start");
    println!("broker down for {:?}", down.elapsed());
    publishing.await.unwrap();

    // Every exposure the oracle wants, and nothing else live.
    let want: Vec<((CaseId, SubjectId), i64)> = expected
        .iter()
        .map(|(k, e)| (k.clone(), e.cumulative_ms / 1000))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let (got, versions) = loop {
        let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
        let records = read_all(&kafka, EXPOSURES).await.unwrap();
        for r in &records {
            let e: Exposure =
                decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default())
                    .unwrap();
            latest.insert((e.case_id.clone(), e.contact), e);
        }
        latest.retain(|_, e| e.status != ExposureStatus::Retracted);
        let got: Vec<_> = latest
            .iter()
            .map(|(k, e)| (k.clone(), i64::from(e.cumulative_s)))
            .collect();
        if got == want || Instant::now() > deadline {
            break (got, records.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(got, want, "the exposures after the outage");
    println!("{} exposure versions for {} pairs", versions, want.len());

    // The outage was seen: client errors counted, outputs sent again.
    let text = telemetry.metrics.render().unwrap();
    let samples = parse_exposition(&text).unwrap();
    let retries = total(&samples, "epitrace_delivery_retries_total", &[]);
    let errors = total(&samples, "epitrace_kafka_client_errors_total", &[]);
    println!("delivery retries {retries}, client errors {errors}");
    assert!(errors > 0.0, "the clients never noticed the outage");
    assert!(
        telemetry.kafka.is_reachable(),
        "reachable again after the restart"
    );
    // No processor failed: a clean stop.
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_brokers_are_gone_returns_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path());
    let kafka = KafkaConfig::for_brokers(broker.brokers());
    let topology = TopologyConfig::default();
    create_topics(&kafka, &topic_specs(&topology))
        .await
        .unwrap();
    let cfg = PipelineConfig {
        kafka,
        topology,
        state_dir: dir.path().join("state"),
        ..PipelineConfig::default()
    };
    let (pipeline, _telemetry) = start_ready(&cfg).await;
    // Some work first, so that offsets are being committed.
    let scenario = nightlife(40, 5).unwrap();
    let publisher = Publisher::new(&cfg.kafka).unwrap();
    let records: Vec<OutputRecord> = scenario
        .trail
        .iter()
        .map(|r| OutputRecord {
            topic: r.topic().into(),
            key: r.key(),
            payload: r.encode().unwrap(),
            timestamp_ms: None,
        })
        .collect();
    publisher.send_all(&records).await.unwrap();
    let seg = pipeline.stats()[&ProcessorKind::Segmenter].clone();
    let n = u64::try_from(records.len()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seg.records_in.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "the segmenter did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The brokers go away just as the pipeline is told to stop: the
    // consumers start leaving their groups while the coordinator is going
    // (the close then waits for an answer that never comes).
    let stopping_broker = std::thread::spawn({
        let (dir, port, cport) = (broker.dir.clone(), broker.port, broker.cport);
        move || {
            LocalBroker {
                dir,
                port,
                cport,
                secured: None,
            }
            .run("stop");
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(45), pipeline.stop())
        .await
        .expect("the stop hung on closing consumers")
        .unwrap();
    println!("stopped in {:?} without brokers", stopping.elapsed());
    stopping_broker.join().unwrap();
}
