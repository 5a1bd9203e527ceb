//! The providers' own clients (`deploy/providers/`: a Java producer on the
//! Apache Kafka client and Apache Avro, a Python producer on confluent-kafka
//! with its Avro serializer), end to end on a real Kafka broker and a real
//! Schema Registry.
//!
//! A simulated city is traced twice, each time from empty topics by a
//! pipeline of its own:
//!
//! - the reference: every file published by `epitrace produce`'s library;
//! - the kits: cases and approvals by the same library, the feeds by the
//!   kits — the telecom file split in two, its first half by Python in
//!   Confluent framing and its second by Java in single-object framing; the
//!   card file by Java in Confluent framing; the check-in file by Python in
//!   single-object framing — each kit run first through its self-test
//!   against the pseudonymisation vectors.
//!
//! The kits must publish and skip exactly the rows the library does, and the
//! pipeline must reach exactly the reference's exposures (pairs and
//! seconds): the kits pseudonymise, key, partition and encode as epitrace
//! does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use epitrace_core::TracingConfig;
use epitrace_e2e::{brokers, read_all, settle, unique};
use epitrace_feeds::{Feed, Format, PseudonymKey, Pseudonymizer};
use epitrace_model::codec::{DecodeOptions, decode_single_object};
use epitrace_model::records::{Exposure, ExposureStatus};
use epitrace_model::topics::EXPOSURES;
use epitrace_model::{CaseId, SubjectId};
use epitrace_ops::Telemetry;
use epitrace_processors::topology::{TopologyConfig, topic_specs};
use epitrace_processors::{Pipeline, PipelineConfig, ProcessorKind};
use epitrace_sim::city::CityConfig;
use epitrace_sim::city::files::{Manifest, feed_path, write_city};
use epitrace_stream::admin::{create_topics, purge_topics};
use epitrace_stream::registry::{RegistryClient, RegistryConfig};
use epitrace_stream::{KafkaConfig, Publisher};
use epitrace_tools::produce::{ProduceOptions, Summary, produce};
use epitrace_tools::schemas::register_all;

type Answer = BTreeMap<(CaseId, SubjectId), u32>;

fn registry_url() -> String {
    match std::env::var("EPITRACE_TEST_REGISTRY") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "EPITRACE_TEST_REGISTRY is not set: this test needs a real Schema Registry. Run it \
             through `make test` or `scripts/with-kafka.sh scripts/with-registry.sh cargo test \
             -p epitrace-e2e --test producers_e2e`."
        ),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kit(lang: &str) -> PathBuf {
    repo()
        .join("deploy/providers")
        .join(lang)
        .join("producer.sh")
}

/// Runs a kit; returns (published, bad) from its summary line.
fn run_kit(lang: &str, args: &[&str]) -> (u64, u64) {
    let started = Instant::now();
    let out = Command::new(kit(lang)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{lang} {args:?} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("{lang}: no summary line in {stdout}"));
    // "published N records to TOPIC, B bad rows skipped (framing F)"
    let words: Vec<&str> = line.split_whitespace().collect();
    let published = words[1].parse().unwrap();
    let bad = words[5].parse().unwrap();
    println!("{lang}: {line} ({:.1} s)", started.elapsed().as_secs_f64());
    (published, bad)
}

/// The telecom file split in two files with its header each.
fn split(path: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let half = rows.len() / 2;
    let write = |name: &str, part: &[&str]| {
        let p = dir.join(name);
        let mut body = String::from(header);
        body.push('\n');
        for r in part {
            body.push_str(r);
            body.push('\n');
        }
        std::fs::write(&p, body).unwrap();
        p
    };
    (
        write("telecom-1.csv", &rows[..half]),
        write("telecom-2.csv", &rows[half..]),
    )
}

async fn produce_feed(
    dir: &Path,
    feed: Feed,
    publisher: &Publisher,
    tracing: &TracingConfig,
) -> Summary {
    let key = PseudonymKey::from_file(&dir.join("pseudonym.key")).unwrap();
    let opts = ProduceOptions::new(
        feed,
        feed_path(dir, feed, Format::Csv),
        tracing.exposure.clone(),
        epitrace_processors::run::FeedsConfig::default().providers,
    );
    produce(&opts, Pseudonymizer::new(key), publisher, |_, _| {}, |_| {})
        .await
        .unwrap()
}

async fn purge_all(kafka: &KafkaConfig) {
    let specs = topic_specs(&TopologyConfig::default());
    let names: Vec<&str> = specs
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| *n != epitrace_model::topics::AUDIT)
        .collect();
    purge_topics(kafka, &names).await.unwrap();
}

/// Every processor on emptied topics, from empty state (kept in the
/// returned folder for the pipeline's life).
async fn fresh_pipeline(
    kafka: &KafkaConfig,
    tracing: &TracingConfig,
) -> (Pipeline, tempfile::TempDir) {
    purge_all(kafka).await;
    let state = tempfile::tempdir().unwrap();
    let cfg = PipelineConfig {
        kafka: kafka.clone(),
        tracing: tracing.clone(),
        state_dir: state.path().to_path_buf(),
        ..PipelineConfig::default()
    };
    let telemetry = Telemetry::new().unwrap();
    let pipeline = Pipeline::start(&cfg, &ProcessorKind::ALL, &telemetry).unwrap();
    (pipeline, state)
}

