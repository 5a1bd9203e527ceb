//! The one list of processors: name, inputs, outputs, stores (with their
//! layout and retention) and constructor. `epitrace run`, `topics create`,
//! the CLI help and the [`TopologyDriver`] all derive from it, so a new
//! processor is added in one place (and [`check`] refuses a topology where
//! an input is neither an external feed nor some processor's output).

use epitrace_engine::{Processor, TopologyDriver};
use epitrace_state::MemStore;

use crate::case_router::{self, CaseRouter};
use crate::cluster_detector::{self, ClusterDetector};
use crate::cluster_router::ClusterRouter;
use crate::codecs::{KeyCodec, ValueCodec};
use crate::error::PipelineError;
use crate::exposure_aggregator::{self, ExposureAggregator};
use crate::presence_join::{self, PresenceJoin};
use crate::run::{PipelineConfig, ProcessorKind};
use crate::segmenter::{self, Segmenter};
use crate::topology::{
    APPROVALS, CANDIDATES, CARD, CASES, CASES_BY_SUBJECT, CHECKIN, CLUSTER_EVIDENCE, CLUSTERS,
    DEADLETTER, EXPOSURES, INTERVIEWS, SEGMENTS, TELECOM, TIMELINES, topic_specs,
};

/// How a store's entries leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Whole time buckets older than `topology.retention` are dropped (by
    /// event time).
    TimeBuckets,
    /// Every batch sweeps a bounded slice of the store and deletes the
    /// entries whose event time is older than `topology.retention` behind
    /// the stream time.
    Sweep,
    /// A case's entries go with the case, once its infectious period ended
    /// more than `topology.retention` behind the stream time (an open case
    /// is kept).
    ByCase,
    /// A cluster's entries go once every case of its linked group ended
    /// more than `topology.retention` behind the stream time (see
    /// `ClusterGraph::expire`).
    ByGroup,
}

/// A store a processor declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSpec {
    /// The store's name (a RocksDB column family).
    pub name: &'static str,
    /// Key layout, and whose data a key names.
    pub key: KeyCodec,
    /// Value encoding.
    pub value: ValueCodec,
    /// How entries leave it.
    pub retention: Retention,
}

/// A processor as the pipeline knows it.
#[derive(Debug, Clone, Copy)]
pub struct ProcessorSpec {
    /// Which processor.
    pub kind: ProcessorKind,
    /// One line for the CLI help.
    pub about: &'static str,
    /// Topics it reads (co-partitioned when more than one).
    pub inputs: &'static [&'static str],
    /// Topics it writes (besides `pipeline.deadletter`, which every
    /// processor may write).
    pub outputs: &'static [&'static str],
    /// Its stores.
    pub stores: &'static [StoreSpec],
    /// Builds it for a configuration (assumed validated).
    pub build: fn(&PipelineConfig) -> Box<dyn Processor>,
}

impl ProcessorSpec {
    /// The processor's name (groups, state folders, logs).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The names of its stores, in declaration order.
    #[must_use]
    pub fn store_names(&self) -> Vec<&'static str> {
        self.stores.iter().map(|s| s.name).collect()
    }
}

/// Topics written by providers and health authorities (the interview
/// entries through the investigators' API), not by processors.
pub const EXTERNAL_INPUTS: &[&str] = &[TELECOM, CARD, CHECKIN, CASES, APPROVALS, INTERVIEWS];

const fn store(
    name: &'static str,
    key: KeyCodec,
    value: ValueCodec,
    retention: Retention,
) -> StoreSpec {
    StoreSpec {
        name,
        key,
        value,
        retention,
    }
}

