//! A synthetic city with ground truth (the simulator issue).
//!
//! [`simulate`] builds a city ([`World`]: households, workplaces, venues,
//! residents), walks it day by day ([`schedule`]: commutes, lunches,
//! evenings out, Sunday services), runs an infection process driven by true
//! co-presence ([`epidemic`]), and streams what providers would hold — with
//! raw phone and card numbers — to a [`RowSink`]: telecom records (GPS/Wi-Fi
//! fixes for a share of phones, serving-tower records otherwise), card
//! payments, venue check-ins, and the health authority's case events. The
//! provider faults a real pipeline meets are injected on the way: day blocks
//! delivered a day late, swapped and duplicated records, malformed rows.
//!
//! Memory is bounded by one day of schedules (a few stays per resident),
//! never by the number of records: output is streamed resident by resident,
//! day by day. The same [`CityConfig`] (seed included) gives the same bytes.
//!
//! The ground truth ([`Truth`]) is exact: who shared a place with each case
//! during its infectious period (and whether the exposure rule holds on that
//! exact co-presence), who infected whom where, and the places where one
//! case infected several others.

pub mod epidemic;
pub mod files;
pub mod records;
pub mod rng;
pub mod schedule;
pub mod towers;
pub mod world;

use std::collections::BTreeMap;

use epitrace_core::config::ExposureConfig;
use epitrace_feeds::{Feed, format_time};
use epitrace_model::EventTime;

pub use epidemic::{Epidemic, Infection, TrueContact};
use records::{Row, day_rows};
use rng::Rng;
use schedule::day_plan;
use towers::Towers;
pub use world::{CityConfig, Place, Pos, Setting, World};

/// A malformed row, as a provider's broken export would hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// The row's values, some of them invalid or missing (possibly fewer
    /// values than columns).
    Values(Row),
    /// A line that is not a row at all.
    Garbage(String),
}

/// Where the simulator's rows go: files, or straight to Kafka.
pub trait RowSink {
    /// The sink's error.
    type Error;
    /// One good row of `feed`.
    ///
    /// # Errors
    /// The sink's.
    fn row(&mut self, feed: Feed, values: &[String]) -> Result<(), Self::Error>;
    /// One malformed row of `feed` (the producer must reject it).
    ///
    /// # Errors
    /// The sink's.
    fn malformed(&mut self, feed: Feed, row: &Malformed) -> Result<(), Self::Error>;
    /// The end of a simulated day's rows (a sink may flush).
    ///
    /// # Errors
    /// The sink's.
    fn end_of_day(&mut self, _day: u32) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// What was generated, for the manifest and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Good rows written, per feed.
    pub rows: BTreeMap<&'static str, u64>,
    /// Malformed rows written, per feed (the producer's expected rejects).
    pub malformed: BTreeMap<&'static str, u64>,
    /// Duplicated rows (included in `rows`).
    pub duplicates: u64,
    /// Person-day blocks delivered a day late.
    pub late_blocks: u64,
}

/// The ground truth of a run.
#[derive(Debug, Clone)]
pub struct Truth {
    /// Every infection, by resident.
    pub infections: BTreeMap<u32, Infection>,
    /// Published cases: (case id, resident), in order of confirmation.
    pub cases: Vec<(String, u32)>,
    /// Every resident each case met during its infectious period.
    pub contacts: Vec<TrueContact>,
    /// Outbreak events: the infections at one place in a period (no week
    /// without one), with at least three cases.
    pub clusters: Vec<TrueCluster>,
}

/// A true cluster: an outbreak event, the infections at one place in one
/// period (consecutive infections at most a week apart).
#[derive(Debug, Clone, PartialEq)]
pub struct TrueCluster {
    /// Where.
    pub place: Place,
    /// The source: the event's first infector, who brought it there.
    pub infector: u32,
    /// Everyone else in the event (infected there, or infecting others
    /// there), in order of first infection.
    pub infected: Vec<u32>,
    /// First infection.
    pub first: i64,
    /// Last infection.
    pub last: i64,
}

/// The case id of the `n`-th published case of a seed.
#[must_use]
pub fn case_id(seed: u64, n: usize) -> String {
    format!("SIM{seed}-{:05}", n + 1)
}

