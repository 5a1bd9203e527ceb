//! `tracing.exposures`: a contact who shared place and time with a case.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::Cell;
use crate::ids::{CaseId, ExposureId, SubjectId};
use crate::records::DataCategory;
use crate::records::visit::{cell_from_long, cell_to_long};
use crate::records::{check_order, symbol_enum};
use crate::text::Probability;
use crate::time::EventTime;
use crate::value::{self, Fields, record, str_value, subject_value, ts};

symbol_enum!(
    /// Lifecycle of an exposure.
    ExposureStatus, "status", {
        /// First detection.
        New = "NEW",
        /// More overlap found.
        Updated = "UPDATED",
        /// The case was retracted: the exposure no longer holds.
        Retracted = "RETRACTED",
    }
);

symbol_enum!(
    /// What to do with a contact, from its likelihood.
    ContactClass, "contact_class", {
        /// Likelihood at or above the close threshold: call them;
        /// quarantine.
        Close = "CLOSE",
        /// Below it: the broad notification list (a text to everyone near
        /// the place and time).
        Area = "AREA",
    }
);

/// The counted overlap of an exposure split by what the most precise
/// footprints of the two (each segment's core cell) say about each
/// overlap; the four add up to the exposure's `cumulative_s`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct LocationBasis {
    /// Seconds where both were placed precisely at the same place (GPS or
    /// Wi-Fi fixes, card payments, check-ins).
    pub fine_s: u32,
    /// Seconds not in `fine_s` where the cores nest and the coarser is a
    /// near cell (a dense downtown tower).
    pub near_s: u32,
    /// Seconds not above where the cores nest and the coarser is a wide
    /// tower cell.
    pub wide_s: u32,
    /// The remaining seconds: the cores do not nest (the precise footprints
    /// put them in different places).
    pub apart_s: u32,
    /// Of the seconds above, those both spent on one moving path (riding
    /// the same subway car or bus; 0 on records written before it).
    pub transit_s: u32,
}

impl LocationBasis {
    /// The seconds the four parts add up to.
    #[must_use]
    pub const fn total_s(self) -> u64 {
        self.fine_s as u64 + self.near_s as u64 + self.wide_s as u64 + self.apart_s as u64
    }

    /// Whether most of the counted time (at least half of the four parts,
    /// which add up to the exposure's `cumulative_s`) was on one moving
    /// path: the contact is a transit contact.
    #[must_use]
    pub const fn is_transit(self) -> bool {
        self.transit_s > 0 && 2 * self.transit_s as u64 >= self.total_s()
    }

    fn to_value(self) -> Value {
        record([
            ("fine_s", Value::Long(i64::from(self.fine_s))),
            ("near_s", Value::Long(i64::from(self.near_s))),
            ("wide_s", Value::Long(i64::from(self.wide_s))),
            ("apart_s", Value::Long(i64::from(self.apart_s))),
            ("transit_s", Value::Long(i64::from(self.transit_s))),
        ])
    }

    fn from_value(field: &'static str, value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(field, value)?;
        let secs = |name: &'static str| {
            u32::try_from(f.long(name)?).map_err(|_| ModelError::InvalidRecord {
                field: name,
                reason: "outside 0..=4294967295",
            })
        };
        Ok(Self {
            fine_s: secs("fine_s")?,
            near_s: secs("near_s")?,
            wide_s: secs("wide_s")?,
            apart_s: secs("apart_s")?,
            // Added after the basis: absent from a writer's value that
            // predates it.
            transit_s: match f.get("transit_s") {
                Ok(_) => secs("transit_s")?,
                Err(_) => 0,
            },
        })
    }
}

/// A closed interval of event time, `start <= end`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimeWindow {
    start: EventTime,
    end: EventTime,
}

impl TimeWindow {
    /// Validates an interval.
    ///
    /// # Errors
    /// [`ModelError::TimestampOrder`] when `end` is before `start`.
    pub fn new(start: EventTime, end: EventTime) -> Result<Self, ModelError> {
        check_order("end", start, end)?;
        Ok(Self { start, end })
    }

    /// Start of the interval.
    #[must_use]
    pub const fn start(self) -> EventTime {
        self.start
    }

    /// End of the interval.
    #[must_use]
    pub const fn end(self) -> EventTime {
        self.end
    }

    pub(crate) fn from_value(field: &'static str, value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(field, value)?;
        Self::new(f.time("start")?, f.time("end")?)
    }
}

