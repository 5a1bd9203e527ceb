//! Reading a topic from the beginning to its current end. Confluent frames
//! (outputs written with `kafka.registry.output_framing = "confluent"`)
//! are turned into single-object frames on the way
//! ([`crate::registry::ReaderFrames`]), so readers decode one framing.

use std::time::{Duration, Instant};

use epitrace_model::topics::{ORIGIN_HEADER, pipeline_written};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::error::StreamError;
use crate::registry::ReaderFrames;

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key bytes, if any.
    pub key: Option<Vec<u8>>,
    /// Value bytes, if any.
    pub payload: Option<Vec<u8>>,
    /// Record timestamp (ms), if any: on epitrace's topics, its append
    /// time.
    pub timestamp_ms: Option<i64>,
    /// Its origin time ([`ORIGIN_HEADER`]), on a topic only the pipeline
    /// writes; `None` elsewhere or without the header.
    pub origin_ms: Option<i64>,
}

/// The [`ORIGIN_HEADER`] of a record on a topic only the pipeline writes
/// ([`pipeline_written`]); `None` elsewhere, or when absent or unreadable.
pub(crate) fn origin_of<M: Message>(m: &M) -> Option<i64> {
    if !pipeline_written(m.topic()) {
        return None;
    }
    let value = m
        .headers()?
        .iter()
        .filter(|h| h.key == ORIGIN_HEADER)
        .last()?
        .value?;
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Reads every record of `topic` that exists now (up to each partition's
/// high watermark at the call), in partition then offset order. Blocking:
/// call it from `spawn_blocking` in async code.
///
/// Uses manual assignment (no consumer group, nothing committed) and
/// `read_committed`, so it sees what downstream consumers would see.
///
/// # Errors
/// [`StreamError::Kafka`] when the topic's metadata or watermarks cannot be
/// fetched; [`StreamError::Timeout`] when the records cannot be read within
/// `timeout`.
pub fn read_to_end(
    cfg: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<ConsumedRecord>, StreamError> {
    read_range(cfg, topic, None, timeout, Reader::Shared)
}

/// As [`read_to_end`], for a principal whose grants name one consumer
/// group (a provider reading its own dead letters): the consumer uses
/// `group` (still nothing committed), and a topic that does not exist or
/// that the principal may not read is an error, not an empty topic.
///
/// # Errors
/// [`StreamError::Kafka`] (`MetadataFetch` with the broker's code, e.g.
/// topic authorisation failed or unknown topic) when the topic cannot be
/// read; otherwise as [`read_to_end`].
pub fn read_own_to_end(
    cfg: &KafkaConfig,
    topic: &str,
    group: &str,
    timeout: Duration,
) -> Result<Vec<ConsumedRecord>, StreamError> {
    read_range(cfg, topic, None, timeout, Reader::Own(group))
}

/// Who reads: epitrace's own tools (group `<prefix>.reader`, a missing
/// topic reads as empty) or a principal with its own group.
#[derive(Clone, Copy)]
enum Reader<'g> {
    Shared,
    Own(&'g str),
}

/// Reads at most the last `last` offsets of every partition of `topic`
/// (fewer records when some of those offsets are transaction markers or
/// aborted records), as [`read_to_end`] does.
///
/// # Errors
/// As [`read_to_end`].
pub fn read_tail(
    cfg: &KafkaConfig,
    topic: &str,
    last: i64,
    timeout: Duration,
) -> Result<Vec<ConsumedRecord>, StreamError> {
    read_range(cfg, topic, Some(last), timeout, Reader::Shared)
}

fn read_range(
    cfg: &KafkaConfig,
    topic: &str,
    last: Option<i64>,
    timeout: Duration,
    reader: Reader<'_>,
) -> Result<Vec<ConsumedRecord>, StreamError> {
    let deadline = Instant::now() + timeout;
    let mut conf = cfg.consumer_config("reader");
    match reader {
        Reader::Shared => conf.set("group.id", format!("{}.reader", cfg.group_prefix)),
        Reader::Own(group) => conf.set("group.id", group),
    };
    let consumer: BaseConsumer = conf.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    if let Reader::Own(_) = reader {
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) => {
                if let Some(code) = t.error() {
                    return Err(StreamError::Kafka(KafkaError::MetadataFetch(code.into())));
                }
            }
            None => {
                return Err(StreamError::Kafka(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::UnknownTopicOrPartition,
                )));
            }
        }
    }
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0usize;
    let mut ends = Vec::new();
    for p in &partitions {
        let (low, high) = watermarks(&consumer, topic, *p, deadline)?;
        ends.push((*p, high));
        if high > low {
            let from = match last {
                Some(n) => Offset::Offset(high.saturating_sub(n.max(1)).max(low)),
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(topic, *p, from)?;
            remaining += 1;
        }
    }
    let mut out = Vec::new();
    if remaining == 0 {
        return Ok(out);
    }
    let mut frames = ReaderFrames::new(&cfg.registry);
    consumer.assign(&tpl)?;
    let mut done: Vec<i32> = Vec::new();
    while done.len() < remaining {
        if Instant::now() > deadline {
            return Err(StreamError::Timeout(format!("reading {topic}")));
        }
        if let Some(msg) = consumer.poll(Duration::from_millis(200)) {
            let msg = msg?;
            let p = msg.partition();
            let end = ends.iter().find(|(q, _)| *q == p).map_or(0, |(_, h)| *h);
            if msg.offset() < end {
                out.push(ConsumedRecord {
                    partition: p,
                    offset: msg.offset(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: msg.payload().map(|b| frames.normalize(topic, b.to_vec())),
                    timestamp_ms: msg.timestamp().to_millis(),
                    origin_ms: origin_of(&msg),
                });
            }
        }
        // Transaction markers (and aborted records) take offsets too: the
        // last record read may sit below `end - 1`, or a partition may hold
        // no record to read at all, so a partition is done once the
        // consumer's position reaches its end.
        let position = consumer.position()?;
        for (p, end) in &ends {
            if done.contains(p) || !tpl.elements().iter().any(|e| e.partition() == *p) {
                continue;
            }
            let at = position
                .find_partition(topic, *p)
                .and_then(|e| e.offset().to_raw());
            if at.is_some_and(|pos| pos >= *end) {
                done.push(*p);
            }
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    Ok(out)
}

/// A partition's watermarks, retried until `deadline` while its leader is
/// moving (right after topic creation, or during a failover), when a read
/// that waited a moment would succeed.
fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    deadline: Instant,
) -> Result<(i64, i64), StreamError> {
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        match consumer.fetch_watermarks(topic, partition, left) {
            Ok(w) => return Ok(w),
            Err(e) if leader_moving(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn leader_moving(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotCoordinator
        )
    )
}

/// How many records of `topics` consumer group `group` has not processed
/// yet: for each partition, the committed records between the group's
/// committed offset and the end. Transaction markers and aborted records
/// take offsets but are not records, so a gap that holds only those counts
/// 0 (checked by reading it, `read_committed`). A partition without a
/// committed offset counts everything. Blocking.
///
/// # Errors
/// [`StreamError::Kafka`] when the brokers cannot be reached,
/// [`StreamError::Timeout`] when a gap cannot be read within `timeout`.
pub fn pending_records(
    cfg: &KafkaConfig,
    group: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<u64, StreamError> {
    let deadline = Instant::now() + timeout;
    let mut conf = cfg.consumer_config("pending");
    conf.set("group.id", group);
    let consumer: BaseConsumer = conf.create()?;
    let metadata = consumer.fetch_metadata(None, timeout)?;
    let mut wanted = TopicPartitionList::new();
    for t in metadata.topics() {
        if topics.contains(&t.name()) {
            for p in t.partitions() {
                wanted.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(wanted, timeout)?;
    let mut pending = 0u64;
    let mut gaps = Vec::new();
    for e in committed.elements() {
        let (low, high) = watermarks(&consumer, e.topic(), e.partition(), deadline)?;
        let from = e
            .offset()
            .to_raw()
            .filter(|o| *o >= 0)
            .unwrap_or(low)
            .max(low);
        if from < high {
            gaps.push((e.topic().to_owned(), e.partition(), from, high));
        }
    }
    // Read each gap: records count, markers do not.
    let reader: BaseConsumer = cfg.consumer_config("pending").create()?;
    for (topic, partition, from, high) in gaps {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, Offset::Offset(from))?;
        reader.assign(&tpl)?;
        loop {
            if Instant::now() > deadline {
                return Err(StreamError::Timeout(format!(
                    "reading {topic}/{partition} from {from}"
                )));
            }
            if let Some(msg) = reader.poll(Duration::from_millis(100)) {
                let msg = msg?;
                if msg.offset() < high {
                    pending += 1;
                }
            }
            let at = reader
                .position()?
                .find_partition(&topic, partition)
                .and_then(|e| e.offset().to_raw());
            if at.is_some_and(|pos| pos >= high) {
                break;
            }
        }
    }
    Ok(pending)
}

/// One record of a [`Follower`]'s topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowedRecord {
    /// The topic it was read from.
    pub topic: String,
    /// The record.
    pub record: ConsumedRecord,
}

/// Follows topics from their beginning, `read_committed`, without a
/// consumer group (manual assignment of every partition that exists at the
/// start, nothing committed): what keeps a reader's view of output topics,
/// such as the investigators' API, up to date. Blocking: poll it from a
/// thread of its own.
pub struct Follower {
    consumer: BaseConsumer,
    frames: ReaderFrames,
    /// Every followed partition and its high watermark at the start.
    ends: Vec<(String, i32, i64)>,
    caught_up: bool,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("partitions", &self.ends.len())
            .field("caught_up", &self.caught_up)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// Assigns every partition of `topics` from its beginning.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] when the metadata or watermarks cannot be
    /// fetched within `timeout`; [`StreamError::Timeout`] naming a topic
    /// that does not exist (create the topics first).
    pub fn new(cfg: &KafkaConfig, topics: &[&str], timeout: Duration) -> Result<Self, StreamError> {
        let deadline = Instant::now() + timeout;
        let mut conf = cfg.consumer_config("follower");
        conf.set("group.id", format!("{}.follower", cfg.group_prefix));
        let consumer: BaseConsumer = conf.create()?;
        let mut tpl = TopicPartitionList::new();
        let mut ends = Vec::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == *topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if partitions.is_empty() {
                return Err(StreamError::Timeout(format!(
                    "topic {topic} does not exist (run `epitrace topics create`)"
                )));
            }
            for p in partitions {
                let (low, high) = watermarks(&consumer, topic, p, deadline)?;
                // An empty partition (nothing or nothing left) is read.
                ends.push(((*topic).to_owned(), p, if high > low { high } else { 0 }));
                tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            }
        }
        consumer.assign(&tpl)?;
        Ok(Self {
            consumer,
            frames: ReaderFrames::new(&cfg.registry),
            ends,
            caught_up: false,
        })
    }

    /// The next record, waiting at most `timeout`; `None` when none came.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] for a consumer error (the follower goes on
    /// after one: poll again).
    pub fn poll(&mut self, timeout: Duration) -> Option<Result<FollowedRecord, StreamError>> {
        let msg = match self.consumer.poll(timeout)? {
            Ok(m) => m,
            Err(e) => return Some(Err(e.into())),
        };
        let topic = msg.topic().to_owned();
        let payload = msg
            .payload()
            .map(|b| self.frames.normalize(&topic, b.to_vec()));
        Some(Ok(FollowedRecord {
            topic,
            record: ConsumedRecord {
                partition: msg.partition(),
                offset: msg.offset(),
                key: msg.key().map(<[u8]>::to_vec),
                payload,
                timestamp_ms: msg.timestamp().to_millis(),
                origin_ms: origin_of(&msg),
            },
        }))
    }

    /// Whether every followed partition has been read up to where it ended
    /// when the follower started (then stays `true`).
    ///
    /// # Errors
    /// [`StreamError::Kafka`] when the consumer's positions cannot be read.
    pub fn caught_up(&mut self) -> Result<bool, StreamError> {
        if self.caught_up {
            return Ok(true);
        }
        let position = self.consumer.position()?;
        self.caught_up = self.ends.iter().all(|(topic, p, end)| {
            *end == 0
                || position
                    .find_partition(topic, *p)
                    .and_then(|e| e.offset().to_raw())
                    .is_some_and(|pos| pos >= *end)
        });
        Ok(self.caught_up)
    }
}
