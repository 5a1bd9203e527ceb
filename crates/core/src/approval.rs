//! Approvals gate tracing (issue 17, DESIGN §7): a case's data of one
//! category — telecom LOCATION records, CARD transactions, venue CHECKINs —
//! is joined only while an approval for that category of that case holds,
//! or when the deployment's law opens the category by default
//! ([`ApprovalConfig::open_by_default`]; strict — nothing open — unless
//! configured).
//!
//! The gate applies to the *case's* side of an exposure: an overlap counts
//! only when the case's segment came from an open category (the contacts'
//! records are the population's, joined to find them, and are never shown
//! until they are exposed). Gated-out data is kept, not dropped: when an
//! approval arrives later, the exposures appear from the stored overlaps;
//! when it lapses, what was derived from that category is retracted.
//!
//! Time: an approval takes effect when it is read and holds until the
//! stream's event time reaches its `expires_at` (deterministic on replay).
//! Posting the same (category, reference) again with an earlier
//! `expires_at` — one at or before the stream time — revokes it.

use std::fmt;

use epitrace_model::records::DataCategory;
use serde::{Deserialize, Serialize};

use crate::observation::Stream;

/// A category of a case's personal data, as configuration names it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Category {
    /// Telecom location records (tower, GPS, Wi-Fi): `feeds.telecom.location`.
    Location,
    /// Card transactions: `feeds.card.transaction`.
    Card,
    /// Venue entry logs: `feeds.venue.checkin`.
    Checkin,
    /// The places the patient stated in interview (`cases.interviews`),
    /// used as tracing evidence of their own: their contacts are found even
    /// where no record of the patient's is (see `crate::interview`).
    Interview,
}

impl Category {
    /// Every category.
    pub const ALL: [Self; 4] = [Self::Location, Self::Card, Self::Checkin, Self::Interview];

    /// The feed whose records belong to this category.
    #[must_use]
    pub const fn stream(self) -> Stream {
        match self {
            Self::Location => Stream::Telecom,
            Self::Card => Stream::Card,
            Self::Checkin => Stream::Checkin,
            Self::Interview => Stream::Interview,
        }
    }

    /// The category of a feed's records.
    #[must_use]
    pub const fn of_stream(stream: Stream) -> Self {
        match stream {
            Stream::Telecom | Stream::Transit => Self::Location,
            Stream::Card => Self::Card,
            Stream::Checkin => Self::Checkin,
            Stream::Interview => Self::Interview,
        }
    }

    /// The schema's symbol (`LOCATION`, `CARD`, `CHECKIN`, `INTERVIEW`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Location => "LOCATION",
            Self::Card => "CARD",
            Self::Checkin => "CHECKIN",
            Self::Interview => "INTERVIEW",
        }
    }
}

impl From<DataCategory> for Category {
    fn from(c: DataCategory) -> Self {
        match c {
            DataCategory::Location => Self::Location,
            DataCategory::Card => Self::Card,
            DataCategory::Checkin => Self::Checkin,
            DataCategory::Interview => Self::Interview,
        }
    }
}

impl From<Category> for DataCategory {
    fn from(c: Category) -> Self {
        match c {
            Category::Location => Self::Location,
            Category::Card => Self::Card,
            Category::Checkin => Self::Checkin,
            Category::Interview => Self::Interview,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How approvals gate tracing: the `[tracing.approvals]` table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// Categories joined without an approval, for deployments whose law
    /// allows it (e.g. `["CHECKIN"]`). Default `[]`: every category needs
    /// its approval.
    pub open_by_default: Vec<Category>,
}

impl ApprovalConfig {
    /// The gate of a case with no approval.
    #[must_use]
    pub fn default_gate(&self) -> Gate {
        self.open_by_default
            .iter()
            .fold(Gate::CLOSED, |g, &c| g.with(c))
    }
}

/// The categories open for one case: a set of [`Category`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Gate(u8);

impl Gate {
    /// Nothing open.
    pub const CLOSED: Self = Self(0);
    /// Every category open.
    pub const OPEN: Self = Self(0b1111);

    const fn bit(c: Category) -> u8 {
        match c {
            Category::Location => 1,
            Category::Card => 2,
            Category::Checkin => 4,
            Category::Interview => 8,
        }
    }

    /// This gate with `category` open too.
    #[must_use]
    pub const fn with(self, category: Category) -> Self {
        Self(self.0 | Self::bit(category))
    }

    /// The categories open in either gate.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether `category` is open.
    #[must_use]
    pub const fn allows(self, category: Category) -> bool {
        self.0 & Self::bit(category) != 0
    }

    /// Whether records of `stream` may be used.
    #[must_use]
    pub const fn allows_stream(self, stream: Stream) -> bool {
        self.allows(Category::of_stream(stream))
    }

    /// Whether nothing is open (the case is pending approval).
    #[must_use]
    pub const fn is_closed(self) -> bool {
        self.0 == 0
    }

    /// The open categories.
    pub fn categories(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |&c| self.allows(c))
    }

    /// As one byte (for a store).
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// From [`Gate::bits`]; unknown bits are ignored.
    #[must_use]
    pub const fn from_bits(bits: u8) -> Self {
        Self(bits & Self::OPEN.0)
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.categories()).finish()
    }
}

