//! Segmentation: a per-subject state machine that turns observations into
//! dwell segments (DESIGN §4).
//!
//! ## The rule
//!
//! Each feed of a subject ([`Stream`]: telecom, card, check-in) is
//! segmented on its own, so that one provider's delay never makes another's
//! records late; the exposure rule takes the union over all of them.
//!
//! Take a subject's observations of one feed in [`Observation`] order (time, then
//! footprint, source, stay; exact duplicates count once) and walk them with
//! one segment in progress. An observation *extends* the segment when
//!
//! - it starts no later than `max_gap` after the segment's end, and
//! - its footprint is co-located with the segment's cell (one equals or
//!   contains the other);
//!
//! otherwise it closes the segment and starts a new one. Extending sets the
//! end to the later of the segment's end and the observation's own end (time +
//! stay) and, when the observation's footprint contains the segment's cell,
//! widens the cell to it; so a segment's cell always contains every footprint
//! in it. A segment is identified by [`SegmentKey`] — its lane, start and
//! first footprint — which stays the same while it grows.
//!
//! ## Out-of-order data and the grace period
//!
//! Each subject has a *watermark* (the latest observation time seen) and a
//! *horizon* `watermark - grace`. An observation at or after the horizon is
//! placed exactly: the result is the same as if every observation had
//! arrived in order (property-tested against a brute-force oracle). To make
//! that cheap, the state keeps the walk's result up to the horizon (one open
//! segment at most) plus the raw observations after it (the *tail*), and
//! re-walks only the tail on each arrival, reporting the difference as
//! [`SegmentChange`]s: `Opened`, `Extended` (end, cell or sources changed),
//! `Closed` (final: no admissible observation can change it any more) and
//! `Retracted` (a late-but-admissible observation split or merged segments,
//! so an emitted segment no longer exists).
//!
//! An observation before the horizon cannot be placed exactly without the
//! raw history that has been folded away. It goes to the subject's *late
//! lane*: a second, independent walk with its own watermark, so that a
//! provider batch delivered hours late still forms proper segments among its
//! own records. Late-lane segments may overlap on-time ones; the exposure rule
//! measures the union of overlaps, so that never double-counts. An
//! observation that is too late even for the late lane closes that lane and
//! opens the next one (a new [`Lane`] number, so keys of different late
//! batches never collide).
//!
//! ## Transit lanes
//!
//! A trail of [`Stream::Transit`] holds a subject's GPS fixes and walks,
//! instead of the fixes themselves, the ticks each fix makes after the two
//! before it ([`crate::transit::ticks_at`]: the paths between consecutive
//! moving fixes, runs of them extended at both ends), under the same rule.
//! Its lanes also keep the last two fixes folded before the horizon (what
//! the first fix of the tail makes after them is walked with the tail), and
//! whether the run ending at the last one was extended on at a fold: once
//! the horizon is more than `transit.max_gap` and twice `transit.extend`
//! past a run's last fix, no later fix can continue the run or shorten its
//! extension, so the fold extends it as the next fix would. A segment is
//! final only once nothing a fix at or after the horizon makes can reach
//! it ([`TransitConfig::reach_ms`] more than `max_gap` behind the horizon).
//! A flush forgets the fixes, so a path never joins fixes across one (and
//! the last run of a flushed trail is not extended on: no fix followed
//! it).

use std::collections::BTreeMap;

use epitrace_model::{Cell, EventTime};

use crate::codec::{Reader, Writer};
use crate::config::SegmentConfig;
use crate::error::CoreError;
use crate::interval::Interval;
use crate::observation::{Observation, SourceSet, Stream};
use crate::transit::{TransitConfig, extend_run, is_path, ticks_at};

/// The walk a segment was built in: which feed ([`Stream`]) and which lane
/// of it — 0 for observations that arrived within the grace period, `n >= 1`
/// for the `n`-th late lane (a late lane is restarted, with the next number,
/// when an observation is too late even for it — so segments of different
/// late batches never share a key).
///
/// Packed as `lane << 4 | stream`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Lane(pub u32);

impl Lane {
    /// The on-time lane of the telecom stream.
    pub const ON_TIME: Self = Self(0);

    /// The lane number `n` of `stream`.
    #[must_use]
    pub const fn of(stream: Stream, n: u32) -> Self {
        Self((n << 4) | stream as u32)
    }

    /// Whether this is a late lane.
    #[must_use]
    pub const fn is_late(self) -> bool {
        self.0 >> 4 > 0
    }

    /// The feed this lane segments.
    #[must_use]
    pub const fn stream(self) -> Stream {
        match self.0 & 0xf {
            1 => Stream::Card,
            2 => Stream::Checkin,
            3 => Stream::Interview,
            4 => Stream::Transit,
            _ => Stream::Telecom,
        }
    }

