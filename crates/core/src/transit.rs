//! Co-travel (issue "accuracy investigators can act on", part 5): people
//! who rode the same subway car or bus share a moving path, not a dwell.
//!
//! ## The rule
//!
//! A subject moving fast enough between two consecutive GPS fixes —
//! at most `segment.transit.max_gap` apart, at an average speed of at least
//! `segment.transit.min_speed_kmh`, both placed at `segment.transit.res` or
//! finer — was, at every instant between them, on the straight line
//! between the two fixes, at constant speed. [`ticks`] samples that path
//! once a minute, on the minute (so two riders are sampled at the same
//! instants): each sample is a one-minute *tick* `[t, t + 1 min)` in the
//! cell at `res` (default 8, edge ~460 m) holding the interpolated position
//! at `t + 30 s`.
//!
//! A run of consecutive paths is extended along its line before its first
//! fix and after its last, by half the time to the fix beyond, at most
//! `segment.transit.extend` ([`ticks_at`]): with a record every few
//! minutes, a rider's first fix on board comes minutes after departure.
//!
//! Ticks are segmented like any feed, in a stream of their own
//! ([`crate::observation::Stream::Transit`]), so that a
//! path never widens or splits a dwell: consecutive ticks in one cell make
//! one segment, a tick in another cell starts the next. Two riders of one
//! car are in the same cell at the same minute tick after tick; the presence
//! join matches transit segments only with transit segments
//! ([`crate::join::overlap`]), and the exposure rule counts the minutes as
//! for any place. Someone passing a rider's path for a minute or two, or
//! a driver on a parallel road, rarely adds up to the rule's 15 minutes.
//!
//! What the rule cannot see: a rider without GPS fixes (tower records move
//! from tower to tower), a rider with one fix on board (no path), and the
//! stretch of a ride beyond the extensions. The extension may also count a
//! few minutes past a ride that ended near a fix. Interpolation is
//! straight and uniform: it is exact for the simulator's lines and an
//! approximation for real ones, which the cell size absorbs.

use epitrace_model::{EventTime, LatLng};
use h3o::Resolution;
use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::observation::{Observation, Source, Stream};

/// The sampling step of a path (also each tick's length).
pub const TICK_MS: i64 = 60_000;

/// How paths between moving GPS fixes become ticks (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransitConfig {
    /// Whether paths are sampled at all. Default `true`.
    pub enabled: bool,
    /// Slowest average speed between two fixes that counts as travelling
    /// by vehicle, in km/h. Default 15 (faster than a brisk walk).
    pub min_speed_kmh: u32,
    /// Longest time between two fixes still joined by a path. Default `10m`:
    /// a ride's fixes a few minutes apart are joined, a fix before and one
    /// after a stop are not.
    pub max_gap: Span,
    /// How far a run of paths is extended before its first fix and after
    /// its last: half the time to the fix beyond, at most this. Default
    /// `5m`; `0s` turns it off.
    pub extend: Span,
    /// Resolution of a tick's cell. Default 8 (edge ~460 m, what a train
    /// covers in ~40 s): a fix's footprint is a cell of up to ~70 m (at
    /// `footprint.max_res` 10), so two riders' interpolated positions
    /// differ by tens of metres, and finer tick cells would split them at
    /// a cell edge too often (one tick in four at resolution 9 on the
    /// simulated lines). Fixes coarser than it make no path.
    pub res: u8,
}

impl Default for TransitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_speed_kmh: 15,
            max_gap: Span::minutes(10),
            extend: Span::minutes(5),
            res: 8,
        }
    }
}

impl TransitConfig {
    /// How far before the horizon a fix at or after it can still add
    /// ticks: a path from the last fix folded (at most `max_gap` before
    /// it) with its run's extension back (`extend` more), or a run's
    /// extension on from a fix at most `max(max_gap, 2 extend)` before it
    /// (later ones were extended at the fold); bounded by `max_gap + 2
    /// extend` and a tick (0 when disabled).
    #[must_use]
    pub fn reach_ms(&self) -> i64 {
        if self.enabled {
            self.max_gap.as_millis() + 2 * self.extend.as_millis() + TICK_MS
        } else {
            0
        }
    }
}

/// The streams an observation is walked in: its feed's, and for a GPS fix
/// also the transit stream (when enabled).
pub fn streams_of(obs: &Observation, cfg: &TransitConfig) -> impl Iterator<Item = Stream> + use<> {
    let path = cfg.enabled && is_fix(obs);
    std::iter::once(obs.source.stream()).chain(path.then_some(Stream::Transit))
}

/// Whether an observation can be an end of a path: a GPS fix.
#[must_use]
pub fn is_fix(obs: &Observation) -> bool {
    obs.source == Source::Gps
}

