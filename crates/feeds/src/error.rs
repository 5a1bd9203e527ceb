//! Errors.

/// A row that cannot be turned into a record. Never carries the raw id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {field}: {reason}")]
pub struct RowError {
    /// 1-based line of the file (the header is line 1 in CSV).
    pub line: u64,
    /// The column, or `row` for the row as a whole.
    pub field: &'static str,
    /// Why, without personal data.
    pub reason: String,
}

impl RowError {
    pub(crate) fn new(line: u64, field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            line,
            field,
            reason: reason.into(),
        }
    }
}

/// Errors of a whole file or key.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A CSV file whose header is not the feed's.
    #[error("{path}: header {found:?} is not the {feed} header {expected:?}")]
    Header {
        /// The file.
        path: String,
        /// The feed.
        feed: &'static str,
        /// What the file has.
        found: String,
        /// What the feed needs.
        expected: String,
    },
    /// The pseudonymisation key is unusable.
    #[error("key {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// Why.
        reason: String,
    },
}