    fn next_late(self) -> Self {
        Self::of(self.stream(), (self.0 >> 4).saturating_add(1))
    }
}

/// A segment's identity within its subject; stable while the segment grows.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SegmentKey {
    /// The walk it was built in.
    pub lane: Lane,
    /// Time of its first observation.
    pub start: EventTime,
    /// Footprint of its first observation.
    pub first_cell: Cell,
}

/// A dwell segment: the subject stayed within `cell` from `start` to `end`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Segment {
    /// Identity (see [`SegmentKey`]).
    pub key: SegmentKey,
    /// A cell containing every footprint of the segment.
    pub cell: Cell,
    /// Where its most precise footprints put the subject: the finest
    /// footprint while every footprint nests with it (a GPS fix and the
    /// tower records around it: the fix's cell), else the finest cell
    /// holding the precise ones; always `cell` or inside it. Evidence for
    /// the exposure likelihood, not for the join (which matches `cell`).
    pub core: Cell,
    /// End of the stay (the latest observation end in it).
    pub end: EventTime,
    /// Sources of its observations.
    pub sources: SourceSet,
    /// Number of distinct observations in it.
    pub observations: u32,
}

impl Segment {
    fn start_at(lane: Lane, obs: &Observation) -> Self {
        Self {
            key: SegmentKey {
                lane,
                start: obs.time,
                first_cell: obs.cell,
            },
            cell: obs.cell,
            core: obs.cell,
            end: obs.end(),
            sources: SourceSet::of(obs.source),
            observations: 1,
        }
    }

    /// Start of the stay.
    #[must_use]
    pub const fn start(&self) -> EventTime {
        self.key.start
    }

    /// `[start, end)`.
    #[must_use]
    pub fn interval(&self) -> Interval {
        Interval::new(self.key.start, self.end)
    }

    /// Whether `obs` extends this segment (see the module docs).
    fn admits(&self, obs: &Observation, max_gap_ms: i64) -> bool {
        obs.time.millis_since(self.end) <= max_gap_ms && self.cell.co_located(obs.cell)
    }

    fn absorb(&mut self, obs: &Observation) {
        self.end = self.end.max(obs.end());
        if obs.cell != self.cell && obs.cell.contains(self.cell) {
            self.cell = obs.cell;
        }
        self.core = narrow(self.core, obs.cell, self.cell);
        self.sources.insert(obs.source);
        self.observations = self.observations.saturating_add(1);
    }
}

/// The core after a footprint: the footprint when it lies inside the core
/// (more precise, consistent), the core when the footprint contains it, else
/// the finest cell holding both (`cell` when they share no ancestor).
fn narrow(core: Cell, footprint: Cell, cell: Cell) -> Cell {
    if core.contains(footprint) {
        footprint
    } else if footprint.contains(core) {
        core
    } else {
        common_ancestor(core, footprint).unwrap_or(cell)
    }
}

/// The finest cell containing both, if any.
#[must_use]
pub fn common_ancestor(a: Cell, b: Cell) -> Option<Cell> {
    let finest = a.resolution().min(b.resolution());
    h3o::Resolution::range(h3o::Resolution::Zero, finest)
        .rev()
        .find_map(|r| {
            let pa = a.parent(r)?;
            (b.parent(r)? == pa).then_some(pa)
        })
}

/// What happened to a segment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ChangeKind {
    /// A new segment, still open.
    Opened,
    /// An open segment changed (end, cell, sources or count).
    Extended,
    /// A segment is final: nothing admissible can change it any more.
    Closed,
    /// An emitted segment no longer exists (a late observation split or
    /// merged it); `segment` is its last emitted version.
    Retracted,
}

/// One change to a subject's segments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SegmentChange {
    /// What happened.
    pub kind: ChangeKind,
    /// The segment as it now is (for `Retracted`, as it last was).
    pub segment: Segment,
    /// The version emitted before this change, if any (lets an index delete
    /// the old entries without a lookup).
    pub previous: Option<Segment>,
}

/// The walk's state for one lane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LaneState {
    /// Which walk this is.
    lane: Lane,
    /// Observations before the horizon are folded into `current`.
    horizon: Option<EventTime>,
    /// Latest observation time seen (or advanced to).
    watermark: Option<EventTime>,
    /// The segment in progress after folding everything before the horizon.
    current: Option<Segment>,
    /// Observations at or after the horizon, sorted, without duplicates.
    tail: Vec<Observation>,
    /// A transit lane's last two fixes before the horizon (the path from
    /// them to the first fix of the tail is still to be walked); empty on
    /// other lanes.
    fixes: Fixes,
}

