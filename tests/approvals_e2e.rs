//! Approvals gate tracing, on a real Apache Kafka broker with every
//! processor on RocksDB: the nightlife scenario's cases are published
//! without approvals (pending: no exposure); a CARD approval publishes the
//! exposures the cases' card records support; a LOCATION approval posted
//! later adds the tower and GPS ones from the stored state; the LOCATION
//! approval lapses when the stream's event time passes its `expires_at`,
//! which retracts them again. Each step equals the brute-force oracle run
//! on the cases' records of the approved categories only, and the case
//! timelines hold visits of the approved categories only.

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
use epitrace_core::{Category, Ingest, TracingConfig};
use epitrace_e2e::{brokers, parse_exposition, read_all, settle, total, unique};
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{
    CaseEvent, CaseStatus, DataAccessApproval, DataCategory, Exposure, ExposureStatus,
    ObservationSource, Visit,
};
use epitrace_model::topics::{APPROVALS, AUDIT, CASES, EXPOSURES, TIMELINES};
use epitrace_model::{CaseId, EventTime, SubjectId, Text};
use epitrace_ops::Telemetry;
use epitrace_processors::topology::{TopologyConfig, topic_specs};
use epitrace_processors::{Pipeline, PipelineConfig, ProcessorKind};
use epitrace_sim::{Scenario, nightlife};
use epitrace_stream::admin::{create_topics, purge_topics};
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};

const DAY_MS: i64 = 86_400_000;

type Pairs = Vec<((CaseId, SubjectId), i64)>;

fn expected(s: &Scenario, cfg: &TracingConfig, open: &[Category]) -> Pairs {
    let ingest = Ingest::new(cfg);
    let obs: Vec<_> = s.feed().map(|r| r.observation(&ingest)).collect();
    let specs: Vec<CaseSpec> = s.live_cases().iter().map(CaseSpec::from_event).collect();
    oracle::exposures_approved(&obs, &specs, cfg, open)
        .into_iter()
        .map(|(k, e)| (k, e.cumulative_ms / 1000))
        .collect()
}

async fn live(kafka: &KafkaConfig) -> Pairs {
    let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
    for r in read_all(kafka, EXPOSURES).await.unwrap() {
        let e: Exposure =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        latest.insert((e.case_id.clone(), e.contact), e);
    }
    latest
        .into_iter()
        .filter(|(_, e)| e.status != ExposureStatus::Retracted)
        .map(|(k, e)| (k, i64::from(e.cumulative_s)))
        .collect()
}

/// The categories of the live visits, with how many of each.
async fn visit_categories(kafka: &KafkaConfig) -> BTreeMap<Category, usize> {
    let mut latest: BTreeMap<String, Visit> = BTreeMap::new();
    for r in read_all(kafka, TIMELINES).await.unwrap() {
        let v: Visit =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        latest.insert(v.visit_id.as_str().to_owned(), v);
    }
    let mut by: BTreeMap<Category, usize> = BTreeMap::new();
    for v in latest.values().filter(|v| !v.retracted) {
        let c = match v.sources.first() {
            Some(ObservationSource::Card) => Category::Card,
            Some(ObservationSource::Checkin) => Category::Checkin,
            _ => Category::Location,
        };
        *by.entry(c).or_default() += 1;
    }
    by
}

/// Waits until the live exposures equal `want`.
async fn until_equal(kafka: &KafkaConfig, want: &Pairs, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = live(kafka).await;
        if &got == want {
            println!("{what}: {} live exposures", got.len());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} live exposures, want {}\n got {got:?}\nwant {want:?}",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn approval(case: &CaseId, category: DataCategory, at: i64, until: i64) -> OutputRecord {
    let a = DataAccessApproval {
        case_id: case.clone(),
        category,
        authority: Text::new("authority", "test authority").unwrap(),
        reference: Text::new("reference", format!("{}-{category:?}", case.as_str())).unwrap(),
        approved_at: EventTime::from_millis("t", at).unwrap(),
        expires_at: EventTime::from_millis("t", until).unwrap(),
    };
    OutputRecord {
        topic: APPROVALS.into(),
        key: case.as_str().as_bytes().to_vec(),
        payload: encode_single_object(&a).unwrap(),
        timestamp_ms: None,
    }
}

fn frame(r: &epitrace_sim::FeedRecord) -> OutputRecord {
    OutputRecord {
        topic: r.topic().into(),
        key: r.key(),
        payload: r.encode().unwrap(),
        timestamp_ms: None,
    }
}

