//! What every processor shares: decoding inputs (bad ones become dead
//! letters), state keys, and conversions between core segments and their
//! wire form.

use epitrace_core::{Lane, Segment, SegmentKey, Source, SourceSet};
use epitrace_engine::{InputRecord, ProcessError};
use epitrace_model::codec::{
    AvroRecord, DecodeOptions, decode_single_object, encode_single_object,
};
use epitrace_model::records::{
    CaseTag, DataAccessApproval, DataCategory, ObservationSource, SegmentRef, SegmentUpdate,
    SegmentUpdateKind,
};
use epitrace_model::{CaseId, EventTime, ModelError, SubjectId};
use epitrace_state::{StateError, Txn};

/// Decodes a single-object frame, rejecting timestamps more than a day after
/// the batch's wall-clock time. A failure is a dead letter, with the
/// model's reason code.
pub(crate) fn decode<T: AvroRecord>(record: &InputRecord<'_>) -> Result<T, ProcessError> {
    let Some(payload) = record.payload else {
        return Err(ProcessError::Rejected {
            reason: "empty_payload",
            detail: "record has no value".into(),
        });
    };
    let now = EventTime::from_millis("received_at", record.received_at_ms).ok();
    let opts = DecodeOptions {
        now,
        ..DecodeOptions::default()
    };
    decode_single_object::<T>(payload, &opts).map_err(|e| rejected(&e))
}

/// A model error as a dead-letter reason. Library messages can quote field
/// values, so only the typed errors keep their text.
pub(crate) fn rejected(e: &ModelError) -> ProcessError {
    let detail = match e {
        ModelError::Avro(_) => "the Avro library rejected the bytes".to_owned(),
        other => other.to_string(),
    };
    ProcessError::Rejected {
        reason: e.reason_code(),
        detail,
    }
}

/// A record from a topic the processor does not read (a misconfigured
/// subscription): dead-lettered, not fatal.
pub(crate) fn unexpected_topic(processor: &str, record: &InputRecord<'_>) -> ProcessError {
    ProcessError::Rejected {
        reason: "unexpected_topic",
        detail: format!("{processor} does not read {}", record.topic),
    }
}

/// Checks that a record is keyed by what its payload names (`what`: "the
/// subject pseudonym", "the case id"): a record keyed otherwise may sit in
/// another partition than the rest of that subject's or case's records, and
/// so be processed by another instance against other state — one person's
/// state split in two. Such a record is dead-lettered (`key_mismatch`).
pub(crate) fn check_key(
    record: &InputRecord<'_>,
    expected: &[u8],
    what: &str,
) -> Result<(), ProcessError> {
    if record.key == Some(expected) {
        Ok(())
    } else {
        Err(ProcessError::Rejected {
            reason: "key_mismatch",
            detail: format!(
                "the record key is not {what} its value names ({} records are keyed by it)",
                record.topic
            ),
        })
    }
}

/// State failures stop the task (the batch is replayed after restart).
pub(crate) fn fatal(e: impl std::fmt::Display) -> ProcessError {
    ProcessError::Fatal(e.to_string())
}

/// Shorthand for state results inside processors.
pub(crate) trait OrFatal<T> {
    fn or_fatal(self) -> Result<T, ProcessError>;
}

impl<T> OrFatal<T> for Result<T, StateError> {
    fn or_fatal(self) -> Result<T, ProcessError> {
        self.map_err(fatal)
    }
}

impl<T> OrFatal<T> for Result<T, epitrace_core::CoreError> {
    fn or_fatal(self) -> Result<T, ProcessError> {
        self.map_err(fatal)
    }
}

impl<T> OrFatal<T> for Result<T, ModelError> {
    fn or_fatal(self) -> Result<T, ProcessError> {
        self.map_err(fatal)
    }
}

pub(crate) use epitrace_state::keys::i64_key;

/// Committed entries of a store looked at by one batch's retention sweep.
pub(crate) const SWEEP_SLICE: usize = 256;

/// The keys of the next slice of a retention sweep of `store`: at most
/// [`SWEEP_SLICE`] committed keys from `cursor` on. `cursor` moves past the
/// slice, or back to the start after the last one, so that the whole store
/// is swept continuously at a bounded cost per batch. Callers read each
/// key's current version through the transaction (this batch may have
/// changed it).
pub(crate) fn sweep_slice(
    txn: &Txn<'_>,
    store: &str,
    cursor: &mut Vec<u8>,
) -> Result<Vec<Vec<u8>>, ProcessError> {
    let from = std::mem::take(cursor);
    let slice = txn
        .base()
        .scan_limit(store, &from, &[0xff; 256], SWEEP_SLICE)
        .or_fatal()?;
    if slice.len() == SWEEP_SLICE
        && let Some((last, _)) = slice.last()
    {
        let mut next = last.clone();
        next.push(0);
        *cursor = next;
    }
    Ok(slice.into_iter().map(|(k, _)| k).collect())
}

/// `case id | 0 | member`: a per-case store key (an exposure's contact, a
/// visit's id). Case ids never contain a 0 byte, so a case's keys are one
/// range, starting with [`case_prefix`].
pub(crate) fn case_member_key(case: &CaseId, member: &[u8]) -> Vec<u8> {
    let mut k = case_prefix(case);
    k.extend_from_slice(member);
    k
}

