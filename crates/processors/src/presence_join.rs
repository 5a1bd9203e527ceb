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
//! - **Memory:** two in-memory mirrors of that state, built anew with the
//!   processor (the task builds it anew after a rewind or a restore, so
//!   they never hold an aborted batch): every key of `patients` (case
//!   segments are few; a probe of them then reads no RocksDB iterator), and
//!   the recently read or written segments of `by_id`, decoded (a growing
//!   segment is updated once per ping: its previous version is then a map
//!   lookup, not a RocksDB read and decode; `join.cache_segments` per
//!   generation, two generations). Every write of those stores goes through
//!   them, so they answer exactly what the transaction would.
//! - **Time:** event time. Index entries older than `retention` behind the
//!   latest segment end seen are dropped by whole buckets at the end of a
//!   batch (at most once per day of event time: each drop is a range
//!   tombstone); `by_id` is swept a bounded slice per batch, deleting the
//!   segments that ended before that cutoff with their index keys. Outputs
//!   carry the input's timestamp.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see `epitrace_stream`); either way with deterministic outputs. For one pair,
//!   every candidate comes from this partition in input order, so the
//!   aggregator sees a pair's withdrawal before its new overlap.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Bound, RangeInclusive};
use std::sync::Arc;

use epitrace_core::codec::{decode_segment, encode_segment};
use epitrace_core::join::{Bucket, Probe, buckets, infectious_window, overlap};
use epitrace_core::{CellKey, Interval, Lane, Overlap, Segment, Stream, TracingConfig};
use epitrace_engine::{InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{
    CaseTag, ExposureCandidate, SegmentUpdate, SegmentUpdateKind, TimeWindow,
};
use epitrace_model::{CaseId, Cell, EventTime, SubjectId};
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
    case_id: &'a CaseId,
    case: &'a SegmentUpdate,
    contact: &'a SegmentUpdate,
    overlap: Overlap,
}

/// A segment's identity (subject, lane, start, first cell), ordered as
/// [`segment_id_key`] orders its bytes.
type SegmentIdent = (SubjectId, u32, EventTime, Cell);

/// A pair's identity: case, case segment, contact segment (borrowed and
/// copied, never allocated: a case's segment forms many pairs per update).
type PairId<'a> = (&'a CaseId, SegmentIdent, SegmentIdent);

/// `bucket | cell | segment id`: an index key.
fn index_key(bucket: Bucket, cell: CellKey, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + id.len());
    k.extend_from_slice(&i64_key(bucket));
    k.extend_from_slice(&cell.to_be_bytes());
    k.extend_from_slice(id);
    k
}

fn ident(u: &SegmentUpdate) -> SegmentIdent {
    (u.subject, u.lane, u.start, u.first_cell)
}

impl<'a> Pair<'a> {
    fn id(&self) -> PairId<'a> {
        (self.case_id, ident(self.case), ident(self.contact))
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
    /// Every key of `patients`, read from the store on first use.
    patients: Option<BTreeSet<Vec<u8>>>,
    /// Recently read or written segments of `by_id`.
    recent: RecentSegments,
}

/// Segments of `by_id` recently read or written, decoded, by id: two
/// generations of at most `cap` entries each. A hit in the older one moves
/// the entry to the younger; when the younger is full it becomes the older
/// and the older is dropped, so the segments still being updated stay and
/// the rest age out without any bookkeeping per lookup.
///
/// Holds only present segments: a deleted one is removed, and a lookup
/// that misses falls back to the transaction.
#[derive(Debug)]
struct RecentSegments {
    young: HashMap<Vec<u8>, Arc<SegmentUpdate>>,
    old: HashMap<Vec<u8>, Arc<SegmentUpdate>>,
    cap: usize,
}

