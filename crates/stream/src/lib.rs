//! # epitrace-stream
//!
//! All Kafka I/O of epitrace, and the only crate that depends on rdkafka
//! (DESIGN §5, §6).
//!
//! ## Layout
//!
//! - [`config`]: [`KafkaConfig`], the client settings every processor shares.
//! - [`task`]: [`run_task`], the Kafka loop around the engine's batch step
//!   (`epitrace_engine::run_batch`, re-exported here with the [`Processor`]
//!   trait): consume a batch, run it, produce the outputs, and only then
//!   write the state together with the input offsets.
//! - [`publish`]: [`Publisher`], an idempotent producer that sends a batch
//!   and waits until the broker acknowledged every record.
//! - [`admin`]: idempotent topic creation.
//! - [`read`]: reading a topic to its current end (CLI, tests, demo).
//! - [`link`]: whether the brokers answer — client contexts that count
//!   librdkafka's errors on the process's
//!   [`KafkaLink`](epitrace_ops::KafkaLink) instead of logging each retry,
//!   the watcher that logs one summary line per interval and drives
//!   readiness, and the probe a CLI command runs before it needs Kafka.
//! - [`mock`]: librdkafka's in-process mock cluster, for the zero-install
//!   demo and fault-injection tests — never the only proof.
//!
//! ## The delivery rule
//!
//! Like rust-rdkafka's `at_least_once` example, but with the offsets kept in
//! the state store rather than in Kafka:
//!
//! 1. a batch of input records is processed; state changes are staged in a
//!    [`Txn`](epitrace_state::Txn), outputs collected;
//! 2. the outputs (and dead letters) are produced by an idempotent producer
//!    (`acks=all`) and **every delivery is awaited**;
//! 3. then the staged state *and the next input offsets* are written to the
//!    store in one atomic batch.
//!
//! While the brokers do not acknowledge step 2 (an outage, a slow
//! cluster), the task keeps the batch and sends the same outputs again with
//! a backoff — it never writes the state first and never runs the processor
//! twice on the batch — so an outage of any length costs duplicates
//! (identical by id), never data and never the task.
//!
//! A crash before 3 replays the batch from the stored offsets against the
//! stored state, producing identical outputs (their ids and timestamps are
//! deterministic), which consumers de-duplicate by id: nothing is lost,
//! nothing is half-applied. On (re)assignment a partition resumes from the
//! offset in the store, not from Kafka's committed offset (which is
//! committed too, after the state, for lag monitoring only).
//!
//! A record that cannot be decoded or is invalid never stops a partition: it
//! is produced to `pipeline.deadletter` with a reason code and its
//! topic/partition/offset (step 2), counted, and its offset advances like any
//! other.

pub mod admin;
pub mod config;
pub mod error;
pub mod link;
pub mod mock;
pub mod publish;
pub mod read;
pub mod task;

pub use config::KafkaConfig;
pub use error::StreamError;
pub use publish::{OutputRecord, Publisher};
pub use task::{Emitted, InputRecord, ProcessError, Processor, TaskStats, run_task};
