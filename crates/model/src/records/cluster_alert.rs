//! `tracing.clusters`: several cases that share places and times.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::Cell;
use crate::ids::{CaseId, ClusterId};
use crate::records::visit::{cell_from_long, cell_to_long};
use crate::records::{check_order, symbol_enum};
use crate::text::Text;
use crate::time::EventTime;
use crate::value::{self, Fields, opt, record, str_value, ts};

symbol_enum!(
    /// Lifecycle of a cluster.
    ClusterStatus, "status", {
        /// First detection.
        New = "NEW",
        /// Cases added.
        Growing = "GROWING",
        /// Absorbed into another cluster (see `merged_into`).
        Merged = "MERGED",
        /// No new case within the watch period.
        Closed = "CLOSED",
        /// Changed without new cases: a case removed (retracted), places or
        /// the index case revised. Added after v1.
        Updated = "UPDATED",
        /// No longer a cluster (too few cases left after a retraction):
        /// consumers delete it. Added after v1.
        Dissolved = "DISSOLVED",
    }
);

/// A place-time shared by cases of a cluster, `start <= end`, with the
/// cases linked there and the likely source among them.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Place {
    cell: Cell,
    start: EventTime,
    end: EventTime,
    cases: Vec<CaseId>,
    source_case: Option<CaseId>,
}

impl Place {
    /// Validates a place-time (no cases, no source: see
    /// [`Place::with_cases`]).
    ///
    /// # Errors
    /// [`ModelError::TimestampOrder`] when `end` is before `start`.
    pub fn new(cell: Cell, start: EventTime, end: EventTime) -> Result<Self, ModelError> {
        check_order("places.end", start, end)?;
        Ok(Self {
            cell,
            start,
            end,
            cases: Vec::new(),
            source_case: None,
        })
    }

    /// The place-time with the cases linked there and the likely source.
    #[must_use]
    pub fn with_cases(self, cases: Vec<CaseId>, source_case: Option<CaseId>) -> Self {
        Self {
            cases,
            source_case,
            ..self
        }
    }

    /// The place.
    #[must_use]
    pub const fn cell(&self) -> Cell {
        self.cell
    }

    /// Start of the shared period.
    #[must_use]
    pub const fn start(&self) -> EventTime {
        self.start
    }

    /// End of the shared period.
    #[must_use]
    pub const fn end(&self) -> EventTime {
        self.end
    }

    /// The cases linked at this place-time (empty in v1 records).
    #[must_use]
    pub fn cases(&self) -> &[CaseId] {
        &self.cases
    }

    /// The likely source of transmission here, when known.
    #[must_use]
    pub const fn source_case(&self) -> Option<&CaseId> {
        self.source_case.as_ref()
    }

