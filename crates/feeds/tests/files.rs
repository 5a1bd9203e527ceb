//! Reading provider files: both formats, line numbers in errors, headers,
//! and what a bad row may not say.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Write;

use epitrace_core::config::ExposureConfig;
use epitrace_feeds::{
    Feed, FeedError, FeedReader, Format, Produced, PseudonymKey, Pseudonymizer, write_header,
    write_row,
};

fn reader(text: &str, feed: Feed, format: Format) -> Result<FeedReader, FeedError> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let path = f.into_temp_path().keep().unwrap();
    FeedReader::open(
        &path,
        feed,
        format,
        Pseudonymizer::new(PseudonymKey::new(vec![3; 32]).unwrap()),
        ExposureConfig::default(),
        None,
    )
}

const PING: [&str; 8] = [
    "+82 10-1234-5678",
    "skt",
    "2020-05-02T09:00:00+09:00",
    "37.5344",
    "126.9946",
    "150",
    "CELL",
    "S1",
];

#[test]
fn csv_and_json_lines_give_the_same_records() {
    let mut csv = Vec::new();
    let mut jsonl = Vec::new();
    write_header(&mut csv, Feed::Telecom, Format::Csv).unwrap();
    write_row(&mut csv, Feed::Telecom, Format::Csv, &PING).unwrap();
    write_row(&mut jsonl, Feed::Telecom, Format::JsonLines, &PING).unwrap();
    let a: Vec<Produced> = reader(
        std::str::from_utf8(&csv).unwrap(),
        Feed::Telecom,
        Format::Csv,
    )
    .unwrap()
    .map(Result::unwrap)
    .collect();
    let b: Vec<Produced> = reader(
        std::str::from_utf8(&jsonl).unwrap(),
        Feed::Telecom,
        Format::JsonLines,
    )
    .unwrap()
    .map(Result::unwrap)
    .collect();
    assert_eq!(a, b);
    let Produced::Ping(p) = &a[0] else { panic!() };
    assert_eq!(p.observed_at.as_millis(), 1_588_377_600_000);
}

#[test]
fn bad_rows_name_their_line_and_column_but_not_the_id() {
    let text = "msisdn,provider,observed_at,lat,lng,accuracy_m,source,site_id\n\
        +821012345678,skt,2020-05-02T00:00:00Z,37.5,126.9,150,CELL,\n\
        +821012345678,skt,2020-05-02T00:00:00Z,97.5,126.9,150,CELL,\n\
        +8210123x5678,skt,2020-05-02T00:00:00Z,37.5,126.9,150,CELL,\n\
        +821012345678,skt,yesterday,37.5,126.9,150,CELL,\n\
        +821012345678,skt\n\
        +821012345678,skt,2020-05-02T00:00:00Z,37.5,126.9,150,SATELLITE,\n";
    let results: Vec<_> = reader(text, Feed::Telecom, Format::Csv).unwrap().collect();
    assert!(results[0].is_ok());
    let errors: Vec<(u64, &str)> = results[1..]
        .iter()
        .map(|r| {
            let e = r.as_ref().unwrap_err();
            assert!(!e.to_string().contains("123"), "the raw id leaked: {e}");
            (e.line, e.field)
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            (3, "lat/lng"),
            (4, "msisdn"),
            (5, "observed_at"),
            (6, "row"),
            (7, "source")
        ]
    );
}

#[test]
fn headers_must_have_every_required_column_and_nothing_unknown() {
    let missing = "msisdn,provider,observed_at,lat,lng,source\n";
    assert!(matches!(
        reader(missing, Feed::Telecom, Format::Csv),
        Err(FeedError::Header { .. })
    ));
    let unknown = "msisdn,provider,observed_at,lat,lng,accuracy_m,source,site_idd\n";
    assert!(matches!(
        reader(unknown, Feed::Telecom, Format::Csv),
        Err(FeedError::Header { .. })
    ));
    // Optional columns may be left out, and columns come in any order.
    let reordered = "source,msisdn,provider,observed_at,lng,lat,accuracy_m\nGPS,+821012345678,skt,1588377600000,126.9,37.5,20\n";
    let r: Vec<_> = reader(reordered, Feed::Telecom, Format::Csv)
        .unwrap()
        .collect();
    assert!(r[0].is_ok(), "{r:?}");
}

