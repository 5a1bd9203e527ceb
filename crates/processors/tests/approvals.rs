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
use epitrace_core::{Category, Footprinter, Ingest, TracingConfig};
use epitrace_engine::TopologyDriver;
use epitrace_model::codec::{DecodeOptions, decode_single_object, encode_single_object};
use epitrace_model::records::{
    CaseEvent, CaseStatus, DataAccessApproval, DataCategory, Exposure, ExposureStatus,
    InterviewEntry, ObservationSource, Visit,
};
use epitrace_model::topics::{APPROVALS, CASES, EXPOSURES, INTERVIEWS, TIMELINES};
use epitrace_model::{AccuracyM, CaseId, EventTime, SubjectId, Text};
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
        // No check-in contacts in this scenario; interview places are no
        // visits.
        if c != Category::Checkin && c != Category::Interview {
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

fn pipe_statements(driver: &mut TopologyDriver, entries: &[InterviewEntry]) {
    for e in entries {
        let payload = encode_single_object(e).unwrap();
        driver.pipe(
            INTERVIEWS,
            Some(e.case_id.as_str().as_bytes()),
            Some(&payload),
        );
    }
    driver.run().unwrap();
}

/// The live exposures themselves.
fn live_exposures(driver: &TopologyDriver) -> BTreeMap<(CaseId, SubjectId), Exposure> {
    let mut latest: BTreeMap<(CaseId, SubjectId), Exposure> = BTreeMap::new();
    for r in driver.read(EXPOSURES) {
        let e: Exposure =
            decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap();
        latest.insert((e.case_id.clone(), e.contact), e);
    }
    latest.retain(|_, e| e.status != ExposureStatus::Retracted);
    latest
}

/// The oracle with the entries' stated stays as the cases' own segments
/// (the stated place's footprint, as the pipeline places any position).
fn expected_with(
    s: &Scenario,
    cfg: &TracingConfig,
    open: &[Category],
    entries: &[InterviewEntry],
) -> Pairs {
    let ingest = Ingest::new(cfg);
    let fp = Footprinter::new(&cfg.footprint);
    let obs: Vec<_> = s.feed().map(|r| r.observation(&ingest)).collect();
    let specs: Vec<CaseSpec> = s.live_cases().iter().map(CaseSpec::from_event).collect();
    let stated: Vec<(CaseId, oracle::OracleSegment)> = entries
        .iter()
        .filter(|e| !e.retracted)
        .map(|e| {
            let seg = oracle::OracleSegment {
                cell: fp.cell(e.position, AccuracyM::new(e.radius_m).unwrap()),
                start: e.start.as_millis(),
                end: e.end.as_millis(),
            };
            (e.case_id.clone(), seg)
        })
        .collect();
    oracle::exposures_approved_with_statements(&obs, &specs, cfg, open, &stated)
        .into_iter()
        .map(|(k, e)| (k, e.cumulative_ms / 1000))
        .collect()
}

#[test]
fn interview_places_find_contacts_without_the_patients_records() {
    let cfg = PipelineConfig::default();
    let tracing = &cfg.tracing;
    let s = nightlife(80, 11).unwrap();
    let cases: Vec<CaseId> = s.live_cases().iter().map(|c| c.case_id.clone()).collect();
    let far = NOW_MS - DAY_MS;
    let data = [
        DataCategory::Location,
        DataCategory::Card,
        DataCategory::Checkin,
    ];
    let approvals: Vec<_> = cases
        .iter()
        .flat_map(|c| data.map(|k| approval(c, k, far - 30 * DAY_MS, far)))
        .collect();
    let records = [Category::Location, Category::Card, Category::Checkin];
    let mut driver = scenario_run(&cfg, &s);
    pipe_approvals(&mut driver, &approvals);
    let base = expected(&s, tracing, &records);
    assert_eq!(live(&driver), base, "the records alone");

    // Stated, not yet approved: the statements wait.
    let entries = s.statements(&Ingest::new(tracing), 4);
    assert_eq!(
        entries.len(),
        4,
        "the scenario has population stays to state"
    );
    pipe_statements(&mut driver, &entries);
    assert_eq!(live(&driver), base, "INTERVIEW not approved");

    // INTERVIEW approved for the first case: its stated places are traced.
    let interview = approval(&cases[0], DataCategory::Interview, far - 30 * DAY_MS, far);
    pipe_approvals(&mut driver, std::slice::from_ref(&interview));
    let all = [
        Category::Location,
        Category::Card,
        Category::Checkin,
        Category::Interview,
    ];
    let with = expected_with(&s, tracing, &all, &entries);
    assert_eq!(live(&driver), with, "INTERVIEW approved");
    let found_by_statement: Vec<_> = with
        .iter()
        .filter(|(k, _)| !base.iter().any(|(b, _)| b == k))
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        !found_by_statement.is_empty(),
        "statements find contacts the records do not"
    );
    println!(
        "exposures from the records: {}; with 4 statements of {}: {} ({} found by them)",
        base.len(),
        cases[0].as_str(),
        with.len(),
        found_by_statement.len()
    );
    let exposures = live_exposures(&driver);
    for k in &found_by_statement {
        assert!(
            exposures[k].evidence.contains(&DataCategory::Interview),
            "an exposure a statement completes names it: {:?}",
            exposures[k].evidence
        );
    }
    assert!(
        found_by_statement
            .iter()
            .any(|k| exposures[k].evidence == [DataCategory::Interview]),
        "some contact is found from the statements alone"
    );
    for e in exposures.values() {
        if e.evidence == [DataCategory::Interview] {
            assert!(
                e.risk.get() <= 0.5,
                "a statement alone ranks below the records: risk {}",
                e.risk.get()
            );
        }
    }
    // The case's own records still say where they come from.
    assert!(
        exposures
            .values()
            .filter(|e| e.case_id == cases[0])
            .any(|e| e.evidence.contains(&DataCategory::Location)
                || e.evidence.contains(&DataCategory::Card)),
        "record-based exposures name their categories"
    );

    // A statement withdrawn: what only it supported is retracted.
    let mut withdrawn = entries.clone();
    for e in &mut withdrawn {
        e.retracted = true;
    }
    pipe_statements(&mut driver, &withdrawn[..2]);
    let with_two = expected_with(
        &s,
        tracing,
        &all,
        &withdrawn[..2]
            .iter()
            .chain(&entries[2..])
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(live(&driver), with_two, "two statements withdrawn");

    // Stated and approved before the case is even confirmed: the same
    // outcome once it is (the entries wait in the case-router's store).
    let mut early = test_driver(&cfg, NOW_MS).unwrap();
    early.set_batch_size(50);
    pipe_statements(&mut early, &entries);
    pipe_approvals(&mut early, &approvals);
    pipe_approvals(&mut early, std::slice::from_ref(&interview));
    for r in s.trail.iter().chain(s.late.iter()) {
        early.pipe(r.topic(), Some(&r.key()), Some(&r.encode().unwrap()));
    }
    for c in &s.cases {
        let payload = encode_single_object(c).unwrap();
        early.pipe(CASES, Some(c.case_id.as_str().as_bytes()), Some(&payload));
    }
    early.run().unwrap();
    assert_eq!(live(&early), with, "statements before the case");

    // The case retracted: its statements go with it.
    let mut retracted = s.live_cases()[0].clone();
    retracted.status = CaseStatus::Retracted;
    let payload = encode_single_object(&retracted).unwrap();
    early.pipe(
        CASES,
        Some(retracted.case_id.as_str().as_bytes()),
        Some(&payload),
    );
    early.run().unwrap();
    assert!(
        live(&early).iter().all(|((c, _), _)| *c != cases[0]),
        "a retracted case keeps no exposure"
    );
}
