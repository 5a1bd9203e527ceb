//! The loop that drives one processor on this instance: the partitions the
//! consumer group gives it, each with its own state restored from the
//! changelog (see the crate docs for the delivery rules).
//!
//! ## Partitions and assignment
//!
//! The processor's consumer group subscribes to its **first** input only,
//! with the `cooperative-sticky` assignor: adding or removing an instance
//! moves only the partitions that must move. When partition *p* of the
//! first input is assigned, partition *p* of every other input follows it
//! (co-partitioning: the same key lands on the same partition number in
//! every input), so one *partition task* owns key range *p* of every input,
//! with its own store under `<state_dir>/<processor>/<p>` and its own
//! processor instance.
//!
//! On assignment each new partition task is restored from the processor's
//! changelog before the task reads any input ([`crate::changelog`]); the
//! processor is not ready meanwhile. With exactly-once, the assignment
//! first waits until the partitions' committed offsets are stable (no
//! transaction of a previous owner pending). On revocation the partition
//! task's store is flushed and closed. A restore that fails (the brokers
//! away) is retried for 30 s; after that the task leaves the group with
//! nothing owned and joins again after a backoff, rather than stopping.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use epitrace_engine::{BatchOutcome, run_batch};
use epitrace_ops::{TaskHealth, TaskMetrics, Telemetry};
use epitrace_state::{KvStore, RocksStore, StoreOptions};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::changelog::{self, Change, Restored};
use crate::config::{Guarantee, KafkaConfig};
use crate::dead_letters::ProviderDeadLetters;
use crate::error::StreamError;
use crate::link::{LinkHooks, forward_error, forward_log};
use crate::publish::{Outgoing, Publisher};
use crate::registry::{Normalized, PUBLIC_OUTPUTS, Registry, confluent_id};
use crate::standby::{Handoff, Standby, StandbySpec};
use epitrace_model::topics::ORIGIN_HEADER;

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
    /// Changelog records applied while restoring partitions.
    pub restored: AtomicU64,
    /// Batches given up and rewound (an aborted transaction).
    pub rewound: AtomicU64,
}

/// Builds a fresh processor instance (one per partition task).
pub type BuildProcessor = Arc<dyn Fn() -> Box<dyn Processor> + Send + Sync>;

/// Everything a task needs to run one processor.
#[derive(Clone)]
pub struct TaskDef {
    /// The processor's name (group suffix, state folder, changelog).
    pub name: &'static str,
    /// Its inputs; the first one drives the group assignment.
    pub inputs: Vec<String>,
    /// The stores it declares.
    pub stores: Vec<&'static str>,
    /// Builds a processor instance.
    pub build: BuildProcessor,
    /// This processor's state folder (`<state_dir>/<processor>`); partition
    /// *p* lives in `<p>/` below it.
    pub state_dir: PathBuf,
    /// RocksDB tuning.
    pub store_options: StoreOptions,
    /// Identifies this instance among the group's members, stable across
    /// its restarts (part of the transactional id).
    pub instance_id: String,
    /// The Schema Registry step of every batch (shared by the process's
    /// tasks): Confluent frames in, single-object frames to the processor.
    pub registry: Arc<Registry>,
    /// The providers with their own dead-letter topic (shared by the
    /// process's tasks): a feed record naming one of them in its
    /// `epitrace.provider` header has its dead letter copied there.
    pub dead_letters: Arc<ProviderDeadLetters>,
}

impl std::fmt::Debug for TaskDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskDef")
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .field("stores", &self.stores)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// One input partition number owned by this instance: its store, its
/// processor and where each input resumes.
struct Part {
    store: Arc<RocksStore>,
    processor: Box<dyn Processor>,
    /// The next offset to process, per input topic.
    next: BTreeMap<String, i64>,
    /// Cases pending approval in this partition, when the processor
    /// reports it.
    pending: Option<u64>,
}

/// Consumer context: restores partitions on assignment, closes them on
/// revocation, and reports the client's errors on the Kafka link.
struct TaskContext {
    def: TaskDef,
    kafka: KafkaConfig,
    changelog: String,
    parts: Mutex<BTreeMap<i32, Part>>,
    failure: Mutex<Option<String>>,
    stats: Arc<TaskStats>,
    metrics: TaskMetrics,
    health: TaskHealth,
    hooks: LinkHooks,
    /// Shared with the standby thread: a store is open in one place.
    handoff: Arc<Handoff>,
    /// Since when this member owns nothing after its assignment was lost
    /// (a session timeout) or after it joined again; cleared by the next
    /// assignment.
    unassigned_since: Mutex<Option<Instant>>,
}

/// How long an assignment waits for the standby thread to close its copy.
const HANDOFF_WAIT: Duration = Duration::from_secs(30);

impl TaskContext {
    fn parts(&self) -> MutexGuard<'_, BTreeMap<i32, Part>> {
        // A poisoned lock means a panic elsewhere while holding it: the
        // parts are still consistent (writes happen in single calls).
        self.parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

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

    /// How long this member has owned nothing since it lost its
    /// assignment, if it did.
    fn unassigned_for(&self) -> Option<Duration> {
        self.unassigned_since
            .lock()
            .ok()
            .and_then(|s| s.map(|t| t.elapsed()))
    }

