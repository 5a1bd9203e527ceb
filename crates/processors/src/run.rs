//! Running processors: one consumer group per processor, shared by every
//! instance of the pipeline; on this instance one RocksDB per processor
//! and owned partition (`<state_dir>/<processor>/<partition>`), restored
//! from the processor's changelog; all stopped together.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use epitrace_core::TracingConfig;
use epitrace_ops::{ApiConfig, OpsConfig, Telemetry};
use epitrace_state::StoreOptions;
use epitrace_stream::task::TaskStats;
use epitrace_stream::{KafkaConfig, StreamError, TaskDef, run_task};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::error::PipelineError;
use crate::registry;
use crate::topology::TopologyConfig;

/// The processors of DESIGN §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessorKind {
    /// `cases.events` → `cases.by-subject`.
    CaseRouter,
    /// feeds + `cases.by-subject` → `presence.segments`.
    Segmenter,
    /// `presence.segments` → `exposure.candidates`.
    PresenceJoin,
    /// `exposure.candidates` + `cases.events` → `tracing.exposures`.
    ExposureAggregator,
    /// `tracing.timelines` + `tracing.exposures` + `cases.events` →
    /// `clusters.evidence`.
    ClusterRouter,
    /// `clusters.evidence` → `tracing.clusters`.
    ClusterDetector,
}

impl ProcessorKind {
    /// Every processor, in pipeline order.
    pub const ALL: [Self; 6] = [
        Self::CaseRouter,
        Self::Segmenter,
        Self::PresenceJoin,
        Self::ExposureAggregator,
        Self::ClusterRouter,
        Self::ClusterDetector,
    ];

    /// The name used for groups, state folders and logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::CaseRouter => "case-router",
            Self::Segmenter => "segmenter",
            Self::PresenceJoin => "presence-join",
            Self::ExposureAggregator => "exposure-aggregator",
            Self::ClusterRouter => "cluster-router",
            Self::ClusterDetector => "cluster-detector",
        }
    }
}

impl fmt::Display for ProcessorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProcessorKind {
    type Err = PipelineError;

    fn from_str(s: &str) -> Result<Self, PipelineError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| PipelineError::Config(format!(
                "unknown processor {s:?} (one of: case-router, segmenter, presence-join, exposure-aggregator, cluster-router, cluster-detector)"
            )))
    }
}

/// Everything a pipeline instance needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Kafka clients.
    pub kafka: KafkaConfig,
    /// Tracing thresholds.
    pub tracing: TracingConfig,
    /// Topic layout and retention.
    pub topology: TopologyConfig,
    /// RocksDB tuning.
    pub store: StoreOptions,
    /// Where this instance keeps its state: one RocksDB per processor and
    /// owned partition (`<state_dir>/<processor>/<partition>`), restored
    /// from the changelogs when missing or behind, plus this instance's id
    /// (`instance-id`). One running instance per folder. Default
    /// `./epitrace-state`.
    pub state_dir: PathBuf,
    /// The operations endpoint (`/metrics`, `/healthz`, `/readyz`).
    pub metrics: OpsConfig,
    /// What `epitrace produce` accepts from providers.
    pub feeds: FeedsConfig,
    /// The investigators' API (`epitrace serve`).
    pub api: ApiConfig,
}

/// What `epitrace produce` accepts from providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedsConfig {
    /// The values the `provider` (telecom) and `issuer` (card) columns may
    /// take: a value outside this list — e.g. a phone number put in the
    /// wrong column — refuses the row. Empty accepts any identifier.
    /// Default: the simulator's providers (`telco-a`, `telco-b`,
    /// `telco-c`, `card-a`, `card-b`); set your own.
    pub providers: Vec<String>,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        Self {
            providers: ["telco-a", "telco-b", "telco-c", "card-a", "card-b"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            tracing: TracingConfig::default(),
            topology: TopologyConfig::default(),
            store: StoreOptions::default(),
            state_dir: PathBuf::from("epitrace-state"),
            metrics: OpsConfig::default(),
            feeds: FeedsConfig::default(),
            api: ApiConfig::default(),
        }
    }
}

