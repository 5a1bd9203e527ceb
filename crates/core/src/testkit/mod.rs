//! Test support: the brute-force [`oracle`] and the in-memory [`pipeline`].
//!
//! Enabled by the `testkit` feature: for tests, and for `epitrace demo`,
//! which checks its own result against the oracle. The oracle shares no
//! algorithm with the incremental path — it re-implements
//! segmentation, co-location and the rule as plainly as possible — so that
//! agreement between the two is evidence, not tautology.

pub mod oracle;
pub mod pipeline;

use epitrace_model::records::CaseEvent;
use epitrace_model::{CaseId, SubjectId};

use crate::ingest::case_window;
use crate::interval::Interval;
use crate::observation::Observation;

/// A confirmed case as the tracing logic sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseSpec {
    /// The case.
    pub case: CaseId,
    /// The person's pseudonyms (phone, cards).
    pub subjects: Vec<SubjectId>,
    /// The infectious window.
    pub window: Interval,
}

impl CaseSpec {
    /// The spec a case event describes.
    #[must_use]
    pub fn from_event(event: &CaseEvent) -> Self {
        Self {
            case: event.case_id.clone(),
            subjects: event.subjects.clone(),
            window: case_window(event),
        }
    }
}

/// One input to the in-memory pipeline, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A sighting of a subject.
    Observation {
        /// Who.
        subject: SubjectId,
        /// What was seen.
        obs: Observation,
    },
    /// A case confirmed or updated (replaces an earlier spec of the same id).
    Case(CaseSpec),
    /// A case retracted.
    Retract(CaseId),
}
