//! # exposure-aggregator
//!
//! - **Inputs** (co-partitioned, key = case id): `exposure.candidates`
//!   ([`ExposureCandidate`]), `cases.events` ([`CaseEvent`]) and
//!   `cases.approvals` ([`DataAccessApproval`]); a record keyed otherwise
//!   than by its case id is dead-lettered (`key_mismatch`).
//! - **State** (RocksDB, keyed by case):
//!   - `ledgers`: case | 0 | contact → [`ContactLedger`], the overlap of
//!     every (case segment, contact segment) pair;
//!   - `emitted`: case | 0 | contact → the last [`Exposure`] published;
//!   - `cases`: case → the latest [`CaseEvent`] (its pseudonyms, whether it
//!     was retracted);
//!   - `approvals`: case | 0 | category | reference → the latest
//!     [`DataAccessApproval`] of that reference still holding;
//!   - `gates`: case → the categories its approvals open and their next
//!     expiry.
//! - **Approvals** (see `epitrace_core::approval`): an overlap counts only
//!   when the case's segment comes from a category open for the case — by
//!   an approval that holds, or by `tracing.approvals.open_by_default`
//!   (nothing, unless configured). Overlaps are stored whatever the gate,
//!   so an approval read later publishes the exposures at once, and one
//!   that lapses (the stream time reaches its `expires_at`) or is revoked
//!   (posted again with an earlier `expires_at`) retracts or shrinks what
//!   was derived from its category. A case with nothing open is pending.
//! - **Retention:** by event time (the latest overlap end or confirmation
//!   seen; records more than a day past the wall clock are dead-lettered
//!   before they move it). Each batch sweeps a slice of the `cases` store
//!   and deletes every entry of a case whose infectious period ended more
//!   than `topology.retention` behind the stream time (open cases are
//!   kept); candidates whose overlap ended before that cutoff are ignored.
//!   Silent downstream: published exposures stand. Lapsed approvals are
//!   deleted when found lapsed.
//! - **Output:** `tracing.exposures` (key = contact pseudonym, so the
//!   telecom or card company holding the raw id can notify): an
//!   [`Exposure`] NEW when the rule is first met, UPDATED when its windows
//!   or cumulative time change, RETRACTED when it no longer holds (a
//!   retracted case, withdrawn overlaps). `exposure_id` depends only on
//!   (case, contact); consumers upsert by it.
//! - **Rule:** the union of overlaps within the infectious window reaches
//!   `exposure.min_cumulative` within some `exposure.window` (see
//!   `epitrace_core::exposure`). Each live exposure carries its
//!   `likelihood`, `contact_class` and location `basis` (see
//!   `epitrace_core::likelihood`): an update is published when they change
//!   too. `cumulative_s` is the total co-located time
//!   within the infectious window. The case's own pseudonyms are never its
//!   contacts.
//! - **Time:** `detected_at` is the origin time of the input that changed
//!   the exposure (the append time of the feed record, case event or
//!   approval it comes from; deterministic on replay), not the wall clock.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see `epitrace_stream`); either way with deterministic outputs.

use std::collections::BTreeMap;

