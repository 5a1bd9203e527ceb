//! # case-router
//!
//! - **Inputs** (co-partitioned, key = case id): `cases.events`
//!   ([`CaseEvent`]), `cases.approvals` ([`DataAccessApproval`]) and
//!   `cases.interviews` ([`InterviewEntry`]); a record keyed otherwise than
//!   by its case id is dead-lettered (`key_mismatch`).
//! - **State** (RocksDB, keyed by case):
//!   - `cases`: case → the latest [`CaseEvent`];
//!   - `approvals`: case | 0 | category | reference → the latest
//!     [`DataAccessApproval`] of that reference;
//!   - `interviews`: case | 0 | entry id → the latest live
//!     [`InterviewEntry`] (a retracted one is deleted).
//! - **Output:** `cases.by-subject` (key = subject): one [`SubjectCase`]
//!   per pseudonym of the case, carrying the case's approvals (one per
//!   reference, as posted), on every case event and on every approval of a
//!   case already known — so that the subject-keyed segmenter (whose inputs
//!   are co-partitioned with `cases.by-subject`) learns which of its
//!   subjects are cases, over which window, and which categories of their
//!   data it may publish as visits. Whether an approval still holds is the
//!   segmenter's to judge, on its event time.
//! - **Output:** `presence.segments` (key = the cell's ancestor at
//!   `footprint.min_res`, as the segmenter keys it): each interview entry
//!   of a known, unretracted case as its *evidence segment*
//!   (`epitrace_core::interview::evidence`: the stated place's footprint
//!   over the stated time, source INTERVIEW, a lane of the interview
//!   stream, the case's first pseudonym, tagged with this case only), so
//!   that the presence join finds who was there then even without a record
//!   of the patient's. UPSERT when an entry arrives or its case changes
//!   (window, pseudonyms); RETRACT of the earlier version when an entry is
//!   withdrawn or moved, or its case retracted. Not gated here: the
//!   exposure aggregator counts these overlaps only while the case's
//!   INTERVIEW category is open, as for every category.
//! - **Retention:** by event time (the latest confirmation seen): each
//!   batch sweeps a slice of `cases` and deletes a case whose infectious
//!   period ended more than `topology.retention` behind it, with its
//!   approvals and interview entries (open cases are kept; silent
//!   downstream: the join keeps the evidence segments to its own
//!   retention).
//! - **Time:** outputs carry the input's timestamp.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see
//!   `epitrace_stream`); either way with deterministic outputs (see
//!   `epitrace_engine`): a replay produces identical records.
//!
//! A case whose subjects change (UPDATED without one of its earlier
//! pseudonyms) leaves the dropped pseudonym tagged; the authority retracts
//! and re-confirms to remove it.