/// A contact exposed to a case.
#[derive(Clone, PartialEq, Debug)]
pub struct Exposure {
    /// Deterministic id, for dedupe and upsert.
    pub exposure_id: ExposureId,
    /// The case.
    pub case_id: CaseId,
    /// The exposed contact.
    pub contact: SubjectId,
    /// Where the first overlap happened.
    pub first_cell: Cell,
    /// The overlap intervals (non-empty).
    pub windows: Vec<TimeWindow>,
    /// Total overlap in seconds, as counted by the exposure rule.
    pub cumulative_s: u32,
    /// Risk score.
    pub risk: Probability,
    /// What this record does to the exposure.
    pub status: ExposureStatus,
    /// When the input that changed the exposure reached epitrace: the
    /// broker append time of the input record (feed record, case event or
    /// approval) whose processing changed it, carried through every stage
    /// ([`crate::topics::ORIGIN_HEADER`]); deterministic on replay.
    pub detected_at: EventTime,
    /// The categories of the case's data the counted overlaps rest on, in
    /// schema order, no duplicates; on a RETRACTED record, those of the
    /// version it retracts (empty on records written before the field
    /// existed).
    pub evidence: Vec<DataCategory>,
    /// The probability that the contact was truly within close range of
    /// the case for the counted time, from `basis` through the calibrated
    /// likelihood model; `None` on records written before the field.
    pub likelihood: Option<Probability>,
    /// The class derived from `likelihood`; `None` on records written
    /// before the field.
    pub contact_class: Option<ContactClass>,
    /// The evidence `likelihood` is computed from; `None` on records
    /// written before the field.
    pub basis: Option<LocationBasis>,
}

impl Exposure {
    /// Whether the contact is a transit contact
    /// ([`LocationBasis::is_transit`]).
    #[must_use]
    pub fn is_transit(&self) -> bool {
        self.basis.is_some_and(LocationBasis::is_transit)
    }
}

impl AvroRecord for Exposure {
    const NAME: &'static str = "Exposure";

    crate::records::compiled_schema_set!(EXPOSURE);

    fn to_value(&self) -> Value {
        record([
            ("exposure_id", str_value(self.exposure_id.as_str())),
            ("case_id", str_value(self.case_id.as_str())),
            ("contact", subject_value(&self.contact)),
            ("first_cell", Value::Long(cell_to_long(self.first_cell))),
            (
                "windows",
                Value::Array(
                    self.windows
                        .iter()
                        .map(|w| record([("start", ts(w.start)), ("end", ts(w.end))]))
                        .collect(),
                ),
            ),
            ("cumulative_s", Value::Long(i64::from(self.cumulative_s))),
            ("risk", Value::Double(self.risk.get())),
            ("status", self.status.to_value()),
            ("detected_at", ts(self.detected_at)),
            (
                "evidence",
                Value::Array(self.evidence.iter().map(|c| c.to_value()).collect()),
            ),
            (
                "likelihood",
                value::opt(self.likelihood.map(|p| Value::Double(p.get()))),
            ),
            (
                "contact_class",
                value::opt(self.contact_class.map(ContactClass::to_value)),
            ),
            ("basis", value::opt(self.basis.map(LocationBasis::to_value))),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let exposure = Self {
            exposure_id: ExposureId::new(f.string("exposure_id")?)?,
            case_id: CaseId::new(f.string("case_id")?)?,
            contact: f.subject("contact")?,
            first_cell: cell_from_long(f.long("first_cell")?)?,
            windows: f
                .array("windows")?
                .iter()
                .map(|w| TimeWindow::from_value("windows", w))
                .collect::<Result<_, _>>()?,
            cumulative_s: u32::try_from(f.long("cumulative_s")?).map_err(|_| {
                ModelError::InvalidRecord {
                    field: "cumulative_s",
                    reason: "outside 0..=4294967295",
                }
            })?,
            risk: Probability::new("risk", f.double("risk")?)?,
            status: ExposureStatus::from_symbol(f.symbol("status")?)?,
            detected_at: f.time("detected_at")?,
            evidence: f
                .array("evidence")?
                .iter()
                .map(|c| DataCategory::from_symbol(value::symbol("evidence", c)?))
                .collect::<Result<_, _>>()?,
            likelihood: f
                .opt_double("likelihood")?
                .map(|p| Probability::new("likelihood", p))
                .transpose()?,
            contact_class: value::optional(
                "contact_class",
                f.get("contact_class")?,
                |field, v| ContactClass::from_symbol(value::symbol(field, v)?),
            )?,
            basis: value::optional("basis", f.get("basis")?, LocationBasis::from_value)?,
        };
        exposure.validate()?;
        Ok(exposure)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.windows.is_empty() {
            return Err(ModelError::InvalidRecord {
                field: "windows",
                reason: "empty",
            });
        }
        if self.evidence.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ModelError::InvalidRecord {
                field: "evidence",
                reason: "not in schema order or duplicated",
            });
        }
        if let Some(b) = self.basis
            && b.total_s() != u64::from(self.cumulative_s)
        {
            return Err(ModelError::InvalidRecord {
                field: "basis",
                reason: "does not add up to cumulative_s",
            });
        }
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        let mut t = vec![("detected_at", self.detected_at)];
        for w in &self.windows {
            t.push(("windows.start", w.start));
            t.push(("windows.end", w.end));
        }
        t
    }
}
