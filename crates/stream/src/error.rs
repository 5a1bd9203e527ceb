//! The stream crate's error type.

use thiserror::Error;

/// Errors of Kafka I/O. Any of them stops the task *without* writing the
/// batch's state, so a restart replays the batch.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The Kafka client failed (configuration, broker, protocol).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A produced record was not acknowledged.
    #[error("delivery to {topic} failed: {reason}")]
    Delivery {
        /// Destination topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// The state store failed.
    #[error("state: {0}")]
    State(#[from] epitrace_state::StateError),
    /// A processor hit an error that is not about one bad record (a bug or
    /// corrupt state): the task stops.
    #[error("processor {processor}: {reason}")]
    Processor {
        /// Which processor.
        processor: &'static str,
        /// What happened.
        reason: String,
    },
    /// Rebalancing could not restore the assigned partitions' offsets.
    #[error("rebalance: {0}")]
    Rebalance(String),
    /// Topic administration failed.
    #[error("admin: {0}")]
    Admin(String),
    /// An operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
}
