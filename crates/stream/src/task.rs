//! The loop that drives one processor (see the crate docs for the delivery
//! rule).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use epitrace_model::codec::encode_single_object;
use epitrace_model::{DeadLetter, EventTime};
use epitrace_ops::{TaskHealth, TaskMetrics, Telemetry};
use epitrace_state::{KvStore, Txn};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::KafkaConfig;
use crate::error::StreamError;
use crate::publish::{OutputRecord, Publisher};

/// The dead-letter topic (DESIGN §3).
pub const DEADLETTER_TOPIC: &str = epitrace_model::topics::DEADLETTER;

/// One consumed record, as a processor sees it.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub payload: Option<&'a [u8]>,
    /// The record's timestamp (ms); processors stamp their outputs with it
    /// so that replays are identical.
    pub timestamp_ms: Option<i64>,
    /// Wall-clock time the batch was taken (ms), for rejecting timestamps in
    /// the future only; never for event-time logic.
    pub received_at_ms: i64,
}

/// Why a record was not processed.
#[derive(Debug)]
pub enum ProcessError {
    /// The record itself is bad (undecodable, invalid): it goes to the dead
    /// letter topic and processing goes on.
    Rejected {
        /// Stable reason code (a bounded set: a metric label).
        reason: &'static str,
        /// Human-readable detail, free of personal data.
        detail: String,
    },
    /// Something other than the record is wrong (state, a bug): the task
    /// stops without writing the batch, so a restart replays it.
    Fatal(String),
}

/// A stream processor: pure logic over a transaction, wired by [`run_task`].
pub trait Processor: Send {
    /// Short name: consumer group suffix and log field.
    fn name(&self) -> &'static str;
    /// Topics consumed (co-partitioned when more than one).
    fn inputs(&self) -> Vec<String>;
    /// Processes one record: reads and stages state in `txn`, appends
    /// outputs to `out`.
    ///
    /// # Errors
    /// [`ProcessError::Rejected`] for a bad record, [`ProcessError::Fatal`]
    /// otherwise.
    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError>;
    /// Runs after the last record of each batch (retention, timers).
    ///
    /// # Errors
    /// [`ProcessError::Fatal`].
    fn end_batch(
        &mut self,
        _txn: &mut Txn<'_>,
        _out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    /// The event time (ms) of the last record processed, for the
    /// event-time lag metric; `None` when unknown (the default).
    fn last_event_time_ms(&self) -> Option<i64> {
        None
    }

    /// The domain outputs of the batch just processed, by kind (e.g.
    /// exposures `new`/`updated`/`retracted`), drained once per batch for
    /// the metrics. The default has none.
    fn drain_emitted(&mut self) -> Vec<(Emitted, &'static str, u64)> {
        Vec::new()
    }
}

/// Domain outputs counted by kind in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitted {
    /// `tracing.exposures` records.
    Exposure,
    /// `tracing.clusters` records.
    ClusterAlert,
}

/// Counters of one task, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct TaskStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Input records committed (processed or dead-lettered).
    pub records_in: AtomicU64,
    /// Output records produced (dead letters excluded).
    pub records_out: AtomicU64,
    /// Records sent to the dead-letter topic.
    pub dead_letters: AtomicU64,
}

/// Consumer context that assigns partitions at the offsets kept in the
/// state store (the source of truth), not Kafka's committed offsets.
struct StoreOffsets {
    store: Arc<dyn KvStore>,
    failure: Mutex<Option<String>>,
    metrics: TaskMetrics,
    health: TaskHealth,
}

impl StoreOffsets {
    fn fail(&self, why: String) {
        error!(error = %why, "rebalance failed");
        self.metrics.rebalance("error", 0);
        self.health.set_ready(false);
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
    }

    fn take_failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }
}