use epitrace_core::approval::gate_at;
use epitrace_core::timeline::INTERVIEW_CONFIDENCE;
use epitrace_core::{
    Assessment, Category, ContactLedger, Gate, Held, Interval, Overlap, PairKey, TracingConfig,
};
use epitrace_engine::{Emitted, InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{
    CaseEvent, CaseStatus, ContactClass, DataAccessApproval, DataCategory, Exposure,
    ExposureCandidate, ExposureStatus, LocationBasis, TimeWindow,
};
use epitrace_model::{CaseId, EventTime, Probability, SubjectId};
use epitrace_state::Txn;

use crate::common::{
    OrFatal, approval_key, case_member_key, case_prefix, check_key, decode, decode_value,
    encode_value, prefix_end, segment_key, sweep_slice, unexpected_topic,
};
use crate::topology::{APPROVALS, CANDIDATES, CASES, EXPOSURES};

/// Store of overlap ledgers.
pub const LEDGERS: &str = "ledgers";
/// Store of the last exposure published per (case, contact).
pub const EMITTED: &str = "emitted";
/// Store of case events.
pub const CASE_STATE: &str = "cases";
/// Store of the approvals that hold.
pub const APPROVAL_STATE: &str = "approvals";
/// Store of each case's open categories and their next expiry.
pub const GATES: &str = "gates";

/// The ledger keys of a case and the contact each names.
fn ledger_contacts(
    case: &CaseId,
    txn: &Txn<'_>,
) -> Result<Vec<(Vec<u8>, SubjectId)>, ProcessError> {
    let prefix = case_prefix(case);
    txn.scan(LEDGERS, &prefix, &prefix_end(&prefix))
        .or_fatal()?
        .into_iter()
        .map(|(key, _)| {
            let contact = key
                .get(prefix.len()..)
                .and_then(|b| SubjectId::from_slice(b).ok())
                .ok_or_else(|| ProcessError::Fatal("corrupt ledger key".into()))?;
            Ok((key, contact))
        })
        .collect()
}

/// A stored gate: `bits(1) · next expiry (8, little-endian; i64::MAX when
/// none)`.
#[must_use]
pub fn encode_gate(gate: Gate, next_expiry_ms: Option<i64>) -> Vec<u8> {
    let mut v = vec![gate.bits()];
    v.extend_from_slice(&next_expiry_ms.unwrap_or(i64::MAX).to_le_bytes());
    v
}

/// Reads [`encode_gate`] back.
///
/// # Errors
/// [`ProcessError::Fatal`] for a value of another length.
pub fn decode_gate(bytes: &[u8]) -> Result<(Gate, Option<i64>), ProcessError> {
    let (&bits, rest) = bytes
        .split_first()
        .ok_or_else(|| ProcessError::Fatal("empty stored gate".into()))?;
    let next: [u8; 8] = rest
        .try_into()
        .map_err(|_| ProcessError::Fatal(format!("stored gate of {} bytes", bytes.len())))?;
    let next = i64::from_le_bytes(next);
    Ok((Gate::from_bits(bits), (next != i64::MAX).then_some(next)))
}

fn pair_key(case: &CaseId, contact: SubjectId) -> Vec<u8> {
    case_member_key(case, contact.as_bytes())
}

/// The exposure-aggregator processor.
#[derive(Debug)]
pub struct ExposureAggregator {
    cfg: TracingConfig,
    /// (case, contact) pairs whose ledger changed in this batch, with the
    /// latest input timestamp: assessed once at the end of the batch, so a
    /// batch publishes one version per exposure, not one per candidate.
    dirty: BTreeMap<(CaseId, SubjectId), Option<i64>>,
    /// Exposures published in this batch: new, updated, retracted.
    emitted: [u64; 3],
    /// Live exposures published in this batch: close, area.
    classes: [u64; 2],
    /// Event time of the last record (for the lag metric).
    last_event_ms: Option<i64>,
    /// How long ended cases are kept behind the stream time (ms); `None`
    /// keeps everything.
    retention_ms: Option<i64>,
    /// The latest event time seen: the clock retention runs on.
    stream_time_ms: Option<i64>,
    /// Where the retention sweep of `cases` goes on.
    sweep_cursor: Vec<u8>,
    /// The categories open without an approval.
    default_gate: Gate,
    /// Cases whose approvals changed in this batch.
    regate: BTreeMap<CaseId, Option<i64>>,
    /// The earliest next expiry over every stored gate; `None` until read
    /// from the store (after a start or a rewind).
    next_expiry_ms: Option<i64>,
    /// Gates read in this batch.
    gates: BTreeMap<CaseId, Gate>,
    /// Cases with nothing open, as of the last count; `None` until the
    /// first (after a start or a rewind).
    pending: Option<u64>,
    /// Whether cases or gates changed in this batch (the count is redone).
    recount: bool,
}

impl ExposureAggregator {
    /// The stores it needs.
    pub const STORES: &'static [&'static str] =
        &[LEDGERS, EMITTED, CASE_STATE, APPROVAL_STATE, GATES];

    /// An aggregator for one configuration.
    #[must_use]
    pub fn new(cfg: &TracingConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            dirty: BTreeMap::new(),
            emitted: [0; 3],
            classes: [0; 2],
            last_event_ms: None,
            retention_ms: None,
            stream_time_ms: None,
            sweep_cursor: Vec::new(),
            default_gate: cfg.approvals.default_gate(),
            regate: BTreeMap::new(),
            next_expiry_ms: None,
            gates: BTreeMap::new(),
            pending: None,
            recount: false,
        }
    }

    /// Keeps a case's state until its infectious period ended
    /// `retention_ms` behind the stream time (see the module docs,
    /// Retention).
    #[must_use]
    pub const fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = Some(retention_ms);
        self
    }

    fn advance_stream_time(&mut self, event_ms: i64) {
        self.stream_time_ms = Some(self.stream_time_ms.map_or(event_ms, |t| t.max(event_ms)));
    }

    /// The retention cutoff, when there is one.
    fn cutoff_ms(&self) -> Option<i64> {
        Some(self.stream_time_ms?.saturating_sub(self.retention_ms?))
    }

    /// Retention: a slice of `SWEEP_SLICE` committed case entries per
    /// batch (resuming where the last ended, wrapping around); a case that
    /// ended before the cutoff goes with its ledgers and published
    /// exposures.
    fn sweep(&mut self, txn: &mut Txn<'_>) -> Result<(), ProcessError> {
        let Some(cutoff) = self.cutoff_ms() else {
            return Ok(());
        };
        for key in sweep_slice(txn, CASE_STATE, &mut self.sweep_cursor)? {
            // This batch's version, if it changed the case.
            let Some(bytes) = txn.get(CASE_STATE, &key).or_fatal()? else {
                continue;
            };
            let case: CaseEvent = decode_value(&bytes)?;
            if case
                .infectious_until
                .is_none_or(|u| u.as_millis() >= cutoff)
            {
                continue;
            }
            let prefix = case_prefix(&case.case_id);
            for store in [LEDGERS, EMITTED, APPROVAL_STATE] {
                txn.delete_range(store, prefix.clone(), prefix_end(&prefix));
            }
            txn.delete(GATES, key.clone());
            txn.delete(CASE_STATE, key);
            self.recount = true;
            self.dirty.retain(|(c, _), _| *c != case.case_id);
        }
        Ok(())
    }

    /// A heuristic score for ordering notifications, not a probability of
    /// infection: a quarter per `min_cumulative` of peak co-located time,
    /// capped at 1 (15 min → 0.25, an hour or more → 1); times
    /// [`INTERVIEW_CONFIDENCE`] (0.5) when only the patient's statements
    /// put them there (evidence `INTERVIEW` alone), so that such a contact
    /// ranks below one the records show.
    fn risk(&self, a: &Assessment) -> f64 {
        let unit = self.cfg.exposure.min_cumulative.as_millis().max(1);
        #[allow(clippy::cast_precision_loss)]
        let score = (a.peak_ms as f64 / (4.0 * unit as f64)).clamp(0.0, 1.0);
        if a.evidence == Gate::CLOSED.with(Category::Interview) {
            score * INTERVIEW_CONFIDENCE
        } else {
            score
        }
    }

    fn publish(
        &mut self,
        exposure: &Exposure,
        ts: Option<i64>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        txn.put(
            EMITTED,
            pair_key(&exposure.case_id, exposure.contact),
            encode_value(exposure)?,
        );
        let slot = match exposure.status {
            ExposureStatus::New => 0,
            ExposureStatus::Updated => 1,
            ExposureStatus::Retracted => 2,
        };
        self.emitted[slot] += 1;
        match (exposure.status, exposure.contact_class) {
            (ExposureStatus::Retracted, _) | (_, None) => {}
            (_, Some(ContactClass::Close)) => self.classes[0] += 1,
            (_, Some(ContactClass::Area)) => self.classes[1] += 1,
        }
        out.push(OutputRecord {
            topic: EXPOSURES.into(),
            key: exposure.contact.as_bytes().to_vec(),
            payload: encode_single_object(exposure).or_fatal()?,
            timestamp_ms: ts,
        });
        Ok(())
    }

    fn detected_at(ts: Option<i64>, fallback: EventTime) -> EventTime {
        ts.and_then(|ms| EventTime::from_millis("detected_at", ms).ok())
            .unwrap_or(fallback)
    }

    /// Applies the rule to a ledger and publishes what changed.
    fn reassess(
        &mut self,
        case: &CaseId,
        contact: SubjectId,
        ledger: &ContactLedger,
        ts: Option<i64>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let key = pair_key(case, contact);
        let last: Option<Exposure> = match txn.get(EMITTED, &key).or_fatal()? {
            Some(bytes) => Some(decode_value(&bytes)?),
            None => None,
        };
        let live_last = last
            .as_ref()
            .filter(|e| e.status != ExposureStatus::Retracted);
        let gate = self.gate(case, txn)?;
        let a = ledger.assess_gated(&self.cfg.exposure, gate);
        if !a.exposed {
            if let Some(prev) = live_last {
                let retracted = Exposure {
                    status: ExposureStatus::Retracted,
                    detected_at: Self::detected_at(ts, prev.detected_at),
                    ..prev.clone()
                };
                self.publish(&retracted, ts, txn, out)?;
            }
            return Ok(());
        }
        let (Some(first_cell), Some(last_window)) = (a.first_cell, a.windows.last()) else {
            return Ok(());
        };
        let windows = a
            .windows
            .iter()
            .map(|w| TimeWindow::new(w.start(), w.end()))
            .collect::<Result<Vec<_>, _>>()
            .or_fatal()?;
        let cumulative_s = u32::try_from(a.cumulative_ms / 1000).unwrap_or(u32::MAX);
        let risk = Probability::new("risk", self.risk(&a)).or_fatal()?;
        let evidence: Vec<DataCategory> = a.evidence.categories().map(Into::into).collect();
        let (likelihood, contact_class, basis) = self.likelihood(ledger, gate, a.cumulative_ms)?;
        if let Some(prev) = live_last
            && prev.windows == windows
            && prev.cumulative_s == cumulative_s
            && prev.first_cell == first_cell
            && prev.evidence == evidence
            && prev.basis == Some(basis)
            && prev.likelihood == Some(likelihood)
        {
            return Ok(());
        }
        let exposure = Exposure {
            exposure_id: epitrace_core::ids::exposure_id(case, contact).or_fatal()?,
            case_id: case.clone(),
            contact,
            first_cell,
            windows,
            cumulative_s,
            risk,
            status: if live_last.is_some() {
                ExposureStatus::Updated
            } else {
                ExposureStatus::New
            },
            detected_at: Self::detected_at(ts, last_window.end()),
            evidence,
            likelihood: Some(likelihood),
            contact_class: Some(contact_class),
            basis: Some(basis),
        };
        self.publish(&exposure, ts, txn, out)
    }

    /// The likelihood, class and basis of the overlaps the rule counted
    /// (`cumulative_ms` of them).
    fn likelihood(
        &self,
        ledger: &ContactLedger,
        gate: Gate,
        cumulative_ms: i64,
    ) -> Result<(Probability, ContactClass, LocationBasis), ProcessError> {
        let cfg = &self.cfg.likelihood;
        let b = ledger.basis_gated(gate, cfg);
        let p = cfg.likelihood(&b);
        // Seconds that add up to cumulative_s exactly (each part truncated
        // at the same boundaries as the whole).
        let secs = |ms: i64| u32::try_from(ms.max(0) / 1000).unwrap_or(u32::MAX);
        let fine_s = secs(b.fine_ms);
        let near_s = secs(b.fine_ms + b.near_ms).saturating_sub(fine_s);
        let wide_s = secs(b.fine_ms + b.near_ms + b.wide_ms).saturating_sub(fine_s + near_s);
        let apart_s = secs(cumulative_ms).saturating_sub(fine_s + near_s + wide_s);
        let class = if cfg.is_close(p) {
            ContactClass::Close
        } else {
            ContactClass::Area
        };
        Ok((
            Probability::new("likelihood", p).or_fatal()?,
            class,
            LocationBasis {
                fine_s,
                near_s,
                wide_s,
                apart_s,
                transit_s: secs(b.transit_ms).min(secs(cumulative_ms)),
            },
        ))
    }

    fn candidate(
        &mut self,
        c: &ExposureCandidate,
        ts: Option<i64>,
        txn: &mut Txn<'_>,
    ) -> Result<(), ProcessError> {
        if let (Some(w), Some(cutoff)) = (&c.overlap, self.cutoff_ms())
            && w.end().as_millis() < cutoff
        {
            return Ok(());
        }
        if let Some(bytes) = txn
            .get(CASE_STATE, c.case_id.as_str().as_bytes())
            .or_fatal()?
        {
            let case: CaseEvent = decode_value(&bytes)?;
            if case.status == CaseStatus::Retracted || case.subjects.contains(&c.contact) {
                return Ok(());
            }
        }
        let key = pair_key(&c.case_id, c.contact);
        let mut ledger = match txn.get(LEDGERS, &key).or_fatal()? {
            Some(bytes) => ContactLedger::decode(&bytes).or_fatal()?,
            None => ContactLedger::default(),
        };
        let pair = PairKey {
            case_subject: c.case_subject,
            case_segment: segment_key(&c.case_segment),
            contact_segment: segment_key(&c.contact_segment),
        };
        let overlap = c.overlap.as_ref().map(|w| Overlap {
            window: Interval::new(w.start(), w.end()),
            cell: c.cell,
            case_core: c.case_core,
            contact_core: c.contact_core,
        });
        if !ledger.set(pair, overlap) {
            return Ok(());
        }
        if ledger.is_empty() {
            txn.delete(LEDGERS, &key[..]);
        } else {
            txn.put(LEDGERS, &key[..], ledger.encode());
        }
        self.dirty.insert((c.case_id.clone(), c.contact), ts);
        Ok(())
    }

    /// The categories open for `case` now: its approvals' and the
    /// defaults.
    fn gate(&mut self, case: &CaseId, txn: &Txn<'_>) -> Result<Gate, ProcessError> {
        if let Some(g) = self.gates.get(case) {
            return Ok(*g);
        }
        let approved = match txn.get(GATES, case.as_str().as_bytes()).or_fatal()? {
            Some(bytes) => decode_gate(&bytes)?.0,
            None => Gate::CLOSED,
        };
        let gate = approved.union(self.default_gate);
        self.gates.insert(case.clone(), gate);
        Ok(gate)
    }

    /// Stores an approval (or, one already lapsed, revokes its reference)
    /// and marks its case for a new gate.
    fn approval(
        &mut self,
        a: &DataAccessApproval,
        ts: Option<i64>,
        txn: &mut Txn<'_>,
    ) -> Result<(), ProcessError> {
        let key = approval_key(a);
        let holds = self
            .stream_time_ms
            .is_none_or(|now| a.expires_at.as_millis() > now);
        if holds {
            txn.put(APPROVAL_STATE, key, encode_value(a)?);
        } else {
            txn.delete(APPROVAL_STATE, key);
        }
        self.regate.insert(a.case_id.clone(), ts);
        Ok(())
    }

    /// Computes the gates of the cases whose approvals changed or lapsed,
    /// deletes lapsed approvals, and marks every contact of a case whose
    /// gate changed for a new assessment.
    fn regate(&mut self, txn: &mut Txn<'_>) -> Result<(), ProcessError> {
        let now = self.stream_time_ms;
        if self.next_expiry_ms.is_none() {
            let mut earliest = i64::MAX;
            for (_, v) in txn.scan(GATES, &[], &[0xff]).or_fatal()? {
                if let Some(n) = decode_gate(&v)?.1 {
                    earliest = earliest.min(n);
                }
            }
            self.next_expiry_ms = Some(earliest);
        }
        if let (Some(now), Some(next)) = (now, self.next_expiry_ms)
            && next <= now
        {
            let mut earliest = i64::MAX;
            for (k, v) in txn.scan(GATES, &[], &[0xff]).or_fatal()? {
                match decode_gate(&v)?.1 {
                    Some(n) if n <= now => {
                        let case = std::str::from_utf8(&k)
                            .ok()
                            .and_then(|s| CaseId::new(s).ok())
                            .ok_or_else(|| ProcessError::Fatal("corrupt gate key".into()))?;
                        self.regate.entry(case).or_insert(None);
                    }
                    Some(n) => earliest = earliest.min(n),
                    None => {}
                }
            }
            self.next_expiry_ms = Some(earliest);
        }
        for (case, ts) in std::mem::take(&mut self.regate) {
            self.recount = true;
            let prefix = case_prefix(&case);
            let mut held = Vec::new();
            for (k, v) in txn
                .scan(APPROVAL_STATE, &prefix, &prefix_end(&prefix))
                .or_fatal()?
            {
                let a: DataAccessApproval = decode_value(&v)?;
                let h = Held {
                    category: a.category.into(),
                    expires_ms: a.expires_at.as_millis(),
                };
                if now.is_some_and(|now| !h.holds_at(now)) {
                    txn.delete(APPROVAL_STATE, k);
                } else {
                    held.push(h);
                }
            }
            let (approved, next) = gate_at(held, now);
            let before = match txn.get(GATES, case.as_str().as_bytes()).or_fatal()? {
                Some(bytes) => decode_gate(&bytes)?.0,
                None => Gate::CLOSED,
            };
            if approved.is_closed() && next.is_none() {
                txn.delete(GATES, case.as_str().as_bytes());
            } else {
                txn.put(GATES, case.as_str().as_bytes(), encode_gate(approved, next));
            }
            if let Some(n) = next {
                self.next_expiry_ms = Some(self.next_expiry_ms.map_or(n, |e| e.min(n)));
            }
            self.gates.remove(&case);
            if approved.union(self.default_gate) == before.union(self.default_gate) {
                continue;
            }
            for (_, contact) in ledger_contacts(&case, txn)? {
                let dirty = self.dirty.entry((case.clone(), contact)).or_insert(ts);
                if dirty.is_none() {
                    *dirty = ts;
                }
            }
        }
        Ok(())
    }

    /// Counts the live cases with nothing open (see
    /// [`Processor::pending_approval`]).
    fn count_pending(&mut self, txn: &Txn<'_>) -> Result<(), ProcessError> {
        let mut pending = 0;
        for (key, bytes) in txn.scan(CASE_STATE, &[], &[0xff]).or_fatal()? {
            let case: CaseEvent = decode_value(&bytes)?;
            if case.status == CaseStatus::Retracted {
                continue;
            }
            let approved = match txn.get(GATES, &key).or_fatal()? {
                Some(g) => decode_gate(&g)?.0,
                None => Gate::CLOSED,
            };
            if approved.union(self.default_gate).is_closed() {
                pending += 1;
            }
        }
        self.pending = Some(pending);
        self.recount = false;
        Ok(())
    }

    fn case_event(
        &mut self,
        e: &CaseEvent,
        ts: Option<i64>,
        txn: &mut Txn<'_>,
    ) -> Result<(), ProcessError> {
        txn.put(CASE_STATE, e.case_id.as_str().as_bytes(), encode_value(e)?);
        self.recount = true;
        let drop_all = e.status == CaseStatus::Retracted;
        for (key, contact) in ledger_contacts(&e.case_id, txn)? {
            if drop_all || e.subjects.contains(&contact) {
                txn.delete(LEDGERS, &key[..]);
                self.dirty.insert((e.case_id.clone(), contact), ts);
            }
        }
        Ok(())
    }
}

