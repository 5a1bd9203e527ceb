//! [`OpsError`].

/// Errors of the operations endpoint and metrics.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A metric could not be defined or encoded.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP endpoint could not listen on its address.
    #[error("cannot serve metrics on {addr}: {reason}")]
    Bind {
        /// The configured address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A request to an endpoint failed (the health probe).
    #[error("{url}: {reason}")]
    Request {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
}
