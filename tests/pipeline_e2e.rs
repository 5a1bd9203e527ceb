//! End to end on a real Apache Kafka broker: topics created by epitrace,
//! the nightlife scenario published in phases (trails, then the cases —
//! one confirmed days after its trail was ingested, one confirmed then
//! retracted — then late population data and malformed records), every
//! processor on RocksDB, and `tracing.exposures` read back and compared
//! with the brute-force oracle computed from the same records; then the
//! timelines (against the oracle's segments), the one cluster the scenario
//! holds, and the metrics (against the topics' contents); last, the first
//! case's interview places as tracing evidence (against the oracle with
//! those stays as the case's own).

// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use epitrace_core::testkit::{CaseSpec, oracle};
use epitrace_core::{Ingest, TracingConfig};
use epitrace_e2e::{brokers, parse_exposition, read_all, total, unique};
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{CaseStatus, ClusterAlert, DeadLetter, Exposure, ExposureStatus};
use epitrace_model::topics::{
    APPROVALS, CANDIDATES, CARD, CASES, CASES_BY_SUBJECT, CHECKIN, CLUSTER_EVIDENCE, CLUSTERS,
    DEADLETTER, EXPOSURES, INTERVIEWS, SEGMENTS, TELECOM, TIMELINES,
};
use epitrace_model::{CaseId, SubjectId};
use epitrace_ops::{Metrics, OpsConfig, OpsServer, Telemetry, get};
use epitrace_processors::topology::{TopologyConfig, topic_specs};
use epitrace_processors::{Pipeline, PipelineConfig, ProcessorKind};
use epitrace_sim::{FeedRecord, nightlife};
use epitrace_stream::admin::{create_topics, purge_topics};
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use epitrace_tools::query::live_clusters;

const RESIDENTS: u32 = 150;