/// The fixes a transit walk remembers: the last one, the one before it,
/// and whether the run of paths ending at the last one has been extended
/// on already (see [`crate::transit::ticks_at`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fixes {
    prev: Option<Observation>,
    last: Option<Observation>,
    extended: bool,
}

/// How one lane's observations are walked: the dwell rule, or on a transit
/// lane the ticks of the path between consecutive fixes (see
/// [`crate::transit`]) under the dwell rule.
#[derive(Clone, Copy)]
struct Walk<'a> {
    lane: Lane,
    max_gap_ms: i64,
    transit: Option<&'a TransitConfig>,
}

impl<'a> Walk<'a> {
    fn new(lane: Lane, cfg: &'a SegmentConfig) -> Self {
        Self {
            lane,
            max_gap_ms: cfg.max_gap.as_millis(),
            transit: (lane.stream() == Stream::Transit).then_some(&cfg.transit),
        }
    }

    /// Walks one observation (on a transit lane, the ticks it makes
    /// after the remembered fixes).
    fn step(
        &self,
        cur: &mut Option<Segment>,
        fixes: &mut Fixes,
        obs: &Observation,
        done: &mut Vec<Segment>,
    ) {
        let Some(cfg) = self.transit else {
            return step(cur, self.lane, obs, self.max_gap_ms, done);
        };
        if let Some(q) = fixes.last.as_ref() {
            // A run already extended on (at a fold) is not extended again.
            let ticks = if fixes.extended && !is_path(q, obs, cfg) {
                Vec::new()
            } else {
                ticks_at(fixes.prev.as_ref(), q, obs, cfg)
            };
            for tick in ticks {
                step(cur, self.lane, &tick, self.max_gap_ms, done);
            }
        }
        *fixes = Fixes {
            prev: fixes.last,
            last: Some(*obs),
            extended: false,
        };
    }

    /// At a fold to `horizon`: once no fix at or after the horizon can
    /// continue the run ending at the last fix (more than `max_gap` after
    /// it) nor shorten its extension (more than twice `extend` after it),
    /// the run is extended on now, by `extend`, as the next fix would.
    fn settle(
        &self,
        cur: &mut Option<Segment>,
        fixes: &mut Fixes,
        horizon: EventTime,
        done: &mut Vec<Segment>,
    ) {
        let Some(cfg) = self.transit else { return };
        let (Some(p), Some(q)) = (fixes.prev, fixes.last) else {
            return;
        };
        let settled = cfg.max_gap.as_millis().max(2 * cfg.extend.as_millis());
        if fixes.extended || horizon.millis_since(q.time) <= settled || !is_path(&p, &q, cfg) {
            return;
        }
        for tick in extend_run(&p, &q, cfg) {
            step(cur, self.lane, &tick, self.max_gap_ms, done);
        }
        fixes.extended = true;
    }

    /// How long after a segment's end an observation at or after the
    /// horizon can still extend it: `max_gap`, plus on a transit lane the
    /// reach of the ticks a new fix can add before the horizon.
    fn reach_ms(&self) -> i64 {
        self.max_gap_ms + self.transit.map_or(0, TransitConfig::reach_ms)
    }
}

/// The observation arrived before the lane's horizon.
struct TooLate;

impl LaneState {
    /// The open segments: the walk continued from `current` over the tail.
    fn new(lane: Lane) -> Self {
        Self {
            lane,
            ..Self::default()
        }
    }

    fn open_segments(&self, walk: &Walk<'_>) -> Vec<Segment> {
        let (mut cur, mut fixes) = (self.current, self.fixes);
        let mut out = Vec::new();
        for obs in &self.tail {
            walk.step(&mut cur, &mut fixes, obs, &mut out);
        }
        out.extend(cur);
        out
    }

    fn insert(
        &mut self,
        cfg: &SegmentConfig,
        obs: Observation,
    ) -> Result<Vec<SegmentChange>, TooLate> {
        if self.horizon.is_some_and(|h| obs.time < h) {
            return Err(TooLate);
        }
        let walk = Walk::new(self.lane, cfg);
        let pos = match self.tail.binary_search(&obs) {
            Ok(_) => return Ok(Vec::new()), // exact duplicate: nothing changes
            Err(pos) => pos,
        };
        let before = self.open_segments(&walk);
        self.tail.insert(pos, obs);
        let watermark = self.watermark.map_or(obs.time, |w| w.max(obs.time));
        self.watermark = Some(watermark);
        let closed = self.fold_to(watermark.saturating_add_ms(-cfg.grace.as_millis()), &walk);
        Ok(diff(before, closed, self.open_segments(&walk)))
    }

