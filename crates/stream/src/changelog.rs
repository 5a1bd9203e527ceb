//! Changelog topics: every state store write of a processor, published to a
//! compacted topic co-partitioned with the processor's first input, so that
//! a partition's state can be rebuilt on any instance without replaying the
//! inputs.
//!
//! ## Layout
//!
//! One topic per processor, `<group_prefix>.<processor>-changelog`, with as
//! many partitions as the processor's first input; the state of input
//! partition *p* goes to changelog partition *p*. Records:
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `0x00` ‖ store name length (u8) ‖ store name ‖ key | the value | put |
//! | `0x00` ‖ store name length (u8) ‖ store name ‖ key | null (tombstone) | delete |
//! | `0x01` ‖ partition (i32 BE) ‖ topic | next offset (i64 BE) | input offset |
//! | `0x02` | empty | the end of a batch |
//!
//! A batch's records for one partition are its state writes, then its
//! input offsets, then the end marker. A restore applies a batch only once
//! it has read its marker, so a batch cut short by a crash while it was
//! being sent (possible at least once; a transaction never shows half a
//! batch) is not applied: the batch is processed again from the state
//! before it, and its outputs come out identical.
//!
//! A range delete (retention dropping whole time buckets) is written as one
//! tombstone per key it removes, so compaction can forget them. The input
//! offsets travel with the state they produced: a restored partition knows
//! where to resume its inputs from the changelog alone.
//!
//! ## Restore
//!
//! [`restore`] reads the partition from the local store's checkpoint (the
//! changelog offset it has applied, kept in the store's offsets next to the
//! input offsets) to the end, `read_committed`. It first waits until no
//! transaction is open on the partition (an instance that crashed
//! mid-transaction holds it open until the transaction times out), so the
//! end it restores to is final. When the checkpoint lies beyond the end
//! (the topic was deleted and created again), the local store is stale:
//! [`Restored::Stale`] tells the caller to wipe it and restore from
//! scratch.

use std::time::{Duration, Instant};

use epitrace_state::{KvStore, Op, StateError, WriteSet};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

use crate::admin::TopicSpec;
use crate::config::KafkaConfig;
use crate::error::StreamError;
use crate::link::{LinkContext, LinkHooks};

const STATE: u8 = 0x00;
const OFFSET: u8 = 0x01;
const BATCH_END: u8 = 0x02;

/// Records applied per local write while restoring.
const RESTORE_CHUNK: u64 = 10_000;

/// How long a restore may go without reading anything before it fails.
const RESTORE_STALL: Duration = Duration::from_secs(120);

/// The changelog topic of `processor` for consumer groups prefixed
/// `group_prefix`.
#[must_use]
pub fn topic(group_prefix: &str, processor: &str) -> String {
    format!("{group_prefix}.{processor}-changelog")
}

/// How a changelog topic is created: compacted (the latest value per key
/// is the state), `partitions` like the processor's first input, tombstones
/// kept `delete_retention_ms` (an instance whose local store is older than
/// that must restore from scratch: see the README).
#[must_use]
pub fn spec(name: &str, partitions: i32, replication: i32, delete_retention_ms: i64) -> TopicSpec {
    TopicSpec {
        name: name.to_owned(),
        partitions,
        replication,
        config: vec![
            ("cleanup.policy".into(), "compact".into()),
            (
                "delete.retention.ms".into(),
                delete_retention_ms.to_string(),
            ),
            ("min.insync.replicas".into(), "1".into()),
        ],
    }
}

/// One changelog record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The encoded key.
    pub key: Vec<u8>,
    /// The value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
}

fn state_key(store: &str, key: &[u8]) -> Result<Vec<u8>, StateError> {
    let len = u8::try_from(store.len()).map_err(|_| StateError::InvalidStoreName(store.into()))?;
    let mut k = Vec::with_capacity(2 + store.len() + key.len());
    k.push(STATE);
    k.push(len);
    k.extend_from_slice(store.as_bytes());
    k.extend_from_slice(key);
    Ok(k)
}