fn feed(records: &[FeedRecord]) -> Vec<OutputRecord> {
    records
        .iter()
        .map(|r| OutputRecord {
            topic: r.topic().into(),
            key: r.key(),
            payload: r.encode().unwrap(),
            timestamp_ms: None,
        })
        .collect()
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kind(subject: &SubjectId) -> u8 {
    subject.as_bytes()[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_matches_the_oracle_on_a_real_broker() {
    let kafka = KafkaConfig {
        group_prefix: unique("e2e"),
        ..KafkaConfig::for_brokers(brokers())
    };
    let topology = TopologyConfig::default();
    create_topics(&kafka, &topic_specs(&topology))
        .await
        .unwrap();
    // Creating them again is harmless.
    create_topics(&kafka, &topic_specs(&topology))
        .await
        .unwrap();
    // Start from empty topics (an earlier run on this broker may have left
    // records): the checks below compare whole topics.
    let names: Vec<String> = topic_specs(&topology).into_iter().map(|s| s.name).collect();
    // audit.log is never purged (it proves what was done).
    let names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != epitrace_model::topics::AUDIT)
        .collect();
    purge_topics(&kafka, &names).await.unwrap();

    let scenario = nightlife(RESIDENTS, 42).unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = PipelineConfig {
        kafka: kafka.clone(),
        tracing: TracingConfig::default(),
        topology,
        state_dir: state.path().to_path_buf(),
        ..PipelineConfig::default()
    };

    // What the rule says, by brute force, from the same records.
    let ingest = Ingest::new(&cfg.tracing);
    let observations: Vec<_> = scenario.feed().map(|r| r.observation(&ingest)).collect();
    let live: Vec<CaseSpec> = scenario
        .live_cases()
        .iter()
        .map(CaseSpec::from_event)
        .collect();
    let expected = oracle::exposures(&observations, &live, &cfg.tracing);
    // The scenario must exercise what it claims to.
    assert!(
        expected.len() >= 10,
        "too few expected exposures: {}",
        expected.len()
    );
    assert!(
        expected.keys().any(|(_, c)| kind(c) == 4),
        "no card payment matched the case's tower pings"
    );
    let late_subjects: Vec<SubjectId> = scenario.late.iter().map(FeedRecord::subject).collect();
    assert!(
        expected.keys().any(|(_, c)| late_subjects.contains(c)),
        "no exposure depends on population data published after the case"
    );
    let all_cases: Vec<CaseSpec> = scenario
        .cases
        .iter()
        .filter(|c| c.status == CaseStatus::Confirmed)
        .map(CaseSpec::from_event)
        .collect();
    let before_retraction = oracle::exposures(&observations, &all_cases, &cfg.tracing);
    assert!(
        before_retraction
            .keys()
            .any(|(c, _)| c.as_str() == "KR-2020-0502"),
        "the retracted case would have had no exposures anyway"
    );

    let telemetry = Telemetry::new().unwrap();
    let ops = OpsServer::start(
        &OpsConfig {
            enabled: true,
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        &telemetry,
    )
    .unwrap();
    let base = format!("http://{}", ops.local_addr());
    let pipeline = Pipeline::start(&cfg, &ProcessorKind::ALL, &telemetry).unwrap();
    let publisher = Publisher::new(&kafka).unwrap();
    let started = Instant::now();

    // /readyz turns ready once every processor has its partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = format!("{base}/readyz");
        let (status, body) = tokio::task::spawn_blocking(move || get(&url))
            .await
            .unwrap()
            .unwrap();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("ready after {:?}", started.elapsed());

    // Phase 1: trails; wait until the segmenter has consumed all of them,
    // so that the case really is confirmed after its trail was ingested.
    let trail = feed(&scenario.trail);
    publisher.send_all(&trail).await.unwrap();
    println!(
        "published {} trail records after {:?}",
        trail.len(),
        started.elapsed()
    );
    let seg = pipeline.stats()[&ProcessorKind::Segmenter].clone();
    let n = u64::try_from(trail.len()).unwrap();
    wait_until(
        "the segmenter to ingest the trails",
        Duration::from_secs(120),
        || seg.records_in.load(Ordering::Relaxed) >= n,
    )
    .await;

    println!(
        "segmenter ingested the trails after {:?}",
        started.elapsed()
    );
    // The approvals of every category, as the authorities grant them —
    // here before the cases they are for (kept until the case comes), so
    // that the retracted case had visits to withdraw.
    let approvals: Vec<OutputRecord> = scenario
        .approvals()
        .iter()
        .map(|a| OutputRecord {
            topic: APPROVALS.into(),
            key: a.case_id.as_str().as_bytes().to_vec(),
            payload: encode_single_object(a).unwrap(),
            timestamp_ms: None,
        })
        .collect();
    publisher.send_all(&approvals).await.unwrap();
    let router = pipeline.stats()[&ProcessorKind::CaseRouter].clone();
    let n = u64::try_from(approvals.len()).unwrap();
    wait_until(
        "the case router to read the approvals",
        Duration::from_secs(120),
        || router.records_in.load(Ordering::Relaxed) >= n,
    )
    .await;
    // Phase 2: the cases (one is retracted after its confirmation).
    let cases: Vec<OutputRecord> = scenario
        .cases
        .iter()
        .map(|c| OutputRecord {
            topic: CASES.into(),
            key: c.case_id.as_str().as_bytes().to_vec(),
            payload: encode_single_object(c).unwrap(),
            timestamp_ms: None,
        })
        .collect();
    publisher.send_all(&cases).await.unwrap();

    // Phase 3: population data that arrives after the case, and junk.
    let mut late = feed(&scenario.late);
    for m in &scenario.malformed {
        late.push(OutputRecord {
            topic: m.topic.into(),
            key: m.key.clone(),
            payload: m.payload.clone(),
            timestamp_ms: None,
        });
    }
    publisher.send_all(&late).await.unwrap();
    let published = trail.len() + cases.len() + late.len();

    // Read back until the exposures equal the oracle's (or time out).
    let deadline = Instant::now() + Duration::from_secs(180);
    let (latest, all_versions) = loop {
        let records = read_all(&kafka, EXPOSURES).await.unwrap();
        let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
        let mut versions = Vec::new();
        for r in &records {
            let e: Exposure =
                decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default())
                    .unwrap();
            assert_eq!(
                r.key.as_deref(),
                Some(e.contact.as_bytes().as_slice()),
                "keyed by contact"
            );
            latest.insert((e.case_id.clone(), e.contact), e.clone());
            versions.push(e);
        }
        latest.retain(|_, e| e.status != ExposureStatus::Retracted);
        let same_pairs = latest.keys().eq(expected.keys());
        if same_pairs
            && expected.iter().all(|(k, want)| {
                (i64::from(latest[k].cumulative_s) - want.cumulative_ms / 1000).abs() <= 1
            })
        {
            break (latest, versions);
        }
        let by_status =
            versions
                .iter()
                .fold(BTreeMap::new(), |mut m: BTreeMap<String, usize>, e| {
                    *m.entry(format!("{:?}", e.status)).or_default() += 1;
                    m
                });
        println!(
            "after {:?}: {} records {by_status:?}, {} live exposures, {} expected; stats {:?}",
            started.elapsed(),
            records.len(),
            latest.len(),
            expected.len(),
            pipeline
                .stats()
                .iter()
                .map(|(k, s)| (
                    k.name(),
                    s.records_in.load(Ordering::Relaxed),
                    s.records_out.load(Ordering::Relaxed)
                ))
                .collect::<Vec<_>>()
        );
        if Instant::now() > deadline {
            let missing: Vec<_> = expected
                .keys()
                .filter(|k| !latest.contains_key(*k))
                .collect();
            let extra: Vec<_> = latest
                .keys()
                .filter(|k| !expected.contains_key(*k))
                .collect();
            let wrong: Vec<_> = expected
                .iter()
                .filter(|(k, w)| {
                    latest.get(*k).is_some_and(|e| {
                        (i64::from(e.cumulative_s) - w.cumulative_ms / 1000).abs() > 1
                    })
                })
                .map(|(k, w)| (k, w.cumulative_ms / 1000, latest[k].cumulative_s))
                .collect();
            panic!(
                "exposures differ from the oracle after 180 s: {} expected, {} live; missing {missing:?}; extra {extra:?}; wrong seconds {wrong:?}",
                expected.len(),
                latest.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(2000)).await;
    };
    let converged = started.elapsed();

    // The retracted case leaves nothing live; whatever it emitted was
    // withdrawn with RETRACTED.
    assert!(latest.keys().all(|(c, _)| c.as_str() != "KR-2020-0502"));

    // Every malformed record is in the dead-letter topic with its reason,
    // topic, partition and offset; the good ones still produced the right
    // exposures (above).
    let dead = read_all(&kafka, DEADLETTER).await.unwrap();
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|r| {
            let d: DeadLetter =
                decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default())
                    .unwrap();
            assert!(d.offset >= 0 && d.partition >= 0);
            assert!(
                scenario
                    .malformed
                    .iter()
                    .any(|m| m.topic == d.topic.as_str() && m.payload == d.payload)
            );
            d.reason_code.as_str().to_owned()
        })
        .collect();
    reasons.sort();
    let mut want: Vec<String> = scenario
        .malformed
        .iter()
        .map(|m| m.reason.to_owned())
        .collect();
    want.sort();
    assert_eq!(reasons, want);

    check_timelines(&kafka, &scenario, &observations, &cfg.tracing).await;
    check_clusters(&kafka).await;
    check_origins(&kafka).await;
    check_metrics(
        &base,
        &kafka,
        &scenario,
        &latest_all(&all_versions),
        dead.len(),
    )
    .await;

    check_statements(
        &kafka,
        &publisher,
        &scenario,
        &observations,
        &live,
        &cfg.tracing,
    )
    .await;

    let stats: Vec<(String, u64, u64, u64)> = pipeline
        .stats()
        .iter()
        .map(|(k, s)| {
            (
                k.name().to_owned(),
                s.records_in.load(Ordering::Relaxed),
                s.records_out.load(Ordering::Relaxed),
                s.dead_letters.load(Ordering::Relaxed),
            )
        })
        .collect();
    pipeline.stop().await.unwrap();
    println!(
        "e2e: {published} records published ({} feed, {} case events, {} malformed), {} exposures \
         ({} versions) equal to the oracle after {:.1} s; per processor (in, out, dead): {stats:?}",
        scenario.feed().count(),
        scenario.cases.len(),
        scenario.malformed.len(),
        latest.len(),
        all_versions.len(),
        converged.as_secs_f64()
    );
}

/// Phase 4: the first case's interview — places where others stayed and
/// its own records need not be — recorded on `cases.interviews` (the case's
/// INTERVIEW category is approved with the others): the exposures become
/// the oracle's with those stays as the case's own segments, and a contact
/// found from the statements alone says so in its evidence.
async fn check_statements(
    kafka: &KafkaConfig,
    publisher: &Publisher,
    scenario: &epitrace_sim::Scenario,
    observations: &[(SubjectId, epitrace_core::Observation)],
    live: &[CaseSpec],
    tracing: &TracingConfig,
) {
    let started = Instant::now();
    let statements = scenario.statements(&Ingest::new(tracing), 4);
    assert_eq!(statements.len(), 4, "the scenario has stays to state");
    let fp = epitrace_core::Footprinter::new(&tracing.footprint);
    let stated: Vec<(CaseId, oracle::OracleSegment)> = statements
        .iter()
        .map(|e| {
            let accuracy = epitrace_model::AccuracyM::new(e.radius_m).unwrap();
            let seg = oracle::OracleSegment {
                cell: fp.cell(e.position, accuracy),
                start: e.start.as_millis(),
                end: e.end.as_millis(),
            };
            (e.case_id.clone(), seg)
        })
        .collect();
    let before = oracle::exposures(observations, live, tracing);
    let expected = oracle::exposures_with_statements(observations, live, tracing, &stated);
    let added: Vec<_> = expected
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    assert!(!added.is_empty(), "the statements find contacts");
    let records: Vec<OutputRecord> = statements
        .iter()
        .map(|e| OutputRecord {
            topic: epitrace_model::topics::INTERVIEWS.into(),
            key: e.case_id.as_str().as_bytes().to_vec(),
            payload: encode_single_object(e).unwrap(),
            timestamp_ms: None,
        })
        .collect();
    publisher.send_all(&records).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
        for r in read_all(kafka, EXPOSURES).await.unwrap() {
            let e: Exposure =
                decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default())
                    .unwrap();
            latest.insert((e.case_id.clone(), e.contact), e);
        }
        latest.retain(|_, e| e.status != ExposureStatus::Retracted);
        let equal = latest.keys().eq(expected.keys())
            && expected.iter().all(|(k, want)| {
                (i64::from(latest[k].cumulative_s) - want.cumulative_ms / 1000).abs() <= 1
            });
        if equal {
            for k in &added {
                assert!(
                    latest[k]
                        .evidence
                        .contains(&epitrace_model::records::DataCategory::Interview),
                    "{k:?}: {:?}",
                    latest[k].evidence
                );
            }
            let alone = added
                .iter()
                .filter(|k| {
                    latest[*k].evidence == [epitrace_model::records::DataCategory::Interview]
                })
                .count();
            assert!(alone > 0, "a contact found from the statements alone");
            println!(
                "statements: {} exposures found by 4 interview places ({alone} from them alone), equal to the oracle after {:.1} s",
                added.len(),
                started.elapsed().as_secs_f64()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "exposures with the statements differ from the oracle after 120 s: {} live, {} expected",
            latest.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

/// The scenario's one cluster: case 1 and the two it infected at the club,
/// linked by the exposure chain, with case 1 its index case; the retracted
/// case in none.
/// Every record the pipeline wrote carries its origin: the append time of
/// an input record (a feed record, case event or approval), never later
/// than its own append time.
async fn check_origins(kafka: &KafkaConfig) {
    let mut appended = std::collections::BTreeSet::new();
    for topic in [TELECOM, CARD, CHECKIN, CASES, APPROVALS, INTERVIEWS] {
        for r in read_all(kafka, topic).await.unwrap() {
            assert_eq!(
                r.origin_ms, None,
                "{topic}: an input has no origin header read"
            );
            appended.insert(r.timestamp_ms.unwrap());
        }
    }
    for topic in [
        CASES_BY_SUBJECT,
        SEGMENTS,
        CANDIDATES,
        TIMELINES,
        EXPOSURES,
        CLUSTER_EVIDENCE,
    ] {
        let records = read_all(kafka, topic).await.unwrap();
        assert!(!records.is_empty(), "{topic}: nothing to check");
        for r in records {
            let origin = r
                .origin_ms
                .unwrap_or_else(|| panic!("{topic}/{}@{}: no origin", r.partition, r.offset));
            assert!(
                appended.contains(&origin),
                "{topic}/{}@{}: origin {origin} is no input's append time",
                r.partition,
                r.offset
            );
            assert!(
                origin <= r.timestamp_ms.unwrap(),
                "{topic}: origin after its own append"
            );
        }
    }
}

async fn check_clusters(kafka: &KafkaConfig) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let versions: Vec<ClusterAlert> = read_all(kafka, CLUSTERS)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default())
                    .unwrap()
            })
            .collect();
        let live = live_clusters(versions);
        let got: Vec<(Vec<&str>, Option<&str>)> = live
            .iter()
            .map(|c| {
                (
                    c.cases.iter().map(CaseId::as_str).collect(),
                    c.index_case.as_ref().map(CaseId::as_str),
                )
            })
            .collect();
        let want = vec![(
            vec!["KR-2020-0501", "KR-2020-0503", "KR-2020-0504"],
            Some("KR-2020-0501"),
        )];
        // Settled when the router has forwarded every timeline, exposure
        // and case record (the metrics are compared with the topics next).
        let count = |t: &'static str| async move { read_all(kafka, t).await.unwrap().len() };
        let forwarded = count(CLUSTER_EVIDENCE).await;
        let sources = count(TIMELINES).await + count(EXPOSURES).await + count(CASES).await;
        if got == want && forwarded == sources {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "clusters: got {got:?}, want {want:?}; evidence {forwarded} of {sources}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Exposure versions by status name.
fn latest_all(versions: &[Exposure]) -> BTreeMap<&'static str, usize> {
    let mut by = BTreeMap::new();
    for e in versions {
        let kind = match e.status {
            ExposureStatus::New => "new",
            ExposureStatus::Updated => "updated",
            ExposureStatus::Retracted => "retracted",
        };
        *by.entry(kind).or_default() += 1;
    }
    by
}

