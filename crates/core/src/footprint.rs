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

/// A memo of recent footprints, for the hot path: tower pings repeat the
/// coordinates of a few thousand sites, and an H3 lookup (~500 ns) costs ten
/// times a probe here. Direct-mapped: each (position, resolution) has one
/// slot, a collision replaces it. The answer is always
/// [`Footprinter::cell`]'s.
#[derive(Debug, Clone)]
pub struct FootprintCache {
    slots: Box<[Option<Slot>]>,
    shift: u32,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    lat: u64,
    lng: u64,
    res: Resolution,
    cell: Cell,
}

impl FootprintCache {
    /// A cache of `2^bits` slots (`bits` clamped to 1..=24; 16 is ~2 MiB).
    #[must_use]
    pub fn new(bits: u32) -> Self {
        let bits = bits.clamp(1, 24);
        Self {
            slots: vec![None; 1 << bits].into_boxed_slice(),
            shift: 64 - bits,
        }
    }

    /// [`Footprinter::cell`], memoised.
    pub fn cell(&mut self, fp: &Footprinter, position: LatLng, accuracy: AccuracyM) -> Cell {
        let res = fp.resolution(accuracy);
        let (lat, lng) = (position.lat().to_bits(), position.lng().to_bits());
        let h = (lat ^ lng.rotate_left(29) ^ u64::from(u8::from(res)))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let i = usize::try_from(h >> self.shift).unwrap_or(0);
        if let Some(Some(slot)) = self.slots.get(i)
            && slot.lat == lat
            && slot.lng == lng
            && slot.res == res
        {
            return slot.cell;
        }
        let cell = position.to_cell(res);
        if let Some(entry) = self.slots.get_mut(i) {
            *entry = Some(Slot {
                lat,
                lng,
                res,
                cell,
            });
        }
        cell
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

    #[test]
    fn the_cache_answers_as_the_footprinter() {
        let fp = Footprinter::new(&FootprintConfig::default());
        // 2 slots: constant collisions and replacements.
        let mut cache = FootprintCache::new(1);
        let mut x: u64 = 7;
        for _ in 0..5_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let site = (x >> 33) % 7;
            let lat = 37.4 + f64::from(u32::try_from(site).unwrap()) * 0.01;
            let pos = LatLng::new(lat, 126.9).unwrap();
            let metres = [10.0, 150.0, 600.0, 2500.0][usize::try_from((x >> 40) % 4).unwrap()];
            assert_eq!(cache.cell(&fp, pos, acc(metres)), fp.cell(pos, acc(metres)));
        }
    }
}
