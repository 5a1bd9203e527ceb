//! Daily schedules: where each resident is, minute by minute.

use super::rng::Rng;
use super::world::{CityConfig, MIN_MS, Place, Pos, Setting, VenueKind, World};

/// One stretch of a resident's day.
#[derive(Debug, Clone, PartialEq)]
pub struct Stay {
    /// Where: a place shared with others, or `None` while travelling alone
    /// (car, on foot).
    pub place: Option<Place>,
    /// Start, ms since the epoch.
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
    /// Exact position at the start.
    pub from: Pos,
    /// Exact position at the end (the same as `from` when not moving).
    pub to: Pos,
}

impl Stay {
    /// Exact position at `t` (linear while moving).
    #[must_use]
    pub fn pos_at(&self, t: i64) -> Pos {
        if self.end <= self.start || self.from == self.to {
            return self.from;
        }
        #[allow(clippy::cast_precision_loss)]
        let f = (t - self.start) as f64 / (self.end - self.start) as f64;
        self.from.lerp(self.to, f.clamp(0.0, 1.0))
    }

    /// Whether the resident is moving.
    #[must_use]
    pub fn moving(&self) -> bool {
        self.from != self.to
    }
}

/// The contact setting of a shared place, with the venue kind for venues.
#[must_use]
pub fn setting(world: &World, place: Place) -> (Setting, Option<VenueKind>) {
    match place {
        Place::Home(_) => (Setting::Household, None),
        Place::Work(_) => (Setting::Workplace, None),
        Place::Venue(v) => (Setting::Venue, world.venues.get(v as usize).map(|v| v.kind)),
        Place::Vehicle(..) => (Setting::Transit, None),
    }
}

/// Transmission rate per hour of co-presence at a place.
#[must_use]
pub fn beta(world: &World, place: Place) -> f64 {
    match setting(world, place) {
        (Setting::Household, _) => 0.006,
        (Setting::Workplace, _) => 0.0025,
        (Setting::Transit, _) => 0.006,
        (Setting::Venue, kind) => kind.map_or(0.01, VenueKind::beta),
    }
}

/// Subway zones: 3 km squares, each with a station at its centre, on
/// radial lines to the hub (the station at `CityConfig::center`). A trip
/// rides from its zone's station to the hub and from the hub to its
/// destination's (one leg when either end is the hub's zone). Cars leave
/// every 10 minutes: the riders of one leg (origin, destination, departure)
/// share a car — the same path at the same time.
const ZONE_M: f64 = 3_000.0;

fn zone(cfg: &CityConfig, p: Pos) -> (u32, u32) {
    let (e, n) = cfg.bbox.0.delta_m(p);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (x, y) = ((e / ZONE_M).max(0.0) as u32, (n / ZONE_M).max(0.0) as u32);
    (x, y)
}

/// A zone's number (for the car's name in the truth files).
const fn zone_id((x, y): (u32, u32)) -> u32 {
    y * 64 + x
}

/// A zone's station: its centre, or the city centre for the hub's zone.
fn station(cfg: &CityConfig, z: (u32, u32)) -> Pos {
    if z == zone(cfg, cfg.center) {
        return cfg.center;
    }
    cfg.bbox.0.offset_m(
        f64::from(z.0).mul_add(ZONE_M, ZONE_M / 2.0),
        f64::from(z.1).mul_add(ZONE_M, ZONE_M / 2.0),
    )
}

/// Minutes on foot over `m` metres (4.8 km/h, at least 2 minutes).
fn walk_minutes(m: f64) -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    let minutes = (2.0 + m / 80.0).min(60.0) as i64;
    minutes
}

/// Between two departures of the subway.
const HEADWAY_MS: i64 = 10 * MIN_MS;

struct Builder<'a> {
    world: &'a World,
    cfg: &'a CityConfig,
    person: u32,
    day_start: i64,
    day_end: i64,
    t: i64,
    at: Place,
    stays: Vec<Stay>,
}