fn case_record(e: &CaseEvent) -> OutputRecord {
    OutputRecord {
        topic: CASES.into(),
        key: e.case_id.as_str().as_bytes().to_vec(),
        payload: encode_single_object(e).unwrap(),
        timestamp_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_gate_exposures_on_a_real_broker() {
    let kafka = KafkaConfig {
        group_prefix: unique("approvals"),
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
        .filter(|n| *n != AUDIT)
        .collect();
    purge_topics(&kafka, &names).await.unwrap();

    let s = nightlife(80, 11).unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = PipelineConfig {
        kafka: kafka.clone(),
        topology,
        state_dir: state.path().to_path_buf(),
        ..PipelineConfig::default()
    };
    let card = expected(&s, &cfg.tracing, &[Category::Card]);
    let card_location = expected(&s, &cfg.tracing, &[Category::Card, Category::Location]);
    assert!(
        !card.is_empty() && card.len() < card_location.len(),
        "the scenario tells the categories apart"
    );
    // The aggregator's event time once everything is in: the latest
    // overlap end or confirmation.
    let ingest = Ingest::new(&cfg.tracing);
    let latest = s
        .feed()
        .map(|r| r.observation(&ingest).1.end().as_millis())
        .chain(s.cases.iter().map(|c| c.confirmed_at.as_millis()))
        .max()
        .unwrap();
    let cases: Vec<CaseId> = s.live_cases().iter().map(|c| c.case_id.clone()).collect();

    let telemetry = Telemetry::new().unwrap();
    let pipeline = Pipeline::start(&cfg, &ProcessorKind::ALL, &telemetry).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !telemetry.health.is_ready() {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let publisher = Publisher::new(&kafka).unwrap();

    // Pending: the data and the cases, no approval.
    let mut records: Vec<OutputRecord> = s.trail.iter().map(frame).collect();
    records.extend(s.cases.iter().map(case_record));
    records.extend(s.late.iter().map(frame));
    publisher.send_all(&records).await.unwrap();
    let feed = u64::try_from(s.trail.len() + s.late.len()).unwrap();
    settle(
        &pipeline,
        feed,
        Duration::from_secs(1),
        Duration::from_secs(5),
        Duration::from_secs(180),
    )
    .await;
    let stats = pipeline.stats().clone();
    let candidates = stats[&ProcessorKind::ExposureAggregator]
        .records_in
        .load(Ordering::Relaxed);
    assert!(candidates > 0, "the aggregator saw no candidate");
    assert_eq!(live(&kafka).await, Pairs::new(), "exposures while pending");
    assert_eq!(
        visit_categories(&kafka).await,
        BTreeMap::new(),
        "visits while pending"
    );
    let pending = || {
        let text = telemetry.metrics.render().unwrap();
        total(
            &parse_exposition(&text).unwrap(),
            "epitrace_pending_approval_cases",
            &[],
        )
    };
    #[allow(clippy::cast_precision_loss)]
    let live_cases = cases.len() as f64;
    assert_eq!(pending(), live_cases, "the pending gauge");
    println!("pending: {candidates} aggregator inputs, no exposure, {live_cases} cases pending");

    // CARD approved: card evidence only.
    let far = latest + 30 * DAY_MS;
    let approvals: Vec<_> = cases
        .iter()
        .map(|c| approval(c, DataCategory::Card, latest, far))
        .collect();
    publisher.send_all(&approvals).await.unwrap();
    until_equal(&kafka, &card, "CARD approved").await;
    assert_eq!(pending(), 0.0, "nothing pending once approved");
    let visits = visit_categories(&kafka).await;
    assert!(
        visits.contains_key(&Category::Card) && !visits.contains_key(&Category::Location),
        "CARD visits only: {visits:?}"
    );

    // LOCATION approved later, for two days of event time.
    let lapse = latest + 2 * DAY_MS;
    let approvals: Vec<_> = cases
        .iter()
        .map(|c| approval(c, DataCategory::Location, latest, lapse))
        .collect();
    publisher.send_all(&approvals).await.unwrap();
    until_equal(&kafka, &card_location, "LOCATION approved").await;
    let visits = visit_categories(&kafka).await;
    assert!(
        visits.contains_key(&Category::Location),
        "LOCATION visits: {visits:?}"
    );

    // Event time moves past the lapse (cases confirmed later, on every
    // partition): the tower and GPS exposures are retracted.
    let clock: Vec<OutputRecord> = (0..32u8)
        .map(|n| {
            case_record(&CaseEvent {
                case_id: CaseId::new(format!("KR-CLOCK-{n}")).unwrap(),
                subjects: vec![SubjectId::from_bytes([0xe0 ^ n; 16])],
                confirmed_at: EventTime::from_millis("t", lapse + DAY_MS).unwrap(),
                symptom_onset: None,
                infectious_from: EventTime::from_millis("t", lapse).unwrap(),
                infectious_until: None,
                status: CaseStatus::Confirmed,
                region: None,
            })
        })
        .collect();
    publisher.send_all(&clock).await.unwrap();
    until_equal(&kafka, &card, "LOCATION lapsed").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let visits = visit_categories(&kafka).await;
        if !visits.contains_key(&Category::Location) {
            println!("visits after the lapse: {visits:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "LOCATION visits left: {visits:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    pipeline.stop().await.unwrap();
    purge_topics(&kafka, &names).await.unwrap();
}
