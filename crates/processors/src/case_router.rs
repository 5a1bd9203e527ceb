//! # case-router
//!
//! - **Inputs** (co-partitioned, key = case id): `cases.events`
//!   ([`CaseEvent`]) and `cases.approvals` ([`DataAccessApproval`]); a
//!   record keyed otherwise than by its case id is dead-lettered
//!   (`key_mismatch`).
//! - **State** (RocksDB, keyed by case):
//!   - `cases`: case → the latest [`CaseEvent`];
//!   - `approvals`: case | 0 | category | reference → the latest
//!     [`DataAccessApproval`] of that reference.
//! - **Output:** `cases.by-subject` (key = subject): one [`SubjectCase`]
//!   per pseudonym of the case, carrying the case's approvals (one per
//!   reference, as posted), on every case event and on every approval of a
//!   case already known — so that the subject-keyed segmenter (whose inputs
//!   are co-partitioned with `cases.by-subject`) learns which of its
//!   subjects are cases, over which window, and which categories of their
//!   data it may publish as visits. Whether an approval still holds is the
//!   segmenter's to judge, on its event time.
//! - **Retention:** by event time (the latest confirmation seen): each
//!   batch sweeps a slice of `cases` and deletes a case whose infectious
//!   period ended more than `topology.retention` behind it, with its
//!   approvals (open cases are kept).
//! - **Time:** outputs carry the input's timestamp.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see
//!   `epitrace_stream`); either way with deterministic outputs (see
//!   `epitrace_engine`): a replay produces identical records.
//!
//! A case whose subjects change (UPDATED without one of its earlier
//! pseudonyms) leaves the dropped pseudonym tagged; the authority retracts
//! and re-confirms to remove it.

use epitrace_engine::{InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{
    ApprovalWindow, CaseEvent, CaseStatus, DataAccessApproval, SubjectCase,
};
use epitrace_model::{CaseId, EventTime};
use epitrace_state::Txn;

use crate::common::{
    OrFatal, approval_key, case_prefix, check_key, decode, decode_value, encode_value, prefix_end,
    sweep_slice, unexpected_topic,
};
use crate::topology::{APPROVALS, CASES, CASES_BY_SUBJECT};

/// Store of case events.
pub const CASE_STATE: &str = "cases";
/// Store of approvals.
pub const APPROVAL_STATE: &str = "approvals";

/// The case-router processor.
#[derive(Debug, Default)]
pub struct CaseRouter {
    /// Confirmation time of the last case event (for the lag metric).
    last_event_ms: Option<i64>,
    /// How long ended cases are kept behind the stream time (ms); `None`
    /// keeps everything.
    retention_ms: Option<i64>,
    /// The latest confirmation seen: the clock retention runs on.
    stream_time_ms: Option<i64>,
    /// Where the retention sweep of `cases` goes on.
    sweep_cursor: Vec<u8>,
}

impl CaseRouter {
    /// The stores it needs.
    pub const STORES: &'static [&'static str] = &[CASE_STATE, APPROVAL_STATE];

    /// Keeps a case until its infectious period ended `retention_ms` behind
    /// the stream time.
    #[must_use]
    pub const fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = Some(retention_ms);
        self
    }

    /// The case's approvals, one per reference.
    fn approvals(case: &CaseId, txn: &Txn<'_>) -> Result<Vec<ApprovalWindow>, ProcessError> {
        let prefix = case_prefix(case);
        txn.scan(APPROVAL_STATE, &prefix, &prefix_end(&prefix))
            .or_fatal()?
            .iter()
            .map(|(_, v)| decode_value::<DataAccessApproval>(v).map(|a| ApprovalWindow::from(&a)))
            .collect()
    }

    fn fan_out(
        event: &CaseEvent,
        approvals: &[ApprovalWindow],
        ts: Option<i64>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        for sc in event.fan_out_with(approvals) {
            out.push(OutputRecord {
                topic: CASES_BY_SUBJECT.into(),
                key: sc.subject.as_bytes().to_vec(),
                payload: encode_single_object::<SubjectCase>(&sc).or_fatal()?,
                timestamp_ms: ts,
            });
        }
        Ok(())
    }

    fn sweep(&mut self, txn: &mut Txn<'_>) -> Result<(), ProcessError> {
        let (Some(now), Some(retention)) = (self.stream_time_ms, self.retention_ms) else {
            return Ok(());
        };
        let cutoff = now.saturating_sub(retention);
        for key in sweep_slice(txn, CASE_STATE, &mut self.sweep_cursor)? {
            let Some(bytes) = txn.get(CASE_STATE, &key).or_fatal()? else {
                continue;
            };
            let case: CaseEvent = decode_value(&bytes)?;
            if case
                .infectious_until
                .is_none_or(|u: EventTime| u.as_millis() >= cutoff)
            {
                continue;
            }
            let prefix = case_prefix(&case.case_id);
            txn.delete_range(APPROVAL_STATE, prefix.clone(), prefix_end(&prefix));
            txn.delete(CASE_STATE, key);
        }
        Ok(())
    }
}

impl Processor for CaseRouter {
    fn name(&self) -> &'static str {
        "case-router"
    }

    fn inputs(&self) -> Vec<String> {
        vec![CASES.into(), APPROVALS.into()]
    }

    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let ts = record.timestamp_ms;
        match record.topic {
            CASES => {
                let event: CaseEvent = decode(record)?;
                check_key(record, event.case_id.as_str().as_bytes(), "the case id")?;
                let at = event.confirmed_at.as_millis();
                self.last_event_ms = Some(at);
                self.stream_time_ms = Some(self.stream_time_ms.map_or(at, |t| t.max(at)));
                txn.put(
                    CASE_STATE,
                    event.case_id.as_str().as_bytes(),
                    encode_value(&event)?,
                );
                let approvals = Self::approvals(&event.case_id, txn)?;
                Self::fan_out(&event, &approvals, ts, out)
            }
            APPROVALS => {
                let a: DataAccessApproval = decode(record)?;
                check_key(record, a.case_id.as_str().as_bytes(), "the case id")?;
                txn.put(APPROVAL_STATE, approval_key(&a), encode_value(&a)?);
                let Some(bytes) = txn
                    .get(CASE_STATE, a.case_id.as_str().as_bytes())
                    .or_fatal()?
                else {
                    return Ok(()); // sent with the case when it comes
                };
                let event: CaseEvent = decode_value(&bytes)?;
                if event.status == CaseStatus::Retracted {
                    return Ok(());
                }
                let approvals = Self::approvals(&a.case_id, txn)?;
                Self::fan_out(&event, &approvals, ts, out)
            }
            _ => Err(unexpected_topic(self.name(), record)),
        }
    }

    fn last_event_time_ms(&self) -> Option<i64> {
        self.last_event_ms
    }

    fn end_batch(
        &mut self,
        txn: &mut Txn<'_>,
        _out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        self.sweep(txn)
    }
}