impl Builder<'_> {
    fn spot(&self, place: Place) -> Pos {
        let p = &self.world.people[self.person as usize];
        self.world
            .pos(place)
            .map_or(self.cfg.center, |pos| pos.offset_m(p.spot.0, p.spot.1))
    }

    /// Stays where it is until `until` (clamped to the day).
    fn stay_until(&mut self, until: i64) {
        let until = until.clamp(self.t, self.day_end);
        if until > self.t {
            let pos = self.spot(self.at);
            self.stays.push(Stay {
                place: Some(self.at),
                start: self.t,
                end: until,
                from: pos,
                to: pos,
            });
            self.t = until;
        }
    }

    /// How long travelling from `from` to `to` alone takes (by car or on
    /// foot).
    fn travel_ms(&self, from: Place, to: Place) -> i64 {
        let km = self.spot(from).dist_m(self.spot(to)) / 1_000.0;
        let minutes = 4.0 + 3.0 * km;
        #[allow(clippy::cast_possible_truncation)]
        let ms = (minutes.clamp(3.0, 90.0) as i64) * MIN_MS;
        ms
    }

    /// Travels to `to`: by subway (a shared car) or alone.
    fn go(&mut self, to: Place, subway: bool) {
        let from_pos = self.spot(self.at);
        let to_pos = self.spot(to);
        let (za, zb) = (zone(self.cfg, from_pos), zone(self.cfg, to_pos));
        if subway && za != zb {
            self.ride(za, zb, from_pos, to_pos);
        } else {
            let dur = self.travel_ms(self.at, to);
            self.leg(None, dur, from_pos, to_pos);
        }
        self.at = to;
    }

    /// By subway: walk to the origin zone's station, ride to the hub and
    /// on to the destination's station (each leg: wait for the next
    /// departure, ride the car with everyone else on it), walk from there.
    fn ride(&mut self, za: (u32, u32), zb: (u32, u32), from_pos: Pos, to_pos: Pos) {
        let hub = zone(self.cfg, self.cfg.center);
        let (sa, sb) = (station(self.cfg, za), station(self.cfg, zb));
        self.leg(
            None,
            walk_minutes(from_pos.dist_m(sa)) * MIN_MS,
            from_pos,
            sa,
        );
        let stops: Vec<(u32, u32)> = [za, hub, zb].into_iter().fold(Vec::new(), |mut v, z| {
            if v.last() != Some(&z) {
                v.push(z);
            }
            v
        });
        for w in stops.windows(2) {
            let (from, to) = (station(self.cfg, w[0]), station(self.cfg, w[1]));
            let slot = (self.t - self.day_start + HEADWAY_MS - 1).div_euclid(HEADWAY_MS);
            self.leg(
                None,
                self.day_start + slot * HEADWAY_MS - self.t,
                from,
                from,
            );
            // 40 km/h between stations, and two minutes of stops.
            #[allow(clippy::cast_possible_truncation)]
            let ride = (2.0 + from.dist_m(to) / 667.0) as i64 * MIN_MS;
            let car = Place::Vehicle(zone_id(w[0]), zone_id(w[1]), slot);
            self.leg(Some(car), ride, from, to);
        }
        self.leg(None, walk_minutes(sb.dist_m(to_pos)) * MIN_MS, sb, to_pos);
    }

    /// One stretch of `dur` ms from `from` to `to` (clamped to the day).
    fn leg(&mut self, place: Option<Place>, dur: i64, from: Pos, to: Pos) {
        let end = (self.t + dur).min(self.day_end);
        if end > self.t {
            self.stays.push(Stay {
                place,
                start: self.t,
                end,
                from,
                to,
            });
        }
        self.t = end;
    }

    /// Goes to `place` at local minute `at_min` (or now, if later), stays
    /// `minutes`, and comes back to `back`.
    fn outing(&mut self, place: Place, at_min: f64, minutes: f64, back: Place) {
        // Back home by midnight: shorten the outing (or skip it) if needed.
        let latest = self.day_end - self.travel_ms(place, back) - 5 * MIN_MS;
        let start = self.local(at_min).max(self.t);
        if start + self.travel_ms(self.at, place) + 10 * MIN_MS >= latest {
            return;
        }
        self.stay_until(start);
        self.go(place, false);
        #[allow(clippy::cast_possible_truncation)]
        let until = (self.t + (minutes.max(10.0) as i64) * MIN_MS).min(latest);
        self.stay_until(until);
        self.go(back, false);
    }

    fn local(&self, minutes: f64) -> i64 {
        #[allow(clippy::cast_possible_truncation)]
        let ms = (minutes * 60_000.0) as i64;
        self.day_start + ms
    }
}