/// Scrapes `/metrics` and checks the counters against what the topics
/// hold: every processor's records in equal the records of its input topics,
/// its records out those of its output topics, and its dead letters the
/// malformed records, by reason.
async fn check_metrics(
    base: &str,
    kafka: &KafkaConfig,
    scenario: &epitrace_sim::Scenario,
    exposures_by_kind: &BTreeMap<&'static str, usize>,
    dead_letters: usize,
) {
    let count = |topic: &'static str| {
        let kafka = kafka.clone();
        async move { read_all(&kafka, topic).await.unwrap().len() as f64 }
    };
    let segments = count(SEGMENTS).await;
    let candidates = count(CANDIDATES).await;
    let by_subject = count(CASES_BY_SUBJECT).await;
    let exposures = count(EXPOSURES).await;
    let timelines = count(TIMELINES).await;
    let evidence = count(CLUSTER_EVIDENCE).await;
    let clusters = count(CLUSTERS).await;
    let cases = scenario.cases.len() as f64;
    let published_on = |topic: &str| {
        (scenario.trail.iter().chain(&scenario.late))
            .filter(|r| r.topic() == topic)
            .count() as f64
            + scenario
                .malformed
                .iter()
                .filter(|m| m.topic == topic)
                .count() as f64
    };

    // The segments and candidates settle a little after the exposures: poll.
    let deadline = Instant::now() + Duration::from_secs(30);
    let samples = loop {
        let url = format!("{base}/metrics");
        let (status, text) = tokio::task::spawn_blocking(move || get(&url))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 200);
        let samples =
            parse_exposition(&text).unwrap_or_else(|e| panic!("not Prometheus text: {e}"));
        let seg_out = total(
            &samples,
            "epitrace_output_records_total",
            &[("processor", "segmenter")],
        );
        if seg_out == segments || Instant::now() > deadline {
            break samples;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let input = |p: &str, t: &str| {
        total(
            &samples,
            "epitrace_input_records_total",
            &[("processor", p), ("topic", t)],
        )
    };
    let output = |p: &str, t: &str| {
        total(
            &samples,
            "epitrace_output_records_total",
            &[("processor", p), ("topic", t)],
        )
    };
    for topic in [TELECOM, CARD, CHECKIN] {
        assert_eq!(
            input("segmenter", topic),
            published_on(topic),
            "segmenter in from {topic}"
        );
    }
    assert_eq!(input("segmenter", CASES_BY_SUBJECT), by_subject);
    assert_eq!(output("segmenter", SEGMENTS), segments);
    assert_eq!(output("segmenter", TIMELINES), timelines);
    assert_eq!(input("case-router", CASES), cases);
    assert_eq!(output("case-router", CASES_BY_SUBJECT), by_subject);
    assert_eq!(input("presence-join", SEGMENTS), segments);
    assert_eq!(output("presence-join", CANDIDATES), candidates);
    assert_eq!(input("exposure-aggregator", CANDIDATES), candidates);
    assert_eq!(input("exposure-aggregator", CASES), cases);
    assert_eq!(output("exposure-aggregator", EXPOSURES), exposures);
    // Each public output's end-to-end lag is observed once, at its commit.
    for (topic, n) in [
        (EXPOSURES, exposures),
        (TIMELINES, timelines),
        (CLUSTERS, clusters),
    ] {
        assert_eq!(
            total(
                &samples,
                "epitrace_end_to_end_lag_seconds_count",
                &[("topic", topic)]
            ),
            n,
            "end-to-end lag observations on {topic}"
        );
    }
    assert_eq!(
        input("cluster-router", TIMELINES) + input("cluster-router", EXPOSURES),
        timelines + exposures
    );
    assert_eq!(input("cluster-router", CASES), cases);
    assert_eq!(output("cluster-router", CLUSTER_EVIDENCE), evidence);
    assert_eq!(evidence, timelines + exposures + cases);
    assert_eq!(input("cluster-detector", CLUSTER_EVIDENCE), evidence);
    assert_eq!(output("cluster-detector", CLUSTERS), clusters);
    assert_eq!(
        total(&samples, "epitrace_cluster_alerts_emitted_total", &[]),
        clusters
    );
    // In = out-or-absorbed + dead letters, per processor: every input record
    // is either processed or dead-lettered, never lost.
    let dead_total = total(&samples, "epitrace_deadletter_records_total", &[]);
    assert_eq!(dead_total, dead_letters as f64);
    for m in &scenario.malformed {
        assert!(
            total(
                &samples,
                "epitrace_deadletter_records_total",
                &[("processor", "segmenter"), ("reason", m.reason)]
            ) >= 1.0,
            "no dead letter counted for {}",
            m.reason
        );
    }
    for (kind, n) in exposures_by_kind {
        assert_eq!(
            total(
                &samples,
                "epitrace_exposures_emitted_total",
                &[("kind", kind)]
            ),
            *n as f64,
            "exposures {kind}"
        );
    }
    assert_eq!(total(&samples, "epitrace_ready", &[]), 1.0);
    for p in [
        "case-router",
        "segmenter",
        "presence-join",
        "exposure-aggregator",
        "cluster-router",
        "cluster-detector",
    ] {
        assert!(
            total(
                &samples,
                "epitrace_batch_duration_seconds_count",
                &[("processor", p)]
            ) > 0.0
        );
        assert!(
            total(
                &samples,
                "epitrace_event_time_lag_seconds_count",
                &[("processor", p)]
            ) > 0.0
        );
        assert!(
            total(
                &samples,
                "epitrace_assigned_partitions",
                &[("processor", p)]
            ) > 0.0
        );
        assert!(
            total(
                &samples,
                "epitrace_rebalances_total",
                &[("processor", p), ("kind", "assign")]
            ) >= 1.0
        );
    }
    // Every metric the binary defines has its help text; labels stay bounded.
    for s in &samples {
        for forbidden in ["subject", "case", "case_id", "cell", "window", "contact"] {
            assert!(
                !s.labels.contains_key(forbidden),
                "{} has label {forbidden}",
                s.name
            );
        }
    }
    let names: std::collections::BTreeSet<&str> = samples.iter().map(|s| s.name.as_str()).collect();
    for name in Metrics::NAMES {
        if [
            "epitrace_cluster_alerts_emitted_total",
            "epitrace_consumer_lag_records",
            "epitrace_state_size_bytes",
            "epitrace_state_keys",
            "epitrace_api_requests_total",
            "epitrace_api_audit_batch_records",
        ]
        .contains(name)
        {
            continue; // no cluster detector yet; lag and state gauges are periodic; no API
        }
        assert!(
            names.iter().any(|n| n.starts_with(name)),
            "{name} not exported"
        );
    }
}

