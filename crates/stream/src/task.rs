//! The loop that drives one processor (see the crate docs for the delivery
//! rule).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use epitrace_engine::run_batch;
use epitrace_ops::{TaskHealth, TaskMetrics, Telemetry};
use epitrace_state::KvStore;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::config::KafkaConfig;
use crate::error::StreamError;
use crate::link::{LinkHooks, forward_error, forward_log};
use crate::publish::Publisher;

pub use epitrace_engine::{
    DEADLETTER_TOPIC, Emitted, InputRecord, OutputRecord, ProcessError, Processor,
};

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
    hooks: LinkHooks,
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
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(&self.hooks, level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        forward_error(&self.hooks, &error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        self.hooks.on_stats(&statistics);
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
            // The group coordinator answered.
            self.hooks.answered();
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
        (metrics, health.clone(), Arc::clone(&telemetry.kafka)),
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
    (metrics, health, telemetry_link): (TaskMetrics, TaskHealth, Arc<epitrace_ops::KafkaLink>),
    shutdown: impl Future<Output = ()>,
) -> Result<(), StreamError> {
    let name = processor.name();
    let hooks = LinkHooks::new(Arc::clone(&telemetry_link));
    let context = StoreOffsets {
        store: Arc::clone(&store),
        failure: Mutex::new(None),
        metrics: metrics.clone(),
        health,
        hooks: hooks.clone(),
    };
    let consumer = BoundedClose::new(
        cfg.consumer_config(name)
            .create_with_context::<_, StreamConsumer<StoreOffsets>>(context)?,
    );
    let inputs = processor.inputs();
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let publisher = Publisher::with_hooks(cfg, hooks.clone())?;
    let linger = Duration::from_millis(cfg.batch_linger_ms);
    info!(inputs = ?topics, brokers = %cfg.brokers, "started");
    tokio::pin!(shutdown);
    let mut gauges = tokio::time::interval(STATE_GAUGES_EVERY);
    let mut abandoned = false;
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
        let mut batch: Vec<Message> = Vec::new();
        match first {
            Ok(m) => batch.push(Message(m.detach())),
            Err(e) => {
                // Counted on the link and summarised by its watcher: an
                // outage must not log one line per client per retry.
                hooks.error(&e);
                continue;
            }
        }
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < cfg.batch_max_records {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => batch.push(Message(m.detach())),
                Ok(Err(e)) => hooks.error(&e),
                Err(_) => break,
            }
        }
        hooks.answered();
        if let Some(why) = consumer.context().take_failure() {
            return Err(StreamError::Rebalance(why));
        }
        let work = process_batch(&mut processor, &store, &publisher, &batch, &stats, &metrics);
        tokio::pin!(work);
        let (committed, stop_after) = tokio::select! {
            r = &mut work => (r?, false),
            () = &mut shutdown => {
                // Finish the batch in hand if the brokers let us; when they
                // do not (an outage), give it up unwritten: it is replayed
                // after the restart, with identical outputs.
                if let Ok(r) = tokio::time::timeout(SHUTDOWN_GRACE, &mut work).await {
                    (r?, true)
                } else {
                    warn!(
                        records = batch.len(),
                        brokers = %cfg.brokers,
                        "stopping with a batch unacknowledged (kafka unreachable?): its state is not written, it will be replayed"
                    );
                    abandoned = true;
                    break;
                }
            }
        };
        // Kafka's committed offsets are informational (lag); the store
        // holds the truth, so a failed commit is only logged.
        if let Err(e) = consumer.commit(&committed, CommitMode::Async) {
            debug!(error = %e, "offset commit for monitoring failed");
        }
        if stop_after {
            break;
        }
    }
    if !abandoned {
        publisher.flush()?;
    }
    store.flush()?;
    state_gauges(store.as_ref(), &metrics);
    info!("stopped");
    Ok(())
}

/// Wait before sending a batch's outputs again: 1 s, doubling, at most
/// 30 s.
fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// How long closing a consumer (leaving its group) may take before the
/// task stops without it.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// A consumer whose close is bounded: rdkafka's drop leaves the group and
/// waits for the coordinator for as long as it takes, which with the
/// brokers gone is forever (and it blocks a runtime thread). Dropping this
/// closes the consumer on a thread of its own and waits at most
/// [`CLOSE_GRACE`]; after that the close is abandoned (the group
/// coordinator times the session out) and the task stops anyway.
struct BoundedClose<C: Send + 'static>(Option<C>);

