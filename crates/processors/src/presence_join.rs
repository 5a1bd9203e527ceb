//! # presence-join
//!
//! - **Input:** `presence.segments` (key = partition cell at
//!   `footprint.min_res`): [`SegmentUpdate`]s from the segmenter.
//! - **State** (RocksDB; co-located segments share a partition because they
//!   share the partition-resolution ancestor):
//!   - `by_id`: subject | segment key → the segment's current version;
//!   - `presence`: bucket | cell key | subject | segment key → (empty): every
//!     non-empty segment, once per time bucket it touches (keys only: the
//!     segment itself is read from `by_id`);
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
//! - **Interview evidence:** a segment of the interview stream (a place a
//!   patient stated, from the case-router) is its case's evidence only: it
//!   is indexed in `patients` and probes everyone, but is never indexed in
//!   `presence` and never probes `patients`, so a statement never makes its
//!   subject anyone's contact.
//! - **Time:** event time. Index entries older than `retention` behind the
//!   latest segment end seen are dropped by whole buckets at the end of a
//!   batch (at most once per day of event time: each drop is a range
//!   tombstone); `by_id` is swept a bounded slice per batch, deleting the
//!   segments that ended before that cutoff with their index keys. Outputs
//!   carry the input's timestamp.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see `epitrace_stream`); either way with deterministic outputs. For one pair,
//!   every candidate comes from this partition in input order, so the
//!   aggregator sees a pair's withdrawal before its new overlap.

use std::collections::{BTreeMap, BTreeSet};

