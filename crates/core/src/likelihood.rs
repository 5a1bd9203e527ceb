//! Exposure likelihood: how sure epitrace is that a contact was truly
//! within close range of a case for the time the rule counted, and the
//! contact class that follows from it (issue "accuracy investigators can act
//! on").
//!
//! ## The evidence: a location basis
//!
//! Two segments meet when one's cell contains the other's (DESIGN §4); a
//! segment's cell widens to hold every footprint, so a GPS fix with tower
//! records around it meets everyone under the tower. Each segment also
//! keeps its *core* ([`Segment::core`](crate::segment::Segment::core)):
//! where its most precise footprints put the subject. [`Basis`] splits the
//! counted time (the union of the overlaps the rule counted) by what the two
//! cores say about each overlap:
//!
//! - **fine**: both cores at `fine_res` (10, ~76 m edge) or finer and in
//!   the same or neighbouring cells (a fix near a cell edge) — GPS or Wi-Fi
//!   fixes, card payments at the merchant, check-ins;
//! - **near**: the cores nest and the coarser is at `near_res` (9, ~200 m)
//!   — a dense downtown tower;
//! - **wide**: the cores nest and the coarser is a wider tower cell;
//! - **apart**: the cores do not nest: their precise footprints put them in
//!   different places within the cells that met.
//!
//! Time counts in the first class that covers it, in that order, so the
//! four add up to the counted time.
//!
//! ## The model
//!
//! A logistic model over the minutes of each kind:
//!
//! ```text
//! logit p = intercept + fine · ln(1 + fine_min) + near · ln(1 + near_min)
//!                     + wide · ln(1 + wide_min) + apart · ln(1 + apart_min)
//! ```
//!
//! Its coefficients are configuration ([`LikelihoodConfig`]), fitted by
//! `epitrace calibrate` on the simulator's truth of cities other than the one
//! the evaluation scores, with their provenance in
//! [`LikelihoodConfig::provenance`]. `close_threshold` turns it into a
//! class: at or above it, **close** (call them; quarantine), below it
//! **area** (the broad notification list).

use serde::{Deserialize, Serialize};

use epitrace_model::Cell;
use h3o::Resolution;

use crate::exposure::Overlap;
use crate::interval::{Interval, measure, union};

/// What two cores say about one overlap (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placement {
    /// Both precise, at the same place.
    Fine,
    /// Nested, the coarser at `near_res`.
    Near,
    /// Nested, the coarser wider.
    Wide,
    /// Not nested.
    Apart,
}

impl Placement {
    /// Classifies the two cores of an overlap.
    #[must_use]
    pub fn of(a: Cell, b: Cell, cfg: &LikelihoodConfig) -> Self {
        let res = |c: Cell| u8::from(c.resolution());
        if a.co_located(b) {
            let coarser = res(a).min(res(b));
            return if coarser >= cfg.fine_res {
                Self::Fine
            } else if coarser >= cfg.near_res {
                Self::Near
            } else {
                Self::Wide
            };
        }
        let fine = Resolution::try_from(cfg.fine_res).unwrap_or(Resolution::Ten);
        match (a.parent(fine), b.parent(fine)) {
            (Some(pa), Some(pb)) if pa.index().grid_distance(pb.index()).is_ok_and(|d| d <= 1) => {
                Self::Fine
            }
            _ => Self::Apart,
        }
    }
}

/// The counted time of one (case, contact), by [`Placement`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Basis {
    /// Fine time, in ms.
    pub fine_ms: i64,
    /// Near time not fine, in ms.
    pub near_ms: i64,
    /// Wide time neither fine nor near, in ms.
    pub wide_ms: i64,
    /// The rest: apart only, in ms.
    pub apart_ms: i64,
    /// Of the counted time (in any of the four above), the part both spent
    /// on one moving path (co-travel, [`crate::transit`]), in ms. The
    /// model takes it apart from the wide time it is counted in (a path's
    /// ticks are cells of ~460 m).
    pub transit_ms: i64,
}

