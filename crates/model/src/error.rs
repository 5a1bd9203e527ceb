//! The model crate's error type.

use thiserror::Error;

/// Everything that can be wrong with a value or a wire record.
///
/// Every variant maps to a stable, bounded [`reason_code`](ModelError::reason_code)
/// that the dead-letter path and metrics use as a label.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ModelError {
    /// A subject pseudonym that is not exactly 16 bytes.
    #[error("subject id must be 16 bytes, got {len}")]
    SubjectIdLength {
        /// Length received.
        len: usize,
    },
    /// A textual identifier (case id, provider, merchant…) that is empty, too
    /// long or has characters outside its alphabet.
    #[error("invalid {kind}: {reason}")]
    InvalidIdentifier {
        /// Which identifier (e.g. `case_id`).
        kind: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A timestamp before 2000-01-01T00:00:00Z or after year 2100.
    #[error("{field}: timestamp {millis} ms is outside 2000-01-01 .. 2100-01-01")]
    TimestampOutOfRange {
        /// Record field.
        field: &'static str,
        /// Milliseconds since the Unix epoch.
        millis: i64,
    },
    /// A timestamp more than the allowed skew after the reference time.
    #[error(
        "{field}: timestamp {millis} ms is more than {skew_ms} ms after reference time {now_ms} ms"
    )]
    TimestampInFuture {
        /// Record field.
        field: &'static str,
        /// Milliseconds since the Unix epoch.
        millis: i64,
        /// The reference time the check used.
        now_ms: i64,
        /// The allowed skew.
        skew_ms: i64,
    },
    /// Two timestamps of one record in the wrong order (e.g. checkout before check-in).
    #[error("{field}: {later_ms} ms is before {earlier_ms} ms")]
    TimestampOrder {
        /// Record field that should be the later one.
        field: &'static str,
        /// The value that should be earlier.
        earlier_ms: i64,
        /// The value that should be later.
        later_ms: i64,
    },
    /// Latitude that is NaN, infinite or outside [-90, 90].
    #[error("latitude {0} is not a finite number in [-90, 90]")]
    InvalidLatitude(f64),
    /// Longitude that is NaN, infinite or outside [-180, 180].
    #[error("longitude {0} is not a finite number in [-180, 180]")]
    InvalidLongitude(f64),
    /// Accuracy radius that is NaN, infinite, negative or absurdly large.
    #[error("accuracy {0} m is not a finite number in [0, 100000]")]
    InvalidAccuracy(f64),
    /// A 64-bit value that is not a valid H3 cell index.
    #[error("{0:#x} is not a valid H3 cell index")]
    InvalidCell(u64),
    /// H3 resolution out of 0..=15.
    #[error("H3 resolution {0} is out of 0..=15")]
    InvalidResolution(i64),
    /// An enum symbol the schema does not know.
    #[error("{field}: unknown symbol {symbol:?}")]
    UnknownSymbol {
        /// Record field.
        field: &'static str,
        /// The symbol received.
        symbol: String,
    },
    /// Free text (an approval's authority, an audit purpose…) that is empty,
    /// too long or contains control characters.
    #[error("invalid {field}: {reason}")]
    InvalidText {
        /// Record field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record that breaks a rule spanning several fields or elements.
    #[error("{field}: {reason}")]
    InvalidRecord {
        /// Record field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Fewer bytes than the framing or the record needs.
    #[error("truncated record: {0}")]
    Truncated(&'static str),
    /// The frame does not start with the expected magic bytes.
    #[error("bad frame header: expected {expected}, got {got:02x?}")]
    BadMagic {
        /// The framing that was expected.
        expected: &'static str,
        /// The first bytes received.
        got: Vec<u8>,
    },
    /// A single-object frame whose schema fingerprint is not one this build knows.
    #[error("unknown schema fingerprint {0:#018x}")]
    UnknownFingerprint(u64),
    /// A Confluent frame whose schema id is not registered for the expected record.
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    /// Bytes left over after a complete record.
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
    /// A field that is missing or has the wrong Avro type after schema resolution.
    #[error("{field}: {reason}")]
    Shape {
        /// Record field.
        field: &'static str,
        /// What was found instead.
        reason: String,
    },
    /// The Avro library rejected the bytes or the schema.
    #[error("avro: {0}")]
    Avro(String),
}

impl ModelError {
    /// A short, stable code for dead-letter records and metric labels.
    ///
    /// The set of codes is closed (one per variant), so it is safe as a
    /// Prometheus label value.
    #[must_use]
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::SubjectIdLength { .. } => "invalid_subject",
            Self::InvalidIdentifier { .. } => "invalid_identifier",
            Self::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            Self::TimestampInFuture { .. } => "timestamp_in_future",
            Self::TimestampOrder { .. } => "timestamp_order",
            Self::InvalidLatitude(_) => "invalid_latitude",
            Self::InvalidLongitude(_) => "invalid_longitude",
            Self::InvalidAccuracy(_) => "invalid_accuracy",
            Self::InvalidCell(_) => "invalid_cell",
            Self::InvalidResolution(_) => "invalid_resolution",
            Self::UnknownSymbol { .. } => "unknown_symbol",
            Self::InvalidText { .. } => "invalid_text",
            Self::InvalidRecord { .. } => "invalid_record",
            Self::Truncated(_) => "truncated",
            Self::BadMagic { .. } => "bad_magic",
            Self::UnknownFingerprint(_) => "unknown_fingerprint",
            Self::UnknownSchemaId(_) => "unknown_schema_id",
            Self::TrailingBytes(_) => "trailing_bytes",
            Self::Shape { .. } => "schema_mismatch",
            Self::Avro(_) => "avro",
        }
    }
}
