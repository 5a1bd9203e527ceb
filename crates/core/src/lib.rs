//! # epitrace-core
//!
//! The pure logic of contact tracing: no tokio, no rdkafka, no RocksDB, no
//! wall clock. Every function is a deterministic transformation of its
//! arguments; state is passed in and out as plain values, so the stream
//! processors (which load and store that state in RocksDB) and the in-memory
//! tests drive exactly the same code.
//!
//! ## Layout
//!
//! - [`config`]: [`TracingConfig`], every threshold with its default.
//! - [`duration`]: [`Span`], durations as operators write them (`"30m"`).
//! - [`footprint`]: accuracy radius → H3 resolution → the observation's cell.
//! - [`cellkey`]: [`CellKey`], the cell order in which a cell and its
//!   descendants form one contiguous range.
//! - [`observation`]: [`Observation`], one sighting reduced to time,
//!   footprint, source and implied stay.
//! - [`segment`]: [`SubjectTrail`], the per-subject state machine turning
//!   observations into dwell segments, exact within a grace period.
//! - [`transit`]: co-travel: the path between two moving GPS fixes sampled
//!   once a minute into ticks, segmented in a stream of their own.
//! - [`ingest`]: [`Ingest`], feed records → observations; case windows.
//! - [`interval`]: half-open intervals, union, measure, sliding-window peak.
//! - [`join`]: time buckets, probes over cell keys, the overlap of a case's
//!   segment with a contact's.
//! - [`exposure`]: the exposure rule over a [`ContactLedger`] of overlaps.
//! - [`cluster`]: the cluster graph (cases linked by shared places and
//!   exposure chains), the outbreak events in it and the alerts that
//!   publish them.
//! - [`ids`]: deterministic ids of output records.
//! - [`codec`]: versioned binary encodings of state values (trails,
//!   segments, ledgers) for the processors' stores.
//! - `testkit` (feature `testkit`): the brute-force oracle and an in-memory
//!   pipeline wiring all of the above, for property tests.
//!
//! ## Data flow
//!
//! ```text
//! records ─► Observation ─► SubjectTrail::observe ─► SegmentChange
//!   (footprint: accuracy → cell)        │
//!                                       ▼
//!      index by (bucket, CellKey) ─► Probe ─► overlap ─► ContactLedger ─► Assessment
//! ```

pub mod approval;
pub mod cellkey;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod duration;
pub mod error;
pub mod exposure;
pub mod footprint;
pub mod ids;
pub mod ingest;
pub mod interval;
pub mod interview;
pub mod join;
pub mod likelihood;
pub mod observation;
pub mod segment;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod timeline;
pub mod transit;

pub use approval::{ApprovalConfig, Category, Gate, Held};
pub use cellkey::CellKey;
pub use cluster::{CaseFacts, ClusterGraph, Expired, PlaceTime};
pub use config::{ClusterConfig, TracingConfig};
pub use duration::Span;
pub use error::CoreError;
pub use exposure::{Assessment, ContactLedger, Overlap, PairKey};
pub use footprint::{FootprintCache, Footprinter};
pub use ingest::Ingest;
pub use interval::Interval;
pub use likelihood::{Basis, LikelihoodConfig};
pub use observation::{Observation, Source, SourceSet, Stream};
pub use segment::{ChangeKind, Lane, Segment, SegmentChange, SegmentKey, SubjectTrail};
