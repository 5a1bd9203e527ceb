//! Each processor's contract, checked on its own topics through the
//! engine's `TopologyDriver` (the whole registered topology in memory,
//! through the production batch step), on the nightlife scenario: keys and
//! partitions of what each processor writes, what it keeps in its stores,
//! and what it refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use epitrace_engine::TopologyDriver;
use epitrace_engine::driver::StoredRecord;
use epitrace_engine::partition::partition_for;
use epitrace_model::codec::{
    AvroRecord, DecodeOptions, decode_single_object, encode_single_object,
};
use epitrace_model::records::{
    ClusterAlert, ClusterStatus, DeadLetter, Exposure, ExposureCandidate, ExposureStatus,
    SegmentUpdate, SubjectCase, Visit,
};
use epitrace_model::topics::{
    APPROVALS, CANDIDATES, CASES, CASES_BY_SUBJECT, CLUSTER_EVIDENCE, CLUSTERS, DEADLETTER,
    EXPOSURES, SEGMENTS, TIMELINES,
};
use epitrace_model::{CaseId, SubjectId};
use epitrace_processors::PipelineConfig;
use epitrace_processors::registry::{REGISTRY, test_driver};
use epitrace_sim::{Scenario, nightlife};

const NOW_MS: i64 = 1_795_000_000_000;

fn decode<T: AvroRecord>(r: &StoredRecord) -> T {
    decode_single_object(r.payload.as_deref().unwrap(), &DecodeOptions::default()).unwrap()
}

/// The scenario piped into the feeds and cases, the topology run dry.
fn run(scenario: &Scenario) -> TopologyDriver {
    let mut driver = test_driver(&PipelineConfig::default(), NOW_MS).unwrap();
    driver.set_batch_size(64);
    for r in scenario.trail.iter().chain(&scenario.late) {
        driver.pipe(r.topic(), Some(&r.key()), Some(&r.encode().unwrap()));
    }
    for c in &scenario.cases {
        let payload = encode_single_object(c).unwrap();
        driver.pipe(CASES, Some(c.case_id.as_str().as_bytes()), Some(&payload));
    }
    for a in scenario.approvals() {
        let payload = encode_single_object(&a).unwrap();
        driver.pipe(
            APPROVALS,
            Some(a.case_id.as_str().as_bytes()),
            Some(&payload),
        );
    }
    for m in &scenario.malformed {
        driver.pipe(m.topic, Some(&m.key), Some(&m.payload));
    }
    // What the first case told the investigators: an hour where its first
    // record was.
    let case = &scenario.cases[0];
    let ingest = epitrace_core::Ingest::new(&PipelineConfig::default().tracing);
    if let Some((_, o)) = scenario
        .feed()
        .map(|r| r.observation(&ingest))
        .find(|(subject, _)| case.subjects.contains(subject))
    {
        let entry = epitrace_model::records::InterviewEntry {
            case_id: case.case_id.clone(),
            entry_id: epitrace_model::EntryId::new("stated-1").unwrap(),
            position: o.cell.center(),
            radius_m: 50.0,
            start: o.time,
            end: o.time.saturating_add_ms(3_600_000),
            label: None,
            recorded_by: epitrace_model::ActorId::new("kim").unwrap(),
            recorded_at: o.time,
            retracted: false,
        };
        let payload = encode_single_object(&entry).unwrap();
        driver.pipe(
            epitrace_model::topics::INTERVIEWS,
            Some(case.case_id.as_str().as_bytes()),
            Some(&payload),
        );
    }
    driver.run().unwrap();
    driver
}

fn scenario() -> Scenario {
    nightlife(60, 3).unwrap()
}

#[test]
fn every_processor_consumed_all_of_its_input_partitions() {
    let s = scenario();
    let driver = run(&s);
    for spec in REGISTRY {
        let store = driver.store(spec.name()).unwrap();
        for topic in spec.inputs {
            let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
            for r in driver.read(topic) {
                ends.insert(r.partition, r.offset + 1);
            }
            for (p, end) in ends {
                assert_eq!(
                    store.offset(topic, p).unwrap(),
                    Some(end),
                    "{} on {topic}/{p}",
                    spec.name()
                );
            }
        }
    }
}

