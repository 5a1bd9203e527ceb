//! `cases.by-subject` (internal): a case event fanned out to one subject.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::ids::{CaseId, SubjectId};
use crate::records::case_event::{CaseEvent, CaseStatus};
use crate::records::check_order;
use crate::records::data_access_approval::{DataAccessApproval, DataCategory};
use crate::records::segment_update::CaseTag;
use crate::time::EventTime;
use crate::value::{Fields, opt, record, str_value, subject_value, ts};

/// A case event as seen by one of the case's subjects: repartitioned by
/// subject (key = the subject's 16 bytes) so that the subject-keyed
/// segmenter learns that the subject is a case, and over which infectious
/// window. [`CaseEvent::fan_out`] makes one per subject.
#[derive(Clone, PartialEq, Debug)]
pub struct SubjectCase {
    /// One of the case's phone or card pseudonyms; the record key.
    pub subject: SubjectId,
    /// The case.
    pub case_id: CaseId,
    /// The status of the case event this was fanned out from.
    pub status: CaseStatus,
    /// Start of the infectious period to trace.
    pub infectious_from: EventTime,
    /// End of the infectious period; `None` while open. Never before `infectious_from`.
    pub infectious_until: Option<EventTime>,
    /// When the case was confirmed.
    pub confirmed_at: EventTime,
    /// The case's approvals that held when the case-router last read them
    /// (one per reference); empty from version-1 writers.
    pub approvals: Vec<ApprovalWindow>,
}

/// One approval as the segmenter needs it: the category it opens and when
/// it lapses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ApprovalWindow {
    /// The category.
    pub category: DataCategory,
    /// When it lapses.
    pub expires_at: EventTime,
}

impl From<&DataAccessApproval> for ApprovalWindow {
    fn from(a: &DataAccessApproval) -> Self {
        Self {
            category: a.category,
            expires_at: a.expires_at,
        }
    }
}

impl ApprovalWindow {
    fn to_value(self) -> Value {
        record([
            ("category", self.category.to_value()),
            ("expires_at", ts(self.expires_at)),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of("ApprovalWindow", value)?;
        Ok(Self {
            category: DataCategory::from_symbol(f.symbol("category")?)?,
            expires_at: f.time("expires_at")?,
        })
    }
}

impl SubjectCase {
    /// The case membership this record gives its subject, as stamped on the
    /// subject's segments ([`SegmentUpdate::cases`]).
    ///
    /// [`SegmentUpdate::cases`]: crate::records::SegmentUpdate::cases
    #[must_use]
    pub fn tag(&self) -> CaseTag {
        CaseTag {
            case_id: self.case_id.clone(),
            infectious_from: self.infectious_from,
            infectious_until: self.infectious_until,
        }
    }
}

impl CaseEvent {
    /// The event fanned out to each of its subjects, in the order of
    /// `subjects`: the records of `cases.by-subject` (no approvals).
    #[must_use]
    pub fn fan_out(&self) -> Vec<SubjectCase> {
        self.fan_out_with(&[])
    }

    /// [`CaseEvent::fan_out`] with the case's approvals that hold.
    #[must_use]
    pub fn fan_out_with(&self, approvals: &[ApprovalWindow]) -> Vec<SubjectCase> {
        self.subjects
            .iter()
            .map(|subject| SubjectCase {
                subject: *subject,
                case_id: self.case_id.clone(),
                status: self.status,
                infectious_from: self.infectious_from,
                infectious_until: self.infectious_until,
                confirmed_at: self.confirmed_at,
                approvals: approvals.to_vec(),
            })
            .collect()
    }
}

impl AvroRecord for SubjectCase {
    const NAME: &'static str = "SubjectCase";

    crate::records::compiled_schema_set!(SUBJECT_CASE);

    fn to_value(&self) -> Value {
        record([
            ("subject", subject_value(&self.subject)),
            ("case_id", str_value(self.case_id.as_str())),
            ("status", self.status.to_value()),
            ("infectious_from", ts(self.infectious_from)),
            ("infectious_until", opt(self.infectious_until.map(ts))),
            ("confirmed_at", ts(self.confirmed_at)),
            (
                "approvals",
                Value::Array(
                    self.approvals
                        .iter()
                        .map(|a| ApprovalWindow::to_value(*a))
                        .collect(),
                ),
            ),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let sc = Self {
            subject: f.subject("subject")?,
            case_id: CaseId::new(f.string("case_id")?)?,
            status: CaseStatus::from_symbol(f.symbol("status")?)?,
            infectious_from: f.time("infectious_from")?,
            infectious_until: f.opt_time("infectious_until")?,
            confirmed_at: f.time("confirmed_at")?,
            approvals: f
                .array("approvals")?
                .iter()
                .map(ApprovalWindow::from_value)
                .collect::<Result<_, _>>()?,
        };
        sc.validate()?;
        Ok(sc)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if let Some(until) = self.infectious_until {
            check_order("infectious_until", self.infectious_from, until)?;
        }
        Ok(())
    }

    /// `infectious_until` is left out: the end of isolation may be planned
    /// ahead.
    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        vec![
            ("infectious_from", self.infectious_from),
            ("confirmed_at", self.confirmed_at),
        ]
    }
}
