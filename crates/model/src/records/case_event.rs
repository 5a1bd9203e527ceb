//! `cases.events`: a change in a confirmed case.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::ids::{CaseId, SubjectId};
use crate::records::{check_order, symbol_enum};
use crate::text::Text;
use crate::time::EventTime;
use crate::value::{self, Fields, opt, record, str_value, subject_value, ts};

symbol_enum!(
    /// Lifecycle of a case.
    CaseStatus, "status", {
        /// A new confirmed case: start tracing.
        Confirmed = "CONFIRMED",
        /// Corrected fields (subjects, infectious window): re-trace.
        Updated = "UPDATED",
        /// A false positive: withdraw every output derived from the case.
        Retracted = "RETRACTED",
        /// Tracing finished.
        Closed = "CLOSED",
    }
);

/// A change in a confirmed case, from the health authority.
#[derive(Clone, PartialEq, Debug)]
pub struct CaseEvent {
    /// The case.
    pub case_id: CaseId,
    /// The patient's phone and card pseudonyms: 1 to [`CaseEvent::MAX_SUBJECTS`], no duplicates.
    pub subjects: Vec<SubjectId>,
    /// When the case was confirmed.
    pub confirmed_at: EventTime,
    /// When symptoms began; `None` when asymptomatic.
    pub symptom_onset: Option<EventTime>,
    /// Start of the infectious period to trace.
    pub infectious_from: EventTime,
    /// End of the infectious period; `None` while open. Never before `infectious_from`.
    pub infectious_until: Option<EventTime>,
    /// What this event does to the case.
    pub status: CaseStatus,
    /// The health region in charge of the case; the investigators' API
    /// shows the case to that region's investigators. `None` (and every
    /// record written before the field existed): to investigators of every
    /// region only.
    pub region: Option<Text>,
}

impl CaseEvent {
    /// Most pseudonyms one person can have in a case event.
    pub const MAX_SUBJECTS: usize = 16;
}

impl AvroRecord for CaseEvent {
    const NAME: &'static str = "CaseEvent";

    crate::records::compiled_schema_set!(CASE_EVENT);

    fn to_value(&self) -> Value {
        record([
            ("case_id", str_value(self.case_id.as_str())),
            (
                "subjects",
                Value::Array(self.subjects.iter().map(subject_value).collect()),
            ),
            ("confirmed_at", ts(self.confirmed_at)),
            ("symptom_onset", opt(self.symptom_onset.map(ts))),
            ("infectious_from", ts(self.infectious_from)),
            ("infectious_until", opt(self.infectious_until.map(ts))),
            ("status", self.status.to_value()),
            (
                "region",
                opt(self.region.as_ref().map(|r| str_value(r.as_str()))),
            ),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let subjects = f.array("subjects")?;
        if subjects.len() > Self::MAX_SUBJECTS {
            return Err(too_many());
        }
        let event = Self {
            case_id: CaseId::new(f.string("case_id")?)?,
            subjects: subjects
                .iter()
                .map(|s| value::subject("subjects", s))
                .collect::<Result<_, _>>()?,
            confirmed_at: f.time("confirmed_at")?,
            symptom_onset: f.opt_time("symptom_onset")?,
            infectious_from: f.time("infectious_from")?,
            infectious_until: f.opt_time("infectious_until")?,
            status: CaseStatus::from_symbol(f.symbol("status")?)?,
            region: f
                .opt_string("region")?
                .map(|r| Text::new("region", r))
                .transpose()?,
        };
        event.validate()?;
        Ok(event)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.subjects.is_empty() {
            return Err(ModelError::InvalidRecord {
                field: "subjects",
                reason: "empty",
            });
        }
        if self.subjects.len() > Self::MAX_SUBJECTS {
            return Err(too_many());
        }
        for (i, s) in self.subjects.iter().enumerate() {
            if self.subjects[..i].contains(s) {
                return Err(ModelError::InvalidRecord {
                    field: "subjects",
                    reason: "duplicate subject",
                });
            }
        }
        if let Some(until) = self.infectious_until {
            check_order("infectious_until", self.infectious_from, until)?;
        }
        Ok(())
    }

    /// `infectious_until` is left out: the end of isolation may be planned
    /// ahead.
    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        let mut t = vec![
            ("confirmed_at", self.confirmed_at),
            ("infectious_from", self.infectious_from),
        ];
        t.extend(self.symptom_onset.map(|v| ("symptom_onset", v)));
        t
    }
}

fn too_many() -> ModelError {
    ModelError::InvalidRecord {
        field: "subjects",
        reason: "more than 16 subjects",
    }
}
