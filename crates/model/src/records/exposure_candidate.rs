//! `exposure.candidates` (internal): one case segment met one contact
//! segment. On the hot path: encoded and read by hand (`crate::binary`).

use apache_avro::types::Value;

use crate::binary::{Reader, Writer};
use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::Cell;
use crate::ids::{CaseId, SubjectId};
use crate::records::check_order;
use crate::records::exposure::TimeWindow;
use crate::records::segment_update::{check_lane, int_value, lane_from_int};
use crate::records::visit::{cell_from_long, cell_to_long};
use crate::time::EventTime;
use crate::value::{Fields, opt, record, str_value, subject_value, ts};

/// The identity of a subject's dwell segment, given its subject: lane,
/// start and first footprint (see [`SegmentUpdate`]).
///
/// [`SegmentUpdate`]: crate::records::SegmentUpdate
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SegmentRef {
    /// 0 = on time, `n >= 1` = the subject's `n`-th late lane (at most
    /// `i32::MAX`, the Avro `int`).
    pub lane: u32,
    /// The segment's first observation time.
    pub start: EventTime,
    /// The segment's first observation footprint.
    pub first_cell: Cell,
}

/// The time one case segment and one contact segment were co-located within
/// the case's infectious window, from the presence join to the exposure
/// aggregator (topic `exposure.candidates`, key = `case_id`).
///
/// `overlap` is `None` when a pair that may have overlapped before no
/// longer does (a segment changed or was retracted). A later candidate for
/// the same pair of segments (case id, both subjects, both [`SegmentRef`]s)
/// replaces the earlier one.
#[derive(Clone, PartialEq, Debug)]
pub struct ExposureCandidate {
    /// The case; the record key.
    pub case_id: CaseId,
    /// The case's phone or card whose segment this is.
    pub case_subject: SubjectId,
    /// The case subject's segment.
    pub case_segment: SegmentRef,
    /// The contact; never `case_subject`.
    pub contact: SubjectId,
    /// The contact's segment.
    pub contact_segment: SegmentRef,
    /// Where they met: the finer of the two segment cells.
    pub cell: Cell,
    /// The case segment's core cell (see [`SegmentUpdate::core_cell`]);
    /// a record from before the field reads as `cell`.
    ///
    /// [`SegmentUpdate::core_cell`]: crate::records::SegmentUpdate::core_cell
    pub case_core: Cell,
    /// The contact segment's core cell, likewise.
    pub contact_core: Cell,
    /// The co-location, `start < end`; `None` when the pair no longer
    /// overlaps.
    pub overlap: Option<TimeWindow>,
}

/// The overlap from its two nullable ends: both null, or both set in order.
fn overlap_of(
    start: Option<EventTime>,
    end: Option<EventTime>,
) -> Result<Option<TimeWindow>, ModelError> {
    match (start, end) {
        (None, None) => Ok(None),
        (Some(start), Some(end)) => {
            check_order("overlap_end", start, end)?;
            Ok(Some(TimeWindow::new(start, end)?))
        }
        _ => Err(ModelError::InvalidRecord {
            field: "overlap_end",
            reason: "must be null exactly when overlap_start is",
        }),
    }
}

impl AvroRecord for ExposureCandidate {
    const NAME: &'static str = "ExposureCandidate";

    crate::records::compiled_schema_set!(EXPOSURE_CANDIDATE);

