//! Chaos on a real broker: several `epitrace run` instances share one
//! consumer group per processor while the test SIGKILLs them at random
//! moments (restarting each on its own state folder), restarts the broker,
//! and adds then removes one more instance. Their read-committed outputs
//! are compared with those of one uninterrupted instance on the same
//! replay, and the counts printed.
//!
//! The test runs on a broker of its own (`scripts/kafka-local.sh` on free
//! ports, so that it can restart it). Its size comes from the environment
//! (`make chaos` sets the large one):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CHAOS_RESIDENTS` | 150 | residents of the simulated city (≈ 1,650 feed records each over 7 days: 247,019 records for 150) |
//! | `CHAOS_DAYS` | 7 | days simulated |
//! | `CHAOS_KILLS` | 6 | SIGKILLs of a random instance |
//! | `CHAOS_BROKER_RESTARTS` | 1 | broker restarts |
//! | `CHAOS_GUARANTEE` | `exactly_once` | or `at_least_once` |
//! | `CHAOS_SEED` | 1 | seed of the moments and victims |
//! | `CHAOS_STANDBY` | 1 | `kafka.num_standby` of the chaos instances (the reference has none) |
//!
//! Two runs never publish byte-identical streams, even without faults: the
//! co-partitioned inputs of a processor interleave differently (a case tag
//! reaching the segmenter before or after a segment closes changes how
//! many versions of it are sent, an exposure's last status is NEW or
//! UPDATED accordingly), and exposures carry the broker's append time of
//! their input. Identical repeats of a record occur in clean runs too. So
//! the test checks:
//!
//! - **nothing lost, nothing changed** — the final answer of every output
//!   topic: the latest version of every segment, visit and exposure by its
//!   id (retracted ones dropped; an exposure's `detected_at` ignored and
//!   NEW/UPDATED taken as live), the live clusters (cases, index case,
//!   size) and the case routing, must equal the reference's exactly;
//! - **nothing processed twice** — every committed batch writes the next
//!   offset of each input partition it read to its processor's changelog,
//!   in commit order, in the same transaction as its outputs. With
//!   exactly-once that sequence must only go forward, for every processor
//!   and input partition: no input record is in two committed batches, so
//!   no output was published twice. At least once, the steps back are the
//!   replayed batches (printed);
//! - dead letters: as many as the reference's with exactly-once;
//! - with standbys, that copies were kept (a partition moving to an
//!   instance with a copy restores from it, and the answers above must
//!   still be equal).
//!
//! Records and byte-identical copies per topic are printed for both runs.
//!
//! Needs Java and Maven (as `make test` does); fails loudly without them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use epitrace_e2e::{LocalBroker, free_port};
use epitrace_model::EventTime;
use epitrace_model::codec::{DecodeOptions, decode_single_object};
use epitrace_model::records::{ClusterAlert, Exposure, ExposureStatus, SegmentUpdate, Visit};
use epitrace_processors::registry::REGISTRY;
use epitrace_processors::topology::{
    CASES_BY_SUBJECT, CLUSTERS, DEADLETTER, EXPOSURES, SEGMENTS, TIMELINES,
};
use epitrace_stream::KafkaConfig;
use epitrace_stream::read::{pending_records, read_to_end};
use epitrace_tools::query::live_clusters;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A tiny deterministic generator (xorshift64*), so a failure can be
/// replayed with the same `CHAOS_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn epitrace(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "epitrace {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One `epitrace run` process on its own state folder.
struct Instance {
    name: String,
    state: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
    started_at: Instant,
}

