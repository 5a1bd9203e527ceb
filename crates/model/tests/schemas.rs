//! The schema files: they parse, are documented and follow the conventions;
//! the released baselines are readable by the current schemas; the
//! fingerprints follow the specification.

// Test helpers outside #[test] functions: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use apache_avro::GenericSingleObjectWriter;
use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use epitrace_model::schema::{self, SCHEMA_FILES};
use epitrace_model::*;
use serde_json::Value as Json;

mod common;

fn schemas_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas"))
}

fn json(text: &str) -> Json {
    serde_json::from_str(text).unwrap()
}

#[test]
fn every_schema_parses() {
    for file in SCHEMA_FILES {
        schema::SchemaSet::build(file).unwrap_or_else(|e| panic!("{}: {e}", file.file));
        for (version, text) in file.released {
            schema::parse(text).unwrap_or_else(|e| panic!("{version}/{}: {e}", file.file));
        }
    }
}

#[test]
fn every_avsc_on_disk_is_compiled_in_and_released() {
    let mut on_disk: Vec<String> = std::fs::read_dir(schemas_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".avsc"))
        .collect();
    on_disk.sort();
    let mut compiled: Vec<String> = SCHEMA_FILES.iter().map(|f| f.file.to_owned()).collect();
    compiled.sort();
    assert_eq!(on_disk, compiled);
    for file in SCHEMA_FILES {
        let released = schemas_dir().join("released/v1").join(file.file);
        assert!(released.exists(), "{} has no released/v1 copy", file.file);
        // File names are the record name in snake_case.
        let snake: String = file
            .record
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                sep.into_iter()
                    .chain(std::iter::once(c.to_ascii_lowercase()))
            })
            .collect();
        assert_eq!(format!("{snake}.avsc"), file.file);
        let doc = json(file.current);
        assert_eq!(doc["name"], file.record);
        assert_eq!(doc["namespace"], "epitrace.v1");
    }
}

/// Calls `visit(path, node)` on every JSON object of a schema.
fn walk<'a>(path: &str, node: &'a Json, visit: &mut dyn FnMut(&str, &'a Json)) {
    match node {
        Json::Object(map) => {
            visit(path, node);
            for (k, v) in map {
                walk(&format!("{path}/{k}"), v, visit);
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(&format!("{path}/{i}"), v, visit);
            }
        }
        _ => {}
    }
}

fn has_doc(node: &Json) -> bool {
    node["doc"].as_str().is_some_and(|d| !d.trim().is_empty())
}

#[test]
fn every_record_field_enum_and_fixed_is_documented() {
    for file in SCHEMA_FILES {
        let doc = json(file.current);
        let mut checked = 0;
        walk(file.file, &doc, &mut |path, node| {
            let is_field = node.get("name").is_some()
                && node.get("type").is_some()
                && !matches!(node["type"].as_str(), Some("record" | "enum" | "fixed"));
            let is_named = matches!(node["type"].as_str(), Some("record" | "enum" | "fixed"));
            if is_field || is_named {
                checked += 1;
                assert!(has_doc(node), "{path}: no doc");
            }
        });
        assert!(checked > 3, "{}: walked nothing", file.file);
    }
}

/// The fields of every record in a schema document: (record, field).
fn fields(doc: &Json) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    walk("", doc, &mut |_, node| {
        if node["type"] == "record" {
            for f in node["fields"].as_array().unwrap() {
                out.push((f["name"].as_str().unwrap().to_owned(), f["type"].clone()));
            }
        }
    });
    out
}

fn is_timestamp(t: &Json) -> bool {
    t["type"] == "long" && t["logicalType"] == "timestamp-millis"
}

