//! # epitrace-processors
//!
//! One module per stream processor of DESIGN §4, each a thin wiring of
//! `epitrace-core` logic over an `epitrace-state` transaction, driven by
//! `epitrace-stream`'s task loop. Each module's docs state its inputs and
//! keys, state and retention, outputs, time semantics and delivery
//! guarantee.
//!
//! ## Layout
//!
//! - [`case_router`]: `cases.events` → `cases.by-subject`.
//! - [`segmenter`]: feeds + case tags → `presence.segments`.
//! - [`presence_join`]: segments × segments by cell and time →
//!   `exposure.candidates`.
//! - [`exposure_aggregator`]: candidates + cases → `tracing.exposures`.
//! - [`cluster_router`]: timelines + exposures + cases → `clusters.evidence`
//!   (one partition).
//! - [`cluster_detector`]: evidence → `tracing.clusters`.
//! - [`registry`]: the one list of processors (name, inputs, outputs,
//!   stores, constructor) that `run`, `topics create`, the CLI help and the
//!   test driver derive from; [`registry::test_driver`] runs the whole
//!   topology in memory through the production batch step.
//! - [`topology`]: topic names and their creation settings.
//! - [`run`]: [`Pipeline`], running any subset of the processors in one
//!   process.
//!
//! ```text
//! feeds.* ─────────────┐
//! cases.events ─► case-router ─► cases.by-subject ─┤
//!                                                  ▼
//!                                              segmenter ─► presence.segments
//!                                                                  │
//!                                                            presence-join
//!                                                                  │
//! cases.events ─────────────► exposure-aggregator ◄─ exposure.candidates
//!                                      │
//!                               tracing.exposures
//!
//! tracing.timelines (segmenter) ─┐
//! tracing.exposures ─────────────┼─► cluster-router ─► clusters.evidence (1 partition)
//! cases.events ──────────────────┘                           │
//!                                                    cluster-detector ─► tracing.clusters
//! ```

pub mod case_router;
pub mod cluster_detector;
pub mod cluster_router;
pub mod codecs;
mod common;
pub mod error;
pub mod exposure_aggregator;
pub mod presence_join;
pub mod registry;
pub mod run;
pub mod segmenter;
pub mod topology;

pub use error::PipelineError;
pub use run::{Pipeline, PipelineConfig, ProcessorKind};
