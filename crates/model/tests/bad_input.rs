//! Bad bytes never panic and give the right typed error.

// Test helpers outside #[test] functions: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apache_avro::types::Value;
use epitrace_model::time::DAY_MS;
use epitrace_model::*;
use proptest::prelude::*;

mod common;

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

/// Re-encodes a record value after `edit`, bypassing the record's own
/// validation, as a foreign producer could.
fn datum_of(value: Value, schema: &apache_avro::Schema) -> Vec<u8> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap()
}

fn with_field(value: Value, name: &str, new: Value) -> Value {
    let Value::Record(mut fields) = value else {
        unreachable!()
    };
    let (_, v) = fields.iter_mut().find(|(n, _)| n == name).unwrap();
    *v = new;
    Value::Record(fields)
}

fn ping_with(name: &str, new: Value) -> Result<LocationPing, ModelError> {
    let value = with_field(common::sample_ping().to_value(), name, new);
    decode_datum(&datum_of(value, LocationPing::schema()))
}

#[test]
fn every_prefix_of_a_frame_is_an_error() {
    let ping = common::sample_ping(); // site_id None: the frame ends in a union index
    let mut ids = ConfluentIds::new();
    ids.insert_current::<LocationPing>(1);
    let single = encode_single_object(&ping).unwrap();
    let confluent = encode_confluent(&ping, 1).unwrap();
    let datum = encode_datum(&ping).unwrap();
    for n in 0..single.len() {
        let err = decode_single_object::<LocationPing>(&single[..n], &opts()).unwrap_err();
        assert_eq!(
            err.reason_code(),
            "truncated",
            "single-object prefix {n}: {err}"
        );
    }
    for n in 0..confluent.len() {
        let err = decode_confluent::<LocationPing>(&confluent[..n], &ids, &opts()).unwrap_err();
        assert_eq!(
            err.reason_code(),
            "truncated",
            "confluent prefix {n}: {err}"
        );
    }
    for n in 0..datum.len() {
        let err = decode_datum::<LocationPing>(&datum[..n]).unwrap_err();
        assert_eq!(err.reason_code(), "truncated", "datum prefix {n}: {err}");
    }
}

#[test]
fn truncated_strings_are_truncated_not_null() {
    // apache-avro decodes a string cut off mid-way as null; we must not.
    let mut ping = common::sample_ping();
    ping.site_id = Some(SiteId::new("site-0042").unwrap());
    let datum = encode_datum(&ping).unwrap();
    for n in 0..datum.len() {
        assert!(matches!(
            decode_datum::<LocationPing>(&datum[..n]),
            Err(ModelError::Truncated(_))
        ));
    }
}

#[test]
fn unknown_fingerprint_and_bad_magic() {
    let mut frame = encode_single_object(&common::sample_ping()).unwrap();
    frame[2] ^= 0xFF;
    let fp = u64::from_le_bytes(frame[2..10].try_into().unwrap());
    assert_eq!(
        decode_single_object::<LocationPing>(&frame, &opts()),
        Err(ModelError::UnknownFingerprint(fp))
    );
    // A frame of another record type has a fingerprint this one does not know.
    let other = encode_single_object(&DeadLetter {
        topic: Text::new("topic", "feeds.telecom.location").unwrap(),
        partition: 0,
        offset: 0,
        reason_code: Text::new("reason_code", "truncated").unwrap(),
        detail: Text::new("detail", "x").unwrap(),
        payload: vec![],
        dead_lettered_at: EventTime::MIN,
    })
    .unwrap();
    assert!(matches!(
        decode_single_object::<LocationPing>(&other, &opts()),
        Err(ModelError::UnknownFingerprint(_))
    ));

    let confluent = encode_confluent(&common::sample_ping(), 9).unwrap();
    for bad in [&[0xC3u8, 0x02][..], &[0x00, 0x01], &[0xFF]] {
        let err = decode_single_object::<LocationPing>(bad, &opts()).unwrap_err();
        assert_eq!(err.reason_code(), "bad_magic", "{bad:02x?}");
    }
    assert!(matches!(
        decode_confluent::<LocationPing>(&frame, &ConfluentIds::new(), &opts()),
        Err(ModelError::BadMagic { .. })
    ));
    assert_eq!(
        decode_confluent::<LocationPing>(&confluent, &ConfluentIds::new(), &opts()),
        Err(ModelError::UnknownSchemaId(9))
    );
}

