//! `tracing.timelines`: where a case subject was and for how long.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::Cell;
use crate::ids::{CaseId, SubjectId, VisitId};
use crate::records::{check_order, symbol_enum};
use crate::text::Probability;
use crate::time::EventTime;
use crate::value::{self, Fields, record, str_value, subject_value, ts};

symbol_enum!(
    /// A kind of observation a visit or segment is built from.
    ObservationSource, "sources", {
        /// Telecom base-station location.
        Cell = "CELL",
        /// Telecom GPS fix.
        Gps = "GPS",
        /// Telecom Wi-Fi positioning.
        Wifi = "WIFI",
        /// Card transaction.
        Card = "CARD",
        /// Venue check-in.
        Checkin = "CHECKIN",
        /// A place the patient stated in interview: on the evidence
        /// segments the case-router publishes, never on a visit.
        Interview = "INTERVIEW",
    }
);

/// A stay of a case subject at a place: one entry of the case's timeline.
///
/// The wire record also carries `res`, the resolution of `cell`; it is
/// derived here ([`Visit::res`]) and checked on decode.
#[derive(Clone, PartialEq, Debug)]
pub struct Visit {
    /// Deterministic id, for upserts.
    pub visit_id: VisitId,
    /// The case.
    pub case_id: CaseId,
    /// The case's phone or card that made the visit.
    pub subject: SubjectId,
    /// The place's footprint.
    pub cell: Cell,
    /// When the visit began.
    pub start: EventTime,
    /// When it ended; never before `start`.
    pub end: EventTime,
    /// Time spent at the place, in seconds.
    pub dwell_s: u32,
    /// Kinds of observation the visit is built from (non-empty).
    pub sources: Vec<ObservationSource>,
    /// Confidence that the subject was there for the whole visit.
    pub confidence: Probability,
    /// The visit no longer exists: consumers delete it by `visit_id`.
    pub retracted: bool,
}

impl Visit {
    /// The H3 resolution of [`Visit::cell`].
    #[must_use]
    pub fn res(&self) -> u8 {
        u8::from(self.cell.resolution())
    }
}

impl AvroRecord for Visit {
    const NAME: &'static str = "Visit";

    crate::records::compiled_schema_set!(VISIT);

    fn to_value(&self) -> Value {
        record([
            ("visit_id", str_value(self.visit_id.as_str())),
            ("case_id", str_value(self.case_id.as_str())),
            ("subject", subject_value(&self.subject)),
            ("cell", Value::Long(cell_to_long(self.cell))),
            ("res", Value::Int(i32::from(self.res()))),
            ("start", ts(self.start)),
            ("end", ts(self.end)),
            ("dwell_s", Value::Long(i64::from(self.dwell_s))),
            (
                "sources",
                Value::Array(
                    self.sources
                        .iter()
                        .map(|s| ObservationSource::to_value(*s))
                        .collect(),
                ),
            ),
            ("confidence", Value::Double(self.confidence.get())),
            ("retracted", Value::Boolean(self.retracted)),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let cell = cell_from_long(f.long("cell")?)?;
        let res = f.int("res")?;
        if !(0..=15).contains(&res) {
            return Err(ModelError::InvalidResolution(i64::from(res)));
        }
        if i32::from(u8::from(cell.resolution())) != res {
            return Err(ModelError::InvalidRecord {
                field: "res",
                reason: "differs from the resolution of cell",
            });
        }
        let visit = Self {
            visit_id: VisitId::new(f.string("visit_id")?)?,
            case_id: CaseId::new(f.string("case_id")?)?,
            subject: f.subject("subject")?,
            cell,
            start: f.time("start")?,
            end: f.time("end")?,
            dwell_s: u32::try_from(f.long("dwell_s")?).map_err(|_| ModelError::InvalidRecord {
                field: "dwell_s",
                reason: "outside 0..=4294967295",
            })?,
            sources: f
                .array("sources")?
                .iter()
                .map(|s| ObservationSource::from_symbol(value::symbol("sources", s)?))
                .collect::<Result<_, _>>()?,
            confidence: Probability::new("confidence", f.double("confidence")?)?,
            retracted: f.boolean("retracted")?,
        };
        visit.validate()?;
        Ok(visit)
    }

    fn validate(&self) -> Result<(), ModelError> {
        check_order("end", self.start, self.end)?;
        if self.sources.is_empty() {
            return Err(ModelError::InvalidRecord {
                field: "sources",
                reason: "empty",
            });
        }
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        vec![("start", self.start), ("end", self.end)]
    }
}

/// An H3 index as Avro `long`: the same 64 bits (valid indexes have the top
/// bit clear, so the value is positive).
pub(crate) fn cell_to_long(cell: Cell) -> i64 {
    i64::from_ne_bytes(cell.raw().to_ne_bytes())
}

/// Validates an Avro `long` as an H3 cell index.
pub(crate) fn cell_from_long(raw: i64) -> Result<Cell, ModelError> {
    Cell::new(u64::from_ne_bytes(raw.to_ne_bytes()))
}
