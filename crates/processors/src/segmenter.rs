//! # segmenter
//!
//! - **Inputs** (co-partitioned, key = subject pseudonym):
//!   `feeds.telecom.location` ([`LocationPing`]), `feeds.card.transaction`
//!   ([`CardTransaction`]), `feeds.venue.checkin` ([`VenueCheckin`]) and
//!   `cases.by-subject` ([`SubjectCase`]).
//! - **State** (RocksDB, keyed by subject):
//!   - `trails`: subject | feed → [`SubjectTrail`] (the segmentation state
//!     machine of one feed of the subject: an open segment and the
//!     observations within the grace period);
//!   - `segments`: subject | segment key → the subject's closed (final)
//!     segments, kept so that a case confirmed later can look back over
//!     them; its open segments are in its trails;
//!   - `tags`: subject | case id → [`SubjectCase`], the cases the subject
//!     belongs to, their infectious windows and approvals (those still
//!     holding when last evaluated).
//! - **Output:** `presence.segments` (key = the segment cell's ancestor at
//!   the partition resolution, `footprint.min_res`): a [`SegmentUpdate`](epitrace_model::records::SegmentUpdate)
//!   whenever a segment's presence changes (opened, grown, widened, split,
//!   merged, retracted), tagged with the subject's cases. Empty segments (a
//!   lone ping: an instant) are not sent — they can overlap nothing.
//! - **Paths:** a GPS fix also goes to the subject's transit trail
//!   (`trails`: subject | `Stream::Transit`), which samples the path between
//!   consecutive moving fixes once a minute (`epitrace_core::transit`); its
//!   segments go to `presence.segments` like any other (lane of the transit
//!   stream), where they meet only other paths. A path is not a stay: it
//!   makes no visit on `tracing.timelines`.
//! - **Output:** `tracing.timelines` (key = case id): for a subject in one
//!   or more cases, every segment change as the [`Visit`] it makes in each
//!   case's timeline — the segment clipped to the case's infectious window,
//!   with a deterministic id (case, subject, segment key), so consumers
//!   upsert; `retracted = true` when the visit no longer exists (segment
//!   split or merged by late data, window changed, case retracted). A case
//!   confirmed later gets its visits from the look-back below.
//! - **Approvals** (see `epitrace_core::approval`): a visit is published
//!   only while its segment's category (LOCATION for telecom records, CARD,
//!   CHECKIN) is open for the case — an approval on the tag holds, or
//!   `tracing.approvals.open_by_default` opens it. A tag whose approvals
//!   change re-sends the visits it opens and retracts those it closes; an
//!   approval lapses when the stream time reaches its `expires_at` (checked
//!   at the end of each batch), which retracts the visits of its category.
//!   The segments themselves (and so the presence join) are not gated: the
//!   exposure aggregator gates exposures.
//! - **Keys:** every input record must be keyed by the subject its value
//!   names (the partitioning that keeps one person's state on one
//!   instance); one keyed otherwise is dead-lettered as `key_mismatch`.
//! - **Time:** event time; the grace period and late lanes are
//!   [`SubjectTrail`]'s. Outputs carry the input's timestamp.
//! - **Case look-back:** a `cases.by-subject` record re-sends every live
//!   segment of the subject (the closed ones stored, the open ones of its
//!   trails) with the new tags, so a case confirmed days
//!   after its trail was ingested is traced over that trail.
//! - **Delivery:** exactly-once by default, at-least-once as an option (see `epitrace_stream`); either way with deterministic outputs.
//! - **Retention:** by event time, `topology.retention` (21 days) behind
//!   the stream time (the latest event time processed, which cannot run
//!   more than a day ahead of the wall clock: later records are
//!   dead-lettered first). Each batch sweeps a bounded slice of every store
//!   and deletes trails not seen on time since the cutoff, closed segments
//!   that ended before it and case tags whose infectious window ended
//!   before it (`Segmenter::sweep`); deletion is silent downstream.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use epitrace_core::approval::gate_at;
use epitrace_core::codec::{decode_segment, encode_segment};
use epitrace_core::ids::visit_id;
use epitrace_core::interval::Interval;
use epitrace_core::join::infectious_window;
use epitrace_core::timeline::{clip, confidence};
use epitrace_core::transit::streams_of;
use epitrace_core::{
    ChangeKind, FootprintCache, Gate, Held, Ingest, Observation, Segment, SegmentChange, Stream,
    SubjectTrail, TracingConfig,
};
use epitrace_engine::{InputRecord, OutputRecord, ProcessError, Processor};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::Visit;
use epitrace_model::records::{
    CardTransaction, CaseStatus, CaseTag, LocationPing, SegmentUpdateKind, SubjectCase,
    VenueCheckin,
};
use epitrace_model::{CaseId, EventTime, Probability, SubjectId};
use epitrace_state::Txn;
use h3o::Resolution;

