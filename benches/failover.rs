//! Failover of a partition holding about a million stored records, on a
//! real broker, with `epitrace run` processes (the presence join, whose
//! state grows with every segment):
//!
//! 1. **Replay** (exactly-once): instance A processes the whole partition
//!    from an empty state — what a new owner would do without changelogs.
//! 2. **At-least-once**: instance C processes the same input in another
//!    group with `processing_guarantee = at_least_once`: the throughput
//!    cost of exactly-once, measured in the same run.
//! 3. **Failover**: A is SIGKILLed; instance B (empty state folder) starts,
//!    takes the partition over and restores it from the changelog; a small
//!    batch published at the kill must then be processed. Reported: the
//!    restore time (B's log) against the replay time, and the whole
//!    failover (kill → the partition caught up on B).
//! 4. **Failover with a standby**: instances D and E in a fresh group with
//!    `kafka.num_standby = 1` process the same input; whichever does not
//!    own partition 0 keeps a standby copy of it. The owner is SIGKILLed
//!    and a small batch published; reported: what the survivor restored
//!    (only the tail its copy missed) and the whole failover.
//!
//! Needs a broker (`EPITRACE_BENCH_BROKERS`, set by `make bench-failover`
//! through `scripts/with-kafka.sh`) and the `epitrace` binary of the same
//! build (`EPITRACE_BIN`, default next to this bench's folder). Size:
//! `EPITRACE_FAILOVER_SEGMENTS` (default 400,000 segments ≈ 1.1 M stored
//! records; 4,000 with `EPITRACE_BENCH_SMOKE=1`, what `make test` runs).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_precision_loss
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{ObservationSource, SegmentUpdate, SegmentUpdateKind};
use epitrace_model::{Cell, EventTime, SubjectId};
use epitrace_stream::read::pending_records;
use epitrace_stream::{KafkaConfig, Outgoing, Publisher};
use h3o::{LatLng, Resolution};

const T0: i64 = 1_588_291_200_000; // 2020-05-01T00:00:00Z
const SEGMENTS: &str = "presence.segments";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn subject(i: u32) -> SubjectId {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&i.to_be_bytes());
    b[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
    SubjectId::from_bytes(b)
}

/// `n` segments of 30–90 min at 5,000 places of central Seoul, 40 per
/// subject back to back over about two days, as (key, frame).
fn segments(n: usize, from: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let places: Vec<Cell> = (0..5_000u32)
        .map(|i| {
            let ll = LatLng::new(
                37.50 + f64::from(i / 100) * 0.0015,
                126.95 + f64::from(i % 100) * 0.0015,
            )
            .unwrap();
            Cell::new(u64::from(ll.to_cell(Resolution::Nine))).unwrap()
        })
        .collect();
    let res6 = Resolution::Six;
    (from..from + n)
        .map(|k| {
            let s = u32::try_from(k / 40).unwrap();
            let nth = i64::try_from(k % 40).unwrap();
            let start = T0 + nth * 90 * 60_000 + i64::from(s % 60) * 60_000;
            let cell = places[(k * 7_919) % places.len()];
            let u = SegmentUpdate {
                subject: subject(s),
                lane: 0,
                start: EventTime::from_millis("start", start).unwrap(),
                first_cell: cell,
                cell,
                end: EventTime::from_millis(
                    "end",
                    start + (30 + (nth * 7 + i64::from(s)) % 60) * 60_000,
                )
                .unwrap(),
                sources: vec![ObservationSource::Gps],
                observations: 3,
                kind: SegmentUpdateKind::Upsert,
                cases: Vec::new(),
                core_cell: cell,
            };
            let key = u.partition_key(res6).unwrap().to_vec();
            (key, encode_single_object(&u).unwrap())
        })
        .collect()
}

fn publish(kafka: &KafkaConfig, frames: &[(Vec<u8>, Vec<u8>)]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let publisher = Publisher::new(kafka).unwrap();
    for chunk in frames.chunks(20_000) {
        let out: Vec<Outgoing<'_>> = chunk
            .iter()
            .map(|(k, v)| Outgoing {
                topic: SEGMENTS,
                partition: Some(0),
                key: k,
                payload: Some(v),
                timestamp_ms: None,
                headers: &[],
            })
            .collect();
        rt.block_on(publisher.send(&out)).unwrap();
    }
}