/// Every processor, in pipeline order.
pub const REGISTRY: &[ProcessorSpec] = &[
    ProcessorSpec {
        kind: ProcessorKind::CaseRouter,
        about: "cases.events + cases.approvals + cases.interviews → cases.by-subject (a case's subjects with its approvals, keyed by subject) and presence.segments (interview places as evidence segments)",
        inputs: &[CASES, APPROVALS, INTERVIEWS],
        outputs: &[CASES_BY_SUBJECT, SEGMENTS],
        stores: &[
            store(
                case_router::CASE_STATE,
                KeyCodec::Case,
                ValueCodec::CaseEvent,
                Retention::ByCase,
            ),
            store(
                case_router::APPROVAL_STATE,
                KeyCodec::CaseApproval,
                ValueCodec::Approval,
                Retention::ByCase,
            ),
            store(
                case_router::INTERVIEW_STATE,
                KeyCodec::CaseEntry,
                ValueCodec::InterviewEntry,
                Retention::ByCase,
            ),
        ],
        build: |cfg| {
            Box::new(
                CaseRouter::new(&cfg.tracing).with_retention(cfg.topology.retention.as_millis()),
            )
        },
    },
    ProcessorSpec {
        kind: ProcessorKind::Segmenter,
        about: "feeds + cases.by-subject → presence.segments and tracing.timelines",
        inputs: &[TELECOM, CARD, CHECKIN, CASES_BY_SUBJECT],
        outputs: &[SEGMENTS, TIMELINES],
        stores: &[
            store(
                segmenter::TRAILS,
                KeyCodec::SubjectFeed,
                ValueCodec::SubjectTrail,
                Retention::Sweep,
            ),
            store(
                segmenter::SUBJECT_SEGMENTS,
                KeyCodec::SegmentId,
                ValueCodec::Segment,
                Retention::Sweep,
            ),
            store(
                segmenter::TAGS,
                KeyCodec::SubjectCase,
                ValueCodec::SubjectCase,
                Retention::Sweep,
            ),
        ],
        build: |cfg| {
            Box::new(
                Segmenter::new(&cfg.tracing).with_retention(cfg.topology.retention.as_millis()),
            )
        },
    },
    ProcessorSpec {
        kind: ProcessorKind::PresenceJoin,
        about: "presence.segments → exposure.candidates (patients × population by cell and time)",
        inputs: &[SEGMENTS],
        outputs: &[CANDIDATES],
        stores: &[
            store(
                presence_join::BY_ID,
                KeyCodec::SegmentId,
                ValueCodec::IndexedSegment,
                Retention::Sweep,
            ),
            store(
                presence_join::PRESENCE,
                KeyCodec::BucketCellSegment,
                ValueCodec::Empty,
                Retention::TimeBuckets,
            ),
            store(
                presence_join::PATIENTS,
                KeyCodec::BucketCellSegment,
                ValueCodec::Empty,
                Retention::TimeBuckets,
            ),
        ],
        build: |cfg| {
            Box::new(PresenceJoin::new(
                &cfg.tracing,
                cfg.topology.retention.as_millis(),
            ))
        },
    },
    ProcessorSpec {
        kind: ProcessorKind::ExposureAggregator,
        about: "exposure.candidates + cases.events + cases.approvals → tracing.exposures (the exposure rule, gated by approvals)",
        inputs: &[CANDIDATES, CASES, APPROVALS],
        outputs: &[EXPOSURES],
        stores: &[
            store(
                exposure_aggregator::LEDGERS,
                KeyCodec::CaseContact,
                ValueCodec::ContactLedger,
                Retention::ByCase,
            ),
            store(
                exposure_aggregator::EMITTED,
                KeyCodec::CaseContact,
                ValueCodec::Exposure,
                Retention::ByCase,
            ),
            store(
                exposure_aggregator::CASE_STATE,
                KeyCodec::Case,
                ValueCodec::CaseEvent,
                Retention::ByCase,
            ),
            store(
                exposure_aggregator::APPROVAL_STATE,
                KeyCodec::CaseApproval,
                ValueCodec::Approval,
                Retention::ByCase,
            ),
            store(
                exposure_aggregator::GATES,
                KeyCodec::Case,
                ValueCodec::Gate,
                Retention::ByCase,
            ),
        ],
        build: |cfg| {
            Box::new(
                ExposureAggregator::new(&cfg.tracing)
                    .with_retention(cfg.topology.retention.as_millis()),
            )
        },
    },
    ProcessorSpec {
        kind: ProcessorKind::ClusterRouter,
        about: "tracing.timelines + tracing.exposures + cases.events → clusters.evidence (one partition)",
        inputs: &[TIMELINES, EXPOSURES, CASES],
        outputs: &[CLUSTER_EVIDENCE],
        stores: &[],
        build: |_| Box::<ClusterRouter>::default(),
    },
    ProcessorSpec {
        kind: ProcessorKind::ClusterDetector,
        about: "clusters.evidence → tracing.clusters (the case graph; one instance does the work)",
        inputs: &[CLUSTER_EVIDENCE],
        outputs: &[CLUSTERS],
        stores: &[
            store(
                cluster_detector::CASE_STATE,
                KeyCodec::Case,
                ValueCodec::CaseEvent,
                Retention::ByGroup,
            ),
            store(
                cluster_detector::VISITS,
                KeyCodec::CaseVisit,
                ValueCodec::Visit,
                Retention::ByGroup,
            ),
            store(
                cluster_detector::EXPOSURE_STATE,
                KeyCodec::CaseContact,
                ValueCodec::Exposure,
                Retention::ByGroup,
            ),
            store(
                cluster_detector::PUBLISHED,
                KeyCodec::Cluster,
                ValueCodec::ClusterAlert,
                Retention::ByGroup,
            ),
        ],
        build: |cfg| {
            Box::new(
                ClusterDetector::new(&cfg.tracing.cluster)
                    .with_retention(cfg.topology.retention.as_millis()),
            )
        },
    },
];

