//! Strategies that generate valid records, shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use epitrace_model::*;
use h3o::Resolution;
use proptest::prelude::*;

pub fn subject() -> impl Strategy<Value = SubjectId> {
    any::<[u8; 16]>().prop_map(SubjectId::from_bytes)
}

pub fn time() -> impl Strategy<Value = EventTime> {
    (EventTime::MIN.as_millis()..=EventTime::MAX.as_millis())
        .prop_map(|ms| EventTime::from_millis("t", ms).unwrap())
}

/// Two times, the first not after the second.
pub fn ordered() -> impl Strategy<Value = (EventTime, EventTime)> {
    (time(), time()).prop_map(|(a, b)| if a <= b { (a, b) } else { (b, a) })
}

pub fn id_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9._:-]{{1,{max}}}")).unwrap()
}

pub fn case_id() -> impl Strategy<Value = CaseId> {
    id_text(64).prop_map(|s| CaseId::new(s).unwrap())
}

pub fn text(field: &'static str) -> impl Strategy<Value = Text> {
    proptest::string::string_regex("[^\\p{Cc}]{1,200}")
        .unwrap()
        .prop_filter("at most 1024 bytes", |s| s.len() <= Text::MAX_LEN)
        .prop_map(move |s| Text::new(field, s).unwrap())
}

pub fn position() -> impl Strategy<Value = LatLng> {
    (-90.0..=90.0f64, -180.0..=180.0f64).prop_map(|(lat, lng)| LatLng::new(lat, lng).unwrap())
}

pub fn accuracy() -> impl Strategy<Value = AccuracyM> {
    (0.0..=AccuracyM::MAX).prop_map(|m| AccuracyM::new(m).unwrap())
}

pub fn cell() -> impl Strategy<Value = Cell> {
    (position(), 0u8..=15).prop_map(|(p, res)| p.to_cell(Resolution::try_from(res).unwrap()))
}

pub fn probability(field: &'static str) -> impl Strategy<Value = Probability> {
    (0.0..=1.0f64).prop_map(move |p| Probability::new(field, p).unwrap())
}

pub fn location_ping() -> impl Strategy<Value = LocationPing> {
    (
        subject(),
        id_text(64),
        time(),
        position(),
        accuracy(),
        prop::sample::select(LocationSource::ALL),
        prop::option::of(id_text(64)),
    )
        .prop_map(
            |(subject, provider, observed_at, position, accuracy, source, site)| LocationPing {
                subject,
                provider: ProviderId::new(provider).unwrap(),
                observed_at,
                position,
                accuracy,
                source,
                site_id: site.map(|s| SiteId::new(s).unwrap()),
            },
        )
}

pub fn card_transaction() -> impl Strategy<Value = CardTransaction> {
    (
        subject(),
        id_text(64),
        id_text(64),
        0i64..=9999,
        position(),
        accuracy(),
        time(),
    )
        .prop_map(
            |(subject, issuer, merchant, mcc, position, accuracy, observed_at)| CardTransaction {
                subject,
                issuer: ProviderId::new(issuer).unwrap(),
                merchant_id: MerchantId::new(merchant).unwrap(),
                mcc: Mcc::new(mcc).unwrap(),
                position,
                accuracy,
                observed_at,
            },
        )
}

pub fn venue_checkin() -> impl Strategy<Value = VenueCheckin> {
    (subject(), id_text(64), position(), ordered(), any::<bool>()).prop_map(
        |(subject, venue, position, (observed_at, out), has_out)| VenueCheckin {
            subject,
            venue_id: VenueId::new(venue).unwrap(),
            position,
            observed_at,
            checkout_at: has_out.then_some(out),
        },
    )
}

pub fn case_event() -> impl Strategy<Value = CaseEvent> {
    (
        case_id(),
        prop::collection::hash_set(any::<[u8; 16]>(), 1..=16),
        time(),
        prop::option::of(time()),
        ordered(),
        any::<bool>(),
        prop::sample::select(CaseStatus::ALL),
        prop::option::of(text("region")),
    )
        .prop_map(
            |(
                case_id,
                subjects,
                confirmed_at,
                symptom_onset,
                (from, until),
                open,
                status,
                region,
            )| {
                CaseEvent {
                    case_id,
                    subjects: subjects.into_iter().map(SubjectId::from_bytes).collect(),
                    confirmed_at,
                    symptom_onset,
                    infectious_from: from,
                    infectious_until: (!open).then_some(until),
                    status,
                    region,
                }
            },
        )
}

pub fn interview_entry() -> impl Strategy<Value = InterviewEntry> {
    (
        case_id(),
        id_text(64),
        position(),
        1.0f64..=50_000.0,
        ordered(),
        prop::option::of(text("label")),
        id_text(128),
        time(),
        any::<bool>(),
    )
        .prop_map(
            |(
                case_id,
                entry,
                position,
                radius_m,
                (start, end),
                label,
                actor,
                recorded_at,
                retracted,
            )| {
                InterviewEntry {
                    case_id,
                    entry_id: EntryId::new(entry).unwrap(),
                    position,
                    radius_m,
                    start,
                    end,
                    label,
                    recorded_by: ActorId::new(actor).unwrap(),
                    recorded_at,
                    retracted,
                }
            },
        )
}

