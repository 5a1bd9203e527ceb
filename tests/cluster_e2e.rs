//! Clusters end to end on a real Apache Kafka broker: a scenario with two
//! place clusters, an exposure chain through two events (a bar and a gym,
//! linked and apart), a pair that is no cluster and a
//! retracted case, published in phases (a cluster completed late, grown by
//! a fourth case, shrunk again when that case is retracted), the whole
//! pipeline on RocksDB, and `tracing.clusters` folded and compared after
//! each phase with the clusters the scenario was built to contain.

// Test code: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use epitrace_e2e::{brokers, read_all, unique};
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{
    CaseEvent, CaseStatus, ClusterAlert, ClusterStatus, LocationPing, LocationSource,
};
use epitrace_model::topics::{CASES, CLUSTERS, TELECOM};
use epitrace_model::{AccuracyM, CaseId, EventTime, LatLng, ProviderId, SubjectId};
use epitrace_ops::Telemetry;
use epitrace_processors::topology::{TopologyConfig, topic_specs};
use epitrace_processors::{Pipeline, PipelineConfig, ProcessorKind};
use epitrace_stream::admin::{create_topics, purge_topics};
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use epitrace_tools::query::live_clusters;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// 2020-06-01T00:00Z: the scenario's day 0.
const T0: i64 = 1_590_969_600_000;

/// Five places about 2 km apart in Daejeon (no other test uses the city).
fn place(i: u8) -> LatLng {
    LatLng::new(36.35 + 0.02 * f64::from(i), 127.38).unwrap()
}

struct Person {
    name: &'static str,
    subject: SubjectId,
}

fn person(n: u8, name: &'static str) -> Person {
    let mut b = [0xc1; 16];
    b[1] = n;
    Person {
        name,
        subject: SubjectId::from_bytes(b),
    }
}

/// GPS pings every 5 minutes at `place` from `day` + `from_h` for `hours`.
fn stay(p: &Person, at: u8, day: f64, from_h: f64, hours: f64) -> Vec<OutputRecord> {
    let start = T0 + (day * DAY_MS as f64) as i64 + (from_h * HOUR_MS as f64) as i64;
    let n = (hours * 12.0) as i64;
    (0..=n)
        .map(|k| {
            let ping = LocationPing {
                subject: p.subject,
                provider: ProviderId::new("SKT").unwrap(),
                observed_at: EventTime::from_millis("t", start + k * 300_000).unwrap(),
                position: place(at),
                accuracy: AccuracyM::new(10.0).unwrap(),
                source: LocationSource::Gps,
                site_id: None,
            };
            OutputRecord {
                topic: TELECOM.into(),
                key: p.subject.as_bytes().to_vec(),
                payload: encode_single_object(&ping).unwrap(),
                timestamp_ms: None,
            }
        })
        .collect()
}

fn case_event(run: &str, p: &Person, infectious_day: f64, status: CaseStatus) -> OutputRecord {
    let from = T0 + (infectious_day * DAY_MS as f64) as i64;
    let event = CaseEvent {
        case_id: case_id(run, p),
        subjects: vec![p.subject],
        confirmed_at: EventTime::from_millis("t", from + 4 * DAY_MS).unwrap(),
        symptom_onset: None,
        infectious_from: EventTime::from_millis("t", from).unwrap(),
        infectious_until: None,
        status,
        region: None,
    };
    OutputRecord {
        topic: CASES.into(),
        key: event.case_id.as_str().as_bytes().to_vec(),
        payload: encode_single_object(&event).unwrap(),
        timestamp_ms: None,
    }
}

fn case_id(run: &str, p: &Person) -> CaseId {
    CaseId::new(format!("{run}-{}", p.name)).unwrap()
}

/// The live clusters of this run: (sorted case names, index case name).
type Clusters = BTreeMap<Vec<String>, String>;

async fn live(kafka: &KafkaConfig, run: &str) -> (Clusters, Vec<ClusterAlert>) {
    let mut alerts = Vec::new();
    for r in read_all(kafka, CLUSTERS).await.unwrap() {
        let a: ClusterAlert =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        if a.cases.iter().any(|c| c.as_str().starts_with(run)) {
            alerts.push(a);
        }
    }
    let name = |c: &CaseId| {
        c.as_str()
            .trim_start_matches(run)
            .trim_start_matches('-')
            .to_owned()
    };
    let clusters = live_clusters(alerts.clone())
        .iter()
        .map(|a| {
            let mut cases: Vec<String> = a.cases.iter().map(name).collect();
            cases.sort();
            (cases, a.index_case.as_ref().map(name).unwrap_or_default())
        })
        .collect();
    (clusters, alerts)
}

