//! The API crate's error type.

use std::path::PathBuf;

/// What can go wrong starting or running the API, or managing its users.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The users file cannot be read, parsed or written.
    #[error("users file {}: {reason}", path.display())]
    UsersFile {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a password or a hash).
        reason: String,
    },
    /// A user operation was refused (unknown name, duplicate, weak
    /// password, a role without its region or authority).
    #[error("{0}")]
    User(String),
    /// The TLS certificate or key cannot be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The configuration is invalid.
    #[error("[api] {0}")]
    Config(String),
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Kafka.
    #[error(transparent)]
    Stream(#[from] epitrace_stream::StreamError),
    /// The audit log.
    #[error(transparent)]
    Tool(#[from] epitrace_tools::ToolError),
    /// A record did not validate.
    #[error(transparent)]
    Model(#[from] epitrace_model::ModelError),
}