pub fn data_access_approval() -> impl Strategy<Value = DataAccessApproval> {
    (
        case_id(),
        prop::sample::select(DataCategory::ALL),
        text("authority"),
        text("reference"),
        ordered(),
    )
        .prop_filter("expiry strictly after approval", |(.., (a, e))| a < e)
        .prop_map(
            |(case_id, category, authority, reference, (approved_at, expires_at))| {
                DataAccessApproval {
                    case_id,
                    category,
                    authority,
                    reference,
                    approved_at,
                    expires_at,
                }
            },
        )
}

pub fn visit() -> impl Strategy<Value = Visit> {
    (
        id_text(128),
        case_id(),
        subject(),
        cell(),
        ordered(),
        any::<u32>(),
        prop::collection::vec(prop::sample::select(ObservationSource::ALL), 1..6),
        probability("confidence"),
        any::<bool>(),
    )
        .prop_map(
            |(
                visit_id,
                case_id,
                subject,
                cell,
                (start, end),
                dwell_s,
                sources,
                confidence,
                retracted,
            )| {
                Visit {
                    visit_id: VisitId::new(visit_id).unwrap(),
                    case_id,
                    subject,
                    cell,
                    start,
                    end,
                    dwell_s,
                    sources,
                    confidence,
                    retracted,
                }
            },
        )
}

pub fn exposure() -> impl Strategy<Value = Exposure> {
    (
        id_text(128),
        case_id(),
        subject(),
        cell(),
        prop::collection::vec(ordered(), 1..8),
        any::<u32>(),
        probability("risk"),
        prop::sample::select(ExposureStatus::ALL),
        time(),
        prop::collection::btree_set(prop::sample::select(DataCategory::ALL), 0..4),
        (
            prop::option::of(probability("likelihood")),
            prop::option::of(prop::sample::select(ContactClass::ALL)),
            prop::option::of((0u32..=u32::MAX / 2, any::<u32>(), any::<u32>())),
        ),
    )
        .prop_map(
            |(
                id,
                case_id,
                contact,
                first_cell,
                windows,
                cumulative_s,
                risk,
                status,
                detected_at,
                evidence,
                (likelihood, contact_class, split),
            )| {
                // A basis adds up to cumulative_s.
                let basis = split.map(|(a, b, c)| {
                    let fine_s = a.min(cumulative_s);
                    let near_s = b.min(cumulative_s - fine_s);
                    let wide_s = c.min(cumulative_s - fine_s - near_s);
                    LocationBasis {
                        fine_s,
                        near_s,
                        wide_s,
                        apart_s: cumulative_s - fine_s - near_s - wide_s,
                        transit_s: near_s,
                    }
                });
                Exposure {
                    exposure_id: ExposureId::new(id).unwrap(),
                    case_id,
                    contact,
                    first_cell,
                    windows: windows
                        .into_iter()
                        .map(|(s, e)| TimeWindow::new(s, e).unwrap())
                        .collect(),
                    cumulative_s,
                    risk,
                    status,
                    detected_at,
                    evidence: evidence.into_iter().collect(),
                    likelihood,
                    contact_class,
                    basis,
                }
            },
        )
}

pub fn cluster_alert() -> impl Strategy<Value = ClusterAlert> {
    (
        id_text(128),
        prop::sample::select(ClusterStatus::ALL),
        prop::collection::vec(case_id(), 1..8),
        prop::collection::vec((cell(), ordered()), 0..6),
        prop::option::of(case_id()),
        text("source_evidence"),
        1u32..=i32::MAX as u32,
        id_text(128),
        time(),
    )
        .prop_map(
            |(
                id,
                status,
                cases,
                places,
                index_case,
                source_evidence,
                size,
                merged,
                detected_at,
            )| {
                ClusterAlert {
                    cluster_id: ClusterId::new(id).unwrap(),
                    status,
                    cases,
                    places: places
                        .into_iter()
                        .map(|(c, (s, e))| Place::new(c, s, e).unwrap())
                        .collect(),
                    index_case,
                    source_evidence,
                    size,
                    merged_into: (status == ClusterStatus::Merged)
                        .then(|| ClusterId::new(merged.clone()).unwrap()),
                    detected_at,
                    linked_clusters: vec![ClusterId::new(merged).unwrap()],
                }
            },
        )
}

pub fn dead_letter() -> impl Strategy<Value = DeadLetter> {
    (
        text("topic"),
        0..=i32::MAX,
        0..=i64::MAX,
        text("reason_code"),
        text("detail"),
        prop::collection::vec(any::<u8>(), 0..256),
        time(),
    )
        .prop_map(
            |(topic, partition, offset, reason_code, detail, payload, dead_lettered_at)| {
                DeadLetter {
                    topic,
                    partition,
                    offset,
                    reason_code,
                    detail,
                    payload,
                    dead_lettered_at,
                }
            },
        )
}

