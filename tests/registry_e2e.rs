//! Providers' Confluent frames, end to end, on a real Kafka broker and a
//! real Confluent-compatible Schema Registry (Apicurio, started by
//! `scripts/with-registry.sh`):
//!
//! 1. `epitrace schemas register`'s work: every topic's subject, the
//!    released versions then the current one, idempotent; an incompatible
//!    change refused by the registry.
//! 2. The nightlife scenario published with registry serializers' framing
//!    on every input (feeds, cases — one written with the released v1
//!    schema, an old writer —, approvals, interview statements), traced by
//!    the pipeline to the oracle's exposures.
//! 3. The registry stopped mid-stream: late records whose schema id the
//!    pipeline has cached flow on; records under an id it has never seen (a
//!    provider's own compatible schema) wait — no dead letter — and are
//!    traced once the registry is back.
//! 4. An id the registry does not have and a datum that does not read are
//!    dead-lettered with reasons a provider understands, their bytes kept.
//!
//! The pipeline writes its public outputs in Confluent framing
//! (`output_framing = "confluent"`): the raw records carry the current
//! schemas' ids, and every reader here (through `epitrace_stream::read`)
//! and the cluster router (through the task's registry step) read them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use epitrace_core::testkit::{CaseSpec, oracle};
use epitrace_core::{Footprinter, Ingest, TracingConfig};
use epitrace_e2e::{brokers, parse_exposition, read_all, total, unique};
use epitrace_model::codec::{AvroRecord, DecodeOptions, decode_single_object, encode_confluent};
use epitrace_model::records::{CaseEvent, DeadLetter, Exposure, ExposureStatus, LocationPing};
use epitrace_model::schema;
use epitrace_model::topics::{
    APPROVALS, CASES, DEADLETTER, EXPOSURES, INTERVIEWS, TELECOM, TIMELINES,
};
use epitrace_model::{CaseId, SubjectId};
use epitrace_ops::Telemetry;
use epitrace_processors::topology::{TopologyConfig, topic_specs};
use epitrace_processors::{Pipeline, PipelineConfig, ProcessorKind};
use epitrace_sim::{FeedRecord, nightlife};
use epitrace_stream::admin::{create_topics, purge_topics};
use epitrace_stream::registry::{Framing, RegistryClient, RegistryConfig, RegistryError};
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use epitrace_tools::schemas::{register_all, subject};

fn registry_url() -> String {
    match std::env::var("EPITRACE_TEST_REGISTRY") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "EPITRACE_TEST_REGISTRY is not set: this test needs a real Schema Registry. Run it \
             through `make test` or `scripts/with-kafka.sh scripts/with-registry.sh cargo test \
             -p epitrace-e2e --test registry_e2e`."
        ),
    }
}

/// Stops or starts the test's registry (`scripts/registry-local.sh`).
fn registry_ctl(what: &str) {
    let script = std::env::var("EPITRACE_TEST_REGISTRY_SCRIPT")
        .expect("EPITRACE_TEST_REGISTRY_SCRIPT (set by scripts/with-registry.sh)");
    let status = Command::new(script).arg(what).status().unwrap();
    assert!(status.success(), "registry {what} failed");
}

/// A record framed as a registry serializer frames it.
fn confluent(r: &FeedRecord, ids: &BTreeMap<&str, u32>) -> Vec<u8> {
    let id = ids[r.topic()];
    match r {
        FeedRecord::Ping(p) => encode_confluent(p, id),
        FeedRecord::Card(c) => encode_confluent(c, id),
        FeedRecord::Checkin(c) => encode_confluent(c, id),
    }
    .unwrap()
}

fn out(topic: &str, key: Vec<u8>, payload: Vec<u8>) -> OutputRecord {
    OutputRecord {
        topic: topic.into(),
        key,
        payload,
        timestamp_ms: None,
    }
}

