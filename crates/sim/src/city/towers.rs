//! Cell towers: a lattice 150 m apart downtown and around the hubs, 500 m
//! within 10 km of the centre, 1.5 km farther out. A phone without a fix is
//! reported at its serving tower (the nearest), with the tower's coverage as
//! accuracy (200–2,000 m).

use super::rng::mix;
use super::world::{CityConfig, Pos};

/// A serving tower.
#[derive(Debug, Clone, PartialEq)]
pub struct Tower {
    /// Site id.
    pub id: String,
    /// Where the tower stands.
    pub pos: Pos,
    /// Coverage radius reported as accuracy, in metres.
    pub accuracy_m: f64,
}

/// The tower grid of a city.
#[derive(Debug, Clone)]
pub struct Towers {
    center: Pos,
    hubs: Vec<Pos>,
}

impl Towers {
    /// The grid of `cfg`'s city.
    #[must_use]
    pub fn new(cfg: &CityConfig) -> Self {
        Self {
            center: cfg.center,
            hubs: cfg.hubs.clone(),
        }
    }

    fn spacing(&self, p: Pos) -> f64 {
        let d = p.dist_m(self.center);
        if d < 3_000.0 || self.hubs.iter().any(|h| h.dist_m(p) < 1_500.0) {
            150.0
        } else if d < 10_000.0 {
            500.0
        } else {
            1_500.0
        }
    }

    /// The tower serving a phone at `p`.
    #[must_use]
    pub fn serving(&self, p: Pos) -> Tower {
        let spacing = self.spacing(p);
        let (east, north) = self.center.delta_m(p);
        let ix = (east / spacing).round();
        let iy = (north / spacing).round();
        let pos = self.center.offset_m(ix * spacing, iy * spacing);
        #[allow(clippy::cast_possible_truncation)]
        let (ix, iy, s) = (ix as i64, iy as i64, spacing as i64);
        let h = mix(u64::from_ne_bytes(ix.to_ne_bytes())
            ^ mix(u64::from_ne_bytes(iy.to_ne_bytes()) ^ mix(u64::from_ne_bytes(s.to_ne_bytes()))));
        #[allow(clippy::cast_precision_loss)]
        let jitter = 0.9 + (h % 1000) as f64 / 2000.0; // 0.9–1.4
        Tower {
            id: format!("S{s}-{ix}-{iy}"),
            pos,
            accuracy_m: (spacing * 1.5 * jitter).clamp(200.0, 2_000.0),
        }
    }
}
