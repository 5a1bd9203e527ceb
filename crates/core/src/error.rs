//! The core crate's error type.

use thiserror::Error;

/// Errors of the pure tracing logic: configuration and corrupt keys. The
/// algorithms themselves are total: given valid inputs they cannot fail.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// A configuration value that is out of range or inconsistent.
    #[error("invalid configuration {field}: {reason}")]
    InvalidConfig {
        /// Dotted path of the setting, e.g. `segment.max_gap`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A duration string that does not parse.
    #[error("invalid duration {text:?}: {reason}")]
    InvalidDuration {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A stored state value that does not decode (corrupt or from an
    /// unknown format version).
    #[error("corrupt {what} state: {reason}")]
    CorruptState {
        /// Which kind of value.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Bytes that do not decode to a cell key (corrupt state).
    #[error("{0:#x} is not a valid cell key")]
    InvalidCellKey(u64),
}
