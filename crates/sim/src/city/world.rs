//! The city: its configuration, places and people.

use super::rng::Rng;

/// Metres per degree of latitude.
pub const M_PER_DEG_LAT: f64 = 111_320.0;

/// A position in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pos {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lng: f64,
}

impl Pos {
    /// `(east, north)` metres from `self` to `other` (equirectangular,
    /// good to a few metres across a city).
    #[must_use]
    pub fn delta_m(self, other: Self) -> (f64, f64) {
        let k = self.lat.to_radians().cos();
        (
            (other.lng - self.lng) * M_PER_DEG_LAT * k,
            (other.lat - self.lat) * M_PER_DEG_LAT,
        )
    }

    /// Distance in metres.
    #[must_use]
    pub fn dist_m(self, other: Self) -> f64 {
        let (e, n) = self.delta_m(other);
        e.hypot(n)
    }

    /// The position `east`, `north` metres away.
    #[must_use]
    pub fn offset_m(self, east: f64, north: f64) -> Self {
        let k = self.lat.to_radians().cos();
        Self {
            lat: self.lat + north / M_PER_DEG_LAT,
            lng: self.lng + east / (M_PER_DEG_LAT * k),
        }
    }

    /// The point a fraction `f` of the way to `other`.
    #[must_use]
    pub fn lerp(self, other: Self, f: f64) -> Self {
        Self {
            lat: self.lat + (other.lat - self.lat) * f,
            lng: self.lng + (other.lng - self.lng) * f,
        }
    }
}

/// What the simulator generates.
#[derive(Debug, Clone, PartialEq)]
pub struct CityConfig {
    /// Seed: the same seed gives byte-identical output.
    pub seed: u64,
    /// Residents (default 20,000).
    pub residents: u32,
    /// Days simulated (default 7).
    pub days: u32,
    /// First day, as milliseconds since the epoch of its local midnight
    /// (default 2020-05-01 00:00 KST, a Friday).
    pub start_ms: i64,
    /// Local time offset from UTC, in hours (default +9, Seoul).
    pub utc_offset_h: i64,
    /// Day of the week of the first day, 0 = Monday (default 4, Friday).
    pub start_weekday: u32,
    /// South-west and north-east corners (default Seoul).
    pub bbox: (Pos, Pos),
    /// Downtown: densest homes and workplaces, finest tower grid.
    pub center: Pos,
    /// Secondary business and nightlife centres.
    pub hubs: Vec<Pos>,
    /// Share of phones that report GPS/Wi-Fi fixes (default 0.3); the
    /// others report only their serving tower.
    pub precise_phones: f64,
    /// Share of a precise phone's records that are GPS/Wi-Fi fixes rather
    /// than tower records (default 0.8).
    pub precise_fix_share: f64,
    /// Mean telecom records per phone per day (default 230).
    pub pings_per_day: f64,
    /// People infected at the start (default 5).
    pub index_cases: u32,
    /// Multiplier of every transmission rate (default 1.0).
    pub transmissibility: f64,
    /// Days after the last simulated day during which infections are still
    /// confirmed and published as cases (default 7).
    pub report_days: u32,
    /// Share of a feed's person-day blocks a provider delivers a day late
    /// (default 0.02).
    pub late_share: f64,
    /// Share of records duplicated (default 0.005).
    pub duplicate_share: f64,
    /// Share of adjacent records swapped (default 0.02).
    pub swap_share: f64,
    /// Share of rows written malformed (default 0.001).
    pub malformed_share: f64,
}