/// The changelog records of a batch's writes, in order, closed by the
/// batch's end marker. Range deletes are expanded into one tombstone per key
/// of `base` they cover (`base` is the store the write set is about to be
/// applied to).
///
/// # Errors
/// A [`StateError`] when `base` cannot be scanned or a store name is too
/// long.
pub fn encode(ws: &WriteSet, base: &dyn KvStore) -> Result<Vec<Change>, StateError> {
    let mut out = Vec::with_capacity(ws.len());
    for op in ws.ops() {
        match op {
            Op::Put { store, key, value } => out.push(Change {
                key: state_key(store, key)?,
                value: Some(value.clone()),
            }),
            Op::Delete { store, key } => out.push(Change {
                key: state_key(store, key)?,
                value: None,
            }),
            Op::DeleteRange { store, from, to } => {
                for (key, _) in base.scan(store, from, to)? {
                    out.push(Change {
                        key: state_key(store, &key)?,
                        value: None,
                    });
                }
            }
            Op::SetOffset {
                topic,
                partition,
                next_offset,
            } => {
                let mut k = Vec::with_capacity(5 + topic.len());
                k.push(OFFSET);
                k.extend_from_slice(&partition.to_be_bytes());
                k.extend_from_slice(topic.as_bytes());
                out.push(Change {
                    key: k,
                    value: Some(next_offset.to_be_bytes().to_vec()),
                });
            }
        }
    }
    out.push(Change {
        key: vec![BATCH_END],
        value: Some(Vec::new()),
    });
    Ok(out)
}

/// Whether a changelog record is a batch's end marker.
#[must_use]
pub fn is_batch_end(key: &[u8]) -> bool {
    key == [BATCH_END]
}

/// Adds the write a changelog record stands for to `ws` (nothing for a
/// batch's end marker).
///
/// # Errors
/// [`StateError::Corrupt`] for a record this version cannot have written.
pub fn decode_into(key: &[u8], value: Option<&[u8]>, ws: &mut WriteSet) -> Result<(), StateError> {
    let corrupt = |why: &str| StateError::Corrupt {
        store: "changelog".into(),
        reason: why.into(),
    };
    match key.split_first() {
        Some((&STATE, rest)) => {
            let (&len, rest) = rest.split_first().ok_or_else(|| corrupt("short key"))?;
            let len = usize::from(len);
            if rest.len() < len {
                return Err(corrupt("short store name"));
            }
            let (name, key) = rest.split_at(len);
            let store = std::str::from_utf8(name).map_err(|_| corrupt("store name not UTF-8"))?;
            match value {
                Some(v) => ws.put(store, key.to_vec(), v.to_vec()),
                None => ws.delete(store, key.to_vec()),
            };
            Ok(())
        }
        Some((&OFFSET, rest)) if rest.len() >= 4 => {
            let (p, topic) = rest.split_at(4);
            let partition = i32::from_be_bytes(p.try_into().map_err(|_| corrupt("partition"))?);
            let topic = std::str::from_utf8(topic).map_err(|_| corrupt("topic not UTF-8"))?;
            let next = value
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map(i64::from_be_bytes)
                .ok_or_else(|| corrupt("offset value"))?;
            ws.set_offset(topic, partition, next);
            Ok(())
        }
        Some((&BATCH_END, [])) => Ok(()),
        _ => Err(corrupt("unknown record kind")),
    }
}

/// Reassembles a changelog's batches: records are held until their batch's
/// end marker, then released together; what follows the last marker is an
/// incomplete batch, never released.
#[derive(Debug, Default)]
pub struct Batches {
    batch: WriteSet,
    records: u64,
}