    fn to_value(&self) -> Value {
        let (c, k) = (self.case_segment, self.contact_segment);
        record([
            ("case_id", str_value(self.case_id.as_str())),
            ("case_subject", subject_value(&self.case_subject)),
            ("case_lane", int_value(c.lane)),
            ("case_start", ts(c.start)),
            ("case_first_cell", Value::Long(cell_to_long(c.first_cell))),
            ("contact", subject_value(&self.contact)),
            ("contact_lane", int_value(k.lane)),
            ("contact_start", ts(k.start)),
            (
                "contact_first_cell",
                Value::Long(cell_to_long(k.first_cell)),
            ),
            ("cell", Value::Long(cell_to_long(self.cell))),
            ("overlap_start", opt(self.overlap.map(|w| ts(w.start())))),
            ("overlap_end", opt(self.overlap.map(|w| ts(w.end())))),
            (
                "case_core_cell",
                opt(Some(Value::Long(cell_to_long(self.case_core)))),
            ),
            (
                "contact_core_cell",
                opt(Some(Value::Long(cell_to_long(self.contact_core)))),
            ),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let overlap = overlap_of(f.opt_time("overlap_start")?, f.opt_time("overlap_end")?)?;
        let candidate = Self {
            case_id: CaseId::new(f.string("case_id")?)?,
            case_subject: f.subject("case_subject")?,
            case_segment: SegmentRef {
                lane: lane_from_int("case_lane", f.int("case_lane")?)?,
                start: f.time("case_start")?,
                first_cell: cell_from_long(f.long("case_first_cell")?)?,
            },
            contact: f.subject("contact")?,
            contact_segment: SegmentRef {
                lane: lane_from_int("contact_lane", f.int("contact_lane")?)?,
                start: f.time("contact_start")?,
                first_cell: cell_from_long(f.long("contact_first_cell")?)?,
            },
            cell: cell_from_long(f.long("cell")?)?,
            case_core: cell_from_long(f.opt_long("case_core_cell")?.unwrap_or(f.long("cell")?))?,
            contact_core: cell_from_long(
                f.opt_long("contact_core_cell")?.unwrap_or(f.long("cell")?),
            )?,
            overlap,
        };
        candidate.validate()?;
        Ok(candidate)
    }

    fn write_binary(&self, out: &mut Vec<u8>) -> Result<(), ModelError> {
        let (c, k) = (self.case_segment, self.contact_segment);
        let mut w = Writer(out);
        w.string(self.case_id.as_str());
        w.fixed(self.case_subject.as_bytes());
        w.bounded_u32(c.lane);
        w.long(c.start.as_millis());
        w.long(cell_to_long(c.first_cell));
        w.fixed(self.contact.as_bytes());
        w.bounded_u32(k.lane);
        w.long(k.start.as_millis());
        w.long(cell_to_long(k.first_cell));
        w.long(cell_to_long(self.cell));
        for t in [
            self.overlap.map(|o| o.start()),
            self.overlap.map(|o| o.end()),
        ] {
            match t {
                None => w.index(0),
                Some(t) => {
                    w.index(1);
                    w.long(t.as_millis());
                }
            }
        }
        for core in [self.case_core, self.contact_core] {
            w.index(1);
            w.long(cell_to_long(core));
        }
        Ok(())
    }

    fn read_binary(datum: &[u8]) -> Result<Self, ModelError> {
        // Every field read first (as the generic path does), then checked
        // in the order of `from_value`.
        let mut r = Reader::new(datum);
        let case_id = r.str()?;
        let case_subject = r.fixed::<16>()?;
        let case_lane = r.int()?;
        let case_start = r.long()?;
        let case_first_cell = r.long()?;
        let contact = r.fixed::<16>()?;
        let contact_lane = r.int()?;
        let contact_start = r.long()?;
        let contact_first_cell = r.long()?;
        let cell = r.long()?;
        let overlap_start = if r.optional()? { Some(r.long()?) } else { None };
        let overlap_end = if r.optional()? { Some(r.long()?) } else { None };
        let case_core = if r.optional()? { Some(r.long()?) } else { None };
        let contact_core = if r.optional()? { Some(r.long()?) } else { None };
        r.finish()?;
        let time =
            |field, t: Option<i64>| t.map(|ms| EventTime::from_millis(field, ms)).transpose();
        let overlap = overlap_of(
            time("overlap_start", overlap_start)?,
            time("overlap_end", overlap_end)?,
        )?;
        let candidate = Self {
            case_id: CaseId::new(case_id)?,
            case_subject: SubjectId::from_bytes(case_subject),
            case_segment: SegmentRef {
                lane: lane_from_int("case_lane", case_lane)?,
                start: EventTime::from_millis("case_start", case_start)?,
                first_cell: cell_from_long(case_first_cell)?,
            },
            contact: SubjectId::from_bytes(contact),
            contact_segment: SegmentRef {
                lane: lane_from_int("contact_lane", contact_lane)?,
                start: EventTime::from_millis("contact_start", contact_start)?,
                first_cell: cell_from_long(contact_first_cell)?,
            },
            cell: cell_from_long(cell)?,
            case_core: cell_from_long(case_core.unwrap_or(cell))?,
            contact_core: cell_from_long(contact_core.unwrap_or(cell))?,
            overlap,
        };
        candidate.validate()?;
        Ok(candidate)
    }

    fn validate(&self) -> Result<(), ModelError> {
        check_lane("case_lane", self.case_segment.lane)?;
        check_lane("contact_lane", self.contact_segment.lane)?;
        if self.contact == self.case_subject {
            return Err(ModelError::InvalidRecord {
                field: "contact",
                reason: "is the case subject",
            });
        }
        if let Some(w) = self.overlap
            && w.end() <= w.start()
        {
            return Err(ModelError::InvalidRecord {
                field: "overlap_end",
                reason: "not after overlap_start",
            });
        }
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        let mut t = vec![
            ("case_start", self.case_segment.start),
            ("contact_start", self.contact_segment.start),
        ];
        if let Some(w) = self.overlap {
            t.push(("overlap_start", w.start()));
            t.push(("overlap_end", w.end()));
        }
        t
    }
}