#[test]
fn timestamps_are_timestamp_millis_and_subjects_fixed_16() {
    for file in SCHEMA_FILES {
        for (name, ty) in fields(&json(file.current)) {
            let inner = match &ty {
                // ["null", X]: the optional form must default to null.
                Json::Array(branches) => {
                    assert_eq!(branches.len(), 2, "{}.{name}", file.file);
                    assert_eq!(branches[0], "null", "{}.{name}", file.file);
                    branches[1].clone()
                }
                other => other.clone(),
            };
            if name.ends_with("_at")
                || name.ends_with("_start")
                || name.ends_with("_end")
                || matches!(name.as_str(), "start" | "end" | "at")
                || name == "symptom_onset"
                || name.starts_with("infectious_")
            {
                assert!(
                    is_timestamp(&inner),
                    "{}.{name} is not timestamp-millis",
                    file.file
                );
            }
            if matches!(
                name.as_str(),
                "subject" | "contact" | "subjects" | "case_subject"
            ) {
                let fixed = if name == "subjects" {
                    inner["items"].clone()
                } else {
                    inner
                };
                let fixed = if fixed.is_string() {
                    assert_eq!(fixed, "epitrace.v1.SubjectId");
                    continue;
                } else {
                    fixed
                };
                assert_eq!(fixed["type"], "fixed", "{}.{name}", file.file);
                assert_eq!(fixed["size"], 16, "{}.{name}", file.file);
                assert_eq!(fixed["name"], "SubjectId", "{}.{name}", file.file);
            }
        }
        // Optional fields default to null.
        walk(file.file, &json(file.current), &mut |path, node| {
            if node["type"].is_array() && node.get("name").is_some() {
                assert_eq!(node.get("default"), Some(&Json::Null), "{path}");
            }
        });
    }
}

#[test]
fn rust_enums_match_schema_symbols() {
    fn symbols(file: &schema::SchemaFile, name: &str) -> Vec<String> {
        let mut out = None;
        walk("", &json(file.current), &mut |_, node| {
            if node["type"] == "enum" && node["name"] == name {
                out = Some(
                    node["symbols"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_owned())
                        .collect(),
                );
            }
        });
        out.unwrap_or_else(|| panic!("no enum {name} in {}", file.file))
    }
    macro_rules! check {
        ($file:expr, $ty:ty) => {
            let expected = symbols(&$file, stringify!($ty));
            let actual: Vec<String> = <$ty>::ALL
                .iter()
                .map(|s| s.as_symbol().to_owned())
                .collect();
            assert_eq!(actual, expected, stringify!($ty));
            for s in <$ty>::ALL {
                assert_eq!(<$ty>::from_symbol(s.as_symbol()).unwrap(), *s);
            }
        };
    }
    check!(schema::LOCATION_PING, LocationSource);
    check!(schema::CASE_EVENT, CaseStatus);
    check!(schema::DATA_ACCESS_APPROVAL, DataCategory);
    check!(schema::VISIT, ObservationSource);
    check!(schema::EXPOSURE, ExposureStatus);
    check!(schema::CLUSTER_ALERT, ClusterStatus);
    check!(schema::AUDIT_RECORD, Role);
    check!(schema::AUDIT_RECORD, AuditAction);
    check!(schema::AUDIT_RECORD, AuditOutcome);
    check!(schema::SUBJECT_CASE, CaseStatus);
    check!(schema::SEGMENT_UPDATE, ObservationSource);
    check!(schema::SEGMENT_UPDATE, SegmentUpdateKind);
    assert!(matches!(
        LocationSource::from_symbol("LTE"),
        Err(ModelError::UnknownSymbol {
            field: "source",
            ..
        })
    ));
}