impl Instance {
    fn new(dir: &Path, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            state: dir.join(name).join("state"),
            log: dir.join(name).join("run.log"),
            child: None,
            starts: 0,
            started_at: Instant::now(),
        }
    }

    fn start(&mut self, brokers: &str, group: &str, guarantee: &str, standby: u32) {
        std::fs::create_dir_all(self.log.parent().unwrap()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_epitrace"))
            .args([
                "run",
                "--brokers",
                brokers,
                "--state-dir",
                self.state.to_str().unwrap(),
                "--set",
                &format!("kafka.group_prefix={group}"),
                "--set",
                &format!("kafka.processing_guarantee={guarantee}"),
                "--set",
                &format!("metrics.listen=127.0.0.1:{}", free_port()),
                "--set",
                &format!("kafka.num_standby={standby}"),
            ])
            .env("RUST_LOG", "info,librdkafka=error,rdkafka=error")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.starts += 1;
        self.started_at = Instant::now();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit. A process signalled in its
    /// first moments, before it handles signals, would just die: an
    /// instance restarted a moment ago is given 2 s first.
    fn stop(&mut self) {
        if let Some(wait) = Duration::from_secs(2).checked_sub(self.started_at.elapsed()) {
            thread::sleep(wait);
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = c.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "{} exited with {status} on SIGTERM; its log ends:\n{}",
                        self.name,
                        self.log_tail()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    panic!("{} did not stop on SIGTERM", self.name);
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The last lines of its log with a warning or an error.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains(" INFO ") && !l.contains(" DEBUG "))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Records every processor of `group` has still to process (0 = caught
/// up).
fn pending(kafka: &KafkaConfig, group: &str) -> u64 {
    REGISTRY
        .iter()
        .map(|spec| {
            pending_records(
                kafka,
                &format!("{group}.{}", spec.name()),
                spec.inputs,
                Duration::from_secs(60),
            )
            .unwrap_or(u64::MAX / 16)
        })
        .sum()
}

/// Waits until every processor of `group` is caught up, twice in a row
/// 3 s apart.
fn wait_caught_up(kafka: &KafkaConfig, group: &str, within: Duration, instances: &mut [Instance]) {
    let deadline = Instant::now() + within;
    let mut zero_since: Option<Instant> = None;
    loop {
        for i in instances.iter_mut() {
            assert!(
                i.child.is_none() || i.running(),
                "{} exited; its log ends:\n{}",
                i.name,
                i.log_tail()
            );
        }
        let left = pending(kafka, group);
        if left == 0 {
            if zero_since.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
                return;
            }
            zero_since.get_or_insert_with(Instant::now);
        } else {
            zero_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "{group} not caught up: {left} records pending"
        );
        thread::sleep(Duration::from_secs(1));
    }
}

/// The output topics read.
fn outputs() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for spec in REGISTRY {
        for t in spec.outputs {
            if !out.contains(t) {
                out.push(t);
            }
        }
    }
    out
}

/// What a run published, as the comparison needs it.
#[derive(Debug, Default)]
struct Snapshot {
    /// Records per topic.
    records: BTreeMap<&'static str, u64>,
    /// Per topic, records byte-identical (key and value) to an earlier one
    /// of the topic: what processing an input twice publishes.
    copies: BTreeMap<&'static str, u64>,
    /// The final answer: the latest version of every segment, visit,
    /// exposure (without `detected_at`, the broker's append time of its
    /// input, which differs between runs) and live cluster; and the case
    /// routing (a function of `cases.events` alone).
    finals: BTreeMap<&'static str, BTreeMap<String, String>>,
    dead_letters: u64,
}

fn decode<R: epitrace_model::codec::AvroRecord>(payload: &[u8]) -> R {
    decode_single_object(payload, &DecodeOptions::default()).unwrap()
}

fn snapshot(kafka: &KafkaConfig) -> Snapshot {
    let mut snap = Snapshot::default();
    for topic in outputs() {
        let records = read_to_end(kafka, topic, Duration::from_secs(300)).unwrap();
        let mut seen: BTreeMap<(Vec<u8>, Vec<u8>), u64> = BTreeMap::new();
        let finals = snap.finals.entry(topic).or_default();
        let mut alerts = Vec::new();
        for r in &records {
            let key = r.key.clone().unwrap_or_default();
            let payload = r.payload.clone().unwrap_or_default();
            // Versions of one id share a key, hence a partition: read in
            // partition order, the last one wins.
            match topic {
                SEGMENTS => {
                    let u: SegmentUpdate = decode(&payload);
                    finals.insert(
                        format!(
                            "{:?}/{}/{:?}/{:?}",
                            u.subject, u.lane, u.start, u.first_cell
                        ),
                        format!("{u:?}"),
                    );
                }
                TIMELINES => {
                    let v: Visit = decode(&payload);
                    finals.insert(v.visit_id.as_str().to_owned(), format!("{v:?}"));
                }
                EXPOSURES => {
                    let mut e: Exposure = decode(&payload);
                    e.detected_at = EventTime::MIN;
                    // NEW or UPDATED says how many versions came before:
                    // how the inputs interleaved, not the answer.
                    if e.status == ExposureStatus::Updated {
                        e.status = ExposureStatus::New;
                    }
                    finals.insert(e.exposure_id.as_str().to_owned(), format!("{e:?}"));
                }
                CLUSTERS => alerts.push(decode::<ClusterAlert>(&payload)),
                CASES_BY_SUBJECT => {
                    finals.insert(format!("{key:?}/{payload:?}"), String::new());
                }
                _ => {}
            }
            *seen.entry((key, payload)).or_default() += 1;
        }
        for a in live_clusters(alerts) {
            let mut cases: Vec<&str> = a.cases.iter().map(|c| c.as_str()).collect();
            cases.sort_unstable();
            finals.insert(
                format!("{cases:?}"),
                format!("index {:?}, size {}", a.index_case, a.size),
            );
        }
        // Retracted segments and visits are no answer.
        finals.retain(|_, v| !v.contains("Retract") && !v.contains("retracted: true"));
        snap.records.insert(topic, records.len() as u64);
        snap.copies
            .insert(topic, seen.values().map(|n| n - 1).sum::<u64>());
    }
    // Dead letters carry the wall clock: counted, not compared.
    snap.dead_letters = read_to_end(kafka, DEADLETTER, Duration::from_secs(60))
        .unwrap()
        .len() as u64;
    snap
}

/// Per topic: (records, copies, final entries, final entries missing,
/// final entries extra or different).
fn compare(
    reference: &Snapshot,
    got: &Snapshot,
) -> BTreeMap<&'static str, (u64, u64, usize, usize, usize)> {
    let mut out = BTreeMap::new();
    for topic in outputs() {
        let empty = BTreeMap::new();
        let r = reference.finals.get(topic).unwrap_or(&empty);
        let g = got.finals.get(topic).unwrap_or(&empty);
        let missing = r.iter().filter(|(k, v)| g.get(*k) != Some(*v)).count();
        for (k, v) in r.iter().filter(|(k, v)| g.get(*k) != Some(*v)).take(3) {
            eprintln!("{topic} {k}:\n  reference {v}\n  chaos     {:?}", g.get(k));
        }
        let extra = g.iter().filter(|(k, v)| r.get(*k) != Some(*v)).count();
        out.insert(
            topic,
            (
                got.records.get(topic).copied().unwrap_or(0),
                got.copies.get(topic).copied().unwrap_or(0),
                g.len(),
                missing,
                extra,
            ),
        );
    }
    out
}

/// From the processors' changelogs of `group`: (batches committed,
/// batches that went back). Every committed batch writes the next offset of
/// each input partition it read to the changelog, in commit order; a batch
/// whose next offset is not beyond the previous one for the same input
/// partition processed records a committed batch had already processed.
/// (The changelogs are not compacted yet: their active segment holds every
/// record.)
fn replays(kafka: &KafkaConfig, group: &str) -> (u64, u64) {
    let mut batches = 0;
    let mut back = 0;
    for spec in REGISTRY {
        let topic = epitrace_stream::changelog::topic(group, spec.name());
        let mut last: BTreeMap<(i32, Vec<u8>), i64> = BTreeMap::new();
        for r in read_to_end(kafka, &topic, Duration::from_secs(300)).unwrap() {
            let key = r.key.unwrap_or_default();
            if key.first() != Some(&1) {
                continue;
            }
            let next = i64::from_be_bytes(r.payload.unwrap().try_into().unwrap());
            batches += 1;
            if last
                .insert((r.partition, key[1..].to_vec()), next)
                .is_some_and(|prev| next <= prev)
            {
                back += 1;
            }
        }
    }
    (batches, back)
}

fn purge_outputs(brokers: &str) {
    let mut topics = outputs();
    topics.push(DEADLETTER);
    // `epitrace topics purge` purges every topic; the feeds must stay, so
    // the outputs are purged through the library.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(epitrace_stream::admin::purge_topics(
        &KafkaConfig::for_brokers(brokers),
        &topics,
    ))
    .unwrap();
}

