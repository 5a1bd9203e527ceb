//! `feeds.telecom.location`: one location observation of a phone.

use apache_avro::types::Value;

use crate::binary::{Reader, Writer};
use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::{AccuracyM, LatLng};
use crate::ids::{ProviderId, SiteId, SubjectId};
use crate::records::symbol_enum;
use crate::time::EventTime;
use crate::value::{Fields, opt, record, str_value, subject_value, ts};

symbol_enum!(
    /// How a telecom obtained a position.
    LocationSource, "source", {
        /// Base-station (cell site) location: coarse, 50 m – 2 km.
        Cell = "CELL",
        /// Satellite fix: 5–50 m.
        Gps = "GPS",
        /// Wi-Fi positioning: 5–50 m.
        Wifi = "WIFI",
    }
);

/// One location observation of a subject's phone, from a telecom.
#[derive(Clone, PartialEq, Debug)]
pub struct LocationPing {
    /// The phone's subscriber.
    pub subject: SubjectId,
    /// The telecom.
    pub provider: ProviderId,
    /// When the phone was at `position`.
    pub observed_at: EventTime,
    /// Where (a tower's location for `Cell`, the fix for GPS/Wi-Fi).
    pub position: LatLng,
    /// Radius within which the phone is believed to be.
    pub accuracy: AccuracyM,
    /// How the position was obtained.
    pub source: LocationSource,
    /// The serving base station, for `Cell` observations.
    pub site_id: Option<SiteId>,
}

impl AvroRecord for LocationPing {
    const NAME: &'static str = "LocationPing";

    crate::records::compiled_schema_set!(LOCATION_PING);

    fn to_value(&self) -> Value {
        record([
            ("subject", subject_value(&self.subject)),
            ("provider", str_value(self.provider.as_str())),
            ("observed_at", ts(self.observed_at)),
            ("lat", Value::Double(self.position.lat())),
            ("lng", Value::Double(self.position.lng())),
            ("accuracy_m", Value::Double(self.accuracy.metres())),
            ("source", self.source.to_value()),
            (
                "site_id",
                opt(self.site_id.as_ref().map(|s| str_value(s.as_str()))),
            ),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let ping = Self {
            subject: f.subject("subject")?,
            provider: ProviderId::new(f.string("provider")?)?,
            observed_at: f.time("observed_at")?,
            position: LatLng::new(f.double("lat")?, f.double("lng")?)?,
            accuracy: AccuracyM::new(f.double("accuracy_m")?)?,
            source: LocationSource::from_symbol(f.symbol("source")?)?,
            site_id: f.opt_string("site_id")?.map(SiteId::new).transpose()?,
        };
        ping.validate()?;
        Ok(ping)
    }

    fn validate(&self) -> Result<(), ModelError> {
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        vec![("observed_at", self.observed_at)]
    }

    fn write_binary(&self, out: &mut Vec<u8>) -> Result<(), ModelError> {
        let mut w = Writer(out);
        w.fixed(self.subject.as_bytes());
        w.string(self.provider.as_str());
        w.long(self.observed_at.as_millis());
        w.double(self.position.lat());
        w.double(self.position.lng());
        w.double(self.accuracy.metres());
        w.index(self.source as usize);
        match &self.site_id {
            None => w.index(0),
            Some(site) => {
                w.index(1);
                w.string(site.as_str());
            }
        }
        Ok(())
    }

    fn read_binary(datum: &[u8]) -> Result<Self, ModelError> {
        // Every field read first (as the generic path does), then checked
        // in the order of `from_value`.
        let mut r = Reader::new(datum);
        let subject = r.fixed::<16>()?;
        let provider = r.str()?;
        let observed_at = r.long()?;
        let (lat, lng, accuracy) = (r.double()?, r.double()?, r.double()?);
        let source = r.symbol(LocationSource::ALL)?;
        let site_id = if r.optional()? { Some(r.str()?) } else { None };
        r.finish()?;
        Ok(Self {
            subject: SubjectId::from_bytes(subject),
            provider: ProviderId::new(provider)?,
            observed_at: EventTime::from_millis("observed_at", observed_at)?,
            position: LatLng::new(lat, lng)?,
            accuracy: AccuracyM::new(accuracy)?,
            source,
            site_id: site_id.map(SiteId::new).transpose()?,
        })
    }
}