/// A named type that several files define (each file parses on its own)
/// is the same type everywhere: `SubjectId`, `CaseStatus` (case events and
/// their fan-out), `ObservationSource` (visits and segments). Only the docs
/// may differ.
#[test]
fn named_types_shared_between_files_are_identical() {
    fn strip_docs(node: &mut Json) {
        match node {
            Json::Object(map) => {
                map.remove("doc");
                map.values_mut().for_each(strip_docs);
            }
            Json::Array(items) => items.iter_mut().for_each(strip_docs),
            _ => {}
        }
    }
    let mut seen: std::collections::BTreeMap<String, (&str, Json)> = Default::default();
    let mut shared = std::collections::BTreeSet::new();
    for file in SCHEMA_FILES {
        let doc = json(file.current);
        let mut in_file = std::collections::BTreeSet::new();
        walk(file.file, &doc, &mut |path, node| {
            if !matches!(node["type"].as_str(), Some("record" | "enum" | "fixed")) {
                return;
            }
            let name = format!(
                "{}.{}",
                node["namespace"].as_str().unwrap_or("epitrace.v1"),
                node["name"].as_str().unwrap()
            );
            // In Avro a name is defined once per schema, then referenced.
            assert!(in_file.insert(name.clone()), "{path}: {name} defined twice");
            let mut def = node.clone();
            strip_docs(&mut def);
            match seen.get(&name) {
                Some((first, other)) => {
                    assert_eq!(&def, other, "{path}: {name} differs from {first}");
                    shared.insert(name);
                }
                None => {
                    seen.insert(name, (file.file, def));
                }
            }
        });
    }
    for name in [
        "epitrace.v1.SubjectId",
        "epitrace.v1.CaseStatus",
        "epitrace.v1.ObservationSource",
    ] {
        assert!(shared.contains(name), "{name} is not shared");
    }
}

/// A named type repeated within one file is referenced by name after its
/// first definition (Avro allows one definition per schema).
#[test]
fn exposure_candidate_refers_to_subject_id_by_name() {
    let doc = json(schema::EXPOSURE_CANDIDATE.current);
    let fields = doc["fields"].as_array().unwrap();
    let field = |n: &str| fields.iter().find(|f| f["name"] == n).unwrap();
    assert_eq!(field("case_subject")["type"]["type"], "fixed");
    assert_eq!(field("contact")["type"], "epitrace.v1.SubjectId");
}

#[test]
fn topic_and_internal_records_are_all_compiled_in() {
    let records: Vec<&str> = SCHEMA_FILES.iter().map(|f| f.record).collect();
    assert_eq!(records.len(), 14, "11 topic records and 3 internal ones");
    for internal in ["SubjectCase", "SegmentUpdate", "ExposureCandidate"] {
        assert!(records.contains(&internal), "{internal}");
    }
}

// ------------------------------------------------------- compatibility

#[test]
fn current_schemas_read_every_released_schema() {
    for file in SCHEMA_FILES {
        let current = schema::parse(file.current).unwrap();
        for (version, text) in file.released {
            let released = schema::parse(text).unwrap();
            let compatibility =
                SchemaCompatibility::can_read(&released, &current).unwrap_or_else(|e| {
                    panic!("{}: current cannot read released {version}: {e}", file.file)
                });
            assert_eq!(
                compatibility,
                Compatibility::Full,
                "{} {version}",
                file.file
            );
        }
    }
}

/// Parses a schema after editing its JSON.
fn edited(text: &str, edit: impl FnOnce(&mut Json)) -> Schema {
    let mut doc = json(text);
    edit(&mut doc);
    Schema::parse_str(&doc.to_string()).unwrap()
}

#[test]
fn compatibility_check_can_fail() {
    let released = schema::parse(schema::LOCATION_PING.released[0].1).unwrap();
    // A new field without a default cannot be filled from old data.
    let added = edited(schema::LOCATION_PING.current, |d| {
        d["fields"].as_array_mut().unwrap().push(serde_json::json!({
            "name": "battery", "type": "int", "doc": "Battery level."
        }));
    });
    assert!(SchemaCompatibility::can_read(&released, &added).is_err());
    // A changed field type cannot be read either.
    let retyped = edited(schema::LOCATION_PING.current, |d| {
        d["fields"][1]["type"] = serde_json::json!("long");
    });
    assert!(SchemaCompatibility::can_read(&released, &retyped).is_err());
    // Adding an optional field with a default is fine.
    let optional = edited(schema::LOCATION_PING.current, |d| {
        d["fields"].as_array_mut().unwrap().push(serde_json::json!({
            "name": "battery", "type": ["null", "int"], "default": null, "doc": "Battery level."
        }));
    });
    assert!(SchemaCompatibility::can_read(&released, &optional).is_ok());
}