use epitrace_core::{Footprinter, TracingConfig, interview};
use epitrace_engine::{InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{
    ApprovalWindow, CaseEvent, CaseStatus, CaseTag, DataAccessApproval, InterviewEntry,
    SegmentUpdate, SegmentUpdateKind, SubjectCase,
};
use epitrace_model::{CaseId, EventTime};
use epitrace_state::Txn;
use h3o::Resolution;

use crate::common::{
    OrFatal, approval_key, case_member_key, case_prefix, check_key, decode, decode_value,
    encode_value, prefix_end, sweep_slice, unexpected_topic, update_of,
};
use crate::topology::{APPROVALS, CASES, CASES_BY_SUBJECT, INTERVIEWS, SEGMENTS};

/// Store of case events.
pub const CASE_STATE: &str = "cases";
/// Store of approvals.
pub const APPROVAL_STATE: &str = "approvals";
/// Store of interview entries.
pub const INTERVIEW_STATE: &str = "interviews";

/// The case-router processor.
#[derive(Debug)]
pub struct CaseRouter {
    /// Stated places → footprints (as the segmenter places records).
    footprinter: Footprinter,
    /// The resolution of `presence.segments` keys.
    partition_res: Resolution,
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
    pub const STORES: &'static [&'static str] = &[CASE_STATE, APPROVAL_STATE, INTERVIEW_STATE];

    /// A case-router for one configuration (assumed validated), keeping
    /// everything until [`Self::with_retention`].
    #[must_use]
    pub fn new(cfg: &TracingConfig) -> Self {
        Self {
            footprinter: Footprinter::new(&cfg.footprint),
            partition_res: Resolution::try_from(cfg.footprint.min_res).unwrap_or(Resolution::Six),
            last_event_ms: None,
            retention_ms: None,
            stream_time_ms: None,
            sweep_cursor: Vec::new(),
        }
    }

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

    /// The evidence segment of `entry` while `case` stands as it is: `None`
    /// for a retracted case or entry, an instant, or a case without
    /// pseudonyms.
    fn evidence(
        &self,
        case: Option<&CaseEvent>,
        entry: Option<&InterviewEntry>,
    ) -> Option<SegmentUpdate> {
        let (case, entry) = (case?, entry?);
        if case.status == CaseStatus::Retracted {
            return None;
        }
        let subject = *case.subjects.first()?;
        let seg = interview::evidence(entry, &self.footprinter)?;
        let tag = CaseTag {
            case_id: case.case_id.clone(),
            infectious_from: case.infectious_from,
            infectious_until: case.infectious_until,
        };
        Some(update_of(
            subject,
            &seg,
            SegmentUpdateKind::Upsert,
            vec![tag],
        ))
    }

    /// Publishes the change from evidence segment `before` to `after`: a
    /// retraction of `before` when it is gone or its identity changed, then
    /// `after` when it differs.
    fn send_evidence(
        &self,
        before: Option<SegmentUpdate>,
        after: Option<SegmentUpdate>,
        ts: Option<i64>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        if before == after {
            return Ok(());
        }
        let same_segment = |a: &SegmentUpdate, b: &SegmentUpdate| {
            a.subject == b.subject && a.segment_ref() == b.segment_ref()
        };
        if let Some(b) = before
            && after.as_ref().is_none_or(|a| !same_segment(a, &b))
        {
            let retract = SegmentUpdate {
                kind: SegmentUpdateKind::Retract,
                ..b
            };
            self.send_segment(&retract, ts, out)?;
        }
        if let Some(a) = after {
            self.send_segment(&a, ts, out)?;
        }
        Ok(())
    }

    fn send_segment(
        &self,
        update: &SegmentUpdate,
        ts: Option<i64>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let key = update.partition_key(self.partition_res).ok_or_else(|| {
            ProcessError::Fatal("evidence segment coarser than the partition resolution".into())
        })?;
        out.push(OutputRecord {
            topic: SEGMENTS.into(),
            key: key.to_vec(),
            payload: encode_single_object(update).or_fatal()?,
            timestamp_ms: ts,
        });
        Ok(())
    }

    /// The case's stored interview entries.
    fn entries(case: &CaseId, txn: &Txn<'_>) -> Result<Vec<InterviewEntry>, ProcessError> {
        let prefix = case_prefix(case);
        txn.scan(INTERVIEW_STATE, &prefix, &prefix_end(&prefix))
            .or_fatal()?
            .iter()
            .map(|(_, v)| decode_value::<InterviewEntry>(v))
            .collect()
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
            txn.delete_range(INTERVIEW_STATE, prefix.clone(), prefix_end(&prefix));
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
        vec![CASES.into(), APPROVALS.into(), INTERVIEWS.into()]
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
                let key = event.case_id.as_str().as_bytes();
                let previous: Option<CaseEvent> = match txn.get(CASE_STATE, key).or_fatal()? {
                    Some(bytes) => Some(decode_value(&bytes)?),
                    None => None,
                };
                txn.put(CASE_STATE, key, encode_value(&event)?);
                let approvals = Self::approvals(&event.case_id, txn)?;
                Self::fan_out(&event, &approvals, ts, out)?;
                for entry in Self::entries(&event.case_id, txn)? {
                    let before = self.evidence(previous.as_ref(), Some(&entry));
                    let after = self.evidence(Some(&event), Some(&entry));
                    self.send_evidence(before, after, ts, out)?;
                }
                Ok(())
            }
            INTERVIEWS => {
                let entry: InterviewEntry = decode(record)?;
                check_key(record, entry.case_id.as_str().as_bytes(), "the case id")?;
                let key = case_member_key(&entry.case_id, entry.entry_id.as_str().as_bytes());
                let previous: Option<InterviewEntry> =
                    match txn.get(INTERVIEW_STATE, &key).or_fatal()? {
                        Some(bytes) => Some(decode_value(&bytes)?),
                        None => None,
                    };
                if entry.retracted {
                    txn.delete(INTERVIEW_STATE, key);
                } else {
                    txn.put(INTERVIEW_STATE, key, encode_value(&entry)?);
                }
                let case: Option<CaseEvent> = match txn
                    .get(CASE_STATE, entry.case_id.as_str().as_bytes())
                    .or_fatal()?
                {
                    Some(bytes) => Some(decode_value(&bytes)?),
                    None => None, // sent with the case when it comes
                };
                let before = self.evidence(case.as_ref(), previous.as_ref());
                let after = self.evidence(case.as_ref(), Some(&entry));
                self.send_evidence(before, after, ts, out)
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
