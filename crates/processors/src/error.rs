//! The processors crate's error type.

use thiserror::Error;

/// Why a pipeline could not start or stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A state store could not be opened.
    #[error("state: {0}")]
    State(#[from] epitrace_state::StateError),
    /// A processor failed.
    #[error("processor {processor}: {source}")]
    Processor {
        /// Which.
        processor: &'static str,
        /// Why.
        #[source]
        source: epitrace_stream::StreamError,
    },
    /// A processor task panicked (a bug).
    #[error("processor {processor} panicked: {reason}")]
    Panicked {
        /// Which.
        processor: &'static str,
        /// The panic message.
        reason: String,
    },
}