    fn to_value(&self) -> Value {
        record([
            ("cell", Value::Long(cell_to_long(self.cell))),
            ("start", ts(self.start)),
            ("end", ts(self.end)),
            (
                "cases",
                Value::Array(self.cases.iter().map(|c| str_value(c.as_str())).collect()),
            ),
            (
                "source_case",
                opt(self.source_case.as_ref().map(|c| str_value(c.as_str()))),
            ),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of("places", value)?;
        let cases = f
            .array("cases")?
            .iter()
            .map(|c| CaseId::new(value::string("places.cases", c)?))
            .collect::<Result<_, _>>()?;
        let source_case = f.opt_string("source_case")?.map(CaseId::new).transpose()?;
        Ok(Self::new(
            cell_from_long(f.long("cell")?)?,
            f.time("start")?,
            f.time("end")?,
        )?
        .with_cases(cases, source_case))
    }
}

/// The state of a cluster of cases.
#[derive(Clone, PartialEq, Debug)]
pub struct ClusterAlert {
    /// Deterministic id, for upsert.
    pub cluster_id: ClusterId,
    /// What this alert does to the cluster.
    pub status: ClusterStatus,
    /// The cases in the cluster (non-empty).
    pub cases: Vec<CaseId>,
    /// The place-times the cases share.
    pub places: Vec<Place>,
    /// The likely source case, when the evidence points to one.
    pub index_case: Option<CaseId>,
    /// Why `index_case` was chosen, or why none was.
    pub source_evidence: Text,
    /// Number of cases in the cluster (>= 1).
    pub size: u32,
    /// The surviving cluster; set exactly when `status` is `Merged`.
    pub merged_into: Option<ClusterId>,
    /// Event time at which this state was detected.
    pub detected_at: EventTime,
    /// The other live events sharing a case with this one (the
    /// transmission chains between events); empty in v1 records.
    pub linked_clusters: Vec<ClusterId>,
}

impl AvroRecord for ClusterAlert {
    const NAME: &'static str = "ClusterAlert";

    crate::records::compiled_schema_set!(CLUSTER_ALERT);

    fn to_value(&self) -> Value {
        record([
            ("cluster_id", str_value(self.cluster_id.as_str())),
            ("status", self.status.to_value()),
            (
                "cases",
                Value::Array(self.cases.iter().map(|c| str_value(c.as_str())).collect()),
            ),
            (
                "places",
                Value::Array(self.places.iter().map(Place::to_value).collect()),
            ),
            (
                "index_case",
                opt(self.index_case.as_ref().map(|c| str_value(c.as_str()))),
            ),
            ("source_evidence", str_value(self.source_evidence.as_str())),
            (
                "size",
                Value::Int(i32::try_from(self.size).unwrap_or(i32::MAX)),
            ),
            (
                "merged_into",
                opt(self.merged_into.as_ref().map(|c| str_value(c.as_str()))),
            ),
            ("detected_at", ts(self.detected_at)),
            (
                "linked_clusters",
                Value::Array(
                    self.linked_clusters
                        .iter()
                        .map(|c| str_value(c.as_str()))
                        .collect(),
                ),
            ),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let alert = Self {
            cluster_id: ClusterId::new(f.string("cluster_id")?)?,
            status: ClusterStatus::from_symbol(f.symbol("status")?)?,
            cases: f
                .array("cases")?
                .iter()
                .map(|c| CaseId::new(value::string("cases", c)?))
                .collect::<Result<_, _>>()?,
            places: f
                .array("places")?
                .iter()
                .map(Place::from_value)
                .collect::<Result<_, _>>()?,
            index_case: f.opt_string("index_case")?.map(CaseId::new).transpose()?,
            source_evidence: Text::new("source_evidence", f.string("source_evidence")?)?,
            size: u32::try_from(f.int("size")?).map_err(|_| size_error())?,
            merged_into: f
                .opt_string("merged_into")?
                .map(ClusterId::new)
                .transpose()?,
            detected_at: f.time("detected_at")?,
            linked_clusters: f
                .array("linked_clusters")?
                .iter()
                .map(|c| ClusterId::new(value::string("linked_clusters", c)?))
                .collect::<Result<_, _>>()?,
        };
        alert.validate()?;
        Ok(alert)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.cases.is_empty() {
            return Err(ModelError::InvalidRecord {
                field: "cases",
                reason: "empty",
            });
        }
        if self.size == 0 || i32::try_from(self.size).is_err() {
            return Err(size_error());
        }
        if (self.status == ClusterStatus::Merged) != self.merged_into.is_some() {
            return Err(ModelError::InvalidRecord {
                field: "merged_into",
                reason: "must be set exactly when status is MERGED",
            });
        }
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        let mut t = vec![("detected_at", self.detected_at)];
        for p in &self.places {
            t.push(("places.start", p.start));
            t.push(("places.end", p.end));
        }
        t
    }
}

fn size_error() -> ModelError {
    ModelError::InvalidRecord {
        field: "size",
        reason: "outside 1..=2147483647",
    }
}
