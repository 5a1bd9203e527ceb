//! The hand-written binary codecs of the hot records agree with apache-avro's
//! generic path: the same bytes for every record, and for every input the
//! same record or an error of the same kind.

// Test helpers outside #[test] functions: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use epitrace_model::codec::{read_generic, write_generic};
use epitrace_model::*;
use proptest::prelude::*;

mod common;

/// Same reason code (the messages of `avro` errors differ).
fn same_kind(fast: &ModelError, generic: &ModelError) -> bool {
    fast.reason_code() == generic.reason_code()
}

fn check_bytes<T: AvroRecord + PartialEq + std::fmt::Debug>(record: &T) {
    let mut fast = Vec::new();
    record.write_binary(&mut fast).unwrap();
    let mut generic = Vec::new();
    write_generic(record, &mut generic).unwrap();
    assert_eq!(fast, generic);
    assert_eq!(&T::read_binary(&fast).unwrap(), record);
}

fn check_read<T: AvroRecord + PartialEq + std::fmt::Debug>(datum: &[u8]) -> Result<(), String> {
    match (T::read_binary(datum), read_generic::<T>(datum)) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Err(a), Err(b)) if same_kind(&a, &b) => Ok(()),
        (a, b) => Err(format!("{}: fast {a:?}, generic {b:?}", T::NAME)),
    }
}

fn flip(mut datum: Vec<u8>, flips: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    for (i, b) in flips {
        if !datum.is_empty() {
            let at = i.index(datum.len());
            datum[at] ^= b;
        }
    }
    datum
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn location_ping_bytes_agree(r in common::location_ping()) {
        check_bytes(&r);
    }

    #[test]
    fn segment_update_bytes_agree(r in common::segment_update()) {
        check_bytes(&r);
    }

    #[test]
    fn exposure_candidate_bytes_agree(r in common::exposure_candidate()) {
        check_bytes(&r);
    }

    #[test]
    fn arbitrary_bytes_read_alike(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_read::<LocationPing>(&bytes).map_err(TestCaseError::fail)?;
        check_read::<SegmentUpdate>(&bytes).map_err(TestCaseError::fail)?;
        check_read::<ExposureCandidate>(&bytes).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_exposure_candidates_read_alike(
        r in common::exposure_candidate(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let datum = encode_datum(&r).unwrap();
        let short = &datum[..cut.index(datum.len())];
        check_read::<ExposureCandidate>(short).map_err(TestCaseError::fail)?;
        check_read::<ExposureCandidate>(&flip(datum, &flips)).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_pings_read_alike(
        r in common::location_ping(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let datum = encode_datum(&r).unwrap();
        let short = &datum[..cut.index(datum.len())];
        check_read::<LocationPing>(short).map_err(TestCaseError::fail)?;
        check_read::<LocationPing>(&flip(datum, &flips)).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn mutated_segment_updates_read_alike(
        r in common::segment_update(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let datum = encode_datum(&r).unwrap();
        let short = &datum[..cut.index(datum.len())];
        check_read::<SegmentUpdate>(short).map_err(TestCaseError::fail)?;
        check_read::<SegmentUpdate>(&flip(datum, &flips)).map_err(TestCaseError::fail)?;
    }
}

/// Arrays written in negative-count blocks (allowed by the specification,
/// not produced by apache-avro) read the same on both paths.
#[test]
fn negative_count_array_blocks_read_alike() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let r = std::iter::repeat_with(|| {
        common::segment_update()
            .new_tree(&mut runner)
            .unwrap()
            .current()
    })
    .find(|r| !r.sources.is_empty())
    .unwrap();
    let datum = encode_datum(&r).unwrap();
    // Re-encode the sources array (after subject, lane and four longs) as
    // one block of -n items with its byte size.
    let mut rd = datum;
    let n = r.sources.len();
    assert!(n > 0 && n < 64);
    let mut at = 16;
    for _ in 0..5 {
        while rd[at] & 0x80 != 0 {
            at += 1;
        }
        at += 1;
    }
    assert_eq!(rd[at], u8::try_from(n * 2).unwrap());
    // -n zig-zags to 2n - 1; the byte size is n (one byte per symbol).
    rd.splice(
        at..=at,
        [
            u8::try_from(2 * n - 1).unwrap(),
            u8::try_from(2 * n).unwrap(),
        ],
    );
    assert_eq!(SegmentUpdate::read_binary(&rd).unwrap(), r);
    assert_eq!(read_generic::<SegmentUpdate>(&rd).unwrap(), r);
}
