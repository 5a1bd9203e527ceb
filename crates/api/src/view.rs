//! What the API serves: the latest state of the topics it follows, folded
//! in memory. Pure (no Kafka, no clock): the server's follower thread feeds
//! it records as they are read, `read_committed`.
//!
//! | topic | kept |
//! |---|---|
//! | `cases.events` | the latest event per case |
//! | `cases.approvals` | the latest approval per (case, category, reference): a repost with an earlier `expires_at` is a revocation |
//! | `cases.interviews` | the latest entry per (case, entry id); a retracted one is removed |
//! | `tracing.timelines` | the live visits per case (a retracted visit is removed) |
//! | `tracing.exposures` | the live exposures per case (a RETRACTED one is removed) |
//! | `tracing.clusters` | the live clusters (MERGED and DISSOLVED ones are removed) |
//! | `audit.log` | every record, in log order |
//!
//! Nothing is written to disk: a restarted server reads the topics again,
//! and `epitrace purge` (which refuses while a server runs) leaves it
//! nothing to read.
//!
//! **Approval status** follows the pipeline's rule: an approval holds until
//! the case's event time — the latest of its confirmation and of the ends
//! of its visits and exposure windows, as published — reaches its
//! `expires_at`; the categories `[tracing.approvals] open_by_default` names
//! are always open; a case with no category open is pending.

use std::collections::BTreeMap;

use epitrace_core::approval::{ApprovalConfig, Category, Gate, Held, gate_at};
use epitrace_model::codec::{DecodeOptions, decode_single_object};
use epitrace_model::records::{
    AuditRecord, CaseEvent, CaseStatus, ClusterAlert, ClusterStatus, DataAccessApproval, Exposure,
    ExposureStatus, InterviewEntry, Visit,
};
use epitrace_model::topics::{APPROVALS, AUDIT, CASES, CLUSTERS, EXPOSURES, INTERVIEWS, TIMELINES};
use epitrace_model::{AvroRecord, CaseId, ClusterId, EntryId, ExposureId, VisitId};

/// The topics the API follows.
pub const FOLLOWED: [&str; 7] = [
    CASES, APPROVALS, INTERVIEWS, TIMELINES, EXPOSURES, CLUSTERS, AUDIT,
];

/// The folded topics.
#[derive(Debug, Default)]
pub struct View {
    cases: BTreeMap<CaseId, CaseEvent>,
    approvals: BTreeMap<(CaseId, Category, String), DataAccessApproval>,
    interviews: BTreeMap<CaseId, BTreeMap<EntryId, InterviewEntry>>,
    visits: BTreeMap<CaseId, BTreeMap<VisitId, Visit>>,
    exposures: BTreeMap<CaseId, BTreeMap<ExposureId, Exposure>>,
    clusters: BTreeMap<ClusterId, ClusterAlert>,
    audit: Vec<AuditRecord>,
    undecodable: u64,
    caught_up: bool,
}

/// A case and where its approvals stand.
#[derive(Debug, Clone)]
pub struct CaseState<'a> {
    /// The latest event of the case.
    pub event: &'a CaseEvent,
    /// Its approvals, each with whether it holds now.
    pub approvals: Vec<(&'a DataAccessApproval, bool)>,
    /// The categories open (approved, or open by default).
    pub open: Gate,
    /// Nothing open: the case's data is kept but not traced.
    pub pending: bool,
    /// Live visits on its timeline.
    pub visits: usize,
    /// Live exposures of its contacts.
    pub exposures: usize,
}

fn decode<R: AvroRecord>(payload: &[u8]) -> Option<R> {
    decode_single_object(payload, &DecodeOptions::default()).ok()
}

