//! The stream crate's error type.

use thiserror::Error;

/// Errors of Kafka I/O. A transient one ([`StreamError::is_transient`]) is
/// retried by the task; any other stops the task *without* writing the
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
        /// Whether it may succeed later (the brokers were unreachable or
        /// slow), as opposed to a refusal (authorisation, record too large,
        /// unknown topic, a fatal producer error).
        transient: bool,
    },
    /// The state store failed.
    #[error("state: {0}")]
    State(#[from] epitrace_state::StateError),
    /// The engine failed a batch (a fatal processor error, the store).
    #[error(transparent)]
    Engine(#[from] epitrace_engine::EngineError),
    /// Rebalancing could not restore the assigned partitions' offsets.
    #[error("rebalance: {0}")]
    Rebalance(String),
    /// Topic administration failed.
    #[error("admin: {0}")]
    Admin(String),
    /// No broker answered: names the brokers tried and how to start one.
    #[error("no Kafka broker answered at {brokers} within {} s: {}", waited.as_secs(), crate::link::UNREACHABLE_HINT)]
    Unreachable {
        /// The bootstrap servers tried.
        brokers: String,
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// The Schema Registry refused what epitrace needs of it (e.g. the id
    /// of an output schema under Confluent output framing).
    #[error("schema registry: {0}")]
    Registry(String),
    /// An operation did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl StreamError {
    /// Whether retrying the same operation later may succeed: the brokers
    /// were unreachable or did not answer in time.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        use epitrace_ops::LinkErrorKind as K;
        match self {
            Self::Timeout(_) | Self::Unreachable { .. } => true,
            Self::Delivery { transient, .. } => *transient,
            Self::Kafka(e) => matches!(
                crate::link::classify(e),
                K::AllBrokersDown | K::Transport | K::Resolve | K::Timeout
            ),
            _ => false,
        }
    }

    /// Whether a transactional operation failed because another producer
    /// with the same transactional id took over (this one is fenced) or a
    /// transaction is still being completed: starting again with a new
    /// producer may succeed at once.
    #[must_use]
    pub fn is_txn_contention(&self) -> bool {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};
        let fenced = |c: C| {
            matches!(
                c,
                C::Fenced | C::ProducerFenced | C::InvalidProducerEpoch | C::ConcurrentTransactions
            )
        };
        match self {
            // A fatal transactional error leaves the producer unusable:
            // a new one (which fences the old) is the way on.
            Self::Kafka(KafkaError::Transaction(t)) => {
                t.is_retriable() || t.txn_requires_abort() || t.is_fatal() || fenced(t.code())
            }
            Self::Kafka(e) => e.rdkafka_error_code().is_some_and(fenced),
            Self::Delivery { reason, .. } => {
                // A fenced producer purges its queue: the records of the
                // failed transaction report `PurgeQueue`.
                let r = reason.to_ascii_lowercase();
                r.contains("fenced") || r.contains("epoch") || r.contains("purgequeue")
            }
            _ => false,
        }
    }
}