use crate::common::{
    OrFatal, check_key, decode, decode_value, encode_value, prefix_end, segment_id_key,
    sweep_slice, unexpected_topic, update_of, wire_sources,
};
use crate::topology::{CARD, CASES_BY_SUBJECT, CHECKIN, SEGMENTS, TELECOM, TIMELINES};

/// Store of segmentation state machines.
pub const TRAILS: &str = "trails";
/// Store of closed segments per subject.
pub const SUBJECT_SEGMENTS: &str = "segments";
/// Store of case tags per subject.
pub const TAGS: &str = "tags";

/// The segmenter processor.
#[derive(Debug)]
pub struct Segmenter {
    cfg: TracingConfig,
    ingest: Ingest,
    /// Footprints of recent tower coordinates.
    footprints: FootprintCache,
    partition_res: Resolution,
    /// Trails recently used, decoded: a write-through cache over `trails`
    /// (a phone reports many times a batch, and again the next batch).
    /// Valid because this processor is its store's only writer and a failed
    /// batch ends the task (and drops the cache) before anything is reused.
    trails: HashMap<Vec<u8>, SubjectTrail>,
    /// Trails changed in the current batch, written at its end.
    dirty: Vec<Vec<u8>>,
    /// Every case-tagged subject with its tags and the categories open for
    /// each: the whole `tags` store (small: only case subjects), loaded on
    /// first use and kept in step.
    tagged: Option<HashMap<SubjectId, Vec<(CaseTag, Gate)>>>,
    /// The categories open without an approval.
    default_gate: Gate,
    /// The earliest `expires_at` among the stored tags' approvals; `None`
    /// until read from the store (after a start or a rewind).
    next_expiry_ms: Option<i64>,
    /// Event time of the last record (for the lag metric).
    last_event_ms: Option<i64>,
    /// How long state is kept behind the stream time (ms); `None` keeps
    /// everything.
    retention_ms: Option<i64>,
    /// The latest event time processed: the clock retention runs on. It
    /// cannot jump far ahead: records more than a day past the wall clock
    /// are dead-lettered before they reach it.
    stream_time_ms: Option<i64>,
    /// Where the retention sweep of each store goes on (see
    /// [`Segmenter::sweep`]).
    sweep_cursor: [Vec<u8>; 3],
}

/// Most trails kept decoded between batches (about 1 KiB each).
const TRAIL_CACHE: usize = 200_000;