#[test]
fn bytes_written_with_released_schema_decode_with_current() {
    let ping = common::sample_ping();
    let released = schema::parse(schema::LOCATION_PING.released[0].1).unwrap();
    let datum = GenericDatumWriter::builder(&released)
        .build()
        .unwrap()
        .write_value_to_vec(ping.to_value())
        .unwrap();
    let mut frame = vec![0xC3, 0x01];
    frame.extend_from_slice(&schema::fingerprint(&released).to_le_bytes());
    frame.extend_from_slice(&datum);
    let decoded: LocationPing = decode_single_object(&frame, &DecodeOptions::default()).unwrap();
    assert_eq!(decoded, ping);
}

#[test]
fn a_bare_datum_of_a_released_schema_is_read_by_trying_each_writer() {
    // Stored state written before values carried their fingerprint: an
    // exposure as v1 wrote it (no `evidence`) and one as the current schema
    // writes it both decode.
    let mut exposure = Exposure {
        exposure_id: ExposureId::new("e-1").unwrap(),
        case_id: CaseId::new("KR-1").unwrap(),
        contact: SubjectId::from_bytes([7; 16]),
        first_cell: Cell::new(0x0892_830a_8a07_ffff).unwrap(),
        windows: vec![
            TimeWindow::new(
                EventTime::from_millis("t", 1_588_377_600_000).unwrap(),
                EventTime::from_millis("t", 1_588_378_500_000).unwrap(),
            )
            .unwrap(),
        ],
        cumulative_s: 900,
        risk: Probability::new("risk", 0.25).unwrap(),
        status: ExposureStatus::New,
        detected_at: EventTime::from_millis("t", 1_588_378_500_000).unwrap(),
        evidence: vec![DataCategory::Location, DataCategory::Interview],
        likelihood: Some(Probability::new("likelihood", 0.8).unwrap()),
        contact_class: Some(ContactClass::Close),
        basis: Some(LocationBasis {
            fine_s: 600,
            near_s: 0,
            wide_s: 300,
            apart_s: 0,
            transit_s: 0,
        }),
    };
    let current = encode_datum(&exposure).unwrap();
    assert_eq!(
        codec::decode_datum_any_version::<Exposure>(&current).unwrap(),
        exposure
    );
    let released = schema::parse(schema::EXPOSURE.released[0].1).unwrap();
    let Value::Record(mut fields) = exposure.to_value() else {
        unreachable!()
    };
    fields.retain(|(n, _)| {
        !["evidence", "likelihood", "contact_class", "basis"].contains(&n.as_str())
    });
    let old = GenericDatumWriter::builder(&released)
        .build()
        .unwrap()
        .write_value_to_vec(Value::Record(fields))
        .unwrap();
    assert!(
        decode_datum::<Exposure>(&old).is_err(),
        "not the current layout"
    );
    exposure.evidence = Vec::new();
    exposure.likelihood = None;
    exposure.contact_class = None;
    exposure.basis = None;
    assert_eq!(
        codec::decode_datum_any_version::<Exposure>(&old).unwrap(),
        exposure
    );
    assert!(codec::decode_datum_any_version::<Exposure>(&[1, 2, 3]).is_err());
}

