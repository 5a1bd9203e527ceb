//! Wire codecs: plain Avro datums, Avro single-object encoding (the default
//! framing) and Confluent Schema Registry framing.
//!
//! Decoding never panics and never trusts the bytes: a frame that ends early
//! is [`ModelError::Truncated`], leftover bytes are
//! [`ModelError::TrailingBytes`], and every field goes through the validated
//! newtypes. The crate never reads the wall clock: pass
//! [`DecodeOptions::now`] to reject timestamps in the future.

use std::collections::HashMap;
use std::io::Read;

use apache_avro::Schema;
use apache_avro::error::Details;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;

use crate::error::ModelError;
use crate::schema::{self, SchemaSet};
use crate::time::{DAY_MS, EventTime};

/// A record of a topic with a hand-written Avro mapping.
pub trait AvroRecord: Sized {
    /// The Avro record name (without namespace), e.g. `LocationPing`.
    const NAME: &'static str;

    /// The record's schemas: the current one and every known writer schema.
    fn schema_set() -> &'static SchemaSet;

    /// The current schema, parsed once from `schemas/<name>.avsc`.
    fn schema() -> &'static Schema {
        Self::schema_set().current()
    }

    /// The Avro value of this record under [`Self::schema`].
    fn to_value(&self) -> Value;

    /// Reads a record from a value of the current schema (after resolution),
    /// validating every field and [`Self::validate`].
    ///
    /// # Errors
    /// [`ModelError::Shape`] for a missing field or a wrong Avro type; the
    /// newtypes' errors for invalid values.
    fn from_value(value: &Value) -> Result<Self, ModelError>;

    /// Checks the rules that span several fields (order of timestamps,
    /// non-empty lists…).
    ///
    /// # Errors
    /// [`ModelError::TimestampOrder`], [`ModelError::InvalidRecord`].
    fn validate(&self) -> Result<(), ModelError>;

    /// The record's event times that must not lie in the future, with their
    /// field names (a planned expiry, for instance, is left out).
    fn timestamps(&self) -> Vec<(&'static str, EventTime)>;

    /// Appends the record (already validated) as a datum of the current
    /// schema. The default goes through [`Self::to_value`] and apache-avro
    /// ([`write_generic`]); records on the hot path write the bytes by hand
    /// and must produce exactly the same ones.
    ///
    /// # Errors
    /// [`ModelError::Avro`] if the value does not match the schema (a bug in
    /// the mapping).
    fn write_binary(&self, out: &mut Vec<u8>) -> Result<(), ModelError> {
        write_generic(self, out)
    }

    /// Reads a datum of the current schema, as [`Self::from_value`] would
    /// after a generic read ([`read_generic`], the default); records on the
    /// hot path read the bytes by hand and must agree with it on every input
    /// (the same record, or an error of the same kind).
    ///
    /// # Errors
    /// As [`decode_datum_with`], without the future check.
    fn read_binary(datum: &[u8]) -> Result<Self, ModelError> {
        read_generic(datum)
    }
}

/// Writes a datum of `T`'s current schema through apache-avro's generic
/// [`Value`] path: the reference for [`AvroRecord::write_binary`].
///
/// # Errors
/// As [`AvroRecord::write_binary`].
pub fn write_generic<T: AvroRecord>(record: &T, out: &mut Vec<u8>) -> Result<(), ModelError> {
    T::schema_set()
        .datum_writer()?
        .write_value_ref(out, &record.to_value())
        .map_err(|e| map_avro_error(&e))?;
    Ok(())
}

/// Reads a datum of `T`'s current schema through apache-avro's generic
/// [`Value`] path: the reference for [`AvroRecord::read_binary`].
///
/// # Errors
/// As [`AvroRecord::read_binary`].
pub fn read_generic<T: AvroRecord>(datum: &[u8]) -> Result<T, ModelError> {
    let set = T::schema_set();
    let reader = set
        .datum_reader(set.fingerprint())?
        .ok_or(ModelError::UnknownFingerprint(set.fingerprint()))?;
    T::from_value(&read_with(reader, datum)?)
}

/// Rejects a record any of whose [`AvroRecord::timestamps`] is more than
/// `skew_ms` after `now`.
///
/// # Errors
/// [`ModelError::TimestampInFuture`] for the first such timestamp.
pub fn validate_not_future<T: AvroRecord>(
    record: &T,
    now: EventTime,
    skew_ms: i64,
) -> Result<(), ModelError> {
    for (field, t) in record.timestamps() {
        t.check_not_after(field, now, skew_ms)?;
    }
    Ok(())
}

