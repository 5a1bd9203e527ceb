//! The records of every topic, one module each: the inputs and outputs of
//! DESIGN §3, and the internal records of the repartition topics between
//! processors (DESIGN §4): [`SubjectCase`] (`cases.by-subject`),
//! [`SegmentUpdate`] (`presence.segments`) and [`ExposureCandidate`]
//! (`exposure.candidates`).
//!
//! Records are plain structs of validated newtypes, so most rules hold by
//! construction; rules that span fields (a checkout before its check-in, an
//! empty subject list) are checked by [`AvroRecord::validate`], which
//! decoding and encoding both run. Each module also holds the record's
//! hand-written mapping to and from Avro values.
//!
//! [`AvroRecord::validate`]: crate::codec::AvroRecord::validate

mod audit_record;
mod card_transaction;
mod case_event;
mod cluster_alert;
mod data_access_approval;
mod dead_letter;
mod exposure;
mod exposure_candidate;
mod interview_entry;
mod location_ping;
mod segment_update;
mod subject_case;
mod venue_checkin;
mod visit;

pub use audit_record::{AuditAction, AuditOutcome, AuditRecord, Role};
pub use card_transaction::CardTransaction;
pub use case_event::{CaseEvent, CaseStatus};
pub use cluster_alert::{ClusterAlert, ClusterStatus, Place};
pub use data_access_approval::{DataAccessApproval, DataCategory};
pub use dead_letter::DeadLetter;
pub use exposure::{ContactClass, Exposure, ExposureStatus, LocationBasis, TimeWindow};
pub use exposure_candidate::{ExposureCandidate, SegmentRef};
pub use interview_entry::InterviewEntry;
pub use location_ping::{LocationPing, LocationSource};
pub use segment_update::{CaseTag, SegmentUpdate, SegmentUpdateKind};
pub use subject_case::{ApprovalWindow, SubjectCase};
pub use venue_checkin::VenueCheckin;
pub use visit::{ObservationSource, Visit};

use crate::error::ModelError;
use crate::time::EventTime;

/// `later` must not be before `earlier`.
pub(crate) fn check_order(
    field: &'static str,
    earlier: EventTime,
    later: EventTime,
) -> Result<(), ModelError> {
    if later < earlier {
        return Err(ModelError::TimestampOrder {
            field,
            earlier_ms: earlier.as_millis(),
            later_ms: later.as_millis(),
        });
    }
    Ok(())
}

/// `AvroRecord::schema_set` for a record whose schemas are the compiled-in
/// `schema::$file`: parsed once per process.
macro_rules! compiled_schema_set {
    ($file:ident) => {
        fn schema_set() -> &'static crate::schema::SchemaSet {
            static SET: std::sync::OnceLock<crate::schema::SchemaSet> = std::sync::OnceLock::new();
            SET.get_or_init(|| crate::schema::compiled(&crate::schema::$file))
        }
    };
}
pub(crate) use compiled_schema_set;

/// Declares a closed set as a Rust enum mirroring an Avro enum: variants in
/// schema symbol order, `as_symbol` / `from_symbol`, and the Avro value.
macro_rules! symbol_enum {
    (
        $(#[$doc:meta])*
        $name:ident, $field:literal,
        { $($(#[$vdoc:meta])* $variant:ident = $symbol:literal),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the order of the schema's symbols.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The Avro enum symbol.
            #[must_use]
            pub const fn as_symbol(self) -> &'static str {
                match self {
                    $(Self::$variant => $symbol),+
                }
            }

            /// Parses an Avro enum symbol.
            ///
            /// # Errors
            /// [`ModelError::UnknownSymbol`](crate::ModelError::UnknownSymbol)
            /// for a symbol this build does not know.
            pub fn from_symbol(symbol: &str) -> Result<Self, crate::ModelError> {
                match symbol {
                    $($symbol => Ok(Self::$variant),)+
                    _ => Err(crate::ModelError::UnknownSymbol {
                        field: $field,
                        symbol: symbol.chars().take(64).collect(),
                    }),
                }
            }

            /// The Avro value: symbol index and name.
            pub(crate) fn to_value(self) -> apache_avro::types::Value {
                // Fieldless enum: the discriminant is the schema symbol index.
                apache_avro::types::Value::Enum(self as u32, self.as_symbol().to_owned())
            }
        }
    };
}
pub(crate) use symbol_enum;
