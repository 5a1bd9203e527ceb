//! `feeds.venue.checkin`: a QR entry-log record.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::LatLng;
use crate::ids::{SubjectId, VenueId};
use crate::records::check_order;
use crate::time::EventTime;
use crate::value::{Fields, opt, record, str_value, subject_value, ts};

/// A subject entering (and possibly leaving) a venue.
#[derive(Clone, PartialEq, Debug)]
pub struct VenueCheckin {
    /// The visitor.
    pub subject: SubjectId,
    /// The venue.
    pub venue_id: VenueId,
    /// The venue's location.
    pub position: LatLng,
    /// When the visitor checked in.
    pub observed_at: EventTime,
    /// When the visitor checked out, if recorded; never before `observed_at`.
    pub checkout_at: Option<EventTime>,
}

impl AvroRecord for VenueCheckin {
    const NAME: &'static str = "VenueCheckin";

    crate::records::compiled_schema_set!(VENUE_CHECKIN);

    fn to_value(&self) -> Value {
        record([
            ("subject", subject_value(&self.subject)),
            ("venue_id", str_value(self.venue_id.as_str())),
            ("lat", Value::Double(self.position.lat())),
            ("lng", Value::Double(self.position.lng())),
            ("observed_at", ts(self.observed_at)),
            ("checkout_at", opt(self.checkout_at.map(ts))),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let checkin = Self {
            subject: f.subject("subject")?,
            venue_id: VenueId::new(f.string("venue_id")?)?,
            position: LatLng::new(f.double("lat")?, f.double("lng")?)?,
            observed_at: f.time("observed_at")?,
            checkout_at: f.opt_time("checkout_at")?,
        };
        checkin.validate()?;
        Ok(checkin)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if let Some(out) = self.checkout_at {
            check_order("checkout_at", self.observed_at, out)?;
        }
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        let mut t = vec![("observed_at", self.observed_at)];
        t.extend(self.checkout_at.map(|c| ("checkout_at", c)));
        t
    }
}