impl View {
    /// Folds one record of `topic`; returns whether it decoded (records
    /// that do not are counted and skipped). A tombstone (no payload) is
    /// skipped.
    pub fn apply(&mut self, topic: &str, payload: Option<&[u8]>) -> bool {
        let Some(p) = payload else {
            return true;
        };
        let ok = match topic {
            CASES => decode::<CaseEvent>(p).map(|e| {
                self.cases.insert(e.case_id.clone(), e);
            }),
            APPROVALS => decode::<DataAccessApproval>(p).map(|a| {
                let key = (
                    a.case_id.clone(),
                    Category::from(a.category),
                    a.reference.as_str().to_owned(),
                );
                self.approvals.insert(key, a);
            }),
            INTERVIEWS => decode::<InterviewEntry>(p).map(|e| {
                let of_case = self.interviews.entry(e.case_id.clone()).or_default();
                if e.retracted {
                    of_case.remove(&e.entry_id);
                } else {
                    of_case.insert(e.entry_id.clone(), e);
                }
            }),
            TIMELINES => decode::<Visit>(p).map(|v| {
                let of_case = self.visits.entry(v.case_id.clone()).or_default();
                if v.retracted {
                    of_case.remove(&v.visit_id);
                } else {
                    of_case.insert(v.visit_id.clone(), v);
                }
            }),
            EXPOSURES => decode::<Exposure>(p).map(|e| {
                let of_case = self.exposures.entry(e.case_id.clone()).or_default();
                if e.status == ExposureStatus::Retracted {
                    of_case.remove(&e.exposure_id);
                } else {
                    of_case.insert(e.exposure_id.clone(), e);
                }
            }),
            CLUSTERS => decode::<ClusterAlert>(p).map(|a| {
                if matches!(a.status, ClusterStatus::Merged | ClusterStatus::Dissolved) {
                    self.clusters.remove(&a.cluster_id);
                } else {
                    self.clusters.insert(a.cluster_id.clone(), a);
                }
            }),
            AUDIT => decode::<AuditRecord>(p).map(|r| self.audit.push(r)),
            _ => None,
        };
        if ok.is_none() {
            self.undecodable += 1;
        }
        ok.is_some()
    }

    /// Marks the view as having read every followed topic up to where it
    /// ended when the server started.
    pub fn set_caught_up(&mut self) {
        self.caught_up = true;
    }

    /// Whether the view has caught up (until then the API answers 503).
    #[must_use]
    pub const fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// Records that did not decode.
    #[must_use]
    pub const fn undecodable(&self) -> u64 {
        self.undecodable
    }

    /// Every case, in id order.
    pub fn cases(&self) -> impl Iterator<Item = &CaseEvent> {
        self.cases.values()
    }

    /// The latest event of `case`.
    #[must_use]
    pub fn case(&self, case: &CaseId) -> Option<&CaseEvent> {
        self.cases.get(case)
    }

    /// The case's event time: the latest of its confirmation and of the
    /// ends of its published visits and exposure windows.
    #[must_use]
    pub fn case_clock_ms(&self, case: &CaseId) -> Option<i64> {
        let confirmed = self.cases.get(case).map(|e| e.confirmed_at.as_millis());
        let visits = self
            .visits
            .get(case)
            .into_iter()
            .flat_map(BTreeMap::values)
            .map(|v| v.end.as_millis());
        let windows = self
            .exposures
            .get(case)
            .into_iter()
            .flat_map(BTreeMap::values)
            .flat_map(|e| e.windows.iter().map(|w| w.end().as_millis()));
        confirmed.into_iter().chain(visits).chain(windows).max()
    }

    /// `case` with its approval status (see the module docs).
    #[must_use]
    pub fn state(&self, case: &CaseId, cfg: &ApprovalConfig) -> Option<CaseState<'_>> {
        let event = self.cases.get(case)?;
        let clock = self.case_clock_ms(case);
        let approvals: Vec<(&DataAccessApproval, bool)> = self
            .approvals_of(case)
            .map(|a| {
                let held = held(a);
                (a, clock.is_none_or(|now| held.holds_at(now)))
            })
            .collect();
        let (gate, _) = gate_at(approvals.iter().map(|(a, _)| held(a)), clock);
        let open = gate.union(cfg.default_gate());
        Some(CaseState {
            event,
            approvals,
            open,
            pending: event.status != CaseStatus::Retracted && open.is_closed(),
            visits: self.visits.get(case).map_or(0, BTreeMap::len),
            exposures: self.exposures.get(case).map_or(0, BTreeMap::len),
        })
    }

    /// The approvals of `case` (latest per category and reference).
    pub fn approvals_of(&self, case: &CaseId) -> impl Iterator<Item = &DataAccessApproval> {
        self.approvals
            .range((case.clone(), Category::Location, String::new())..)
            .take_while(move |((c, _, _), _)| c == case)
            .map(|(_, a)| a)
    }

    /// Every approval, by case, category and reference.
    pub fn approvals(&self) -> impl Iterator<Item = &DataAccessApproval> {
        self.approvals.values()
    }

    /// The live visits of `case`, in time order.
    #[must_use]
    pub fn visits(&self, case: &CaseId) -> Vec<&Visit> {
        let mut v: Vec<&Visit> = self
            .visits
            .get(case)
            .map(|m| m.values().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| (a.start, a.end, &a.visit_id).cmp(&(b.start, b.end, &b.visit_id)));
        v
    }

    /// The live exposures of `case`, in id order.
    #[must_use]
    pub fn exposures(&self, case: &CaseId) -> Vec<&Exposure> {
        self.exposures
            .get(case)
            .map(|m| m.values().collect())
            .unwrap_or_default()
    }

    /// The live interview entries of `case`, in stated-time order.
    #[must_use]
    pub fn interviews(&self, case: &CaseId) -> Vec<&InterviewEntry> {
        let mut v: Vec<&InterviewEntry> = self
            .interviews
            .get(case)
            .map(|m| m.values().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| (a.start, a.end, &a.entry_id).cmp(&(b.start, b.end, &b.entry_id)));
        v
    }

    /// The live clusters, in id order.
    pub fn clusters(&self) -> impl Iterator<Item = &ClusterAlert> {
        self.clusters.values()
    }

    /// The live cluster `id`.
    #[must_use]
    pub fn cluster(&self, id: &ClusterId) -> Option<&ClusterAlert> {
        self.clusters.get(id)
    }

    /// The audit records read, in log order.
    #[must_use]
    pub fn audit(&self) -> &[AuditRecord] {
        &self.audit
    }
}

