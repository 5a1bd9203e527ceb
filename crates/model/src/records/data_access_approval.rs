//! `cases.approvals`: a legal approval to join one category of a case's data.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::ids::CaseId;
use crate::records::symbol_enum;
use crate::text::Text;
use crate::time::EventTime;
use crate::value::{Fields, record, str_value, ts};

symbol_enum!(
    /// A category of personal data that needs its own approval.
    DataCategory, "category", {
        /// Telecom location records (seed: police approval).
        Location = "LOCATION",
        /// Card transactions (seed: the card association's approval).
        Card = "CARD",
        /// Venue entry logs.
        Checkin = "CHECKIN",
        /// The places a patient stated in interview, used as tracing
        /// evidence (seed: the health authority's own decision).
        Interview = "INTERVIEW",
    }
);

/// An approval to join one category of a case's personal data while it holds.
#[derive(Clone, PartialEq, Debug)]
pub struct DataAccessApproval {
    /// The case.
    pub case_id: CaseId,
    /// The category the approval opens.
    pub category: DataCategory,
    /// Who approved.
    pub authority: Text,
    /// The approval's reference number or document id.
    pub reference: Text,
    /// When it was granted.
    pub approved_at: EventTime,
    /// When it lapses; strictly after `approved_at`.
    pub expires_at: EventTime,
}

impl AvroRecord for DataAccessApproval {
    const NAME: &'static str = "DataAccessApproval";

    crate::records::compiled_schema_set!(DATA_ACCESS_APPROVAL);

    fn to_value(&self) -> Value {
        record([
            ("case_id", str_value(self.case_id.as_str())),
            ("category", self.category.to_value()),
            ("authority", str_value(self.authority.as_str())),
            ("reference", str_value(self.reference.as_str())),
            ("approved_at", ts(self.approved_at)),
            ("expires_at", ts(self.expires_at)),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let approval = Self {
            case_id: CaseId::new(f.string("case_id")?)?,
            category: DataCategory::from_symbol(f.symbol("category")?)?,
            authority: Text::new("authority", f.string("authority")?)?,
            reference: Text::new("reference", f.string("reference")?)?,
            approved_at: f.time("approved_at")?,
            expires_at: f.time("expires_at")?,
        };
        approval.validate()?;
        Ok(approval)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.expires_at <= self.approved_at {
            return Err(ModelError::TimestampOrder {
                field: "expires_at",
                earlier_ms: self.approved_at.as_millis(),
                later_ms: self.expires_at.as_millis(),
            });
        }
        Ok(())
    }

    /// `expires_at` is left out: an approval legitimately lapses in the future.
    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        vec![("approved_at", self.approved_at)]
    }
}