/// How to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Reference time for the future check; `None` skips it.
    pub now: Option<EventTime>,
    /// How far after `now` a timestamp may lie (device and provider clocks
    /// drift). Default: one day.
    pub future_skew_ms: i64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            now: None,
            future_skew_ms: DAY_MS,
        }
    }
}

impl DecodeOptions {
    /// Options that reject timestamps more than a day after `now`.
    #[must_use]
    pub fn at(now: EventTime) -> Self {
        Self {
            now: Some(now),
            ..Self::default()
        }
    }
}

// ---------------------------------------------------------------- datums

/// Encodes a record as a plain Avro datum of its current schema.
///
/// # Errors
/// The record's [`AvroRecord::validate`] error; [`ModelError::Avro`] if the
/// value does not match the schema, which is a bug in the record's mapping
/// (the round-trip tests cover every record).
pub fn encode_datum<T: AvroRecord>(record: &T) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::new();
    write_datum(record, &mut out)?;
    Ok(out)
}

fn write_datum<T: AvroRecord>(record: &T, out: &mut Vec<u8>) -> Result<(), ModelError> {
    record.validate()?;
    record.write_binary(out)
}

/// Decodes a plain Avro datum written with the record's current schema.
///
/// # Errors
/// See [`decode_datum_with`].
pub fn decode_datum<T: AvroRecord>(bytes: &[u8]) -> Result<T, ModelError> {
    decode_datum_with(bytes, &DecodeOptions::default())
}

/// Decodes a plain Avro datum written with the record's current schema.
///
/// # Errors
/// [`ModelError::Truncated`], [`ModelError::TrailingBytes`],
/// [`ModelError::UnknownSymbol`], [`ModelError::Shape`], the newtypes'
/// validation errors, [`ModelError::TimestampInFuture`] when `opts.now` is
/// set, and [`ModelError::Avro`] for anything else the library rejects.
pub fn decode_datum_with<T: AvroRecord>(
    bytes: &[u8],
    opts: &DecodeOptions,
) -> Result<T, ModelError> {
    check_future(T::read_binary(bytes)?, opts)
}

/// Decodes a plain Avro datum whose writer schema was not recorded: as the
/// current schema first, then as each released one (resolved into the
/// current). For stored state written before stored values carried their
/// schema's fingerprint; new data should be framed (single-object) instead.
///
/// # Errors
/// The current schema's error when no known writer schema reads it.
pub fn decode_datum_any_version<T: AvroRecord>(bytes: &[u8]) -> Result<T, ModelError> {
    let current = T::read_binary(bytes);
    if current.is_ok() {
        return current;
    }
    let set = T::schema_set();
    for w in set.writers().filter(|w| !w.same_as_current) {
        if let Ok(Some(reader)) = set.datum_reader(w.fingerprint)
            && let Ok(record) = read_with(reader, bytes).and_then(|v| T::from_value(&v))
        {
            return Ok(record);
        }
    }
    current
}

/// Validates a decoded value into a record.
fn finish<T: AvroRecord>(value: &Value, opts: &DecodeOptions) -> Result<T, ModelError> {
    check_future(T::from_value(value)?, opts)
}

/// Applies the future check of `opts`.
fn check_future<T: AvroRecord>(record: T, opts: &DecodeOptions) -> Result<T, ModelError> {
    if let Some(now) = opts.now {
        validate_not_future(&record, now, opts.future_skew_ms)?;
    }
    Ok(record)
}

/// Reads one datum written with `writer`, resolving it to `reader` when
/// given; the datum must fill `bytes` exactly.
fn read_datum(writer: &Schema, reader: Option<&Schema>, bytes: &[u8]) -> Result<Value, ModelError> {
    let built = GenericDatumReader::builder(writer)
        .maybe_reader_schema(reader)
        .build()
        .map_err(|e| map_avro_error(&e))?;
    read_with(&built, bytes)
}

/// Reads one datum with a prepared reader; the datum must fill `bytes`
/// exactly.
fn read_with(reader: &GenericDatumReader<'_>, bytes: &[u8]) -> Result<Value, ModelError> {
    let mut input = EofTracking {
        rest: bytes,
        hit_eof: false,
    };
    let result = reader.read_value(&mut input);
    // apache-avro turns some short reads into values (a string or a union
    // index cut off at the end decodes as null), so whether the input ran
    // out is tracked here rather than read from the result.
    if input.hit_eof {
        return Err(ModelError::Truncated("datum ends before the record"));
    }
    let value = result.map_err(|e| map_avro_error(&e))?;
    if !input.rest.is_empty() {
        return Err(ModelError::TrailingBytes(input.rest.len()));
    }
    Ok(value)
}

/// A byte-slice reader that remembers whether anyone asked for bytes past
/// the end.
struct EofTracking<'a> {
    rest: &'a [u8],
    hit_eof: bool,
}

