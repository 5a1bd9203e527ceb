//! The infection process and the ground truth it leaves.
//!
//! Transmission is driven by true co-presence: two residents at the same
//! place (home, workplace, venue, subway car) at the same time, for as long
//! as both are there. An infectious resident infects a susceptible one with
//! probability `1 − exp(−β·h)` for `h` hours together, β by setting (venue
//! kinds differ: a club more than a shop). Incubation is log-normal (mean
//! 5.2 days); 80% develop symptoms and are confirmed 1–4 days after onset;
//! the others are infectious at half the rate and found by testing half the
//! time. Infectious periods run from 2 days before onset to 8 days after.
//!
//! The ground truth is exact: which residents shared a place with each
//! confirmed case during its infectious period and for how long, who
//! infected whom where, and the places where one case infected several.

use std::collections::BTreeMap;

use epitrace_core::Assessment;
use epitrace_core::config::ExposureConfig;
use epitrace_core::interval::Interval;
use epitrace_model::EventTime;

use super::rng::Rng;
use super::schedule::{Stay, beta, setting};
use super::world::{CityConfig, DAY_MS, HOUR_MS, Place, Setting, World};

/// A stretch of time two residents spent together: start, end (ms), where.
type Span = (i64, i64, Setting);

/// One resident's infection.
#[derive(Debug, Clone, PartialEq)]
pub struct Infection {
    /// When.
    pub infected_at: i64,
    /// Symptom onset, for the symptomatic.
    pub onset: Option<i64>,
    /// Infectious period start.
    pub infectious_from: i64,
    /// Infectious period end.
    pub infectious_until: i64,
    /// Relative infectiousness (1, or 0.5 without symptoms).
    pub infectivity: f64,
    /// When confirmed by a test, if ever.
    pub confirmed_at: Option<i64>,
    /// Who infected them (`None` for the index cases).
    pub infector: Option<u32>,
    /// Where.
    pub place: Option<Place>,
}

/// True co-presence of a confirmed case with another resident.
#[derive(Debug, Clone, PartialEq)]
pub struct TrueContact {
    /// The case resident.
    pub case: u32,
    /// The other resident.
    pub contact: u32,
    /// The setting with the most time together.
    pub setting: Setting,
    /// Time together within the case's infectious period, in seconds.
    pub cumulative_s: i64,
    /// The most time together within one rule window, in seconds.
    pub peak_s: i64,
    /// Whether the exposure rule holds on the exact co-presence.
    pub exposed: bool,
}

/// The epidemic's state across days.
#[derive(Debug)]
pub struct Epidemic {
    seed: u64,
    infections: BTreeMap<u32, Infection>,
    /// (case resident, other resident) → intervals together, by setting.
    together: BTreeMap<(u32, u32), Vec<Span>>,
    report_until: i64,
    transmissibility: f64,
}

impl Epidemic {
    /// Seeds `cfg.index_cases` infections, 3–5 days before the first day.
    #[must_use]
    pub fn new(cfg: &CityConfig, world: &World) -> Self {
        let mut e = Self {
            seed: cfg.seed,
            infections: BTreeMap::new(),
            together: BTreeMap::new(),
            report_until: cfg.day_start_ms(cfg.days + cfg.report_days),
            transmissibility: cfg.transmissibility,
        };
        let n = u32::try_from(world.people.len()).unwrap_or(u32::MAX);
        let mut rng = Rng::new(cfg.seed, &[3]);
        let mut seeded = 0;
        while seeded < cfg.index_cases.min(n) {
            let p = u32::try_from(rng.below(u64::from(n))).unwrap_or(0);
            if e.infections.contains_key(&p) {
                continue;
            }
            #[allow(clippy::cast_possible_truncation)]
            let at = cfg.start_ms - (rng.range(3.0, 5.0) * DAY_MS as f64) as i64;
            let mut inf = course(cfg.seed, p, at, None, None);
            // Index cases are found: symptomatic, confirmed within the run.
            if inf.confirmed_at.is_none() || inf.onset.is_none() {
                let onset = at + 4 * DAY_MS;
                inf.onset = Some(onset);
                inf.infectious_from = onset - 2 * DAY_MS;
                inf.infectious_until = onset + 8 * DAY_MS;
                inf.infectivity = 1.0;
                inf.confirmed_at = Some(onset + 2 * DAY_MS);
            }
            e.infections.insert(p, inf);
            seeded += 1;
        }
        e
    }

    /// Whether `person` will be a published case.
    fn is_case(&self, person: u32) -> bool {
        self.infections
            .get(&person)
            .and_then(|i| i.confirmed_at)
            .is_some_and(|c| c <= self.report_until)
    }