async fn answer(kafka: &KafkaConfig) -> Answer {
    let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
    for r in read_all(kafka, EXPOSURES).await.unwrap() {
        let e: Exposure =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        latest.insert((e.case_id.clone(), e.contact), e);
    }
    latest
        .into_iter()
        .filter(|(_, e)| e.status != ExposureStatus::Retracted)
        .map(|(k, e)| (k, e.cumulative_s))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_java_and_python_kits_are_traced_like_epitrace_produce() {
    let url = registry_url();
    let brokers = brokers();
    // The kits' self-tests: the pseudonymisation vectors and frame headers.
    for (lang, arg) in [("python", "selftest"), ("java", "--self-test")] {
        let out = Command::new(kit(lang)).arg(arg).output().unwrap();
        assert!(
            out.status.success(),
            "{lang} self-test: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let tracing = TracingConfig::default();
    let city = CityConfig {
        seed: 21,
        residents: 300,
        days: 1,
        index_cases: 6,
        ..CityConfig::default()
    };
    let manifest: Manifest = write_city(&city, &tracing.exposure, dir.path(), Format::Csv).unwrap();
    let rows = |f: &str| manifest.counts.rows.get(f).copied().unwrap_or(0);
    let bad_rows = |f: &str| manifest.counts.malformed.get(f).copied().unwrap_or(0);
    let topology = TopologyConfig::default();
    let base = KafkaConfig::for_brokers(brokers.clone());
    create_topics(&base, &topic_specs(&topology)).await.unwrap();
    let client = RegistryClient::new(&url, Duration::from_secs(5));
    register_all(&client, "BACKWARD").await.unwrap();

    // The reference: everything through epitrace produce's library.
    let reference = {
        let kafka = KafkaConfig {
            group_prefix: unique("kits-ref"),
            ..base.clone()
        };
        let (pipeline, _state) = fresh_pipeline(&kafka, &tracing).await;
        let publisher = Publisher::new(&kafka).unwrap();
        let mut feed_records = 0;
        for feed in Feed::ALL {
            let s = produce_feed(dir.path(), feed, &publisher, &tracing).await;
            if !matches!(feed, Feed::Cases | Feed::Approvals) {
                feed_records += s.published;
            }
        }
        settle(
            &pipeline,
            feed_records,
            Duration::from_secs(2),
            Duration::from_secs(6),
            Duration::from_secs(300),
        )
        .await;
        let answer = answer(&kafka).await;
        pipeline.stop().await.unwrap();
        answer
    };
    assert!(
        reference.len() >= 5,
        "the city has exposures: {}",
        reference.len()
    );

    // The kits.
    let kafka = KafkaConfig {
        group_prefix: unique("kits"),
        registry: RegistryConfig {
            url: url.clone(),
            ..RegistryConfig::default()
        },
        ..base.clone()
    };
    let (pipeline, _state) = fresh_pipeline(&kafka, &tracing).await;
    let publisher = Publisher::new(&kafka).unwrap();
    for feed in [Feed::Cases, Feed::Approvals] {
        produce_feed(dir.path(), feed, &publisher, &tracing).await;
    }
    let key = dir.path().join("pseudonym.key");
    let key = key.to_str().unwrap();
    let (t1, t2) = split(
        &feed_path(dir.path(), Feed::Telecom, Format::Csv),
        dir.path(),
    );
    let card = feed_path(dir.path(), Feed::Card, Format::Csv);
    let checkin = feed_path(dir.path(), Feed::Checkin, Format::Csv);
    let runs = [
        ("python", "telecom", &t1, "confluent"),
        ("java", "telecom", &t2, "single-object"),
        ("java", "card", &card, "confluent"),
        ("python", "checkin", &checkin, "single-object"),
    ];
    let mut counts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (lang, feed, input, framing) in runs {
        let (published, bad) = run_kit(
            lang,
            &[
                "--feed",
                feed,
                "--input",
                input.to_str().unwrap(),
                "--key",
                key,
                "--brokers",
                &brokers,
                "--framing",
                framing,
                "--registry",
                &url,
                "--max-bad-share",
                "1",
                "--quiet",
            ],
        );
        let c = counts.entry(feed).or_default();
        c.0 += published;
        c.1 += bad;
    }
    for feed in ["telecom", "card", "checkin"] {
        assert_eq!(
            counts[feed],
            (rows(feed), bad_rows(feed)),
            "{feed}: the kits publish and skip exactly the rows epitrace produce does"
        );
    }
    let feed_records: u64 = counts.values().map(|c| c.0).sum();
    settle(
        &pipeline,
        feed_records,
        Duration::from_secs(2),
        Duration::from_secs(6),
        Duration::from_secs(300),
    )
    .await;
    let got = answer(&kafka).await;
    pipeline.stop().await.unwrap();
    purge_all(&kafka).await;
    let missing: Vec<_> = reference.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !reference.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(got, reference, "the same exposures, to the second");
    println!(
        "kits: {feed_records} feed records from Java and Python (both framings) traced to the reference's {} exposures",
        reference.len()
    );
}
