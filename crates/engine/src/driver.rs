//! [`TopologyDriver`]: a whole topology run in memory, through the same
//! [`run_batch`] the Kafka task runs — in the manner of Kafka Streams'
//! `TopologyTestDriver`.
//!
//! Topics are in-memory partitioned logs (records keyed by the Java
//! client's murmur2 partitioner, stamped with the driver's wall clock as
//! `LogAppendTime` topics are by the broker). Each processor has its own
//! store; like the production task it resumes every input partition from
//! the offset kept *in its store*, processes a batch, appends the outputs
//! (dead letters included) to their topics, and writes state and offsets
//! in one write. [`TopologyDriver::run`] repeats that until no processor
//! has anything left to read.

use std::collections::BTreeMap;

use epitrace_state::KvStore;

use crate::batch::{BatchOutcome, run_batch};
use crate::error::EngineError;
use crate::partition::partition_for;
use crate::processor::Processor;
use crate::record::{Consumed, OutputRecord};

/// A record in one of the driver's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub payload: Option<Vec<u8>>,
    /// Timestamp (the driver's wall clock when it was appended).
    pub timestamp_ms: Option<i64>,
}

impl Consumed for StoredRecord {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partition(&self) -> i32 {
        self.partition
    }
    fn offset(&self) -> i64 {
        self.offset
    }
    fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
    fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }
    fn timestamp_ms(&self) -> Option<i64> {
        self.timestamp_ms
    }
}

struct Node {
    processor: Box<dyn Processor>,
    store: Box<dyn KvStore>,
    inputs: Vec<String>,
}

/// Counts of what a [`TopologyDriver::run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Batches processed (every processor).
    pub batches: u64,
    /// Input records processed.
    pub records: u64,
    /// Dead letters produced.
    pub dead_letters: u64,
}

/// Every processor of a topology, run in memory (see the module docs).
pub struct TopologyDriver {
    topics: BTreeMap<String, Vec<Vec<StoredRecord>>>,
    nodes: Vec<Node>,
    wall_clock_ms: i64,
    batch_size: usize,
    default_partitions: i32,
}

