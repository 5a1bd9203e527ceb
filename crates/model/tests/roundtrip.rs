//! Every record survives every codec unchanged: to_value → apache-avro
//! encode against the `.avsc` → decode → from_value, and the same through
//! plain datums, single-object and Confluent framing.

// Test helpers outside #[test] functions: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Debug;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use epitrace_model::*;
use proptest::prelude::*;

mod common;

fn round_trip<T: AvroRecord + PartialEq + Debug>(record: &T) {
    // The raw library path, against the schema parsed from the .avsc.
    let value = record.to_value();
    let bytes = GenericDatumWriter::builder(T::schema())
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    let decoded = GenericDatumReader::builder(T::schema())
        .build()
        .unwrap()
        .read_value(&mut bytes.as_slice())
        .unwrap();
    assert_eq!(&T::from_value(&decoded).unwrap(), record);

    // The crate's codecs.
    let datum = encode_datum(record).unwrap();
    assert_eq!(datum, bytes);
    assert_eq!(&decode_datum::<T>(&datum).unwrap(), record);

    let opts = DecodeOptions::default();
    let single = encode_single_object(record).unwrap();
    assert_eq!(single[..2], [0xC3, 0x01]);
    assert_eq!(single[10..], datum[..]);
    assert_eq!(&decode_single_object::<T>(&single, &opts).unwrap(), record);

    let mut ids = ConfluentIds::new();
    ids.insert_current::<T>(42);
    let confluent = encode_confluent(record, 42).unwrap();
    assert_eq!(confluent[..5], [0, 0, 0, 0, 42]);
    assert_eq!(
        &decode_confluent::<T>(&confluent, &ids, &opts).unwrap(),
        record
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn location_ping(r in common::location_ping()) { round_trip(&r); }

    #[test]
    fn card_transaction(r in common::card_transaction()) { round_trip(&r); }

    #[test]
    fn venue_checkin(r in common::venue_checkin()) { round_trip(&r); }

    #[test]
    fn case_event(r in common::case_event()) { round_trip(&r); }

    #[test]
    fn data_access_approval(r in common::data_access_approval()) { round_trip(&r); }

    #[test]
    fn interview_entry(r in common::interview_entry()) { round_trip(&r); }

    #[test]
    fn visit(r in common::visit()) { round_trip(&r); }

    #[test]
    fn exposure(r in common::exposure()) { round_trip(&r); }

    #[test]
    fn cluster_alert(r in common::cluster_alert()) { round_trip(&r); }

    #[test]
    fn dead_letter(r in common::dead_letter()) { round_trip(&r); }

    #[test]
    fn audit_record(r in common::audit_record()) { round_trip(&r); }

    #[test]
    fn subject_case(r in common::subject_case()) { round_trip(&r); }

    #[test]
    fn segment_update(r in common::segment_update()) { round_trip(&r); }

    #[test]
    fn exposure_candidate(r in common::exposure_candidate()) { round_trip(&r); }

    /// Fanning a case event out gives one valid record per subject, each
    /// carrying the event's case, status and window.
    #[test]
    fn case_event_fans_out_to_each_subject(e in common::case_event()) {
        let out = e.fan_out();
        prop_assert_eq!(out.len(), e.subjects.len());
        for (sc, subject) in out.iter().zip(&e.subjects) {
            prop_assert_eq!(&sc.subject, subject);
            prop_assert_eq!(&sc.case_id, &e.case_id);
            prop_assert_eq!(sc.status, e.status);
            prop_assert_eq!(sc.infectious_from, e.infectious_from);
            prop_assert_eq!(sc.infectious_until, e.infectious_until);
            prop_assert_eq!(sc.confirmed_at, e.confirmed_at);
            prop_assert_eq!(sc.tag().case_id, e.case_id.clone());
            round_trip(sc);
        }
    }

    /// The repartition key is the res-6 (or any coarser) ancestor of the
    /// segment's cell, big-endian.
    #[test]
    fn segment_partition_key(r in common::segment_update(), res in 0u8..=15) {
        let res = h3o::Resolution::try_from(res).unwrap();
        match r.partition_cell(res) {
            Some(p) => {
                prop_assert!(res <= r.cell.resolution());
                prop_assert!(p.contains(r.cell) && p.contains(r.first_cell));
                prop_assert_eq!(p.resolution(), res);
                prop_assert_eq!(r.partition_key(res), Some(p.raw().to_be_bytes()));
            }
            None => {
                prop_assert!(res > r.cell.resolution());
                prop_assert_eq!(r.partition_key(res), None);
            }
        }
    }
}
