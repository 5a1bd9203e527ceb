//! `feeds.card.transaction`: a card payment at a merchant.

use apache_avro::types::Value;

use crate::codec::AvroRecord;
use crate::error::ModelError;
use crate::geo::{AccuracyM, LatLng};
use crate::ids::{MerchantId, ProviderId, SubjectId};
use crate::text::Mcc;
use crate::time::EventTime;
use crate::value::{Fields, record, str_value, subject_value, ts};

/// A card payment by a subject at a merchant, from a card issuer.
///
/// There is deliberately no amount or purchase detail (data minimisation):
/// tracing needs who, where and when, nothing more.
#[derive(Clone, PartialEq, Debug)]
pub struct CardTransaction {
    /// The card holder.
    pub subject: SubjectId,
    /// The card company.
    pub issuer: ProviderId,
    /// The merchant.
    pub merchant_id: MerchantId,
    /// The merchant's category, which maps to an assumed dwell time.
    pub mcc: Mcc,
    /// The merchant's geocode.
    pub position: LatLng,
    /// The geocode's accuracy.
    pub accuracy: AccuracyM,
    /// When the payment was authorised.
    pub observed_at: EventTime,
}

impl AvroRecord for CardTransaction {
    const NAME: &'static str = "CardTransaction";

    crate::records::compiled_schema_set!(CARD_TRANSACTION);

    fn to_value(&self) -> Value {
        record([
            ("subject", subject_value(&self.subject)),
            ("issuer", str_value(self.issuer.as_str())),
            ("merchant_id", str_value(self.merchant_id.as_str())),
            ("mcc", Value::Int(i32::from(self.mcc.code()))),
            ("lat", Value::Double(self.position.lat())),
            ("lng", Value::Double(self.position.lng())),
            ("accuracy_m", Value::Double(self.accuracy.metres())),
            ("observed_at", ts(self.observed_at)),
        ])
    }

    fn from_value(value: &Value) -> Result<Self, ModelError> {
        let f = Fields::of(Self::NAME, value)?;
        let tx = Self {
            subject: f.subject("subject")?,
            issuer: ProviderId::new(f.string("issuer")?)?,
            merchant_id: MerchantId::new(f.string("merchant_id")?)?,
            mcc: Mcc::new(i64::from(f.int("mcc")?))?,
            position: LatLng::new(f.double("lat")?, f.double("lng")?)?,
            accuracy: AccuracyM::new(f.double("accuracy_m")?)?,
            observed_at: f.time("observed_at")?,
        };
        tx.validate()?;
        Ok(tx)
    }

    fn validate(&self) -> Result<(), ModelError> {
        Ok(())
    }

    fn timestamps(&self) -> Vec<(&'static str, EventTime)> {
        vec![("observed_at", self.observed_at)]
    }
}
