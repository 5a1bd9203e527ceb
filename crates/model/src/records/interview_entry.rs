//! `cases.interviews`: a place and time a patient stated in interview.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::LatLng;
use crate::ids::{ActorId, CaseId, EntryId};
use crate::records::check_order;
use crate::text::Text;
use crate::time::EventTime;
use crate::value::{Fields, opt, record, str_value, ts};

/// A place and time a patient stated in interview, as an investigator
/// recorded it. The latest record per (case, entry) wins.
#[derive(Clone, PartialEq, Debug)]
pub struct InterviewEntry {
    /// The case.
    pub case_id: CaseId,
    /// The entry within the case.
    pub entry_id: EntryId,
    /// The stated place.
    pub position: LatLng,
    /// How precisely the place is known, in metres
    /// ([`InterviewEntry::MIN_RADIUS_M`]..=[`InterviewEntry::MAX_RADIUS_M`]).
    pub radius_m: f64,
    /// Stated arrival.
    pub start: EventTime,
    /// Stated departure; not before `start`.
    pub end: EventTime,
    /// The place as stated.
    pub label: Option<Text>,
    /// Who recorded it.
    pub recorded_by: ActorId,
    /// When it was recorded.
    pub recorded_at: EventTime,
    /// Withdrawn.
    pub retracted: bool,
}

impl InterviewEntry {
    /// Smallest radius accepted, in metres.
    pub const MIN_RADIUS_M: f64 = 1.0;
    /// Largest radius accepted, in metres.
    pub const MAX_RADIUS_M: f64 = 50_000.0;
}

impl AvroRecord for InterviewEntry {
    const NAME: &'static str = "InterviewEntry";

    crate::records::compiled_schema_set!(INTERVIEW_ENTRY);

    fn to_value(&self) -> Value {
        record([
            ("case_id", str_value(self.case_id.as_str())),
            ("entry_id", str_value(self.entry_id.as_str())),
            ("lat", Value::Double(self.position.lat())),
            ("lng", Value::Double(self.position.lng())),
            ("radius_m", Value::Double(self.radius_m)),
            ("start", ts(self.start)),
            ("end", ts(self.end)),
            (
                "label",
                opt(self.label.as_ref().map(|l| str_value(l.as_str()))),
            ),
            ("recorded_by", str_value(self.recorded_by.as_str())),
            ("recorded_at", ts(self.recorded_at)),
            ("retracted", Value::Boolean(self.retracted)),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let entry = Self {
            case_id: CaseId::new(f.string("case_id")?)?,
            entry_id: EntryId::new(f.string("entry_id")?)?,
            position: LatLng::new(f.double("lat")?, f.double("lng")?)?,
            radius_m: f.double("radius_m")?,
            start: f.time("start")?,
            end: f.time("end")?,
            label: f
                .opt_string("label")?
                .map(|l| Text::new("label", l))
                .transpose()?,
            recorded_by: ActorId::new(f.string("recorded_by")?)?,
            recorded_at: f.time("recorded_at")?,
            retracted: f.boolean("retracted")?,
        };
        entry.validate()?;
        Ok(entry)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if !(Self::MIN_RADIUS_M..=Self::MAX_RADIUS_M).contains(&self.radius_m) {
            return Err(ModelError::InvalidRecord {
                field: "radius_m",
                reason: "outside 1 to 50000 metres",
            });
        }
        check_order("end", self.start, self.end)
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        vec![
            ("start", self.start),
            ("end", self.end),
            ("recorded_at", self.recorded_at),
        ]
    }
}