#[test]
fn case_router_fans_a_case_out_to_its_subjects_co_partitioned_with_their_feeds() {
    let s = scenario();
    let driver = run(&s);
    let routed: Vec<(SubjectCase, i32, Vec<u8>)> = driver
        .read(CASES_BY_SUBJECT)
        .into_iter()
        .map(|r| (decode(r), r.partition, r.key.clone().unwrap()))
        .collect();
    // Every case event, and again on each approval of a case not retracted
    // (the approvals are piped after the cases).
    let approvals = s.approvals();
    let want: usize = s.cases.iter().map(|c| c.subjects.len()).sum::<usize>()
        + s.live_cases()
            .iter()
            .map(|c| c.subjects.len() * approvals.iter().filter(|a| a.case_id == c.case_id).count())
            .sum::<usize>();
    assert_eq!(routed.len(), want);
    assert!(
        routed.iter().any(|(sc, _, _)| sc.approvals.len() == 3),
        "the approvals go with the case"
    );
    // Where a feed put the subject's records, there its case tag goes.
    let feed_partition: BTreeMap<Vec<u8>, i32> = s
        .trail
        .iter()
        .map(|r| (r.key(), partition_for(&r.key(), 4)))
        .collect();
    for (sc, partition, key) in &routed {
        assert_eq!(key.as_slice(), sc.subject.as_bytes());
        if let Some(p) = feed_partition.get(key) {
            assert_eq!(partition, p, "co-partitioned with the feeds");
        }
        assert!(s.cases.iter().any(|c| c.case_id == sc.case_id));
    }
}

#[test]
fn segmenter_keys_segments_by_their_cell_and_times_timelines_for_case_subjects_only() {
    let s = scenario();
    let driver = run(&s);
    let updates: Vec<(SegmentUpdate, Vec<u8>)> = driver
        .read(SEGMENTS)
        .into_iter()
        .map(|r| (decode(r), r.key.clone().unwrap()))
        .collect();
    assert!(!updates.is_empty());
    for (u, key) in &updates {
        let res6 = u.partition_key(h3o::Resolution::Six).unwrap();
        assert_eq!(key.as_slice(), res6.as_slice(), "keyed by the res-6 cell");
    }
    let case_subjects: BTreeSet<SubjectId> = s
        .cases
        .iter()
        .flat_map(|c| c.subjects.iter().copied())
        .collect();
    let visits: Vec<(Visit, Vec<u8>)> = driver
        .read(TIMELINES)
        .into_iter()
        .map(|r| (decode(r), r.key.clone().unwrap()))
        .collect();
    assert!(!visits.is_empty());
    for (v, key) in &visits {
        assert_eq!(key.as_slice(), v.case_id.as_str().as_bytes());
        assert!(
            case_subjects.contains(&v.subject),
            "a timeline of a case subject"
        );
    }
    // Trails are kept per subject and feed; tags only for live case
    // subjects.
    let store = driver.store("segmenter").unwrap();
    let trails = store.scan("trails", &[], &[0xff; 18]).unwrap();
    assert!(trails.iter().all(|(k, _)| k.len() == 17));
    let tagged: BTreeSet<Vec<u8>> = store
        .scan("tags", &[], &[0xff; 64])
        .unwrap()
        .into_iter()
        .map(|(k, _)| k[..16].to_vec())
        .collect();
    // (A retracted case's subjects lose their tags.)
    let want: BTreeSet<Vec<u8>> = s
        .live_cases()
        .iter()
        .flat_map(|c| c.subjects.iter().map(|s| s.as_bytes().to_vec()))
        .collect();
    assert_eq!(tagged, want);
}

#[test]
fn presence_join_pairs_a_case_segment_with_other_subjects_only() {
    let s = scenario();
    let driver = run(&s);
    let candidates: Vec<(ExposureCandidate, Vec<u8>)> = driver
        .read(CANDIDATES)
        .into_iter()
        .map(|r| (decode(r), r.key.clone().unwrap()))
        .collect();
    assert!(!candidates.is_empty());
    let cases: BTreeMap<CaseId, Vec<SubjectId>> = s
        .cases
        .iter()
        .map(|c| (c.case_id.clone(), c.subjects.clone()))
        .collect();
    // The latest version of each pair: a pair of a case with one of its
    // own pseudonyms may be sent while that pseudonym's segments are not
    // yet tagged with the case (a stated place reaches the join before the
    // case's card segments are re-sent tagged), but it is withdrawn then.
    let mut latest = BTreeMap::new();
    for (c, key) in &candidates {
        assert_eq!(
            key.as_slice(),
            c.case_id.as_str().as_bytes(),
            "keyed by case"
        );
        let subjects = &cases[&c.case_id];
        assert!(subjects.contains(&c.case_subject));
        let pair = (
            c.case_id.clone(),
            c.case_subject,
            c.case_segment,
            c.contact,
            c.contact_segment,
        );
        latest.insert(pair, c.overlap.is_some());
    }
    for ((case, _, _, contact, _), live) in latest {
        assert!(
            !(live && cases[&case].contains(&contact)),
            "a case is not its own contact"
        );
    }
}