#[test]
fn instances_killed_and_a_broker_restarted_change_nothing_in_the_outputs() {
    let residents: u32 = env_or("CHAOS_RESIDENTS", 150);
    let days: u32 = env_or("CHAOS_DAYS", 7);
    let kills: u32 = env_or("CHAOS_KILLS", 6);
    let restarts: u32 = env_or("CHAOS_BROKER_RESTARTS", 1);
    let guarantee: String = env_or("CHAOS_GUARANTEE", "exactly_once".to_owned());
    let mut rng = Rng(env_or("CHAOS_SEED", 1u64)
        .max(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let exactly_once = guarantee == "exactly_once";
    // Knobs to tell faults from the pipeline's own nondeterminism.
    let instances: usize = env_or("CHAOS_INSTANCES", 3);
    let add: bool = env_or("CHAOS_ADD", 1u8) == 1;
    let standby: u32 = env_or("CHAOS_STANDBY", 1);

    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path());
    let brokers = broker.brokers();
    let kafka = KafkaConfig::for_brokers(&brokers);
    epitrace(&["topics", "create", "--brokers", &brokers]);
    let published = Instant::now();
    epitrace(&[
        "sim",
        "--publish",
        "--brokers",
        &brokers,
        "--out",
        dir.path().join("city").to_str().unwrap(),
        "--residents",
        &residents.to_string(),
        "--days",
        &days.to_string(),
        "--seed",
        "11",
    ]);
    let feeds: u64 = epitrace_processors::registry::EXTERNAL_INPUTS
        .iter()
        .map(|t| {
            read_to_end(&kafka, t, Duration::from_secs(120))
                .unwrap()
                .len() as u64
        })
        .sum();
    println!(
        "published {feeds} feed, case and approval records in {:.1} s",
        published.elapsed().as_secs_f64()
    );

    // 1. The reference: one instance, uninterrupted.
    let started = Instant::now();
    let mut reference = vec![Instance::new(dir.path(), "reference")];
    reference[0].start(&brokers, "ref", &guarantee, 0);
    wait_caught_up(&kafka, "ref", Duration::from_secs(1800), &mut reference);
    let started_ref = started.elapsed();
    let clean_s = started_ref.as_secs_f64();
    reference[0].stop();
    let want = snapshot(&kafka);
    let (ref_batches, ref_back) = replays(&kafka, "ref");
    println!(
        "reference: caught up in {clean_s:.1} s; {} dead letters; {ref_batches} input-partition batches committed, {ref_back} went back",
        want.dead_letters
    );
    assert_eq!(ref_back, 0, "the uninterrupted run processed records twice");
    purge_outputs(&brokers);

    // 2. Chaos: three instances (a fourth joins, then leaves), killed at
    //    random moments while they work, the broker restarted.
    let started = Instant::now();
    let mut fleet: Vec<Instance> = (1..=4)
        .map(|i| Instance::new(dir.path(), &format!("instance-{i}")))
        .collect();
    for i in fleet.iter_mut().take(instances) {
        i.start(&brokers, "chaos", &guarantee, standby);
    }
    // Spread the events over about the clean run's duration.
    let events = kills + restarts + if add { 2 } else { 0 };
    let mut plan: Vec<(u64, &str)> = Vec::new();
    let span_ms = u64::try_from(started_ref.as_millis()).unwrap_or(u64::MAX);
    for _ in 0..kills {
        plan.push((rng.below(span_ms), "kill"));
    }
    for r in 0..restarts {
        plan.push((
            span_ms * (u64::from(r) + 1) / (u64::from(restarts) + 2),
            "broker",
        ));
    }
    if add {
        plan.push((span_ms / 4, "add"));
        plan.push((span_ms * 3 / 4, "remove"));
    }
    plan.sort_unstable();
    assert_eq!(plan.len(), usize::try_from(events).unwrap());
    let mut killed = 0;
    for (at_ms, what) in plan {
        let at = Duration::from_millis(at_ms);
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
        match what {
            "kill" => {
                let live: Vec<usize> = (0..fleet.len())
                    .filter(|&i| fleet[i].child.is_some())
                    .collect();
                let victim = live[usize::try_from(rng.below(live.len() as u64)).unwrap()];
                fleet[victim].kill();
                killed += 1;
                println!(
                    "{:>6.1} s: SIGKILL {}",
                    started.elapsed().as_secs_f64(),
                    fleet[victim].name
                );
                thread::sleep(Duration::from_millis(rng.below(1500)));
                fleet[victim].start(&brokers, "chaos", &guarantee, standby);
            }
            "broker" => {
                println!("{:>6.1} s: broker restart", started.elapsed().as_secs_f64());
                broker.run("stop");
                thread::sleep(Duration::from_secs(3));
                broker.run("start");
            }
            "add" => {
                println!(
                    "{:>6.1} s: instance-4 joins",
                    started.elapsed().as_secs_f64()
                );
                fleet[3].start(&brokers, "chaos", &guarantee, standby);
            }
            _ => {
                println!(
                    "{:>6.1} s: instance-4 leaves",
                    started.elapsed().as_secs_f64()
                );
                fleet[3].stop();
            }
        }
    }
    wait_caught_up(&kafka, "chaos", Duration::from_secs(1800), &mut fleet);
    let chaos_s = started.elapsed().as_secs_f64();
    for i in &mut fleet {
        i.stop();
    }
    let got = snapshot(&kafka);
    let (batches, back) = replays(&kafka, "chaos");

    println!(
        "chaos ({guarantee}): {killed} SIGKILLs, {restarts} broker restarts, a 4th instance added and removed; caught up in {chaos_s:.1} s (uninterrupted: {clean_s:.1} s); dead letters {} (reference {})",
        got.dead_letters, want.dead_letters
    );
    println!(
        "input-partition batches committed: {batches}; that went back (records processed again): {back}"
    );
    println!(
        "{:<20} {:>9} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7}",
        "topic", "records", "copies", "ref rec", "ref cp", "final", "missing", "extra"
    );
    let table = compare(&want, &got);
    for (topic, (records, copies, finals, missing, extra)) in &table {
        println!(
            "{topic:<20} {records:>9} {copies:>7} {:>9} {:>7} {finals:>7} {missing:>7} {extra:>7}",
            want.records.get(topic).copied().unwrap_or(0),
            want.copies.get(topic).copied().unwrap_or(0),
        );
    }
    let answers: usize = table.values().map(|t| t.2).sum();
    assert!(answers > 0, "the reference produced nothing");
    for (topic, (_, _, _, missing, extra)) in &table {
        assert_eq!(*missing, 0, "{topic}: final answers lost or changed");
        assert_eq!(
            *extra, 0,
            "{topic}: final answers the uninterrupted run has not"
        );
    }
    let log_lines = |needle: &str| -> usize {
        fleet
            .iter()
            .map(|i| {
                std::fs::read_to_string(&i.log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(needle))
                    .count()
            })
            .sum()
    };
    let copies = log_lines("keeping a standby copy");
    let restored: u64 = fleet
        .iter()
        .flat_map(|i| {
            std::fs::read_to_string(&i.log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("partition state restored"))
                .filter_map(|l| {
                    let at = l.find("records=")? + "records=".len();
                    l[at..]
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .collect::<Vec<_>>()
        })
        .sum();
    println!(
        "standby copies opened (kafka.num_standby={standby}): {copies}; partition restores: {}, {restored} changelog records restored in all",
        log_lines("partition state restored")
    );
    if standby > 0 && instances > 1 {
        assert!(copies > 0, "no standby copy was ever kept");
    }
    if exactly_once {
        assert_eq!(back, 0, "records processed twice under exactly-once");
        assert_eq!(
            got.dead_letters, want.dead_letters,
            "dead letters lost or duplicated"
        );
    } else {
        assert!(got.dead_letters >= want.dead_letters, "dead letters lost");
    }
}