impl Batches {
    /// Adds one record; returns the complete batch (its writes and how
    /// many records it had) when `key` is its end marker.
    ///
    /// # Errors
    /// As [`decode_into`].
    pub fn push(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<Option<(WriteSet, u64)>, StateError> {
        if is_batch_end(key) {
            let records = std::mem::take(&mut self.records);
            return Ok(Some((std::mem::take(&mut self.batch), records)));
        }
        decode_into(key, value, &mut self.batch)?;
        self.records += 1;
        Ok(None)
    }

    /// Records held of a batch whose end has not been read.
    #[must_use]
    pub const fn pending(&self) -> u64 {
        self.records
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// The store now holds the changelog's state up to `to`.
    Done {
        /// Records applied.
        records: u64,
        /// The checkpoint it started from.
        from: i64,
        /// The offset after the last complete batch applied (the new
        /// checkpoint): the changelog's end unless it ends with an
        /// incomplete batch.
        to: i64,
    },
    /// The store's checkpoint lies beyond the changelog's end: the
    /// changelog was recreated; wipe the store and restore from scratch.
    Stale {
        /// The local checkpoint.
        checkpoint: i64,
        /// The changelog's end.
        end: i64,
    },
}

/// Restores `store` from partition `partition` of changelog `topic`,
/// blocking (it runs while the partition is being assigned). `progress` is
/// called after every applied chunk with the records applied so far.
///
/// # Errors
/// [`StreamError::Kafka`] / [`StreamError::Timeout`] when the changelog
/// cannot be read, [`StreamError::State`] when the store cannot be written
/// or a record is corrupt.
pub fn restore(
    cfg: &KafkaConfig,
    hooks: &LinkHooks,
    topic: &str,
    partition: i32,
    store: &dyn KvStore,
    progress: &mut dyn FnMut(u64),
) -> Result<Restored, StreamError> {
    let checkpoint = store.offset(topic, partition)?.unwrap_or(0);
    let mut committed_conf = cfg.consumer_config("restore");
    committed_conf
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        // A restore reads one partition as fast as it can: large fetches,
        // a deep local queue.
        .set("fetch.max.bytes", "104857600")
        .set("max.partition.fetch.bytes", "67108864")
        .set("queued.max.messages.kbytes", "1048576")
        .set("queued.min.messages", "2000000")
        .set("fetch.wait.max.ms", "10")
        .set("statistics.interval.ms", "0");
    // Client errors are counted on the process's Kafka link, not logged
    // one by one (an outage must not flood the log).
    let consumer: BaseConsumer<LinkContext> =
        committed_conf.create_with_context(LinkContext::new(hooks.clone()))?;
    let mut uncommitted_conf = cfg.consumer_config("restore");
    uncommitted_conf.set("isolation.level", "read_uncommitted");
    let probe: BaseConsumer<LinkContext> =
        uncommitted_conf.create_with_context(LinkContext::new(hooks.clone()))?;

    let end = settled_end(cfg, &consumer, &probe, topic, partition)?;
    if checkpoint > end {
        return Ok(Restored::Stale { checkpoint, end });
    }
    if checkpoint == end {
        return Ok(Restored::Done {
            records: 0,
            from: checkpoint,
            to: end,
        });
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(checkpoint))?;
    consumer.assign(&tpl)?;
    // Reading and decoding on this thread, writing to RocksDB on another:
    // the two overlap.
    std::thread::scope(|scope| {
        let (to_writer, chunks) = std::sync::mpsc::sync_channel::<WriteSet>(2);
        let writer = scope.spawn(move || -> Result<Duration, StateError> {
            let mut busy = Duration::ZERO;
            for ws in chunks {
                let t = Instant::now();
                store.write(ws)?;
                busy += t.elapsed();
            }
            Ok(busy)
        });
        let started = Instant::now();
        let read = read_batches(
            &consumer,
            topic,
            partition,
            (checkpoint, end),
            &to_writer,
            progress,
        );
        drop(to_writer);
        let written = writer
            .join()
            .map_err(|_| StreamError::Admin("the restore's writer panicked".into()))?;
        let (records, applied_to, waited) = read?;
        let busy = written?;
        // Where a restore's time goes: reading and decoding (this thread),
        // writing (the writer), and this thread waiting for the writer.
        debug!(
            records,
            seconds = started.elapsed().as_secs_f64(),
            writing_s = busy.as_secs_f64(),
            waiting_for_writer_s = waited.as_secs_f64(),
            "restore timings"
        );
        Ok(Restored::Done {
            records,
            from: checkpoint,
            to: applied_to,
        })
    })
}

/// Reads the changelog partition from `checkpoint` to `end`, sending
/// complete batches in chunks to `writer`; returns the records applied,
/// the new checkpoint and how long it waited for the writer.
fn read_batches(
    consumer: &BaseConsumer<LinkContext>,
    topic: &str,
    partition: i32,
    (checkpoint, end): (i64, i64),
    writer: &std::sync::mpsc::SyncSender<WriteSet>,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, i64, Duration), StreamError> {
    let mut waited = Duration::ZERO;
    let mut send = |ws: WriteSet| {
        let t = Instant::now();
        let sent = writer
            .send(ws)
            .map_err(|_| StreamError::Admin("the restore's writer stopped".into()));
        waited += t.elapsed();
        sent
    };
    // Complete batches not yet written.
    let mut batches = Batches::default();
    let mut complete = WriteSet::new();
    let mut complete_records = 0u64;
    let mut records = 0u64;
    let mut applied_to = checkpoint;
    let mut last_read = Instant::now();
    let mut position = checkpoint;
    while position < end {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                last_read = Instant::now();
                position = msg.offset() + 1;
                if msg.offset() >= end {
                    continue;
                }
                if let Some((ws, n)) = batches.push(msg.key().unwrap_or_default(), msg.payload())? {
                    complete.extend(ws);
                    complete_records += n;
                    records += n;
                    applied_to = position;
                    if complete_records >= RESTORE_CHUNK {
                        complete.set_offset(topic, partition, applied_to);
                        send(std::mem::take(&mut complete))?;
                        complete_records = 0;
                        progress(records);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => {
                // Transient fetch errors are retried by librdkafka.
                warn!(error = %e, "reading the changelog");
            }
            None => {
                // Transaction markers (and compacted-away records) take
                // offsets too: the position may reach the end without a
                // record at `end - 1`.
                if let Some(pos) = consumer
                    .position()?
                    .find_partition(topic, partition)
                    .and_then(|e| e.offset().to_raw())
                {
                    position = position.max(pos);
                }
                if last_read.elapsed() > RESTORE_STALL {
                    return Err(StreamError::Timeout(format!(
                        "restoring {topic}/{partition}: nothing read for {} s at offset {position} of {end}",
                        RESTORE_STALL.as_secs()
                    )));
                }
            }
        }
    }
    if batches.pending() > 0 {
        // Sent by an instance that died before the batch's end: not
        // applied; the batch is processed again.
        warn!(
            topic,
            partition,
            records = batches.pending(),
            "the changelog ends with an incomplete batch; it is not applied (the batch is processed again)"
        );
    }
    complete.set_offset(topic, partition, applied_to);
    send(complete)?;
    progress(records);
    Ok((records, applied_to, waited))
}

/// The end of the changelog partition once no transaction is open on it
/// (its last stable offset equals its high watermark), waiting at most
/// twice the transaction timeout; after that the last stable offset.
fn settled_end(
    cfg: &KafkaConfig,
    committed: &BaseConsumer<LinkContext>,
    uncommitted: &BaseConsumer<LinkContext>,
    topic: &str,
    partition: i32,
) -> Result<i64, StreamError> {
    let wait = Duration::from_millis(cfg.transaction_timeout_ms.saturating_mul(2))
        .max(Duration::from_secs(10));
    let deadline = Instant::now() + wait;
    let timeout = Duration::from_secs(10);
    let mut logged = false;
    loop {
        let (_, stable) = committed.fetch_watermarks(topic, partition, timeout)?;
        let (_, high) = uncommitted.fetch_watermarks(topic, partition, timeout)?;
        if stable >= high {
            return Ok(high);
        }
        if Instant::now() > deadline {
            warn!(
                topic,
                partition,
                stable,
                high,
                "a transaction is still open on the changelog; restoring up to its last stable offset"
            );
            return Ok(stable);
        }
        if !logged {
            info!(
                topic,
                partition,
                stable,
                high,
                "waiting for an open transaction on the changelog to end (an instance crashed mid-batch?)"
            );
            logged = true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Makes sure `processor`'s changelog exists with as many partitions as
/// its inputs, which must all have the same count (co-partitioning);
/// returns the changelog's name. Waits up to a minute for inputs that do
/// not exist yet (created a moment ago, or by `epitrace topics create`
/// running now).
///
/// # Errors
/// [`StreamError::Admin`] for inputs that never appear, inputs with
/// different partition counts, or an existing changelog with another
/// count; [`StreamError::Kafka`] when the brokers cannot be reached.
pub async fn ensure(
    cfg: &KafkaConfig,
    processor: &str,
    inputs: &[String],
    replication: i32,
    delete_retention_ms: i64,
    hooks: crate::link::LinkHooks,
) -> Result<String, StreamError> {
    let name = topic(&cfg.group_prefix, processor);
    let mut wanted: Vec<String> = inputs.to_vec();
    wanted.push(name.clone());
    // Counted only while the brokers answer: an outage is ridden through.
    let mut missing_since: Option<Instant> = None;
    let mut attempt = 0u32;
    let counts = loop {
        let client = cfg.clone();
        let topics = wanted.clone();
        let h = hooks.clone();
        let counts = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            crate::admin::partition_counts(&client, &refs, Duration::from_secs(3), h)
        })
        .await
        .map_err(|e| StreamError::Admin(e.to_string()))?;
        let counts = match counts {
            Ok(c) => c,
            Err(e) if e.is_transient() => {
                // A metadata request's failure is not served through the
                // client's error callback: counted here, so that the link
                // names the outage.
                if let StreamError::Kafka(k) = &e {
                    hooks.error(k);
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1u64 << attempt.min(4))).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        hooks.answered();
        let missing: Vec<&str> = counts[..inputs.len()]
            .iter()
            .filter(|(_, n)| n.is_none())
            .map(|(t, _)| t.as_str())
            .collect();
        if missing.is_empty() {
            break counts;
        }
        if missing_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(60) {
            return Err(StreamError::Admin(format!(
                "input topics {missing:?} of {processor} do not exist: create them with `epitrace topics create`"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let inputs_counts: Vec<(String, i32)> = counts[..inputs.len()]
        .iter()
        .map(|(t, n)| (t.clone(), n.unwrap_or(0)))
        .collect();
    let partitions = inputs_counts.first().map_or(1, |(_, n)| *n);
    if inputs_counts.iter().any(|(_, n)| *n != partitions) {
        return Err(StreamError::Admin(format!(
            "the inputs of {processor} must be co-partitioned (equal partition counts), found {inputs_counts:?}"
        )));
    }
    match counts.last().and_then(|(_, n)| *n) {
        Some(n) if n == partitions => {}
        Some(n) => {
            return Err(StreamError::Admin(format!(
                "changelog {name} has {n} partitions but the inputs of {processor} have {partitions}: delete it (its state is rebuilt from the inputs) or match the counts"
            )));
        }
        None => {
            crate::admin::create_topics(
                cfg,
                &[spec(&name, partitions, replication, delete_retention_ms)],
            )
            .await?;
            info!(changelog = %name, partitions, "changelog topic created");
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use epitrace_state::MemStore;

    use super::*;

    #[test]
    fn encoded_writes_restore_the_same_state() {
        let base = MemStore::new(&["a", "b"]).unwrap();
        let mut seed = WriteSet::new();
        seed.put("a", b"k1".to_vec(), b"old".to_vec())
            .put("a", b"k2".to_vec(), b"x".to_vec())
            .put("a", b"k9".to_vec(), b"y".to_vec());
        base.write(seed.clone()).unwrap();

        let mut ws = WriteSet::new();
        ws.delete_range("a", b"k1".to_vec(), b"k5".to_vec())
            .put("a", b"k3".to_vec(), Vec::new())
            .put("b", b"z".to_vec(), b"1".to_vec())
            .delete("a", b"k9".to_vec())
            .set_offset("in", 3, 42);
        let changes = encode(&ws, &base).unwrap();
        // k1, k2 tombstoned one by one; the empty value stays a value; the
        // batch ends with its marker.
        assert_eq!(changes.iter().filter(|c| c.value.is_none()).count(), 3);
        assert!(is_batch_end(&changes.last().unwrap().key));

        // Replaying the seed's and the batch's changes on an empty store
        // gives what applying the write sets gives.
        let restored = MemStore::new(&["a", "b"]).unwrap();
        let mut replay = WriteSet::new();
        for c in encode(&seed, &restored).unwrap().iter().chain(&changes) {
            decode_into(&c.key, c.value.as_deref(), &mut replay).unwrap();
        }
        restored.write(replay).unwrap();
        base.write(ws).unwrap();
        for store in ["a", "b"] {
            assert_eq!(
                restored.scan(store, b"", b"\xff").unwrap(),
                base.scan(store, b"", b"\xff").unwrap()
            );
        }
        assert_eq!(restored.offset("in", 3).unwrap(), Some(42));
    }

    #[test]
    fn a_batch_is_released_only_with_its_end_marker() {
        let store = MemStore::new(&["a"]).unwrap();
        let mut one = WriteSet::new();
        one.put("a", b"k".to_vec(), b"1".to_vec())
            .set_offset("in", 0, 5);
        let mut two = WriteSet::new();
        two.put("a", b"k".to_vec(), b"2".to_vec())
            .set_offset("in", 0, 9);
        let first = encode(&one, &store).unwrap();
        let mut cut = encode(&two, &store).unwrap();
        cut.pop(); // the crash: the marker never sent

        let mut batches = Batches::default();
        let mut released = Vec::new();
        for c in first.iter().chain(&cut) {
            if let Some(b) = batches.push(&c.key, c.value.as_deref()).unwrap() {
                released.push(b);
            }
        }
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].1, 2);
        assert_eq!(batches.pending(), 2);
        store.write(released.remove(0).0).unwrap();
        assert_eq!(store.get("a", b"k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.offset("in", 0).unwrap(), Some(5));
    }

    #[test]
    fn foreign_records_are_refused_not_applied() {
        let mut ws = WriteSet::new();
        assert!(decode_into(b"\x07junk", Some(b"v"), &mut ws).is_err());
        assert!(decode_into(b"\x00\x09ab", Some(b"v"), &mut ws).is_err());
        assert!(decode_into(b"\x01\x00\x00\x00\x01t", Some(b"short"), &mut ws).is_err());
        assert!(ws.is_empty());
    }
}
