//! The one error type of the state layer.

use thiserror::Error;

/// Everything that can go wrong reading or writing state.
///
/// Every variant except [`StateError::UnknownStore`] and
/// [`StateError::InvalidStoreName`] (programming errors in the processor
/// that declared its stores) describes an environment or data problem that a
/// processor cannot fix by retrying the same record: it should stop the
/// partition and surface the error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StateError {
    /// RocksDB reported an error (I/O, corruption detected by RocksDB,
    /// invalid argument); the message is RocksDB's own.
    #[error("rocksdb: {0}")]
    RocksDb(String),
    /// The store name was not declared when the state was opened.
    #[error("unknown store `{0}` (not declared at open)")]
    UnknownStore(String),
    /// A declared store name is empty or uses the reserved `__` prefix of
    /// the internal column families.
    #[error("invalid store name `{0}`: empty or reserved `__` prefix")]
    InvalidStoreName(String),
    /// Stored bytes do not have the shape this crate wrote.
    #[error("corrupt state in `{store}`: {reason}")]
    Corrupt {
        /// The store (or internal column family) holding the bad bytes.
        store: String,
        /// What was wrong with them.
        reason: String,
    },
    /// The state on disk was written with another format version; it must
    /// be migrated or rebuilt from the changelog, never read as is.
    #[error("state format version {found}, this build expects {expected}")]
    FormatVersion {
        /// The version tag found on disk.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// A key is too short for the fixed-width field being decoded.
    #[error("key too short: field needs {needed} bytes, {remaining} remain")]
    KeyTooShort {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the key.
        remaining: usize,
    },
    /// [`crate::StoreOptions`] out of range.
    #[error("invalid store options: {0}")]
    InvalidOptions(String),
    /// A filesystem error outside RocksDB (creating the state directory).
    #[error("io: {0}")]
    Io(String),
}

impl From<rocksdb::Error> for StateError {
    fn from(e: rocksdb::Error) -> Self {
        Self::RocksDb(e.into_string())
    }
}

impl From<std::io::Error> for StateError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}