#[test]
fn trailing_bytes() {
    let mut frame = encode_single_object(&common::sample_ping()).unwrap();
    frame.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        decode_single_object::<LocationPing>(&frame, &opts()),
        Err(ModelError::TrailingBytes(3))
    );
    let mut datum = encode_datum(&common::sample_ping()).unwrap();
    datum.push(1);
    assert_eq!(
        decode_datum::<LocationPing>(&datum),
        Err(ModelError::TrailingBytes(1))
    );
}

#[test]
fn invalid_positions_and_accuracy() {
    assert!(matches!(
        ping_with("lat", Value::Double(f64::NAN)),
        Err(ModelError::InvalidLatitude(_))
    ));
    assert!(matches!(
        ping_with("lat", Value::Double(91.0)),
        Err(ModelError::InvalidLatitude(_))
    ));
    assert!(matches!(
        ping_with("lng", Value::Double(f64::INFINITY)),
        Err(ModelError::InvalidLongitude(_))
    ));
    assert!(matches!(
        ping_with("lng", Value::Double(-180.5)),
        Err(ModelError::InvalidLongitude(_))
    ));
    assert!(matches!(
        ping_with("accuracy_m", Value::Double(-1.0)),
        Err(ModelError::InvalidAccuracy(_))
    ));
    assert!(matches!(
        ping_with("provider", Value::String("has space".into())),
        Err(ModelError::InvalidIdentifier {
            kind: "provider",
            ..
        })
    ));
}

#[test]
fn enum_index_past_the_end_is_unknown_symbol() {
    let mut datum = encode_datum(&common::sample_ping()).unwrap();
    // The ping ends with: source enum index (1 byte), site_id union index 0.
    let at = datum.len() - 2;
    assert_eq!(datum[at], 0); // CELL
    datum[at] = 3 << 1; // zig-zag 3: past GPS(1), WIFI(2)
    assert!(matches!(
        decode_datum::<LocationPing>(&datum),
        Err(ModelError::UnknownSymbol { .. })
    ));
    datum[at] = 1; // zig-zag -1
    assert!(decode_datum::<LocationPing>(&datum).is_err());
}

#[test]
fn timestamps_before_2000_and_in_the_future() {
    assert!(matches!(
        ping_with("observed_at", Value::TimestampMillis(1_588_377_600)), // seconds, not ms
        Err(ModelError::TimestampOutOfRange {
            field: "observed_at",
            ..
        })
    ));
    let ping = common::sample_ping();
    let frame = encode_single_object(&ping).unwrap();
    let now = ping.observed_at.saturating_add_ms(-DAY_MS);
    assert!(decode_single_object::<LocationPing>(&frame, &DecodeOptions::at(now)).is_ok());
    let now = ping.observed_at.saturating_add_ms(-DAY_MS - 1);
    assert!(matches!(
        decode_single_object::<LocationPing>(&frame, &DecodeOptions::at(now)),
        Err(ModelError::TimestampInFuture {
            field: "observed_at",
            ..
        })
    ));
    let strict = DecodeOptions {
        now: Some(ping.observed_at.saturating_add_ms(-1)),
        future_skew_ms: 0,
    };
    assert_eq!(
        decode_single_object::<LocationPing>(&frame, &strict)
            .unwrap_err()
            .reason_code(),
        "timestamp_in_future"
    );
    // A planned expiry is not an event in the future.
    let approval = DataAccessApproval {
        case_id: CaseId::new("KR-2020-0031").unwrap(),
        category: DataCategory::Location,
        authority: Text::new("authority", "Seoul Metropolitan Police Agency").unwrap(),
        reference: Text::new("reference", "2020-0502-17").unwrap(),
        approved_at: ping.observed_at,
        expires_at: ping.observed_at.saturating_add_ms(14 * DAY_MS),
    };
    let frame = encode_single_object(&approval).unwrap();
    assert!(
        decode_single_object::<DataAccessApproval>(&frame, &DecodeOptions::at(ping.observed_at))
            .is_ok()
    );
}