#[test]
fn exposure_aggregator_keys_exposures_by_contact_with_one_live_version_per_pair() {
    let s = scenario();
    let driver = run(&s);
    let mut latest: BTreeMap<String, Exposure> = BTreeMap::new();
    for r in driver.read(EXPOSURES) {
        let e: Exposure = decode(r);
        assert_eq!(r.key.as_deref(), Some(e.contact.as_bytes().as_slice()));
        if e.status != ExposureStatus::Retracted {
            assert!(e.cumulative_s >= 15 * 60, "the rule: 15 min at least");
        }
        latest.insert(e.exposure_id.as_str().to_owned(), e);
    }
    assert!(!latest.is_empty());
    // Ids are per (case, contact): one live exposure per pair.
    let mut pairs = BTreeSet::new();
    for e in latest.values() {
        assert!(pairs.insert((e.case_id.clone(), e.contact)), "{e:?}");
    }
}

#[test]
fn cluster_router_funnels_evidence_into_one_partition_keyed_by_its_topic() {
    let s = scenario();
    let driver = run(&s);
    let evidence = driver.read(CLUSTER_EVIDENCE);
    let sources = [TIMELINES, EXPOSURES, CASES];
    let want: usize = sources.iter().map(|t| driver.read(t).len()).sum();
    let dead_from_sources = driver
        .read(DEADLETTER)
        .into_iter()
        .filter(|r| {
            let d: DeadLetter = decode(r);
            sources.contains(&d.topic.as_str())
        })
        .count();
    assert_eq!(evidence.len() + dead_from_sources, want);
    for r in evidence {
        assert_eq!(r.partition, 0);
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        assert!(sources.contains(&key.as_str()), "{key}");
    }
}

#[test]
fn cluster_detector_names_the_nights_index_case_and_keeps_its_published_alert() {
    let s = scenario();
    let driver = run(&s);
    let mut live: BTreeMap<String, ClusterAlert> = BTreeMap::new();
    for r in driver.read(CLUSTERS) {
        let a: ClusterAlert = decode(r);
        assert_eq!(r.key.as_deref(), Some(a.cluster_id.as_str().as_bytes()));
        if matches!(a.status, ClusterStatus::Merged | ClusterStatus::Dissolved) {
            live.remove(a.cluster_id.as_str());
        } else {
            live.insert(a.cluster_id.as_str().to_owned(), a);
        }
    }
    assert_eq!(live.len(), 1, "{live:?}");
    let alert = live.values().next().unwrap();
    assert_eq!(
        alert.index_case.as_ref().map(CaseId::as_str),
        Some("KR-2020-0501")
    );
    let store = driver.store("cluster-detector").unwrap();
    let published = store.scan("published", &[], &[0xff; 64]).unwrap();
    assert_eq!(published.len(), 1);
}

#[test]
fn bad_records_are_dead_lettered_with_their_reason_and_position() {
    let s = scenario();
    let driver = run(&s);
    let dead: Vec<DeadLetter> = driver.read(DEADLETTER).into_iter().map(decode).collect();
    for m in &s.malformed {
        assert!(
            dead.iter().any(|d| d.topic.as_str() == m.topic
                && d.reason_code.as_str() == m.reason
                && d.payload == m.payload),
            "{} {}",
            m.topic,
            m.reason
        );
    }
    assert_eq!(dead.len(), s.malformed.len());
}