impl Basis {
    /// The basis of a set of overlaps (those the rule counted).
    #[must_use]
    pub fn of<'a>(overlaps: impl IntoIterator<Item = &'a Overlap>, cfg: &LikelihoodConfig) -> Self {
        // Windows at each level and all finer ones: fine, near, wide, all.
        let mut levels: [Vec<Interval>; 4] = Default::default();
        for o in overlaps {
            let p = Placement::of(o.case_core, o.contact_core, cfg) as usize;
            for level in levels.iter_mut().skip(p) {
                level.push(o.window);
            }
        }
        let [fine, near, wide, all] = levels.map(|v| measure(&union(v)));
        Self {
            fine_ms: fine,
            near_ms: near - fine,
            wide_ms: wide - near,
            apart_ms: all - wide,
            transit_ms: 0,
        }
    }

    /// The total counted time, in ms.
    #[must_use]
    pub const fn total_ms(&self) -> i64 {
        self.fine_ms + self.near_ms + self.wide_ms + self.apart_ms
    }

    /// The model's inputs: `ln(1 + minutes)` of fine, near, wide (less the
    /// co-travel time, which ticks' cells put there), apart and co-travel
    /// time.
    #[must_use]
    pub fn features(&self) -> [f64; 5] {
        #[allow(clippy::cast_precision_loss)]
        let f = |ms: i64| (ms.max(0) as f64 / 60_000.0).ln_1p();
        [
            f(self.fine_ms),
            f(self.near_ms),
            f(self.wide_ms - self.transit_ms),
            f(self.apart_ms),
            f(self.transit_ms),
        ]
    }
}

/// The likelihood model and the close-contact threshold (`[tracing.likelihood]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LikelihoodConfig {
    /// Resolution at or above which the coarser of two meeting cells counts
    /// as a fine placement. Default 10 (~76 m edge: `footprint.max_res`).
    pub fine_res: u8,
    /// Resolution at or above which it counts as near. Default 9 (~200 m
    /// edge: a dense downtown tower).
    pub near_res: u8,
    /// The model's intercept (log-odds with no time at all).
    pub intercept: f64,
    /// Log-odds per unit of `ln(1 + fine minutes)`.
    pub fine: f64,
    /// Log-odds per unit of `ln(1 + near minutes)`.
    pub near: f64,
    /// Log-odds per unit of `ln(1 + wide minutes)`.
    pub wide: f64,
    /// Log-odds per unit of `ln(1 + apart minutes)`.
    pub apart: f64,
    /// Log-odds per unit of `ln(1 + co-travel minutes)` (taken out of the
    /// wide minutes).
    pub transit: f64,
    /// Likelihood at or above which a contact is `CLOSE`; below, `AREA`.
    /// Default 0.5.
    pub close_threshold: f64,
    /// Where the coefficients come from (the fit's cities, seeds, sizes and
    /// date); reported, not interpreted.
    pub provenance: String,
}

impl Default for LikelihoodConfig {
    /// The model fitted by `epitrace calibrate` (kept, with its provenance,
    /// in `deploy/calibration/likelihood.toml`; a test holds the two
    /// equal).
    fn default() -> Self {
        Self {
            fine_res: 10,
            near_res: 9,
            intercept: -3.0635,
            fine: 1.3418,
            near: 1.2879,
            wide: -0.0134,
            apart: -0.2105,
            transit: 0.0,
            close_threshold: 0.5,
            provenance: "epitrace calibrate on make eval's city model (20,000 residents, --days 4) with seeds 11, 12, 2026-12-07".to_owned(),
        }
    }
}