/// One approval as the gate sees it: its category and when it lapses
/// (epoch milliseconds).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Held {
    /// The category it opens.
    pub category: Category,
    /// When it lapses.
    pub expires_ms: i64,
}

impl Held {
    /// Whether it still holds at stream time `now_ms`.
    #[must_use]
    pub const fn holds_at(&self, now_ms: i64) -> bool {
        self.expires_ms > now_ms
    }
}

/// The gate of a case at stream time `now_ms` (`None` before any event
/// time was seen: every approval read holds), and the earliest time it
/// will change by itself (the next expiry), if any.
#[must_use]
pub fn gate_at(
    approvals: impl IntoIterator<Item = Held>,
    now_ms: Option<i64>,
) -> (Gate, Option<i64>) {
    let mut gate = Gate::CLOSED;
    let mut next: Option<i64> = None;
    for a in approvals {
        if now_ms.is_none_or(|now| a.holds_at(now)) {
            gate = gate.with(a.category);
            next = Some(next.map_or(a.expires_ms, |n| n.min(a.expires_ms)));
        }
    }
    (gate, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_holds_the_categories_of_approvals_not_yet_lapsed() {
        let approvals = [
            Held {
                category: Category::Card,
                expires_ms: 100,
            },
            Held {
                category: Category::Location,
                expires_ms: 50,
            },
        ];
        let (g, next) = gate_at(approvals, Some(10));
        assert!(g.allows(Category::Card) && g.allows(Category::Location));
        assert!(!g.allows(Category::Checkin));
        assert_eq!(next, Some(50));
        let (g, next) = gate_at(approvals, Some(50));
        assert!(g.allows(Category::Card) && !g.allows(Category::Location));
        assert_eq!(next, Some(100));
        let (g, next) = gate_at(approvals, Some(100));
        assert!(g.is_closed());
        assert_eq!(next, None);
        // Before any event time: everything read holds.
        assert_eq!(
            gate_at(approvals, None).0,
            Gate::CLOSED.with(Category::Card).with(Category::Location)
        );
    }

    #[test]
    fn strict_by_default_and_configurable() {
        assert!(ApprovalConfig::default().default_gate().is_closed());
        let cfg: ApprovalConfig = toml::from_str(r#"open_by_default = ["CHECKIN"]"#).unwrap();
        let g = cfg.default_gate();
        assert!(g.allows_stream(Stream::Checkin) && !g.allows_stream(Stream::Telecom));
        assert!(toml::from_str::<ApprovalConfig>(r#"open_by_default = ["PHONE"]"#).is_err());
        assert!(toml::from_str::<ApprovalConfig>("other = 1").is_err());
    }

    #[test]
    fn bits_round_trip_and_categories_map_to_feeds() {
        for bits in 0..16 {
            assert_eq!(Gate::from_bits(bits).bits(), bits);
        }
        for c in Category::ALL {
            assert_eq!(Category::of_stream(c.stream()), c);
            assert_eq!(
                Category::from(DataCategory::from_symbol(c.as_str()).unwrap()),
                c
            );
        }
    }
}
