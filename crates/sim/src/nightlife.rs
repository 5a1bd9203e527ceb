//! A night out around Itaewon: the scenario of the demo and of the
//! end-to-end tests.
//!
//! Deterministic for a seed. Times are event times on 2020-05-02 from 22:00
//! Korea time (13:00 UTC).
//!
//! - **Case `KR-2020-0501`** — phone `P1` and card `C1`: a restaurant
//!   payment at 22:10 (MCC 5812 → 45 min), tower pings at the club (500 m
//!   accuracy → a res-8 footprint) every 10 min from 23:00 to 03:00 with
//!   the club's Wi-Fi fixes (30 m) between them (so the stay's cell is the
//!   tower's and its core the club's: its contacts there are `close`), GPS
//!   at a bar ~1 km away until 03:50. Confirmed three days later: its
//!   trail is ingested before the case is known.
//! - **Case `KR-2020-0502`** — phone `P2` at a gym ~3 km away, confirmed
//!   and then retracted (a false positive): it must leave no exposure.
//! - **Cases `KR-2020-0503` and `KR-2020-0504`** — phones `P3` and `P4`,
//!   GPS at the club from 23:30 to 01:30 with `P1` there: both are
//!   exposures of `KR-2020-0501`, fall ill and are confirmed four days
//!   later (infectious from the next day, so the night is not in their own
//!   timelines). The three cases form a cluster through the exposure chain,
//!   with `KR-2020-0501` its index case.
//! - **Residents** — each visits one to three of the venues with GPS or
//!   tower pings every 3–12 min, sometimes paying by card (restaurant,
//!   bar) or checking in at the club; the restaurant lies inside the club's
//!   tower footprint, so card payments there match tower pings across
//!   sources and resolutions.
//! - **Late population data** — every fifth resident's records are held
//!   back and published after the cases.
//! - **Malformed records** — a truncated frame, an unknown schema
//!   fingerprint, a NaN latitude, a timestamp in 2099 and bytes that are not
//!   Avro; each must be dead-lettered with its reason code while everything
//!   else flows on.

use epitrace_core::Ingest;
use epitrace_core::ingest::case_window;
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{
    CardTransaction, CaseEvent, CaseStatus, DataAccessApproval, DataCategory, InterviewEntry,
    LocationPing, LocationSource, VenueCheckin,
};
use epitrace_model::time::{DAY_MS, HOUR_MS, MINUTE_MS};
use epitrace_model::topics::{CARD, TELECOM};
use epitrace_model::{
    AccuracyM, ActorId, CaseId, Cell, EntryId, EventTime, LatLng, Mcc, MerchantId, ModelError,
    ProviderId, SubjectId, Text, VenueId,
};
use h3o::Resolution;

use crate::feed::FeedRecord;

/// 2020-05-02T13:00:00Z (22:00 in Seoul).
pub const NIGHT_START_MS: i64 = 1_588_424_400_000;

/// A malformed record and the reason code it must be dead-lettered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Topic it is published to.
    pub topic: &'static str,
    /// Kafka key.
    pub key: Vec<u8>,
    /// The bad value.
    pub payload: Vec<u8>,
    /// Expected `reason_code` of its dead letter.
    pub reason: &'static str,
}

/// Everything to publish, in phases.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Feed records published first (the trails, including the cases').
    pub trail: Vec<FeedRecord>,
    /// Case events, published after the trail, in order.
    pub cases: Vec<CaseEvent>,
    /// Population records published after the cases.
    pub late: Vec<FeedRecord>,
    /// Bad records, published with the late data.
    pub malformed: Vec<Malformed>,
}

impl Scenario {
    /// Every well-formed feed record (trail, then late).
    pub fn feed(&self) -> impl Iterator<Item = &FeedRecord> {
        self.trail.iter().chain(&self.late)
    }