/// `tracing.timelines` holds, for the live case, exactly its subjects'
/// segments (the oracle's walk of their observations, per feed) clipped to
/// its infectious window; the retracted case has nothing live.
async fn check_timelines(
    kafka: &KafkaConfig,
    scenario: &epitrace_sim::Scenario,
    observations: &[(SubjectId, epitrace_core::Observation)],
    tracing: &TracingConfig,
) {
    use epitrace_core::join::infectious_window;
    use epitrace_model::records::Visit;

    let mut latest: BTreeMap<String, Visit> = BTreeMap::new();
    for r in read_all(kafka, TIMELINES).await.unwrap() {
        let v: Visit =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        assert_eq!(
            r.key.as_deref(),
            Some(v.case_id.as_str().as_bytes()),
            "keyed by case"
        );
        assert!(v.dwell_s > 0 && v.end > v.start && (0.0..=1.0).contains(&v.confidence.get()));
        latest.insert(v.visit_id.as_str().to_owned(), v);
    }
    let live: Vec<&Visit> = latest.values().filter(|v| !v.retracted).collect();
    for case in &scenario.cases {
        let mut got: Vec<(SubjectId, i64, i64)> = live
            .iter()
            .filter(|v| v.case_id == case.case_id)
            .map(|v| (v.subject, v.start.as_millis(), v.end.as_millis()))
            .collect();
        got.sort_unstable();
        if case.case_id.as_str() == "KR-2020-0502" {
            assert!(
                got.is_empty(),
                "the retracted case still has {} visits",
                got.len()
            );
            assert!(
                latest
                    .values()
                    .any(|v| v.case_id == case.case_id && v.retracted),
                "its visits were never withdrawn"
            );
            continue;
        }
        let window = infectious_window(case.infectious_from, case.infectious_until);
        let mut want = Vec::new();
        for subject in &case.subjects {
            for stream in epitrace_core::Stream::FEEDS {
                let obs: Vec<_> = observations
                    .iter()
                    .filter(|(s, o)| s == subject && o.source.stream() == stream)
                    .map(|(_, o)| *o)
                    .collect();
                for seg in oracle::segments(&obs, tracing.segment.max_gap.as_millis()) {
                    let (a, b) = (
                        seg.start.max(window.start().as_millis()),
                        seg.end.min(window.end().as_millis()),
                    );
                    if b > a {
                        want.push((*subject, a, b));
                    }
                }
            }
        }
        want.sort_unstable();
        // Cases 3 and 4 are infectious only after the night: no visits.
        assert!(
            case.case_id.as_str() != "KR-2020-0501" || want.len() >= 3,
            "the case has too few visits to judge: {}",
            want.len()
        );
        assert_eq!(
            got, want,
            "{}: visits differ from the oracle's segments",
            case.case_id
        );
    }
}