#[test]
fn older_writer_is_resolved_into_current_reader() {
    // A writer schema from before `site_id` existed: the current schema
    // reads it, filling the default.
    let older = edited(schema::LOCATION_PING.current, |d| {
        d["fields"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "site_id");
    });
    assert!(SchemaCompatibility::can_read(&older, LocationPing::schema()).is_ok());
    let ping = common::sample_ping();
    let Value::Record(mut fields) = ping.to_value() else {
        unreachable!()
    };
    fields.retain(|(n, _)| n != "site_id");
    let datum = GenericDatumWriter::builder(&older)
        .build()
        .unwrap()
        .write_value_to_vec(Value::Record(fields))
        .unwrap();
    let mut ids = ConfluentIds::new();
    ids.insert(3, older);
    let mut frame = vec![0, 0, 0, 0, 3];
    frame.extend_from_slice(&datum);
    let decoded: LocationPing = decode_confluent(&frame, &ids, &DecodeOptions::default()).unwrap();
    assert_eq!(decoded, ping);
}

// -------------------------------------------------------- fingerprints

#[test]
fn rabin_matches_specification_vectors() {
    // From the Avro repository's share/test/data/schema-tests.txt.
    let vectors: [(&str, i64); 4] = [
        (r#""null""#, 7_195_948_357_588_979_594),
        (r#""boolean""#, -6_970_731_678_124_411_036),
        (
            r#"{"name":"foo","type":"fixed","size":15}"#,
            1_756_455_273_707_447_556,
        ),
        (
            r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
            -1_759_257_747_318_642_341,
        ),
    ];
    for (pcf, fp) in vectors {
        assert_eq!(
            schema::rabin(pcf.as_bytes()).to_ne_bytes(),
            fp.to_ne_bytes(),
            "{pcf}"
        );
    }
}

#[test]
fn canonical_form_strips_logical_types_to_primitives() {
    let s = Schema::parse_str(
        r#"{"type":"record","name":"T","namespace":"n","doc":"d","fields":[
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"x"},
            {"name":"o","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null}]}"#,
    )
    .unwrap();
    assert_eq!(
        schema::canonical_form(&s),
        r#"{"name":"n.T","type":"record","fields":[{"name":"at","type":"long"},{"name":"o","type":["null","long"]}]}"#
    );
    // apache-avro 0.22 keeps `{"type":"long"}`: the reason for our own form.
    assert!(s.canonical_form().contains(r#"{"type":"long"}"#));
    for file in SCHEMA_FILES {
        let pcf = schema::canonical_form(&schema::parse(file.current).unwrap());
        assert!(!pcf.contains("logicalType") && !pcf.contains(r#"{"type":"long"}"#));
        assert!(!pcf.contains("doc"));
    }
}

#[test]
fn single_object_header_equals_apache_avro_without_logical_types() {
    // Without logical types both canonical forms agree, so our header must be
    // byte-for-byte the library's: C3 01 + fingerprint little-endian.
    let s = Schema::parse_str(
        r#"{"type":"record","name":"P","fields":[{"name":"a","type":"long"},{"name":"b","type":"string"}]}"#,
    )
    .unwrap();
    assert_eq!(schema::fingerprint(&s), schema::library_fingerprint(&s));
    let mut writer = GenericSingleObjectWriter::new_with_capacity(&s, 64).unwrap();
    let mut lib = Vec::new();
    let value = Value::Record(vec![
        ("a".into(), Value::Long(27)),
        ("b".into(), Value::String("foo".into())),
    ]);
    writer.write_value_ref(&value, &mut lib).unwrap();
    let mut ours = vec![0xC3, 0x01];
    ours.extend_from_slice(&schema::fingerprint(&s).to_le_bytes());
    ours.extend_from_slice(
        &GenericDatumWriter::builder(&s)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap(),
    );
    assert_eq!(ours, lib);
}

#[test]
fn frames_from_apache_avro_single_object_writer_decode() {
    // With logical types the library's fingerprint differs from ours; it is
    // registered as an alias, so the library's frames still decode.
    let ping = common::sample_ping();
    let mut writer =
        GenericSingleObjectWriter::new_with_capacity(LocationPing::schema(), 64).unwrap();
    let mut lib = Vec::new();
    writer.write_value_ref(&ping.to_value(), &mut lib).unwrap();
    let ours = encode_single_object(&ping).unwrap();
    assert_eq!(lib[10..], ours[10..]);
    assert_eq!(
        lib[2..10],
        schema::library_fingerprint(LocationPing::schema()).to_le_bytes()
    );
    assert_ne!(lib[2..10], ours[2..10]);
    let decoded: LocationPing = decode_single_object(&lib, &DecodeOptions::default()).unwrap();
    assert_eq!(decoded, ping);
}

#[test]
fn schema_sets_know_current_and_released_fingerprints() {
    let set = LocationPing::schema_set();
    assert_eq!(
        set.fingerprint(),
        schema::fingerprint(LocationPing::schema())
    );
    assert!(set.writer(set.fingerprint()).unwrap().same_as_current);
    let released = schema::parse(schema::LOCATION_PING.released[0].1).unwrap();
    assert!(set.writer(schema::fingerprint(&released)).is_some());
    assert!(set.writer(schema::library_fingerprint(&released)).is_some());
}

// ------------------------------------------------------------ reframing

#[test]
fn every_registered_topic_names_a_record_with_a_schema_file() {
    for topic in topics::REGISTERED {
        let record = topics::record_of(topic).unwrap();
        assert!(
            SCHEMA_FILES.iter().any(|f| f.record == record),
            "{topic}: {record} has no schema file"
        );
    }
    assert_eq!(topics::record_of(topics::CLUSTER_EVIDENCE), None);
    assert_eq!(topics::record_of("nope"), None);
}

#[test]
fn a_confluent_datum_becomes_the_single_object_frame_of_its_record() {
    let ping = common::sample_ping();
    let current = LocationPing::schema().clone();
    let datum = GenericDatumWriter::builder(&current)
        .build()
        .unwrap()
        .write_value_to_vec(ping.to_value())
        .unwrap();
    // A writer this build knows: the same datum under its fingerprint.
    let fp = schema::fingerprint(&current);
    let frame = codec::reframe("LocationPing", &current, fp, &datum).unwrap();
    assert_eq!(&frame[..2], &[0xC3, 0x01]);
    assert_eq!(&frame[2..10], &fp.to_le_bytes());
    assert_eq!(&frame[10..], datum.as_slice());
    let back: LocationPing = decode_single_object(&frame, &DecodeOptions::default()).unwrap();
    assert_eq!(back, ping);

    // A provider's own compatible schema (an extra field with a default):
    // resolved into the current one and encoded again.
    let theirs = edited(schema::LOCATION_PING.current, |d| {
        d["fields"].as_array_mut().unwrap().push(serde_json::json!({
            "name": "battery", "type": "int", "default": 0
        }));
    });
    let Value::Record(mut fields) = ping.to_value() else {
        unreachable!()
    };
    fields.push(("battery".into(), Value::Int(81)));
    let their_datum = GenericDatumWriter::builder(&theirs)
        .build()
        .unwrap()
        .write_value_to_vec(Value::Record(fields))
        .unwrap();
    let their_fp = schema::fingerprint(&theirs);
    assert_ne!(their_fp, fp);
    let frame = codec::reframe("LocationPing", &theirs, their_fp, &their_datum).unwrap();
    assert_eq!(
        &frame[2..10],
        &fp.to_le_bytes(),
        "re-encoded as the current schema"
    );
    let back: LocationPing = decode_single_object(&frame, &DecodeOptions::default()).unwrap();
    assert_eq!(back, ping);

    // Bytes that are not that record, an unknown record name: errors.
    assert!(codec::reframe("LocationPing", &current, fp, &datum[..datum.len() / 2]).is_err());
    assert!(codec::reframe("LocationPing", &theirs, their_fp, &[1, 2, 3]).is_err());
    assert!(codec::reframe("Nope", &current, fp, &datum).is_err());
}
