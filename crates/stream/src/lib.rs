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
//!   trait): one partition task (store + processor) per owned partition,
//!   restored from the changelog on assignment; consume a batch, run it,
//!   publish outputs and changelog records, commit.
//! - [`changelog`]: the compacted topic behind every processor's stores,
//!   its record layout and the restore.
//! - [`publish`]: [`Publisher`], an idempotent (optionally transactional)
//!   producer that sends a batch and waits until the broker acknowledged
//!   every record.
//! - [`admin`]: idempotent topic creation, purging, deletion.
//! - [`dead_letters`]: which provider's own dead-letter topic a feed
//!   record's dead letter is also copied to (its `epitrace.provider`
//!   header).
//! - [`read`]: reading a topic to its current end, and a group's pending
//!   records (CLI, tests, demo).
//! - [`link`]: whether the brokers answer — client contexts that count
//!   librdkafka's errors on the process's
//!   [`KafkaLink`](epitrace_ops::KafkaLink) instead of logging each retry,
//!   the watcher that logs one summary line per interval and drives
//!   readiness, and the probe a CLI command runs before it needs Kafka.
//! - [`mock`]: librdkafka's in-process mock cluster, for the zero-install
//!   demo and fault-injection tests — never the only proof.
//!
//! ## Delivery
//!
//! Each batch of input records is processed against a read-your-writes
//! [`Txn`](epitrace_state::Txn) per owned partition: state changes and the
//! next input offsets are staged, outputs and dead letters collected. The
//! staged writes become **changelog records** (see [`changelog`]). Then,
//! by [`Guarantee`]:
//!
//! - **`exactly_once`** (the default): one Kafka transaction holds the
//!   batch's outputs, dead letters, changelog records and the consumer's
//!   next offsets (sent with the group's metadata, so an instance whose
//!   partitions moved is fenced: its commit fails and the transaction is
//!   aborted). Only after the commit is the local store written (state,
//!   input offsets and the changelog position, one atomic write). A failed
//!   transaction is aborted, the processors of its partitions are rebuilt
//!   and their inputs rewound to the stored offsets: nothing of it was
//!   visible to `read_committed` consumers, and it is processed again. A
//!   crash leaves at most an open transaction, aborted by the broker after
//!   `transaction_timeout_ms` or by the instance's restart.
//! - **`at_least_once`**: outputs, dead letters and changelog records are
//!   sent by an idempotent producer and every acknowledgement awaited; then
//!   the local store is written; the group's offsets are committed for
//!   monitoring. A crash replays the batch: duplicates, identical to their
//!   originals (deterministic ids and timestamps), never a loss.
//!
//! While the brokers do not answer, the batch is kept and sent again with
//! a backoff (at least once) or its transaction retried after an abort
//! (exactly once): an outage of any length costs time, never data and
//! never the task.
//!
//! **Recovery is bounded**: a partition task resumes from its local
//! store's input offsets when the store is current, and its store resumes
//! from its changelog checkpoint when it is behind; a missing store is
//! rebuilt from the changelog. Inputs are never replayed from the start.
//!
//! A record that cannot be decoded or is invalid never stops a partition: it
//! is produced to `pipeline.deadletter` with a reason code and its
//! topic/partition/offset (inside the batch's transaction with
//! exactly-once: an aborted batch's dead letters are never seen, the
//! replayed batch's are), counted, and its offset advances like any other.

pub mod admin;
pub mod changelog;
pub mod config;
pub mod dead_letters;
pub mod error;
pub mod link;
pub mod mock;
pub mod publish;
pub mod read;
pub mod registry;
pub mod standby;
pub mod task;

pub use config::{Guarantee, KafkaConfig, Secret, SecurityConfig, SecurityProtocol};
pub use error::StreamError;
pub use publish::{Outgoing, OutputRecord, Publisher};
pub use task::{
    BuildProcessor, Emitted, InputRecord, ProcessError, Processor, TaskDef, TaskStats, run_task,
};
