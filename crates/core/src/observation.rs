//! Observations: one sighting of a subject, reduced to what segmentation
//! needs — when, which footprint, how long it implies a stay, and its source.

use std::fmt;

use epitrace_model::{Cell, EventTime};

use crate::duration::Span;

/// Where an observation came from. Closed set; a [`SourceSet`] holds several.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u8)]
pub enum Source {
    /// A telecom cell-site (tower) record.
    Cell = 1,
    /// A GPS fix reported by the telecom.
    Gps = 2,
    /// A Wi-Fi positioning fix.
    Wifi = 4,
    /// A card payment at a geocoded merchant.
    Card = 8,
    /// A venue QR check-in.
    Checkin = 16,
    /// A place and time the patient stated in interview, used as tracing
    /// evidence once the case's INTERVIEW category is approved (see
    /// `crate::interview::evidence`). A case's evidence only: never a
    /// contact's.
    Interview = 32,
}

impl Source {
    /// Every source, in bit order.
    pub const ALL: [Self; 6] = [
        Self::Cell,
        Self::Gps,
        Self::Wifi,
        Self::Card,
        Self::Checkin,
        Self::Interview,
    ];

    /// The feed this source arrives in.
    #[must_use]
    pub const fn stream(self) -> Stream {
        match self {
            Self::Cell | Self::Gps | Self::Wifi => Stream::Telecom,
            Self::Card => Stream::Card,
            Self::Checkin => Stream::Checkin,
            Self::Interview => Stream::Interview,
        }
    }
}

/// A provider feed. A subject's observations are segmented per feed: each
/// feed arrives on its own clock (telecoms every few minutes, card companies
/// in batches hours later), so one feed's delay must not push another's
/// records past the grace period.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u8)]
pub enum Stream {
    /// `feeds.telecom.location`: cell, GPS and Wi-Fi fixes.
    Telecom = 0,
    /// `feeds.card.transaction`.
    Card = 1,
    /// `feeds.venue.checkin`.
    Checkin = 2,
    /// `cases.interviews`: not a provider feed but a case's stated places,
    /// which the case-router turns into evidence segments of their own (one
    /// per entry, never merged, never segmented by the segmenter).
    Interview = 3,
    /// Not a feed either: the path between a subject's moving GPS fixes,
    /// sampled once a minute (see [`crate::transit`]). Its segments meet
    /// only other transit segments; its records are LOCATION data.
    Transit = 4,
}

impl Stream {
    /// The provider feeds the segmenter segments (every stream but
    /// [`Stream::Interview`]).
    pub const FEEDS: [Self; 3] = [Self::Telecom, Self::Card, Self::Checkin];

    /// The streams the segmenter keeps a trail for: the feeds and the
    /// transit paths derived from the telecom feed's GPS fixes.
    pub const SEGMENTED: [Self; 4] = [Self::Telecom, Self::Card, Self::Checkin, Self::Transit];
}

/// A set of [`Source`]s (a bit set).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SourceSet(u8);

impl SourceSet {
    /// The set holding one source.
    #[must_use]
    pub const fn of(source: Source) -> Self {
        Self(source as u8)
    }

    /// Adds a source.
    pub fn insert(&mut self, source: Source) {
        self.0 |= source as u8;
    }

    /// Whether the set holds `source`.
    #[must_use]
    pub const fn contains(self, source: Source) -> bool {
        self.0 & source as u8 != 0
    }

    /// The sources in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Source> {
        Source::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The raw bits (for compact state encodings).
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// A set from raw bits; unknown bits are dropped.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & 0b11_1111)
    }
}

impl fmt::Debug for SourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// One sighting of a subject.
///
/// The derived order — time, then footprint, source and stay — is the total
/// order segmentation uses, so that observations with equal timestamps are
/// processed the same way whatever order they arrived in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Observation {
    /// When the subject was seen.
    pub time: EventTime,
    /// The footprint (see [`crate::footprint`]).
    pub cell: Cell,
    /// Where the sighting came from.
    pub source: Source,
    /// How long the sighting implies the subject stayed from `time` on:
    /// zero for a ping, the MCC-derived stay for a card payment, the
    /// check-in/checkout span for a check-in.
    pub dwell: Span,
}

impl Observation {
    /// The end of the stay the observation implies on its own.
    #[must_use]
    pub fn end(&self) -> EventTime {
        self.time.saturating_add_ms(self.dwell.as_millis())
    }
}