    /// Moves the horizon to `to - grace` if that is later.
    fn advance(&mut self, cfg: &SegmentConfig, to: EventTime) -> Vec<SegmentChange> {
        let horizon = to.saturating_add_ms(-cfg.grace.as_millis());
        if self.horizon.is_some_and(|h| h >= horizon) {
            return Vec::new();
        }
        self.watermark = Some(self.watermark.map_or(to, |w| w.max(to)));
        let walk = Walk::new(self.lane, cfg);
        let before = self.open_segments(&walk);
        let closed = self.fold_to(horizon, &walk);
        diff(before, closed, self.open_segments(&walk))
    }

    /// Closes everything: every segment becomes final.
    fn flush(&mut self, cfg: &SegmentConfig) -> Vec<SegmentChange> {
        let walk = Walk::new(self.lane, cfg);
        let before = self.open_segments(&walk);
        let mut closed = Vec::new();
        for obs in std::mem::take(&mut self.tail) {
            walk.step(&mut self.current, &mut self.fixes, &obs, &mut closed);
        }
        closed.extend(self.current.take());
        // A path never joins fixes across a flush.
        self.fixes = Fixes::default();
        // Everything seen is final; only observations from the watermark on
        // can still start on-time segments.
        self.horizon = self.watermark.or(self.horizon);
        diff(before, closed, Vec::new())
    }

    /// Folds tail observations before `horizon` into `current`, returning the
    /// segments that became final.
    fn fold_to(&mut self, horizon: EventTime, walk: &Walk<'_>) -> Vec<Segment> {
        if self.horizon.is_some_and(|h| h >= horizon) {
            return Vec::new();
        }
        self.horizon = Some(horizon);
        let split = self.tail.partition_point(|o| o.time < horizon);
        let mut closed = Vec::new();
        for obs in self.tail.drain(..split) {
            walk.step(&mut self.current, &mut self.fixes, &obs, &mut closed);
        }
        walk.settle(&mut self.current, &mut self.fixes, horizon, &mut closed);
        // No admissible observation (time >= horizon) can extend a segment
        // that ended more than max_gap (and on a transit lane, a path's
        // reach) before the horizon.
        if let Some(cur) = self.current
            && horizon.millis_since(cur.end) > walk.reach_ms()
        {
            closed.push(cur);
            self.current = None;
        }
        closed
    }
}

/// One step of the walk.
fn step(
    cur: &mut Option<Segment>,
    lane: Lane,
    obs: &Observation,
    max_gap_ms: i64,
    done: &mut Vec<Segment>,
) {
    match cur {
        Some(seg) if seg.admits(obs, max_gap_ms) => seg.absorb(obs),
        _ => {
            if let Some(seg) = cur.replace(Segment::start_at(lane, obs)) {
                done.push(seg);
            }
        }
    }
}

/// The changes from the open segments `before` to `closed` + `after`.
/// Order: retractions, closes, then opens and extensions, each by key.
fn diff(before: Vec<Segment>, closed: Vec<Segment>, after: Vec<Segment>) -> Vec<SegmentChange> {
    let mut prev: BTreeMap<SegmentKey, Segment> = before.into_iter().map(|s| (s.key, s)).collect();
    let mut changes = Vec::new();
    let mut finals = Vec::with_capacity(closed.len());
    for segment in closed {
        finals.push(SegmentChange {
            kind: ChangeKind::Closed,
            segment,
            previous: prev.remove(&segment.key),
        });
    }
    let mut opens = Vec::with_capacity(after.len());
    for segment in after {
        match prev.remove(&segment.key) {
            None => opens.push(SegmentChange {
                kind: ChangeKind::Opened,
                segment,
                previous: None,
            }),
            Some(old) if old != segment => opens.push(SegmentChange {
                kind: ChangeKind::Extended,
                segment,
                previous: Some(old),
            }),
            Some(_) => {}
        }
    }
    changes.extend(prev.into_values().map(|segment| SegmentChange {
        kind: ChangeKind::Retracted,
        segment,
        previous: Some(segment),
    }));
    changes.extend(finals);
    changes.extend(opens);
    changes
}

/// One subject's segmentation state: the on-time lane and the late lane.
///
/// This is the value a segmenter keeps per subject (in RocksDB in the
/// pipeline); every method is a pure state transition returning the changes
/// to emit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectTrail {
    on_time: LaneState,
    late: LaneState,
}

impl Default for SubjectTrail {
    /// The trail of the telecom stream.
    fn default() -> Self {
        Self::new(Stream::Telecom)
    }
}

impl SubjectTrail {
    /// An empty trail for one feed of a subject.
    #[must_use]
    pub fn new(stream: Stream) -> Self {
        Self {
            on_time: LaneState::new(Lane::of(stream, 0)),
            late: LaneState::new(Lane::of(stream, 1)),
        }
    }

