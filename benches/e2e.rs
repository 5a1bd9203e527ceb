//! The whole pipeline end to end on a real broker, against the raw rate of
//! reading the same topics (`make bench-e2e`, release build).
//!
//! 1. **City.** A simulated city (`EPITRACE_E2E_RESIDENTS`, default
//!    3,600 residents over `EPITRACE_E2E_DAYS`, default 7: about 5
//!    million telecom records, plus its cards, check-ins, cases and
//!    approvals) is published to empty feed topics by `epitrace
//!    produce`'s library (which refuses the simulator's malformed rows);
//!    among the telecom records, `EPITRACE_E2E_MALFORMED` (default 0.001)
//!    × as many malformed ones — not a frame, cut short, latitude 95 —
//!    which every pipeline run must dead-letter.
//! 2. **Baseline.** A plain rdkafka consumer reads every input topic from
//!    its beginning to its end (`read_committed`, counting records): the
//!    fastest any consumer of these topics on this machine can go.
//! 3. **Pipeline.** All six processors in this process, from empty state
//!    and empty intermediate topics, drain the same inputs: in both
//!    delivery modes, `EPITRACE_E2E_REPS` times each (default 3, medians
//!    reported). A drain is timed from the first record any processor
//!    consumed to the last (joining the group and creating the changelogs,
//!    a few seconds per start, are reported apart as `startup_s`).
//! 4. **Each processor alone** (exactly-once, once): on the intermediate
//!    topics the last pipeline run left, from empty state, the last
//!    processor first (each writes its outputs again, which only
//!    processors already measured read).
//!
//! Per run: records/s (feed records for the pipeline, the processor's own
//! input records alone), the ratio to the baseline's records/s, CPU
//! seconds per million records (the process's user + system time), peak
//! RSS (the process's high-water mark, reset before each run) and the
//! state on disk (bytes of the state folder over the records stored in
//! it). Printed as a table and written as JSON (`EPITRACE_E2E_JSON`,
//! default `bench-e2e.json` in the working directory).
//!
//! Needs a broker: `EPITRACE_BENCH_BROKERS` (`make bench-e2e` starts one
//! through `scripts/with-kafka.sh`). `EPITRACE_BENCH_SMOKE=1` shrinks
//! everything to one short iteration: `make test` runs it so that the
//! benchmark cannot rot; it measures nothing worth quoting.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use epitrace_bench::{Usage, median, smoke, unique};
use epitrace_core::TracingConfig;
use epitrace_feeds::{Feed, Format, PseudonymKey, Pseudonymizer};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{LocationPing, LocationSource};
use epitrace_model::topics::{APPROVALS, AUDIT, CARD, CASES, CHECKIN, INTERVIEWS, TELECOM};
use epitrace_model::{AccuracyM, EventTime, LatLng, ProviderId, SubjectId};
use epitrace_ops::Telemetry;
use epitrace_processors::registry::spec;
use epitrace_processors::topology::{TopologyConfig, changelog_specs, topic_specs};
use epitrace_processors::{Pipeline, PipelineConfig, ProcessorKind};
use epitrace_sim::city::CityConfig;
use epitrace_sim::city::files::{feed_path, write_city};
use epitrace_state::{KvStore, RocksStore, StoreOptions};
use epitrace_stream::admin::{create_topics, delete_topics, purge_topics};
use epitrace_stream::{Guarantee, KafkaConfig, OutputRecord, Publisher};
use epitrace_tools::produce::{ProduceOptions, produce};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

/// The topics the pipeline reads from outside.
const INPUTS: [&str; 6] = [TELECOM, CARD, CHECKIN, CASES, APPROVALS, INTERVIEWS];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One measured run.
#[derive(Debug, Clone)]
struct Run {
    records: u64,
    seconds: f64,
    /// From the start to the first record consumed (pipeline runs).
    startup_s: f64,
    cpu_seconds: f64,
    peak_rss_bytes: u64,
    state_bytes: u64,
    stored_records: u64,
    /// Records dead-lettered by the processors run.
    dead_letters: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
}