struct Instance {
    child: Child,
    log: PathBuf,
    metrics: u16,
}

/// An instance never outlives the bench, also when it panics.
impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        brokers: &str,
        group: &str,
        guarantee: &str,
        extra: &[&str],
    ) -> Self {
        let metrics = free_port();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(bin)
            .args([
                "run",
                "--processors",
                "presence-join",
                "--brokers",
                brokers,
                "--state-dir",
                dir.join(name).to_str().unwrap(),
                "--set",
                &format!("kafka.group_prefix={group}"),
                "--set",
                &format!("kafka.processing_guarantee={guarantee}"),
                "--set",
                &format!("metrics.listen=127.0.0.1:{metrics}"),
            ])
            .args(extra)
            .env(
                "RUST_LOG",
                "info,epitrace_stream::changelog=debug,librdkafka=error,rdkafka=error",
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            metrics,
        }
    }

    /// Sum of `epitrace_state_keys` (RocksDB's estimate).
    fn stored_keys(&self) -> f64 {
        self.metric("epitrace_state_keys{")
    }

    /// Sum of a metric's samples whose line starts with `prefix`.
    fn metric(&self, prefix: &str) -> f64 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.metrics)) else {
            return 0.0;
        };
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }

    /// Whether its log says it keeps a standby copy of partition 0.
    fn keeps_standby_of_0(&self) -> bool {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("keeping a standby copy") && l.contains("partition=0 "))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Waits until the group has processed everything; returns when.