#[test]
fn cross_field_rules() {
    let t0 = EventTime::from_millis("t", 1_588_377_600_000).unwrap();
    let checkin = VenueCheckin {
        subject: SubjectId::from_bytes([1; 16]),
        venue_id: VenueId::new("itaewon-king-club").unwrap(),
        position: LatLng::new(37.5344, 126.9946).unwrap(),
        observed_at: t0,
        checkout_at: Some(t0.saturating_add_ms(-1)),
    };
    // The encoder refuses it…
    assert!(matches!(
        encode_datum(&checkin),
        Err(ModelError::TimestampOrder {
            field: "checkout_at",
            ..
        })
    ));
    // …and so does the decoder when a foreign producer sends it.
    let datum = datum_of(checkin.to_value(), VenueCheckin::schema());
    assert!(matches!(
        decode_datum::<VenueCheckin>(&datum),
        Err(ModelError::TimestampOrder {
            field: "checkout_at",
            ..
        })
    ));

    let event = CaseEvent {
        case_id: CaseId::new("KR-2020-0031").unwrap(),
        subjects: vec![],
        confirmed_at: t0,
        symptom_onset: None,
        infectious_from: t0,
        infectious_until: None,
        status: CaseStatus::Confirmed,
        region: None,
    };
    let datum = datum_of(event.to_value(), CaseEvent::schema());
    assert_eq!(
        decode_datum::<CaseEvent>(&datum),
        Err(ModelError::InvalidRecord {
            field: "subjects",
            reason: "empty"
        })
    );
    let dup = CaseEvent {
        subjects: vec![SubjectId::from_bytes([2; 16]); 2],
        ..event.clone()
    };
    assert!(matches!(
        encode_datum(&dup),
        Err(ModelError::InvalidRecord {
            reason: "duplicate subject",
            ..
        })
    ));
    let many = CaseEvent {
        subjects: (0..17u8).map(|i| SubjectId::from_bytes([i; 16])).collect(),
        ..event.clone()
    };
    let datum = datum_of(many.to_value(), CaseEvent::schema());
    assert!(matches!(
        decode_datum::<CaseEvent>(&datum),
        Err(ModelError::InvalidRecord {
            field: "subjects",
            ..
        })
    ));
    let backwards = CaseEvent {
        subjects: vec![SubjectId::from_bytes([2; 16])],
        infectious_until: Some(t0.saturating_add_ms(-1)),
        ..event
    };
    assert!(matches!(
        encode_datum(&backwards),
        Err(ModelError::TimestampOrder {
            field: "infectious_until",
            ..
        })
    ));
}

#[test]
fn wrong_shape_after_resolution_is_a_shape_error() {
    assert!(matches!(
        LocationPing::from_value(&Value::Null),
        Err(ModelError::Shape {
            field: "LocationPing",
            ..
        })
    ));
    let value = with_field(
        common::sample_ping().to_value(),
        "lat",
        Value::String("x".into()),
    );
    assert!(matches!(
        LocationPing::from_value(&value),
        Err(ModelError::Shape { field: "lat", .. })
    ));
    let Value::Record(mut fields) = common::sample_ping().to_value() else {
        unreachable!()
    };
    fields.retain(|(n, _)| n != "provider");
    assert!(matches!(
        LocationPing::from_value(&Value::Record(fields)),
        Err(ModelError::Shape {
            field: "provider",
            ..
        })
    ));
}

/// Runs every decoder of `T` on `bytes`; the only requirement is no panic.
fn decode_all<T: AvroRecord>(bytes: &[u8], ids: &ConfluentIds) {
    let o = DecodeOptions::at(EventTime::MIN);
    let _ = decode_datum::<T>(bytes);
    let _ = decode_single_object::<T>(bytes, &o);
    let _ = decode_confluent::<T>(bytes, ids, &o);
    // With a valid header in front, so the datum decoder sees the garbage.
    let mut single = vec![0xC3, 0x01];
    single.extend_from_slice(&T::schema_set().fingerprint().to_le_bytes());
    single.extend_from_slice(bytes);
    let _ = decode_single_object::<T>(&single, &o);
}

