//! Approvals gate tracing, through the whole topology in memory
//! (`TopologyDriver`): a case without approvals is traced from nothing; a
//! CARD approval publishes the exposures its card records support; a
//! LOCATION approval read later adds the tower and GPS ones, computed from
//! the stored state; its expiry in event time, or its revocation, retracts
//! them again. Every step is checked against the brute-force oracle run on
//! the case's records of the open categories only, and the timelines
//! against the visits of a run with every category open, restricted to the
//! open ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use epitrace_core::testkit::{CaseSpec, oracle};
use epitrace_core::{Category, Ingest, TracingConfig};
use epitrace_engine::TopologyDriver;
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{
    CaseEvent, CaseStatus, DataAccessApproval, DataCategory, Exposure, ExposureStatus,
    ObservationSource, Visit,
};
use epitrace_model::topics::{APPROVALS, CASES, EXPOSURES, TIMELINES};
use epitrace_model::{CaseId, EventTime, SubjectId, Text};
use epitrace_processors::PipelineConfig;
use epitrace_processors::registry::test_driver;
use epitrace_sim::{Scenario, nightlife};

/// The wall clock the processors see (2026-11-18).
const NOW_MS: i64 = 1_795_000_000_000;
const DAY_MS: i64 = 86_400_000;

type Pairs = Vec<((CaseId, SubjectId), i64)>;

fn live(driver: &TopologyDriver) -> Pairs {
    let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
    for r in driver.read(EXPOSURES) {
        let e: Exposure =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        latest.insert((e.case_id.clone(), e.contact), e);
    }
    latest
        .into_iter()
        .filter(|(_, e)| e.status != ExposureStatus::Retracted)
        .map(|(k, e)| (k, i64::from(e.cumulative_s)))
        .collect()
}

/// The live visits: id → the category of its sources.
fn visits(driver: &TopologyDriver) -> BTreeMap<String, Category> {
    let mut latest: BTreeMap<String, Visit> = BTreeMap::new();
    for r in driver.read(TIMELINES) {
        let v: Visit =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        latest.insert(v.visit_id.as_str().to_owned(), v);
    }
    latest
        .into_iter()
        .filter(|(_, v)| !v.retracted)
        .map(|(id, v)| {
            let category = match v.sources.first() {
                Some(ObservationSource::Card) => Category::Card,
                Some(ObservationSource::Checkin) => Category::Checkin,
                _ => Category::Location,
            };
            (id, category)
        })
        .collect()
}

/// The visits of `all` whose category is open.
fn open_visits(all: &BTreeMap<String, Category>, open: &[Category]) -> BTreeMap<String, Category> {
    all.iter()
        .filter(|(_, c)| open.contains(c))
        .map(|(id, c)| (id.clone(), *c))
        .collect()
}

/// The oracle on the population's records and the cases' records of the
/// `open` categories only.
fn expected(s: &Scenario, cfg: &TracingConfig, open: &[Category]) -> Pairs {
    let ingest = Ingest::new(cfg);
    let obs: Vec<_> = s.feed().map(|r| r.observation(&ingest)).collect();
    let specs: Vec<CaseSpec> = s.live_cases().iter().map(CaseSpec::from_event).collect();
    oracle::exposures_approved(&obs, &specs, cfg, open)
        .into_iter()
        .map(|(k, e)| (k, e.cumulative_ms / 1000))
        .collect()
}

fn approval(case: &CaseId, category: DataCategory, at: i64, until: i64) -> DataAccessApproval {
    DataAccessApproval {
        case_id: case.clone(),
        category,
        authority: Text::new("authority", "test authority").unwrap(),
        reference: Text::new("reference", format!("{}-{category:?}", case.as_str())).unwrap(),
        approved_at: EventTime::from_millis("t", at).unwrap(),
        expires_at: EventTime::from_millis("t", until).unwrap(),
    }
}

fn pipe_approvals(driver: &mut TopologyDriver, approvals: &[DataAccessApproval]) {
    for a in approvals {
        let payload = encode_single_object(a).unwrap();
        driver.pipe(
            APPROVALS,
            Some(a.case_id.as_str().as_bytes()),
            Some(&payload),
        );
    }
    driver.run().unwrap();
}

/// Cases of their own, confirmed at `at_ms`, on every partition: they move
/// each partition's event time (the clock approvals lapse on).
fn advance_clock(driver: &mut TopologyDriver, at_ms: i64, tag: u8) {
    for n in 0..32u8 {
        let e = CaseEvent {
            case_id: CaseId::new(format!("KR-CLOCK-{tag}-{n}")).unwrap(),
            subjects: vec![SubjectId::from_bytes([0xe0 ^ n; 16])],
            confirmed_at: EventTime::from_millis("t", at_ms).unwrap(),
            symptom_onset: None,
            infectious_from: EventTime::from_millis("t", at_ms - DAY_MS).unwrap(),
            infectious_until: None,
            status: CaseStatus::Confirmed,
            region: None,
        };
        let payload = encode_single_object(&e).unwrap();
        driver.pipe(CASES, Some(e.case_id.as_str().as_bytes()), Some(&payload));
    }
    driver.run().unwrap();
}

fn scenario_run(cfg: &PipelineConfig, s: &Scenario) -> TopologyDriver {
    let mut driver = test_driver(cfg, NOW_MS).unwrap();
    driver.set_batch_size(50);
    for r in s.trail.iter() {
        driver.pipe(r.topic(), Some(&r.key()), Some(&r.encode().unwrap()));
    }
    for c in &s.cases {
        let payload = encode_single_object(c).unwrap();
        driver.pipe(CASES, Some(c.case_id.as_str().as_bytes()), Some(&payload));
    }
    for r in s.late.iter() {
        driver.pipe(r.topic(), Some(&r.key()), Some(&r.encode().unwrap()));
    }
    driver.run().unwrap();
    driver
}