impl Default for CityConfig {
    fn default() -> Self {
        Self {
            seed: 2020,
            residents: 20_000,
            days: 7,
            // 2020-05-01T00:00+09:00 = 2020-04-30T15:00Z.
            start_ms: 1_588_258_800_000,
            utc_offset_h: 9,
            start_weekday: 4,
            bbox: (
                Pos {
                    lat: 37.43,
                    lng: 126.80,
                },
                Pos {
                    lat: 37.70,
                    lng: 127.18,
                },
            ),
            center: Pos {
                lat: 37.5665,
                lng: 126.9780,
            },
            hubs: vec![
                // Gangnam, Yeouido, Itaewon, Hongdae.
                Pos {
                    lat: 37.4980,
                    lng: 127.0276,
                },
                Pos {
                    lat: 37.5250,
                    lng: 126.9250,
                },
                Pos {
                    lat: 37.5345,
                    lng: 126.9946,
                },
                Pos {
                    lat: 37.5563,
                    lng: 126.9236,
                },
            ],
            precise_phones: 0.3,
            precise_fix_share: 0.8,
            pings_per_day: 230.0,
            index_cases: 5,
            transmissibility: 1.0,
            report_days: 7,
            late_share: 0.02,
            duplicate_share: 0.005,
            swap_share: 0.02,
            malformed_share: 0.001,
        }
    }
}

impl CityConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// A message naming the value.
    pub fn validate(&self) -> Result<(), String> {
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be within [0, 1], got {v}"))
            }
        };
        share("precise_phones", self.precise_phones)?;
        share("precise_fix_share", self.precise_fix_share)?;
        share("late_share", self.late_share)?;
        share("duplicate_share", self.duplicate_share)?;
        share("swap_share", self.swap_share)?;
        share("malformed_share", self.malformed_share)?;
        if self.residents == 0 || self.residents > 10_000_000 {
            return Err(format!(
                "residents must be 1..=10,000,000, got {}",
                self.residents
            ));
        }
        if self.days == 0 || self.days > 60 {
            return Err(format!("days must be 1..=60, got {}", self.days));
        }
        if !(1.0..=5_000.0).contains(&self.pings_per_day) {
            return Err(format!(
                "pings_per_day must be within [1, 5000], got {}",
                self.pings_per_day
            ));
        }
        if self.index_cases > self.residents {
            return Err("more index cases than residents".into());
        }
        Ok(())
    }

    /// Milliseconds of the local midnight starting day `d`.
    #[must_use]
    pub fn day_start_ms(&self, d: u32) -> i64 {
        self.start_ms + i64::from(d) * DAY_MS
    }

    /// Day of the week of day `d`, 0 = Monday.
    #[must_use]
    pub fn weekday(&self, d: u32) -> u32 {
        (self.start_weekday + d) % 7
    }
}

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// An hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// A minute in milliseconds.
pub const MIN_MS: i64 = 60_000;

/// Kinds of venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VenueKind {
    /// Restaurant (MCC 5812).
    Restaurant,
    /// Shop (MCC 5411, grocery).
    Shop,
    /// Gym (MCC 7997; QR check-in).
    Gym,
    /// Club or bar (MCC 5813; QR check-in).
    Club,
    /// Church (no card payments; QR check-in).
    Church,
}

impl VenueKind {
    /// Name in the ground truth.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Restaurant => "restaurant",
            Self::Shop => "shop",
            Self::Gym => "gym",
            Self::Club => "club",
            Self::Church => "church",
        }
    }

    /// Merchant category code of card payments there, if any.
    #[must_use]
    pub const fn mcc(self) -> Option<u16> {
        match self {
            Self::Restaurant => Some(5812),
            Self::Shop => Some(5411),
            Self::Gym => Some(7997),
            Self::Club => Some(5813),
            Self::Church => None,
        }
    }

    /// Whether visitors check in by QR code (Korea's high-risk venues).
    #[must_use]
    pub const fn checkin(self) -> bool {
        matches!(self, Self::Gym | Self::Club | Self::Church)
    }

    /// Transmission rate per hour of co-presence.
    #[must_use]
    pub const fn beta(self) -> f64 {
        match self {
            Self::Restaurant => 0.01,
            Self::Shop => 0.003,
            Self::Gym => 0.02,
            Self::Club => 0.06,
            Self::Church => 0.03,
        }
    }

    /// Residents per venue of the kind.
    const fn residents_per(self) -> u32 {
        match self {
            Self::Restaurant => 80,
            Self::Shop => 150,
            Self::Gym => 700,
            Self::Club => 1_200,
            Self::Church => 900,
        }
    }

    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Restaurant,
        Self::Shop,
        Self::Gym,
        Self::Club,
        Self::Church,
    ];
}

