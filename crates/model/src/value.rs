//! Hand-written mapping between records and [`apache_avro::types::Value`]:
//! readers that check the shape of each field, and writers for the shapes
//! that recur (timestamps, optional values, subjects, enums).
//!
//! Readers accept the forms a value can take after Avro schema resolution
//! (a `timestamp-millis` may arrive as `Long` or `TimestampMillis`, an
//! optional as a `Union` or a bare value) and turn every other shape into
//! [`ModelError::Shape`].

use apache_avro::types::Value;

use crate::error::ModelError;
use crate::ids::SubjectId;
use crate::time::EventTime;

/// The fields of one decoded record.
pub(crate) struct Fields<'a> {
    fields: &'a [(String, Value)],
}

fn shape(field: &'static str, expected: &str, got: &Value) -> ModelError {
    ModelError::Shape {
        field,
        reason: format!("expected {expected}, got {}", kind(got)),
    }
}

/// A short name of a value's kind, for error messages (never the value itself,
/// which may be personal data).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "string",
        Value::Fixed(..) => "fixed",
        Value::Enum(..) => "enum",
        Value::Union(..) => "union",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Record(_) => "record",
        Value::TimestampMillis(_) => "timestamp-millis",
        _ => "another logical type",
    }
}

impl<'a> Fields<'a> {
    /// Checks that `value` is a record.
    pub(crate) fn of(record: &'static str, value: &'a Value) -> Result<Self, ModelError> {
        match value {
            Value::Record(fields) => Ok(Self { fields }),
            other => Err(shape(record, "record", other)),
        }
    }

    /// The value of a field.
    pub(crate) fn get(&self, field: &'static str) -> Result<&'a Value, ModelError> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, v)| v)
            .ok_or_else(|| ModelError::Shape {
                field,
                reason: "missing".to_owned(),
            })
    }

    pub(crate) fn string(&self, field: &'static str) -> Result<&'a str, ModelError> {
        string(field, self.get(field)?)
    }

    pub(crate) fn opt_string(&self, field: &'static str) -> Result<Option<&'a str>, ModelError> {
        optional(field, self.get(field)?, string)
    }

    pub(crate) fn int(&self, field: &'static str) -> Result<i32, ModelError> {
        match self.get(field)? {
            Value::Int(i) => Ok(*i),
            other => Err(shape(field, "int", other)),
        }
    }

    pub(crate) fn long(&self, field: &'static str) -> Result<i64, ModelError> {
        long(field, self.get(field)?)
    }

    pub(crate) fn double(&self, field: &'static str) -> Result<f64, ModelError> {
        match self.get(field)? {
            Value::Double(d) => Ok(*d),
            Value::Float(f) => Ok(f64::from(*f)),
            other => Err(shape(field, "double", other)),
        }
    }

    pub(crate) fn boolean(&self, field: &'static str) -> Result<bool, ModelError> {
        match self.get(field)? {
            Value::Boolean(b) => Ok(*b),
            other => Err(shape(field, "boolean", other)),
        }
    }

    pub(crate) fn bytes(&self, field: &'static str) -> Result<&'a [u8], ModelError> {
        match self.get(field)? {
            Value::Bytes(b) => Ok(b),
            other => Err(shape(field, "bytes", other)),
        }
    }

    pub(crate) fn fixed<const N: usize>(&self, field: &'static str) -> Result<[u8; N], ModelError> {
        fixed(field, self.get(field)?)
    }

    pub(crate) fn subject(&self, field: &'static str) -> Result<SubjectId, ModelError> {
        subject(field, self.get(field)?)
    }

    pub(crate) fn time(&self, field: &'static str) -> Result<EventTime, ModelError> {
        time(field, self.get(field)?)
    }

    pub(crate) fn opt_time(&self, field: &'static str) -> Result<Option<EventTime>, ModelError> {
        optional(field, self.get(field)?, time)
    }

    pub(crate) fn opt_long(&self, field: &'static str) -> Result<Option<i64>, ModelError> {
        optional(field, self.get(field)?, long)
    }

    pub(crate) fn opt_double(&self, field: &'static str) -> Result<Option<f64>, ModelError> {
        optional(field, self.get(field)?, |field, v| match v {
            Value::Double(d) => Ok(*d),
            other => Err(shape(field, "double", other)),
        })
    }

    pub(crate) fn symbol(&self, field: &'static str) -> Result<&'a str, ModelError> {
        symbol(field, self.get(field)?)
    }

    pub(crate) fn array(&self, field: &'static str) -> Result<&'a [Value], ModelError> {
        match self.get(field)? {
            Value::Array(items) => Ok(items),
            other => Err(shape(field, "array", other)),
        }
    }
}

pub(crate) fn string<'a>(field: &'static str, value: &'a Value) -> Result<&'a str, ModelError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(shape(field, "string", other)),
    }
}

pub(crate) fn long(field: &'static str, value: &Value) -> Result<i64, ModelError> {
    match value {
        Value::Long(l) => Ok(*l),
        Value::Int(i) => Ok(i64::from(*i)),
        other => Err(shape(field, "long", other)),
    }
}

pub(crate) fn time(field: &'static str, value: &Value) -> Result<EventTime, ModelError> {
    match value {
        Value::TimestampMillis(ms) | Value::Long(ms) => EventTime::from_millis(field, *ms),
        other => Err(shape(field, "timestamp-millis", other)),
    }
}

pub(crate) fn fixed<const N: usize>(
    field: &'static str,
    value: &Value,
) -> Result<[u8; N], ModelError> {
    match value {
        Value::Fixed(_, bytes) => {
            <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| ModelError::Shape {
                field,
                reason: format!("expected fixed of {N} bytes, got {}", bytes.len()),
            })
        }
        other => Err(shape(field, "fixed", other)),
    }
}

pub(crate) fn subject(field: &'static str, value: &Value) -> Result<SubjectId, ModelError> {
    match value {
        Value::Fixed(_, bytes) => SubjectId::from_slice(bytes),
        other => Err(shape(field, "fixed", other)),
    }
}

pub(crate) fn symbol<'a>(field: &'static str, value: &'a Value) -> Result<&'a str, ModelError> {
    match value {
        Value::Enum(_, s) => Ok(s),
        other => Err(shape(field, "enum", other)),
    }
}

/// Reads `["null", X]`: a union (or, defensively, a bare value) whose null
/// branch is `None`.
pub(crate) fn optional<'a, T>(
    field: &'static str,
    value: &'a Value,
    read: impl FnOnce(&'static str, &'a Value) -> Result<T, ModelError>,
) -> Result<Option<T>, ModelError> {
    let inner = match value {
        Value::Union(_, inner) => inner.as_ref(),
        other => other,
    };
    match inner {
        Value::Null => Ok(None),
        other => read(field, other).map(Some),
    }
}

/// `timestamp-millis`.
pub(crate) fn ts(t: EventTime) -> Value {
    Value::TimestampMillis(t.as_millis())
}

/// `["null", X]` with `X` already converted.
pub(crate) fn opt(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(v)),
    }
}

/// The named fixed `epitrace.v1.SubjectId`.
pub(crate) fn subject_value(s: &SubjectId) -> Value {
    Value::Fixed(SubjectId::LEN, s.as_bytes().to_vec())
}

/// `string`.
pub(crate) fn str_value(s: &str) -> Value {
    Value::String(s.to_owned())
}

/// A record from `(field, value)` pairs in schema order.
pub(crate) fn record<const N: usize>(fields: [(&'static str, Value); N]) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(name, v)| (name.to_owned(), v))
            .collect(),
    )
}