impl LikelihoodConfig {
    /// The probability, in `[0, 1]`, that the contact was within close range
    /// for the counted time.
    #[must_use]
    pub fn likelihood(&self, basis: &Basis) -> f64 {
        let [f, n, w, a, t] = basis.features();
        let z = self.intercept
            + self.fine * f
            + self.near * n
            + self.wide * w
            + self.apart * a
            + self.transit * t;
        let p = 1.0 / (1.0 + (-z).exp());
        if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Whether a likelihood makes a close contact.
    #[must_use]
    pub fn is_close(&self, likelihood: f64) -> bool {
        likelihood >= self.close_threshold
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// The name of the first bad setting and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.fine_res > 15 {
            return Err((
                "likelihood.fine_res",
                format!("{} is above 15", self.fine_res),
            ));
        }
        if self.near_res > self.fine_res {
            return Err((
                "likelihood.near_res",
                format!("{} is finer than fine_res {}", self.near_res, self.fine_res),
            ));
        }
        for (field, v) in [
            ("likelihood.intercept", self.intercept),
            ("likelihood.fine", self.fine),
            ("likelihood.near", self.near),
            ("likelihood.wide", self.wide),
            ("likelihood.apart", self.apart),
            ("likelihood.transit", self.transit),
        ] {
            if !v.is_finite() {
                return Err((field, "must be a finite number".to_owned()));
            }
        }
        if !(0.0..=1.0).contains(&self.close_threshold) {
            return Err((
                "likelihood.close_threshold",
                format!("{} is outside [0, 1]", self.close_threshold),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use epitrace_model::{EventTime, LatLng};
    use h3o::Resolution;

    use super::*;

    fn at(min: i64) -> EventTime {
        EventTime::from_millis("t", 1_588_377_600_000 + min * 60_000).unwrap_or(EventTime::MIN)
    }

    fn overlap(from: i64, to: i64, coarse: u8) -> Overlap {
        let pos = LatLng::new(37.5665, 126.978).unwrap_or_else(|_| unreachable!());
        let res = Resolution::try_from(coarse).unwrap_or(Resolution::Six);
        Overlap {
            window: Interval::new(at(from), at(to)),
            cell: pos.to_cell(Resolution::Ten),
            case_core: pos.to_cell(Resolution::Ten),
            contact_core: pos.to_cell(res),
        }
    }

    #[test]
    fn the_basis_splits_the_union_with_fine_time_first() {
        let cfg = LikelihoodConfig::default();
        // A wide meeting 0-60, a fine one 10-30 inside it, a near one
        // 50-70, an apart one 65-90.
        let pos = LatLng::new(37.5665, 126.978).unwrap_or_else(|_| unreachable!());
        let far = LatLng::new(37.5765, 126.978).unwrap_or_else(|_| unreachable!());
        let apart = Overlap {
            contact_core: far.to_cell(Resolution::Ten),
            ..overlap(65, 90, 10)
        };
        let b = Basis::of(
            &[
                overlap(0, 60, 7),
                overlap(10, 30, 10),
                overlap(50, 70, 9),
                apart,
            ],
            &cfg,
        );
        assert_eq!(b.fine_ms, 20 * 60_000);
        assert_eq!(b.near_ms, 20 * 60_000);
        assert_eq!(b.wide_ms, 30 * 60_000);
        assert_eq!(b.apart_ms, 20 * 60_000);
        assert_eq!(b.total_ms(), 90 * 60_000, "the union of all, counted once");
        // Neighbouring fine cells are the same place (a fix near an edge).
        let here = pos.to_cell(Resolution::Ten);
        let next = here
            .index()
            .grid_disk::<Vec<_>>(1)
            .into_iter()
            .find(|c| *c != here.index())
            .map(|c| epitrace_model::Cell::new(u64::from(c)).unwrap_or(here))
            .unwrap_or(here);
        assert_ne!(next, here);
        assert_eq!(Placement::of(here, next, &cfg), Placement::Fine);
    }

    #[test]
    fn more_fine_time_is_more_likely_and_the_threshold_splits_classes() {
        let cfg = LikelihoodConfig::default();
        let p = |fine: i64, wide: i64| {
            cfg.likelihood(&Basis {
                fine_ms: fine * 60_000,
                wide_ms: wide * 60_000,
                ..Basis::default()
            })
        };
        assert!(p(60, 0) > p(15, 0));
        assert!(p(15, 0) > p(0, 15));
        assert!((0.0..=1.0).contains(&p(0, 0)));
        assert!(cfg.is_close(0.5) && !cfg.is_close(0.49));
    }

    #[test]
    fn co_travel_minutes_are_taken_out_of_the_wide_ones() {
        let b = Basis {
            wide_ms: 30 * 60_000,
            transit_ms: 20 * 60_000,
            ..Basis::default()
        };
        let [f, n, w, a, t] = b.features();
        assert_eq!([f, n, a], [0.0, 0.0, 0.0]);
        assert!((w - 10f64.ln_1p()).abs() < 1e-12, "{w}");
        assert!((t - 20f64.ln_1p()).abs() < 1e-12, "{t}");
        let cfg = LikelihoodConfig {
            transit: 1.0,
            ..LikelihoodConfig::default()
        };
        let off = LikelihoodConfig {
            transit: 0.0,
            ..LikelihoodConfig::default()
        };
        assert!(cfg.likelihood(&b) > off.likelihood(&b));
    }

    #[test]
    fn non_finite_coefficients_are_refused() {
        let cfg = LikelihoodConfig {
            fine: f64::NAN,
            ..LikelihoodConfig::default()
        };
        assert_eq!(cfg.check().map_err(|e| e.0), Err("likelihood.fine"));
        let cfg = LikelihoodConfig {
            close_threshold: 1.5,
            ..LikelihoodConfig::default()
        };
        assert!(cfg.check().is_err());
    }
}