use epitrace_core::codec::{decode_segment, encode_segment};
use epitrace_core::join::{Bucket, Probe, buckets, infectious_window, overlap};
use epitrace_core::{CellKey, Lane, Overlap, Segment, Stream, TracingConfig};
use epitrace_engine::{InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{
    CaseTag, ExposureCandidate, SegmentUpdate, SegmentUpdateKind, TimeWindow,
};
use epitrace_model::{CaseId, EventTime, SubjectId};
use epitrace_state::Txn;

use crate::common::{
    OrFatal, decode, i64_key, prefix_end, segment_id_key, segment_of, segment_ref, sweep_slice,
    update_of,
};
use crate::topology::{CANDIDATES, SEGMENTS};

/// Store of current segment versions.
pub const BY_ID: &str = "by_id";
/// Index of every segment.
pub const PRESENCE: &str = "presence";
/// Index of case segments.
pub const PATIENTS: &str = "patients";

/// Format version of [`encode_indexed`].
const INDEX_VALUE_VERSION: u8 = 1;

/// The stored form of a segment in `by_id`, `presence` and `patients`: a
/// compact binary layout (a probe decodes every co-located entry, so this
/// is on the hot path; an Avro datum costs microseconds to decode).
///
/// `version(1) · subject(16) · segment (core codec) · tag count(4) ·
/// tags: case id length(2) · case id · from(8) · until flag(1) [· until(8)]`.
fn encode_indexed(u: &SegmentUpdate) -> Vec<u8> {
    let seg = encode_segment(&segment_of(u));
    let mut v = Vec::with_capacity(21 + seg.len() + u.cases.len() * 40);
    v.push(INDEX_VALUE_VERSION);
    v.extend_from_slice(u.subject.as_bytes());
    v.extend_from_slice(&u32::try_from(seg.len()).unwrap_or(u32::MAX).to_le_bytes());
    v.extend_from_slice(&seg);
    v.extend_from_slice(
        &u32::try_from(u.cases.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    for tag in &u.cases {
        let id = tag.case_id.as_str().as_bytes();
        v.extend_from_slice(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_le_bytes());
        v.extend_from_slice(id);
        v.extend_from_slice(&tag.infectious_from.as_millis().to_le_bytes());
        match tag.infectious_until {
            Some(t) => {
                v.push(1);
                v.extend_from_slice(&t.as_millis().to_le_bytes());
            }
            None => v.push(0),
        }
    }
    v
}

/// Reads [`encode_indexed`] back; anything malformed is corrupt state.
pub(crate) fn decode_indexed(bytes: &[u8]) -> Result<SegmentUpdate, ProcessError> {
    let corrupt = |what: &str| ProcessError::Fatal(format!("corrupt presence index value: {what}"));
    let mut r = bytes;
    let mut take = |n: usize| -> Result<&[u8], ProcessError> {
        if r.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = r.split_at(n);
        r = tail;
        Ok(head)
    };
    if take(1)? != [INDEX_VALUE_VERSION] {
        return Err(corrupt("format version"));
    }
    let subject = SubjectId::from_slice(take(16)?).map_err(|e| corrupt(&e.to_string()))?;
    let le_u32 = |b: &[u8]| {
        b.try_into()
            .map(u32::from_le_bytes)
            .map_err(|_| corrupt("length"))
    };
    let seg_len = le_u32(take(4)?)? as usize;
    let seg = decode_segment(take(seg_len)?).or_fatal()?;
    let n = le_u32(take(4)?)?;
    let mut cases = Vec::new();
    for _ in 0..n {
        let id_len = take(2)?
            .try_into()
            .map(u16::from_le_bytes)
            .map_err(|_| corrupt("id length"))?;
        let case_id = std::str::from_utf8(take(usize::from(id_len))?)
            .map_err(|_| corrupt("case id"))
            .and_then(|s| CaseId::new(s).map_err(|e| corrupt(&e.to_string())))?;
        let time = |b: &[u8]| -> Result<EventTime, ProcessError> {
            let ms = b
                .try_into()
                .map(i64::from_le_bytes)
                .map_err(|_| corrupt("time"))?;
            EventTime::from_millis("infectious", ms).map_err(|e| corrupt(&e.to_string()))
        };
        let infectious_from = time(take(8)?)?;
        let infectious_until = match take(1)? {
            [0] => None,
            [1] => Some(time(take(8)?)?),
            _ => return Err(corrupt("option tag")),
        };
        cases.push(CaseTag {
            case_id,
            infectious_from,
            infectious_until,
        });
    }
    if !r.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(update_of(subject, &seg, SegmentUpdateKind::Upsert, cases))
}

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
    /// Event time of the last record (for the lag metric).
    last_event_ms: Option<i64>,
    /// Where the retention sweep of `by_id` goes on.
    sweep_cursor: Vec<u8>,
}

/// Whether `u` is a case's interview evidence (see the module docs).
fn is_evidence(u: &SegmentUpdate) -> bool {
    Lane(u.lane).stream() == Stream::Interview
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
            last_event_ms: None,
            dropped_before: None,
            sweep_cursor: Vec::new(),
        }
    }

    /// Retention of `by_id`: a slice of `SWEEP_SLICE` (256) committed entries
    /// per batch (resuming where the last ended, wrapping around); a
    /// segment that ended more than the retention before the newest one is
    /// deleted with its index keys. Silent downstream, like the bucket drop.
    fn sweep(&mut self, txn: &mut Txn<'_>, cutoff_ms: i64) -> Result<(), ProcessError> {
        for id in sweep_slice(txn, BY_ID, &mut self.sweep_cursor)? {
            // This batch's version, if it changed the segment.
            let Some(bytes) = txn.get(BY_ID, &id).or_fatal()? else {
                continue;
            };
            let update = decode_indexed(&bytes)?;
            if update.end.as_millis() >= cutoff_ms {
                continue;
            }
            for store in [PRESENCE, PATIENTS] {
                for k in self.store_keys(store, &update) {
                    txn.delete(store, &k[..]);
                }
            }
            txn.delete(BY_ID, &id[..]);
        }
        Ok(())
    }

    fn bucket_ms(&self) -> i64 {
        self.cfg.join.bucket.as_millis()
    }

    /// The index keys of `u` in `store`: `presence` holds every segment but
    /// interview evidence, `patients` the case segments.
    fn store_keys(&self, store: &str, u: &SegmentUpdate) -> Vec<Vec<u8>> {
        let indexed = if store == PATIENTS {
            u.is_case()
        } else {
            !is_evidence(u)
        };
        if indexed {
            self.index_keys(u)
        } else {
            Vec::new()
        }
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
                for (k, _) in txn.scan(store, &from, &to).or_fatal()? {
                    // The id part (after bucket and cell) names the segment.
                    let id = k.get(16..).unwrap_or_default().to_vec();
                    if id.get(..16) == Some(u.subject.as_bytes().as_slice())
                        || found.contains_key(&id)
                    {
                        continue;
                    }
                    let Some(bytes) = txn.get(BY_ID, &id).or_fatal()? else {
                        return Err(ProcessError::Fatal("index entry without a segment".into()));
                    };
                    let other = decode_indexed(&bytes)?;
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
        // A subject tagged with the case is one of its pseudonyms, never
        // its contact.
        let own = |s: &SegmentUpdate, case: &CaseId| s.cases.iter().any(|t| t.case_id == *case);
        for tag in &u.cases {
            let window = infectious_window(tag.infectious_from, tag.infectious_until);
            for other in everyone.iter().filter(|o| !own(o, &tag.case_id)) {
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
        // Interview evidence is nobody's presence: it is never a contact.
        for other in patients.iter().filter(|_| !is_evidence(u)) {
            let other_seg = segment_of(other);
            for tag in other.cases.iter().filter(|t| !own(u, &t.case_id)) {
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
}

impl Processor for PresenceJoin {
    fn name(&self) -> &'static str {
        "presence-join"
    }

    fn inputs(&self) -> Vec<String> {
        vec![SEGMENTS.into()]
    }

    fn last_event_time_ms(&self) -> Option<i64> {
        self.last_event_ms
    }

    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let update: SegmentUpdate = decode(record)?;
        self.last_event_ms = Some(update.end.as_millis());
        let ts = record.timestamp_ms;
        let seg: Segment = segment_of(&update);
        let id = segment_id_key(update.subject, &seg.key);
        let old: Option<SegmentUpdate> = match txn.get(BY_ID, &id).or_fatal()? {
            Some(bytes) => Some(decode_indexed(&bytes)?),
            None => None,
        };
        let live = update.kind == SegmentUpdateKind::Upsert && !seg.interval().is_empty();
        // The pairs before and after this update, against the same stored
        // partners; only the difference is sent, so a growing segment does
        // not withdraw and re-add every pair (no flapping downstream).
        // One probe covers both versions: same start, the later end, the
        // wider cell (the versions' cells nest: both hold the first
        // footprint).
        let probe_with = match (&old, live) {
            (Some(o), true) => {
                let mut wide = update.clone();
                wide.end = o.end.max(update.end);
                if o.cell.contains(update.cell) {
                    wide.cell = o.cell;
                }
                Some(wide)
            }
            (Some(o), false) => Some(o.clone()),
            (None, true) => Some(update.clone()),
            (None, false) => None,
        };
        let (everyone, patients) = match &probe_with {
            Some(u) => {
                let cases =
                    old.as_ref().is_some_and(SegmentUpdate::is_case) || (live && update.is_case());
                let everyone = if cases {
                    self.probe(PRESENCE, u, txn)?
                } else {
                    Vec::new()
                };
                let patients = if is_evidence(&update) {
                    Vec::new()
                } else {
                    self.probe(PATIENTS, u, txn)?
                };
                (everyone, patients)
            }
            None => (Vec::new(), Vec::new()),
        };
        let before: BTreeMap<PairId, Pair<'_>> = old
            .iter()
            .flat_map(|o| self.pairs(o, &everyone, &patients))
            .map(|p| (p.id(), p))
            .collect();
        let after: BTreeMap<PairId, Pair<'_>> = if live {
            self.pairs(&update, &everyone, &patients)
                .into_iter()
                .map(|p| (p.id(), p))
                .collect()
        } else {
            BTreeMap::new()
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
        // Index entries are keys only (the segment lives in `by_id`), so a
        // growing segment rewrites nothing but the buckets it newly covers:
        // few writes, few tombstones for later scans to skip.
        let keys = |u: Option<&SegmentUpdate>, store: &str| -> BTreeSet<Vec<u8>> {
            u.map(|u| self.store_keys(store, u).into_iter().collect())
                .unwrap_or_default()
        };
        let new = live.then_some(&update);
        for store in [PRESENCE, PATIENTS] {
            let (was, now) = (keys(old.as_ref(), store), keys(new, store));
            for k in was.difference(&now) {
                txn.delete(store, &k[..]);
            }
            for k in now.difference(&was) {
                txn.put(store, &k[..], Vec::new());
            }
        }
        if !live && old.is_some() {
            txn.delete(BY_ID, &id[..]);
        }
        if live {
            txn.put(BY_ID, &id[..], encode_indexed(&update));
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
        self.sweep(txn, latest - self.retention_ms)?;
        let bucket = self.bucket_ms().max(1);
        let cutoff = (latest - self.retention_ms).div_euclid(bucket);
        // A range deletion leaves a tombstone every read must skip until
        // compaction; issue one per day of event time at most.
        let day = (epitrace_model::time::DAY_MS / bucket).max(1);
        if self.dropped_before.is_some_and(|d| cutoff < d + day) {
            return Ok(());
        }
        // Whole buckets only: every key of a bucket < cutoff.
        txn.drop_buckets_before(PRESENCE, cutoff);
        txn.drop_buckets_before(PATIENTS, cutoff);
        self.dropped_before = Some(cutoff);
        Ok(())
    }
}
