//! The engine's error type.

use thiserror::Error;

/// Errors of the engine. Any of them means the batch must not be written:
/// a restart replays it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A processor hit an error that is not about one bad record (a bug or
    /// corrupt state).
    #[error("processor {processor}: {reason}")]
    Processor {
        /// Which processor.
        processor: &'static str,
        /// What happened.
        reason: String,
    },
    /// The state store failed.
    #[error("state: {0}")]
    State(#[from] epitrace_state::StateError),
    /// A topology is inconsistent (e.g. the test driver was asked for a
    /// topic or processor it does not have).
    #[error("topology: {0}")]
    Topology(String),
}