    /// Places one observation and returns the resulting segment changes.
    pub fn observe(&mut self, cfg: &SegmentConfig, obs: Observation) -> Vec<SegmentChange> {
        if let Ok(changes) = self.on_time.insert(cfg, obs) {
            return changes;
        }
        if let Ok(changes) = self.late.insert(cfg, obs) {
            return changes;
        }
        // Too late even for the late lane: close it and start the next one.
        let mut changes = self.late.flush(cfg);
        self.late = LaneState::new(self.late.lane.next_late());
        if let Ok(more) = self.late.insert(cfg, obs) {
            changes.extend(more);
        }
        changes
    }

    /// Advances the on-time lane's watermark to `to` (e.g. the partition's
    /// watermark), closing segments of a subject that has gone quiet.
    /// Observations before `to - grace` then go to the late lane.
    pub fn advance(&mut self, cfg: &SegmentConfig, to: EventTime) -> Vec<SegmentChange> {
        self.on_time.advance(cfg, to)
    }

    /// Closes every open segment of both lanes (end of input, or eviction).
    pub fn flush(&mut self, cfg: &SegmentConfig) -> Vec<SegmentChange> {
        let mut changes = self.on_time.flush(cfg);
        changes.extend(self.late.flush(cfg));
        changes
    }

    /// The segments that are still open, both lanes.
    #[must_use]
    pub fn open_segments(&self, cfg: &SegmentConfig) -> Vec<Segment> {
        let mut out = self
            .on_time
            .open_segments(&Walk::new(self.on_time.lane, cfg));
        out.extend(self.late.open_segments(&Walk::new(self.late.lane, cfg)));
        out
    }

    /// The latest observation time seen on time (the subject's watermark).
    #[must_use]
    pub fn watermark(&self) -> Option<EventTime> {
        self.on_time.watermark
    }

    /// Observations held raw (the tails of both lanes): the state's size.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.on_time.tail.len() + self.late.tail.len()
    }
}

impl LaneState {
    fn encode(&self, w: &mut Writer) {
        w.u32(self.lane.0);
        w.opt_time(self.horizon);
        w.opt_time(self.watermark);
        match &self.current {
            Some(seg) => {
                w.u8(1);
                w.segment(seg);
            }
            None => w.u8(0),
        }
        w.len(self.tail.len());
        for obs in &self.tail {
            w.observation(obs);
        }
        for fix in [&self.fixes.prev, &self.fixes.last] {
            match fix {
                Some(obs) => {
                    w.u8(1);
                    w.observation(obs);
                }
                None => w.u8(0),
            }
        }
        w.u8(u8::from(self.fixes.extended));
    }

    fn decode(r: &mut Reader<'_>, version: u8) -> Result<Self, CoreError> {
        let with_core = version >= 2;
        let lane = Lane(r.u32()?);
        let horizon = r.opt_time()?;
        let watermark = r.opt_time()?;
        let current = match r.u8()? {
            0 => None,
            1 => Some(r.segment(with_core)?),
            tag => return Err(r.corrupt(format!("option tag {tag}"))),
        };
        let n = r.len(25)?;
        let mut tail = Vec::with_capacity(n);
        for _ in 0..n {
            tail.push(r.observation()?);
        }
        if !tail.is_sorted() {
            return Err(r.corrupt("tail not sorted".into()));
        }
        let mut fixes = Fixes::default();
        if version >= 3 {
            let mut fix = || match r.u8()? {
                0 => Ok(None),
                1 => r.observation().map(Some),
                tag => Err(r.corrupt(format!("option tag {tag}"))),
            };
            fixes.prev = fix()?;
            fixes.last = fix()?;
            fixes.extended = match r.u8()? {
                0 => false,
                1 => true,
                tag => return Err(r.corrupt(format!("flag {tag}"))),
            };
        }
        Ok(Self {
            lane,
            horizon,
            watermark,
            current,
            tail,
            fixes,
        })
    }
}

impl SubjectTrail {
    /// The state as bytes (format version 3: segments with their core, a
    /// transit lane's last fix), for a processor's store.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_version(3);
        self.on_time.encode(&mut w);
        self.late.encode(&mut w);
        w.finish()
    }

    /// Reads [`SubjectTrail::encode`] back, format version 2 (no last fix:
    /// written before transit lanes) and format version 1 (segments without
    /// a core: read as their cell).
    ///
    /// # Errors
    /// [`CoreError::CorruptState`] for truncated, trailing or invalid bytes
    /// or an unknown format version.
    pub fn decode(bytes: &[u8]) -> Result<Self, CoreError> {
        let (mut r, version) = Reader::new_of("subject trail", bytes, 1..=3)?;
        let on_time = LaneState::decode(&mut r, version)?;
        let late = LaneState::decode(&mut r, version)?;
        r.end()?;
        Ok(Self { on_time, late })
    }
}