impl Read for EofTracking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.hit_eof = true;
        }
        self.rest.read(buf)
    }
}

/// Maps an apache-avro error to the most precise [`ModelError`].
fn map_avro_error(e: &apache_avro::Error) -> ModelError {
    match e.details() {
        Details::GetEnumValue { index, .. } | Details::EnumSymbolIndex { index, .. } => {
            ModelError::UnknownSymbol {
                field: "enum",
                symbol: format!("#{index}"),
            }
        }
        Details::GetEnumDefault { symbol, .. } | Details::GetEnumSymbol(symbol) => {
            ModelError::UnknownSymbol {
                field: "enum",
                symbol: symbol.chars().take(64).collect(),
            }
        }
        Details::ReadVariableIntegerBytes(io)
        | Details::ReadBytes(io)
        | Details::ReadString(io)
        | Details::ReadDouble(io)
        | Details::ReadFloat(io)
        | Details::ReadBoolean(io)
        | Details::ReadFixed(io, _)
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            ModelError::Truncated("datum ends before the record")
        }
        _ => ModelError::Avro(e.to_string()),
    }
}

// ---------------------------------------------------------- single object

/// The two marker bytes that open an Avro single-object frame.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];

/// Length of a single-object header: magic and 8-byte fingerprint.
pub const SINGLE_OBJECT_HEADER_LEN: usize = 10;

/// Encodes a record as an Avro single-object frame: `C3 01`, the 8-byte
/// little-endian Rabin fingerprint of the current schema's canonical form
/// (see [`schema`] on which form), then the datum.
///
/// # Errors
/// As [`encode_datum`].
pub fn encode_single_object<T: AvroRecord>(record: &T) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&T::schema_set().fingerprint().to_le_bytes());
    write_datum(record, &mut out)?;
    Ok(out)
}

/// Decodes an Avro single-object frame written with the record's current
/// schema or any released one (resolved into the current schema).
///
/// # Errors
/// [`ModelError::BadMagic`], [`ModelError::Truncated`],
/// [`ModelError::UnknownFingerprint`], then as [`decode_datum_with`].
pub fn decode_single_object<T: AvroRecord>(
    bytes: &[u8],
    opts: &DecodeOptions,
) -> Result<T, ModelError> {
    check_magic(bytes, &SINGLE_OBJECT_MAGIC, "avro single-object C3 01")?;
    let Some((header, datum)) = bytes.split_first_chunk::<SINGLE_OBJECT_HEADER_LEN>() else {
        return Err(ModelError::Truncated("single-object header"));
    };
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&header[2..]);
    let fingerprint = u64::from_le_bytes(fp);
    let set = T::schema_set();
    if fingerprint == set.fingerprint() {
        return check_future(T::read_binary(datum)?, opts);
    }
    // An older writer schema: resolve it into the current one.
    let reader = set
        .datum_reader(fingerprint)?
        .ok_or(ModelError::UnknownFingerprint(fingerprint))?;
    finish(&read_with(reader, datum)?, opts)
}

/// Checks the leading magic bytes; a frame too short to hold all of them
/// but agreeing so far is truncated.
fn check_magic(bytes: &[u8], magic: &[u8], expected: &'static str) -> Result<(), ModelError> {
    let n = bytes.len().min(magic.len());
    if bytes[..n] != magic[..n] {
        return Err(ModelError::BadMagic {
            expected,
            got: bytes[..n].to_vec(),
        });
    }
    if n < magic.len() {
        return Err(ModelError::Truncated("frame header"));
    }
    Ok(())
}

// ----------------------------------------------------------- reframing

