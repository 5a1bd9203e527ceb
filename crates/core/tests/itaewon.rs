//! A hand-computed scenario from feed records, modelled on the Itaewon club
//! investigation: a patient's tower pings at a club, a restaurant card
//! payment inside the tower's footprint, a venue check-in, near misses, a case
//! confirmed after its trail was ingested, and population pings that arrive
//! after the case. Expected figures are worked out by hand below, and the
//! oracle must agree.

// Helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used)]

use epitrace_core::testkit::pipeline::MemoryPipeline;
use epitrace_core::testkit::{CaseSpec, Input, oracle};
use epitrace_core::{Ingest, Observation, TracingConfig};
use epitrace_model::records::{
    CardTransaction, CaseEvent, CaseStatus, LocationPing, LocationSource, VenueCheckin,
};
use epitrace_model::time::MINUTE_MS;
use epitrace_model::{
    AccuracyM, CaseId, EventTime, LatLng, Mcc, MerchantId, ProviderId, SubjectId, VenueId,
};
use h3o::Resolution;

/// 2020-05-02T00:00:00Z.
const BASE: i64 = 1_588_377_600_000;

fn at(min: i64) -> EventTime {
    EventTime::from_millis("t", BASE + min * MINUTE_MS).unwrap()
}
fn who(i: u8) -> SubjectId {
    SubjectId::from_bytes([i; 16])
}
/// The club: the centre of the res-8 cell around Itaewon station, so that
/// finer cells of the same point nest inside it.
fn club() -> LatLng {
    LatLng::new(37.5344, 126.9946)
        .unwrap()
        .to_cell(Resolution::Eight)
        .center()
}
fn ping(subject: u8, min: i64, pos: LatLng, accuracy: f64, source: LocationSource) -> LocationPing {
    LocationPing {
        subject: who(subject),
        provider: ProviderId::new("telco-a").unwrap(),
        observed_at: at(min),
        position: pos,
        accuracy: AccuracyM::new(accuracy).unwrap(),
        source,
        site_id: None,
    }
}
fn card(subject: u8, min: i64, mcc: i64) -> CardTransaction {
    CardTransaction {
        subject: who(subject),
        issuer: ProviderId::new("card-b").unwrap(),
        merchant_id: MerchantId::new("m-1").unwrap(),
        mcc: Mcc::new(mcc).unwrap(),
        position: club(),
        accuracy: AccuracyM::new(20.0).unwrap(),
        observed_at: at(min),
    }
}

#[test]
fn itaewon_by_hand() {
    let cfg = TracingConfig::default();
    let ingest = Ingest::new(&cfg);
    let far = LatLng::new(37.5520, 126.9880).unwrap(); // ~2 km north
    let mut trail: Vec<(SubjectId, Observation)> = Vec::new();

    // Patient, phone pseudonym 1: tower pings (500 m → res 8) every 10 min,
    // 00:00–03:00 → one segment [00:00, 03:00).
    for m in (0..=180).step_by(10) {
        trail.push(ingest.ping(&ping(1, m, club(), 500.0, LocationSource::Cell)));
    }
    // Patient, card pseudonym 7: a bar payment (MCC 5813 → 90 min) at 00:30.
    trail.push(ingest.card(&card(7, 30, 5813)));
    // A: restaurant payment (5812 → 45 min) at 01:00 inside the tower's
    // footprint: [01:00, 01:45) overlaps both patient segments; the union
    // counts it once → 45 min.
    trail.push(ingest.card(&card(2, 60, 5812)));
    // B: check-in 02:30, checkout 04:00 → overlap [02:30, 03:00) = 30 min.
    trail.push(ingest.checkin(&VenueCheckin {
        subject: who(3),
        venue_id: VenueId::new("club-x").unwrap(),
        position: club(),
        observed_at: at(150),
        checkout_at: Some(at(240)),
    }));
    // C: 10 minutes at the club (GPS) → below 15 min.
    for m in [0, 10] {
        trail.push(ingest.ping(&ping(4, m, club(), 10.0, LocationSource::Gps)));
    }
    // D: three hours 2 km away → not co-located.
    for m in (0..=180).step_by(10) {
        trail.push(ingest.ping(&ping(5, m, far, 10.0, LocationSource::Gps)));
    }
    // E: at the club after the patient left → no overlap.
    for m in (300..=360).step_by(10) {
        trail.push(ingest.ping(&ping(6, m, club(), 500.0, LocationSource::Cell)));
    }

    let case = CaseEvent {
        case_id: CaseId::new("KR-2020-0501").unwrap(),
        subjects: vec![who(1), who(7)],
        confirmed_at: at(3 * 24 * 60),
        symptom_onset: Some(at(24 * 60)),
        infectious_from: at(-24 * 60),
        infectious_until: None,
        status: CaseStatus::Confirmed,
        region: None,
    };
    let spec = CaseSpec::from_event(&case);

    // F's pings (00:20–00:50, Wi-Fi) arrive after the case was confirmed.
    let late: Vec<(SubjectId, Observation)> = (20..=50)
        .step_by(10)
        .map(|m| ingest.ping(&ping(8, m, club(), 30.0, LocationSource::Wifi)))
        .collect();

    let mut p = MemoryPipeline::new(cfg.clone());
    for (subject, obs) in &trail {
        p.push(Input::Observation {
            subject: *subject,
            obs: *obs,
        });
    }
    p.push(Input::Case(spec.clone()));
    for (subject, obs) in &late {
        p.push(Input::Observation {
            subject: *subject,
            obs: *obs,
        });
    }

    let got: Vec<(SubjectId, i64)> = p
        .exposures()
        .iter()
        .map(|((_, contact), a)| (*contact, a.cumulative_ms / MINUTE_MS))
        .collect();
    assert_eq!(got, vec![(who(2), 45), (who(3), 30), (who(8), 30)]);

    let all: Vec<_> = trail.iter().chain(&late).copied().collect();
    let by_oracle: Vec<(SubjectId, i64)> = oracle::exposures(&all, &[spec], &cfg)
        .iter()
        .map(|((_, contact), e)| (*contact, e.cumulative_ms / MINUTE_MS))
        .collect();
    assert_eq!(by_oracle, got);

    // Retracting the case withdraws every exposure.
    p.push(Input::Retract(case.case_id));
    assert!(p.exposures().is_empty());
}