/// Whether `a` → `b` (`a` before `b`) is a path: both fixes at `cfg.res`
/// or finer, at most `cfg.max_gap` apart, and the average speed between
/// them at least `cfg.min_speed_kmh`.
#[must_use]
pub fn is_path(a: &Observation, b: &Observation, cfg: &TransitConfig) -> bool {
    let Ok(res) = Resolution::try_from(cfg.res) else {
        return false;
    };
    let gap = b.time.as_millis() - a.time.as_millis();
    if !cfg.enabled
        || !is_fix(a)
        || !is_fix(b)
        || gap <= 0
        || gap > cfg.max_gap.as_millis()
        || a.cell.resolution() < res
        || b.cell.resolution() < res
    {
        return false;
    }
    let (pa, pb) = (
        h3o::LatLng::from(a.cell.index()),
        h3o::LatLng::from(b.cell.index()),
    );
    // km/h = m / ms * 3600.
    #[allow(clippy::cast_precision_loss)]
    let speed_kmh = pa.distance_m(pb) / gap as f64 * 3_600.0;
    speed_kmh >= f64::from(cfg.min_speed_kmh)
}

/// The ticks of the path `a` → `b` (a path: see [`is_path`]): one per whole
/// minute `t` with `a.time <= t < b.time`, in time order.
#[must_use]
pub fn ticks(a: &Observation, b: &Observation, cfg: &TransitConfig) -> Vec<Observation> {
    if !is_path(a, b, cfg) {
        return Vec::new();
    }
    sample(a, b, a.time.as_millis(), b.time.as_millis(), cfg)
}

/// What the walk samples when fix `x` follows `q` (`p` the fix before `q`,
/// if any), in time order:
///
/// - `q` → `x` a path that starts a run of paths (`p` → `q` is none): the
///   run is extended back from `q` along the path's line for half the time
///   to `p` (at most `cfg.extend`), then the path's own ticks;
/// - `q` → `x` a path that continues a run: its own ticks;
/// - `q` → `x` no path but `p` → `q` one (the run ended at `q`): the run is
///   extended on from `q` along `p` → `q`'s line for half the time to `x`
///   (at most `cfg.extend`);
/// - else nothing.
///
/// A fix's first or last record on board rarely comes as the vehicle
/// leaves or arrives (with a record every few minutes, a third of a short
/// ride lies before the first or after the last); the half-gap is the
/// likeliest bound of the ride between a fix and the record beyond it.
/// With no `p` (the first fix of a trail), a run is not extended back.
#[must_use]
pub fn ticks_at(
    p: Option<&Observation>,
    q: &Observation,
    x: &Observation,
    cfg: &TransitConfig,
) -> Vec<Observation> {
    let q_ms = q.time.as_millis();
    let half_to = |other: &Observation| {
        ((other.time.as_millis() - q_ms).abs() / 2).min(cfg.extend.as_millis())
    };
    let before = p.is_some_and(|p| is_path(p, q, cfg));
    if is_path(q, x, cfg) {
        let mut out = match p {
            Some(p) if !before => sample(q, x, q_ms - half_to(p), q_ms, cfg),
            _ => Vec::new(),
        };
        out.extend(sample(q, x, q_ms, x.time.as_millis(), cfg));
        out
    } else {
        match p {
            Some(p) if before => sample(p, q, q_ms, q_ms + half_to(x), cfg),
            _ => Vec::new(),
        }
    }
}

/// The extension on of a run of paths ending at `q` (`p` → `q` its last
/// path) by the whole `cfg.extend`: what [`ticks_at`] gives when the next
/// fix is at least twice that later.
#[must_use]
pub fn extend_run(p: &Observation, q: &Observation, cfg: &TransitConfig) -> Vec<Observation> {
    let q_ms = q.time.as_millis();
    sample(p, q, q_ms, q_ms + cfg.extend.as_millis(), cfg)
}