fn decode_everything(bytes: &[u8]) {
    let mut ids = ConfluentIds::new();
    ids.insert_current::<LocationPing>(0);
    decode_all::<LocationPing>(bytes, &ids);
    decode_all::<CardTransaction>(bytes, &ids);
    decode_all::<VenueCheckin>(bytes, &ids);
    decode_all::<CaseEvent>(bytes, &ids);
    decode_all::<DataAccessApproval>(bytes, &ids);
    decode_all::<Visit>(bytes, &ids);
    decode_all::<Exposure>(bytes, &ids);
    decode_all::<ClusterAlert>(bytes, &ids);
    decode_all::<DeadLetter>(bytes, &ids);
    decode_all::<AuditRecord>(bytes, &ids);
    decode_all::<SubjectCase>(bytes, &ids);
    decode_all::<SegmentUpdate>(bytes, &ids);
    decode_all::<ExposureCandidate>(bytes, &ids);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        ping in common::location_ping(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut frame = encode_single_object(&ping).unwrap();
        for (i, b) in flips {
            let at = i.index(frame.len());
            frame[at] ^= b;
        }
        decode_everything(&frame);
        decode_everything(&frame[10..]);
    }
}

/// Why the decoders track end-of-input themselves: apache-avro 0.22 decodes
/// a union index or a string cut off at the end of the input as null, so a
/// ping missing its last byte "decodes" to the original.
#[test]
fn apache_avro_alone_accepts_a_truncated_union() {
    let ping = common::sample_ping();
    let datum = encode_datum(&ping).unwrap();
    let short = &datum[..datum.len() - 1];
    let value = apache_avro::reader::datum::GenericDatumReader::builder(LocationPing::schema())
        .build()
        .unwrap()
        .read_value(&mut &short[..]);
    // Still the case in 0.22 (if a later version starts failing here, the
    // library has fixed it; our own check stays as defence in depth).
    assert_eq!(LocationPing::from_value(&value.unwrap()).unwrap(), ping);
    assert!(matches!(
        decode_datum::<LocationPing>(short),
        Err(ModelError::Truncated(_))
    ));
}

// ------------------------------------------------------ internal records

fn t0() -> EventTime {
    EventTime::from_millis("t", 1_588_377_600_000).unwrap()
}

fn sample_subject_case() -> SubjectCase {
    SubjectCase {
        subject: SubjectId::from_bytes([3; 16]),
        case_id: CaseId::new("KR-2020-0031").unwrap(),
        status: CaseStatus::Confirmed,
        infectious_from: t0(),
        infectious_until: None,
        confirmed_at: t0(),
        approvals: Vec::new(),
    }
}

fn sample_segment() -> SegmentUpdate {
    let p = LatLng::new(37.5344, 126.9946).unwrap();
    SegmentUpdate {
        subject: SubjectId::from_bytes([4; 16]),
        lane: 0,
        start: t0(),
        first_cell: p.to_cell(h3o::Resolution::Ten),
        cell: p.to_cell(h3o::Resolution::Eight),
        end: t0().saturating_add_ms(30 * 60_000),
        sources: vec![ObservationSource::Gps, ObservationSource::Card],
        observations: 7,
        kind: SegmentUpdateKind::Upsert,
        cases: vec![sample_subject_case().tag()],
        core_cell: p.to_cell(h3o::Resolution::Ten),
    }
}

fn sample_candidate() -> ExposureCandidate {
    let seg = sample_segment();
    ExposureCandidate {
        case_id: CaseId::new("KR-2020-0031").unwrap(),
        case_subject: seg.subject,
        case_segment: seg.segment_ref(),
        contact: SubjectId::from_bytes([5; 16]),
        contact_segment: SegmentRef {
            lane: 1,
            ..seg.segment_ref()
        },
        cell: seg.first_cell,
        case_core: seg.first_cell,
        contact_core: seg.first_cell,
        overlap: Some(TimeWindow::new(seg.start, seg.end).unwrap()),
    }
}