#[cfg(test)]
mod tests {
    use epitrace_model::time::MINUTE_MS;
    use epitrace_model::{Cell, EventTime, LatLng};
    use h3o::Resolution;

    use super::*;
    use crate::duration::Span;
    use crate::observation::Source;

    const T0: i64 = 1_588_291_200_000;

    fn at(min: i64) -> EventTime {
        EventTime::from_millis("t", T0 + min * MINUTE_MS).unwrap()
    }
    fn cell(venue: u8, res: Resolution) -> Cell {
        let lat = 37.5344 + f64::from(venue) * 0.02;
        LatLng::new(lat, 126.9946).unwrap().to_cell(res)
    }
    fn ping(min: i64, c: Cell) -> Observation {
        Observation {
            time: at(min),
            cell: c,
            source: Source::Gps,
            dwell: Span::ZERO,
        }
    }
    fn kinds(changes: &[SegmentChange]) -> Vec<ChangeKind> {
        changes.iter().map(|c| c.kind).collect()
    }
    fn cfg() -> SegmentConfig {
        SegmentConfig {
            max_gap: Span::minutes(30),
            grace: Span::minutes(60),
            ..SegmentConfig::default()
        }
    }

    #[test]
    fn pings_open_extend_and_close() {
        let (cfg, a) = (cfg(), cell(0, Resolution::Ten));
        let mut trail = SubjectTrail::default();
        assert_eq!(
            kinds(&trail.observe(&cfg, ping(0, a))),
            [ChangeKind::Opened]
        );
        let ext = trail.observe(&cfg, ping(10, a));
        assert_eq!(kinds(&ext), [ChangeKind::Extended]);
        assert_eq!(ext[0].segment.interval(), Interval::new(at(0), at(10)));
        assert_eq!(ext[0].previous.map(|p| p.end), Some(at(0)));
        // Unchanged duplicate: nothing to say.
        assert!(trail.observe(&cfg, ping(10, a)).is_empty());
        // 101 min in, elsewhere: horizon 41 > 10 + 30, so the first segment
        // is final; a new one opens.
        let b = cell(1, Resolution::Ten);
        let ch = trail.observe(&cfg, ping(101, b));
        assert_eq!(kinds(&ch), [ChangeKind::Closed, ChangeKind::Opened]);
        assert_eq!(ch[0].segment.observations, 2);
        assert_eq!(ch[1].segment.key.start, at(101));
    }

    #[test]
    fn a_gap_longer_than_max_gap_splits_a_stay() {
        let (cfg, a) = (cfg(), cell(0, Resolution::Ten));
        let mut trail = SubjectTrail::default();
        trail.observe(&cfg, ping(0, a));
        assert_eq!(
            kinds(&trail.observe(&cfg, ping(31, a))),
            [ChangeKind::Opened]
        );
        assert_eq!(trail.open_segments(&cfg).len(), 2);
    }

    #[test]
    fn a_coarser_footprint_widens_the_segment_cell() {
        let cfg = cfg();
        let (fine, coarse) = (cell(0, Resolution::Ten), cell(0, Resolution::Seven));
        let mut trail = SubjectTrail::default();
        trail.observe(&cfg, ping(0, fine));
        let ch = trail.observe(&cfg, ping(5, coarse));
        assert_eq!(kinds(&ch), [ChangeKind::Extended]);
        assert_eq!(ch[0].segment.cell, coarse);
        assert_eq!(ch[0].segment.key.first_cell, fine, "identity is stable");
        // A finer footprint inside keeps the wider cell.
        let ch = trail.observe(&cfg, ping(9, fine));
        assert_eq!(ch[0].segment.cell, coarse);
    }