/// Runs the simulation, streaming rows to `sink`; returns the counts and
/// the ground truth. `exposure` is the rule the truth is assessed with.
///
/// # Errors
/// The sink's first error.
pub fn simulate<S: RowSink>(
    cfg: &CityConfig,
    exposure: &ExposureConfig,
    sink: &mut S,
) -> Result<(World, Counts, Truth), S::Error> {
    let world = World::generate(cfg);
    let towers = Towers::new(cfg);
    let mut epidemic = Epidemic::new(cfg, &world);
    let mut counts = Counts::default();
    let n = u32::try_from(world.people.len()).unwrap_or(u32::MAX);
    // Blocks a provider delivers a day late: (feed, rows).
    let mut late: Vec<(Feed, Vec<(i64, Row)>)> = Vec::new();
    for d in 0..cfg.days {
        let plans: Vec<_> = (0..n).map(|p| day_plan(&world, cfg, p, d)).collect();
        epidemic.day(&world, d, &plans);
        let held = std::mem::take(&mut late);
        for (p, plan) in plans.iter().enumerate() {
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            let rows = day_rows(&world, &towers, cfg, p, d, plan);
            let mut rng = Rng::new(cfg.seed, &[7, u64::from(p), u64::from(d)]);
            for (feed, block) in [
                (Feed::Telecom, rows.telecom),
                (Feed::Card, rows.card),
                (Feed::Checkin, rows.checkin),
            ] {
                if block.is_empty() {
                    continue;
                }
                if rng.chance(cfg.late_share) {
                    counts.late_blocks += 1;
                    late.push((feed, block));
                } else {
                    write_block(cfg, &mut rng, sink, &mut counts, feed, block)?;
                }
            }
        }
        // Yesterday's late blocks arrive after today's data.
        for (feed, block) in held {
            let mut rng = Rng::new(cfg.seed, &[8, u64::from(d), block.len() as u64]);
            write_block(cfg, &mut rng, sink, &mut counts, feed, block)?;
        }
        sink.end_of_day(d)?;
    }
    for (feed, block) in std::mem::take(&mut late) {
        let mut rng = Rng::new(cfg.seed, &[8, u64::from(cfg.days), block.len() as u64]);
        write_block(cfg, &mut rng, sink, &mut counts, feed, block)?;
    }
    let truth = truth(cfg, &epidemic, exposure);
    for (id, person) in &truth.cases {
        let Some(inf) = truth.infections.get(person) else {
            continue;
        };
        let row = case_row(&world, id, *person, inf);
        sink.row(Feed::Cases, &row)?;
        *counts.rows.entry(Feed::Cases.name()).or_default() += 1;
        // The authorities approve every category at confirmation.
        if let Some(at) = inf.confirmed_at {
            for row in approval_rows(id, at) {
                sink.row(Feed::Approvals, &row)?;
                *counts.rows.entry(Feed::Approvals.name()).or_default() += 1;
            }
        }
    }
    Ok((world, counts, truth))
}

fn time(ms: i64) -> String {
    EventTime::from_millis("t", ms).map_or_else(|_| ms.to_string(), format_time)
}

/// How long a simulated approval holds: longer than any simulated run.
const APPROVAL_VALIDITY_MS: i64 = 90 * 86_400_000;

/// A case's approvals as the authorities would grant them at confirmation:
/// LOCATION by the police, CARD by the card association, CHECKIN by the
/// health authority, each for [`APPROVAL_VALIDITY_MS`].
fn approval_rows(case_id: &str, confirmed_at: i64) -> Vec<Row> {
    [
        ("LOCATION", "National Police Agency", "L"),
        ("CARD", "Credit Finance Association", "C"),
        ("CHECKIN", "Health Authority", "Q"),
    ]
    .into_iter()
    .map(|(category, authority, tag)| {
        vec![
            case_id.to_owned(),
            category.to_owned(),
            authority.to_owned(),
            format!("{case_id}-{tag}"),
            time(confirmed_at),
            time(confirmed_at + APPROVAL_VALIDITY_MS),
        ]
    })
    .collect()
}

fn case_row(world: &World, id: &str, person: u32, inf: &Infection) -> Row {
    vec![
        id.to_owned(),
        World::msisdn(person),
        world.card_number(person).unwrap_or_default(),
        inf.confirmed_at.map(time).unwrap_or_default(),
        inf.onset.map(time).unwrap_or_default(),
        time(inf.infectious_from),
        time(inf.infectious_until),
        "CONFIRMED".to_owned(),
        // One city, one health region: its investigators see every case.
        "seoul".to_owned(),
    ]
}