/// A resident's day `d`: from local midnight at home to the next midnight at
/// home, stays in time order without gaps.
#[must_use]
pub fn day_plan(world: &World, cfg: &CityConfig, person: u32, d: u32) -> Vec<Stay> {
    let mut rng = Rng::new(cfg.seed, &[2, u64::from(person), u64::from(d)]);
    let Some(p) = world.people.get(person as usize) else {
        return Vec::new();
    };
    let home = Place::Home(p.household);
    let day_start = cfg.day_start_ms(d);
    let mut b = Builder {
        world,
        cfg,
        person,
        day_start,
        day_end: day_start + super::world::DAY_MS,
        t: day_start,
        at: home,
        stays: Vec::new(),
    };
    let weekday = cfg.weekday(d);
    let weekend = weekday >= 5;
    let friday_or_saturday = weekday == 4 || weekday == 5;
    let restaurant = Place::Venue(p.restaurant);
    match p.work {
        Some(w) if !weekend => {
            let work = Place::Work(w);
            b.stay_until(b.local(rng.gauss(450.0, 30.0).clamp(360.0, 570.0)));
            b.go(work, p.subway);
            b.stay_until(b.local(rng.gauss(720.0, 10.0)));
            if rng.chance(0.55) {
                b.go(restaurant, false);
                let until = b.t + (rng.range(35.0, 55.0) as i64) * MIN_MS;
                b.stay_until(until);
                b.go(work, false);
            }
            b.stay_until(b.local(rng.gauss(1_080.0, 45.0).clamp(990.0, 1_260.0)));
            b.go(home, p.subway);
        }
        _ => {
            if let Some(g) = p.gym.filter(|_| rng.chance(0.4)) {
                b.outing(
                    Place::Venue(g),
                    rng.range(540.0, 600.0),
                    rng.range(60.0, 90.0),
                    home,
                );
            }
            if rng.chance(0.5) {
                b.outing(
                    Place::Venue(p.shop),
                    rng.range(600.0, 690.0),
                    rng.range(20.0, 50.0),
                    home,
                );
            }
            if rng.chance(if weekend { 0.4 } else { 0.3 }) {
                b.outing(
                    restaurant,
                    rng.range(720.0, 760.0),
                    rng.range(45.0, 90.0),
                    home,
                );
            }
        }
    }
    // Sunday service.
    if weekday == 6
        && let Some(c) = p.church.filter(|_| rng.chance(0.85))
    {
        b.outing(Place::Venue(c), 600.0, 120.0, home);
    }
    // Evenings: a club on Friday and Saturday nights for club-goers, else a
    // gym, a dinner out or a shop.
    if let Some(c) = p.club.filter(|_| friday_or_saturday && rng.chance(0.6)) {
        b.outing(
            Place::Venue(c),
            rng.range(1_260.0, 1_300.0),
            rng.range(90.0, 140.0),
            home,
        );
    } else if rng.chance(if friday_or_saturday { 0.4 } else { 0.25 }) {
        match (p.gym, rng.index(3)) {
            (Some(g), 0) => b.outing(Place::Venue(g), 1_170.0, rng.range(60.0, 90.0), home),
            (_, 1) => b.outing(
                Place::Venue(p.shop),
                rng.range(1_140.0, 1_230.0),
                rng.range(20.0, 40.0),
                home,
            ),
            _ => b.outing(
                restaurant,
                rng.range(1_110.0, 1_170.0),
                rng.range(60.0, 100.0),
                home,
            ),
        }
    }
    let end = b.day_end;
    b.stay_until(end);
    b.stays
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_contiguous_and_ends_at_home() {
        let cfg = CityConfig {
            residents: 300,
            ..CityConfig::default()
        };
        let world = World::generate(&cfg);
        for person in 0..300 {
            for d in 0..7 {
                let plan = day_plan(&world, &cfg, person, d);
                assert_eq!(plan.first().map(|s| s.start), Some(cfg.day_start_ms(d)));
                assert_eq!(plan.last().map(|s| s.end), Some(cfg.day_start_ms(d + 1)));
                for w in plan.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "gap or overlap");
                }
                assert!(plan.iter().all(|s| s.end > s.start));
                let home = Place::Home(world.people[person as usize].household);
                assert_eq!(plan.last().and_then(|s| s.place), Some(home));
            }
        }
    }
}
