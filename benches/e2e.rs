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
//! 5. **Latency under load** (exactly-once): from empty topics and state,
//!    the whole pipeline runs live while the city is published again, its
//!    telecom records held at half the exactly-once pipeline's measured
//!    rate. A `read_committed` consumer of `tracing.exposures` (fetches
//!    answered at once) takes, for every exposure, the time from the
//!    append of the input it comes from (its `epitrace.origin` header) to
//!    its arrival, and to its own append. Then, with the city's data in,
//!    `EPITRACE_E2E_NEW_CASES` (default 20) phones of the densest district
//!    (the H3 resolution-7 cell with the most phones) are confirmed one at
//!    a time — infectious over 3 stored days, their approval first — and
//!    each case's time from its append to the last record of its complete
//!    exposure list is taken. p50, p99 and max from HDR histograms.
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
    // `EPITRACE_E2E_ONLY=pipeline`: the exactly-once pipeline only (no
    // at-least-once runs, processors alone or latency phase): a scale point.
    let full = std::env::var("EPITRACE_E2E_ONLY").map_or(true, |v| v != "pipeline");
    let json_path: String = env_or("EPITRACE_E2E_JSON", "bench-e2e.json".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut kafka = KafkaConfig {
        group_prefix: unique("bench-e2e"),
        ..KafkaConfig::for_brokers(brokers)
    };
    // `EPITRACE_E2E_BATCH`: `kafka.batch_max_records` of the processors.
    kafka.batch_max_records = env_or("EPITRACE_E2E_BATCH", kafka.batch_max_records);
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
    let guarantees: &[Guarantee] = if full {
        &[Guarantee::ExactlyOnce, Guarantee::AtLeastOnce]
    } else {
        &[Guarantee::ExactlyOnce]
    };
    for &guarantee in guarantees {
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
        if full && guarantee == Guarantee::ExactlyOnce {
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

    // 5. Latency under load, at half the exactly-once pipeline's rate.
    let max_rate = pipeline_runs
        .iter()
        .find(|(g, _)| *g == Guarantee::ExactlyOnce)
        .map_or(0.0, |(_, runs)| {
            median(runs.iter().map(Run::rate).collect())
        });
    let latency_report = if full {
        rt.block_on(latency(
            &kafka,
            &tracing,
            city.path(),
            &everything,
            (max_rate / 2.0).max(1_000.0),
            env_or("EPITRACE_E2E_NEW_CASES", if smoke { 2 } else { 20 }),
            days,
        ))
    } else {
        Value::Null
    };

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
        "latency": latency_report,
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    let l = &latency_report;
    if full {
        println!(
            "latency at {:.0} telecom records/s (half the exactly-once rate): append → visible exposure p50 {} ms, p99 {} ms, max {} ms ({} records); new case → complete list p50 {} ms, p99 {} ms, max {} ms ({} cases)",
            l["achieved_rate_records_per_s"].as_f64().unwrap_or(0.0),
            l["append_to_visible"]["p50_ms"],
            l["append_to_visible"]["p99_ms"],
            l["append_to_visible"]["max_ms"],
            l["append_to_visible"]["count"],
            l["confirmation_to_complete_list"]["p50_ms"],
            l["confirmation_to_complete_list"]["p99_ms"],
            l["confirmation_to_complete_list"]["max_ms"],
            l["new_cases"],
        );
    }
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
    let usage = Usage::start();
    let started = Instant::now();
    let (pipeline, kafka, state) = start(kafka, tracing, guarantee, kinds);
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
    delete_changelogs(&kafka).await;
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

/// Starts `kinds` in this process from empty state, in a group of their
/// own; returns the pipeline, its Kafka settings and its state folder.
fn start(
    kafka: &KafkaConfig,
    tracing: &TracingConfig,
    guarantee: Guarantee,
    kinds: &[ProcessorKind],
) -> (Pipeline, KafkaConfig, tempfile::TempDir) {
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
    let pipeline = Pipeline::start(&cfg, kinds, &telemetry).unwrap();
    (pipeline, kafka, state)
}

/// Deletes the changelogs of a stopped run's group: not needed again.
async fn delete_changelogs(kafka: &KafkaConfig) {
    let changelogs: Vec<String> = changelog_specs(&TopologyConfig::default(), &kafka.group_prefix)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let names: Vec<&str> = changelogs.iter().map(String::as_str).collect();
    let _ = delete_topics(kafka, &names).await;
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

/// One record seen on `tracing.exposures` by the latency watcher.
#[derive(Debug, Clone)]
struct Seen {
    case_id: String,
    contact: SubjectId,
    /// Its origin header: the append time of the input it comes from.
    origin_ms: i64,
    /// Its own append time (the topic's `LogAppendTime`).
    append_ms: i64,
    /// When this consumer (`read_committed`) received it.
    received_ms: i64,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads `tracing.exposures` from its beginning, as a dashboard would
/// (`read_committed`, fetches answered as soon as a record is there),
/// until `stop`; every record with its origin, append and receive times.
fn watch_exposures(
    kafka: &KafkaConfig,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Seen>> {
    use epitrace_model::codec::{DecodeOptions, decode_single_object};
    use epitrace_model::records::Exposure;
    use epitrace_model::topics::{EXPOSURES, ORIGIN_HEADER};
    use rdkafka::message::{Headers as _, Message as _};
    let mut conf = kafka.consumer_config("latency");
    conf.set("group.id", unique("bench-e2e-latency"))
        .set("fetch.wait.max.ms", "5")
        .set("fetch.min.bytes", "1");
    let consumer: BaseConsumer = conf.create().unwrap();
    let md = consumer
        .fetch_metadata(Some(EXPOSURES), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(EXPOSURES, p.id(), Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(msg) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let received_ms = wall_ms();
            let msg = msg.unwrap();
            let origin_ms = msg
                .headers()
                .and_then(|h| h.iter().filter(|h| h.key == ORIGIN_HEADER).last())
                .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
                .expect("an exposure without its origin header");
            let e: Exposure =
                decode_single_object(msg.payload().unwrap(), &DecodeOptions::default()).unwrap();
            seen.push(Seen {
                case_id: e.case_id.as_str().to_owned(),
                contact: e.contact,
                origin_ms,
                append_ms: msg.timestamp().to_millis().unwrap(),
                received_ms,
            });
        }
        seen
    })
}

/// p50, p99 and max (ms) of `values` through an HDR histogram (1 ms to an
/// hour, 3 significant digits), as JSON.
fn percentiles(values: impl Iterator<Item = i64>) -> Value {
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).unwrap();
    for v in values {
        h.saturating_record(u64::try_from(v.max(1)).unwrap_or(1));
    }
    json!({
        "count": h.len(),
        "p50_ms": h.value_at_quantile(0.5),
        "p99_ms": h.value_at_quantile(0.99),
        "max_ms": h.max(),
    })
}

/// Waits until no processor of `pipeline` has consumed a record for
/// `quiet`, and at least `feed_records` reached the segmenter.
async fn settle(pipeline: &Pipeline, feed_records: u64, quiet: Duration) {
    let stats = pipeline.stats().clone();
    let total = || {
        stats
            .values()
            .map(|s| s.records_in.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let segmenter = || {
        stats
            .get(&ProcessorKind::Segmenter)
            .map_or(0, |s| s.records_in.load(Ordering::Relaxed))
    };
    let give_up = Instant::now() + Duration::from_secs(3_600);
    let mut last = (total(), Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = total();
        if now != last.0 {
            last = (now, Instant::now());
        } else if segmenter() >= feed_records && last.1.elapsed() >= quiet {
            return;
        }
        assert!(Instant::now() < give_up, "the pipeline did not settle");
    }
}

/// Phones of the densest district (the H3 resolution-7 cell, ~5 km², with
/// the most distinct phones in the telecom file) that are not cases, most
/// records there first: the new cases of the latency phase.
fn dense_district_phones(dir: &Path, k: usize) -> Vec<String> {
    use std::collections::{HashMap, HashSet};
    let cases = std::fs::read_to_string(dir.join("cases.csv")).unwrap();
    let known: HashSet<&str> = cases
        .lines()
        .skip(1)
        .flat_map(|l| l.split(',').nth(1).unwrap_or("").split(';'))
        .collect();
    let telecom = std::fs::read_to_string(feed_path(dir, Feed::Telecom, Format::Csv)).unwrap();
    let mut phones: HashMap<u64, HashMap<&str, u32>> = HashMap::new();
    for line in telecom.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(phone), Some(lat), Some(lng)) = (f.first(), f.get(3), f.get(4)) else {
            continue;
        };
        let (Ok(lat), Ok(lng)) = (lat.parse::<f64>(), lng.parse::<f64>()) else {
            continue;
        };
        let Ok(ll) = h3o::LatLng::new(lat, lng) else {
            continue;
        };
        let cell = u64::from(ll.to_cell(h3o::Resolution::Seven));
        *phones.entry(cell).or_default().entry(phone).or_default() += 1;
    }
    let (_, densest) = phones
        .into_iter()
        .max_by_key(|(cell, p)| (p.len(), *cell))
        .unwrap();
    let mut ranked: Vec<(&str, u32)> = densest
        .into_iter()
        .filter(|(p, _)| !known.contains(p))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked
        .into_iter()
        .take(k)
        .map(|(p, _)| p.to_owned())
        .collect()
}

/// Latency under load (exactly-once; step 5 of the module docs): the whole pipeline runs live
/// from empty topics and state while the city is published again, its
/// telecom records held at `held_rate` records/s (half the measured
/// maximum); every exposure's origin-to-visible time is recorded. Then,
/// with the city's data in, `new_cases` phones of the densest district
/// are confirmed one at a time (a 3-day infectious window over stored
/// data), each with its approval first, and the time from the case's
/// append to the last record of its complete exposure list is taken.
async fn latency(
    kafka: &KafkaConfig,
    tracing: &TracingConfig,
    dir: &Path,
    everything: &[&str],
    held_rate: f64,
    new_cases: usize,
    city_days: u32,
) -> Value {
    purge_topics(kafka, everything).await.unwrap();
    let (pipeline, kafka, _state) =
        start(kafka, tracing, Guarantee::ExactlyOnce, &ProcessorKind::ALL);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_exposures(&kafka, Arc::clone(&stop));
    // Joining the groups is not part of the measurement.
    tokio::time::sleep(Duration::from_secs(if smoke() { 4 } else { 8 })).await;

    let key = PseudonymKey::from_file(&dir.join("pseudonym.key")).unwrap();
    let publisher = Publisher::new(&kafka).unwrap();
    let send = |feed: Feed, path: std::path::PathBuf, rate: Option<f64>| {
        let mut opts = ProduceOptions::new(
            feed,
            path,
            tracing.exposure.clone(),
            epitrace_processors::run::FeedsConfig::default().providers,
        );
        if rate.is_some() {
            // Small batches: the rate holds within tens of milliseconds.
            opts.rate = rate;
            opts.batch = 500;
        }
        let pseudonyms = Pseudonymizer::new(key.clone());
        let publisher = &publisher;
        async move {
            produce(&opts, pseudonyms, publisher, |_, _| {}, |_| {})
                .await
                .unwrap()
        }
    };
    let live_from = wall_ms();
    let mut feed_records = 0;
    for feed in [Feed::Cases, Feed::Approvals, Feed::Card, Feed::Checkin] {
        let s = send(feed, feed_path(dir, feed, Format::Csv), None).await;
        if !matches!(feed, Feed::Cases | Feed::Approvals) {
            feed_records += s.published;
        }
    }
    let t = Instant::now();
    let telecom = send(
        Feed::Telecom,
        feed_path(dir, Feed::Telecom, Format::Csv),
        Some(held_rate),
    )
    .await;
    let published_s = t.elapsed().as_secs_f64();
    feed_records += telecom.published;
    println!(
        "latency: {} telecom records published at {:.0}/s (held at {held_rate:.0}/s)",
        telecom.published,
        telecom.published as f64 / published_s
    );
    settle(
        &pipeline,
        feed_records,
        Duration::from_secs(if smoke() { 3 } else { 6 }),
    )
    .await;
    let live_until = wall_ms();

    // New cases over the stored data, one at a time.
    let cfg_city = CityConfig::default();
    let day = 86_400_000;
    let at = |ms: i64| epitrace_feeds::format_time(EventTime::from_millis("t", ms).unwrap());
    let files = tempfile::tempdir().unwrap();
    let mut confirmed: Vec<String> = Vec::new();
    // Infectious over the 3 days before day 5 of the city (or over what a
    // shorter city has), confirmed an hour after.
    let days = i64::from(city_days);
    let until = cfg_city.start_ms + days.min(5) * day;
    let from = until - days.min(3) * day;
    for (i, phone) in dense_district_phones(dir, new_cases).iter().enumerate() {
        let case_id = format!("LAT-{i:03}");
        let start = cfg_city.start_ms;
        let confirmed_at = at(until + 3_600_000);
        let approvals = files.path().join(format!("approvals-{i}.csv"));
        std::fs::write(
            &approvals,
            format!(
                "case_id,category,authority,reference,approved_at,expires_at\n\
                 {case_id},LOCATION,National Police Agency,{case_id}-L,{confirmed_at},{}\n",
                at(start + 95 * day)
            ),
        )
        .unwrap();
        let case = files.path().join(format!("case-{i}.csv"));
        std::fs::write(
            &case,
            format!(
                "case_id,msisdns,card_numbers,confirmed_at,symptom_onset,infectious_from,infectious_until,status,region\n\
                 {case_id},{phone},,{confirmed_at},{},{},{},CONFIRMED,seoul\n",
                at(from + day),
                at(from),
                at(until),
            ),
        )
        .unwrap();
        assert_eq!(send(Feed::Approvals, approvals, None).await.published, 1);
        assert_eq!(send(Feed::Cases, case, None).await.published, 1);
        settle(&pipeline, feed_records, Duration::from_secs(3)).await;
        confirmed.push(case_id);
    }
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    pipeline.stop().await.unwrap();
    delete_changelogs(&kafka).await;

    // Under load: every exposure record the live city caused.
    let live: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.origin_ms >= live_from && s.origin_ms <= live_until)
        .filter(|s| !confirmed.contains(&s.case_id))
        .collect();
    assert!(smoke() || !live.is_empty(), "no exposure under load");
    let visible = percentiles(live.iter().map(|s| s.received_ms - s.origin_ms));
    let appended = percentiles(live.iter().map(|s| s.append_ms - s.origin_ms));
    // Each new case: from its first origin (its approval's or case's
    // append) to the last record of its list, as received.
    let mut per_case = Vec::new();
    for case in &confirmed {
        let mine: Vec<&Seen> = seen.iter().filter(|s| &s.case_id == case).collect();
        // (A smoke city is too small to promise contacts.)
        assert!(smoke() || !mine.is_empty(), "{case}: no exposure at all");
        if mine.is_empty() {
            continue;
        }
        let origin = mine.iter().map(|s| s.origin_ms).min().unwrap();
        let last = mine.iter().map(|s| s.received_ms).max().unwrap();
        let contacts: std::collections::BTreeSet<SubjectId> =
            mine.iter().map(|s| s.contact).collect();
        per_case.push((last - origin, mine.len(), contacts.len()));
    }
    let complete = percentiles(per_case.iter().map(|(ms, ..)| *ms));
    let records_per_case = median(per_case.iter().map(|(_, n, _)| *n as f64).collect());
    let contacts_per_case = median(per_case.iter().map(|(.., c)| *c as f64).collect());
    println!(
        "latency under load ({} exposure records): append → visible on tracing.exposures p50 {} ms, p99 {} ms, max {} ms (append → appended: p50 {} ms, p99 {} ms)",
        visible["count"],
        visible["p50_ms"],
        visible["p99_ms"],
        visible["max_ms"],
        appended["p50_ms"],
        appended["p99_ms"]
    );
    println!(
        "new case → complete exposure list ({} cases, 3-day trail, densest district, median {contacts_per_case:.0} contacts and {records_per_case:.0} exposure records each): p50 {} ms, p99 {} ms, max {} ms",
        per_case.len(),
        complete["p50_ms"],
        complete["p99_ms"],
        complete["max_ms"]
    );
    json!({
        "held_rate_records_per_s": held_rate,
        "achieved_rate_records_per_s": telecom.published as f64 / published_s,
        "telecom_records": telecom.published,
        "append_to_visible": visible,
        "append_to_appended": appended,
        "new_cases": per_case.len(),
        "new_case_exposure_records_median": records_per_case,
        "new_case_contacts_median": contacts_per_case,
        "confirmation_to_complete_list": complete,
    })
}