/// The single-object frame of a datum written with `writer` (fingerprint
/// `writer_fp`) as the record named `record` (a `schemas/` record name):
/// the datum as it is, under its fingerprint, when `writer` is a schema
/// this build knows for that record (the current or a released one);
/// otherwise the datum resolved into the current schema, validated and
/// encoded again. For Confluent frames, whose header names a registry id
/// instead of a fingerprint.
///
/// # Errors
/// [`ModelError::Shape`] for an unknown record name; the errors of
/// decoding and validating the datum.
pub fn reframe(
    record: &str,
    writer: &Schema,
    writer_fp: u64,
    datum: &[u8],
) -> Result<Vec<u8>, ModelError> {
    fn go<T: AvroRecord>(writer: &Schema, fp: u64, datum: &[u8]) -> Result<Vec<u8>, ModelError> {
        let set = T::schema_set();
        if set.writer(fp).is_some() {
            // Checked as a single-object frame would be (the processors
            // decode it again): a datum that does not read is refused here.
            let mut frame = Vec::with_capacity(SINGLE_OBJECT_HEADER_LEN + datum.len());
            frame.extend_from_slice(&SINGLE_OBJECT_MAGIC);
            frame.extend_from_slice(&fp.to_le_bytes());
            frame.extend_from_slice(datum);
            decode_single_object::<T>(&frame, &DecodeOptions::default())?;
            return Ok(frame);
        }
        let value = read_datum(writer, Some(set.current()), datum)?;
        encode_single_object(&T::from_value(&value)?)
    }
    use crate::records::*;
    match record {
        "LocationPing" => go::<LocationPing>(writer, writer_fp, datum),
        "CardTransaction" => go::<CardTransaction>(writer, writer_fp, datum),
        "VenueCheckin" => go::<VenueCheckin>(writer, writer_fp, datum),
        "CaseEvent" => go::<CaseEvent>(writer, writer_fp, datum),
        "DataAccessApproval" => go::<DataAccessApproval>(writer, writer_fp, datum),
        "InterviewEntry" => go::<InterviewEntry>(writer, writer_fp, datum),
        "SubjectCase" => go::<SubjectCase>(writer, writer_fp, datum),
        "SegmentUpdate" => go::<SegmentUpdate>(writer, writer_fp, datum),
        "ExposureCandidate" => go::<ExposureCandidate>(writer, writer_fp, datum),
        "Visit" => go::<Visit>(writer, writer_fp, datum),
        "Exposure" => go::<Exposure>(writer, writer_fp, datum),
        "ClusterAlert" => go::<ClusterAlert>(writer, writer_fp, datum),
        "DeadLetter" => go::<DeadLetter>(writer, writer_fp, datum),
        "AuditRecord" => go::<AuditRecord>(writer, writer_fp, datum),
        _ => Err(ModelError::Shape {
            field: "record",
            reason: format!("unknown record {record}"),
        }),
    }
}

// --------------------------------------------------------------- confluent

/// The byte that opens a Confluent Schema Registry frame.
pub const CONFLUENT_MAGIC: u8 = 0x00;

/// Length of a Confluent header: magic and 4-byte big-endian schema id.
pub const CONFLUENT_HEADER_LEN: usize = 5;

/// Confluent schema ids of one record (one registry subject), mapped to the
/// writer schemas they stand for. The registry client that fills it comes
/// later; this is only the mapping.
#[derive(Debug, Default)]
pub struct ConfluentIds {
    by_id: HashMap<u32, ConfluentWriter>,
}

#[derive(Debug)]
struct ConfluentWriter {
    schema: Schema,
    canonical: String,
}

impl ConfluentIds {
    /// An empty mapping.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps `id` to a writer schema (replacing any previous one).
    pub fn insert(&mut self, id: u32, schema: Schema) {
        let canonical = schema::canonical_form(&schema);
        self.by_id.insert(id, ConfluentWriter { schema, canonical });
    }

    /// Maps `id` to the current schema of `T`.
    pub fn insert_current<T: AvroRecord>(&mut self, id: u32) {
        self.insert(id, T::schema().clone());
    }

    /// The writer schema registered under `id`.
    #[must_use]
    pub fn get(&self, id: u32) -> Option<&Schema> {
        self.by_id.get(&id).map(|w| &w.schema)
    }
}

/// Encodes a record in Confluent framing: `00`, `schema_id` big-endian, datum
/// of the current schema. `schema_id` must be the registry's id for the
/// current schema under the topic's subject.
///
/// # Errors
/// As [`encode_datum`].
pub fn encode_confluent<T: AvroRecord>(record: &T, schema_id: u32) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::with_capacity(64);
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    write_datum(record, &mut out)?;
    Ok(out)
}

/// Decodes a Confluent frame whose schema id is in `ids`, resolving the
/// writer schema into the current one.
///
/// # Errors
/// [`ModelError::BadMagic`], [`ModelError::Truncated`],
/// [`ModelError::UnknownSchemaId`], then as [`decode_datum_with`].
pub fn decode_confluent<T: AvroRecord>(
    bytes: &[u8],
    ids: &ConfluentIds,
    opts: &DecodeOptions,
) -> Result<T, ModelError> {
    check_magic(bytes, &[CONFLUENT_MAGIC], "confluent 00")?;
    let Some((header, datum)) = bytes.split_first_chunk::<CONFLUENT_HEADER_LEN>() else {
        return Err(ModelError::Truncated("confluent header"));
    };
    let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let writer = ids.by_id.get(&id).ok_or(ModelError::UnknownSchemaId(id))?;
    let set = T::schema_set();
    let reader = (writer.canonical != set.canonical_form()).then(|| set.current());
    finish(&read_datum(&writer.schema, reader, datum)?, opts)
}