/// `case | 0 | category(1) | reference`: one approval's key in the
/// `approvals` stores (the latest of a reference replaces the earlier).
pub(crate) fn approval_key(a: &DataAccessApproval) -> Vec<u8> {
    let category = match a.category {
        DataCategory::Location => 1,
        DataCategory::Card => 2,
        DataCategory::Checkin => 3,
        DataCategory::Interview => 4,
    };
    let mut member = vec![category];
    member.extend_from_slice(a.reference.as_str().as_bytes());
    case_member_key(&a.case_id, &member)
}

/// `case id | 0`: the prefix of [`case_member_key`].
pub(crate) fn case_prefix(case: &CaseId) -> Vec<u8> {
    let mut k = Vec::with_capacity(case.as_str().len() + 1 + 16);
    k.extend_from_slice(case.as_str().as_bytes());
    k.push(0);
    k
}

/// `subject (16) | lane (4) | start (8) | first cell (8)`: a segment's
/// identity as a key suffix, in time order per subject.
pub(crate) fn segment_id_key(subject: SubjectId, key: &SegmentKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(36);
    k.extend_from_slice(subject.as_bytes());
    k.extend_from_slice(&key.lane.0.to_be_bytes());
    k.extend_from_slice(&i64_key(key.start.as_millis()));
    k.extend_from_slice(&key.first_cell.raw().to_be_bytes());
    k
}

/// The exclusive upper bound of every key starting with `prefix` (a
/// prefix of only `0xff` bytes has none: then a bound past any real key).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    epitrace_state::keys::prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 64])
}

/// Core source → wire source.
pub(crate) fn wire_source(s: Source) -> ObservationSource {
    match s {
        Source::Cell => ObservationSource::Cell,
        Source::Gps => ObservationSource::Gps,
        Source::Wifi => ObservationSource::Wifi,
        Source::Card => ObservationSource::Card,
        Source::Checkin => ObservationSource::Checkin,
        Source::Interview => ObservationSource::Interview,
    }
}

/// Wire source → core source.
pub(crate) fn core_source(s: ObservationSource) -> Source {
    match s {
        ObservationSource::Cell => Source::Cell,
        ObservationSource::Gps => Source::Gps,
        ObservationSource::Wifi => Source::Wifi,
        ObservationSource::Card => Source::Card,
        ObservationSource::Checkin => Source::Checkin,
        ObservationSource::Interview => Source::Interview,
    }
}

/// The wire sources of a set, in bit order.
pub(crate) fn wire_sources(set: SourceSet) -> Vec<ObservationSource> {
    set.iter().map(wire_source).collect()
}

/// A set from wire sources.
pub(crate) fn source_set(sources: &[ObservationSource]) -> SourceSet {
    let mut set = SourceSet::default();
    for s in sources {
        set.insert(core_source(*s));
    }
    set
}

/// A segment key as its wire reference.
pub(crate) fn segment_ref(key: &SegmentKey) -> SegmentRef {
    SegmentRef {
        lane: key.lane.0,
        start: key.start,
        first_cell: key.first_cell,
    }
}

/// A wire reference as a segment key.
pub(crate) fn segment_key(r: &SegmentRef) -> SegmentKey {
    SegmentKey {
        lane: Lane(r.lane),
        start: r.start,
        first_cell: r.first_cell,
    }
}

/// Stored values carry a format version byte: 2 = an Avro single-object
/// frame (its schema's fingerprint, then the datum), so that a store written
/// before a schema evolved is read through the released schema it was
/// written with; 1 = a bare datum (state written before version 2: read as
/// the current schema, else as each released one).
pub(crate) const VALUE_VERSION: u8 = 2;
const VALUE_VERSION_BARE: u8 = 1;

/// `[version] + single-object frame`.
pub(crate) fn encode_value<T: AvroRecord>(record: &T) -> Result<Vec<u8>, ProcessError> {
    let frame = encode_single_object(record).or_fatal()?;
    let mut v = Vec::with_capacity(frame.len() + 1);
    v.push(VALUE_VERSION);
    v.extend_from_slice(&frame);
    Ok(v)
}

/// Reads [`encode_value`] (or a version-1 value) back; a mismatch is
/// corrupt state (fatal).
pub(crate) fn decode_value<T: AvroRecord>(bytes: &[u8]) -> Result<T, ProcessError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, frame)) => {
            decode_single_object(frame, &DecodeOptions::default()).or_fatal()
        }
        Some((&VALUE_VERSION_BARE, datum)) => {
            epitrace_model::codec::decode_datum_any_version(datum).or_fatal()
        }
        Some((v, _)) => Err(ProcessError::Fatal(format!("stored value version {v}"))),
        None => Err(ProcessError::Fatal("empty stored value".into())),
    }
}

/// The wire form of a subject's segment.
pub(crate) fn update_of(
    subject: SubjectId,
    seg: &Segment,
    kind: SegmentUpdateKind,
    cases: Vec<CaseTag>,
) -> SegmentUpdate {
    SegmentUpdate {
        subject,
        lane: seg.key.lane.0,
        start: seg.key.start,
        first_cell: seg.key.first_cell,
        cell: seg.cell,
        end: seg.end,
        sources: wire_sources(seg.sources),
        observations: seg.observations.max(1),
        kind,
        cases,
        core_cell: seg.core,
    }
}

/// A core segment from its wire form.
pub(crate) fn segment_of(u: &SegmentUpdate) -> Segment {
    Segment {
        key: SegmentKey {
            lane: Lane(u.lane),
            start: u.start,
            first_cell: u.first_cell,
        },
        cell: u.cell,
        core: u.core_cell,
        end: u.end,
        sources: source_set(&u.sources),
        observations: u.observations,
    }
}
