//! # case-router
//!
//! - **Input:** `cases.events` (key = case id): [`CaseEvent`].
//! - **State:** none.
//! - **Output:** `cases.by-subject` (key = subject): one [`SubjectCase`]
//!   per pseudonym of the case, so that the subject-keyed segmenter (whose
//!   inputs are co-partitioned with `cases.by-subject`) learns which of its
//!   subjects are cases and can look back over their stored trails.
//! - **Time:** outputs carry the input's timestamp.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see `epitrace_stream`); either way with deterministic outputs (see
//!   `epitrace_engine`): a replay produces identical records.
//!
//! A case whose subjects change (UPDATED without one of its earlier
//! pseudonyms) leaves the dropped pseudonym tagged; the authority retracts
//! and re-confirms to remove it.

use epitrace_engine::{InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{CaseEvent, SubjectCase};
use epitrace_state::Txn;

use crate::common::{OrFatal, decode};
use crate::topology::{CASES, CASES_BY_SUBJECT};

/// The case-router processor.
#[derive(Debug, Default)]
pub struct CaseRouter {
    /// Confirmation time of the last case event (for the lag metric).
    last_event_ms: Option<i64>,
}

impl Processor for CaseRouter {
    fn name(&self) -> &'static str {
        "case-router"
    }

    fn inputs(&self) -> Vec<String> {
        vec![CASES.into()]
    }

    fn process(
        &mut self,
        record: &InputRecord<'_>,
        _txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let event: CaseEvent = decode(record)?;
        self.last_event_ms = Some(event.confirmed_at.as_millis());
        for sc in event.fan_out() {
            out.push(OutputRecord {
                topic: CASES_BY_SUBJECT.into(),
                key: sc.subject.as_bytes().to_vec(),
                payload: encode_single_object::<SubjectCase>(&sc).or_fatal()?,
                timestamp_ms: record.timestamp_ms,
            });
        }
        Ok(())
    }

    fn last_event_time_ms(&self) -> Option<i64> {
        self.last_event_ms
    }
}