fn caught_up(kafka: &KafkaConfig, group: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    let group = format!("{group}.presence-join");
    loop {
        let left = pending_records(kafka, &group, &[SEGMENTS], Duration::from_secs(60)).unwrap();
        if left == 0 {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{group}: {left} records pending");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The restore of partition 0 as B logged it: (records, seconds).
fn restore_of_partition_0(log: &Path) -> Option<(u64, f64)> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .find(|l| l.contains("partition state restored") && l.contains("partition=0 "))?;
    let field = |name: &str| -> Option<String> {
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        Some(
            line[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect(),
        )
    };
    Some((
        field("records")?.parse().ok()?,
        field("seconds")?.parse().ok()?,
    ))
}

fn main() {
    let brokers = std::env::var("EPITRACE_BENCH_BROKERS")
        .or_else(|_| std::env::var("EPITRACE_TEST_BROKERS"))
        .unwrap_or_else(|_| {
        panic!("EPITRACE_BENCH_BROKERS is not set: run `make bench-failover` (it starts a local broker)")
    });
    let bin = std::env::var("EPITRACE_BIN").map_or_else(
        |_| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("epitrace")
        },
        PathBuf::from,
    );
    assert!(bin.exists(), "no epitrace binary at {}", bin.display());
    let n: usize = std::env::var("EPITRACE_FAILOVER_SEGMENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if epitrace_bench::smoke() {
            4_000
        } else {
            400_000
        });
    let dir = tempfile::tempdir().unwrap();
    let kafka = KafkaConfig::for_brokers(&brokers);
    let out = Command::new(&bin)
        .args(["topics", "create", "--brokers", &brokers])
        .output()
        .unwrap();
    assert!(out.status.success(), "topics create failed");

    println!("publishing {n} segments to {SEGMENTS} partition 0…");
    publish(&kafka, &segments(n, 0));
    let run = format!("fo{}", std::process::id());
    let (eos, alo) = (format!("{run}-eos"), format!("{run}-alo"));

    // 1. Replay, exactly-once.
    let a = Instance::start(&bin, dir.path(), "a", &brokers, &eos, "exactly_once", &[]);
    let t = Instant::now();
    let replay_s = caught_up(&kafka, &eos, Duration::from_secs(3600))
        .duration_since(t)
        .as_secs_f64();
    // The state gauges refresh every 15 s.
    std::thread::sleep(Duration::from_secs(16));
    let stored = a.stored_keys();
    println!(
        "replay, exactly-once:  {n} segments in {replay_s:.1} s ({:.0} records/s), {stored:.0} stored records",
        n as f64 / replay_s
    );

    // 2. The same, at-least-once.
    let c = Instance::start(&bin, dir.path(), "c", &brokers, &alo, "at_least_once", &[]);
    let t = Instant::now();
    let alo_s = caught_up(&kafka, &alo, Duration::from_secs(3600))
        .duration_since(t)
        .as_secs_f64();
    c.stop();
    println!(
        "replay, at-least-once: {n} segments in {alo_s:.1} s ({:.0} records/s); exactly-once costs {:.0} % of the throughput",
        n as f64 / alo_s,
        100.0 * (1.0 - alo_s / replay_s)
    );

    // 3. Kill A; B takes the partition over from the changelog, and a
    //    small batch published at the kill must be processed on B.
    let mut a = a;
    let killed = Instant::now();
    a.child.kill().unwrap();
    let _ = a.child.wait();
    let b = Instance::start(&bin, dir.path(), "b", &brokers, &eos, "exactly_once", &[]);
    publish(&kafka, &segments(1_000, n));
    let failover_s = caught_up(&kafka, &eos, Duration::from_secs(600))
        .duration_since(killed)
        .as_secs_f64();
    let (restored, restore_s) = restore_of_partition_0(&b.log)
        .unwrap_or_else(|| panic!("B never restored partition 0; see {}", b.log.display()));
    if let Some(line) = std::fs::read_to_string(&b.log)
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains("restore timings") && l.contains("records=1"))
    {
        println!(
            "B's restore: {}",
            line.split("changelog:").last().unwrap_or(line).trim()
        );
    }
    b.stop();
    println!(
        "failover: partition 0 caught up on B {failover_s:.1} s after A was killed; restore {restored} changelog records in {restore_s:.1} s ({:.0} records/s)",
        restored as f64 / restore_s.max(1e-3)
    );
    println!(
        "restore vs replay: {:.1}x faster (target >= 10x); failover {failover_s:.1} s (target < 30 s)",
        replay_s / restore_s.max(1e-3)
    );

    // 4. With a standby: D and E share the group, one keeps a copy.
    let sb = format!("{run}-sb");
    let standby = ["--set", "kafka.num_standby=1"];
    let d = Instance::start(
        &bin,
        dir.path(),
        "d",
        &brokers,
        &sb,
        "exactly_once",
        &standby,
    );
    let e = Instance::start(
        &bin,
        dir.path(),
        "e",
        &brokers,
        &sb,
        "exactly_once",
        &standby,
    );
    caught_up(&kafka, &sb, Duration::from_secs(3600));
    // The copy follows the changelog: wait until it stops growing.
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut owner, survivor) = loop {
        if e.keeps_standby_of_0() {
            break (d, e);
        }
        if d.keeps_standby_of_0() {
            break (e, d);
        }
        assert!(Instant::now() < deadline, "no standby copy of partition 0");
        std::thread::sleep(Duration::from_millis(500));
    };
    // (A copy that was current when it started — its instance owned the
    // partition before the group settled — reads nothing: 0 stays 0.)
    let mut last = -1.0;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = survivor.metric("epitrace_standby_records_total{");
        if (now - last).abs() < f64::EPSILON {
            break;
        }
        last = now;
        assert!(
            Instant::now() < deadline,
            "the standby copy of partition 0 never stopped growing"
        );
    }
    let killed = Instant::now();
    owner.child.kill().unwrap();
    let _ = owner.child.wait();
    publish(&kafka, &segments(1_000, n + 1_000));
    let failover_s = caught_up(&kafka, &sb, Duration::from_secs(600))
        .duration_since(killed)
        .as_secs_f64();
    let (restored, warm_s) = restore_of_partition_0(&survivor.log).unwrap_or_else(|| {
        panic!(
            "the survivor never restored partition 0; see {}",
            survivor.log.display()
        )
    });
    survivor.stop();
    println!(
        "failover with a standby: partition 0 caught up {failover_s:.1} s after its owner was killed; \
         the standby restored {restored} changelog records in {warm_s:.2} s ({:.0}x faster than the replay)",
        replay_s / warm_s.max(1e-3)
    );
}