    fn set_unassigned(&self, since: Option<Instant>) {
        if let Ok(mut s) = self.unassigned_since.lock() {
            *s = since;
        }
    }

    fn has_failed(&self) -> bool {
        self.failure.lock().map_or(true, |f| f.is_some())
    }

    /// A context like this one with nothing owned, for a consumer that
    /// joins the group again.
    fn fresh(&self) -> Self {
        Self {
            def: self.def.clone(),
            kafka: self.kafka.clone(),
            changelog: self.changelog.clone(),
            parts: Mutex::new(BTreeMap::new()),
            failure: Mutex::new(None),
            stats: Arc::clone(&self.stats),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            hooks: self.hooks.clone(),
            handoff: Arc::clone(&self.handoff),
            unassigned_since: Mutex::new(None),
        }
    }

    fn primary(&self) -> &str {
        self.def.inputs.first().map_or("", String::as_str)
    }

    /// Every input's partition `p`, at the offsets given.
    fn input_list(
        &self,
        partitions: &[i32],
        offset: impl Fn(&str, i32) -> Offset,
    ) -> Result<TopicPartitionList, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for &p in partitions {
            for topic in &self.def.inputs {
                tpl.add_partition_offset(topic, p, offset(topic, p))?;
            }
        }
        Ok(tpl)
    }

    fn open_store(&self, partition: i32) -> Result<RocksStore, StreamError> {
        Ok(RocksStore::open(
            self.def.state_dir.join(partition.to_string()),
            &self.def.stores,
            &self.def.store_options,
        )?)
    }

    /// Opens and restores partition `p`'s store, taking it from the
    /// standby thread first when it keeps a copy of it.
    fn restore_part(&self, p: i32) -> Result<Part, StreamError> {
        if !self.handoff.claim(p, HANDOFF_WAIT) {
            self.handoff.release(p);
            return Err(StreamError::Admin(format!(
                "the standby copy of partition {p} was not closed in time"
            )));
        }
        let restored = self.restore_claimed(p);
        if restored.is_err() {
            self.handoff.release(p);
        }
        restored
    }

    fn restore_claimed(&self, p: i32) -> Result<Part, StreamError> {
        let started = Instant::now();
        let mut last_log = Instant::now();
        let reported = std::cell::Cell::new(0u64);
        let mut progress = |n: u64| {
            let delta = n.saturating_sub(reported.get());
            self.metrics.restored(delta);
            self.stats.restored.fetch_add(delta, Ordering::Relaxed);
            reported.set(n);
            if last_log.elapsed() > Duration::from_secs(5) {
                info!(partition = p, records = n, "restoring from the changelog");
                last_log = Instant::now();
            }
        };
        let mut store = self.open_store(p)?;
        let mut outcome = changelog::restore(
            &self.kafka,
            &self.hooks,
            &self.changelog,
            p,
            &store,
            &mut progress,
        )?;
        if let Restored::Stale { checkpoint, end } = outcome {
            warn!(
                partition = p,
                checkpoint,
                end,
                "local state is ahead of its changelog (the topic was recreated): rebuilding it from the changelog"
            );
            let dir = store.path().to_path_buf();
            drop(store);
            std::fs::remove_dir_all(&dir).map_err(epitrace_state::StateError::from)?;
            reported.set(0);
            store = self.open_store(p)?;
            outcome = changelog::restore(
                &self.kafka,
                &self.hooks,
                &self.changelog,
                p,
                &store,
                &mut progress,
            )?;
        }
        if let Restored::Done { records, from, to } = outcome {
            info!(
                partition = p,
                records,
                from,
                to,
                seconds = started.elapsed().as_secs_f64(),
                "partition state restored"
            );
        }
        let mut next = BTreeMap::new();
        for topic in &self.def.inputs {
            if let Some(o) = store.offset(topic, p)? {
                next.insert(topic.clone(), o);
            }
        }
        Ok(Part {
            store: Arc::new(store),
            processor: (self.def.build)(),
            next,
            pending: None,
        })
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, partitions: &[i32], cooperative: bool) {
        self.health.set_ready(false);
        if self.kafka.processing_guarantee == Guarantee::ExactlyOnce {
            // With read_committed, librdkafka asks for stable offsets: this
            // returns once no transaction of a previous owner that
            // committed these partitions' offsets is still pending.
            match self.input_list(partitions, |_, _| Offset::Invalid) {
                Ok(tpl) => {
                    if let Err(e) = consumer.committed_offsets(tpl, Duration::from_secs(60)) {
                        warn!(error = %e, "waiting for stable committed offsets");
                    }
                }
                Err(e) => return self.fail(e.to_string()),
            }
        }
        self.metrics.restoring(partitions.len());
        let mut opened = Vec::new();
        for &p in partitions {
            // A broker restarting a moment is waited for here; a longer
            // failure makes the task leave the group and join again.
            let deadline = Instant::now() + RESTORE_RETRY;
            let mut logged = false;
            loop {
                match self.restore_part(p) {
                    Ok(part) => {
                        opened.push((p, part));
                        break;
                    }
                    Err(e) if Instant::now() < deadline => {
                        if !logged {
                            warn!(partition = p, error = %e, "restore failed; retrying");
                            logged = true;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    Err(e) => {
                        self.metrics.restoring(0);
                        return self.fail(format!("restoring partition {p}: {e}"));
                    }
                }
            }
        }
        self.metrics.restoring(0);
        let tpl = {
            let mut parts = self.parts();
            for (p, part) in opened {
                parts.insert(p, part);
            }
            self.input_list(partitions, |topic, p| {
                parts
                    .get(&p)
                    .and_then(|part| part.next.get(topic))
                    .map_or(Offset::Beginning, |&o| Offset::Offset(o))
            })
        };
        let tpl = match tpl {
            Ok(t) => t,
            Err(e) => return self.fail(e.to_string()),
        };
        let assigned = if cooperative {
            consumer.incremental_assign(&tpl)
        } else {
            consumer.assign(&tpl)
        };
        if let Err(e) = assigned {
            return self.fail(format!("assign: {e}"));
        }
        let owned: Vec<i32> = self.parts().keys().copied().collect();
        info!(
            ?partitions,
            ?owned,
            inputs = ?self.def.inputs,
            "partitions assigned and restored"
        );
        // The group coordinator answered.
        self.hooks.answered();
        self.set_unassigned(None);
        self.metrics.rebalance("assign", owned.len());
        self.health.set_ready(true);
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, partitions: &[i32], cooperative: bool) {
        let lost = consumer.assignment_lost();
        let closed = self.close(partitions);
        let result = if cooperative {
            self.input_list(partitions, |_, _| Offset::Invalid)
                .and_then(|tpl| consumer.incremental_unassign(&tpl))
        } else {
            consumer.unassign()
        };
        if let Err(e) = result {
            self.fail(format!("unassign: {e}"));
        }
        let owned = self.parts().len();
        if lost && owned == 0 {
            self.set_unassigned(Some(Instant::now()));
        }
        info!(
            ?partitions,
            closed,
            lost,
            "partitions revoked{}",
            if lost {
                " (lost: this instance was out of the group)"
            } else {
                ""
            }
        );
        self.metrics
            .rebalance(if lost { "lost" } else { "revoke" }, owned);
    }

    /// Flushes and closes the stores of `partitions`; returns how many
    /// were open.
    fn close(&self, partitions: &[i32]) -> usize {
        let mut parts = self.parts();
        let mut closed = 0;
        for p in partitions {
            if let Some(part) = parts.remove(p) {
                if let Err(e) = part.store.flush() {
                    warn!(partition = p, error = %e, "flushing state on revocation");
                }
                drop(part);
                self.handoff.release(*p);
                closed += 1;
            }
        }
        closed
    }

    fn close_all(&self) {
        let all: Vec<i32> = self.parts().keys().copied().collect();
        self.close(&all);
    }
}

impl ClientContext for TaskContext {
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

impl ConsumerContext for TaskContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let partitions: Vec<i32> = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == self.primary())
            .map(|e| e.partition())
            .collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, &partitions, cooperative);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, &partitions, cooperative);
            }
            other => {
                warn!(?other, "rebalance error; dropping the assignment");
                self.close_all();
                if let Err(e) = consumer.unassign() {
                    self.fail(format!("unassign: {e}"));
                }
                self.metrics.rebalance("error", 0);
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs a processor until `shutdown` resolves or an error occurs; on
/// shutdown the batch in hand is finished (committed) before returning
/// `Ok`. `health` is the processor's readiness, registered by the caller
/// (`telemetry.health.task(name)`) as soon as the processor is known, so
/// that `/readyz` names it while it is still starting.
///
/// # Errors
/// Any non-transient [`StreamError`]: the batch in hand is then *not*
/// written, so the next owner of its partitions replays it.
pub async fn run_task(
    def: TaskDef,
    cfg: &KafkaConfig,
    stats: Arc<TaskStats>,
    telemetry: &Telemetry,
    health: TaskHealth,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StreamError> {
    let name = def.name;
    let metrics = telemetry.metrics.task(name);
    let span = info_span!("processor", processor = name);
    let hooks = LinkHooks::new(Arc::clone(&telemetry.kafka));
    let handoff = Arc::new(Handoff::default());
    let changelog_topic = changelog::topic(&cfg.group_prefix, name);
    let _standby = if cfg.num_standby > 0 && !def.stores.is_empty() {
        let spec = StandbySpec {
            processor: name,
            group: format!("{}.{name}", cfg.group_prefix),
            member_client_id: member_client_id(cfg, name, &def.instance_id),
            primary: def.inputs.first().cloned().unwrap_or_default(),
            changelog: changelog_topic.clone(),
            replicas: cfg.num_standby,
            state_dir: def.state_dir.clone(),
            stores: def.stores.clone(),
            store_options: def.store_options.clone(),
        };
        Some(Standby::start(
            spec,
            cfg,
            hooks.clone(),
            Arc::clone(&handoff),
            metrics.clone(),
        )?)
    } else {
        None
    };
    let context = TaskContext {
        handoff,
        changelog: changelog_topic,
        def,
        kafka: cfg.clone(),
        parts: Mutex::new(BTreeMap::new()),
        failure: Mutex::new(None),
        stats,
        metrics,
        health: health.clone(),
        hooks,
        unassigned_since: Mutex::new(None),
    };
    let result = drive(context, cfg, shutdown).instrument(span).await;
    match &result {
        Ok(()) => health.set_stopped(),
        Err(_) => health.set_failed(),
    }
    result
}

/// How long a partition's restore is retried during an assignment before
/// the task leaves the group to join again.
const RESTORE_RETRY: Duration = Duration::from_secs(30);

/// How often the state store gauges are refreshed.
const STATE_GAUGES_EVERY: Duration = Duration::from_secs(15);

/// How long a member that lost its assignment waits for a new one before
/// it joins again as a new member.
const REJOIN_AFTER_LOSS: Duration = Duration::from_secs(45);

/// How many times per lost assignment it does so.
const MAX_LOSS_REJOINS: u32 = 3;

async fn drive(
    context: TaskContext,
    cfg: &KafkaConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StreamError> {
    let name = context.def.name;
    let hooks = context.hooks.clone();
    let primary = context.primary().to_owned();
    let inputs = context.def.inputs.clone();
    let eos = cfg.processing_guarantee == Guarantee::ExactlyOnce;
    let mut publisher = if eos {
        let id = transactional_id(cfg, name, &context.def.instance_id);
        let p = Publisher::transactional(cfg, hooks.clone(), &id)?;
        init_with_retry(&p).await?;
        p
    } else {
        Publisher::with_hooks(cfg, hooks.clone())?
    };
    let join =
        |context: TaskContext| -> Result<BoundedClose<StreamConsumer<TaskContext>>, StreamError> {
            let consumer = BoundedClose::new(
                cfg.consumer_config(name)
                    .set(
                        "client.id",
                        member_client_id(cfg, name, &context.def.instance_id),
                    )
                    .create_with_context::<_, StreamConsumer<TaskContext>>(context)?,
            );
            consumer.subscribe(&[primary.as_str()])?;
            Ok(consumer)
        };
    tokio::pin!(shutdown);
    // Confluent output framing: the registry's ids of the current schemas,
    // retried while it does not answer.
    {
        let mut attempt = 0;
        loop {
            match context.def.registry.prepare_outputs(PUBLIC_OUTPUTS).await {
                Ok(()) => break,
                Err(e) if e.is_transient() => {
                    attempt += 1;
                    if attempt == 1 {
                        warn!(error = %e, "the schema registry does not answer; retrying before the first batch");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(retry_backoff(attempt).min(Duration::from_secs(5))) => {}
                        () = &mut shutdown => return Ok(()),
                    }
                }
                Err(e) => return Err(StreamError::Registry(e.to_string())),
            }
        }
    }
    let mut consumer = join(context)?;
    let mut rejoins: u32 = 0;
    let linger = Duration::from_millis(cfg.batch_linger_ms);
    info!(?inputs, brokers = %cfg.brokers, guarantee = %cfg.processing_guarantee, "started");
    let mut gauges = tokio::time::interval(STATE_GAUGES_EVERY);
    let mut abandoned = false;
    let mut failures: u32 = 0;
    let mut lost_rejoins: u32 = 0;
    let mut registry_waits: u32 = 0;
    loop {
        // A member that lost its assignment (a session timeout while the
        // brokers were away) is given its partitions back when it joins
        // again; if the coordinator never does (seen with librdkafka after
        // an outage), a fresh member joins instead — a few times per loss,
        // not forever (an instance may legitimately own nothing).
        if consumer
            .context()
            .unassigned_for()
            .is_some_and(|d| d >= REJOIN_AFTER_LOSS)
            && lost_rejoins < MAX_LOSS_REJOINS
        {
            lost_rejoins += 1;
            warn!(
                attempt = lost_rejoins,
                "no partitions since the assignment was lost; joining the group again as a new member"
            );
            let fresh = consumer.context().fresh();
            fresh.set_unassigned(Some(Instant::now()));
            drop(consumer);
            consumer = join(fresh)?;
            continue;
        }
        if consumer.context().unassigned_for().is_none() {
            lost_rejoins = 0;
        }
        if let Some(why) = consumer.context().take_failure() {
            // A rebalance could not be completed (e.g. a restore while the
            // brokers were away): leave the group with nothing owned, wait,
            // and join again — the partitions are restored anew.
            rejoins += 1;
            warn!(error = %why, attempt = rejoins, "rebalance failed; leaving the group and joining again");
            consumer.context().close_all();
            let fresh = consumer.context().fresh();
            drop(consumer);
            tokio::select! {
                () = tokio::time::sleep(retry_backoff(rejoins)) => {}
                () = &mut shutdown => {
                    info!("stopped");
                    return Ok(());
                }
            }
            consumer = join(fresh)?;
            continue;
        }
        let first = tokio::select! {
            () = &mut shutdown => break,
            _ = gauges.tick() => {
                state_gauges(consumer.context());
                if !eos {
                    // Without transactions the group's offsets are only
                    // informational (lag) and committed asynchronously; one
                    // lost in a rebalance would leave the lag wrong while
                    // idle, so the positions are committed again now and
                    // then.
                    commit_positions(&consumer);
                }
                continue;
            }
            m = consumer.recv() => m,
        };
        let mut batch: Vec<Message> = Vec::new();
        match first {
            Ok(m) => batch.push(Message::new(
                m.detach(),
                &consumer.context().def.dead_letters,
            )),
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
                Ok(Ok(m)) => batch.push(Message::new(
                    m.detach(),
                    &consumer.context().def.dead_letters,
                )),
                Ok(Err(e)) => hooks.error(&e),
                Err(_) => break,
            }
        }
        hooks.answered();
        if consumer.context().has_failed() {
            // Handled at the top of the loop; the batch is dropped (its
            // partitions are restored anew).
            continue;
        }
        let held = normalize(&consumer, &consumer.context().def.registry, &mut batch).await;
        if held > 0 {
            consumer.context().metrics.registry_wait(held);
            registry_waits += 1;
            if registry_waits == 1 {
                warn!(
                    held,
                    "the schema registry does not answer for a schema id: its partition waits (records of cached ids flow on)"
                );
            }
        } else {
            registry_waits = 0;
        }
        let work = step(&consumer, &mut publisher, cfg, batch);
        tokio::pin!(work);
        let (outcome, stop_after) = tokio::select! {
            r = &mut work => (r?, false),
            () = &mut shutdown => {
                // Finish the batch in hand if the brokers let us; when they
                // do not (an outage), give it up unwritten: it is replayed
                // after the restart.
                if let Ok(r) = tokio::time::timeout(SHUTDOWN_GRACE, &mut work).await {
                    (r?, true)
                } else {
                    warn!(
                        brokers = %cfg.brokers,
                        "stopping with a batch uncommitted (kafka unreachable?): its state is not written, it will be replayed"
                    );
                    abandoned = true;
                    break;
                }
            }
        };
        match outcome {
            Step::Committed(offsets) => {
                failures = 0;
                rejoins = 0;
                if !eos {
                    // Kafka's committed offsets are informational (lag)
                    // without transactions: the changelog holds the truth.
                    if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
                        debug!(error = %e, "offset commit for monitoring failed");
                    }
                }
            }
            // Stopping: `shutdown` has completed and must not be polled
            // again (an async block panics when resumed after completion).
            Step::Rewound if stop_after => {}
            Step::Rewound => {
                failures += 1;
                tokio::select! {
                    () = tokio::time::sleep(retry_backoff(failures)) => {}
                    () = &mut shutdown => break,
                }
            }
            Step::Nothing => {}
        }
        if stop_after {
            break;
        }
        if held > 0 {
            // The held records come back with the next batch: not at once.
            tokio::select! {
                () = tokio::time::sleep(retry_backoff(registry_waits).min(Duration::from_secs(5))) => {}
                () = &mut shutdown => break,
            }
        }
    }
    if !abandoned && !eos {
        publisher.flush()?;
    }
    state_gauges(consumer.context());
    consumer.context().close_all();
    info!("stopped");
    Ok(())
}

/// Commits the next offset of every owned input partition to the group
/// (at-least-once: for monitoring only).
fn commit_positions(consumer: &StreamConsumer<TaskContext>) {
    let ctx = consumer.context();
    let mut tpl = TopicPartitionList::new();
    for (p, part) in ctx.parts().iter() {
        for (topic, next) in &part.next {
            if tpl
                .add_partition_offset(topic, *p, Offset::Offset(*next))
                .is_err()
            {
                return;
            }
        }
    }
    if tpl.count() > 0
        && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
    {
        debug!(error = %e, "offset commit for monitoring failed");
    }
}

/// The transactional id of `processor` on this instance.
/// The `client.id` of this instance's member of a processor's group: it
/// names the instance, so that standby placement can find itself in the
/// group's description.
fn member_client_id(cfg: &KafkaConfig, processor: &str, instance: &str) -> String {
    format!("{}.{processor}.{instance}", cfg.client_id)
}

fn transactional_id(cfg: &KafkaConfig, processor: &str, instance: &str) -> String {
    format!("{}.{processor}.{instance}", cfg.group_prefix)
}

/// `init_transactions`, retried while the brokers do not answer.
async fn init_with_retry(publisher: &Publisher) -> Result<(), StreamError> {
    let mut attempt = 0;
    loop {
        match publisher.init_transactions().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() || is_retriable_txn(&e) => {
                attempt += 1;
                if attempt == 1 {
                    warn!(error = %e, "transactions not initialised yet; retrying until the brokers answer");
                }
                tokio::time::sleep(retry_backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_retriable_txn(e: &StreamError) -> bool {
    matches!(e, StreamError::Kafka(KafkaError::Transaction(t)) if t.is_retriable())
}

fn is_fatal_txn(e: &StreamError) -> bool {
    matches!(e, StreamError::Kafka(KafkaError::Transaction(t)) if t.is_fatal())
}

/// What one step of the loop did.
enum Step {
    /// The batch was committed; the offsets to report to the group (lag
    /// monitoring, at-least-once).
    Committed(TopicPartitionList),
    /// The batch's transaction failed: it was aborted, the processors of
    /// its partitions rebuilt and their inputs rewound to the stored
    /// offsets, to be processed again.
    Rewound,
    /// Nothing of the batch belonged to this instance any more.
    Nothing,
}

/// One partition's share of a batch, processed.
struct Processed {
    partition: i32,
    outcome: BatchOutcome,
    changes: Vec<Change>,
    records: usize,
}

/// A record header: name, value.
type Header<'a> = (&'a str, &'a [u8]);

/// One partition's records through its processor, against its store, and
/// the staged writes as changelog records.
fn process_partition(
    partition: i32,
    part: &mut Part,
    records: &[Message],
    received_at_ms: i64,
) -> Result<Processed, StreamError> {
    let outcome = run_batch(
        &mut part.processor,
        part.store.as_ref(),
        records,
        received_at_ms,
    )?;
    let changes = changelog::encode(&outcome.state, part.store.as_ref())?;
    Ok(Processed {
        partition,
        outcome,
        changes,
        records: records.len(),
    })
}

/// Processes a batch, publishes and commits it: see the crate docs.
async fn step(
    consumer: &StreamConsumer<TaskContext>,
    publisher: &mut Publisher,
    cfg: &KafkaConfig,
    batch: Vec<Message>,
) -> Result<Step, StreamError> {
    let ctx = consumer.context();
    let started = Instant::now();
    let received_at_ms = now_ms();
    // 1. Run each owned partition's records through its processor, against
    //    its store. Records of partitions no longer owned (revoked while
    //    the batch was gathered) or already processed (before a rewind)
    //    are dropped.
    let processed = {
        let mut parts = ctx.parts();
        let mut by_partition: BTreeMap<i32, Vec<Message>> = BTreeMap::new();
        for m in batch {
            let keep = parts.get(&m.m.partition()).is_some_and(|part| {
                m.m.offset() >= part.next.get(m.m.topic()).copied().unwrap_or(0)
            });
            if keep {
                by_partition.entry(m.m.partition()).or_default().push(m);
            }
        }
        let mut processed = Vec::with_capacity(by_partition.len());
        for (p, records) in by_partition {
            let Some(part) = parts.get_mut(&p) else {
                continue;
            };
            processed.push(process_partition(p, part, &records, received_at_ms)?);
        }
        processed
    };
    if processed.is_empty() {
        return Ok(Step::Nothing);
    }
    let changelog = ctx.changelog.as_str();
    // Public outputs in the configured framing (see `crate::registry`).
    let registry = &ctx.def.registry;
    let framed: Vec<Option<Vec<u8>>> = processed
        .iter()
        .flat_map(|p| p.outcome.outputs.iter())
        .map(|o| registry.frame_output(&o.topic, &o.payload))
        .collect();
    // Each output carries its origin time on (see `ORIGIN_HEADER`).
    let origins: Vec<Option<String>> = processed
        .iter()
        .flat_map(|p| p.outcome.outputs.iter())
        .map(|o| o.timestamp_ms.map(|t| t.to_string()))
        .collect();
    let origin_headers: Vec<Option<[Header<'_>; 1]>> = origins
        .iter()
        .map(|t| t.as_ref().map(|t| [(ORIGIN_HEADER, t.as_bytes())]))
        .collect();
    let records: Vec<Outgoing<'_>> = processed
        .iter()
        .flat_map(|p| p.outcome.outputs.iter())
        .zip(&framed)
        .zip(&origin_headers)
        .map(|((o, framed), origin)| {
            let mut out = Outgoing::from(o);
            if let Some(bytes) = framed {
                out.payload = Some(bytes);
            }
            if let Some(h) = origin {
                out.headers = h;
            }
            out
        })
        .chain(processed.iter().flat_map(|p| {
            p.changes.iter().map(move |c| Outgoing {
                topic: changelog,
                partition: Some(p.partition),
                key: &c.key,
                payload: c.value.as_deref(),
                timestamp_ms: None,
                headers: &[],
            })
        }))
        .collect();
    let mut offsets = TopicPartitionList::new();
    for p in &processed {
        for (topic, partition, next) in &p.outcome.next_offsets {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
    }
    // 2. Publish: outputs, dead letters and changelog records (and, with
    //    exactly-once, the input offsets) in one transaction; at least
    //    once, acknowledged before anything is written.
    let acked = if cfg.processing_guarantee == Guarantee::ExactlyOnce {
        match transact(consumer, publisher, &records, &offsets).await {
            Ok(acked) => {
                ctx.metrics.transaction("committed");
                acked
            }
            Err(e) => {
                ctx.metrics.transaction("aborted");
                warn!(error = %e, "transaction failed; aborting it and processing the batch again");
                recover(publisher, cfg, &ctx.def, &e).await?;
                rewind(consumer, processed.iter().map(|p| p.partition));
                ctx.stats.rewound.fetch_add(1, Ordering::Relaxed);
                return Ok(Step::Rewound);
            }
        }
    } else {
        send_until_acknowledged(publisher, &records, &ctx.metrics).await?
    };
    // 3. Write each partition's state, input offsets and changelog
    //    checkpoint locally, in one atomic write per partition.
    {
        let mut parts = ctx.parts();
        for p in processed.iter() {
            let Some(part) = parts.get_mut(&p.partition) else {
                continue;
            };
            let mut ws = p.outcome.state.clone();
            if let Some((_, _, last)) = acked
                .iter()
                .find(|(t, q, _)| t == changelog && *q == p.partition)
            {
                ws.set_offset(changelog, p.partition, last + 1);
            }
            part.store.write(ws)?;
            for (topic, _, next) in &p.outcome.next_offsets {
                part.next.insert(topic.clone(), *next);
            }
            if p.outcome.pending_approval.is_some() {
                part.pending = p.outcome.pending_approval;
            }
        }
        let pending: Vec<u64> = parts.values().filter_map(|part| part.pending).collect();
        if !pending.is_empty() {
            ctx.metrics.pending_approval(pending.iter().sum());
        }
    }
    for p in &processed {
        report(ctx, &p.outcome, p.records, started, received_at_ms);
    }
    Ok(Step::Committed(offsets))
}

/// One transaction: the records, the consumer's next offsets, commit.
async fn transact(
    consumer: &StreamConsumer<TaskContext>,
    publisher: &Publisher,
    records: &[Outgoing<'_>],
    offsets: &TopicPartitionList,
) -> Result<crate::publish::Acked, StreamError> {
    publisher.begin()?;
    let acked = publisher.send(records).await?;
    // A call that timed out while the brokers were away must be made again
    // to resume (librdkafka refuses an abort while a commit is pending, and
    // the commit may have gone through): retried until it succeeds or
    // fails for good (the coordinator aborts a transaction older than its
    // timeout; the error then asks for an abort).
    let mut attempt = 0;
    loop {
        let group = consumer
            .group_metadata()
            .ok_or_else(|| StreamError::Rebalance("no consumer group metadata".into()))?;
        match publisher.send_offsets(offsets.clone(), group).await {
            Ok(()) => break,
            Err(e) if is_retriable_txn(&e) => resume_pause(&mut attempt, &e, "offsets").await,
            Err(e) => return Err(e),
        }
    }
    loop {
        match publisher.commit_records().await {
            Ok(()) => break,
            Err(e) if is_retriable_txn(&e) => resume_pause(&mut attempt, &e, "commit").await,
            Err(e) => return Err(e),
        }
    }
    Ok(acked)
}

/// The pause before a timed-out transaction call is made again.
async fn resume_pause(attempt: &mut u32, e: &StreamError, call: &str) {
    *attempt += 1;
    if *attempt == 1 {
        warn!(error = %e, call, "transaction call timed out; resuming it until the brokers answer");
    }
    tokio::time::sleep(retry_backoff(*attempt)).await;
}

/// Leaves the producer ready for the next transaction after a failed one:
/// aborts it (retrying while the brokers are away), or creates the producer
/// anew when it was fenced or failed fatally.
async fn recover(
    publisher: &mut Publisher,
    cfg: &KafkaConfig,
    def: &TaskDef,
    cause: &StreamError,
) -> Result<(), StreamError> {
    let mut attempt = 0;
    let mut fatal = is_fatal_txn(cause);
    loop {
        if fatal {
            warn!("producer fenced or failed fatally; creating it again");
            let id = transactional_id(cfg, def.name, &def.instance_id);
            *publisher = Publisher::transactional(cfg, publisher.hooks().clone(), &id)?;
            return init_with_retry(publisher).await;
        }
        match publisher.abort().await {
            Ok(()) => return Ok(()),
            Err(e) if is_fatal_txn(&e) => fatal = true,
            Err(e) => {
                attempt += 1;
                if attempt == 1 {
                    warn!(error = %e, "abort failed; retrying until the brokers answer");
                }
                tokio::time::sleep(retry_backoff(attempt)).await;
            }
        }
    }
}

/// After an aborted batch: the processors of `partitions` are built anew
/// (their in-memory state may hold the aborted batch) and their inputs go
/// back to the stored offsets.
fn rewind(consumer: &StreamConsumer<TaskContext>, partitions: impl Iterator<Item = i32>) {
    let ctx = consumer.context();
    let mut parts = ctx.parts();
    for p in partitions {
        let Some(part) = parts.get_mut(&p) else {
            continue;
        };
        part.processor = (ctx.def.build)();
        for topic in &ctx.def.inputs {
            let offset = part
                .next
                .get(topic)
                .map_or(Offset::Beginning, |&o| Offset::Offset(o));
            if let Err(e) = consumer.seek(topic, p, offset, Duration::from_secs(10)) {
                debug!(partition = p, error = %e, "seek after an aborted batch");
            }
        }
    }
}

/// At-least-once delivery: sends the records until every one is
/// acknowledged, retrying while the brokers do not answer.
async fn send_until_acknowledged(
    publisher: &Publisher,
    records: &[Outgoing<'_>],
    metrics: &TaskMetrics,
) -> Result<crate::publish::Acked, StreamError> {
    // While the brokers do not answer, the same records are sent again
    // (identical: consumers de-duplicate by id) until they are
    // acknowledged; the processor is not run again, and nothing is written
    // meanwhile.
    let mut attempt: u32 = 0;
    loop {
        match publisher.send(records).await {
            Ok(acked) => {
                if attempt > 0 {
                    info!(
                        attempts = attempt + 1,
                        "outputs acknowledged after retrying"
                    );
                }
                return Ok(acked);
            }
            Err(e) if e.is_transient() => {
                attempt += 1;
                metrics.delivery_retry();
                if attempt == 1 {
                    warn!(
                        records = records.len(),
                        error = %e,
                        "outputs not acknowledged; sending them again until the brokers answer (state not written meanwhile)"
                    );
                }
                tokio::time::sleep(retry_backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Metrics, counters and the batch's log lines.
fn report(
    ctx: &TaskContext,
    outcome: &BatchOutcome,
    records: usize,
    started: Instant,
    received_at_ms: i64,
) {
    let metrics = &ctx.metrics;
    let stats = &ctx.stats;
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
    // Committed (or acknowledged) now: the end-to-end lag of the public
    // outputs, from their origin.
    metrics.end_to_end(
        now_ms(),
        outcome
            .outputs
            .iter()
            .filter(|o| PUBLIC_OUTPUTS.contains(&o.topic.as_str()))
            .filter_map(|o| Some((o.topic.as_str(), o.timestamp_ms?))),
    );
    for (what, kind, n) in &outcome.emitted {
        match what {
            Emitted::Exposure => metrics.exposures(kind, *n),
            Emitted::ExposureClass => metrics.exposure_classes(kind, *n),
            Emitted::ClusterAlert => metrics.cluster_alerts(kind, *n),
        }
    }
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.records_in.fetch_add(
        u64::try_from(records).unwrap_or(u64::MAX),
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
        records,
        outputs = produced,
        dead_letters = dead_total,
        "batch committed"
    );
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

/// How long a stop waits for the batch in hand to be committed before
/// giving it up (to be replayed after the restart).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Refreshes the state gauges: each store summed over the partitions
/// owned.
fn state_gauges(ctx: &TaskContext) {
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for part in ctx.parts().values() {
        match part.store.stats() {
            Ok(all) => {
                for s in all {
                    let t = totals.entry(s.store).or_default();
                    t.0 += s.approx_bytes;
                    t.1 += s.approx_keys;
                }
            }
            Err(e) => debug!(error = %e, "state statistics unavailable"),
        }
    }
    for store in &ctx.def.stores {
        let (bytes, keys) = totals.get(*store).copied().unwrap_or_default();
        ctx.metrics.state(store, bytes, keys);
    }
}

/// A consumed Kafka message, as the engine reads it: with the single-object
/// frame its Confluent frame became, or the reason it was refused, when
/// the registry step ([`normalize`]) decided so.
struct Message {
    m: OwnedMessage,
    reframed: Option<Vec<u8>>,
    rejection: Option<(&'static str, String)>,
    /// The provider's own dead-letter topic, when its header names one.
    copy_to: Option<Arc<str>>,
    /// The origin time its header carries, on a topic only the pipeline
    /// writes ([`ORIGIN_HEADER`]).
    origin_ms: Option<i64>,
}

impl Message {
    fn new(m: OwnedMessage, dead_letters: &ProviderDeadLetters) -> Self {
        Self {
            copy_to: dead_letters.route_message(&m),
            origin_ms: crate::read::origin_of(&m),
            m,
            reframed: None,
            rejection: None,
        }
    }
}

impl epitrace_engine::Consumed for Message {
    fn topic(&self) -> &str {
        self.m.topic()
    }
    fn partition(&self) -> i32 {
        self.m.partition()
    }
    fn offset(&self) -> i64 {
        self.m.offset()
    }
    fn key(&self) -> Option<&[u8]> {
        self.m.key()
    }
    fn payload(&self) -> Option<&[u8]> {
        self.reframed.as_deref().or_else(|| self.m.payload())
    }
    /// The record's origin time: the header's on the pipeline's own
    /// topics, else its append time. Processors stamp their outputs with
    /// it, and the task writes it into the outputs' origin header.
    fn timestamp_ms(&self) -> Option<i64> {
        self.origin_ms.or_else(|| self.m.timestamp().to_millis())
    }
    fn rejection(&self) -> Option<(&'static str, &str)> {
        self.rejection.as_ref().map(|(r, d)| (*r, d.as_str()))
    }
    fn original_payload(&self) -> Option<&[u8]> {
        self.m.payload()
    }
    fn dead_letter_copy(&self) -> Option<&str> {
        self.copy_to.as_deref()
    }
}

/// The registry step of a batch (see [`crate::registry`]): each Confluent
/// frame becomes the single-object frame of its record, or is refused with
/// a reason; a record whose schema id the registry must be asked for and
/// does not answer is held back with the rest of its topic-partition, which
/// is read again from it (seek). Returns how many records were held back.
async fn normalize(
    consumer: &StreamConsumer<TaskContext>,
    registry: &Registry,
    batch: &mut Vec<Message>,
) -> u64 {
    let ids: std::collections::BTreeSet<u32> = batch
        .iter()
        .filter_map(|m| m.m.payload().and_then(confluent_id))
        .collect();
    if ids.is_empty() {
        return 0;
    }
    registry.fetch(ids).await;
    let mut held: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for msg in batch.iter_mut() {
        let tp = (msg.m.topic().to_owned(), msg.m.partition());
        if held.contains_key(&tp) {
            continue;
        }
        match registry.normalize(msg.m.topic(), msg.m.payload()) {
            Normalized::Unchanged => {}
            Normalized::Reframed(frame) => msg.reframed = Some(frame),
            Normalized::Rejected(reason, detail) => msg.rejection = Some((reason, detail)),
            Normalized::Wait => {
                held.insert(tp, msg.m.offset());
            }
        }
    }
    if held.is_empty() {
        return 0;
    }
    let before = batch.len();
    batch.retain(|msg| {
        held.get(&(msg.m.topic().to_owned(), msg.m.partition()))
            .is_none_or(|&from| msg.m.offset() < from)
    });
    for ((topic, partition), from) in &held {
        if let Err(e) = consumer.seek(
            topic,
            *partition,
            Offset::Offset(*from),
            Duration::from_secs(10),
        ) {
            debug!(partition, error = %e, "seek back to a record waiting for the registry");
        }
    }
    u64::try_from(before - batch.len()).unwrap_or(u64::MAX)
}