/// A running set of processors.
#[derive(Debug)]
pub struct Pipeline {
    /// Held while running: one instance per state folder.
    _lock: std::fs::File,
    stop: watch::Sender<bool>,
    tasks: Vec<(ProcessorKind, JoinHandle<Result<(), StreamError>>)>,
    stats: BTreeMap<ProcessorKind, Arc<TaskStats>>,
}

impl Pipeline {
    /// Claims the state folder (one process per folder) and starts each
    /// processor's task on the current tokio runtime, reporting to
    /// `telemetry` (the caller serves it; see [`epitrace_ops::OpsServer`]).
    /// Each task first makes sure its changelog exists, then joins its
    /// consumer group; stores are opened and restored per partition as
    /// partitions are assigned.
    ///
    /// # Errors
    /// [`PipelineError::Config`] for an invalid tracing configuration or a
    /// state folder that cannot be claimed (in use by another process).
    pub fn start(
        cfg: &PipelineConfig,
        kinds: &[ProcessorKind],
        telemetry: &Telemetry,
    ) -> Result<Self, PipelineError> {
        cfg.tracing
            .validate()
            .map_err(|e| PipelineError::Config(e.to_string()))?;
        cfg.topology.validate().map_err(PipelineError::Config)?;
        let state_dir = if cfg.state_dir.as_os_str().is_empty() {
            PathBuf::from("epitrace-state")
        } else {
            cfg.state_dir.clone()
        };
        let (stop, rx) = watch::channel(false);
        // One watcher of the Kafka link for the whole process: a broker
        // outage is one summary line per interval, not an error per client
        // per retry, and readiness follows it.
        {
            let mut rx = rx.clone();
            tokio::spawn(epitrace_stream::link::watch(
                Arc::clone(&telemetry.kafka),
                Arc::clone(&telemetry.health),
                cfg.kafka.brokers.clone(),
                async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                },
            ));
        }
        let (lock, instance_id) = claim_state_dir(&state_dir)?;
        info!(brokers = %cfg.kafka.brokers, instance = %instance_id, guarantee = %cfg.kafka.processing_guarantee, "connecting to kafka");
        let mut tasks = Vec::new();
        let mut stats = BTreeMap::new();
        // One cache of registry schemas for every task of the process.
        let schema_registry = Arc::new(epitrace_stream::registry::Registry::new(
            &cfg.kafka.registry,
        ));
        let dead_letters = Arc::new(epitrace_stream::dead_letters::ProviderDeadLetters::new(
            &cfg.topology.dead_letter_providers,
        ));
        for &kind in kinds {
            let spec = registry::spec(kind);
            let task_stats = Arc::new(TaskStats::default());
            stats.insert(kind, Arc::clone(&task_stats));
            let mut rx = rx.clone();
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let kafka = cfg.kafka.clone();
            let built = cfg.clone();
            let def = TaskDef {
                name: kind.name(),
                inputs: spec.inputs.iter().map(|t| (*t).to_owned()).collect(),
                stores: spec.store_names(),
                build: Arc::new(move || (spec.build)(&built)),
                state_dir: state_dir.join(kind.name()),
                store_options: cfg.store.clone(),
                instance_id: instance_id.clone(),
                registry: Arc::clone(&schema_registry),
                dead_letters: Arc::clone(&dead_letters),
            };
            let replication = cfg.topology.replication;
            let delete_retention = cfg.topology.retention.as_millis();
            let t = telemetry.clone();
            let hooks = epitrace_stream::link::LinkHooks::new(Arc::clone(&telemetry.kafka));
            let health = telemetry.health.task(kind.name());
            let failed = health.clone();
            let handle = tokio::spawn(async move {
                tokio::pin!(shutdown);
                let ensured = epitrace_stream::changelog::ensure(
                    &kafka,
                    def.name,
                    &def.inputs,
                    replication,
                    delete_retention,
                    hooks,
                );
                tokio::select! {
                    r = ensured => if let Err(e) = r {
                        failed.set_failed();
                        return Err(e);
                    },
                    () = &mut shutdown => {
                        failed.set_stopped();
                        return Ok(());
                    }
                }
                run_task(def, &kafka, task_stats, &t, health, shutdown).await
            });
            info!(processor = kind.name(), "processor started");
            tasks.push((kind, handle));
        }
        Ok(Self {
            _lock: lock,
            stop,
            tasks,
            stats,
        })
    }

    /// The counters of each running processor.
    #[must_use]
    pub fn stats(&self) -> &BTreeMap<ProcessorKind, Arc<TaskStats>> {
        &self.stats
    }

    /// Asks every processor to finish its batch and stop, and waits.
    ///
    /// # Errors
    /// The first processor failure, if any.
    pub async fn stop(self) -> Result<(), PipelineError> {
        let _ = self.stop.send(true);
        Self::join(self.tasks).await
    }

    /// Runs until `shutdown` resolves (then stops gracefully) or a processor
    /// fails (then stops the others and returns its error).
    ///
    /// # Errors
    /// The first processor failure.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), PipelineError> {
        let Self {
            stop, tasks, _lock, ..
        } = self;
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<(
            ProcessorKind,
            Result<(), PipelineError>,
        )>(tasks.len().max(1));
        let mut waiting = Vec::new();
        for (kind, handle) in tasks {
            let tx = done_tx.clone();
            waiting.push(tokio::spawn(async move {
                let result = flatten(kind, handle.await);
                let _ = tx.send((kind, result)).await;
            }));
        }
        drop(done_tx);
        tokio::pin!(shutdown);
        let mut first_error = None;
        let mut remaining = waiting.len();
        tokio::select! {
            () = &mut shutdown => info!("shutdown requested"),
            Some((kind, result)) = done_rx.recv() => {
                remaining -= 1;
                if let Err(e) = result {
                    error!(processor = kind.name(), error = %e, "processor failed; stopping the others");
                    first_error = Some(e);
                }
            }
        }
        let _ = stop.send(true);
        while remaining > 0 {
            let Some((kind, result)) = done_rx.recv().await else {
                break;
            };
            remaining -= 1;
            if let Err(e) = result {
                error!(processor = kind.name(), error = %e, "processor failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn join(
        tasks: Vec<(ProcessorKind, JoinHandle<Result<(), StreamError>>)>,
    ) -> Result<(), PipelineError> {
        let mut first = None;
        for (kind, handle) in tasks {
            if let Err(e) = flatten(kind, handle.await) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Locks `state_dir` for this process (one running instance per folder:
/// two would share a transactional id and fence each other) and returns the
/// lock with this instance's id, created on first use.
fn claim_state_dir(state_dir: &std::path::Path) -> Result<(std::fs::File, String), PipelineError> {
    let io = |what: &str, e: std::io::Error| {
        PipelineError::Config(format!("{what} {}: {e}", state_dir.display()))
    };
    std::fs::create_dir_all(state_dir).map_err(|e| io("creating", e))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join("instance.lock"))
        .map_err(|e| io("opening the lock of", e))?;
    lock.try_lock().map_err(|_| {
        PipelineError::Config(format!(
            "state directory {} is in use by another epitrace process: give each instance its own state_dir",
            state_dir.display()
        ))
    })?;
    let id_file = state_dir.join("instance-id");
    let id = match std::fs::read_to_string(&id_file) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            h.write_u32(std::process::id());
            let id = format!("{:016x}", h.finish());
            std::fs::write(&id_file, &id).map_err(|e| io("writing the instance id in", e))?;
            id
        }
    };
    Ok((lock, id))
}

fn flatten(
    kind: ProcessorKind,
    joined: Result<Result<(), StreamError>, tokio::task::JoinError>,
) -> Result<(), PipelineError> {
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(PipelineError::Processor {
            processor: kind.name(),
            source: e,
        }),
        Err(e) => Err(PipelineError::Panicked {
            processor: kind.name(),
            reason: e.to_string(),
        }),
    }
}