#[test]
fn a_record_keyed_by_another_subject_or_case_is_dead_lettered_not_processed() {
    let s = scenario();
    let mut driver = test_driver(&PipelineConfig::default(), NOW_MS).unwrap();
    let ping = &s.trail[0];
    let other = [0xee; 16];
    assert_ne!(ping.key(), other.to_vec());
    driver.pipe(ping.topic(), Some(&other), Some(&ping.encode().unwrap()));
    let case = &s.cases[0];
    let payload = encode_single_object(case).unwrap();
    driver.pipe(CASES, Some(b"KR-0000-WRONG"), Some(&payload));
    driver.run().unwrap();
    let dead: Vec<DeadLetter> = driver.read(DEADLETTER).into_iter().map(decode).collect();
    let mismatched: BTreeSet<&str> = dead
        .iter()
        .filter(|d| d.reason_code.as_str() == "key_mismatch")
        .map(|d| d.topic.as_str())
        .collect();
    // The ping at the segmenter; the case event at the case router and at
    // the exposure aggregator (the cluster router holds no state by case).
    assert_eq!(
        mismatched,
        BTreeSet::from([ping.topic(), CASES]),
        "{dead:?}"
    );
    assert_eq!(dead.len(), 3, "{dead:?}");
    let trails = driver
        .store("segmenter")
        .unwrap()
        .scan("trails", &[], &[0xff; 18])
        .unwrap();
    assert!(trails.is_empty(), "nothing kept for the mis-keyed ping");
}

fn ping(subject: u8, at_ms: i64, lat: f64) -> (Vec<u8>, Vec<u8>) {
    use epitrace_model::records::{LocationPing, LocationSource};
    use epitrace_model::{AccuracyM, EventTime, LatLng, ProviderId};
    let p = LocationPing {
        subject: SubjectId::from_bytes([subject; 16]),
        provider: ProviderId::new("telco-a").unwrap(),
        observed_at: EventTime::from_millis("t", at_ms).unwrap(),
        position: LatLng::new(lat, 126.9946).unwrap(),
        accuracy: AccuracyM::new(30.0).unwrap(),
        source: LocationSource::Gps,
        site_id: None,
    };
    (vec![subject; 16], encode_single_object(&p).unwrap())
}

#[test]
fn riders_of_one_car_are_transit_contacts_and_a_ride_is_no_visit() {
    use epitrace_core::{Lane, Stream};
    let t0 = 1_588_323_600_000; // 2020-05-01 09:00Z
    let mut cfg = PipelineConfig::default();
    cfg.tracing.approvals.open_by_default = vec![epitrace_core::Category::Location];
    let mut driver = test_driver(&cfg, NOW_MS).unwrap();
    // Northbound at ~40 km/h (0.006° a minute) for 30 minutes; rider 1 (the
    // case) reports a fix every 3 minutes from minute 0, rider 2 every 4
    // from minute 1, rider 3 the same line ten minutes later.
    let line = |min: i64| 37.40 + 0.006 * f64::from(i32::try_from(min).unwrap());
    // Before the ride, the case waits at the station: a stay.
    let mut feed = vec![
        ping(1, t0 - 20 * 60_000, line(0)),
        ping(1, t0 - 10 * 60_000, line(0)),
    ];
    for m in (0..=30).step_by(3) {
        feed.push(ping(1, t0 + m * 60_000, line(m)));
    }
    for m in (1..=30).step_by(4) {
        feed.push(ping(2, t0 + m * 60_000, line(m)));
    }
    for m in (0..=30).step_by(3) {
        feed.push(ping(3, t0 + (m + 10) * 60_000, line(m)));
    }
    for (k, v) in &feed {
        driver.pipe(epitrace_model::topics::TELECOM, Some(k), Some(v));
    }
    let case = epitrace_model::records::CaseEvent {
        case_id: CaseId::new("ride-1").unwrap(),
        subjects: vec![SubjectId::from_bytes([1; 16])],
        status: epitrace_model::records::CaseStatus::Confirmed,
        confirmed_at: epitrace_model::EventTime::from_millis("t", t0 + 86_400_000).unwrap(),
        symptom_onset: None,
        infectious_from: epitrace_model::EventTime::from_millis("t", t0 - 86_400_000).unwrap(),
        infectious_until: None,
        region: None,
    };
    driver.pipe(
        CASES,
        Some(b"ride-1"),
        Some(&encode_single_object(&case).unwrap()),
    );
    driver.run().unwrap();
    // The paths are segments of the transit stream, at resolution 8.
    let paths: Vec<SegmentUpdate> = driver
        .read(SEGMENTS)
        .into_iter()
        .map(decode::<SegmentUpdate>)
        .filter(|u| Lane(u.lane).stream() == Stream::Transit)
        .collect();
    assert!(paths.len() >= 10, "{} path segment updates", paths.len());
    assert!(paths.iter().all(|u| u8::from(u.cell.resolution()) == 8));
    // The case's timeline holds no ride.
    let visits: Vec<Visit> = driver.read(TIMELINES).into_iter().map(decode).collect();
    assert!(!visits.is_empty(), "the wait at the station is a visit");
    assert!(
        visits.iter().all(|v| u8::from(v.cell.resolution()) != 8),
        "a path made a visit"
    );
    // Rider 2 is a transit contact of the case; rider 3, on the same line
    // ten minutes later, is nobody's contact.
    let live: BTreeMap<Vec<u8>, Exposure> = driver
        .read(EXPOSURES)
        .into_iter()
        .map(|r| (r.key.clone().unwrap(), decode::<Exposure>(r)))
        .collect();
    let rider2 = live.get(&vec![2; 16]).expect("rider 2 exposed");
    assert!(rider2.is_transit(), "{:?}", rider2.basis);
    let transit_s = rider2.basis.map_or(0, |b| b.transit_s);
    assert!(transit_s >= 20 * 60, "{transit_s} s on the ride");
    assert!(
        !live.contains_key(&vec![3; 16]),
        "rider 3 was not on the car"
    );
}

