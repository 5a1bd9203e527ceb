//! One record of any provider feed.

use epitrace_core::{Ingest, Observation};
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{CardTransaction, LocationPing, VenueCheckin};
use epitrace_model::topics::{CARD, CHECKIN, TELECOM};
use epitrace_model::{EventTime, ModelError, SubjectId};

/// A record of one of the three feeds.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedRecord {
    /// `feeds.telecom.location`.
    Ping(LocationPing),
    /// `feeds.card.transaction`.
    Card(CardTransaction),
    /// `feeds.venue.checkin`.
    Checkin(VenueCheckin),
}

impl FeedRecord {
    /// The topic it is published to.
    #[must_use]
    pub const fn topic(&self) -> &'static str {
        match self {
            Self::Ping(_) => TELECOM,
            Self::Card(_) => CARD,
            Self::Checkin(_) => CHECKIN,
        }
    }

    /// Whose record it is.
    #[must_use]
    pub const fn subject(&self) -> SubjectId {
        match self {
            Self::Ping(r) => r.subject,
            Self::Card(r) => r.subject,
            Self::Checkin(r) => r.subject,
        }
    }

    /// Event time.
    #[must_use]
    pub const fn observed_at(&self) -> EventTime {
        match self {
            Self::Ping(r) => r.observed_at,
            Self::Card(r) => r.observed_at,
            Self::Checkin(r) => r.observed_at,
        }
    }

    /// The Kafka key: the subject pseudonym's 16 bytes.
    #[must_use]
    pub fn key(&self) -> Vec<u8> {
        self.subject().as_bytes().to_vec()
    }

    /// The Kafka value: an Avro single-object frame.
    ///
    /// # Errors
    /// The record's validation error.
    pub fn encode(&self) -> Result<Vec<u8>, ModelError> {
        match self {
            Self::Ping(r) => encode_single_object(r),
            Self::Card(r) => encode_single_object(r),
            Self::Checkin(r) => encode_single_object(r),
        }
    }

    /// The observation the tracing core makes of it.
    #[must_use]
    pub fn observation(&self, ingest: &Ingest) -> (SubjectId, Observation) {
        match self {
            Self::Ping(r) => ingest.ping(r),
            Self::Card(r) => ingest.card(r),
            Self::Checkin(r) => ingest.checkin(r),
        }
    }
}
