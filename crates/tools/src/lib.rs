//! # epitrace-tools
//!
//! The programs around the pipeline, as libraries (the `epitrace` binary
//! wires them to flags; the end-to-end tests call them directly):
//!
//! - [`produce`]: what a provider runs — a feed file (CSV or JSON Lines) to
//!   Kafka, pseudonymised, validated row by row, rate-limited, with a
//!   summary;
//! - [`eval`]: precision, recall and F1 of the published exposures against a
//!   simulator's ground truth, by contact setting and by data source;
//! - [`query`]: what investigators read — the live clusters and a case's
//!   timeline, folded from the output topics' upserts;
//! - [`audit`]: the hash-chained `audit.log` writer that every read of
//!   personal data goes through first.

pub mod audit;
pub mod calibration;
pub mod eval;
pub mod produce;
pub mod purge;
pub mod query;
pub mod schemas;

/// Errors of the tools.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A feed file or key.
    #[error(transparent)]
    Feed(#[from] epitrace_feeds::FeedError),
    /// Kafka.
    #[error(transparent)]
    Stream(#[from] epitrace_stream::StreamError),
    /// A record that validated but would not encode (a bug).
    #[error(transparent)]
    Model(#[from] epitrace_model::ModelError),
    /// The audit log could not be appended to.
    #[error("audit: {reason}")]
    Audit {
        /// Why.
        reason: String,
    },
    /// The audit log's hash chain is broken at a record.
    #[error("audit.log: chain broken at seq {seq}: {reason}")]
    AuditChain {
        /// The first record that does not chain.
        seq: i64,
        /// How it breaks the chain.
        reason: &'static str,
    },
    /// The Schema Registry.
    #[error(transparent)]
    Registry(#[from] epitrace_stream::registry::RegistryError),
    /// A ground-truth file.
    #[error("{path}: {reason}")]
    Truth {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file of calibration examples could not be written or read.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The likelihood model could not be fitted.
    #[error("calibration: {reason}")]
    Calibration {
        /// Why.
        reason: String,
    },
}