/// Ticks at every whole minute `t` with `from <= t < to`, each in the cell
/// of the point on the line through `a` and `b` (at their speed) at
/// `t + 30 s`: between them, or beyond either end when extended.
fn sample(
    a: &Observation,
    b: &Observation,
    from: i64,
    to: i64,
    cfg: &TransitConfig,
) -> Vec<Observation> {
    let Ok(res) = Resolution::try_from(cfg.res) else {
        return Vec::new();
    };
    let (t0, t1) = (a.time.as_millis(), b.time.as_millis());
    let gap = t1 - t0;
    if gap <= 0 {
        return Vec::new();
    }
    let (pa, pb) = (
        h3o::LatLng::from(a.cell.index()),
        h3o::LatLng::from(b.cell.index()),
    );
    let first = from.div_euclid(TICK_MS) + i64::from(from.rem_euclid(TICK_MS) != 0);
    let mut out = Vec::new();
    let mut t = first * TICK_MS;
    while t < to {
        #[allow(clippy::cast_precision_loss)]
        let f = (t + TICK_MS / 2 - t0) as f64 / gap as f64;
        let lat = pa.lat() + (pb.lat() - pa.lat()) * f;
        let lng = pa.lng() + (pb.lng() - pa.lng()) * f;
        if let (Ok(pos), Ok(time)) = (LatLng::new(lat, lng), EventTime::from_millis("tick", t)) {
            out.push(Observation {
                time,
                cell: pos.to_cell(res),
                source: Source::Gps,
                dwell: Span::from_millis(TICK_MS),
            });
        }
        t += TICK_MS;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_588_291_200_000;

    fn fix(min: f64, lat: f64, lng: f64) -> Observation {
        #[allow(clippy::cast_possible_truncation)]
        let ms = T0 + (min * 60_000.0) as i64;
        Observation {
            time: EventTime::from_millis("t", ms).unwrap(),
            cell: LatLng::new(lat, lng).unwrap().to_cell(Resolution::Ten),
            source: Source::Gps,
            dwell: Span::ZERO,
        }
    }

    #[test]
    fn a_ride_is_sampled_on_the_minute() {
        let cfg = TransitConfig::default();
        // ~4.4 km in 6.5 min: ~41 km/h.
        let (a, b) = (fix(0.5, 37.50, 127.00), fix(7.0, 37.54, 127.00));
        let ticks = ticks(&a, &b, &cfg);
        let minutes: Vec<i64> = ticks
            .iter()
            .map(|o| (o.time.as_millis() - T0) / TICK_MS)
            .collect();
        assert_eq!(minutes, [1, 2, 3, 4, 5, 6]);
        assert!(ticks.iter().all(|o| u8::from(o.cell.resolution()) == 8));
        assert!(ticks.iter().all(|o| o.dwell.as_millis() == TICK_MS));
        // Northbound: each tick's cell is further north.
        let lats: Vec<f64> = ticks
            .iter()
            .map(|o| h3o::LatLng::from(o.cell.index()).lat())
            .collect();
        assert!(lats.windows(2).all(|w| w[1] > w[0]), "{lats:?}");
    }

    #[test]
    fn slow_far_apart_coarse_or_non_gps_fixes_make_no_path() {
        let cfg = TransitConfig::default();
        // Walking pace: 300 m in 5 min.
        assert!(ticks(&fix(0.0, 37.50, 127.0), &fix(5.0, 37.5027, 127.0), &cfg).is_empty());
        // Fast but 20 min apart.
        assert!(ticks(&fix(0.0, 37.50, 127.0), &fix(20.0, 37.60, 127.0), &cfg).is_empty());
        // A tower's footprint.
        let mut tower = fix(5.0, 37.54, 127.0);
        tower.cell = LatLng::new(37.54, 127.0)
            .unwrap()
            .to_cell(Resolution::Seven);
        assert!(ticks(&fix(0.0, 37.50, 127.0), &tower, &cfg).is_empty());
        let mut wifi = fix(5.0, 37.54, 127.0);
        wifi.source = Source::Wifi;
        assert!(ticks(&fix(0.0, 37.50, 127.0), &wifi, &cfg).is_empty());
        let off = TransitConfig {
            enabled: false,
            ..cfg
        };
        assert!(ticks(&fix(0.0, 37.50, 127.0), &fix(5.0, 37.54, 127.0), &off).is_empty());
    }

    #[test]
    fn two_riders_sampled_at_different_fixes_share_the_ticks_cells() {
        let cfg = TransitConfig::default();
        // The same line, 40 km/h northbound from 37.50 at minute 0; the two
        // riders' fixes fall at different moments.
        let at = |min: f64| 37.50 + 0.006 * min;
        let r1 = ticks(&fix(0.3, at(0.3), 127.0), &fix(8.1, at(8.1), 127.0), &cfg);
        let r2 = ticks(&fix(1.7, at(1.7), 127.0), &fix(9.4, at(9.4), 127.0), &cfg);
        let common: Vec<_> = r1
            .iter()
            .filter(|a| r2.iter().any(|b| b.time == a.time))
            .collect();
        assert_eq!(common.len(), 7);
        let same = common
            .iter()
            .filter(|a| r2.iter().any(|b| b.time == a.time && b.cell == a.cell))
            .count();
        assert!(same >= 6, "{same} of 7 ticks in the same cell");
    }
}
