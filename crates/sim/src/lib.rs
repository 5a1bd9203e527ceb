//! # epitrace-sim
//!
//! Synthetic data for epitrace.
//!
//! ## Layout
//!
//! - [`feed`]: [`FeedRecord`], one record of any provider feed, with its
//!   topic, key and wire encoding.
//! - [`nightlife`](mod@nightlife): a small, seeded, hand-shaped scenario (a night out
//!   around Itaewon: a club, a restaurant inside the same tower footprint, a
//!   bar and a gym farther off; two cases, one later retracted; population
//!   pings that arrive after the case; malformed records) used by the demo
//!   and the end-to-end tests.
//!
//! - [`city`]: a seeded synthetic city (Seoul by default) with residents,
//!   schedules, an infection process, provider feeds with faults, and the
//!   exact ground truth; [`city::files::write_city`] writes it to a folder.

// A numeric simulation: float ↔ integer conversions of times, counts and
// metres are everywhere and bounded by construction.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub mod city;
pub mod feed;
pub mod nightlife;

pub use feed::FeedRecord;
pub use nightlife::{Scenario, approvals_for, nightlife};