    #[test]
    fn the_core_keeps_the_precise_footprint_the_cell_widens_around() {
        let cfg = cfg();
        let (fine, coarse) = (cell(0, Resolution::Ten), cell(0, Resolution::Seven));
        let mut trail = SubjectTrail::default();
        // A tower record first, then a fix inside it: the core narrows.
        let ch = trail.observe(&cfg, ping(0, coarse));
        assert_eq!(ch[0].segment.core, coarse);
        let ch = trail.observe(&cfg, ping(5, fine));
        assert_eq!((ch[0].segment.cell, ch[0].segment.core), (coarse, fine));
        // Another tower record keeps the fix as the core.
        let ch = trail.observe(&cfg, ping(9, coarse));
        assert_eq!(ch[0].segment.core, fine);
        // A fix elsewhere under the tower: the core becomes the finest cell
        // holding both fixes, still inside the tower's cell.
        let other = LatLng::new(37.5344 + 0.004, 126.9946)
            .unwrap()
            .to_cell(Resolution::Ten);
        assert!(coarse.contains(other) && !fine.co_located(other));
        let ch = trail.observe(&cfg, ping(12, other));
        let core = ch[0].segment.core;
        assert!(core.contains(fine) && core.contains(other), "{core:?}");
        assert!(coarse.contains(core) && core != coarse);
        assert_eq!(common_ancestor(fine, other), Some(core));
        // Stored and read back with the core; format 1 reads it as the cell.
        let bytes = trail.encode();
        assert_eq!(SubjectTrail::decode(&bytes).ok(), Some(trail.clone()));
    }

    #[test]
    fn a_card_payment_extends_by_its_dwell() {
        let (cfg, a) = (cfg(), cell(0, Resolution::Ten));
        let mut trail = SubjectTrail::default();
        trail.observe(&cfg, ping(0, a));
        let card = Observation {
            source: Source::Card,
            dwell: Span::minutes(45),
            ..ping(5, a)
        };
        let ch = trail.observe(&cfg, card);
        assert_eq!(ch[0].segment.end, at(50));
        assert!(ch[0].segment.sources.contains(Source::Card));
        // A ping 70 min in is within max_gap of the card's end (50 + 30).
        assert_eq!(
            kinds(&trail.observe(&cfg, ping(70, a))),
            [ChangeKind::Extended]
        );
    }

    #[test]
    fn an_out_of_order_move_splits_an_open_segment() {
        let cfg = cfg();
        let (a, b) = (cell(0, Resolution::Ten), cell(1, Resolution::Ten));
        let mut trail = SubjectTrail::default();
        for m in [0, 10, 20, 30] {
            trail.observe(&cfg, ping(m, a));
        }
        // A ping elsewhere at 15, within grace, arrives last.
        let ch = trail.observe(&cfg, ping(15, b));
        let mut k = kinds(&ch);
        k.sort_by_key(|k| *k as u8);
        assert_eq!(
            k,
            [ChangeKind::Opened, ChangeKind::Opened, ChangeKind::Extended]
        );
        let open = trail.open_segments(&cfg);
        let spans: Vec<_> = open.iter().map(Segment::interval).collect();
        assert_eq!(
            spans,
            [
                Interval::new(at(0), at(10)),
                Interval::instant(at(15)),
                Interval::new(at(20), at(30))
            ]
        );
    }

    #[test]
    fn an_out_of_order_ping_can_merge_two_segments() {
        let (cfg, a) = (cfg(), cell(0, Resolution::Ten));
        let mut trail = SubjectTrail::default();
        trail.observe(&cfg, ping(0, a));
        trail.observe(&cfg, ping(40, a)); // 40 > 0 + 30: a second segment
        let ch = trail.observe(&cfg, ping(20, a)); // bridges the gap
        assert_eq!(kinds(&ch), [ChangeKind::Retracted, ChangeKind::Extended]);
        assert_eq!(ch[0].segment.key.start, at(40));
        assert_eq!(ch[1].segment.interval(), Interval::new(at(0), at(40)));
    }

    #[test]
    fn a_late_batch_forms_its_own_segments_in_the_late_lane() {
        let (cfg, a, b) = (cfg(), cell(0, Resolution::Ten), cell(1, Resolution::Eight));
        let mut trail = SubjectTrail::default();
        trail.observe(&cfg, ping(600, a)); // watermark 10:00, horizon 09:00
        // A telecom batch from 06:00 to 07:00 arrives hours late, in order.
        let mut late = Vec::new();
        for m in (360..=420).step_by(6) {
            late.extend(trail.observe(&cfg, ping(m, b)));
        }
        let segs: Vec<&Segment> = late.iter().map(|c| &c.segment).collect();
        assert!(
            segs.iter()
                .all(|s| s.key.lane == Lane::of(Stream::Telecom, 1))
        );
        let last = segs.last().unwrap();
        assert_eq!(last.interval(), Interval::new(at(360), at(420)));
        assert_eq!(last.observations, 11);
        // An even older record closes the late lane and starts it afresh.
        let ch = trail.observe(&cfg, ping(100, b));
        assert_eq!(kinds(&ch), [ChangeKind::Closed, ChangeKind::Opened]);
        assert_eq!(ch[0].segment.interval(), Interval::new(at(360), at(420)));
        assert_eq!(
            ch[1].segment.key.lane,
            Lane::of(Stream::Telecom, 2),
            "a new lane, so keys cannot collide"
        );
        // The on-time lane is untouched.
        assert_eq!(trail.watermark(), Some(at(600)));
    }