impl ClientContext for StoreOffsets {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a lag
                // of -1 means not known yet.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.metrics.consumer_lag(topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for StoreOffsets {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let mut assignment = TopicPartitionList::new();
            for e in tpl.elements() {
                let offset = match self.store.offset(e.topic(), e.partition()) {
                    Ok(Some(next)) => Offset::Offset(next),
                    Ok(None) => Offset::Beginning,
                    Err(e) => return self.fail(format!("reading stored offsets: {e}")),
                };
                if let Err(err) = assignment.add_partition_offset(e.topic(), e.partition(), offset)
                {
                    return self.fail(err.to_string());
                }
            }
            let partitions: Vec<String> = assignment
                .elements()
                .iter()
                .map(|e| format!("{}/{}", e.topic(), e.partition()))
                .collect();
            info!(
                ?partitions,
                "partitions assigned, offsets restored from state"
            );
            if let Err(e) = consumer.assign(&assignment) {
                return self.fail(format!("assign: {e}"));
            }
            self.metrics.rebalance("assign", assignment.count());
            self.health.set_ready(true);
        } else {
            if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                warn!(?err, "rebalance error; dropping the assignment");
            }
            info!("partitions revoked");
            self.health.set_ready(false);
            self.metrics.rebalance("revoke", 0);
            if let Err(e) = consumer.unassign() {
                self.fail(format!("unassign: {e}"));
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The dead letter for a rejected record.
fn dead_letter(
    msg: &OwnedMessage,
    reason: &'static str,
    detail: &str,
    at_ms: i64,
) -> Result<OutputRecord, StreamError> {
    let at = EventTime::from_millis("dead_lettered_at", at_ms).unwrap_or(EventTime::MIN);
    let record = DeadLetter {
        topic: epitrace_model::Text::new("topic", msg.topic()).map_err(|e| {
            StreamError::Processor {
                processor: "deadletter",
                reason: e.to_string(),
            }
        })?,
        partition: msg.partition(),
        offset: msg.offset(),
        reason_code: epitrace_model::Text::new("reason_code", reason).map_err(|e| {
            StreamError::Processor {
                processor: "deadletter",
                reason: e.to_string(),
            }
        })?,
        detail: epitrace_model::Text::new("detail", truncate(detail, 1000))
            .unwrap_or_else(|_| placeholder_detail()),
        payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        dead_lettered_at: at,
    };
    let payload = encode_single_object(&record).map_err(|e| StreamError::Processor {
        processor: "deadletter",
        reason: e.to_string(),
    })?;
    Ok(OutputRecord {
        topic: DEADLETTER_TOPIC.to_owned(),
        key: msg.key().map(<[u8]>::to_vec).unwrap_or_default(),
        payload,
        timestamp_ms: msg.timestamp().to_millis(),
    })
}

fn placeholder_detail() -> epitrace_model::Text {
    // "-" is always valid text.
    epitrace_model::Text::new("detail", "-").unwrap_or_else(|_| unreachable_text())
}

#[allow(clippy::panic)]
#[cold]
fn unreachable_text() -> epitrace_model::Text {
    panic!("'-' rejected as text")
}

fn truncate(s: &str, max: usize) -> String {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).collect();
    if cleaned.len() <= max {
        return if cleaned.is_empty() {
            "-".into()
        } else {
            cleaned
        };
    }
    let mut end = max;
    while !cleaned.is_char_boundary(end) {
        end -= 1;
    }
    cleaned[..end].to_owned()
}

