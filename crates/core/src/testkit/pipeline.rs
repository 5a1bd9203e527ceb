//! The incremental path, run in memory: segmenter → co-location index →
//! exposure ledgers, fed one input at a time in arrival order.
//!
//! This is the same wiring the stream processors do with RocksDB and Kafka
//! (segmenter keyed by subject, presence-join keyed by cell, aggregator keyed
//! by case), collapsed into one struct of `BTreeMap`s so that property tests
//! can compare it with the [`oracle`](super::oracle) on thousands of
//! scenarios.

use std::collections::{BTreeMap, BTreeSet};

use epitrace_model::{CaseId, SubjectId};

use crate::cellkey::CellKey;
use crate::config::TracingConfig;
use crate::exposure::{Assessment, ContactLedger, PairKey};
use crate::join::{Bucket, Probe, buckets, overlap};
use crate::observation::Stream;
use crate::segment::{ChangeKind, Segment, SegmentChange, SegmentKey, SubjectTrail};
use crate::transit::streams_of;

use super::{CaseSpec, Input};

type SegRef = (SubjectId, SegmentKey);

/// The whole pipeline's state, in memory.
#[derive(Debug)]
pub struct MemoryPipeline {
    cfg: TracingConfig,
    trails: BTreeMap<(SubjectId, Stream), SubjectTrail>,
    live: BTreeMap<SubjectId, BTreeMap<SegmentKey, Segment>>,
    index: BTreeMap<(Bucket, CellKey), BTreeSet<SegRef>>,
    cases: BTreeMap<CaseId, CaseSpec>,
    subject_cases: BTreeMap<SubjectId, BTreeSet<CaseId>>,
    ledgers: BTreeMap<(CaseId, SubjectId), ContactLedger>,
    changes_seen: usize,
}

impl MemoryPipeline {
    /// An empty pipeline.
    #[must_use]
    pub fn new(cfg: TracingConfig) -> Self {
        Self {
            cfg,
            trails: BTreeMap::new(),
            live: BTreeMap::new(),
            index: BTreeMap::new(),
            cases: BTreeMap::new(),
            subject_cases: BTreeMap::new(),
            ledgers: BTreeMap::new(),
            changes_seen: 0,
        }
    }

    /// Feeds one input.
    pub fn push(&mut self, input: Input) {
        match input {
            Input::Observation { subject, obs } => {
                for stream in streams_of(&obs, &self.cfg.segment.transit) {
                    let changes = self
                        .trails
                        .entry((subject, stream))
                        .or_insert_with(|| SubjectTrail::new(stream))
                        .observe(&self.cfg.segment, obs);
                    self.apply_all(subject, changes);
                }
            }
            Input::Case(spec) => self.confirm(spec),
            Input::Retract(case) => self.retract(&case),
        }
    }

    /// Closes every open segment (end of input).
    pub fn finish(&mut self) {
        let keys: Vec<(SubjectId, Stream)> = self.trails.keys().copied().collect();
        for key in keys {
            let changes = self
                .trails
                .get_mut(&key)
                .map(|t| t.flush(&self.cfg.segment))
                .unwrap_or_default();
            self.apply_all(key.0, changes);
        }
    }

    /// The (case, contact) pairs that meet the rule, with their assessment.
    #[must_use]
    pub fn exposures(&self) -> BTreeMap<(CaseId, SubjectId), Assessment> {
        self.ledgers
            .iter()
            .map(|(k, ledger)| (k.clone(), ledger.assess(&self.cfg.exposure)))
            .filter(|(_, a)| a.exposed)
            .collect()
    }

    /// Every live segment (open or closed), by subject.
    #[must_use]
    pub fn segments(&self) -> BTreeMap<SubjectId, Vec<Segment>> {
        self.live
            .iter()
            .map(|(subject, segs)| (*subject, segs.values().copied().collect()))
            .collect()
    }

    /// How many segment changes the segmenter emitted so far.
    #[must_use]
    pub const fn changes_seen(&self) -> usize {
        self.changes_seen
    }

    fn apply_all(&mut self, subject: SubjectId, changes: Vec<SegmentChange>) {
        self.changes_seen += changes.len();
        for change in changes {
            self.apply(subject, change);
        }
    }

    fn apply(&mut self, subject: SubjectId, change: SegmentChange) {
        let key = change.segment.key;
        let old = self
            .live
            .get_mut(&subject)
            .and_then(|segs| segs.remove(&key));
        if let Some(old) = old {
            self.unindex(subject, &old);
            self.forget(subject, key);
        }
        if change.kind != ChangeKind::Retracted {
            self.live
                .entry(subject)
                .or_default()
                .insert(key, change.segment);
            self.index(subject, &change.segment);
            self.join_new(subject, &change.segment);
        }
    }