/// The spec of one processor.
#[must_use]
pub fn spec(kind: ProcessorKind) -> &'static ProcessorSpec {
    // Every kind has exactly one entry (checked by a test); the fallback is
    // unreachable.
    REGISTRY
        .iter()
        .find(|s| s.kind == kind)
        .unwrap_or(&REGISTRY[0])
}

/// Checks the registry as a topology: names and kinds unique, every input
/// an external feed or some processor's output, every output read by
/// someone or a final output of the pipeline.
///
/// # Errors
/// [`PipelineError::Config`] naming the first problem.
pub fn check() -> Result<(), PipelineError> {
    const FINAL: &[&str] = &[TIMELINES, EXPOSURES, CLUSTERS, DEADLETTER];
    for (i, a) in REGISTRY.iter().enumerate() {
        if REGISTRY[..i].iter().any(|b| b.kind == a.kind) {
            return Err(PipelineError::Config(format!(
                "processor {} is registered twice",
                a.name()
            )));
        }
        for input in a.inputs {
            let produced = REGISTRY.iter().any(|p| p.outputs.contains(input));
            if !produced && !EXTERNAL_INPUTS.contains(input) {
                return Err(PipelineError::Config(format!(
                    "{} reads {input}, which is neither an external feed nor any processor's output",
                    a.name()
                )));
            }
        }
        for output in a.outputs {
            let read = REGISTRY.iter().any(|p| p.inputs.contains(output));
            if !read && !FINAL.contains(output) {
                return Err(PipelineError::Config(format!(
                    "{} writes {output}, which nothing reads",
                    a.name()
                )));
            }
        }
    }
    Ok(())
}

/// The whole topology in memory (see [`TopologyDriver`]): every registered
/// processor with an empty in-memory store of the stores it declares, every
/// topic with its configured partition count, the wall clock at
/// `wall_clock_ms`.
///
/// # Errors
/// [`PipelineError::Config`] for an invalid tracing configuration,
/// [`PipelineError::State`] for an invalid store declaration.
pub fn test_driver(
    cfg: &PipelineConfig,
    wall_clock_ms: i64,
) -> Result<TopologyDriver, PipelineError> {
    cfg.tracing
        .validate()
        .map_err(|e| PipelineError::Config(e.to_string()))?;
    let mut driver = TopologyDriver::new(wall_clock_ms, cfg.topology.partitions);
    for t in topic_specs(&cfg.topology) {
        driver = driver.topic(&t.name, t.partitions);
    }
    for spec in REGISTRY {
        let store = MemStore::new(&spec.store_names())?;
        driver = driver.processor((spec.build)(cfg), Box::new(store));
    }
    Ok(driver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_once_and_the_topology_is_closed() {
        check().unwrap();
        for kind in ProcessorKind::ALL {
            assert_eq!(
                REGISTRY.iter().filter(|s| s.kind == kind).count(),
                1,
                "{kind}"
            );
            assert_eq!(spec(kind).kind, kind);
        }
    }

    #[test]
    fn each_processor_reads_what_its_spec_says() {
        let cfg = PipelineConfig::default();
        for spec in REGISTRY {
            let p = (spec.build)(&cfg);
            assert_eq!(p.name(), spec.name());
            let mut inputs = p.inputs();
            inputs.sort();
            let mut declared: Vec<String> = spec.inputs.iter().map(|s| (*s).to_owned()).collect();
            declared.sort();
            assert_eq!(inputs, declared, "{}", spec.name());
        }
    }

    #[test]
    fn every_topic_a_processor_touches_is_created() {
        let specs = topic_specs(&crate::topology::TopologyConfig::default());
        for spec in REGISTRY {
            for t in spec.inputs.iter().chain(spec.outputs) {
                assert!(specs.iter().any(|s| s.name == *t), "{t} is not created");
            }
        }
    }
}
