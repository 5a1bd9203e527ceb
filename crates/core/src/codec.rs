//! Compact binary encodings of the core's state values, for the stores of
//! the stream processors.
//!
//! Every encoded value starts with a format version byte so that stored
//! state can evolve; decoding an unknown version, a truncated value or an
//! invalid field (a bad cell index, a time outside 2000..2100) is a
//! [`CoreError::CorruptState`], never a panic. Integers are little-endian
//! fixed width (values, not keys: keys use big-endian codecs so that byte
//! order follows key order).

use epitrace_model::{Cell, EventTime, SubjectId};

use crate::duration::Span;
use crate::error::CoreError;
use crate::interval::Interval;
use crate::observation::{Observation, Source, SourceSet};
use crate::segment::{Lane, Segment, SegmentKey};

/// Appends fields to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn with_version(version: u8) -> Self {
        Self(vec![version])
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub(crate) fn time(&mut self, t: EventTime) {
        self.i64(t.as_millis());
    }
    pub(crate) fn opt_time(&mut self, t: Option<EventTime>) {
        match t {
            Some(t) => {
                self.u8(1);
                self.time(t);
            }
            None => self.u8(0),
        }
    }
    pub(crate) fn cell(&mut self, c: Cell) {
        self.0.extend_from_slice(&c.raw().to_le_bytes());
    }
    pub(crate) fn subject(&mut self, s: SubjectId) {
        self.0.extend_from_slice(s.as_bytes());
    }
    pub(crate) fn interval(&mut self, i: Interval) {
        self.time(i.start());
        self.time(i.end());
    }
    pub(crate) fn segment_key(&mut self, k: SegmentKey) {
        self.u32(k.lane.0);
        self.time(k.start);
        self.cell(k.first_cell);
    }
    pub(crate) fn segment(&mut self, s: &Segment) {
        self.segment_key(s.key);
        self.cell(s.cell);
        self.time(s.end);
        self.u8(s.sources.bits());
        self.u32(s.observations);
        self.cell(s.core);
    }
    pub(crate) fn observation(&mut self, o: &Observation) {
        self.time(o.time);
        self.cell(o.cell);
        self.u8(o.source as u8);
        self.i64(o.dwell.as_millis());
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads fields back, failing with [`CoreError::CorruptState`].
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks the version byte: any format version in `versions`; returns
    /// the one found.
    pub(crate) fn new_of(
        what: &'static str,
        bytes: &'a [u8],
        versions: std::ops::RangeInclusive<u8>,
    ) -> Result<(Self, u8), CoreError> {
        let mut r = Self { what, rest: bytes };
        let found = r.u8()?;
        if !versions.contains(&found) {
            return Err(r.corrupt(format!(
                "format version {found}, expected {} to {}",
                versions.start(),
                versions.end()
            )));
        }
        Ok((r, found))
    }
    pub(crate) fn corrupt(&self, reason: String) -> CoreError {
        CoreError::CorruptState {
            what: self.what,
            reason,
        }
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], CoreError> {
        let Some((head, tail)) = self.rest.split_first_chunk::<N>() else {
            return Err(self.corrupt("truncated".into()));
        };
        self.rest = tail;
        Ok(*head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, CoreError> {
        Ok(self.take::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, CoreError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, CoreError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    /// A length, bounded by the bytes left (each element takes at least
    /// `min_size` bytes), so corrupt input cannot make us allocate wildly.
    pub(crate) fn len(&mut self, min_size: usize) -> Result<usize, CoreError> {
        let n = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
        if n.saturating_mul(min_size.max(1)) > self.rest.len() {
            return Err(self.corrupt(format!("length {n} exceeds the value")));
        }
        Ok(n)
    }
    pub(crate) fn time(&mut self) -> Result<EventTime, CoreError> {
        let ms = self.i64()?;
        EventTime::from_millis("state", ms).map_err(|e| self.corrupt(e.to_string()))
    }
    pub(crate) fn opt_time(&mut self) -> Result<Option<EventTime>, CoreError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.time().map(Some),
            tag => Err(self.corrupt(format!("option tag {tag}"))),
        }
    }
    pub(crate) fn cell(&mut self) -> Result<Cell, CoreError> {
        let raw = u64::from_le_bytes(self.take()?);
        Cell::new(raw).map_err(|e| self.corrupt(e.to_string()))
    }
    pub(crate) fn subject(&mut self) -> Result<SubjectId, CoreError> {
        Ok(SubjectId::from_bytes(self.take()?))
    }
    pub(crate) fn interval(&mut self) -> Result<Interval, CoreError> {
        let start = self.time()?;
        let end = self.time()?;
        if end < start {
            return Err(self.corrupt("interval ends before it starts".into()));
        }
        Ok(Interval::new(start, end))
    }
    pub(crate) fn segment_key(&mut self) -> Result<SegmentKey, CoreError> {
        Ok(SegmentKey {
            lane: Lane(self.u32()?),
            start: self.time()?,
            first_cell: self.cell()?,
        })
    }
    /// A segment; `with_core`: as written since format 2 (with its core),
    /// else without (the core read as its cell).
    pub(crate) fn segment(&mut self, with_core: bool) -> Result<Segment, CoreError> {
        let key = self.segment_key()?;
        let cell = self.cell()?;
        let end = self.time()?;
        let sources = SourceSet::from_bits(self.u8()?);
        let observations = self.u32()?;
        let core = if with_core { self.cell()? } else { cell };
        if end < key.start {
            return Err(self.corrupt("segment ends before it starts".into()));
        }
        if !cell.contains(core) {
            return Err(self.corrupt("core outside the segment's cell".into()));
        }
        Ok(Segment {
            key,
            cell,
            core,
            end,
            sources,
            observations,
        })
    }
    pub(crate) fn observation(&mut self) -> Result<Observation, CoreError> {
        let time = self.time()?;
        let cell = self.cell()?;
        let bits = self.u8()?;
        let source = Source::ALL
            .into_iter()
            .find(|s| *s as u8 == bits)
            .ok_or_else(|| self.corrupt(format!("source {bits}")))?;
        let dwell = self.i64()?;
        if dwell < 0 {
            return Err(self.corrupt("negative dwell".into()));
        }
        Ok(Observation {
            time,
            cell,
            source,
            dwell: Span::from_millis(dwell),
        })
    }
    /// Fails unless every byte was read.
    pub(crate) fn end(self) -> Result<(), CoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} trailing bytes", self.rest.len())))
        }
    }
}

/// Encodes one segment (a value of a processor's segment store; format
/// version 2, with its core).
#[must_use]
pub fn encode_segment(segment: &Segment) -> Vec<u8> {
    let mut w = Writer::with_version(2);
    w.segment(segment);
    w.finish()
}

/// Decodes [`encode_segment`], and format version 1 (without the core:
/// read as the cell).
///
/// # Errors
/// [`CoreError::CorruptState`].
pub fn decode_segment(bytes: &[u8]) -> Result<Segment, CoreError> {
    let (mut r, version) = Reader::new_of("segment", bytes, 1..=2)?;
    let segment = r.segment(version >= 2)?;
    r.end()?;
    Ok(segment)
}