/// `record` is refused by the encoder, and by the decoder when a foreign
/// producer writes it anyway.
fn refused<T: AvroRecord + std::fmt::Debug>(record: &T) -> ModelError {
    let encoded = encode_datum(record).unwrap_err();
    let decoded = decode_datum::<T>(&datum_of(record.to_value(), T::schema())).unwrap_err();
    assert_eq!(encoded, decoded, "{record:?}");
    encoded
}

#[test]
fn subject_case_rules() {
    assert!(encode_datum(&sample_subject_case()).is_ok());
    let backwards = SubjectCase {
        infectious_until: Some(t0().saturating_add_ms(-1)),
        ..sample_subject_case()
    };
    assert!(matches!(
        refused(&backwards),
        ModelError::TimestampOrder {
            field: "infectious_until",
            ..
        }
    ));
    // A CaseEvent's until-before-from is caught before fan-out; a fanned
    // out record keeps the event's order.
    let event = CaseEvent {
        case_id: CaseId::new("KR-2020-0031").unwrap(),
        subjects: vec![
            SubjectId::from_bytes([1; 16]),
            SubjectId::from_bytes([2; 16]),
        ],
        confirmed_at: t0(),
        symptom_onset: None,
        infectious_from: t0().saturating_add_ms(-2 * DAY_MS),
        infectious_until: Some(t0()),
        status: CaseStatus::Updated,
        region: None,
    };
    let out = event.fan_out();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].subject, SubjectId::from_bytes([2; 16]));
    assert!(out.iter().all(|sc| encode_datum(sc).is_ok()));
}

#[test]
fn segment_update_rules() {
    let ok = sample_segment();
    assert!(encode_datum(&ok).is_ok());
    assert!(ok.is_case());
    // Same cell or an ancestor of the first footprint is fine; a descendant
    // or a neighbour is not.
    assert!(
        encode_datum(&SegmentUpdate {
            cell: ok.first_cell,
            ..ok.clone()
        })
        .is_ok()
    );
    let narrower = SegmentUpdate {
        first_cell: ok.cell,
        cell: ok.first_cell,
        ..ok.clone()
    };
    assert_eq!(
        refused(&narrower),
        ModelError::InvalidRecord {
            field: "cell",
            reason: "does not contain first_cell"
        }
    );
    let elsewhere = SegmentUpdate {
        cell: LatLng::new(35.1796, 129.0756)
            .unwrap()
            .to_cell(h3o::Resolution::Eight),
        ..ok.clone()
    };
    assert!(matches!(
        refused(&elsewhere),
        ModelError::InvalidRecord { field: "cell", .. }
    ));
    let backwards = SegmentUpdate {
        end: ok.start.saturating_add_ms(-1),
        ..ok.clone()
    };
    assert!(matches!(
        refused(&backwards),
        ModelError::TimestampOrder { field: "end", .. }
    ));
    let empty = SegmentUpdate {
        observations: 0,
        ..ok.clone()
    };
    assert!(matches!(
        refused(&empty),
        ModelError::InvalidRecord {
            field: "observations",
            ..
        }
    ));
    let dup = SegmentUpdate {
        cases: vec![ok.cases[0].clone(), ok.cases[0].clone()],
        ..ok.clone()
    };
    assert_eq!(
        refused(&dup),
        ModelError::InvalidRecord {
            field: "cases",
            reason: "duplicate case_id"
        }
    );
    let mut tag = ok.cases[0].clone();
    tag.infectious_until = Some(tag.infectious_from.saturating_add_ms(-1));
    let bad_tag = SegmentUpdate {
        cases: vec![tag],
        ..ok.clone()
    };
    assert!(matches!(
        refused(&bad_tag),
        ModelError::TimestampOrder {
            field: "cases.infectious_until",
            ..
        }
    ));
    // Counters beyond the Avro int are refused, not wrapped.
    let huge = SegmentUpdate {
        lane: u32::MAX,
        ..ok.clone()
    };
    assert!(matches!(
        encode_datum(&huge),
        Err(ModelError::InvalidRecord { field: "lane", .. })
    ));
    let huge = SegmentUpdate {
        observations: 1 << 31,
        ..ok.clone()
    };
    assert!(encode_datum(&huge).is_err());
    // A negative lane on the wire.
    let value = with_field(ok.to_value(), "lane", Value::Int(-1));
    assert!(matches!(
        decode_datum::<SegmentUpdate>(&datum_of(value, SegmentUpdate::schema())),
        Err(ModelError::InvalidRecord { field: "lane", .. })
    ));
    // The repartition key: the res-6 ancestor, big-endian.
    let key = ok.partition_key(h3o::Resolution::Six).unwrap();
    let parent = ok.partition_cell(h3o::Resolution::Six).unwrap();
    assert_eq!(u64::from_be_bytes(key), parent.raw());
    assert!(parent.contains(ok.cell));
    assert_eq!(ok.partition_cell(h3o::Resolution::Nine), None);
}

