//! # presence-join
//!
//! - **Input:** `presence.segments` (key = partition cell at
//!   `footprint.min_res`): [`SegmentUpdate`]s from the segmenter.
//! - **State** (RocksDB; co-located segments share a partition because they
//!   share the partition-resolution ancestor):
//!   - `by_id`: subject | segment key → the segment's current version;
//!   - `presence`: bucket | cell key | subject | segment key → every
//!     non-empty segment, once per time bucket it touches;
//!   - `patients`: the same, only segments tagged with a case.
//!
//!   Keys are big-endian with the bucket first, so a probe is one range scan
//!   per bucket over a cell's descendants plus a few point-prefix scans for
//!   its ancestors ([`Probe`]), and retention drops whole buckets.
//! - **Output:** `exposure.candidates` (key = case id): for each pair of a
//!   case segment and a co-located contact segment, their overlap within the
//!   case's infectious window; `overlap = null` withdraws a pair whose
//!   earlier version overlapped (segment changed or retracted).
//! - **Both ways:** a case segment probes everyone (`presence`); any segment
//!   probes the case segments (`patients`). So population data arriving
//!   after the case still matches, and so does a case confirmed after its
//!   contacts' data (the segmenter re-sends the case's segments, tagged).
//! - **Time:** event time. Index entries older than `retention` behind the
//!   latest segment end seen are dropped by whole buckets at the end of a
//!   batch. Outputs carry the input's timestamp.
//! - **Delivery:** at-least-once with deterministic outputs. For one pair,
//!   every candidate comes from this partition in input order, so the
//!   aggregator sees a pair's withdrawal before its new overlap.

use std::collections::BTreeMap;

use epitrace_core::join::{Bucket, Probe, buckets, infectious_window, overlap};
use epitrace_core::{CellKey, Overlap, Segment, TracingConfig};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{ExposureCandidate, SegmentUpdate, SegmentUpdateKind, TimeWindow};
use epitrace_state::Txn;
use epitrace_stream::{InputRecord, OutputRecord, ProcessError, Processor};

use crate::common::{
    OrFatal, decode, decode_value, encode_value, i64_key, prefix_end, segment_id_key, segment_of,
    segment_ref,
};
use crate::topology::{CANDIDATES, SEGMENTS};

/// Store of current segment versions.
pub const BY_ID: &str = "by_id";
/// Index of every segment.
pub const PRESENCE: &str = "presence";
/// Index of case segments.
pub const PATIENTS: &str = "patients";

/// One (case segment, contact segment) pair and where/when they met.
struct Pair<'a> {
    case_id: &'a epitrace_model::CaseId,
    case: &'a SegmentUpdate,
    contact: &'a SegmentUpdate,
    overlap: Overlap,
}

/// A pair's identity: case, case segment, contact segment.
type PairId = (epitrace_model::CaseId, Vec<u8>, Vec<u8>);

impl Pair<'_> {
    fn id(&self) -> PairId {
        (
            self.case_id.clone(),
            segment_id_key(self.case.subject, &segment_of(self.case).key),
            segment_id_key(self.contact.subject, &segment_of(self.contact).key),
        )
    }
}

/// The presence-join processor.
#[derive(Debug)]
pub struct PresenceJoin {
    cfg: TracingConfig,
    retention_ms: i64,
    latest_end_ms: Option<i64>,
    dropped_before: Option<Bucket>,
}