    /// Runs one day: who was together where, who infected whom. `plans[p]`
    /// is resident `p`'s day.
    pub fn day(&mut self, world: &World, d: u32, plans: &[Vec<Stay>]) {
        // Occupancy of every shared place, grouped by place.
        let mut occupancy: Vec<(Place, u32, i64, i64)> = Vec::new();
        for (p, plan) in plans.iter().enumerate() {
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            for s in plan {
                if let Some(place) = s.place {
                    occupancy.push((place, p, s.start, s.end));
                }
            }
        }
        occupancy.sort_unstable_by_key(|a| (a.0, a.2, a.1));
        let mut new: BTreeMap<u32, (i64, u32, Place)> = BTreeMap::new();
        for group in occupancy.chunk_by(|a, b| a.0 == b.0) {
            let place = group[0].0;
            let (set, _) = setting(world, place);
            let rate = beta(world, place) * self.transmissibility;
            for &(_, src, s0, s1) in group {
                let Some(inf) = self.infections.get(&src) else {
                    continue;
                };
                let (from, until) = (inf.infectious_from, inf.infectious_until);
                let tracked = self.is_case(src);
                let infectious = (s0.max(from), s1.min(until));
                for &(_, other, o0, o1) in group {
                    if other == src {
                        continue;
                    }
                    // Ground truth: the case's time with everyone, within
                    // its infectious period.
                    if tracked {
                        let (a, b) = (s0.max(o0).max(from), s1.min(o1).min(until));
                        if b > a {
                            self.together
                                .entry((src, other))
                                .or_default()
                                .push((a, b, set));
                        }
                    }
                    // Transmission to the susceptible.
                    if self.infections.contains_key(&other) {
                        continue;
                    }
                    let (a, b) = (infectious.0.max(o0), infectious.1.min(o1));
                    if b <= a {
                        continue;
                    }
                    #[allow(clippy::cast_precision_loss)]
                    let hours = (b - a) as f64 / HOUR_MS as f64;
                    let p = 1.0 - (-rate * hours * inf.infectivity).exp();
                    let mut rng = Rng::new(
                        self.seed,
                        &[
                            4,
                            u64::from(d),
                            u64::from(src),
                            u64::from(other),
                            u64::try_from(a).unwrap_or(0),
                        ],
                    );
                    if rng.chance(p) {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                        let at = a + (rng.f64() * (b - a) as f64) as i64;
                        let best = new.entry(other).or_insert((at, src, place));
                        if (at, src) < (best.0, best.1) {
                            *best = (at, src, place);
                        }
                    }
                }
            }
        }
        for (person, (at, infector, place)) in new {
            let inf = course(self.seed, person, at, Some(infector), Some(place));
            self.infections.insert(person, inf);
        }
    }

    /// Every infection so far, by resident.
    #[must_use]
    pub const fn infections(&self) -> &BTreeMap<u32, Infection> {
        &self.infections
    }

    /// The published cases: residents confirmed by the report deadline, in
    /// order of confirmation.
    #[must_use]
    pub fn cases(&self) -> Vec<(u32, &Infection)> {
        let mut cases: Vec<(u32, &Infection)> = self
            .infections
            .iter()
            .filter(|(p, _)| self.is_case(**p))
            .map(|(p, i)| (*p, i))
            .collect();
        cases.sort_by_key(|(p, i)| (i.confirmed_at, *p));
        cases
    }

    /// The true co-presence of every case with every resident it met during
    /// its infectious period, assessed with the exposure rule `cfg`.
    #[must_use]
    pub fn contacts(&self, cfg: &ExposureConfig) -> Vec<TrueContact> {
        self.together
            .iter()
            .filter_map(|(&(case, contact), spans)| {
                let mut by_setting: BTreeMap<Setting, i64> = BTreeMap::new();
                let mut intervals = Vec::with_capacity(spans.len());
                for &(a, b, s) in spans {
                    *by_setting.entry(s).or_default() += b - a;
                    let (Ok(a), Ok(b)) = (
                        EventTime::from_millis("t", a),
                        EventTime::from_millis("t", b),
                    ) else {
                        continue;
                    };
                    intervals.push(Interval::new(a, b));
                }
                let setting = by_setting
                    .iter()
                    .max_by_key(|(s, ms)| (**ms, std::cmp::Reverse(**s)))
                    .map(|(s, _)| *s)?;
                let a = Assessment::of(intervals, cfg);
                Some(TrueContact {
                    case,
                    contact,
                    setting,
                    cumulative_s: a.cumulative_ms / 1000,
                    peak_s: a.peak_ms / 1000,
                    exposed: a.exposed,
                })
            })
            .collect()
    }
}

/// A resident's disease course after infection at `at`.
fn course(
    seed: u64,
    person: u32,
    at: i64,
    infector: Option<u32>,
    place: Option<Place>,
) -> Infection {
    let mut rng = Rng::new(seed, &[5, u64::from(person)]);
    #[allow(clippy::cast_precision_loss)]
    let day = DAY_MS as f64;
    #[allow(clippy::cast_possible_truncation)]
    let days = |x: f64| (x * day) as i64;
    let incubation = rng.lognormal(5.2, 2.8).clamp(2.0, 14.0);
    if rng.chance(0.8) {
        let onset = at + days(incubation);
        Infection {
            infected_at: at,
            onset: Some(onset),
            infectious_from: onset - 2 * DAY_MS,
            infectious_until: onset + 8 * DAY_MS,
            infectivity: 1.0,
            confirmed_at: Some(onset + days(rng.range(1.0, 4.0))),
            infector,
            place,
        }
    } else {
        let from = at + days((incubation - 2.0).max(1.0));
        Infection {
            infected_at: at,
            onset: None,
            infectious_from: from,
            infectious_until: from + 8 * DAY_MS,
            infectivity: 0.5,
            confirmed_at: rng.chance(0.5).then(|| from + days(rng.range(3.0, 8.0))),
            infector,
            place,
        }
    }
}