/// A place people stay at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// A household's home.
    Home(u32),
    /// A workplace.
    Work(u32),
    /// A venue.
    Venue(u32),
    /// A subway car: (origin zone, destination zone, departure slot) of one
    /// leg (a zone's station to the hub's, or the hub's to a zone's).
    Vehicle(u32, u32, i64),
}

/// Contact settings, as the ground truth reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Setting {
    /// Same home.
    Household,
    /// Same workplace.
    Workplace,
    /// Same venue.
    Venue,
    /// Same subway car.
    Transit,
}

impl Setting {
    /// Its name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Household => "household",
            Self::Workplace => "workplace",
            Self::Venue => "venue",
            Self::Transit => "transit",
        }
    }
}

/// A venue.
#[derive(Debug, Clone)]
pub struct Venue {
    /// Where.
    pub pos: Pos,
    /// What.
    pub kind: VenueKind,
}

/// A resident.
#[derive(Debug, Clone)]
pub struct Person {
    /// Household (= home place).
    pub household: u32,
    /// Workplace, for the employed.
    pub work: Option<u32>,
    /// Commutes by subway (shares cars with other riders).
    pub subway: bool,
    /// Phone reports GPS/Wi-Fi fixes.
    pub precise: bool,
    /// Has a payment card.
    pub card: bool,
    /// Favourite restaurant (near work, or home).
    pub restaurant: u32,
    /// Nearest shop to home.
    pub shop: u32,
    /// Gym membership.
    pub gym: Option<u32>,
    /// Goes clubbing (which club).
    pub club: Option<u32>,
    /// Goes to church (which).
    pub church: Option<u32>,
    /// Metres from the place's reference point where this person sits,
    /// stands or sleeps (a few metres: inside the building).
    pub spot: (f64, f64),
}

/// The generated city.
#[derive(Debug, Clone)]
pub struct World {
    /// Home positions, by household.
    pub homes: Vec<Pos>,
    /// Workplace positions.
    pub works: Vec<Pos>,
    /// Venues.
    pub venues: Vec<Venue>,
    /// Residents.
    pub people: Vec<Person>,
}

impl World {
    /// The reference point of a static place.
    #[must_use]
    pub fn pos(&self, place: Place) -> Option<Pos> {
        match place {
            Place::Home(h) => self.homes.get(h as usize).copied(),
            Place::Work(w) => self.works.get(w as usize).copied(),
            Place::Venue(v) => self.venues.get(v as usize).map(|v| v.pos),
            Place::Vehicle(..) => None,
        }
    }

    /// A person's phone number (E.164, Korean mobile; unique per person).
    #[must_use]
    pub fn msisdn(person: u32) -> String {
        // 7919 is coprime with 10^8: a bijection on 8-digit numbers.
        let n = (u64::from(person) * 7919 + 1_234_567) % 100_000_000;
        format!("+8210{n:08}")
    }

    /// A person's card number, if they have a card.
    #[must_use]
    pub fn card_number(&self, person: u32) -> Option<String> {
        let p = self.people.get(person as usize)?;
        p.card.then(|| {
            let n = (u64::from(person) * 104_729 + 7_654_321) % 1_000_000_000_000;
            format!("9410{n:012}")
        })
    }

