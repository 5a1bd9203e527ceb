//! `pipeline.deadletter`: an input record that could not be processed.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::text::Text;
use crate::time::EventTime;
use crate::value::{Fields, record, str_value, ts};

/// An input record that could not be processed, with why.
///
/// Holds personal data (the original payload): the dead-letter topic carries
/// the same retention as the input topics and is purged with them.
#[derive(Clone, PartialEq, Debug)]
pub struct DeadLetter {
    /// Topic the record was read from.
    pub topic: Text,
    /// Partition the record was read from (>= 0).
    pub partition: i32,
    /// Offset of the record (>= 0).
    pub offset: i64,
    /// Stable, bounded reason code (e.g. [`ModelError::reason_code`]).
    pub reason_code: Text,
    /// Human-readable detail; never raw identifiers.
    pub detail: Text,
    /// The original record value, byte for byte.
    pub payload: Vec<u8>,
    /// When the record was dead-lettered.
    pub dead_lettered_at: EventTime,
}

impl AvroRecord for DeadLetter {
    const NAME: &'static str = "DeadLetter";

    crate::records::compiled_schema_set!(DEAD_LETTER);

    fn to_value(&self) -> Value {
        record([
            ("topic", str_value(self.topic.as_str())),
            ("partition", Value::Int(self.partition)),
            ("offset", Value::Long(self.offset)),
            ("reason_code", str_value(self.reason_code.as_str())),
            ("detail", str_value(self.detail.as_str())),
            ("payload", Value::Bytes(self.payload.clone())),
            ("dead_lettered_at", ts(self.dead_lettered_at)),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let letter = Self {
            topic: Text::new("topic", f.string("topic")?)?,
            partition: f.int("partition")?,
            offset: f.long("offset")?,
            reason_code: Text::new("reason_code", f.string("reason_code")?)?,
            detail: Text::new("detail", f.string("detail")?)?,
            payload: f.bytes("payload")?.to_vec(),
            dead_lettered_at: f.time("dead_lettered_at")?,
        };
        letter.validate()?;
        Ok(letter)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.partition < 0 {
            return Err(ModelError::InvalidRecord {
                field: "partition",
                reason: "negative",
            });
        }
        if self.offset < 0 {
            return Err(ModelError::InvalidRecord {
                field: "offset",
                reason: "negative",
            });
        }
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        vec![("dead_lettered_at", self.dead_lettered_at)]
    }
}