#[test]
fn approvals_per_category_gate_exposures_and_late_ones_lose_nothing() {
    let cfg = PipelineConfig::default();
    let tracing = &cfg.tracing;
    let s = nightlife(80, 11).unwrap();
    let cases: Vec<CaseId> = s.live_cases().iter().map(|c| c.case_id.clone()).collect();
    // The aggregator's event time: the latest overlap or confirmation.
    let latest_event = s
        .feed()
        .map(|r| r.observation(&Ingest::new(tracing)).1.end().as_millis())
        .chain(s.cases.iter().map(|c| c.confirmed_at.as_millis()))
        .max()
        .unwrap();
    let mut driver = scenario_run(&cfg, &s);
    // The timelines with every category open, for reference.
    let mut open_cfg = PipelineConfig::default();
    open_cfg.tracing.approvals.open_by_default = Category::ALL.to_vec();
    let all_visits = visits(&scenario_run(&open_cfg, &s));
    for c in Category::ALL {
        if c != Category::Checkin {
            assert!(all_visits.values().any(|v| *v == c), "no {c} visit");
        }
    }

    // Pending: nothing approved, nothing traced.
    assert_eq!(live(&driver), Pairs::new(), "exposures without approval");
    assert_eq!(visits(&driver), BTreeMap::new(), "visits without approval");
    let all = expected(&s, tracing, &Category::ALL);
    let card = expected(&s, tracing, &[Category::Card]);
    let card_location = expected(&s, tracing, &[Category::Card, Category::Location]);
    assert!(
        !card.is_empty() && card.len() < card_location.len(),
        "the scenario tells the categories apart"
    );

    // CARD: card evidence only.
    let far = latest_event + 30 * DAY_MS;
    let cards: Vec<_> = cases
        .iter()
        .map(|c| approval(c, DataCategory::Card, latest_event, far))
        .collect();
    pipe_approvals(&mut driver, &cards);
    assert_eq!(live(&driver), card, "CARD approved");
    let card_visits = open_visits(&all_visits, &[Category::Card]);
    assert_eq!(visits(&driver), card_visits, "CARD visits");
    let card_location_visits = open_visits(&all_visits, &[Category::Card, Category::Location]);

    // LOCATION, later: the tower and GPS exposures appear from stored state.
    let lapse = latest_event + 2 * DAY_MS;
    let locations: Vec<_> = cases
        .iter()
        .map(|c| approval(c, DataCategory::Location, latest_event, lapse))
        .collect();
    pipe_approvals(&mut driver, &locations);
    assert_eq!(live(&driver), card_location, "CARD and LOCATION approved");
    assert_eq!(
        visits(&driver),
        card_location_visits,
        "CARD and LOCATION visits"
    );

    // The LOCATION approval lapses in event time: back to card evidence.
    advance_clock(&mut driver, lapse + DAY_MS, 1);
    assert_eq!(live(&driver), card, "LOCATION lapsed");
    assert_eq!(visits(&driver), card_visits, "LOCATION visits lapsed");

    // Approved again, then revoked (the reference posted with an expiry
    // already past): in, then out again.
    let again: Vec<_> = cases
        .iter()
        .map(|c| {
            approval(
                c,
                DataCategory::Location,
                lapse + DAY_MS,
                lapse + 20 * DAY_MS,
            )
        })
        .collect();
    pipe_approvals(&mut driver, &again);
    assert_eq!(live(&driver), card_location, "LOCATION approved again");
    assert_eq!(
        visits(&driver),
        card_location_visits,
        "LOCATION visits again"
    );
    let revoked: Vec<_> = cases
        .iter()
        .map(|c| approval(c, DataCategory::Location, lapse, lapse + DAY_MS / 2))
        .collect();
    pipe_approvals(&mut driver, &revoked);
    assert_eq!(live(&driver), card, "LOCATION revoked");
    assert_eq!(visits(&driver), card_visits, "LOCATION visits revoked");

    // Everything approved: the ungated rule.
    let rest: Vec<_> = cases
        .iter()
        .flat_map(|c| {
            [DataCategory::Location, DataCategory::Checkin]
                .map(|k| approval(c, k, lapse + DAY_MS, lapse + 20 * DAY_MS))
        })
        .collect();
    pipe_approvals(&mut driver, &rest);
    assert_eq!(live(&driver), all, "every category approved");
    assert_eq!(visits(&driver), all_visits, "every visit");
}

#[test]
fn a_deployment_may_open_a_category_by_default() {
    // The scenario's cases have no check-in contacts; card payments stand
    // in for a category the law opens without an approval.
    let mut cfg = PipelineConfig::default();
    cfg.tracing.approvals.open_by_default = vec![Category::Card];
    let s = nightlife(80, 11).unwrap();
    let mut driver = scenario_run(&cfg, &s);
    let want = expected(&s, &cfg.tracing, &[Category::Card]);
    assert!(!want.is_empty(), "the scenario has card exposures");
    assert_eq!(live(&driver), want, "CARD open by default");
    // An approval adds to the defaults.
    let cases: Vec<CaseId> = s.live_cases().iter().map(|c| c.case_id.clone()).collect();
    let far = NOW_MS - DAY_MS;
    let locations: Vec<_> = cases
        .iter()
        .map(|c| approval(c, DataCategory::Location, far - DAY_MS, far))
        .collect();
    pipe_approvals(&mut driver, &locations);
    let want = expected(&s, &cfg.tracing, &[Category::Card, Category::Location]);
    assert_eq!(live(&driver), want, "CARD by default and LOCATION approved");
}