async fn wait_for(
    kafka: &KafkaConfig,
    run: &str,
    want: &Clusters,
    phase: &str,
) -> Vec<ClusterAlert> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (got, _) = live(kafka, run).await;
        if &got == want {
            // Settled? Nothing more may arrive that changes it.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (again, alerts) = live(kafka, run).await;
            assert_eq!(&again, want, "{phase}: clusters changed after matching");
            return alerts;
        }
        assert!(
            Instant::now() < deadline,
            "{phase}: timed out; live clusters {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn clusters(items: &[(&[&str], &str)]) -> Clusters {
    items
        .iter()
        .map(|(cases, index)| {
            let mut c: Vec<String> = cases.iter().map(|s| (*s).to_owned()).collect();
            c.sort();
            (c, (*index).to_owned())
        })
        .collect()
}

async fn purge_all(kafka: &KafkaConfig) {
    let specs = topic_specs(&TopologyConfig::default());
    // audit.log is never purged (it proves what was done).
    let names: Vec<&str> = specs
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| *n != epitrace_model::topics::AUDIT)
        .collect();
    purge_topics(kafka, &names).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_and_a_chain_on_a_real_broker() {
    let run = unique("CL").replace(['-'], "");
    let run = &run[..run.len().min(40)];
    let kafka = KafkaConfig {
        group_prefix: unique("clusters"),
        ..KafkaConfig::for_brokers(brokers())
    };
    create_topics(&kafka, &topic_specs(&TopologyConfig::default()))
        .await
        .unwrap();
    purge_all(&kafka).await;
    let state = tempfile::tempdir().unwrap();
    // A deployment whose law opens every category without an approval
    // (the approvals' own tests are in `approvals_e2e`).
    let mut tracing = epitrace_core::TracingConfig::default();
    tracing.approvals.open_by_default = epitrace_core::Category::ALL.to_vec();
    let cfg = PipelineConfig {
        kafka: kafka.clone(),
        state_dir: state.path().to_path_buf(),
        tracing,
        ..PipelineConfig::default()
    };
    let telemetry = Telemetry::new().unwrap();
    let pipeline = Pipeline::start(&cfg, &ProcessorKind::ALL, &telemetry).unwrap();
    let publisher = Publisher::new(&kafka).unwrap();

    // Cluster A, a church (place 0): four services over six days, one case
    // each; A4 joins later and is retracted again. D was there too, but
    // D's case is retracted from the start.
    let (a1, a2, a3, a4) = (
        person(1, "A1"),
        person(2, "A2"),
        person(3, "A3"),
        person(4, "A4"),
    );
    let d = person(5, "D");
    // Cluster B, an office (place 1): three colleagues on the same day.
    let (b1, b2, b3) = (person(11, "B1"), person(12, "B2"), person(13, "B3"));
    // Chain C through two events: C1 meets C2 and C4 at a bar (place 2) on
    // day 1, before they are infectious; C2 meets C3 and C5 at a gym
    // (place 3) on day 4, before they are. No shared place is in two
    // timelines (a case's timeline covers its infectious period): only
    // exposures link them.
    let (c1, c2, c3) = (person(21, "C1"), person(22, "C2"), person(23, "C3"));
    let (c4, c5) = (person(24, "C4"), person(25, "C5"));
    // A pair (place 4): two cases are no cluster.
    let (e1, e2) = (person(31, "E1"), person(32, "E2"));

    let mut feeds = Vec::new();
    feeds.extend(stay(&a1, 0, 1.0, 10.0, 2.0));
    feeds.extend(stay(&a2, 0, 3.0, 10.0, 2.0));
    feeds.extend(stay(&a3, 0, 6.0, 10.0, 2.0));
    feeds.extend(stay(&a4, 0, 5.0, 10.0, 2.0));
    feeds.extend(stay(&d, 0, 4.0, 10.0, 2.0));
    for b in [&b1, &b2, &b3] {
        feeds.extend(stay(b, 1, 2.0, 9.0, 8.0));
    }
    feeds.extend(stay(&c1, 2, 1.0, 19.0, 2.0));
    feeds.extend(stay(&c2, 2, 1.0, 19.0, 2.0));
    feeds.extend(stay(&c2, 3, 4.0, 19.0, 2.0));
    feeds.extend(stay(&c3, 3, 4.0, 19.0, 2.0));
    feeds.extend(stay(&c4, 2, 1.0, 19.0, 2.0));
    feeds.extend(stay(&c5, 3, 4.0, 19.0, 2.0));
    feeds.extend(stay(&e1, 4, 2.0, 12.0, 3.0));
    feeds.extend(stay(&e2, 4, 2.0, 12.0, 3.0));
    publisher.send_all(&feeds).await.unwrap();

    // Phase 1: every case but A3 and A4; D confirmed, then retracted.
    let mut cases = vec![
        case_event(run, &a1, 0.0, CaseStatus::Confirmed),
        case_event(run, &a2, 1.0, CaseStatus::Confirmed),
        case_event(run, &d, 0.5, CaseStatus::Confirmed),
        case_event(run, &d, 0.5, CaseStatus::Retracted),
    ];
    for (p, day) in [(&b1, 0.0), (&b2, 1.0), (&b3, 1.5)] {
        cases.push(case_event(run, p, day, CaseStatus::Confirmed));
    }
    for (p, day) in [
        (&c1, 0.0),
        (&c2, 3.0),
        (&c3, 6.0),
        (&c4, 3.0),
        (&c5, 6.0),
        (&e1, 0.0),
        (&e2, 0.0),
    ] {
        cases.push(case_event(run, p, day, CaseStatus::Confirmed));
    }
    publisher.send_all(&cases).await.unwrap();
    let mut want = clusters(&[
        (&["B1", "B2", "B3"], "B1"),
        (&["C1", "C2", "C4"], "C1"),
        (&["C2", "C3", "C5"], "C2"),
    ]);
    let alerts = wait_for(&kafka, run, &want, "phase 1").await;
    let live_now = live_clusters(alerts);
    let event = |source: &Person| {
        live_now
            .iter()
            .find(|a| a.index_case == Some(case_id(run, source)))
            .unwrap()
    };
    let (bar, gym) = (event(&c1), event(&c2));
    for (e, source, infected, at) in [(bar, "C1", ["C2", "C4"], 2), (gym, "C2", ["C3", "C5"], 3)] {
        let evidence = e.source_evidence.as_str();
        assert!(
            evidence.contains("source of the exposure chain here"),
            "{evidence}"
        );
        for i in infected {
            assert!(
                evidence.contains(&format!("{run}-{source}>{run}-{i}")),
                "{evidence}"
            );
        }
        assert!(evidence.contains("0 place link(s)"), "{evidence}");
        // One place, the bar or the gym, with its source.
        assert_eq!(e.places.len(), 1, "{:?}", e.places);
        let p = &e.places[0];
        assert_eq!(
            p.source_case().map(ToString::to_string),
            Some(format!("{run}-{source}"))
        );
        assert!(
            (p.cell().center().lat() - place(at).lat()).abs() < 0.003,
            "{:?}",
            e.places
        );
    }
    // The chain between them: C2, infected at the bar, spread at the gym.
    assert_eq!(bar.linked_clusters, vec![gym.cluster_id.clone()]);
    assert_eq!(gym.linked_clusters, vec![bar.cluster_id.clone()]);

    // Phase 2: A3 confirmed: the church cluster forms (A1 first infectious).
    publisher
        .send_all(&[case_event(run, &a3, 2.0, CaseStatus::Confirmed)])
        .await
        .unwrap();
    want.insert(vec!["A1".into(), "A2".into(), "A3".into()], "A1".into());
    wait_for(&kafka, run, &want, "phase 2").await;

    // Phase 3: A4 confirmed: the church cluster grows.
    publisher
        .send_all(&[case_event(run, &a4, 3.0, CaseStatus::Confirmed)])
        .await
        .unwrap();
    want.remove(&vec!["A1".to_owned(), "A2".into(), "A3".into()]);
    want.insert(
        vec!["A1".into(), "A2".into(), "A3".into(), "A4".into()],
        "A1".into(),
    );
    let alerts = wait_for(&kafka, run, &want, "phase 3").await;
    let church = |alerts: &[ClusterAlert]| -> Vec<ClusterStatus> {
        alerts
            .iter()
            .filter(|a| a.index_case == Some(case_id(run, &a1)))
            .map(|a| a.status)
            .collect()
    };
    assert_eq!(church(&alerts).last(), Some(&ClusterStatus::Growing));

    // Phase 4: A4 retracted: back to three, UPDATED.
    publisher
        .send_all(&[case_event(run, &a4, 3.0, CaseStatus::Retracted)])
        .await
        .unwrap();
    want.remove(&vec![
        "A1".to_owned(),
        "A2".into(),
        "A3".into(),
        "A4".into(),
    ]);
    want.insert(vec!["A1".into(), "A2".into(), "A3".into()], "A1".into());
    let alerts = wait_for(&kafka, run, &want, "phase 4").await;
    assert_eq!(church(&alerts).last(), Some(&ClusterStatus::Updated));
    let church_now = live_clusters(alerts)
        .into_iter()
        .find(|a| a.index_case == Some(case_id(run, &a1)))
        .unwrap();
    assert_eq!(church_now.size, 3);
    assert!(
        church_now
            .places
            .iter()
            .all(|p| (p.cell().center().lat() - place(0).lat()).abs() < 0.003),
        "the church only: {:?}",
        church_now.places
    );

    pipeline.stop().await.unwrap();
    purge_all(&kafka).await;
}