impl<C: Send + 'static> BoundedClose<C> {
    const fn new(consumer: C) -> Self {
        Self(Some(consumer))
    }
}

impl<C: Send + 'static> std::ops::Deref for BoundedClose<C> {
    type Target = C;

    fn deref(&self) -> &C {
        // Some until dropped.
        self.0.as_ref().unwrap_or_else(|| unreachable_consumer())
    }
}

#[allow(clippy::panic)]
#[cold]
fn unreachable_consumer() -> ! {
    panic!("consumer used after close")
}

impl<C: Send + 'static> Drop for BoundedClose<C> {
    fn drop(&mut self) {
        let Some(consumer) = self.0.take() else {
            return;
        };
        let (done, closed) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("epitrace-close".into())
            .spawn(move || {
                drop(consumer);
                let _ = done.send(());
            });
        if spawned.is_ok() && closed.recv_timeout(CLOSE_GRACE).is_err() {
            warn!(
                grace_s = CLOSE_GRACE.as_secs(),
                "the consumer did not leave its group in time (kafka unreachable?); stopping without it"
            );
        }
    }
}

/// How long a stop waits for the batch in hand to be acknowledged before
/// giving it up (to be replayed after the restart).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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

/// A consumed Kafka message, as the engine reads it.
struct Message(OwnedMessage);

impl epitrace_engine::Consumed for Message {
    fn topic(&self) -> &str {
        self.0.topic()
    }
    fn partition(&self) -> i32 {
        self.0.partition()
    }
    fn offset(&self) -> i64 {
        self.0.offset()
    }
    fn key(&self) -> Option<&[u8]> {
        self.0.key()
    }
    fn payload(&self) -> Option<&[u8]> {
        self.0.payload()
    }
    fn timestamp_ms(&self) -> Option<i64> {
        self.0.timestamp().to_millis()
    }
}

/// Processes one batch through the engine ([`run_batch`]), publishes its
/// outputs and awaits every acknowledgement, and only then writes the state
/// together with the next input offsets; returns the offsets to commit to
/// Kafka for monitoring.
async fn process_batch<P: Processor>(
    processor: &mut P,
    store: &Arc<dyn KvStore>,
    publisher: &Publisher,
    batch: &[Message],
    stats: &TaskStats,
    metrics: &TaskMetrics,
) -> Result<TopicPartitionList, StreamError> {
    let started = std::time::Instant::now();
    let received_at_ms = now_ms();
    let mut outcome = run_batch(processor, store.as_ref(), batch, received_at_ms)?;
    // 1. outputs acknowledged, 2. state + offsets in one write. While the
    // brokers do not answer, the same outputs are sent again (identical
    // records: consumers de-duplicate by id) until they are acknowledged;
    // the processor is not run again, and nothing is written meanwhile.
    let mut attempt: u32 = 0;
    loop {
        match publisher.send_all(&outcome.outputs).await {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                attempt += 1;
                metrics.delivery_retry();
                if attempt == 1 {
                    warn!(
                        records = outcome.outputs.len(),
                        error = %e,
                        "outputs not acknowledged; sending them again until the brokers answer (state not written meanwhile)"
                    );
                }
                tokio::time::sleep(retry_backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
    if attempt > 0 {
        info!(
            attempts = attempt + 1,
            "outputs acknowledged after retrying"
        );
    }
    store.write(std::mem::take(&mut outcome.state))?;

    let mut next_offsets = TopicPartitionList::new();
    for (topic, partition, next) in &outcome.next_offsets {
        next_offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    // Counted once per batch, from the same event as the log lines.
    let inputs: Vec<(&str, u64)> = outcome
        .inputs
        .iter()
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    let outputs: Vec<(&str, u64)> = outcome
        .produced
        .iter()
        .map(|(t, n)| (t.as_str(), *n))
        .collect();
    let dead_total = outcome.dead_letter_count();
    let produced = outcome.produced_count();
    metrics.batch(
        &inputs,
        &outputs,
        &outcome.dead_letters,
        started.elapsed().as_secs_f64(),
    );
    if let Some(t) = outcome.last_event_ms {
        metrics.event_time(received_at_ms, t);
    }
    for (what, kind, n) in &outcome.emitted {
        match what {
            Emitted::Exposure => metrics.exposures(kind, *n),
            Emitted::ClusterAlert => metrics.cluster_alerts(kind, *n),
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
        let reasons: Vec<&str> = outcome.dead_letters.iter().map(|(r, _)| *r).collect();
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