    /// The cases as they stand after every event: the latest event of each
    /// case, retracted ones left out.
    #[must_use]
    pub fn live_cases(&self) -> Vec<CaseEvent> {
        let mut latest: Vec<CaseEvent> = Vec::new();
        for e in &self.cases {
            latest.retain(|l| l.case_id != e.case_id);
            latest.push(e.clone());
        }
        latest.retain(|e| e.status != CaseStatus::Retracted);
        latest
    }

    /// Every category of every case approved at its confirmation (for 90
    /// days), as the authorities would: publish them on `cases.approvals`
    /// with the cases, or tracing waits for them.
    #[must_use]
    pub fn approvals(&self) -> Vec<DataAccessApproval> {
        let mut seen: Vec<&CaseId> = Vec::new();
        let mut out = Vec::new();
        for e in &self.cases {
            if seen.contains(&&e.case_id) {
                continue;
            }
            seen.push(&e.case_id);
            out.extend(approvals_for(&e.case_id, e.confirmed_at));
        }
        out
    }

    /// What the first live case tells the investigators in interview: `n`
    /// places and times where people of the population stayed 20 minutes
    /// or more (their card payments and check-ins, each of another person),
    /// within the case's infectious window, where no record of the case's
    /// own is then (no footprint of the case's co-located with the stay's
    /// within an hour of it) — so that only the statement puts the case
    /// there. Each entry
    /// states the footprint's centre within 30 m over the stay; fewer than
    /// `n` when the scenario has fewer.
    #[must_use]
    pub fn statements(&self, ingest: &Ingest, n: usize) -> Vec<InterviewEntry> {
        let live = self.live_cases();
        let Some(case) = live.first() else {
            return Vec::new();
        };
        let window = case_window(case);
        let case_subjects: Vec<SubjectId> = live.iter().flat_map(|c| c.subjects.clone()).collect();
        let own: Vec<(Cell, i64, i64)> = self
            .feed()
            .map(|r| r.observation(ingest))
            .filter(|(subject, _)| case.subjects.contains(subject))
            .map(|(_, o)| (o.cell, o.time.as_millis(), o.end().as_millis()))
            .collect();
        let mut seen: Vec<SubjectId> = Vec::new();
        let mut out = Vec::new();
        for r in self.feed() {
            if out.len() == n {
                break;
            }
            let (subject, o) = r.observation(ingest);
            if case_subjects.contains(&subject)
                || seen.contains(&subject)
                || o.dwell.as_millis() < 20 * MINUTE_MS
                || o.time < window.start()
                || o.end() > window.end()
                || own.iter().any(|&(cell, from, to)| {
                    cell.co_located(o.cell)
                        && from < o.end().as_millis() + HOUR_MS
                        && to > o.time.as_millis() - HOUR_MS
                })
            {
                continue;
            }
            seen.push(subject);
            let (Ok(entry_id), Ok(by)) = (
                EntryId::new(format!("stated-{}", out.len() + 1)),
                ActorId::new("investigator-kim"),
            ) else {
                continue;
            };
            out.push(InterviewEntry {
                case_id: case.case_id.clone(),
                entry_id,
                position: o.cell.center(),
                radius_m: 30.0,
                start: o.time,
                end: o.end(),
                label: None,
                recorded_by: by,
                recorded_at: case.confirmed_at,
                retracted: false,
            });
        }
        out
    }
}

/// A case's approvals of every category, granted at `at` for 90 days:
/// LOCATION by the police, CARD by the card association, CHECKIN and
/// INTERVIEW (its stated places as evidence) by the health authority.
#[must_use]
pub fn approvals_for(case_id: &CaseId, at: EventTime) -> Vec<DataAccessApproval> {
    let until =
        EventTime::from_millis("expires_at", at.as_millis() + 90 * 86_400_000).unwrap_or(at);
    [
        (DataCategory::Location, "National Police Agency", "L"),
        (DataCategory::Card, "Credit Finance Association", "C"),
        (DataCategory::Checkin, "Health Authority", "Q"),
        (DataCategory::Interview, "Health Authority", "I"),
    ]
    .into_iter()
    .filter_map(|(category, authority, tag)| {
        Some(DataAccessApproval {
            case_id: case_id.clone(),
            category,
            authority: Text::new("authority", authority).ok()?,
            reference: Text::new("reference", format!("{}-{tag}", case_id.as_str())).ok()?,
            approved_at: at,
            expires_at: until,
        })
    })
    .collect()
}

