//! Records as processors see them.

/// One consumed record, as a processor sees it.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Key bytes.
    pub key: Option<&'a [u8]>,
    /// Value bytes.
    pub payload: Option<&'a [u8]>,
    /// The record's timestamp (ms); processors stamp their outputs with it
    /// so that replays are identical.
    pub timestamp_ms: Option<i64>,
    /// Wall-clock time the batch was taken (ms), for rejecting timestamps in
    /// the future only; never for event-time logic.
    pub received_at_ms: i64,
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// Destination topic.
    pub topic: String,
    /// Record key (decides the partition, murmur2 like the Java client).
    pub key: Vec<u8>,
    /// Encoded value.
    pub payload: Vec<u8>,
    /// Record timestamp (ms since epoch). Processors set it from their input
    /// so that a replay produces identical records; `None` lets the client
    /// stamp the send time.
    pub timestamp_ms: Option<i64>,
}

/// Domain outputs counted by kind in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitted {
    /// `tracing.exposures` records, by kind (new, updated, retracted).
    Exposure,
    /// Live `tracing.exposures` records (new or updated), by contact class
    /// (close, area).
    ExposureClass,
    /// `tracing.clusters` records.
    ClusterAlert,
}

/// Anything a batch can be made of: a Kafka message in production, a stored
/// record in the test driver.
pub trait Consumed {
    /// Source topic.
    fn topic(&self) -> &str;
    /// Source partition.
    fn partition(&self) -> i32;
    /// Offset in the partition.
    fn offset(&self) -> i64;
    /// Key bytes.
    fn key(&self) -> Option<&[u8]>;
    /// Value bytes.
    fn payload(&self) -> Option<&[u8]>;
    /// Timestamp (ms), if any.
    fn timestamp_ms(&self) -> Option<i64>;
    /// A reason the I/O shell already refused the record for (e.g. a
    /// Confluent frame whose schema id the registry does not know): the
    /// batch dead-letters it with that reason code and detail without
    /// handing it to the processor. `None` by default.
    fn rejection(&self) -> Option<(&'static str, &str)> {
        None
    }
    /// The bytes as they arrived, for a dead letter: [`Consumed::payload`]
    /// unless the shell replaced them (a Confluent frame turned into a
    /// single-object one), so that a provider finds its own bytes.
    fn original_payload(&self) -> Option<&[u8]> {
        self.payload()
    }
    /// A second topic this record's dead letter is also written to (the
    /// provider's own dead-letter topic, when the shell recognised one in
    /// the record's headers); it is counted once. `None` by default.
    fn dead_letter_copy(&self) -> Option<&str> {
        None
    }

    /// The record as a processor sees it, in a batch taken at
    /// `received_at_ms`.
    fn as_input(&self, received_at_ms: i64) -> InputRecord<'_> {
        InputRecord {
            topic: self.topic(),
            partition: self.partition(),
            offset: self.offset(),
            key: self.key(),
            payload: self.payload(),
            timestamp_ms: self.timestamp_ms(),
            received_at_ms,
        }
    }
}