#[test]
fn exposure_candidate_rules() {
    let ok = sample_candidate();
    assert!(encode_datum(&ok).is_ok());
    assert!(
        encode_datum(&ExposureCandidate {
            overlap: None,
            ..ok.clone()
        })
        .is_ok()
    );
    let w = ok.overlap.unwrap();
    let empty = ExposureCandidate {
        overlap: Some(TimeWindow::new(w.start(), w.start()).unwrap()),
        ..ok.clone()
    };
    assert!(matches!(
        refused(&empty),
        ModelError::InvalidRecord {
            field: "overlap_end",
            ..
        }
    ));
    let itself = ExposureCandidate {
        contact: ok.case_subject,
        ..ok.clone()
    };
    assert!(matches!(
        refused(&itself),
        ModelError::InvalidRecord {
            field: "contact",
            ..
        }
    ));
    let huge = ExposureCandidate {
        contact_segment: SegmentRef {
            lane: u32::MAX,
            ..ok.contact_segment
        },
        ..ok.clone()
    };
    assert!(matches!(
        encode_datum(&huge),
        Err(ModelError::InvalidRecord {
            field: "contact_lane",
            ..
        })
    ));
    // From a foreign producer: one bound without the other, or backwards.
    let half = with_field(
        ok.to_value(),
        "overlap_end",
        Value::Union(0, Box::new(Value::Null)),
    );
    assert!(matches!(
        decode_datum::<ExposureCandidate>(&datum_of(half, ExposureCandidate::schema())),
        Err(ModelError::InvalidRecord {
            field: "overlap_end",
            ..
        })
    ));
    let backwards = with_field(
        ok.to_value(),
        "overlap_end",
        Value::Union(
            1,
            Box::new(Value::TimestampMillis(w.start().as_millis() - 1)),
        ),
    );
    assert!(matches!(
        decode_datum::<ExposureCandidate>(&datum_of(backwards, ExposureCandidate::schema())),
        Err(ModelError::TimestampOrder {
            field: "overlap_end",
            ..
        })
    ));
    let negative = with_field(ok.to_value(), "case_lane", Value::Int(-3));
    assert!(matches!(
        decode_datum::<ExposureCandidate>(&datum_of(negative, ExposureCandidate::schema())),
        Err(ModelError::InvalidRecord {
            field: "case_lane",
            ..
        })
    ));
}

/// Frames of the internal records, from every frame decoder, after a few
/// byte flips: no panic.
fn internal_frames() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        common::subject_case().prop_map(|r| encode_single_object(&r).unwrap()),
        common::segment_update().prop_map(|r| encode_single_object(&r).unwrap()),
        common::exposure_candidate().prop_map(|r| encode_single_object(&r).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_internal_frames_never_panic(
        frame in internal_frames(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut frame = frame;
        for (i, b) in flips {
            let at = i.index(frame.len());
            frame[at] ^= b;
        }
        decode_everything(&frame);
        decode_everything(&frame[10..]);
    }
}