impl RecentSegments {
    fn new(cap: usize) -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            cap,
        }
    }

    fn get(&mut self, id: &[u8]) -> Option<Arc<SegmentUpdate>> {
        if let Some(u) = self.young.get(id) {
            return Some(Arc::clone(u));
        }
        let (id, u) = self.old.remove_entry(id)?;
        self.insert(id, Arc::clone(&u));
        Some(u)
    }

    fn insert(&mut self, id: Vec<u8>, u: Arc<SegmentUpdate>) {
        if self.cap == 0 {
            return;
        }
        if self.young.len() >= self.cap && !self.young.contains_key(&id) {
            self.old = std::mem::take(&mut self.young);
            self.old.remove(&id);
        }
        self.young.insert(id, u);
    }

    fn remove(&mut self, id: &[u8]) {
        self.young.remove(id);
        self.old.remove(id);
    }
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
            patients: None,
            recent: RecentSegments::new(cfg.join.cache_segments),
        }
    }

    /// The current version of segment `id`: from memory when recent, else
    /// read (and remembered if `remember`: the retention sweep reads
    /// segments that will not be updated again).
    fn segment(
        &mut self,
        txn: &Txn<'_>,
        id: &[u8],
        remember: bool,
    ) -> Result<Option<Arc<SegmentUpdate>>, ProcessError> {
        if let Some(u) = self.recent.get(id) {
            return Ok(Some(u));
        }
        let Some(bytes) = txn.get(BY_ID, id).or_fatal()? else {
            return Ok(None);
        };
        let u = Arc::new(decode_indexed(&bytes)?);
        if remember {
            self.recent.insert(id.to_vec(), Arc::clone(&u));
        }
        Ok(Some(u))
    }

    /// Stages `u` as segment `id`'s current version.
    fn put_segment(&mut self, txn: &mut Txn<'_>, id: Vec<u8>, u: Arc<SegmentUpdate>) {
        txn.put(BY_ID, id.clone(), encode_indexed(&u));
        self.recent.insert(id, u);
    }

    /// Stages the deletion of segment `id`.
    fn delete_segment(&mut self, txn: &mut Txn<'_>, id: &[u8]) {
        txn.delete(BY_ID, id);
        self.recent.remove(id);
    }

    /// The keys of `patients`, read on first use.
    fn patient_keys(&mut self, txn: &Txn<'_>) -> Result<&BTreeSet<Vec<u8>>, ProcessError> {
        if self.patients.is_none() {
            let keys = txn
                .scan(PATIENTS, &[], &[0xff; 64])
                .or_fatal()?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            self.patients = Some(keys);
        }
        Ok(self.patients.get_or_insert_default())
    }

    /// Stages an index key (both stores; `patients` through its mirror).
    fn put_key(&mut self, txn: &mut Txn<'_>, store: &str, key: Vec<u8>) {
        if store == PATIENTS
            && let Some(keys) = &mut self.patients
        {
            keys.insert(key.clone());
        }
        txn.put(store, key, Vec::new());
    }

    /// Stages an index key's deletion.
    fn delete_key(&mut self, txn: &mut Txn<'_>, store: &str, key: &[u8]) {
        if store == PATIENTS
            && let Some(keys) = &mut self.patients
        {
            keys.remove(key);
        }
        txn.delete(store, key);
    }

    /// Retention of `by_id`: a slice of `SWEEP_SLICE` (256) committed entries
    /// per batch (resuming where the last ended, wrapping around); a
    /// segment that ended more than the retention before the newest one is
    /// deleted with its index keys. Silent downstream, like the bucket drop.
    fn sweep(&mut self, txn: &mut Txn<'_>, cutoff_ms: i64) -> Result<(), ProcessError> {
        for id in sweep_slice(txn, BY_ID, &mut self.sweep_cursor)? {
            // This batch's version, if it changed the segment.
            let Some(update) = self.segment(txn, &id, false)? else {
                continue;
            };
            if update.end.as_millis() >= cutoff_ms {
                continue;
            }
            for store in [PRESENCE, PATIENTS] {
                for k in self.store_keys(store, &update) {
                    self.delete_key(txn, store, &k);
                }
            }
            self.delete_segment(txn, &id);
        }
        Ok(())
    }

    fn bucket_ms(&self) -> i64 {
        self.cfg.join.bucket.as_millis()
    }

    /// Where `u` is indexed in `store`: its cell and the buckets it touches
    /// (`presence` holds every segment but interview evidence, `patients`
    /// the case segments); `None` when it is not.
    fn placement(
        &self,
        store: &str,
        u: &SegmentUpdate,
    ) -> Option<(CellKey, RangeInclusive<Bucket>)> {
        let indexed = if store == PATIENTS {
            u.is_case()
        } else {
            !is_evidence(u)
        };
        if !indexed {
            return None;
        }
        let interval = Interval::new(u.start, u.end);
        Some((
            CellKey::from_cell(u.cell),
            buckets(interval, self.bucket_ms())?,
        ))
    }

    /// The index keys of `u` in `store` (see [`Self::placement`]).
    fn store_keys(&self, store: &str, u: &SegmentUpdate) -> Vec<Vec<u8>> {
        let id = segment_id_key(u.subject, &segment_of(u).key);
        self.placement(store, u)
            .map(|(cell, range)| range.map(|b| index_key(b, cell, &id)).collect())
            .unwrap_or_default()
    }

    /// Stages the index changes of segment `id` from version `old` to
    /// `new` in `store`. A segment that keeps its cell (most updates: it
    /// grew) only gains or loses whole buckets at its ends.
    fn reindex(
        &mut self,
        txn: &mut Txn<'_>,
        store: &str,
        id: &[u8],
        old: Option<&SegmentUpdate>,
        new: Option<&SegmentUpdate>,
    ) {
        let was = old.and_then(|u| self.placement(store, u));
        let now = new.and_then(|u| self.placement(store, u));
        let (gone, added) = match (was, now) {
            (Some((c0, r0)), Some((c1, r1))) if c0 == c1 => (
                r0.clone()
                    .filter(|b| !r1.contains(b))
                    .map(|b| (b, c0))
                    .collect::<Vec<_>>(),
                r1.filter(|b| !r0.contains(b)).map(|b| (b, c1)).collect(),
            ),
            (was, now) => {
                let all = |p: Option<(CellKey, RangeInclusive<Bucket>)>| -> Vec<(Bucket, CellKey)> {
                    p.map(|(c, r)| r.map(|b| (b, c)).collect())
                        .unwrap_or_default()
                };
                (all(was), all(now))
            }
        };
        for (b, c) in gone {
            self.delete_key(txn, store, &index_key(b, c, id));
        }
        for (b, c) in added {
            self.put_key(txn, store, index_key(b, c, id));
        }
    }

    /// Every segment in `store` co-located with `cell` and overlapping
    /// `interval`, of subjects other than `subject`, in id order.
    fn probe(
        &mut self,
        store: &str,
        subject: SubjectId,
        (cell, interval): (Cell, Interval),
        txn: &Txn<'_>,
    ) -> Result<Vec<Arc<SegmentUpdate>>, ProcessError> {
        let probe = Probe::new(CellKey::from_cell(cell), self.cfg.footprint.min_res);
        // Per bucket: the descendants' range and each ancestor's keys, as
        // `[bucket | first cell, bucket | last cell]` (inclusive on the
        // 16-byte prefix of the keys).
        let mut ranges: Vec<([u8; 16], [u8; 16])> = Vec::new();
        for b in buckets(interval, self.bucket_ms()).into_iter().flatten() {
            let key = |cell: CellKey| {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&i64_key(b));
                k[8..].copy_from_slice(&cell.to_be_bytes());
                k
            };
            ranges.push((
                key(*probe.descendants.start()),
                key(*probe.descendants.end()),
            ));
            for a in &probe.ancestors {
                ranges.push((key(*a), key(*a)));
            }
        }
        // Every key whose 16-byte prefix is within `[from, last]`.
        let bounds = |(from, last): &([u8; 16], [u8; 16])| (from.to_vec(), prefix_end(last));
        // The id part of an index key (after bucket and cell) names the
        // segment; a segment is indexed once per bucket, found once.
        let mut ids: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut note = |k: &[u8]| {
            let id = k.get(16..).unwrap_or_default();
            if id.get(..16) != Some(subject.as_bytes().as_slice()) {
                ids.insert(id.to_vec());
            }
        };
        if store == PATIENTS {
            let keys = self.patient_keys(txn)?;
            for (from, last) in &ranges {
                let range = (Bound::Included(&from[..]), Bound::Unbounded);
                keys.range::<[u8], _>(range)
                    .take_while(|k| k.get(..16).is_some_and(|p| p <= &last[..]))
                    .for_each(|k| note(k));
            }
        } else {
            for range in &ranges {
                let (from, to) = bounds(range);
                for (k, _) in txn.scan(store, &from, &to).or_fatal()? {
                    note(&k);
                }
            }
        }
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(other) = self.segment(txn, &id, true)? else {
                return Err(ProcessError::Fatal("index entry without a segment".into()));
            };
            if segment_of(&other).interval().intersect(interval).is_some() {
                found.push(other);
            }
        }
        Ok(found)
    }

    /// The pairs `u` forms with the stored segments: as a case segment
    /// against everyone, and as anyone's segment against case segments.
    fn pairs<'a>(
        &self,
        u: &'a SegmentUpdate,
        everyone: &'a [Arc<SegmentUpdate>],
        patients: &'a [Arc<SegmentUpdate>],
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
                case_core: p.overlap.case_core,
                contact_core: p.overlap.contact_core,
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
        let old = self.segment(txn, &id, true)?;
        let live = update.kind == SegmentUpdateKind::Upsert && !seg.interval().is_empty();
        // The pairs before and after this update, against the same stored
        // partners; only the difference is sent, so a growing segment does
        // not withdraw and re-add every pair (no flapping downstream).
        // What to probe, as (cell, interval):
        // - a segment that only grew (same cell, core and case tags, a
        //   later end) changes its pairs with the partners present in the
        //   added time only: one that ended before the old end overlaps
        //   both versions alike. So a segment updated at every ping probes
        //   one bucket, not all of its own. A changed core changes every
        //   pair's evidence (the candidates carry both cores), so it is
        //   probed in full: what reaches the aggregator never depends on
        //   how updates were batched;
        // - otherwise one probe covers both versions: same start, the later
        //   end, the wider cell (the versions' cells nest: both hold the
        //   first footprint).
        let probe_at: Option<(Cell, Interval)> = match (&old, live) {
            (Some(o), true)
                if o.cell == update.cell
                    && o.core_cell == update.core_cell
                    && o.cases == update.cases
                    && update.end >= o.end =>
            {
                Some((update.cell, Interval::new(o.end, update.end)))
            }
            (Some(o), true) => {
                let cell = if o.cell.contains(update.cell) {
                    o.cell
                } else {
                    update.cell
                };
                Some((cell, Interval::new(update.start, o.end.max(update.end))))
            }
            (Some(o), false) => Some((o.cell, segment_of(o).interval())),
            (None, true) => Some((update.cell, seg.interval())),
            (None, false) => None,
        };
        let (everyone, patients) = match probe_at {
            Some(at) => {
                let cases = old.as_ref().is_some_and(|o| o.is_case()) || (live && update.is_case());
                let everyone = if cases {
                    self.probe(PRESENCE, update.subject, at, txn)?
                } else {
                    Vec::new()
                };
                let patients = if is_evidence(&update) {
                    Vec::new()
                } else {
                    self.probe(PATIENTS, update.subject, at, txn)?
                };
                (everyone, patients)
            }
            None => (Vec::new(), Vec::new()),
        };
        // Nobody to pair with (most updates): no pairs before or after.
        let alone = everyone.is_empty() && patients.is_empty();
        let before: BTreeMap<PairId<'_>, Pair<'_>> = old
            .iter()
            .filter(|_| !alone)
            .flat_map(|o| self.pairs(o, &everyone, &patients))
            .map(|p| (p.id(), p))
            .collect();
        let after: BTreeMap<PairId<'_>, Pair<'_>> = if live && !alone {
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
        drop(before);
        drop(after);
        let new = live.then_some(&update);
        for store in [PRESENCE, PATIENTS] {
            self.reindex(txn, store, &id, old.as_deref(), new);
        }
        if !live && old.is_some() {
            self.delete_segment(txn, &id);
        }
        if live {
            let end = seg.end.as_millis();
            self.latest_end_ms = Some(self.latest_end_ms.map_or(end, |l| l.max(end)));
            self.put_segment(txn, id, Arc::new(update));
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
        if let Some(keys) = &mut self.patients {
            // Keys lead with their bucket: the kept ones are a suffix.
            *keys = keys.split_off(i64_key(cutoff).as_slice());
        }
        self.dropped_before = Some(cutoff);
        Ok(())
    }
}