/// A provider's own schema for pings: epitrace's plus a field of theirs
/// (with a default, so compatible), and a ping written with it.
fn provider_ping(p: &LocationPing) -> (String, Vec<u8>) {
    let mut doc: serde_json::Value = serde_json::from_str(schema::LOCATION_PING.current).unwrap();
    doc["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "battery_pct", "type": "int", "default": -1}));
    let text = doc.to_string();
    let theirs = apache_avro::Schema::parse_str(&text).unwrap();
    let Value::Record(mut fields) = p.to_value() else {
        unreachable!()
    };
    fields.push(("battery_pct".into(), Value::Int(64)));
    let datum = GenericDatumWriter::builder(&theirs)
        .build()
        .unwrap()
        .write_value_to_vec(Value::Record(fields))
        .unwrap();
    (text, datum)
}

/// A case event as a producer still on the released v1 schema writes it.
fn v1_case(e: &CaseEvent) -> Vec<u8> {
    let v1 = schema::parse(schema::CASE_EVENT.released[0].1).unwrap();
    let Value::Record(mut fields) = e.to_value() else {
        unreachable!()
    };
    fields.retain(|(n, _)| n != "region");
    GenericDatumWriter::builder(&v1)
        .build()
        .unwrap()
        .write_value_to_vec(Value::Record(fields))
        .unwrap()
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut f = vec![0];
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(datum);
    f
}

async fn live_exposures(kafka: &KafkaConfig) -> BTreeMap<(CaseId, SubjectId), Exposure> {
    let mut latest = BTreeMap::new();
    for r in read_all(kafka, EXPOSURES).await.unwrap() {
        let e: Exposure =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        latest.insert((e.case_id.clone(), e.contact), e);
    }
    latest.retain(|_, e: &mut Exposure| e.status != ExposureStatus::Retracted);
    latest
}

async fn wait_for_exposures(
    kafka: &KafkaConfig,
    expected: &BTreeMap<(CaseId, SubjectId), oracle::OracleExposure>,
    what: &str,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let live = live_exposures(kafka).await;
        let equal = live.keys().eq(expected.keys())
            && expected.iter().all(|(k, want)| {
                (i64::from(live[k].cumulative_s) - want.cumulative_ms / 1000).abs() <= 1
            });
        if equal {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: exposures differ from the oracle after {timeout:?}: {} live, {} expected",
            live.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_registry_frames_are_traced_and_survive_a_registry_restart() {
    let url = registry_url();
    let client = RegistryClient::new(&url, Duration::from_secs(5));

    // 1. Every schema under its topic's subject, released versions first.
    let registered = register_all(&client, "BACKWARD").await.unwrap();
    assert_eq!(registered.len(), epitrace_model::topics::REGISTERED.len());
    let again = register_all(&client, "BACKWARD").await.unwrap();
    assert_eq!(registered, again, "registering again changes nothing");
    let ids: BTreeMap<&str, u32> = registered
        .iter()
        .map(|r| (r.topic, r.versions.last().unwrap().1))
        .collect();
    let cases_versions = &registered
        .iter()
        .find(|r| r.topic == CASES)
        .unwrap()
        .versions;
    assert_eq!(cases_versions.len(), 2, "{cases_versions:?}");
    let v1_case_id = cases_versions[0].1;
    assert_ne!(v1_case_id, ids[CASES], "v1 and current are two schemas");
    // An incompatible change is refused: a new field without a default.
    let mut bad: serde_json::Value = serde_json::from_str(schema::CASE_EVENT.current).unwrap();
    bad["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "ward", "type": "string"}));
    let refused = client.register(&subject(CASES), &bad.to_string()).await;
    assert!(
        matches!(refused, Err(RegistryError::Incompatible { .. })),
        "{refused:?}"
    );
    let (ok, _) = client
        .compatible(&subject(CASES), &bad.to_string())
        .await
        .unwrap();
    assert!(!ok);
    // The provider's own ping schema: compatible, registered (before the
    // outage), never seen by the pipeline until then.
    let scenario = nightlife(150, 42).unwrap();
    let first_late_ping = scenario
        .late
        .iter()
        .find_map(|r| match r {
            FeedRecord::Ping(p) => Some(p),
            _ => None,
        })
        .expect("late pings");
    let (their_schema, _) = provider_ping(first_late_ping);
    let their_id = client
        .register(&subject(TELECOM), &their_schema)
        .await
        .unwrap();
    assert!(!ids.values().any(|&i| i == their_id));

    // 2. The pipeline, reading Confluent frames through the registry.
    let kafka = KafkaConfig {
        group_prefix: unique("registry"),
        registry: RegistryConfig {
            url: url.clone(),
            output_framing: Framing::Confluent,
            ..RegistryConfig::default()
        },
        ..KafkaConfig::for_brokers(brokers())
    };
    let topology = TopologyConfig::default();
    create_topics(&kafka, &topic_specs(&topology))
        .await
        .unwrap();
    let names: Vec<String> = topic_specs(&topology).into_iter().map(|s| s.name).collect();
    let names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != epitrace_model::topics::AUDIT)
        .collect();
    purge_topics(&kafka, &names).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = PipelineConfig {
        kafka: kafka.clone(),
        tracing: TracingConfig::default(),
        topology,
        state_dir: state.path().to_path_buf(),
        ..PipelineConfig::default()
    };
    let ingest = Ingest::new(&cfg.tracing);
    let observations: Vec<_> = scenario.feed().map(|r| r.observation(&ingest)).collect();
    let live: Vec<CaseSpec> = scenario
        .live_cases()
        .iter()
        .map(CaseSpec::from_event)
        .collect();
    let statements = scenario.statements(&ingest, 4);
    let fp = Footprinter::new(&cfg.tracing.footprint);
    let stated: Vec<(CaseId, oracle::OracleSegment)> = statements
        .iter()
        .map(|e| {
            let cell = fp.cell(
                e.position,
                epitrace_model::AccuracyM::new(e.radius_m).unwrap(),
            );
            let seg = oracle::OracleSegment {
                cell,
                start: e.start.as_millis(),
                end: e.end.as_millis(),
            };
            (e.case_id.clone(), seg)
        })
        .collect();
    let on_time: Vec<_> = {
        let late: Vec<SubjectId> = scenario.late.iter().map(FeedRecord::subject).collect();
        observations
            .iter()
            .filter(|(s, _)| !late.contains(s))
            .cloned()
            .collect()
    };
    let before_late = oracle::exposures_with_statements(&on_time, &live, &cfg.tracing, &stated);
    let expected = oracle::exposures_with_statements(&observations, &live, &cfg.tracing, &stated);
    assert!(
        expected.len() > before_late.len(),
        "late data adds exposures"
    );

    let telemetry = Telemetry::new().unwrap();
    let pipeline = Pipeline::start(&cfg, &ProcessorKind::ALL, &telemetry).unwrap();
    let publisher = Publisher::new(&kafka).unwrap();
    let started = Instant::now();
    let mut records: Vec<OutputRecord> = scenario
        .trail
        .iter()
        .map(|r| out(r.topic(), r.key(), confluent(r, &ids)))
        .collect();
    for a in scenario.approvals() {
        let key = a.case_id.as_str().as_bytes().to_vec();
        records.push(out(
            APPROVALS,
            key,
            encode_confluent(&a, ids[APPROVALS]).unwrap(),
        ));
    }
    for (i, c) in scenario.cases.iter().enumerate() {
        let key = c.case_id.as_str().as_bytes().to_vec();
        // The first case event comes from a producer on the v1 schema.
        let payload = if i == 0 {
            framed(v1_case_id, &v1_case(c))
        } else {
            encode_confluent(c, ids[CASES]).unwrap()
        };
        records.push(out(CASES, key, payload));
    }
    for e in &statements {
        let key = e.case_id.as_str().as_bytes().to_vec();
        records.push(out(
            INTERVIEWS,
            key,
            encode_confluent(e, ids[INTERVIEWS]).unwrap(),
        ));
    }
    publisher.send_all(&records).await.unwrap();
    wait_for_exposures(
        &kafka,
        &before_late,
        "on-time data",
        Duration::from_secs(180),
    )
    .await;
    // The public outputs are Confluent frames under the current schemas'
    // ids (read raw here; epitrace's readers turn them back).
    let raw = KafkaConfig {
        registry: RegistryConfig::default(),
        ..kafka.clone()
    };
    for topic in [EXPOSURES, TIMELINES] {
        let file =
            epitrace_tools::schemas::file_of(epitrace_model::topics::record_of(topic).unwrap())
                .unwrap();
        let id = client
            .lookup(&subject(topic), file.current)
            .await
            .unwrap()
            .unwrap();
        let records = read_all(&raw, topic).await.unwrap();
        assert!(!records.is_empty());
        for r in &records {
            let p = r.payload.as_deref().unwrap();
            assert_eq!(p[0], 0, "{topic}: a Confluent frame");
            assert_eq!(
                &p[1..5],
                &id.to_be_bytes(),
                "{topic}: under the current schema's id"
            );
        }
    }
    println!(
        "{} Confluent-framed records (feeds, cases incl. a v1 writer, approvals, statements) traced to {} exposures after {:.1} s",
        records.len(),
        before_late.len(),
        started.elapsed().as_secs_f64()
    );

    // 3. The registry goes away. Late card and check-in records (ids the
    //    pipeline has cached) flow on; late pings under the provider's own
    //    schema id (never fetched) wait.
    registry_ctl("stop");
    let seg_in = pipeline.stats()[&ProcessorKind::Segmenter].clone();
    let before = seg_in.records_in.load(Ordering::Relaxed);
    let (pings, others): (Vec<&FeedRecord>, Vec<&FeedRecord>) = scenario
        .late
        .iter()
        .partition(|r| matches!(r, FeedRecord::Ping(_)));
    assert!(!pings.is_empty() && !others.is_empty());
    let cached: Vec<OutputRecord> = others
        .iter()
        .map(|r| out(r.topic(), r.key(), confluent(r, &ids)))
        .collect();
    let waiting: Vec<OutputRecord> = pings
        .iter()
        .map(|r| {
            let FeedRecord::Ping(p) = r else {
                unreachable!()
            };
            out(TELECOM, r.key(), framed(their_id, &provider_ping(p).1))
        })
        .collect();
    publisher.send_all(&waiting).await.unwrap();
    publisher.send_all(&cached).await.unwrap();
    let want = before + u64::try_from(cached.len()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seg_in.records_in.load(Ordering::Relaxed) < want {
        assert!(
            Instant::now() < deadline,
            "records of cached ids did not flow while the registry was down"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        seg_in.records_in.load(Ordering::Relaxed),
        want,
        "the pings under an unknown id waited"
    );
    let waits = total(
        &parse_exposition(&telemetry.metrics.render().unwrap()).unwrap(),
        "epitrace_registry_waits_total",
        &[("processor", "segmenter")],
    );
    assert!(waits > 0.0, "waits counted");
    let dead_now = read_all(&kafka, DEADLETTER).await.unwrap().len();
    assert_eq!(dead_now, 0, "an outage dead-letters nothing");

    // The registry is back (its schemas kept): the waiting pings go
    // through, and the exposures are the oracle's with every record.
    registry_ctl("start");
    wait_for_exposures(
        &kafka,
        &expected,
        "after the registry came back",
        Duration::from_secs(120),
    )
    .await;
    println!(
        "registry outage: {} pings under an unseen id waited ({waits} holds), {} records of cached ids flowed; all {} exposures after the restart",
        waiting.len(),
        cached.len(),
        expected.len()
    );

    // 4. Frames a provider got wrong: an id the registry does not have, a
    //    datum cut short.
    let some = &scenario.trail[0];
    let good = confluent(some, &ids);
    let unknown = framed(987_654, &good[5..]);
    let cut = good[..good.len() - 3].to_vec();
    publisher
        .send_all(&[
            out(some.topic(), some.key(), unknown.clone()),
            out(some.topic(), some.key(), cut.clone()),
        ])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead: Vec<DeadLetter> = loop {
        let dead: Vec<DeadLetter> = read_all(&kafka, DEADLETTER)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default())
                    .unwrap()
            })
            .collect();
        if dead.len() >= 2 {
            break dead;
        }
        assert!(Instant::now() < deadline, "bad frames not dead-lettered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let by_payload = |p: &[u8]| dead.iter().find(|d| d.payload == p).unwrap();
    let d = by_payload(&unknown);
    assert_eq!(d.reason_code.as_str(), "unknown_schema_id");
    assert!(
        d.detail.as_str().contains("987654"),
        "{}",
        d.detail.as_str()
    );
    assert_eq!(d.topic.as_str(), some.topic());
    let d = by_payload(&cut);
    assert_eq!(d.reason_code.as_str(), "truncated", "{}", d.detail.as_str());
    for d in &dead {
        println!(
            "dead letter: {} — {}",
            d.reason_code.as_str(),
            d.detail.as_str()
        );
    }
    pipeline.stop().await.unwrap();
}