/// Runs `processor` until `shutdown` resolves or an error occurs; on
/// shutdown the batch in hand is finished (outputs acknowledged, state
/// written) before returning `Ok`.
///
/// # Errors
/// Any [`StreamError`]: the batch in hand is then *not* written, so a
/// restart replays it.
pub async fn run_task<P: Processor>(
    processor: P,
    store: Arc<dyn KvStore>,
    cfg: &KafkaConfig,
    stats: Arc<TaskStats>,
    telemetry: &Telemetry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StreamError> {
    let name = processor.name();
    let metrics = telemetry.metrics.task(name);
    let health = telemetry.health.task(name);
    let span = info_span!("processor", processor = name);
    let result = drive(
        processor,
        store,
        cfg,
        stats,
        metrics,
        health.clone(),
        shutdown,
    )
    .instrument(span)
    .await;
    match &result {
        Ok(()) => health.set_stopped(),
        Err(_) => health.set_failed(),
    }
    result
}

/// How often the state store gauges are refreshed.
const STATE_GAUGES_EVERY: Duration = Duration::from_secs(15);

async fn drive<P: Processor>(
    mut processor: P,
    store: Arc<dyn KvStore>,
    cfg: &KafkaConfig,
    stats: Arc<TaskStats>,
    metrics: TaskMetrics,
    health: TaskHealth,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StreamError> {
    let name = processor.name();
    {
        let context = StoreOffsets {
            store: Arc::clone(&store),
            failure: Mutex::new(None),
            metrics: metrics.clone(),
            health,
        };
        let consumer: StreamConsumer<StoreOffsets> =
            cfg.consumer_config(name).create_with_context(context)?;
        let inputs = processor.inputs();
        let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let publisher = Publisher::new(cfg)?;
        let linger = Duration::from_millis(cfg.batch_linger_ms);
        info!(inputs = ?topics, "started");
        tokio::pin!(shutdown);
        let mut gauges = tokio::time::interval(STATE_GAUGES_EVERY);
        loop {
            if let Some(why) = consumer.context().take_failure() {
                return Err(StreamError::Rebalance(why));
            }
            let first = tokio::select! {
                () = &mut shutdown => break,
                _ = gauges.tick() => {
                    state_gauges(store.as_ref(), &metrics);
                    continue;
                }
                m = consumer.recv() => m,
            };
            let mut batch: Vec<OwnedMessage> = Vec::new();
            match first {
                Ok(m) => batch.push(m.detach()),
                Err(e) => {
                    warn!(error = %e, "consume error");
                    continue;
                }
            }
            let deadline = tokio::time::Instant::now() + linger;
            while batch.len() < cfg.batch_max_records {
                match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(Ok(m)) => batch.push(m.detach()),
                    Ok(Err(e)) => warn!(error = %e, "consume error"),
                    Err(_) => break,
                }
            }
            if let Some(why) = consumer.context().take_failure() {
                return Err(StreamError::Rebalance(why));
            }
            let committed =
                process_batch(&mut processor, &store, &publisher, &batch, &stats, &metrics).await?;
            // Kafka's committed offsets are informational (lag); the store
            // holds the truth, so a failed commit is only logged.
            if let Err(e) = consumer.commit(&committed, CommitMode::Async) {
                debug!(error = %e, "offset commit for monitoring failed");
            }
        }
        publisher.flush()?;
        store.flush()?;
        state_gauges(store.as_ref(), &metrics);
        info!("stopped");
        Ok(())
    }
}

fn state_gauges(store: &dyn KvStore, metrics: &TaskMetrics) {
    match store.stats() {
        Ok(all) => {
            for s in all {
                metrics.state(&s.store, s.approx_bytes, s.approx_keys);
            }
        }
        Err(e) => debug!(error = %e, "state statistics unavailable"),
    }
}

/// Processes one batch and writes its state; returns the offsets to commit
/// to Kafka for monitoring.
///
/// Records are processed partition by partition (each partition's records
/// in their order; partitions are independent by construction, their keys
/// disjoint), each partition in a span of its own.
async fn process_batch<P: Processor>(
    processor: &mut P,
    store: &Arc<dyn KvStore>,
    publisher: &Publisher,
    batch: &[OwnedMessage],
    stats: &TaskStats,
    metrics: &TaskMetrics,
) -> Result<TopicPartitionList, StreamError> {
    let started = std::time::Instant::now();
    let received_at_ms = now_ms();
    let mut txn = Txn::new(store.as_ref());
    let mut out: Vec<OutputRecord> = Vec::new();
    let mut dead: Vec<(&'static str, u64)> = Vec::new();
    let mut inputs: Vec<(&str, u64)> = Vec::new();
    let mut next_offsets = TopicPartitionList::new();
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| batch[i].partition());
    for run in order.chunk_by(|&a, &b| batch[a].partition() == batch[b].partition()) {
        let Some(&first) = run.first() else { continue };
        let _partition = info_span!("partition", partition = batch[first].partition()).entered();
        for &i in run {
            let msg = &batch[i];
            let record = InputRecord {
                topic: msg.topic(),
                partition: msg.partition(),
                offset: msg.offset(),
                key: msg.key(),
                payload: msg.payload(),
                timestamp_ms: msg.timestamp().to_millis(),
                received_at_ms,
            };
            match processor.process(&record, &mut txn, &mut out) {
                Ok(()) => {}
                Err(ProcessError::Rejected { reason, detail }) => {
                    out.push(dead_letter(msg, reason, &detail, received_at_ms)?);
                    bump(&mut dead, reason);
                }
                Err(ProcessError::Fatal(reason)) => {
                    return Err(StreamError::Processor {
                        processor: processor.name(),
                        reason,
                    });
                }
            }
            bump(&mut inputs, msg.topic());
            txn.set_offset(msg.topic(), msg.partition(), msg.offset() + 1);
            next_offsets.add_partition_offset(
                msg.topic(),
                msg.partition(),
                Offset::Offset(msg.offset() + 1),
            )?;
        }
    }
    if let Err(ProcessError::Fatal(reason) | ProcessError::Rejected { detail: reason, .. }) =
        processor.end_batch(&mut txn, &mut out)
    {
        return Err(StreamError::Processor {
            processor: processor.name(),
            reason,
        });
    }
    // 1. outputs acknowledged, 2. state + offsets in one write.
    publisher.send_all(&out).await?;
    store.write(txn.into_write_set())?;

    // Counted once per batch, from the same event as the log lines.
    let mut outputs: Vec<(&str, u64)> = Vec::new();
    for o in &out {
        if o.topic != DEADLETTER_TOPIC {
            bump(&mut outputs, o.topic.as_str());
        }
    }
    let dead_total: u64 = dead.iter().map(|(_, n)| n).sum();
    let produced: u64 = outputs.iter().map(|(_, n)| n).sum();
    metrics.batch(&inputs, &outputs, &dead, started.elapsed().as_secs_f64());
    if let Some(t) = processor.last_event_time_ms() {
        metrics.event_time(received_at_ms, t);
    }
    for (what, kind, n) in processor.drain_emitted() {
        match what {
            Emitted::Exposure => metrics.exposures(kind, n),
            Emitted::ClusterAlert => metrics.cluster_alerts(kind, n),
        }
    }
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.records_in.fetch_add(
        u64::try_from(batch.len()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    stats.records_out.fetch_add(produced, Ordering::Relaxed);
    stats.dead_letters.fetch_add(dead_total, Ordering::Relaxed);
    // One line per batch, not per record: a flood of bad input must not
    // flood the logs. No personal data: counts and reason codes only.
    if dead_total > 0 {
        let reasons: Vec<&str> = dead.iter().map(|(r, _)| *r).collect();
        warn!(dead_letters = dead_total, ?reasons, "records dead-lettered");
    }
    debug!(
        records = batch.len(),
        outputs = produced,
        dead_letters = dead_total,
        "batch committed"
    );
    Ok(next_offsets)
}

/// Adds one to `key`'s count (a handful of keys per batch: a vector beats a
/// map).
fn bump<'a>(counts: &mut Vec<(&'a str, u64)>, key: &'a str) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key, 1)),
    }
}
