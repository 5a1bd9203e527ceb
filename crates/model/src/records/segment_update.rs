//! `presence.segments` (internal): one version of a subject's dwell segment.

use apache_avro::types::Value;
use h3o::Resolution;

use crate::binary::{Reader, Writer};
use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::Cell;
use crate::ids::{CaseId, SubjectId};
use crate::records::exposure_candidate::SegmentRef;
use crate::records::visit::{ObservationSource, cell_from_long, cell_to_long};
use crate::records::{check_order, symbol_enum};
use crate::time::EventTime;
use crate::value::{self, Fields, opt, record, str_value, subject_value, ts};

symbol_enum!(
    /// What a [`SegmentUpdate`] does to its segment.
    SegmentUpdateKind, "kind", {
        /// The segment's current version (new or grown): replaces any earlier one.
        Upsert = "UPSERT",
        /// The segment no longer exists (re-segmented after late data, or its
        /// subject's data withdrawn).
        Retract = "RETRACT",
    }
);

/// A case a subject belongs to, with the case's infectious window.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CaseTag {
    /// The case.
    pub case_id: CaseId,
    /// Start of the case's infectious period.
    pub infectious_from: EventTime,
    /// End of the case's infectious period; `None` while open. Never before
    /// `infectious_from` (checked when the [`SegmentUpdate`] is validated).
    pub infectious_until: Option<EventTime>,
}