impl Segmenter {
    /// The stores it needs.
    pub const STORES: &'static [&'static str] = &[TRAILS, SUBJECT_SEGMENTS, TAGS];

    /// A segmenter for one configuration (assumed validated).
    #[must_use]
    pub fn new(cfg: &TracingConfig) -> Self {
        Self {
            ingest: Ingest::new(cfg),
            footprints: FootprintCache::new(16),
            partition_res: Resolution::try_from(cfg.footprint.min_res).unwrap_or(Resolution::Six),
            cfg: cfg.clone(),
            trails: HashMap::new(),
            dirty: Vec::new(),
            tagged: None,
            default_gate: cfg.approvals.default_gate(),
            next_expiry_ms: None,
            last_event_ms: None,
            retention_ms: None,
            stream_time_ms: None,
            sweep_cursor: [Vec::new(), Vec::new(), Vec::new()],
        }
    }

    /// Keeps state `retention_ms` behind the stream time: each batch sweeps
    /// a slice of every store and deletes what is older (see the module
    /// docs, Retention).
    #[must_use]
    pub const fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = Some(retention_ms);
        self
    }

    fn advance_stream_time(&mut self, event_ms: i64) {
        self.stream_time_ms = Some(self.stream_time_ms.map_or(event_ms, |t| t.max(event_ms)));
    }

    /// Retention of the subject-keyed stores, by event time: a slice of
    /// `SWEEP_SLICE` (256) committed entries of each store per batch, resuming
    /// where the last slice ended and wrapping around, so that the whole
    /// state is swept continuously at a bounded cost per batch. Deleted:
    /// trails whose subject has not been seen on time since the cutoff
    /// (stream time − retention), closed segments that ended before it, and
    /// case tags whose infectious window ended before it. Silent: what was
    /// published stays published (downstream state and topics expire by
    /// the same retention).
    fn sweep(&mut self, txn: &mut Txn<'_>) -> Result<(), ProcessError> {
        let (Some(retention), Some(now)) = (self.retention_ms, self.stream_time_ms) else {
            return Ok(());
        };
        let cutoff = now.saturating_sub(retention);
        for (i, store) in [TRAILS, SUBJECT_SEGMENTS, TAGS].into_iter().enumerate() {
            for key in sweep_slice(txn, store, &mut self.sweep_cursor[i])? {
                if self.expired(store, &key, cutoff, txn)? {
                    txn.delete(store, &key[..]);
                    if store == TRAILS {
                        self.trails.remove(&key);
                    }
                    if store == TAGS
                        && let Some(subject) = key
                            .get(..16)
                            .and_then(|b| <[u8; 16]>::try_from(b).ok())
                            .map(SubjectId::from_bytes)
                    {
                        self.reload_tags(subject, txn)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the current version of `key` (this batch's, else the
    /// stored one) is older than `cutoff`.
    fn expired(
        &self,
        store: &str,
        key: &[u8],
        cutoff: i64,
        txn: &Txn<'_>,
    ) -> Result<bool, ProcessError> {
        if store == TRAILS
            && let Some(trail) = self.trails.get(key)
        {
            return Ok(trail.watermark().is_some_and(|w| w.as_millis() < cutoff));
        }
        let Some(bytes) = txn.get(store, key).or_fatal()? else {
            return Ok(false);
        };
        Ok(match store {
            TRAILS => SubjectTrail::decode(&bytes)
                .or_fatal()?
                .watermark()
                .is_some_and(|w| w.as_millis() < cutoff),
            SUBJECT_SEGMENTS => decode_segment(&bytes).or_fatal()?.end.as_millis() < cutoff,
            _ => decode_value::<SubjectCase>(&bytes)?
                .infectious_until
                .is_some_and(|u| u.as_millis() < cutoff),
        })
    }

    /// The trail of one feed of a subject, and its key: from the cache, else
    /// the store, else a new one. Cached on return.
    fn trail<'c>(
        trails: &'c mut HashMap<Vec<u8>, SubjectTrail>,
        subject: SubjectId,
        stream: Stream,
        txn: &Txn<'_>,
    ) -> Result<(Vec<u8>, &'c mut SubjectTrail), ProcessError> {
        let mut key = Vec::with_capacity(17);
        key.extend_from_slice(subject.as_bytes());
        key.push(stream as u8);
        let trail = match trails.entry(key.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let trail = match txn.get(TRAILS, e.key()).or_fatal()? {
                    Some(bytes) => SubjectTrail::decode(&bytes).or_fatal()?,
                    None => SubjectTrail::new(stream),
                };
                e.insert(trail)
            }
        };
        Ok((key, trail))
    }

    fn observe(
        &mut self,
        subject: SubjectId,
        obs: Observation,
        ts: Option<i64>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        // One trail per feed of the subject (see `epitrace_core::segment`),
        // and one for the paths between its GPS fixes
        // (`epitrace_core::transit`).
        let mut tags = None;
        for stream in streams_of(&obs, &self.cfg.segment.transit) {
            let (key, trail) = Self::trail(&mut self.trails, subject, stream, txn)?;
            let changes = trail.observe(&self.cfg.segment, obs);
            self.dirty.push(key);
            if changes.is_empty() {
                continue;
            }
            let tags = match &tags {
                Some(t) => t,
                None => tags.insert(self.tags(subject, txn)?),
            };
            for change in changes {
                self.apply(subject, &change, tags, ts, txn, out)?;
            }
        }
        Ok(())
    }

    /// The categories a stored tag opens: its approvals' (all held when it
    /// was stored or last checked) and the defaults.
    fn gate_of(&self, sc: &SubjectCase) -> Gate {
        let held = sc.approvals.iter().map(|a| Held {
            category: a.category.into(),
            expires_ms: a.expires_at.as_millis(),
        });
        gate_at(held, None).0.union(self.default_gate)
    }

    fn tags(
        &mut self,
        subject: SubjectId,
        txn: &Txn<'_>,
    ) -> Result<Vec<(CaseTag, Gate)>, ProcessError> {
        if self.tagged.is_none() {
            let mut all: HashMap<SubjectId, Vec<(CaseTag, Gate)>> = HashMap::new();
            for (_, v) in txn.scan(TAGS, &[], &[0xff; 64]).or_fatal()? {
                let sc: SubjectCase = decode_value(&v)?;
                let gate = self.gate_of(&sc);
                all.entry(sc.subject).or_default().push((sc.tag(), gate));
            }
            self.tagged = Some(all);
        }
        Ok(self
            .tagged
            .as_ref()
            .and_then(|t| t.get(&subject))
            .cloned()
            .unwrap_or_default())
    }

    /// Re-reads one subject's tags from the store into the in-memory map.
    fn reload_tags(
        &mut self,
        subject: SubjectId,
        txn: &Txn<'_>,
    ) -> Result<Vec<(CaseTag, Gate)>, ProcessError> {
        self.tags(subject, txn)?; // make sure the map is loaded
        let prefix = subject.as_bytes();
        let tags = txn
            .scan(TAGS, prefix, &prefix_end(prefix))
            .or_fatal()?
            .iter()
            .map(|(_, v)| decode_value::<SubjectCase>(v).map(|sc| (sc.tag(), self.gate_of(&sc))))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(map) = self.tagged.as_mut() {
            if tags.is_empty() {
                map.remove(&subject);
            } else {
                map.insert(subject, tags.clone());
            }
        }
        Ok(tags)
    }

    fn apply(
        &self,
        subject: SubjectId,
        change: &SegmentChange,
        tags: &[(CaseTag, Gate)],
        ts: Option<i64>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        // Only final segments are stored: open ones live in the trail, and a
        // final segment never changes again (so is never retracted).
        if change.kind == ChangeKind::Closed {
            let id = segment_id_key(subject, &change.segment.key);
            txn.put(SUBJECT_SEGMENTS, &id[..], encode_segment(&change.segment));
        }
        let live = change.kind != ChangeKind::Retracted;
        self.timeline(subject, change, tags, ts, out)?;
        let tags: Vec<CaseTag> = tags.iter().map(|(t, _)| t.clone()).collect();
        let tags = &tags[..];
        // What the join knows is the last non-empty version sent.
        let was = change.previous.filter(|p| !p.interval().is_empty());
        let now = Some(change.segment).filter(|s| live && !s.interval().is_empty());
        match (was, now) {
            (_, Some(seg)) if was != Some(seg) => {
                self.send(subject, &seg, SegmentUpdateKind::Upsert, tags, ts, out)
            }
            (Some(old), None) => {
                self.send(subject, &old, SegmentUpdateKind::Retract, tags, ts, out)
            }
            _ => Ok(()),
        }
    }

    /// The case timelines' side of a segment change: for every case of the
    /// subject, the visit the segment makes (clipped to the case's
    /// infectious window), or its retraction.
    fn timeline(
        &self,
        subject: SubjectId,
        change: &SegmentChange,
        tags: &[(CaseTag, Gate)],
        ts: Option<i64>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        if change.kind != ChangeKind::Retracted && change.previous == Some(change.segment) {
            return Ok(()); // closed as it was: the visit is already out
        }
        let stream = change.segment.key.lane.stream();
        for (tag, gate) in tags {
            if !gate.allows_stream(stream) {
                continue; // not approved: no visit (nor was one sent)
            }
            let window = infectious_window(tag.infectious_from, tag.infectious_until);
            let before = change
                .previous
                .and_then(|p| clip(&p, window).map(|span| (p, span)));
            let now = clip(&change.segment, window);
            match (change.kind, now, before) {
                (ChangeKind::Retracted, _, Some((old, span))) | (_, None, Some((old, span))) => {
                    self.send_visit(&tag.case_id, subject, &old, span, true, ts, out)?;
                }
                (ChangeKind::Retracted, _, None) | (_, None, None) => {}
                (_, Some(span), _) => {
                    self.send_visit(&tag.case_id, subject, &change.segment, span, false, ts, out)?;
                }
            }
        }
        Ok(())
    }

    /// Publishes one visit (or its retraction) on `tracing.timelines`, keyed
    /// by case.
    #[allow(clippy::too_many_arguments)]
    fn send_visit(
        &self,
        case: &CaseId,
        subject: SubjectId,
        seg: &Segment,
        span: Interval,
        retracted: bool,
        ts: Option<i64>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        if seg.key.lane.stream() == Stream::Transit {
            return Ok(()); // a path, not a stay: no visit
        }
        let visit = Visit {
            visit_id: visit_id(case, subject, &seg.key).or_fatal()?,
            case_id: case.clone(),
            subject,
            cell: seg.cell,
            start: span.start(),
            end: span.end(),
            dwell_s: u32::try_from(span.len_ms() / 1_000).unwrap_or(u32::MAX),
            sources: wire_sources(seg.sources),
            confidence: Probability::new("confidence", confidence(seg.sources, seg.cell))
                .or_fatal()?,
            retracted,
        };
        out.push(OutputRecord {
            topic: TIMELINES.into(),
            key: case.as_str().as_bytes().to_vec(),
            payload: encode_single_object(&visit).or_fatal()?,
            timestamp_ms: ts,
        });
        Ok(())
    }

    fn send(
        &self,
        subject: SubjectId,
        seg: &Segment,
        kind: SegmentUpdateKind,
        tags: &[CaseTag],
        ts: Option<i64>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let update = update_of(subject, seg, kind, tags.to_vec());
        let key = update.partition_key(self.partition_res).ok_or_else(|| {
            ProcessError::Fatal("segment coarser than the partition resolution".into())
        })?;
        out.push(OutputRecord {
            topic: SEGMENTS.into(),
            key: key.to_vec(),
            payload: encode_single_object(&update).or_fatal()?,
            timestamp_ms: ts,
        });
        Ok(())
    }

    /// The subject's live segments: the closed ones stored, then the open
    /// ones of each feed's trail (empty ones left out).
    fn live_segments(
        &mut self,
        subject: SubjectId,
        txn: &Txn<'_>,
    ) -> Result<Vec<Segment>, ProcessError> {
        let prefix = subject.as_bytes();
        let mut live = txn
            .scan(SUBJECT_SEGMENTS, prefix, &prefix_end(prefix))
            .or_fatal()?
            .iter()
            .map(|(_, bytes)| decode_segment(bytes).or_fatal())
            .collect::<Result<Vec<_>, _>>()?;
        for stream in Stream::SEGMENTED {
            let (_, trail) = Self::trail(&mut self.trails, subject, stream, txn)?;
            live.extend(trail.open_segments(&self.cfg.segment));
        }
        live.retain(|seg| !seg.interval().is_empty());
        Ok(live)
    }

    /// Whether an approval still holds at the stream time.
    fn holds(&self, expires_at: EventTime) -> bool {
        self.stream_time_ms
            .is_none_or(|now| expires_at.as_millis() > now)
    }

    /// A subject joined, changed or left a case (or the case's approvals
    /// changed): store the tag and re-send every live segment with the
    /// subject's new tags, and the case's visits its new window and gate
    /// open — retracting those only the old ones did.
    fn case(
        &mut self,
        sc: &SubjectCase,
        ts: Option<i64>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        // The case's window and gate before this event, if the subject had
        // it.
        let old = self
            .tags(sc.subject, txn)?
            .iter()
            .find(|(t, _)| t.case_id == sc.case_id)
            .map(|(t, g)| (infectious_window(t.infectious_from, t.infectious_until), *g));
        let mut key = sc.subject.as_bytes().to_vec();
        key.extend_from_slice(sc.case_id.as_str().as_bytes());
        // Only the approvals that still hold are kept.
        let mut stored = sc.clone();
        stored.approvals.retain(|a| self.holds(a.expires_at));
        if sc.status == CaseStatus::Retracted {
            txn.delete(TAGS, &key[..]);
        } else {
            txn.put(TAGS, &key[..], encode_value(&stored)?);
            self.note_expiries(&stored);
        }
        let tags = self.reload_tags(sc.subject, txn)?;
        let case_tags: Vec<CaseTag> = tags.iter().map(|(t, _)| t.clone()).collect();
        let new = (sc.status != CaseStatus::Retracted).then(|| {
            (
                infectious_window(sc.infectious_from, sc.infectious_until),
                self.gate_of(&stored),
            )
        });
        for seg in &self.live_segments(sc.subject, txn)? {
            self.send(
                sc.subject,
                seg,
                SegmentUpdateKind::Upsert,
                &case_tags,
                ts,
                out,
            )?;
            // This case's timeline: visits in the new window of an open
            // category; retractions of visits only the old ones held.
            let stream = seg.key.lane.stream();
            let visible = |w: Option<(Interval, Gate)>| {
                w.filter(|(_, g)| g.allows_stream(stream))
                    .and_then(|(w, _)| clip(seg, w))
            };
            match (visible(new), visible(old)) {
                (Some(span), _) => {
                    self.send_visit(&sc.case_id, sc.subject, seg, span, false, ts, out)?;
                }
                (None, Some(span)) => {
                    self.send_visit(&sc.case_id, sc.subject, seg, span, true, ts, out)?;
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// Keeps the earliest known expiry up to date with a stored tag's.
    fn note_expiries(&mut self, sc: &SubjectCase) {
        if let Some(next) = self.next_expiry_ms {
            let earliest = sc
                .approvals
                .iter()
                .map(|a| a.expires_at.as_millis())
                .fold(next, i64::min);
            self.next_expiry_ms = Some(earliest);
        }
    }

    /// Approvals that lapsed by the stream time: each tag holding one is
    /// stored without it, and the visits of a category it no longer opens
    /// are retracted.
    fn lapse(
        &mut self,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let Some(now) = self.stream_time_ms else {
            return Ok(());
        };
        let earliest =
            |sc: &SubjectCase| sc.approvals.iter().map(|a| a.expires_at.as_millis()).min();
        if self.next_expiry_ms.is_none() {
            let mut next = i64::MAX;
            for (_, v) in txn.scan(TAGS, &[], &[0xff; 64]).or_fatal()? {
                if let Some(e) = earliest(&decode_value::<SubjectCase>(&v)?) {
                    next = next.min(e);
                }
            }
            self.next_expiry_ms = Some(next);
        }
        if self.next_expiry_ms.is_some_and(|next| next > now) {
            return Ok(());
        }
        let mut next = i64::MAX;
        for (key, v) in txn.scan(TAGS, &[], &[0xff; 64]).or_fatal()? {
            let sc: SubjectCase = decode_value(&v)?;
            if earliest(&sc).is_none_or(|e| e > now) {
                if let Some(e) = earliest(&sc) {
                    next = next.min(e);
                }
                continue;
            }
            let before = self.gate_of(&sc);
            let mut kept = sc.clone();
            kept.approvals.retain(|a| self.holds(a.expires_at));
            if let Some(e) = earliest(&kept) {
                next = next.min(e);
            }
            let after = self.gate_of(&kept);
            txn.put(TAGS, key, encode_value(&kept)?);
            self.reload_tags(sc.subject, txn)?;
            if before == after {
                continue;
            }
            let window = infectious_window(sc.infectious_from, sc.infectious_until);
            for seg in &self.live_segments(sc.subject, txn)? {
                let stream = seg.key.lane.stream();
                if before.allows_stream(stream)
                    && !after.allows_stream(stream)
                    && let Some(span) = clip(seg, window)
                {
                    self.send_visit(&sc.case_id, sc.subject, seg, span, true, None, out)?;
                }
            }
        }
        self.next_expiry_ms = Some(next);
        Ok(())
    }
}

impl Processor for Segmenter {
    fn name(&self) -> &'static str {
        "segmenter"
    }

    fn inputs(&self) -> Vec<String> {
        [TELECOM, CARD, CHECKIN, CASES_BY_SUBJECT]
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn process(
        &mut self,
        record: &InputRecord<'_>,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        let ts = record.timestamp_ms;
        const SUBJECT: &str = "the subject pseudonym";
        let (subject, obs) = match record.topic {
            TELECOM => {
                let ping = decode::<LocationPing>(record)?;
                check_key(record, ping.subject.as_bytes(), SUBJECT)?;
                self.ingest.ping_cached(&ping, &mut self.footprints)
            }
            CARD => {
                let card = decode::<CardTransaction>(record)?;
                check_key(record, card.subject.as_bytes(), SUBJECT)?;
                self.ingest.card(&card)
            }
            CHECKIN => {
                let checkin = decode::<VenueCheckin>(record)?;
                check_key(record, checkin.subject.as_bytes(), SUBJECT)?;
                self.ingest.checkin(&checkin)
            }
            CASES_BY_SUBJECT => {
                let sc: SubjectCase = decode(record)?;
                check_key(record, sc.subject.as_bytes(), SUBJECT)?;
                self.last_event_ms = Some(sc.confirmed_at.as_millis());
                self.advance_stream_time(sc.confirmed_at.as_millis());
                return self.case(&sc, ts, txn, out);
            }
            _ => return Err(unexpected_topic(self.name(), record)),
        };
        self.last_event_ms = Some(obs.time.as_millis());
        self.advance_stream_time(obs.time.as_millis());
        self.observe(subject, obs, ts, txn, out)
    }

    fn last_event_time_ms(&self) -> Option<i64> {
        self.last_event_ms
    }

    fn end_batch(
        &mut self,
        txn: &mut Txn<'_>,
        out: &mut Vec<OutputRecord>,
    ) -> Result<(), ProcessError> {
        self.lapse(txn, out)?;
        self.dirty.sort_unstable();
        self.dirty.dedup();
        for key in self.dirty.drain(..) {
            if let Some(trail) = self.trails.get(&key) {
                txn.put(TRAILS, key, trail.encode());
            }
        }
        self.sweep(txn)?;
        if self.trails.len() > TRAIL_CACHE {
            self.trails.clear();
        }
        Ok(())
    }
}