impl PresenceJoin {
    /// The stores it needs.
    pub const STORES: &'static [&'static str] = &[BY_ID, PRESENCE, PATIENTS];

    /// A join for one configuration; index entries older than `retention_ms`
    /// behind the newest segment are dropped.
    #[must_use]
    pub fn new(cfg: &TracingConfig, retention_ms: i64) -> Self {
        Self {
            cfg: cfg.clone(),
            retention_ms,
            latest_end_ms: None,
            dropped_before: None,
        }
    }

    fn bucket_ms(&self) -> i64 {
        self.cfg.join.bucket.as_millis()
    }

    fn index_keys(&self, u: &SegmentUpdate) -> Vec<Vec<u8>> {
        let seg = segment_of(u);
        let cell = CellKey::from_cell(seg.cell).to_be_bytes();
        let id = segment_id_key(u.subject, &seg.key);
        buckets(seg.interval(), self.bucket_ms())
            .into_iter()
            .flatten()
            .map(|b| {
                let mut k = Vec::with_capacity(16 + id.len());
                k.extend_from_slice(&i64_key(b));
                k.extend_from_slice(&cell);
                k.extend_from_slice(&id);
                k
            })
            .collect()
    }

    /// Every segment in `store` co-located with `seg` and overlapping it in
    /// time, other subjects only.
    fn probe(
        &self,
        store: &str,
        u: &SegmentUpdate,
        txn: &Txn<'_>,
    ) -> Result<Vec<SegmentUpdate>, ProcessError> {
        let seg = segment_of(u);
        let probe = Probe::new(CellKey::from_cell(seg.cell), self.cfg.footprint.min_res);
        let mut found: BTreeMap<Vec<u8>, SegmentUpdate> = BTreeMap::new();
        for b in buckets(seg.interval(), self.bucket_ms())
            .into_iter()
            .flatten()
        {
            let bucket = i64_key(b);
            let key = |cell: CellKey| [bucket.as_slice(), &cell.to_be_bytes()].concat();
            let mut ranges = vec![(
                key(*probe.descendants.start()),
                prefix_end(&key(*probe.descendants.end())),
            )];
            for a in &probe.ancestors {
                let k = key(*a);
                let end = prefix_end(&k);
                ranges.push((k, end));
            }
            for (from, to) in ranges {
                for (k, v) in txn.scan(store, &from, &to).or_fatal()? {
                    // The id part (after bucket and cell) names the segment.
                    let id = k.get(16..).unwrap_or_default().to_vec();
                    if id.get(..16) == Some(u.subject.as_bytes().as_slice())
                        || found.contains_key(&id)
                    {
                        continue;
                    }
                    let other: SegmentUpdate = decode_value(&v)?;
                    if segment_of(&other)
                        .interval()
                        .intersect(seg.interval())
                        .is_some()
                    {
                        found.insert(id, other);
                    }
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// The pairs `u` forms with the stored segments: as a case segment
    /// against everyone, and as anyone's segment against case segments.
    fn pairs<'a>(
        &self,
        u: &'a SegmentUpdate,
        everyone: &'a [SegmentUpdate],
        patients: &'a [SegmentUpdate],
    ) -> Vec<Pair<'a>> {
        let seg = segment_of(u);
        let mut out = Vec::new();
        for tag in &u.cases {
            let window = infectious_window(tag.infectious_from, tag.infectious_until);
            for other in everyone {
                if let Some(ov) = overlap(&seg, window, &segment_of(other)) {
                    out.push(Pair {
                        case_id: &tag.case_id,
                        case: u,
                        contact: other,
                        overlap: ov,
                    });
                }
            }
        }
        for other in patients {
            let other_seg = segment_of(other);
            for tag in &other.cases {
                let window = infectious_window(tag.infectious_from, tag.infectious_until);
                if let Some(ov) = overlap(&other_seg, window, &seg) {
                    out.push(Pair {
                        case_id: &tag.case_id,
                        case: other,
                        contact: u,
                        overlap: ov,
                    });
                }
            }
        }
        out
    }

    fn emit(
        &self,
        p: &Pair<'_>,
        withdraw: bool,
        ts: Option<i64>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        {
            let overlap = if withdraw {
                None
            } else {
                Some(TimeWindow::new(p.overlap.window.start(), p.overlap.window.end()).or_fatal()?)
            };
            let candidate = ExposureCandidate {
                case_id: p.case_id.clone(),
                case_subject: p.case.subject,
                case_segment: segment_ref(&segment_of(p.case).key),
                contact: p.contact.subject,
                contact_segment: segment_ref(&segment_of(p.contact).key),
                cell: p.overlap.cell,
                overlap,
            };
            out.push(OutputRecord {
                topic: CANDIDATES.into(),
                key: p.case_id.as_str().as_bytes().to_vec(),
                payload: encode_single_object(&candidate).or_fatal()?,
                timestamp_ms: ts,
            });
        }
        Ok(())
    }

    /// The stored segments `u` may pair with: everyone when `u` is a case
    /// segment, case segments in any case.
    fn partners(
        &self,
        u: &SegmentUpdate,
        txn: &Txn<'_>,
    ) -> Result<(Vec<SegmentUpdate>, Vec<SegmentUpdate>), ProcessError> {
        let everyone = if u.is_case() {
            self.probe(PRESENCE, u, txn)?
        } else {
            Vec::new()
        };
        Ok((everyone, self.probe(PATIENTS, u, txn)?))
    }
}

impl Processor for PresenceJoin {
    fn name(&self) -> &'static str {
        "presence-join"
    }

    fn inputs(&self) -> Vec<String> {
        vec![SEGMENTS.into()]
    }

    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let update: SegmentUpdate = decode(record)?;
        let ts = record.timestamp_ms;
        let seg: Segment = segment_of(&update);
        let id = segment_id_key(update.subject, &seg.key);
        let old: Option<SegmentUpdate> = match txn.get(BY_ID, &id).or_fatal()? {
            Some(bytes) => Some(decode_value(&bytes)?),
            None => None,
        };
        let live = update.kind == SegmentUpdateKind::Upsert && !seg.interval().is_empty();
        // The pairs before and after this update, against the same stored
        // partners; only the difference is sent, so a growing segment does
        // not withdraw and re-add every pair (no flapping downstream).
        let (old_partners, new_partners) = (
            old.as_ref().map(|o| self.partners(o, txn)).transpose()?,
            if live {
                Some(self.partners(&update, txn)?)
            } else {
                None
            },
        );
        let before: BTreeMap<PairId, Pair<'_>> = match (&old, &old_partners) {
            (Some(o), Some((e, p))) => self
                .pairs(o, e, p)
                .into_iter()
                .map(|p| (p.id(), p))
                .collect(),
            _ => BTreeMap::new(),
        };
        let after: BTreeMap<PairId, Pair<'_>> = match &new_partners {
            Some((e, p)) => self
                .pairs(&update, e, p)
                .into_iter()
                .map(|p| (p.id(), p))
                .collect(),
            None => BTreeMap::new(),
        };
        for (pid, p) in &before {
            if !after.contains_key(pid) {
                self.emit(p, true, ts, out)?;
            }
        }
        for (pid, p) in &after {
            if before.get(pid).is_none_or(|b| b.overlap != p.overlap) {
                self.emit(p, false, ts, out)?;
            }
        }
        if let Some(old) = &old {
            for k in self.index_keys(old) {
                txn.delete(PRESENCE, &k[..]);
                txn.delete(PATIENTS, &k[..]);
            }
            txn.delete(BY_ID, &id[..]);
        }
        if live {
            let value = encode_value(&update)?;
            for k in self.index_keys(&update) {
                txn.put(PRESENCE, &k[..], &value[..]);
                if update.is_case() {
                    txn.put(PATIENTS, &k[..], &value[..]);
                }
            }
            txn.put(BY_ID, &id[..], &value[..]);
            let end = seg.end.as_millis();
            self.latest_end_ms = Some(self.latest_end_ms.map_or(end, |l| l.max(end)));
        }
        Ok(())
    }

    fn end_batch(
        &mut self,
        txn: &mut Txn<'_>,
        _out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let Some(latest) = self.latest_end_ms else {
            return Ok(());
        };
        let cutoff = (latest - self.retention_ms).div_euclid(self.bucket_ms().max(1));
        if self.dropped_before.is_some_and(|d| d >= cutoff) {
            return Ok(());
        }
        // Whole buckets only: every key of a bucket < cutoff.
        txn.drop_buckets_before(PRESENCE, cutoff);
        txn.drop_buckets_before(PATIENTS, cutoff);
        self.dropped_before = Some(cutoff);
        Ok(())
    }
}