fn held(a: &DataAccessApproval) -> Held {
    Held {
        category: Category::from(a.category),
        expires_ms: a.expires_at.as_millis(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use epitrace_model::records::DataCategory;
    use epitrace_model::{EventTime, SubjectId, Text, encode_single_object};

    const H: i64 = 3_600_000;
    const T0: i64 = 1_588_377_600_000;

    fn t(ms: i64) -> EventTime {
        EventTime::from_millis("t", ms).unwrap()
    }

    fn case(id: &str) -> CaseEvent {
        CaseEvent {
            case_id: CaseId::new(id).unwrap(),
            subjects: vec![SubjectId::from_slice(&[1; 16]).unwrap()],
            confirmed_at: t(T0),
            symptom_onset: None,
            infectious_from: t(T0 - 48 * H),
            infectious_until: None,
            status: CaseStatus::Confirmed,
            region: Some(Text::new("region", "seoul").unwrap()),
        }
    }

    fn approval(id: &str, category: DataCategory, expires: i64) -> DataAccessApproval {
        DataAccessApproval {
            case_id: CaseId::new(id).unwrap(),
            category,
            authority: Text::new("authority", "seoul-police").unwrap(),
            reference: Text::new("reference", "W-1").unwrap(),
            approved_at: t(T0 - 24 * H),
            expires_at: t(expires),
        }
    }

    #[test]
    fn approvals_decide_pending_and_open_by_the_case_clock() {
        let mut v = View::default();
        let id = CaseId::new("KR-1").unwrap();
        assert!(v.apply(CASES, Some(&encode_single_object(&case("KR-1")).unwrap())));
        let strict = ApprovalConfig::default();
        let s = v.state(&id, &strict).unwrap();
        assert!(s.pending);
        assert!(s.open.is_closed());
        v.apply(
            APPROVALS,
            Some(&encode_single_object(&approval("KR-1", DataCategory::Card, T0 + H)).unwrap()),
        );
        let s = v.state(&id, &strict).unwrap();
        assert!(!s.pending);
        assert!(s.open.allows(Category::Card));
        assert!(!s.open.allows(Category::Location));
        // A revocation: the same approval again, expiring before the case's
        // clock (its confirmation).
        v.apply(
            APPROVALS,
            Some(&encode_single_object(&approval("KR-1", DataCategory::Card, T0 - H)).unwrap()),
        );
        let s = v.state(&id, &strict).unwrap();
        assert!(s.pending);
        assert_eq!(s.approvals.len(), 1);
        assert!(!s.approvals[0].1);
        // Check-ins open by default: not pending.
        let lenient = ApprovalConfig {
            open_by_default: vec![Category::Checkin],
        };
        assert!(!v.state(&id, &lenient).unwrap().pending);
        // Another case's approvals are not this one's.
        v.apply(CASES, Some(&encode_single_object(&case("KR-10")).unwrap()));
        v.apply(
            APPROVALS,
            Some(
                &encode_single_object(&approval("KR-10", DataCategory::Location, T0 + H)).unwrap(),
            ),
        );
        assert!(v.state(&id, &strict).unwrap().pending);
        assert_eq!(v.approvals_of(&id).count(), 1);
    }

    #[test]
    fn garbage_is_counted_not_applied() {
        let mut v = View::default();
        assert!(!v.apply(CASES, Some(b"junk")));
        assert!(!v.apply("other.topic", Some(b"junk")));
        assert_eq!(v.undecodable(), 2);
        assert_eq!(v.cases().count(), 0);
    }
}