/// Writes one block with the provider faults: swapped neighbours,
/// duplicates, malformed rows.
fn write_block<S: RowSink>(
    cfg: &CityConfig,
    rng: &mut Rng,
    sink: &mut S,
    counts: &mut Counts,
    feed: Feed,
    mut block: Vec<(i64, Row)>,
) -> Result<(), S::Error> {
    for i in 1..block.len() {
        if rng.chance(cfg.swap_share) {
            block.swap(i - 1, i);
        }
    }
    for (_, row) in block {
        if rng.chance(cfg.malformed_share) {
            sink.malformed(feed, &corrupt(rng, feed, row))?;
            *counts.malformed.entry(feed.name()).or_default() += 1;
            continue;
        }
        sink.row(feed, &row)?;
        *counts.rows.entry(feed.name()).or_default() += 1;
        if rng.chance(cfg.duplicate_share) {
            sink.row(feed, &row)?;
            *counts.rows.entry(feed.name()).or_default() += 1;
            counts.duplicates += 1;
        }
    }
    Ok(())
}

/// A provider's broken version of a row.
fn corrupt(rng: &mut Rng, feed: Feed, mut row: Row) -> Malformed {
    let col = |name: &str| feed.columns().iter().position(|c| c.name == name);
    match rng.below(5) {
        0 => {
            if let Some(i) = col("lat") {
                row[i] = format!("{:.4}", rng.range(90.5, 99.0));
            }
            Malformed::Values(row)
        }
        1 => {
            row[0] = String::new(); // the id column: required
            Malformed::Values(row)
        }
        2 => {
            let i = col("observed_at")
                .or_else(|| col("checkin_at"))
                .unwrap_or(0);
            row[i] = "2020-13-45T25:61:00Z".to_owned();
            Malformed::Values(row)
        }
        3 => {
            row.truncate(row.len() / 2);
            Malformed::Values(row)
        }
        _ => Malformed::Garbage("\u{fffd}\u{fffd} export interrupted \u{fffd}".to_owned()),
    }
}

fn truth(cfg: &CityConfig, epidemic: &Epidemic, exposure: &ExposureConfig) -> Truth {
    let cases: Vec<(String, u32)> = epidemic
        .cases()
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (case_id(cfg.seed, i), *p))
        .collect();
    let infections = epidemic.infections().clone();
    // Clusters are outbreak events: the infections at one place, in
    // periods whose consecutive infections are at most a week apart. An
    // event's source is its first infector (who brought it there); events
    // of at least three cases whose source is a case.
    let mut by_place: BTreeMap<Place, Vec<(i64, u32, u32)>> = BTreeMap::new();
    for (p, inf) in &infections {
        if let (Some(src), Some(place)) = (inf.infector, inf.place) {
            by_place
                .entry(place)
                .or_default()
                .push((inf.infected_at, src, *p));
        }
    }
    let is_case = |p: u32| cases.iter().any(|(_, c)| *c == p);
    let mut clusters = Vec::new();
    for (place, mut list) in by_place {
        list.sort_unstable();
        let mut periods: Vec<Vec<(i64, u32, u32)>> = Vec::new();
        for x in list {
            match periods.last_mut() {
                Some(period)
                    if period
                        .last()
                        .is_some_and(|l| x.0 - l.0 <= 7 * world::DAY_MS) =>
                {
                    period.push(x);
                }
                _ => periods.push(vec![x]),
            }
        }
        for period in periods {
            let (Some(&(first, source, _)), Some(&(last, _, _))) = (period.first(), period.last())
            else {
                continue;
            };
            let mut others: Vec<u32> = Vec::new();
            for &(_, infector, infected) in &period {
                for q in [infector, infected] {
                    if q != source && !others.contains(&q) {
                        others.push(q);
                    }
                }
            }
            let members = 1 + others.iter().filter(|p| is_case(**p)).count();
            if members >= 3 && is_case(source) {
                clusters.push(TrueCluster {
                    place,
                    infector: source,
                    first,
                    last,
                    infected: others,
                });
            }
        }
    }
    Truth {
        contacts: epidemic.contacts(exposure),
        infections,
        cases,
        clusters,
    }
}
