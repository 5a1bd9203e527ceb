//! Provider records of one resident's day: telecom fixes and tower records,
//! card payments, QR check-ins — with raw ids, as providers hold them.

use epitrace_feeds::format_time;
use epitrace_model::EventTime;

use super::rng::Rng;
use super::schedule::Stay;
use super::towers::Towers;
use super::world::{CityConfig, HOUR_MS, MIN_MS, Place, Pos, World};

/// A row of a feed, values in the feed's column order.
pub type Row = Vec<String>;

/// The rows of one resident's day, per feed, in time order.
#[derive(Debug, Default)]
pub struct DayRows {
    /// Telecom.
    pub telecom: Vec<(i64, Row)>,
    /// Card.
    pub card: Vec<(i64, Row)>,
    /// Check-in.
    pub checkin: Vec<(i64, Row)>,
}

fn time(ms: i64) -> String {
    EventTime::from_millis("t", ms).map_or_else(|_| ms.to_string(), format_time)
}

fn coord(v: f64) -> String {
    format!("{v:.6}")
}

/// The stay at `t` (the plan covers the whole day).
fn stay_at(plan: &[Stay], t: i64) -> Option<&Stay> {
    let i = plan.partition_point(|s| s.end <= t);
    plan.get(i)
}

/// Ping times of a day: a busier daytime, bursts of activity, a silence of
/// 1–4 hours most nights (phone idle or off) and now and then a short one
/// by day (no signal underground, battery).
fn ping_times(rng: &mut Rng, cfg: &CityConfig, day_start: i64) -> Vec<i64> {
    // The silences remove ~6% of the records on average: compensate.
    let n = rng.poisson(cfg.pings_per_day / 0.94);
    let mut times = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut left = n;
    while left > 0 {
        if rng.chance(0.05) {
            // A burst (a call, a data session): up to 8 records within ten
            // minutes.
            let t0 = day_time(rng, day_start);
            let k = (1 + rng.below(8)).min(left);
            for _ in 0..k {
                #[allow(clippy::cast_possible_truncation)]
                times.push(t0 + (rng.f64() * 10.0 * MIN_MS as f64) as i64);
            }
            left -= k;
        } else {
            times.push(day_time(rng, day_start));
            left -= 1;
        }
    }
    let mut silences = Vec::new();
    if rng.chance(0.8) {
        let s = day_start + (rng.range(0.0, 5.0) * HOUR_MS as f64) as i64;
        silences.push((s, s + (rng.range(1.0, 4.0) * HOUR_MS as f64) as i64));
    }
    if rng.chance(0.3) {
        let s = day_time(rng, day_start);
        silences.push((s, s + (rng.range(15.0, 60.0) * MIN_MS as f64) as i64));
    }
    let day_end = day_start + super::world::DAY_MS;
    times.retain(|t| *t < day_end && !silences.iter().any(|(a, b)| (a..b).contains(&t)));
    times.sort_unstable();
    times.dedup();
    times
}

/// A time of day, three times likelier in the day (07–24) than at night.
fn day_time(rng: &mut Rng, day_start: i64) -> i64 {
    let hour = loop {
        let h = rng.below(24);
        let w = if h < 7 { 0.3 } else { 1.0 };
        if rng.chance(w) {
            break h;
        }
    };
    #[allow(clippy::cast_possible_truncation)]
    let within = (rng.f64() * HOUR_MS as f64) as i64;
    day_start + i64::try_from(hour).unwrap_or(0) * HOUR_MS + within
}

/// Generates one resident's day of records.
#[must_use]
pub fn day_rows(
    world: &World,
    towers: &Towers,
    cfg: &CityConfig,
    person: u32,
    d: u32,
    plan: &[Stay],
) -> DayRows {
    let mut rng = Rng::new(cfg.seed, &[6, u64::from(person), u64::from(d)]);
    let mut out = DayRows::default();
    let Some(p) = world.people.get(person as usize) else {
        return out;
    };
    let msisdn = World::msisdn(person);
    let provider = ["telco-a", "telco-b", "telco-c"][(person % 3) as usize];
    for t in ping_times(&mut rng, cfg, cfg.day_start_ms(d)) {
        let Some(stay) = stay_at(plan, t) else {
            continue;
        };
        let truth = stay.pos_at(t);
        let row = if p.precise && rng.chance(cfg.precise_fix_share) {
            // Wi-Fi positioning indoors (stable, from the building's access
            // points), GPS on the move.
            let (source, sd) = if stay.moving() {
                ("GPS", 3.0)
            } else {
                ("WIFI", 1.5)
            };
            let pos = truth.offset_m(rng.gauss(0.0, sd), rng.gauss(0.0, sd));
            vec![
                msisdn.clone(),
                provider.to_owned(),
                time(t),
                coord(pos.lat),
                coord(pos.lng),
                format!("{:.0}", rng.range(5.0, 50.0)),
                source.to_owned(),
                String::new(),
            ]
        } else {
            let tower = towers.serving(truth);
            vec![
                msisdn.clone(),
                provider.to_owned(),
                time(t),
                coord(tower.pos.lat),
                coord(tower.pos.lng),
                format!("{:.0}", tower.accuracy_m),
                "CELL".to_owned(),
                tower.id,
            ]
        };
        out.telecom.push((t, row));
    }
    let card = world.card_number(person);
    for stay in plan {
        let Some(Place::Venue(v)) = stay.place else {
            continue;
        };
        let Some(venue) = world.venues.get(v as usize) else {
            continue;
        };
        let dur = stay.end - stay.start;
        if let (Some(card), Some(mcc)) = (&card, venue.kind.mcc())
            && rng.chance(0.7)
        {
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            let at = stay.start + (rng.range(0.3, 0.95) * dur as f64) as i64;
            out.card.push((
                at,
                vec![
                    card.clone(),
                    ["card-a", "card-b"][(person % 2) as usize].to_owned(),
                    format!("M{v}"),
                    mcc.to_string(),
                    time(at),
                    coord(venue.pos.lat),
                    coord(venue.pos.lng),
                    format!("{:.0}", rng.range(10.0, 30.0)),
                ],
            ));
        }
        if venue.kind.checkin() && rng.chance(0.9) {
            #[allow(clippy::cast_possible_truncation)]
            let at = stay.start + (rng.range(0.0, 3.0) * MIN_MS as f64) as i64;
            #[allow(clippy::cast_possible_truncation)]
            let out_at = (stay.end - (rng.range(0.0, 3.0) * MIN_MS as f64) as i64).max(at);
            let checkout = if rng.chance(0.5) {
                time(out_at)
            } else {
                String::new()
            };
            out.checkin.push((
                at,
                vec![
                    msisdn.clone(),
                    format!("V{v}"),
                    coord(venue.pos.lat),
                    coord(venue.pos.lng),
                    time(at),
                    checkout,
                ],
            ));
        }
    }
    out
}

/// Where a venue is, for the ground truth.
#[must_use]
pub fn place_pos(world: &World, place: Place) -> Option<Pos> {
    world.pos(place)
}
