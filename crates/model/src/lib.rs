//! # epitrace-model
//!
//! The vocabulary every other epitrace crate speaks: validated newtypes, the
//! records of every Kafka topic (DESIGN §3) and their Avro wire codecs.
//!
//! ## Layout
//!
//! - [`ids`]: [`SubjectId`] (16-byte pseudonym) and the textual ids
//!   ([`CaseId`], [`ProviderId`], …), validated at construction.
//! - [`time`]: [`EventTime`], milliseconds since the epoch in 2000..2100.
//! - [`geo`]: [`LatLng`], [`AccuracyM`] and [`Cell`] (an H3 cell).
//! - [`error`]: [`ModelError`], one enum for the crate, each variant with a
//!   stable reason code for dead letters and metrics.
//!
//! Invalid values cannot be constructed: every constructor validates, and
//! decoding bad bytes returns a [`ModelError`], never panics.

pub mod error;
pub mod geo;
pub mod ids;
pub mod time;

pub use error::ModelError;
pub use geo::{AccuracyM, Cell, LatLng};
pub use ids::{ActorId, CaseId, MerchantId, ProviderId, SiteId, SubjectId, VenueId};
pub use time::EventTime;