    /// Generates the city for `cfg`.
    #[must_use]
    pub fn generate(cfg: &CityConfig) -> Self {
        let mut rng = Rng::new(cfg.seed, &[1]);
        let n = cfg.residents;
        // Homes: households of 1–4, denser towards the centre.
        let mut homes = Vec::new();
        let mut household_of = Vec::with_capacity(n as usize);
        while household_of.len() < n as usize {
            let size = [1, 2, 2, 3, 3, 4][rng.index(6)];
            let h = u32::try_from(homes.len()).unwrap_or(u32::MAX);
            homes.push(sample_pos(&mut rng, cfg, 7_000.0, 0.35));
            for _ in 0..size {
                if household_of.len() < n as usize {
                    household_of.push(h);
                }
            }
        }
        // Workplaces: downtown and the hubs.
        let works: Vec<Pos> = (0..(n / 25).max(1))
            .map(|_| sample_pos(&mut rng, cfg, 3_500.0, 0.08))
            .collect();
        // Venues: by kind, clubs around the nightlife hubs.
        let mut venues = Vec::new();
        for kind in VenueKind::ALL {
            for _ in 0..(n / kind.residents_per()).max(1) {
                let pos = if kind == VenueKind::Club && !cfg.hubs.is_empty() {
                    let hub = cfg.hubs[rng.index(cfg.hubs.len())];
                    hub.offset_m(rng.gauss(0.0, 400.0), rng.gauss(0.0, 400.0))
                } else {
                    sample_pos(&mut rng, cfg, 6_000.0, 0.3)
                };
                venues.push(Venue { pos, kind });
            }
        }
        let of_kind = |k: VenueKind| -> Vec<u32> {
            venues
                .iter()
                .enumerate()
                .filter(|(_, v)| v.kind == k)
                .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
                .collect()
        };
        let (restaurants, shops, gyms, clubs, churches) = (
            of_kind(VenueKind::Restaurant),
            of_kind(VenueKind::Shop),
            of_kind(VenueKind::Gym),
            of_kind(VenueKind::Club),
            of_kind(VenueKind::Church),
        );
        let near = |rng: &mut Rng, list: &[u32], to: Pos| -> u32 {
            // The nearest of a few candidates: people go to nearby places
            // without every neighbour picking the same one.
            let mut best = list[rng.index(list.len())];
            for _ in 0..6 {
                let c = list[rng.index(list.len())];
                if venues[c as usize].pos.dist_m(to) < venues[best as usize].pos.dist_m(to) {
                    best = c;
                }
            }
            best
        };
        let people = household_of
            .iter()
            .map(|&household| {
                let home = homes[household as usize];
                let work = rng
                    .chance(0.65)
                    .then(|| u32::try_from(rng.index(works.len())).unwrap_or(0));
                let anchor = work.map_or(home, |w| works[w as usize]);
                Person {
                    household,
                    work,
                    subway: work.is_some() && rng.chance(0.6),
                    precise: rng.chance(cfg.precise_phones),
                    card: rng.chance(0.85),
                    restaurant: near(&mut rng, &restaurants, anchor),
                    shop: near(&mut rng, &shops, home),
                    gym: rng.chance(0.2).then(|| near(&mut rng, &gyms, home)),
                    club: rng.chance(0.12).then(|| clubs[rng.index(clubs.len())]),
                    church: rng.chance(0.15).then(|| near(&mut rng, &churches, home)),
                    spot: (rng.range(-2.0, 2.0), rng.range(-2.0, 2.0)),
                }
            })
            .collect();
        Self {
            homes,
            works,
            venues,
            people,
        }
    }
}

/// A position in the bounding box, denser near the centre and the hubs:
/// with probability `uniform` anywhere in the box, otherwise normally
/// around the centre or a hub with standard deviation `spread_m`.
fn sample_pos(rng: &mut Rng, cfg: &CityConfig, spread_m: f64, uniform: f64) -> Pos {
    let (sw, ne) = cfg.bbox;
    loop {
        let p = if rng.chance(uniform) {
            Pos {
                lat: rng.range(sw.lat, ne.lat),
                lng: rng.range(sw.lng, ne.lng),
            }
        } else {
            let centre = if cfg.hubs.is_empty() || rng.chance(0.5) {
                cfg.center
            } else {
                cfg.hubs[rng.index(cfg.hubs.len())]
            };
            centre.offset_m(rng.gauss(0.0, spread_m), rng.gauss(0.0, spread_m))
        };
        if (sw.lat..ne.lat).contains(&p.lat) && (sw.lng..ne.lng).contains(&p.lng) {
            return p;
        }
    }
}