impl Processor for ExposureAggregator {
    fn name(&self) -> &'static str {
        "exposure-aggregator"
    }

    fn inputs(&self) -> Vec<String> {
        vec![CANDIDATES.into(), CASES.into(), APPROVALS.into()]
    }

    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        _out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let ts = record.timestamp_ms;
        match record.topic {
            CANDIDATES => {
                let c: ExposureCandidate = decode(record)?;
                check_key(record, c.case_id.as_str().as_bytes(), "the case id")?;
                if let Some(w) = &c.overlap {
                    self.last_event_ms = Some(w.end().as_millis());
                    self.advance_stream_time(w.end().as_millis());
                }
                self.candidate(&c, ts, txn)
            }
            CASES => {
                let e: CaseEvent = decode(record)?;
                check_key(record, e.case_id.as_str().as_bytes(), "the case id")?;
                self.last_event_ms = Some(e.confirmed_at.as_millis());
                self.advance_stream_time(e.confirmed_at.as_millis());
                self.case_event(&e, ts, txn)
            }
            APPROVALS => {
                let a: DataAccessApproval = decode(record)?;
                check_key(record, a.case_id.as_str().as_bytes(), "the case id")?;
                self.approval(&a, ts, txn)
            }
            _ => Err(unexpected_topic(self.name(), record)),
        }
    }

    fn last_event_time_ms(&self) -> Option<i64> {
        self.last_event_ms
    }

    fn pending_approval(&self) -> Option<u64> {
        self.pending
    }

    fn drain_emitted(&mut self) -> Vec<(Emitted, &'static str, u64)> {
        let [new, updated, retracted] = std::mem::take(&mut self.emitted);
        let [close, area] = std::mem::take(&mut self.classes);
        [
            (Emitted::Exposure, "new", new),
            (Emitted::Exposure, "updated", updated),
            (Emitted::Exposure, "retracted", retracted),
            (Emitted::ExposureClass, "close", close),
            (Emitted::ExposureClass, "area", area),
        ]
        .into_iter()
        .filter(|(_, _, n)| *n > 0)
        .collect()
    }

    fn end_batch(
        &mut self,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        self.regate(txn)?;
        for ((case, contact), ts) in std::mem::take(&mut self.dirty) {
            let ledger = match txn.get(LEDGERS, &pair_key(&case, contact)).or_fatal()? {
                Some(bytes) => ContactLedger::decode(&bytes).or_fatal()?,
                None => ContactLedger::default(),
            };
            self.reassess(&case, contact, &ledger, ts, txn, out)?;
        }
        self.gates.clear();
        self.sweep(txn)?;
        if self.recount || self.pending.is_none() {
            self.count_pending(txn)?;
        }
        Ok(())
    }
}
