//! Footprints: the H3 cell an observation stands for, at a resolution that
//! follows its accuracy (DESIGN §4).
//!
//! The rule: the finest resolution whose average hexagon edge is at least the
//! accuracy radius, clamped to `[min_res, max_res]`. Edge lengths are h3o's
//! (H3 v4 averages: res 10 ≈ 76 m, res 9 ≈ 201 m, res 8 ≈ 531 m, res 7 ≈
//! 1.4 km, res 6 ≈ 3.7 km; DESIGN §2 quotes the older H3 v3 table). A 30 m GPS
//! fix lands in a res-10 cell, a 200 m downtown tower in res 9, a 500 m one in
//! res 8, a 2 km rural tower in res 6.

use epitrace_model::{AccuracyM, Cell, LatLng};
use h3o::Resolution;

use crate::config::FootprintConfig;

/// Maps accuracy radii to resolutions for one configuration.
///
/// Precomputes the edge lengths so the per-record cost is a short scan.
#[derive(Debug, Clone)]
pub struct Footprinter {
    /// `(resolution, edge length in metres)`, finest first.
    ladder: Vec<(Resolution, f64)>,
    coarsest: Resolution,
}

impl Footprinter {
    /// Builds the ladder for `[min_res, max_res]` (assumed validated; values
    /// above 15 are clamped).
    #[must_use]
    pub fn new(cfg: &FootprintConfig) -> Self {
        let res = |r: u8| Resolution::try_from(r.min(15)).unwrap_or(Resolution::Fifteen);
        let (lo, hi) = (cfg.min_res.min(cfg.max_res), cfg.max_res);
        let ladder = (lo..=hi)
            .rev()
            .map(|r| {
                let r = res(r);
                (r, r.edge_length_m())
            })
            .collect();
        Self {
            ladder,
            coarsest: res(lo),
        }
    }

    /// The resolution for an accuracy radius.
    #[must_use]
    pub fn resolution(&self, accuracy: AccuracyM) -> Resolution {
        self.ladder
            .iter()
            .find(|(_, edge)| *edge >= accuracy.metres())
            .map_or(self.coarsest, |(res, _)| *res)
    }

    /// The footprint of a position with a given accuracy.
    #[must_use]
    pub fn cell(&self, position: LatLng, accuracy: AccuracyM) -> Cell {
        position.to_cell(self.resolution(accuracy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(m: f64) -> AccuracyM {
        AccuracyM::new(m).unwrap()
    }

    #[test]
    fn accuracy_to_resolution_matches_design_table() {
        let fp = Footprinter::new(&FootprintConfig::default());
        for (metres, res) in [
            (0.0, Resolution::Ten),
            (30.0, Resolution::Ten),
            (66.0, Resolution::Ten),
            (100.0, Resolution::Nine),
            (200.0, Resolution::Nine),
            (201.0, Resolution::Eight),
            (461.0, Resolution::Eight),
            (1000.0, Resolution::Seven),
            (2000.0, Resolution::Six),
            (50_000.0, Resolution::Six),
        ] {
            assert_eq!(fp.resolution(acc(metres)), res, "{metres} m");
        }
    }

    #[test]
    fn resolution_is_the_finest_with_edge_at_least_accuracy() {
        let fp = Footprinter::new(&FootprintConfig {
            min_res: 0,
            max_res: 15,
        });
        for metres in [0.5, 3.0, 10.0, 70.0, 180.0, 500.0, 5000.0, 20_000.0] {
            let res = fp.resolution(acc(metres));
            assert!(res.edge_length_m() >= metres);
            if let Some(finer) = res.succ() {
                assert!(
                    finer.edge_length_m() < metres,
                    "{metres} m: {res:?} is not the finest"
                );
            }
        }
    }
}