#[test]
fn cases_take_lists_and_a_default_infectious_start() {
    let text = "{\"case_id\":\"C1\",\"msisdns\":[\"+821012345678\",\"+821087654321\"],\"card_numbers\":[\"4111 1111 1111 1111\"],\"confirmed_at\":\"2020-05-05T00:00:00Z\",\"symptom_onset\":\"2020-05-03T00:00:00Z\"}\n\
        {\"case_id\":\"C2\",\"confirmed_at\":\"2020-05-05T00:00:00Z\"}\n\
        {\"case_id\":\"C3\",\"msisdns\":\"+821012345678\",\"confirmed_at\":\"2020-05-05T00:00:00Z\",\"bogus\":1}\n";
    let r: Vec<_> = reader(text, Feed::Cases, Format::JsonLines)
        .unwrap()
        .collect();
    let Ok(Produced::Case(c)) = &r[0] else {
        panic!("{:?}", r[0])
    };
    assert_eq!(c.subjects.len(), 3);
    // Two days before onset (the default look-back).
    assert_eq!(
        c.infectious_from.as_millis(),
        1_588_464_000_000 - 2 * 86_400_000
    );
    assert_eq!(
        r[1].as_ref().unwrap_err().field,
        "msisdns",
        "a case needs an id"
    );
    assert!(r[2].as_ref().unwrap_err().reason.contains("bogus"));
}

/// The auditor's case: a phone number in the wrong column, and values that
/// must not come back in error messages.
#[test]
fn identifiers_in_the_wrong_column_are_refused_and_no_error_echoes_a_value() {
    let text = "msisdn,provider,observed_at,lat,lng,accuracy_m,source,site_id\n\
        +821012345678,010-5555-8888,2020-05-02T00:00:00Z,37.5,126.9,150,CELL,\n\
        +821012345678,telco-a,2020-05-02T00:00:00Z,37.5,126.9,150,010-5555-8888,\n\
        +821012345678,telco-z,2020-05-02T00:00:00Z,37.5,126.9,150,CELL,\n\
        +821012345678,telco-a,2020-05-02T00:00:00Z,37.5,126.9,150,CELL,4111 1111 1111 1111\n\
        +821012345678,telco-a,2020-05-02T99:00:00Z,37.5,126.9,150,CELL,\n\
        +821012345678,telco-a,2020-05-02T00:00:00Z,97.5555,126.9,150,CELL,\n\
        +821012345678,telco-a,2020-05-02T00:00:00Z,37.5,126.9,150,CELL,S-88\n";
    let providers = vec!["telco-a".to_owned(), "telco-b".to_owned()];
    let results: Vec<_> = reader(text, Feed::Telecom, Format::Csv)
        .unwrap()
        .with_providers(providers)
        .collect();
    let errors: Vec<(u64, &str)> = results[..6]
        .iter()
        .map(|r| {
            let e = r.as_ref().unwrap_err();
            let text = e.to_string();
            for value in ["5555", "8888", "telco-z", "1111", "99:00", "97.5"] {
                assert!(!text.contains(value), "a value came back: {text}");
            }
            (e.line, e.field)
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            (2, "provider"),
            (3, "source"),
            (4, "provider"),
            (5, "site_id"),
            (6, "observed_at"),
            (7, "lat/lng"),
        ]
    );
    assert!(results[6].is_ok(), "{:?}", results[6]);
    let e = results[1].as_ref().unwrap_err().to_string();
    assert!(e.contains("CELL, GPS or WIFI"), "{e}");
    // A business registration number (10 digits, not a mobile) is a fine
    // merchant id; a card number is not.
    let cards = "card_number,issuer,merchant_id,mcc,observed_at,lat,lng,accuracy_m\n\
        4111111111111111,card-a,123-45-67890,5812,2020-05-02T00:00:00Z,37.5,126.9,30\n\
        4111111111111111,card-a,5500 0000 0000 0004,5812,2020-05-02T00:00:00Z,37.5,126.9,30\n";
    let r: Vec<_> = reader(cards, Feed::Card, Format::Csv).unwrap().collect();
    assert!(r[0].is_ok(), "{:?}", r[0]);
    assert_eq!(r[1].as_ref().unwrap_err().field, "merchant_id");
    // A file without its header: the row in its place is not quoted.
    let headless = "+821055558888,telco-a,2020-05-02T00:00:00Z,37.5,126.9,150,CELL,\n";
    let Err(e) = reader(headless, Feed::Telecom, Format::Csv) else {
        panic!("a headless file was read");
    };
    let e = e.to_string();
    assert!(!e.contains("5555") && !e.contains("telco-a"), "{e}");
}