    #[test]
    fn advance_closes_a_quiet_subject_and_flush_closes_all() {
        let (cfg, a) = (cfg(), cell(0, Resolution::Ten));
        let mut trail = SubjectTrail::default();
        trail.observe(&cfg, ping(0, a));
        trail.observe(&cfg, ping(10, a));
        assert!(
            trail.advance(&cfg, at(60)).is_empty(),
            "horizon 0: still open"
        );
        let ch = trail.advance(&cfg, at(101));
        assert_eq!(kinds(&ch), [ChangeKind::Closed]);
        assert!(trail.open_segments(&cfg).is_empty());
        assert_eq!(trail.buffered(), 0);

        let mut trail = SubjectTrail::default();
        trail.observe(&cfg, ping(0, a));
        let ch = trail.flush(&cfg);
        assert_eq!(kinds(&ch), [ChangeKind::Closed]);
        assert!(trail.flush(&cfg).is_empty());
    }

    #[test]
    fn trail_state_round_trips_and_rejects_corruption() {
        let (cfg, a, b) = (cfg(), cell(0, Resolution::Ten), cell(1, Resolution::Eight));
        let mut trail = SubjectTrail::default();
        for m in [0, 10, 200, 210] {
            trail.observe(&cfg, ping(m, a));
        }
        trail.observe(&cfg, ping(50, b)); // late lane
        let bytes = trail.encode();
        assert_eq!(SubjectTrail::decode(&bytes).unwrap(), trail);
        for cut in 0..bytes.len() {
            assert!(SubjectTrail::decode(&bytes[..cut]).is_err(), "prefix {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SubjectTrail::decode(&longer).is_err());
        let mut other_version = bytes;
        other_version[0] = 9;
        assert!(matches!(
            SubjectTrail::decode(&other_version),
            Err(CoreError::CorruptState { .. })
        ));
    }

    #[test]
    fn a_transit_trail_walks_the_paths_between_fixes_and_extends_the_run() {
        let cfg = cfg();
        // Northbound at ~40 km/h: a fix every 4 min, 0.024° (~2.7 km) apart.
        let fix = |min: i64| {
            #[allow(clippy::cast_precision_loss)]
            let lat = 37.50 + 0.006 * min as f64;
            ping(
                min,
                LatLng::new(lat, 127.0).unwrap().to_cell(Resolution::Ten),
            )
        };
        let mut trail = SubjectTrail::new(Stream::Transit);
        let mut all = Vec::new();
        for m in [0, 4, 8, 12, 16, 200] {
            all.extend(trail.observe(&cfg, fix(m)));
        }
        // The last fix, hours later, makes no path; its arrival moves the
        // horizon past the ride's reach, so every tick segment is final.
        let closed: Vec<&Segment> = all
            .iter()
            .filter(|c| c.kind == ChangeKind::Closed)
            .map(|c| &c.segment)
            .collect();
        assert!(closed.len() >= 5, "{} segments", closed.len());
        assert!(
            closed
                .iter()
                .all(|s| s.key.lane.stream() == Stream::Transit)
        );
        assert!(closed.iter().all(|s| u8::from(s.cell.resolution()) == 8));
        // From the first fix (no fix before it: no extension back) to five
        // minutes past the last (the run extended on, half the way to the
        // next fix at most `extend`).
        assert_eq!(closed.first().map(|s| s.start()), Some(at(0)));
        assert_eq!(closed.iter().map(|s| s.end).max(), Some(at(21)));
        let ticks: u32 = closed.iter().map(|s| s.observations).sum();
        assert_eq!(ticks, 21);
        // The last fixes are kept across a round trip, and a fix 4 min later
        // still makes a path from the last.
        let bytes = trail.encode();
        let mut back = SubjectTrail::decode(&bytes).unwrap();
        assert_eq!(back, trail);
        let more = back.observe(&cfg, fix(204));
        assert!(
            more.iter().any(|c| c.kind == ChangeKind::Opened),
            "{more:?}"
        );
    }

    #[test]
    fn equal_timestamps_are_ordered_by_footprint_not_arrival() {
        let cfg = cfg();
        let (a, b) = (cell(0, Resolution::Ten), cell(1, Resolution::Ten));
        let mut one = SubjectTrail::default();
        let mut two = SubjectTrail::default();
        for o in [ping(0, a), ping(0, b), ping(5, a)] {
            one.observe(&cfg, o);
        }
        for o in [ping(5, a), ping(0, b), ping(0, a)] {
            two.observe(&cfg, o);
        }
        assert_eq!(one.open_segments(&cfg), two.open_segments(&cfg));
    }
}