#[test]
fn segmenter_and_join_forget_subjects_older_than_the_retention_behind_the_stream_time() {
    const DAY: i64 = 86_400_000;
    let t0 = 1_588_291_200_000; // 2020-05-01
    let mut driver = test_driver(&PipelineConfig::default(), NOW_MS).unwrap();
    // Subject 1: a day of pings, two stays (so a closed segment is stored).
    for i in 0..20 {
        let lat = if i < 10 { 37.5344 } else { 37.5700 };
        let (k, v) = ping(1, t0 + i * 600_000, lat);
        driver.pipe(epitrace_model::topics::TELECOM, Some(&k), Some(&v));
    }
    driver.run().unwrap();
    let count_in = |driver: &TopologyDriver, processor: &str, store: &str, subject: u8| {
        driver
            .store(processor)
            .unwrap()
            .scan(store, &[subject; 16], &[subject, 0xff])
            .unwrap()
            .len()
    };
    let count = |driver: &TopologyDriver, store: &str, subject: u8| {
        count_in(driver, "segmenter", store, subject)
    };
    // GPS fixes: the telecom trail and the transit one (paths between
    // moving fixes).
    assert_eq!(count(&driver, "trails", 1), 2);
    assert!(count(&driver, "segments", 1) >= 1, "a closed segment");
    assert!(count_in(&driver, "presence-join", "by_id", 1) >= 1);
    // A far-future ping (more than a day past the wall clock) is refused
    // and does not move the stream time.
    let (k, v) = ping(3, NOW_MS + 10 * DAY, 37.5344);
    driver.pipe(epitrace_model::topics::TELECOM, Some(&k), Some(&v));
    driver.run().unwrap();
    assert_eq!(count(&driver, "trails", 1), 2, "the clock did not jump");
    // 20 days later: still kept (retention 21 days).
    let (k, v) = ping(2, t0 + 20 * DAY, 37.5344);
    driver.pipe(epitrace_model::topics::TELECOM, Some(&k), Some(&v));
    driver.run().unwrap();
    assert_eq!(count(&driver, "trails", 1), 2);
    // 22 days later (a stay, so that the join sees the time too): subject
    // 1 is forgotten, subject 2 kept.
    for minutes in [0, 10] {
        let (k, v) = ping(2, t0 + 22 * DAY + minutes * 60_000, 37.5344);
        driver.pipe(epitrace_model::topics::TELECOM, Some(&k), Some(&v));
    }
    driver.run().unwrap();
    assert_eq!(count(&driver, "trails", 1), 0);
    assert_eq!(count(&driver, "segments", 1), 0);
    assert_eq!(count(&driver, "trails", 2), 2);
    // The join forgets its segments too (and their index keys).
    assert_eq!(count_in(&driver, "presence-join", "by_id", 1), 0);
    let presence = driver
        .store("presence-join")
        .unwrap()
        .scan("presence", &[], &[0xff; 64])
        .unwrap();
    assert!(
        presence
            .iter()
            .all(|(k, _)| !k.ends_with(&[1; 16][..]) && !k.windows(16).any(|w| w == [1; 16])),
        "no index key of subject 1 left"
    );
    let dead: Vec<DeadLetter> = driver.read(DEADLETTER).into_iter().map(decode).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason_code.as_str(), "timestamp_in_future");
}