fn main() {
    let smoke = smoke();
    let brokers = std::env::var("EPITRACE_BENCH_BROKERS")
        .or_else(|_| std::env::var("EPITRACE_TEST_BROKERS"))
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "EPITRACE_BENCH_BROKERS is not set: this benchmark needs a real Kafka broker \
                 (make bench-e2e starts one)"
            )
        });
    let residents: u32 = env_or("EPITRACE_E2E_RESIDENTS", if smoke { 150 } else { 3_600 });
    let days: u32 = env_or("EPITRACE_E2E_DAYS", if smoke { 1 } else { 7 });
    let reps: usize = env_or("EPITRACE_E2E_REPS", if smoke { 1 } else { 3 }).max(1);
    let json_path: String = env_or("EPITRACE_E2E_JSON", "bench-e2e.json".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let kafka = KafkaConfig {
        group_prefix: unique("bench-e2e"),
        ..KafkaConfig::for_brokers(brokers)
    };
    let tracing = TracingConfig::default();

    // 1. The city, published to empty topics.
    let city = tempfile::tempdir().unwrap();
    let cfg = CityConfig {
        seed: 17,
        residents,
        days,
        ..CityConfig::default()
    };
    let t = Instant::now();
    let manifest = write_city(&cfg, &tracing.exposure, city.path(), Format::Csv).unwrap();
    println!(
        "city: {residents} residents, {days} days, {} infections, {} cases (simulated in {:.1} s)",
        manifest.infections,
        manifest.cases,
        t.elapsed().as_secs_f64()
    );
    let topics = topic_specs(&TopologyConfig::default());
    rt.block_on(create_topics(&kafka, &topics)).unwrap();
    let everything: Vec<&str> = topics
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| *n != AUDIT)
        .collect();
    rt.block_on(purge_topics(&kafka, &everything)).unwrap();
    let t = Instant::now();
    let malformed_share: f64 = env_or("EPITRACE_E2E_MALFORMED", 0.001);
    let (feed_records, input_records, malformed) =
        rt.block_on(publish(&kafka, &tracing, city.path(), malformed_share));
    let publish_s = t.elapsed().as_secs_f64();
    println!(
        "published {feed_records} feed records ({input_records} input records in all) in {publish_s:.1} s: {:.0} records/s",
        input_records as f64 / publish_s
    );

    // 2. The baseline.
    let mut baseline = Vec::new();
    for rep in 0..reps {
        let usage = Usage::start();
        let t = Instant::now();
        let n = consume_all(&kafka, &INPUTS);
        let seconds = t.elapsed().as_secs_f64();
        let (cpu_seconds, peak_rss_bytes) = usage.finish();
        assert_eq!(n, input_records, "the baseline read another count");
        println!(
            "baseline rep {rep}: {n} records in {seconds:.2} s ({:.0}/s)",
            n as f64 / seconds
        );
        baseline.push(Run {
            records: n,
            seconds,
            startup_s: 0.0,
            cpu_seconds,
            peak_rss_bytes,
            state_bytes: 0,
            stored_records: 0,
            dead_letters: 0,
        });
    }

    // 3. The pipeline, both modes; 4. each processor alone.
    let intermediate: Vec<&str> = everything
        .iter()
        .copied()
        .filter(|t| !INPUTS.contains(t))
        .collect();
    let mut pipeline_runs: Vec<(Guarantee, Vec<Run>)> = Vec::new();
    let mut alone: Vec<(ProcessorKind, Run)> = Vec::new();
    for guarantee in [Guarantee::ExactlyOnce, Guarantee::AtLeastOnce] {
        let mut runs = Vec::new();
        let mut last_counts = Vec::new();
        for rep in 0..reps {
            rt.block_on(purge_topics(&kafka, &intermediate)).unwrap();
            let (run, counts) = rt.block_on(drain(
                &kafka,
                &tracing,
                guarantee,
                &ProcessorKind::ALL,
                feed_records,
                None,
            ));
            println!(
                "pipeline {guarantee} rep {rep}: {feed_records} feed records in {:.2} s ({:.0}/s), {:.1} CPU s, peak RSS {} MB, state {} MB, {} dead letters",
                run.seconds,
                run.rate(),
                run.cpu_seconds,
                run.peak_rss_bytes >> 20,
                run.state_bytes >> 20,
                run.dead_letters
            );
            assert!(
                run.dead_letters >= malformed,
                "{malformed} malformed records sent, {} dead-lettered",
                run.dead_letters
            );
            runs.push(run);
            last_counts = counts;
        }
        if guarantee == Guarantee::ExactlyOnce {
            // Downstream first: a processor alone writes its outputs again,
            // which must not reach a processor measured after it.
            for (kind, consumed) in last_counts.iter().rev() {
                let (run, _) = rt.block_on(drain(
                    &kafka,
                    &tracing,
                    guarantee,
                    &[*kind],
                    *consumed,
                    Some(*kind),
                ));
                println!(
                    "{} alone: {} records in {:.2} s ({:.0}/s)",
                    kind.name(),
                    run.records,
                    run.seconds,
                    run.rate()
                );
                alone.push((*kind, run));
            }
        }
        pipeline_runs.push((guarantee, runs));
    }

    // The report.
    let base_rate = median(baseline.iter().map(Run::rate).collect());
    let row = |name: &str, what: &str, runs: &[Run]| -> Value {
        let rate = median(runs.iter().map(Run::rate).collect());
        let records = runs[0].records as f64;
        let cpu = median(runs.iter().map(|r| r.cpu_seconds).collect());
        let rss = median(runs.iter().map(|r| r.peak_rss_bytes as f64).collect());
        let state = median(runs.iter().map(|r| r.state_bytes as f64).collect());
        let stored = median(runs.iter().map(|r| r.stored_records as f64).collect());
        json!({
            "run": name,
            "records": what,
            "count": runs[0].records,
            "runs": runs.len(),
            "seconds_median": median(runs.iter().map(|r| r.seconds).collect()),
            "startup_s_median": median(runs.iter().map(|r| r.startup_s).collect()),
            "records_per_s": rate,
            "vs_baseline": rate / base_rate,
            "cpu_s_per_million": cpu / records * 1e6,
            "peak_rss_mb": rss / 1_048_576.0,
            "state_mb": state / 1_048_576.0,
            "stored_records": stored,
            "state_bytes_per_stored_record": if stored > 0.0 { state / stored } else { 0.0 },
            "dead_letters": runs[0].dead_letters,
        })
    };
    let mut rows = vec![row("baseline: plain consumer", "input records", &baseline)];
    for (g, runs) in &pipeline_runs {
        rows.push(row(&format!("pipeline, {g}"), "feed records", runs));
    }
    for (kind, run) in &alone {
        rows.push(row(
            &format!("{} alone, exactly_once", kind.name()),
            "its input records",
            std::slice::from_ref(run),
        ));
    }
    println!();
    println!(
        "{residents} residents × {days} days: {feed_records} feed records ({malformed} malformed among them); medians of {reps} runs; baseline {base_rate:.0} records/s"
    );
    println!(
        "{:<38} {:>10} {:>11} {:>8} {:>9} {:>9} {:>9} {:>10}",
        "run", "records", "records/s", "vs base", "CPU s/M", "RSS MB", "state MB", "B/stored"
    );
    for r in &rows {
        println!(
            "{:<38} {:>10} {:>11.0} {:>7.2}x {:>9.1} {:>9.0} {:>9.1} {:>10.0}",
            r["run"].as_str().unwrap_or(""),
            r["count"],
            r["records_per_s"].as_f64().unwrap_or(0.0),
            r["vs_baseline"].as_f64().unwrap_or(0.0),
            r["cpu_s_per_million"].as_f64().unwrap_or(0.0),
            r["peak_rss_mb"].as_f64().unwrap_or(0.0),
            r["state_mb"].as_f64().unwrap_or(0.0),
            r["state_bytes_per_stored_record"].as_f64().unwrap_or(0.0),
        );
    }
    let report = json!({
        "benchmark": "bench-e2e",
        "date_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        "smoke": smoke,
        "residents": residents,
        "days": days,
        "reps": reps,
        "feed_records": feed_records,
        "input_records": input_records,
        "malformed_share": malformed_share,
        "malformed_records": malformed,
        "publish_records_per_s": input_records as f64 / publish_s,
        "rows": rows,
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("written to {json_path}");
    rt.block_on(purge_topics(&kafka, &everything)).unwrap();
}

/// Publishes the city's files, and while the telecom file is published
/// `malformed` × its rows of malformed telecom records among them; returns
/// (feed records, input records, malformed records), the malformed ones
/// counted in both.
async fn publish(
    kafka: &KafkaConfig,
    tracing: &TracingConfig,
    dir: &Path,
    malformed: f64,
) -> (u64, u64, u64) {
    let key = PseudonymKey::from_file(&dir.join("pseudonym.key")).unwrap();
    let publisher = Publisher::new(kafka).unwrap();
    let (mut feeds, mut all, mut bad) = (0, 0, 0);
    for feed in Feed::ALL {
        let injector = (feed == Feed::Telecom && malformed > 0.0).then(|| {
            let path = feed_path(dir, feed, Format::Csv);
            let rows = std::fs::read(&path)
                .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
                .saturating_sub(1);
            let target = (rows as f64 * malformed).round() as u64;
            let stop = Arc::new(AtomicBool::new(false));
            let handle = tokio::spawn(inject(kafka.clone(), target, Arc::clone(&stop)));
            (stop, handle)
        });
        let opts = ProduceOptions::new(
            feed,
            feed_path(dir, feed, Format::Csv),
            tracing.exposure.clone(),
            epitrace_processors::run::FeedsConfig::default().providers,
        );
        let s = produce(
            &opts,
            Pseudonymizer::new(key.clone()),
            &publisher,
            |_, _| {},
            |_| {},
        )
        .await
        .unwrap();
        println!(
            "  {}: {} records, {} bad rows skipped",
            feed.name(),
            s.published,
            s.bad
        );
        all += s.published;
        if !matches!(feed, Feed::Cases | Feed::Approvals) {
            feeds += s.published;
        }
        if let Some((stop, handle)) = injector {
            stop.store(true, Ordering::Relaxed);
            let sent = handle.await.unwrap();
            println!("  telecom: {sent} malformed records among them");
            (feeds, all, bad) = (feeds + sent, all + sent, sent);
        }
    }
    (feeds, all, bad)
}

/// Sends `target` malformed telecom records, a few every 50 ms until
/// `stop` (so that they land among the good ones), then the rest: in turn
/// not a frame at all (`bad_magic`), a ping frame cut short (`truncated`)
/// and a ping at latitude 95 (`invalid_latitude`). Returns how many.
async fn inject(kafka: KafkaConfig, target: u64, stop: Arc<AtomicBool>) -> u64 {
    let publisher = Publisher::new(&kafka).unwrap();
    let mut sent = 0u64;
    while sent < target {
        let n = if stop.load(Ordering::Relaxed) {
            target - sent
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            (target - sent).min(20)
        };
        let batch: Vec<OutputRecord> = (sent..sent + n).map(malformed_ping).collect();
        publisher.send_all(&batch).await.unwrap();
        sent += n;
    }
    sent
}

fn malformed_ping(i: u64) -> OutputRecord {
    let mut subject = [0u8; 16];
    subject[..8].copy_from_slice(&i.to_be_bytes());
    subject[8..].copy_from_slice(&(!i).to_be_bytes());
    let ping = LocationPing {
        subject: SubjectId::from_bytes(subject),
        provider: ProviderId::new("telco-a").unwrap(),
        observed_at: EventTime::from_millis("t", 1_588_377_600_000).unwrap(),
        position: LatLng::new(37.123_456_789, 127.0).unwrap(),
        accuracy: AccuracyM::new(100.0).unwrap(),
        source: LocationSource::Cell,
        site_id: None,
    };
    let frame = encode_single_object(&ping).unwrap();
    let payload = match i % 3 {
        0 => b"not an avro frame".to_vec(),
        1 => frame[..frame.len() / 2].to_vec(),
        _ => {
            let lat = 37.123_456_789f64.to_le_bytes();
            let at = frame.windows(8).position(|w| w == lat).unwrap();
            let mut f = frame;
            f[at..at + 8].copy_from_slice(&95.0f64.to_le_bytes());
            f
        }
    };
    OutputRecord {
        topic: TELECOM.to_owned(),
        key: subject.to_vec(),
        payload,
        timestamp_ms: None,
    }
}

/// Reads every record of `topics` from the beginning to the end they have
/// now, as a plain consumer does: the baseline.
fn consume_all(kafka: &KafkaConfig, topics: &[&str]) -> u64 {
    let mut conf = kafka.consumer_config("baseline");
    conf.set("group.id", unique("bench-e2e-baseline"));
    let consumer: BaseConsumer = conf.create().unwrap();
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for &topic in topics {
        let md = consumer.fetch_metadata(Some(topic), timeout).unwrap();
        for t in md.topics() {
            for p in t.partitions() {
                let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout).unwrap();
                if high > low {
                    tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                        .unwrap();
                    ends.push((topic.to_owned(), p.id(), high));
                }
            }
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut count = 0u64;
    let mut open = ends.len();
    let mut done = vec![false; ends.len()];
    let give_up = Instant::now() + Duration::from_secs(3_600);
    while open > 0 {
        assert!(Instant::now() < give_up, "the baseline did not finish");
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            check_positions(&consumer, &ends, &mut done, &mut open);
            continue;
        };
        let msg = msg.unwrap();
        use rdkafka::message::Message as _;
        std::hint::black_box(msg.payload());
        count += 1;
        if count.is_multiple_of(10_000) {
            check_positions(&consumer, &ends, &mut done, &mut open);
        }
    }
    count
}

/// Marks the partitions whose position reached their end (transaction
/// markers take offsets too: the position, not the last record, says).
fn check_positions(
    consumer: &BaseConsumer,
    ends: &[(String, i32, i64)],
    done: &mut [bool],
    open: &mut usize,
) {
    let Ok(position) = consumer.position() else {
        return;
    };
    for (i, (topic, p, end)) in ends.iter().enumerate() {
        if done[i] {
            continue;
        }
        let at = position
            .find_partition(topic, *p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(0);
        if at >= *end {
            done[i] = true;
            *open -= 1;
        }
    }
}

/// Runs `kinds` from empty state until the processor counted (`target`
/// for its input records, else the segmenter's feed records) has consumed
/// at least `records` and nothing has been consumed for a while; returns
/// the run (ended at the last record consumed) and what each processor
/// consumed.
async fn drain(
    kafka: &KafkaConfig,
    tracing: &TracingConfig,
    guarantee: Guarantee,
    kinds: &[ProcessorKind],
    records: u64,
    target: Option<ProcessorKind>,
) -> (Run, Vec<(ProcessorKind, u64)>) {
    let kafka = KafkaConfig {
        group_prefix: unique("bench-e2e"),
        processing_guarantee: guarantee,
        ..kafka.clone()
    };
    let state = tempfile::tempdir().unwrap();
    let cfg = PipelineConfig {
        kafka: kafka.clone(),
        tracing: tracing.clone(),
        state_dir: state.path().to_path_buf(),
        ..PipelineConfig::default()
    };
    let telemetry = Telemetry::new().unwrap();
    let usage = Usage::start();
    let started = Instant::now();
    let pipeline = Pipeline::start(&cfg, kinds, &telemetry).unwrap();
    let stats = pipeline.stats().clone();
    let consumed = |kind: ProcessorKind| {
        stats
            .get(&kind)
            .map_or(0, |s| s.records_in.load(Ordering::Relaxed))
    };
    let total = || kinds.iter().map(|&k| consumed(k)).sum::<u64>();
    let counted = target.unwrap_or(ProcessorKind::Segmenter);
    let idle = Duration::from_secs(if smoke() { 3 } else { 6 });
    let give_up = Instant::now() + Duration::from_secs(7_200);
    let mut last = (total(), Instant::now());
    let mut first: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = total();
        if now != last.0 {
            last = (now, Instant::now());
            first.get_or_insert(last.1);
        } else if consumed(counted) >= records && last.1.elapsed() >= idle {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the pipeline did not drain: {} of {records}",
            consumed(counted)
        );
    }
    // From the first batch to the last: joining the group and creating
    // the changelogs (a few seconds, once per start) are not throughput.
    // (A drain that took one batch has no span: it is timed from the start.)
    let from = first.filter(|&f| f < last.1).unwrap_or(started);
    let seconds = (last.1 - from).as_secs_f64();
    let startup_s = (first.unwrap_or(started) - started).as_secs_f64();
    let (cpu_seconds, peak_rss_bytes) = usage.finish();
    let counts: Vec<(ProcessorKind, u64)> = kinds.iter().map(|&k| (k, consumed(k))).collect();
    pipeline.stop().await.unwrap();
    let (state_bytes, stored_records) = state_size(state.path(), kinds);
    // The run's changelogs are not needed again.
    let changelogs: Vec<String> = changelog_specs(&TopologyConfig::default(), &kafka.group_prefix)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let names: Vec<&str> = changelogs.iter().map(String::as_str).collect();
    let _ = delete_topics(&kafka, &names).await;
    (
        Run {
            // The pipeline's count is the feed records (the segmenter also
            // reads cases.by-subject); a processor alone, its inputs.
            records: if target.is_some() {
                consumed(counted)
            } else {
                records
            },
            seconds,
            startup_s,
            cpu_seconds,
            peak_rss_bytes,
            state_bytes,
            stored_records,
            dead_letters: kinds
                .iter()
                .filter_map(|k| stats.get(k))
                .map(|s| s.dead_letters.load(Ordering::Relaxed))
                .sum(),
        },
        counts,
    )
}

/// Bytes of the state folder, and the records its stores hold.
fn state_size(dir: &Path, kinds: &[ProcessorKind]) -> (u64, u64) {
    let bytes = du(dir);
    let mut stored = 0u64;
    for &kind in kinds {
        let stores = spec(kind).store_names();
        let Ok(parts) = std::fs::read_dir(dir.join(kind.name())) else {
            continue;
        };
        for part in parts.flatten() {
            if !part.path().is_dir() {
                continue;
            }
            let Ok(store) = RocksStore::open(part.path(), &stores, &StoreOptions::default()) else {
                continue;
            };
            for name in &stores {
                stored += store
                    .scan(name, &[], &[0xFF; 64])
                    .map_or(0, |v| v.len() as u64);
            }
        }
    }
    (bytes, stored)
}

fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}