    fn index_keys(&self, seg: &Segment) -> Vec<(Bucket, CellKey)> {
        let cell = CellKey::from_cell(seg.cell);
        buckets(seg.interval(), self.cfg.join.bucket.as_millis())
            .into_iter()
            .flatten()
            .map(|b| (b, cell))
            .collect()
    }

    fn index(&mut self, subject: SubjectId, seg: &Segment) {
        for k in self.index_keys(seg) {
            self.index.entry(k).or_default().insert((subject, seg.key));
        }
    }

    fn unindex(&mut self, subject: SubjectId, seg: &Segment) {
        for k in self.index_keys(seg) {
            if let Some(set) = self.index.get_mut(&k) {
                set.remove(&(subject, seg.key));
                if set.is_empty() {
                    self.index.remove(&k);
                }
            }
        }
    }

    /// Every live segment co-located with `seg` whose time overlaps it,
    /// found through the bucket × cell-key index.
    fn probe(&self, seg: &Segment) -> Vec<(SubjectId, Segment)> {
        let probe = Probe::new(CellKey::from_cell(seg.cell), self.cfg.footprint.min_res);
        let mut found: BTreeSet<SegRef> = BTreeSet::new();
        for b in buckets(seg.interval(), self.cfg.join.bucket.as_millis())
            .into_iter()
            .flatten()
        {
            let lo = (b, *probe.descendants.start());
            let hi = (b, *probe.descendants.end());
            for (_, refs) in self.index.range(lo..=hi) {
                found.extend(refs.iter().copied());
            }
            for a in &probe.ancestors {
                if let Some(refs) = self.index.get(&(b, *a)) {
                    found.extend(refs.iter().copied());
                }
            }
        }
        found
            .into_iter()
            .filter_map(|(subject, key)| {
                let seg = self.live.get(&subject)?.get(&key)?;
                Some((subject, *seg))
            })
            .filter(|(_, s)| s.interval().intersect(seg.interval()).is_some())
            .collect()
    }

    fn cases_of(&self, subject: SubjectId) -> Vec<CaseId> {
        self.subject_cases
            .get(&subject)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Records the overlap of a case's segment with a contact's, unless the
    /// contact is the case's own pseudonym.
    fn record(
        &mut self,
        case: &CaseId,
        case_subject: SubjectId,
        case_seg: &Segment,
        contact: SubjectId,
        contact_seg: &Segment,
    ) {
        let Some(spec) = self.cases.get(case) else {
            return;
        };
        if spec.subjects.contains(&contact) {
            return;
        }
        let pair = PairKey {
            case_subject,
            case_segment: case_seg.key,
            contact_segment: contact_seg.key,
        };
        let ov = overlap(case_seg, spec.window, contact_seg);
        let ledger = self.ledgers.entry((case.clone(), contact)).or_default();
        ledger.set(pair, ov);
        if ledger.is_empty() {
            self.ledgers.remove(&(case.clone(), contact));
        }
    }

    /// Joins a new or changed segment both ways: as a case segment against
    /// the population, and as a population segment against cases.
    fn join_new(&mut self, subject: SubjectId, seg: &Segment) {
        let own_cases = self.cases_of(subject);
        for (other, other_seg) in self.probe(seg) {
            if other == subject {
                continue;
            }
            for case in &own_cases {
                self.record(case, subject, seg, other, &other_seg);
            }
            for case in self.cases_of(other) {
                self.record(&case, other, &other_seg, subject, seg);
            }
        }
    }

    /// Drops every recorded overlap involving one segment.
    fn forget(&mut self, subject: SubjectId, key: SegmentKey) {
        for ((_, contact), ledger) in &mut self.ledgers {
            if *contact == subject {
                ledger.forget_contact_segment(key);
            }
            ledger.forget_case_segment(subject, key);
        }
        self.ledgers.retain(|_, l| !l.is_empty());
    }

    fn confirm(&mut self, spec: CaseSpec) {
        self.retract(&spec.case);
        let case = spec.case.clone();
        for s in &spec.subjects {
            self.subject_cases
                .entry(*s)
                .or_default()
                .insert(case.clone());
        }
        let subjects = spec.subjects.clone();
        self.cases.insert(case.clone(), spec);
        // Look back over the stored trail of every pseudonym of the case.
        for subject in subjects {
            let segs: Vec<Segment> = self
                .live
                .get(&subject)
                .map(|segs| segs.values().copied().collect())
                .unwrap_or_default();
            for seg in segs {
                for (other, other_seg) in self.probe(&seg) {
                    if other != subject {
                        self.record(&case, subject, &seg, other, &other_seg);
                    }
                }
            }
        }
    }

    fn retract(&mut self, case: &CaseId) {
        if let Some(old) = self.cases.remove(case) {
            for s in &old.subjects {
                if let Some(set) = self.subject_cases.get_mut(s) {
                    set.remove(case);
                }
            }
            self.ledgers.retain(|(c, _), _| c != case);
        }
    }
}