#[test]
fn exposure_aggregator_and_cluster_detector_forget_cases_that_ended_a_retention_ago() {
    use epitrace_model::EventTime;
    use epitrace_model::records::{CaseEvent, CaseStatus};
    const DAY: i64 = 86_400_000;
    let mut s = scenario();
    for c in &mut s.cases {
        c.infectious_until = Some(c.confirmed_at);
    }
    let last = s
        .cases
        .iter()
        .map(|c| c.confirmed_at.as_millis())
        .max()
        .unwrap();
    let mut driver = run(&s);
    let count = |driver: &TopologyDriver, processor: &str, store: &str| {
        driver
            .store(processor)
            .unwrap()
            .scan(store, &[], &[0xff; 80])
            .unwrap()
            .len()
    };
    let agg = "exposure-aggregator";
    let det = "cluster-detector";
    let cases = s
        .cases
        .iter()
        .map(|c| &c.case_id)
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(count(&driver, agg, "cases"), cases);
    assert!(count(&driver, agg, "ledgers") > 0);
    assert!(count(&driver, agg, "emitted") > 0);
    assert_eq!(count(&driver, det, "cases"), cases);
    assert!(count(&driver, det, "visits") > 0);
    assert!(count(&driver, det, "exposures") > 0);
    assert_eq!(count(&driver, det, "published"), 1);
    let exposures = driver.read(EXPOSURES).len();
    // A case confirmed later moves the stream time.
    let later = |driver: &mut TopologyDriver, n: u8, days: i64| {
        let at = |ms: i64| EventTime::from_millis("t", ms).unwrap();
        let e = CaseEvent {
            case_id: CaseId::new(format!("KR-LATER-{n}")).unwrap(),
            subjects: vec![SubjectId::from_bytes([0xa0 + n; 16])],
            confirmed_at: at(last + days * DAY),
            symptom_onset: None,
            infectious_from: at(last + (days - 2) * DAY),
            infectious_until: None,
            status: CaseStatus::Confirmed,
            region: None,
        };
        let payload = encode_single_object(&e).unwrap();
        driver.pipe(CASES, Some(e.case_id.as_str().as_bytes()), Some(&payload));
        driver.run().unwrap();
    };
    // 20 days on: everything kept (retention 21 days); the night's event
    // had no new case for the watch period (14 days): CLOSED.
    later(&mut driver, 1, 20);
    assert_eq!(count(&driver, agg, "cases"), cases + 1);
    assert_eq!(count(&driver, det, "published"), 1);
    let closed: ClusterAlert = decode(driver.read(CLUSTERS).last().unwrap());
    assert_eq!(closed.status, ClusterStatus::Closed);
    let alerts = driver.read(CLUSTERS).len();
    // 30 days on: the night's cases are forgotten by both, with their
    // evidence and their cluster; the open later cases are kept.
    later(&mut driver, 2, 30);
    for store in ["ledgers", "emitted"] {
        assert_eq!(count(&driver, agg, store), 0, "{agg} {store}");
    }
    assert_eq!(count(&driver, agg, "cases"), 2);
    for store in ["visits", "exposures", "published"] {
        assert_eq!(count(&driver, det, store), 0, "{det} {store}");
    }
    assert_eq!(count(&driver, det, "cases"), 2);
    // Silently: no alert or exposure was published for the forgetting.
    assert_eq!(driver.read(CLUSTERS).len(), alerts);
    assert_eq!(driver.read(EXPOSURES).len(), exposures);
}

#[test]
fn every_stored_entry_decodes_with_the_codecs_its_store_declares() {
    let s = scenario();
    let driver = run(&s);
    let case_ids: BTreeSet<&str> = s.cases.iter().map(|c| c.case_id.as_str()).collect();
    for spec in REGISTRY {
        for store in spec.stores {
            let entries = driver
                .store(spec.name())
                .unwrap()
                .scan(store.name, &[], &[0xff; 128])
                .unwrap();
            assert!(
                !entries.is_empty(),
                "{}/{}: nothing stored to check",
                spec.name(),
                store.name
            );
            for (k, v) in &entries {
                let owner = store
                    .key
                    .decode(k)
                    .unwrap_or_else(|e| panic!("{}/{}: {e}", spec.name(), store.name));
                if let Some(case) = &owner.case {
                    assert!(case_ids.contains(case.as_str()), "{case}");
                }
                store
                    .value
                    .check(v)
                    .unwrap_or_else(|e| panic!("{}/{}: {e}", spec.name(), store.name));
            }
        }
    }
}
