//! # epitrace-engine
//!
//! The processing engine of epitrace, without Kafka: what a processor is,
//! what it reads and writes, and the one batch step that production
//! (`epitrace-stream`'s Kafka task) and the tests (the [`driver`]) both run.
//! Like Kafka Streams' split between the stream thread and its
//! `TopologyTestDriver`, the logic of a batch lives here once; the Kafka
//! task only consumes, publishes and commits around it.
//!
//! ## Layout
//!
//! - [`record`]: [`InputRecord`] (a consumed record as a processor sees
//!   it), [`OutputRecord`] (a record to produce), [`Emitted`].
//! - [`processor`]: the [`Processor`] trait and [`ProcessError`].
//! - [`batch`]: [`run_batch`], which processes a batch against a
//!   read-your-writes transaction over the state store and returns the
//!   outputs (dead letters included), the state to write together with the
//!   next input offsets, and the batch's counts — no I/O but store reads.
//! - [`partition`]: the Java client's murmur2 partitioner (co-partitioning
//!   across producers depends on it).
//! - [`driver`]: [`TopologyDriver`], every processor of a topology run in
//!   memory through [`run_batch`]: pipe records into any topic, read any
//!   topic, inspect any store, advance the wall clock.
//! - `error.rs`: [`EngineError`].

pub mod batch;
pub mod driver;
mod error;
pub mod partition;
pub mod processor;
pub mod record;

pub use batch::{BatchOutcome, run_batch};
pub use driver::TopologyDriver;
pub use error::EngineError;
pub use processor::{ProcessError, Processor};
pub use record::{Consumed, Emitted, InputRecord, OutputRecord};

/// The dead-letter topic (DESIGN §3).
pub const DEADLETTER_TOPIC: &str = epitrace_model::topics::DEADLETTER;