pub fn audit_record() -> impl Strategy<Value = AuditRecord> {
    (
        (0..=i64::MAX, time(), id_text(128)),
        prop::sample::select(Role::ALL),
        prop::sample::select(AuditAction::ALL),
        text("resource"),
        prop::option::of(case_id()),
        text("purpose"),
        prop::sample::select(AuditOutcome::ALL),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(
                (seq, at, actor),
                role,
                action,
                resource,
                case_id,
                purpose,
                outcome,
                prev_hash,
                hash,
            )| {
                AuditRecord {
                    seq,
                    at,
                    actor: ActorId::new(actor).unwrap(),
                    role,
                    action,
                    resource,
                    case_id,
                    purpose,
                    outcome,
                    prev_hash,
                    hash,
                }
            },
        )
}

/// A fixed, valid ping for the example-based tests.
pub fn sample_ping() -> LocationPing {
    LocationPing {
        subject: SubjectId::from_bytes([7; 16]),
        provider: ProviderId::new("skt").unwrap(),
        observed_at: EventTime::from_millis("observed_at", 1_588_377_600_000).unwrap(),
        position: LatLng::new(37.5344, 126.9946).unwrap(),
        accuracy: AccuracyM::new(150.0).unwrap(),
        source: LocationSource::Cell,
        site_id: None,
    }
}

pub fn subject_case() -> impl Strategy<Value = SubjectCase> {
    (
        subject(),
        case_id(),
        prop::sample::select(CaseStatus::ALL),
        ordered(),
        any::<bool>(),
        time(),
        prop::collection::vec((prop::sample::select(DataCategory::ALL), time()), 0..4),
    )
        .prop_map(
            |(subject, case_id, status, (from, until), open, confirmed_at, approvals)| {
                SubjectCase {
                    subject,
                    case_id,
                    status,
                    infectious_from: from,
                    infectious_until: (!open).then_some(until),
                    confirmed_at,
                    approvals: approvals
                        .into_iter()
                        .map(|(category, expires_at)| ApprovalWindow {
                            category,
                            expires_at,
                        })
                        .collect(),
                }
            },
        )
}

pub fn lane() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..4, 0u32..=i32::MAX as u32]
}

/// A cell and one of its descendants (or itself).
pub fn cell_and_descendant() -> impl Strategy<Value = (Cell, Cell)> {
    (cell(), 0u8..=15).prop_map(|(fine, res)| {
        let res = Resolution::try_from(res).unwrap().min(fine.resolution());
        (fine.parent(res).unwrap(), fine)
    })
}

pub fn case_tag() -> impl Strategy<Value = CaseTag> {
    (case_id(), ordered(), any::<bool>()).prop_map(|(case_id, (from, until), open)| CaseTag {
        case_id,
        infectious_from: from,
        infectious_until: (!open).then_some(until),
    })
}

pub fn segment_update() -> impl Strategy<Value = SegmentUpdate> {
    (
        subject(),
        lane(),
        ordered(),
        cell_and_descendant(),
        prop::collection::vec(prop::sample::select(ObservationSource::ALL), 0..6),
        1u32..=i32::MAX as u32,
        prop::sample::select(SegmentUpdateKind::ALL),
        prop::collection::vec(case_tag(), 0..4),
        0u8..=15,
    )
        .prop_map(
            |(
                subject,
                lane,
                (start, end),
                (cell, first_cell),
                sources,
                observations,
                kind,
                tags,
                core_res,
            )| {
                // The core: first_cell or an ancestor of it inside cell.
                let core_res = Resolution::try_from(core_res)
                    .unwrap()
                    .clamp(cell.resolution(), first_cell.resolution());
                let core_cell = first_cell.parent(core_res).unwrap();
                let mut cases: Vec<CaseTag> = Vec::new();
                for tag in tags {
                    if cases.iter().all(|t| t.case_id != tag.case_id) {
                        cases.push(tag);
                    }
                }
                SegmentUpdate {
                    subject,
                    lane,
                    start,
                    first_cell,
                    cell,
                    end,
                    sources,
                    observations,
                    kind,
                    cases,
                    core_cell,
                }
            },
        )
}

pub fn segment_ref() -> impl Strategy<Value = SegmentRef> {
    (lane(), time(), cell()).prop_map(|(lane, start, first_cell)| SegmentRef {
        lane,
        start,
        first_cell,
    })
}

pub fn exposure_candidate() -> impl Strategy<Value = ExposureCandidate> {
    (
        case_id(),
        subject(),
        segment_ref(),
        subject(),
        segment_ref(),
        cell(),
        prop::option::of(ordered().prop_filter("non-empty overlap", |(s, e)| s < e)),
        (cell(), cell()),
    )
        .prop_filter("contact is not the case subject", |(_, c, _, k, ..)| c != k)
        .prop_map(
            |(
                case_id,
                case_subject,
                case_segment,
                contact,
                contact_segment,
                cell,
                overlap,
                (case_core, contact_core),
            )| {
                ExposureCandidate {
                    case_id,
                    case_subject,
                    case_segment,
                    contact,
                    contact_segment,
                    cell,
                    case_core,
                    contact_core,
                    overlap: overlap.map(|(s, e)| TimeWindow::new(s, e).unwrap()),
                }
            },
        )
}
