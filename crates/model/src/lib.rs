//! # epitrace-model
//!
//! The vocabulary every other epitrace crate speaks: validated newtypes, the
//! records of every Kafka topic (DESIGN §3) and their Avro wire codecs.
//!
//! ## Layout
//!
//! - [`ids`]: [`SubjectId`] (16-byte pseudonym) and the textual ids
//!   ([`CaseId`], [`ProviderId`], …), validated at construction.
//! - [`time`]: [`EventTime`], milliseconds since the epoch in 2000..2100.
//! - [`geo`]: [`LatLng`], [`AccuracyM`] and [`Cell`] (an H3 cell).
//! - [`text`]: bounded free [`Text`], [`Mcc`] and [`Probability`].
//! - [`records`]: one struct per topic record ([`LocationPing`],
//!   [`CaseEvent`], [`Exposure`], …) with its closed sets as enums; and the
//!   internal records of the repartition topics between processors:
//!   [`SubjectCase`] (`cases.by-subject`, a case event fanned out to one
//!   subject), [`SegmentUpdate`] (`presence.segments`, a dwell segment keyed
//!   by its res-6 cell) and [`ExposureCandidate`] (`exposure.candidates`,
//!   one case segment × contact segment overlap, keyed by case).
//! - [`codec`]: the [`AvroRecord`] trait (hand-written mapping to Avro
//!   values) and the wire codecs: plain datums, Avro single-object encoding
//!   (the default framing) and Confluent framing.
//! - [`schema`]: the `.avsc` files of `schemas/` and `schemas/released/`,
//!   compiled in; fingerprints; each record's [`SchemaSet`] of writer
//!   schemas.
//! - [`topics`]: the topic names (the contract with producers and consumers).
//! - [`error`]: [`ModelError`], one enum for the crate, each variant with a
//!   stable reason code for dead letters and metrics.
//!
//! Invalid values cannot be constructed: every constructor validates, and
//! decoding bad bytes returns a [`ModelError`], never panics.

mod binary;
pub mod codec;
pub mod error;
pub mod geo;
pub mod ids;
pub mod records;
pub mod schema;
pub mod text;
pub mod time;
pub mod topics;
mod value;

pub use codec::{
    AvroRecord, ConfluentIds, DecodeOptions, decode_confluent, decode_datum, decode_datum_with,
    decode_single_object, encode_confluent, encode_datum, encode_single_object,
    validate_not_future,
};
pub use error::ModelError;
pub use geo::{AccuracyM, Cell, LatLng};
pub use ids::{
    ActorId, CaseId, ClusterId, EntryId, ExposureId, MerchantId, ProviderId, SiteId, SubjectId,
    VenueId, VisitId,
};
pub use records::{
    ApprovalWindow, AuditAction, AuditOutcome, AuditRecord, CardTransaction, CaseEvent, CaseStatus,
    CaseTag, ClusterAlert, ClusterStatus, ContactClass, DataAccessApproval, DataCategory,
    DeadLetter, Exposure, ExposureCandidate, ExposureStatus, InterviewEntry, LocationBasis,
    LocationPing, LocationSource, ObservationSource, Place, Role, SegmentRef, SegmentUpdate,
    SegmentUpdateKind, SubjectCase, TimeWindow, VenueCheckin, Visit,
};
pub use schema::SchemaSet;
pub use text::{Mcc, Probability, Text};
pub use time::EventTime;