impl std::fmt::Debug for TopologyDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyDriver")
            .field("topics", &self.topics.keys().collect::<Vec<_>>())
            .field(
                "processors",
                &self
                    .nodes
                    .iter()
                    .map(|n| n.processor.name())
                    .collect::<Vec<_>>(),
            )
            .field("wall_clock_ms", &self.wall_clock_ms)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl TopologyDriver {
    /// An empty topology whose wall clock reads `wall_clock_ms`; topics not
    /// declared with [`TopologyDriver::topic`] get `default_partitions`.
    #[must_use]
    pub fn new(wall_clock_ms: i64, default_partitions: i32) -> Self {
        Self {
            topics: BTreeMap::new(),
            nodes: Vec::new(),
            wall_clock_ms,
            batch_size: 500,
            default_partitions: default_partitions.max(1),
        }
    }

    /// Declares a topic with `partitions` partitions (before anything is
    /// written to it).
    #[must_use]
    pub fn topic(mut self, name: &str, partitions: i32) -> Self {
        self.topics
            .entry(name.to_owned())
            .or_insert_with(|| vec![Vec::new(); usize::try_from(partitions.max(1)).unwrap_or(1)]);
        self
    }

    /// Adds a processor with its (empty or pre-filled) store.
    #[must_use]
    pub fn processor(mut self, processor: Box<dyn Processor>, store: Box<dyn KvStore>) -> Self {
        let inputs = processor.inputs();
        self.nodes.push(Node {
            processor,
            store,
            inputs,
        });
        self
    }

    /// The most records one batch of one processor holds (default 500).
    pub fn set_batch_size(&mut self, records: usize) {
        self.batch_size = records.max(1);
    }

    /// The wall clock processors see (ms since the epoch).
    #[must_use]
    pub const fn wall_clock_ms(&self) -> i64 {
        self.wall_clock_ms
    }

    /// Moves the wall clock forward by `ms`.
    pub fn advance_wall_clock(&mut self, ms: i64) {
        self.wall_clock_ms = self.wall_clock_ms.saturating_add(ms);
    }

    fn partitions_of(&mut self, topic: &str) -> &mut Vec<Vec<StoredRecord>> {
        let n = usize::try_from(self.default_partitions).unwrap_or(1);
        self.topics
            .entry(topic.to_owned())
            .or_insert_with(|| vec![Vec::new(); n])
    }

    /// Appends a record to `topic`, in the partition its key hashes to
    /// (partition 0 without a key); returns (partition, offset).
    pub fn pipe(&mut self, topic: &str, key: Option<&[u8]>, payload: Option<&[u8]>) -> (i32, i64) {
        let at = self.wall_clock_ms;
        let partitions = self.partitions_of(topic);
        let count = i32::try_from(partitions.len()).unwrap_or(1);
        let partition = key.map_or(0, |k| partition_for(k, count));
        let log = &mut partitions[usize::try_from(partition).unwrap_or(0)];
        let offset = i64::try_from(log.len()).unwrap_or(i64::MAX);
        log.push(StoredRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            timestamp_ms: Some(at),
        });
        (partition, offset)
    }

    /// Appends an output record (as a producer would send it).
    pub fn pipe_record(&mut self, record: &OutputRecord) -> (i32, i64) {
        self.pipe(&record.topic, Some(&record.key), Some(&record.payload))
    }

    /// Every record of `topic`, partition by partition, in offset order.
    #[must_use]
    pub fn read(&self, topic: &str) -> Vec<&StoredRecord> {
        self.topics
            .get(topic)
            .map(|ps| ps.iter().flatten().collect())
            .unwrap_or_default()
    }

    /// The store of processor `name`.
    ///
    /// # Errors
    /// [`EngineError::Topology`] when no such processor was added.
    pub fn store(&self, name: &str) -> Result<&dyn KvStore, EngineError> {
        self.nodes
            .iter()
            .find(|n| n.processor.name() == name)
            .map(|n| n.store.as_ref())
            .ok_or_else(|| EngineError::Topology(format!("no processor named {name}")))
    }

    /// The next batch of processor `i`: unread records of its inputs, from
    /// the offsets in its store, up to the batch size.
    fn next_batch(&self, i: usize) -> Result<Vec<StoredRecord>, EngineError> {
        let node = &self.nodes[i];
        let mut batch = Vec::new();
        for topic in &node.inputs {
            let Some(partitions) = self.topics.get(topic) else {
                continue;
            };
            for (p, log) in partitions.iter().enumerate() {
                let partition = i32::try_from(p).unwrap_or(i32::MAX);
                let from = node.store.offset(topic, partition)?.unwrap_or(0);
                let from = usize::try_from(from).unwrap_or(usize::MAX);
                let room = self.batch_size - batch.len();
                batch.extend(log.iter().skip(from).take(room).cloned());
                if batch.len() >= self.batch_size {
                    return Ok(batch);
                }
            }
        }
        Ok(batch)
    }

    /// Processes one batch of processor `i`, if it has anything to read.
    fn step(&mut self, i: usize) -> Result<Option<BatchOutcome>, EngineError> {
        let batch = self.next_batch(i)?;
        if batch.is_empty() {
            return Ok(None);
        }
        let now = self.wall_clock_ms;
        let node = &mut self.nodes[i];
        let mut outcome = run_batch(&mut node.processor, node.store.as_ref(), &batch, now)?;
        // Outputs first (the broker acknowledged them), then state and
        // offsets together — the production order.
        let outputs = std::mem::take(&mut outcome.outputs);
        let state = std::mem::take(&mut outcome.state);
        for o in &outputs {
            self.pipe_record(o);
        }
        self.nodes[i].store.write(state)?;
        outcome.outputs = outputs;
        Ok(Some(outcome))
    }

    /// Runs every processor, in the order added, batch after batch, until
    /// none has anything left to read.
    ///
    /// # Errors
    /// The first [`EngineError`]: its batch is not written (as in
    /// production, where the task would stop and replay it).
    pub fn run(&mut self) -> Result<RunStats, EngineError> {
        let mut stats = RunStats::default();
        loop {
            let mut progressed = false;
            for i in 0..self.nodes.len() {
                while let Some(outcome) = self.step(i)? {
                    progressed = true;
                    stats.batches += 1;
                    stats.records += outcome.inputs.iter().map(|(_, n)| n).sum::<u64>();
                    stats.dead_letters += outcome.dead_letter_count();
                }
            }
            if !progressed {
                return Ok(stats);
            }
        }
    }

    /// Runs one batch of processor `name` only (to interleave processors in
    /// a chosen order); returns what it did, `None` when it had nothing to
    /// read.
    ///
    /// # Errors
    /// [`EngineError::Topology`] for an unknown processor, or the batch's
    /// error.
    pub fn run_once(&mut self, name: &str) -> Result<Option<BatchOutcome>, EngineError> {
        let i = self
            .nodes
            .iter()
            .position(|n| n.processor.name() == name)
            .ok_or_else(|| EngineError::Topology(format!("no processor named {name}")))?;
        self.step(i)
    }
}