/// SplitMix64: small, seedable, good enough for scenario shapes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (hi > lo).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo).unwrap_or(1).max(1);
        lo + i64::try_from(self.next() % span).unwrap_or(0)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone, Copy)]
enum Venue {
    Club,
    Restaurant,
    Bar,
    Gym,
}

struct Places {
    club: LatLng,
    restaurant: LatLng,
    bar: LatLng,
    gym: LatLng,
}

impl Places {
    fn new() -> Result<Self, ModelError> {
        // The club at the centre of a res-8 cell (a downtown tower's
        // footprint); the restaurant at the centre of one of its res-10
        // descendants, so finer footprints of it nest inside the club's.
        let club_cell = LatLng::new(37.5344, 126.9946)?.to_cell(Resolution::Eight);
        let restaurant = club_cell
            .index()
            .child_at(40, Resolution::Ten)
            .map_or(club_cell, epitrace_model::Cell::from)
            .center();
        Ok(Self {
            club: club_cell.center(),
            restaurant,
            bar: LatLng::new(37.5400, 126.9850)?,
            gym: LatLng::new(37.5600, 127.0100)?,
        })
    }

    fn at(&self, v: Venue) -> LatLng {
        match v {
            Venue::Club => self.club,
            Venue::Restaurant => self.restaurant,
            Venue::Bar => self.bar,
            Venue::Gym => self.gym,
        }
    }
}

fn at(min: i64) -> Result<EventTime, ModelError> {
    EventTime::from_millis("observed_at", NIGHT_START_MS + min * MINUTE_MS)
}

fn subject(kind: u8, n: u32) -> SubjectId {
    let mut b = [0u8; 16];
    b[0] = kind;
    b[12..].copy_from_slice(&n.to_be_bytes());
    SubjectId::from_bytes(b)
}

struct Builder {
    places: Places,
    telco: ProviderId,
    issuer: ProviderId,
}

impl Builder {
    fn ping(
        &self,
        who: SubjectId,
        min: i64,
        pos: LatLng,
        accuracy: f64,
        source: LocationSource,
    ) -> Result<FeedRecord, ModelError> {
        Ok(FeedRecord::Ping(LocationPing {
            subject: who,
            provider: self.telco.clone(),
            observed_at: at(min)?,
            position: pos,
            accuracy: AccuracyM::new(accuracy)?,
            source,
            site_id: None,
        }))
    }

    fn card(
        &self,
        who: SubjectId,
        min: i64,
        venue: Venue,
        mcc: i64,
    ) -> Result<FeedRecord, ModelError> {
        Ok(FeedRecord::Card(CardTransaction {
            subject: who,
            issuer: self.issuer.clone(),
            merchant_id: MerchantId::new(match venue {
                Venue::Restaurant => "m-restaurant",
                Venue::Bar => "m-bar",
                Venue::Club => "m-club",
                Venue::Gym => "m-gym",
            })?,
            mcc: Mcc::new(mcc)?,
            position: self.places.at(venue),
            accuracy: AccuracyM::new(20.0)?,
            observed_at: at(min)?,
        }))
    }
}