impl CaseTag {
    fn to_value(&self) -> Value {
        record([
            ("case_id", str_value(self.case_id.as_str())),
            ("infectious_from", ts(self.infectious_from)),
            ("infectious_until", opt(self.infectious_until.map(ts))),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of("cases", value)?;
        Ok(Self {
            case_id: CaseId::new(f.string("case_id")?)?,
            infectious_from: f.time("infectious_from")?,
            infectious_until: f.opt_time("infectious_until")?,
        })
    }
}

/// One version of a subject's dwell segment, or its retraction: what the
/// subject-keyed segmenter tells the cell-keyed presence join.
///
/// Topic `presence.segments`; the key is [`SegmentUpdate::partition_key`]
/// at res 6: the raw H3 index of `cell`'s res-6 ancestor, 8 bytes
/// big-endian. A segment is identified by `(subject, lane, start,
/// first_cell)` ([`SegmentUpdate::segment_ref`]); a later update of it
/// replaces the earlier one.
#[derive(Clone, PartialEq, Debug)]
pub struct SegmentUpdate {
    /// The phone or card whose segment this is.
    pub subject: SubjectId,
    /// `n << 4 | stream`: `n` = 0 on time, `n >= 1` the subject's `n`-th
    /// late lane; `stream` 0 telecom, 1 card, 2 check-in, 3 interview, 4
    /// transit (at most `i32::MAX`, the Avro `int`).
    pub lane: u32,
    /// The first observation's event time; stable while the segment grows.
    pub start: EventTime,
    /// The first observation's footprint; stable while the segment grows.
    pub first_cell: Cell,
    /// The cell containing every footprint of the segment: `first_cell` or
    /// an ancestor of it.
    pub cell: Cell,
    /// End of the segment; never before `start`.
    pub end: EventTime,
    /// Kinds of observation the segment is built from.
    pub sources: Vec<ObservationSource>,
    /// Number of observations, `1..=i32::MAX`.
    pub observations: u32,
    /// Whether this replaces or retracts the segment.
    pub kind: SegmentUpdateKind,
    /// The cases the subject belongs to (no duplicate case id); empty for
    /// the general population.
    pub cases: Vec<CaseTag>,
    /// Where the segment's most precise footprints put the subject: `cell`
    /// or a descendant of it (written as `core_cell`; a record from before
    /// the field reads as `cell`).
    pub core_cell: Cell,
}

impl SegmentUpdate {
    /// The ancestor of `cell` at `res` (the cell itself at its own
    /// resolution): the cell of the repartition key. `None` when `res` is
    /// finer than `cell`, which footprints clamped to res 6 or coarser never
    /// are at the default partition resolution 6.
    #[must_use]
    pub fn partition_cell(&self, res: Resolution) -> Option<Cell> {
        self.cell.parent(res)
    }

    /// The Kafka key: the raw H3 index of [`Self::partition_cell`],
    /// big-endian. `None` when `res` is finer than `cell`.
    #[must_use]
    pub fn partition_key(&self, res: Resolution) -> Option<[u8; 8]> {
        self.partition_cell(res).map(|c| c.raw().to_be_bytes())
    }

    /// The segment's identity, as an [`ExposureCandidate`] refers to it.
    ///
    /// [`ExposureCandidate`]: crate::records::ExposureCandidate
    #[must_use]
    pub const fn segment_ref(&self) -> SegmentRef {
        SegmentRef {
            lane: self.lane,
            start: self.start,
            first_cell: self.first_cell,
        }
    }

    /// Whether the subject belongs to at least one case.
    #[must_use]
    pub fn is_case(&self) -> bool {
        !self.cases.is_empty()
    }
}

impl AvroRecord for SegmentUpdate {
    const NAME: &'static str = "SegmentUpdate";

    crate::records::compiled_schema_set!(SEGMENT_UPDATE);

    fn to_value(&self) -> Value {
        record([
            ("subject", subject_value(&self.subject)),
            ("lane", int_value(self.lane)),
            ("start", ts(self.start)),
            ("first_cell", Value::Long(cell_to_long(self.first_cell))),
            ("cell", Value::Long(cell_to_long(self.cell))),
            ("end", ts(self.end)),
            (
                "sources",
                Value::Array(
                    self.sources
                        .iter()
                        .map(|s| ObservationSource::to_value(*s))
                        .collect(),
                ),
            ),
            ("observations", int_value(self.observations)),
            ("kind", self.kind.to_value()),
            (
                "cases",
                Value::Array(self.cases.iter().map(CaseTag::to_value).collect()),
            ),
            (
                "core_cell",
                opt(Some(Value::Long(cell_to_long(self.core_cell)))),
            ),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let update = Self {
            subject: f.subject("subject")?,
            lane: lane_from_int("lane", f.int("lane")?)?,
            start: f.time("start")?,
            first_cell: cell_from_long(f.long("first_cell")?)?,
            cell: cell_from_long(f.long("cell")?)?,
            end: f.time("end")?,
            sources: f
                .array("sources")?
                .iter()
                .map(|s| ObservationSource::from_symbol(value::symbol("sources", s)?))
                .collect::<Result<_, _>>()?,
            observations: u32::try_from(f.int("observations")?)
                .map_err(|_| observations_error())?,
            kind: SegmentUpdateKind::from_symbol(f.symbol("kind")?)?,
            cases: f
                .array("cases")?
                .iter()
                .map(CaseTag::from_value)
                .collect::<Result<_, _>>()?,
            core_cell: cell_from_long(f.opt_long("core_cell")?.unwrap_or(f.long("cell")?))?,
        };
        update.validate()?;
        Ok(update)
    }

    fn validate(&self) -> Result<(), ModelError> {
        check_lane("lane", self.lane)?;
        check_order("end", self.start, self.end)?;
        if !self.cell.contains(self.first_cell) {
            return Err(ModelError::InvalidRecord {
                field: "cell",
                reason: "does not contain first_cell",
            });
        }
        if !self.cell.contains(self.core_cell) {
            return Err(ModelError::InvalidRecord {
                field: "core_cell",
                reason: "not equal to or inside cell",
            });
        }
        if self.observations == 0 || i32::try_from(self.observations).is_err() {
            return Err(observations_error());
        }
        for (i, tag) in self.cases.iter().enumerate() {
            if self.cases[..i].iter().any(|t| t.case_id == tag.case_id) {
                return Err(ModelError::InvalidRecord {
                    field: "cases",
                    reason: "duplicate case_id",
                });
            }
            if let Some(until) = tag.infectious_until {
                check_order("cases.infectious_until", tag.infectious_from, until)?;
            }
        }
        Ok(())
    }

    /// The cases' `infectious_until` are left out: the end of isolation may
    /// be planned ahead.
    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        let mut t = vec![("start", self.start), ("end", self.end)];
        t.extend(
            self.cases
                .iter()
                .map(|c| ("cases.infectious_from", c.infectious_from)),
        );
        t
    }

    fn write_binary(&self, out: &mut Vec<u8>) -> Result<(), ModelError> {
        let mut w = Writer(out);
        w.fixed(self.subject.as_bytes());
        w.bounded_u32(self.lane);
        w.long(self.start.as_millis());
        w.long(cell_to_long(self.first_cell));
        w.long(cell_to_long(self.cell));
        w.long(self.end.as_millis());
        w.array_start(self.sources.len());
        for s in &self.sources {
            w.index(*s as usize);
        }
        w.array_end();
        w.bounded_u32(self.observations);
        w.index(self.kind as usize);
        w.array_start(self.cases.len());
        for tag in &self.cases {
            w.string(tag.case_id.as_str());
            w.long(tag.infectious_from.as_millis());
            match tag.infectious_until {
                None => w.index(0),
                Some(until) => {
                    w.index(1);
                    w.long(until.as_millis());
                }
            }
        }
        w.array_end();
        w.index(1);
        w.long(cell_to_long(self.core_cell));
        Ok(())
    }

    fn read_binary(datum: &[u8]) -> Result<Self, ModelError> {
        // Every field read first (as the generic path does), then checked
        // in the order of `from_value`.
        let mut r = Reader::new(datum);
        let subject = r.fixed::<16>()?;
        let lane = r.int()?;
        let start = r.long()?;
        let first_cell = r.long()?;
        let cell = r.long()?;
        let end = r.long()?;
        let mut sources = Vec::new();
        loop {
            let n = r.block(sources.len())?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                sources.push(r.symbol(ObservationSource::ALL)?);
            }
        }
        let observations = r.int()?;
        let kind = r.symbol(SegmentUpdateKind::ALL)?;
        let mut cases = Vec::new();
        loop {
            let n = r.block(cases.len())?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                let case_id = r.str()?;
                let from = r.long()?;
                let until = if r.optional()? { Some(r.long()?) } else { None };
                cases.push((case_id, from, until));
            }
        }
        let core_cell = if r.optional()? { Some(r.long()?) } else { None };
        r.finish()?;
        let update = Self {
            subject: SubjectId::from_bytes(subject),
            lane: lane_from_int("lane", lane)?,
            start: EventTime::from_millis("start", start)?,
            first_cell: cell_from_long(first_cell)?,
            cell: cell_from_long(cell)?,
            end: EventTime::from_millis("end", end)?,
            sources,
            observations: u32::try_from(observations).map_err(|_| observations_error())?,
            kind,
            cases: cases
                .into_iter()
                .map(|(case_id, from, until)| {
                    Ok(CaseTag {
                        case_id: CaseId::new(case_id)?,
                        infectious_from: EventTime::from_millis("infectious_from", from)?,
                        infectious_until: until
                            .map(|t| EventTime::from_millis("infectious_until", t))
                            .transpose()?,
                    })
                })
                .collect::<Result<_, ModelError>>()?,
            core_cell: cell_from_long(core_cell.unwrap_or(cell))?,
        };
        update.validate()?;
        Ok(update)
    }
}

fn observations_error() -> ModelError {
    ModelError::InvalidRecord {
        field: "observations",
        reason: "outside 1..=2147483647",
    }
}

/// A `u32` that [`check_lane`] (or an equivalent check) has bounded to
/// `i32::MAX`, as Avro `int`.
pub(crate) fn int_value(n: u32) -> Value {
    Value::Int(i32::try_from(n).unwrap_or(i32::MAX))
}

/// A lane must fit the Avro `int`.
pub(crate) fn check_lane(field: &'static str, lane: u32) -> Result<(), ModelError> {
    if i32::try_from(lane).is_err() {
        return Err(lane_error(field));
    }
    Ok(())
}

/// Reads a lane from an Avro `int`.
pub(crate) fn lane_from_int(field: &'static str, lane: i32) -> Result<u32, ModelError> {
    u32::try_from(lane).map_err(|_| lane_error(field))
}

const fn lane_error(field: &'static str) -> ModelError {
    ModelError::InvalidRecord {
        field,
        reason: "outside 0..=2147483647",
    }
}