/// The scenario with `residents` background residents.
///
/// # Errors
/// Only if a constant in here were invalid (the tests build it).
pub fn nightlife(residents: u32, seed: u64) -> Result<Scenario, ModelError> {
    let b = Builder {
        places: Places::new()?,
        telco: ProviderId::new("telco-a")?,
        issuer: ProviderId::new("card-b")?,
    };
    let mut rng = Rng(seed);
    let mut trail = Vec::new();
    let mut late = Vec::new();

    // Case 1: phone P1 and card C1.
    let (p1, c1) = (subject(1, 1), subject(2, 1));
    trail.push(b.card(c1, 10, Venue::Restaurant, 5812)?);
    for m in (60..=300).step_by(10) {
        trail.push(b.ping(p1, m, b.places.club, 500.0, LocationSource::Cell)?);
        trail.push(b.ping(p1, m + 5, b.places.club, 30.0, LocationSource::Wifi)?);
    }
    for m in (320..=350).step_by(10) {
        trail.push(b.ping(p1, m, b.places.bar, 15.0, LocationSource::Gps)?);
    }
    // Case 2: phone P2 at the gym.
    let p2 = subject(1, 2);
    for m in (0..=90).step_by(5) {
        trail.push(b.ping(p2, m, b.places.gym, 10.0, LocationSource::Gps)?);
    }

    // Cases 3 and 4: infected at the club by case 1.
    let (p3, p4) = (subject(1, 3), subject(1, 4));
    for m in (90..=210).step_by(5) {
        trail.push(b.ping(p3, m, b.places.club, 12.0, LocationSource::Gps)?);
        trail.push(b.ping(p4, m + 2, b.places.club, 20.0, LocationSource::Gps)?);
    }

    // Residents.
    for i in 0..residents {
        let phone = subject(3, i);
        let card = subject(4, i);
        let mut mine = Vec::new();
        let visits = rng.range(1, 4);
        for _ in 0..visits {
            let venue = match rng.range(0, 10) {
                0..=4 => Venue::Club,
                5..=6 => Venue::Restaurant,
                7..=8 => Venue::Bar,
                _ => Venue::Gym,
            };
            let start = rng.range(-30, 330);
            let len = rng.range(5, 150);
            let gps = rng.chance(60);
            let (accuracy, source) = if gps {
                (
                    f64::from(u32::try_from(rng.range(5, 40)).unwrap_or(20)),
                    LocationSource::Gps,
                )
            } else {
                (
                    f64::from(u32::try_from(rng.range(300, 1500)).unwrap_or(500)),
                    LocationSource::Cell,
                )
            };
            let mut m = start;
            while m <= start + len {
                mine.push(b.ping(phone, m, b.places.at(venue), accuracy, source)?);
                m += rng.range(3, 13);
            }
            if matches!(venue, Venue::Restaurant | Venue::Bar) && rng.chance(30) {
                let mcc = if matches!(venue, Venue::Restaurant) {
                    5812
                } else {
                    5813
                };
                mine.push(b.card(card, start, venue, mcc)?);
            }
            if matches!(venue, Venue::Club) && rng.chance(30) {
                mine.push(FeedRecord::Checkin(VenueCheckin {
                    subject: phone,
                    venue_id: VenueId::new("club-itaewon")?,
                    position: b.places.club,
                    observed_at: at(start)?,
                    checkout_at: Some(at(start + len)?),
                }));
            }
        }
        // A provider delivers a subscriber's records in time order.
        mine.sort_by_key(FeedRecord::observed_at);
        if i % 5 == 0 {
            late.extend(mine);
        } else {
            trail.extend(mine);
        }
    }

    let case = |id: &str,
                subjects: Vec<SubjectId>,
                status: CaseStatus|
     -> Result<CaseEvent, ModelError> {
        Ok(CaseEvent {
            case_id: CaseId::new(id)?,
            subjects,
            confirmed_at: at(3 * 24 * 60)?,
            symptom_onset: Some(at(2 * 24 * 60)?),
            infectious_from: EventTime::from_millis("infectious_from", NIGHT_START_MS - DAY_MS)?,
            infectious_until: None,
            status,
            region: None,
        })
    };
    let infected_at_the_club = |id: &str, phone: SubjectId| -> Result<CaseEvent, ModelError> {
        Ok(CaseEvent {
            confirmed_at: at(4 * 24 * 60)?,
            symptom_onset: Some(at(3 * 24 * 60)?),
            infectious_from: at(24 * 60)?,
            ..case(id, vec![phone], CaseStatus::Confirmed)?
        })
    };
    let cases = vec![
        case("KR-2020-0501", vec![p1, c1], CaseStatus::Confirmed)?,
        case("KR-2020-0502", vec![p2], CaseStatus::Confirmed)?,
        case("KR-2020-0502", vec![p2], CaseStatus::Retracted)?,
        infected_at_the_club("KR-2020-0503", p3)?,
        infected_at_the_club("KR-2020-0504", p4)?,
    ];

    let malformed = malformed(&b)?;
    Ok(Scenario {
        trail,
        cases,
        late,
        malformed,
    })
}

fn malformed(b: &Builder) -> Result<Vec<Malformed>, ModelError> {
    let who = subject(9, 9);
    let key = who.as_bytes().to_vec();
    let ping = |lat: f64, min: i64| -> Result<Vec<u8>, ModelError> {
        let FeedRecord::Ping(mut p) = b.ping(who, min, b.places.club, 10.0, LocationSource::Gps)?
        else {
            return Err(ModelError::InvalidRecord {
                field: "scenario",
                reason: "not a ping",
            });
        };
        p.position = LatLng::new(lat, p.position.lng())?;
        encode_single_object(&p)
    };
    let good = ping(12.5, 100)?;

    let truncated = good[..good.len() / 2].to_vec();
    let mut unknown_fingerprint = good.clone();
    unknown_fingerprint[2..10].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]);
    // Same record with the latitude's eight bytes replaced by a NaN.
    let sentinel = 12.5f64.to_le_bytes();
    let mut nan = good;
    if let Some(pos) = nan.windows(8).position(|w| w == sentinel) {
        nan[pos..pos + 8].copy_from_slice(&f64::NAN.to_le_bytes());
    }
    let future = {
        let FeedRecord::Ping(mut p) = b.ping(who, 0, b.places.club, 10.0, LocationSource::Gps)?
        else {
            return Err(ModelError::InvalidRecord {
                field: "scenario",
                reason: "not a ping",
            });
        };
        p.observed_at = EventTime::from_millis("observed_at", 4_070_908_800_000)?; // 2099-01-01
        encode_single_object(&p)?
    };
    Ok(vec![
        Malformed {
            topic: TELECOM,
            key: key.clone(),
            payload: truncated,
            reason: "truncated",
        },
        Malformed {
            topic: TELECOM,
            key: key.clone(),
            payload: unknown_fingerprint,
            reason: "unknown_fingerprint",
        },
        Malformed {
            topic: TELECOM,
            key: key.clone(),
            payload: nan,
            reason: "invalid_latitude",
        },
        Malformed {
            topic: TELECOM,
            key: key.clone(),
            payload: future,
            reason: "timestamp_in_future",
        },
        Malformed {
            topic: CARD,
            key,
            payload: b"not avro".to_vec(),
            reason: "bad_magic",
        },
    ])
}

#[cfg(test)]
mod tests {
    use epitrace_model::codec::{DecodeOptions, decode_single_object};

    use super::*;

    #[test]
    fn deterministic_and_shaped_as_documented() {
        let a = nightlife(60, 7).unwrap();
        let b = nightlife(60, 7).unwrap();
        assert_eq!(a.trail, b.trail);
        assert_eq!(a.late, b.late);
        assert_ne!(nightlife(60, 8).unwrap().trail, a.trail);
        assert!(!a.late.is_empty());
        let live: Vec<String> = a
            .live_cases()
            .iter()
            .map(|c| c.case_id.to_string())
            .collect();
        assert_eq!(live, ["KR-2020-0501", "KR-2020-0503", "KR-2020-0504"]);
        assert_eq!(a.cases.len(), 5);
    }

    #[test]
    fn malformed_records_fail_with_their_reason() {
        let s = nightlife(1, 1).unwrap();
        let now = EventTime::from_millis("now", 1_795_000_000_000).unwrap(); // 2026
        for m in &s.malformed {
            let err = decode_single_object::<LocationPing>(&m.payload, &DecodeOptions::at(now))
                .expect_err(m.reason);
            assert_eq!(err.reason_code(), m.reason, "{err}");
        }
    }
}
