//! The binary as a user runs it.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use epitrace_model::AvroRecord;
use epitrace_model::records::LocationPing;

fn epitrace(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn schemas_lists_every_record_with_its_frame_fingerprint() {
    let (ok, stdout, _) = epitrace(&["schemas", "--json"]);
    assert!(ok);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 14);
    let ping = lines
        .iter()
        .find(|l| l["record"] == "LocationPing")
        .unwrap();
    // What is printed is what a frame carries, byte for byte, in wire
    // order: a provider can paste it.
    let frame = epitrace_model::codec::encode_single_object(&sample_ping()).unwrap();
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(ping["frame_header"], hex(&frame[..10]));
    assert_eq!(ping["fingerprint"], hex(&frame[2..10]));
    assert_eq!(
        ping["fingerprint_u64"],
        format!("{:016x}", LocationPing::schema_set().fingerprint())
    );
    assert_eq!(
        ping["topics"],
        serde_json::json!(["feeds.telecom.location"])
    );
    // The table shows the same bytes.
    let (ok, table, _) = epitrace(&["schemas"]);
    assert!(ok);
    assert!(table.contains(&hex(&frame[..10])), "{table}");
}

#[test]
fn unknown_subcommands_fail_with_usage() {
    let (ok, _, stderr) = epitrace(&["frobnicate"]);
    assert!(!ok);
    assert!(stderr.contains("Usage"), "{stderr}");
}

fn sample_ping() -> LocationPing {
    use epitrace_model::records::LocationSource;
    use epitrace_model::{AccuracyM, EventTime, LatLng, ProviderId, SubjectId};
    LocationPing {
        subject: SubjectId::from_bytes([9; 16]),
        provider: ProviderId::new("telco-a").unwrap(),
        observed_at: EventTime::from_millis("t", 1_588_377_600_000).unwrap(),
        position: LatLng::new(37.5344, 126.9946).unwrap(),
        accuracy: AccuracyM::new(300.0).unwrap(),
        source: LocationSource::Cell,
        site_id: None,
    }
}

#[test]
fn the_example_configuration_is_the_default_configuration() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/epitrace.example.toml"
    ))
    .unwrap();
    let parsed: epitrace_processors::PipelineConfig = toml::from_str(&text).unwrap();
    let expected = epitrace_processors::PipelineConfig {
        state_dir: "epitrace-state".into(),
        ..Default::default()
    };
    assert_eq!(parsed, expected);
}

#[test]
fn unknown_configuration_keys_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[tracing.segment]\nmax_gapp = \"10m\"\n").unwrap();
    let (ok, _, stderr) = epitrace(&[
        "topics",
        "create",
        "--brokers",
        "127.0.0.1:1",
        "-c",
        path.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("max_gapp"), "{stderr}");
}

/// `epitrace topics create` twice and `epitrace run` stopped by SIGTERM, on
/// the real broker of `scripts/with-kafka.sh` (`make test` sets
/// `EPITRACE_TEST_BROKERS`; without it this test fails loudly).
#[test]
fn topics_create_is_idempotent_and_run_stops_cleanly_on_sigterm() {
    let brokers = std::env::var("EPITRACE_TEST_BROKERS").expect(
        "EPITRACE_TEST_BROKERS is not set: run through `make test` or scripts/with-kafka.sh",
    );
    for _ in 0..2 {
        let (ok, stdout, stderr) = epitrace(&["topics", "create", "--brokers", &brokers]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains("tracing.exposures"), "{stdout}");
    }
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("epitrace.toml");
    std::fs::write(
        &config,
        format!("[kafka]\ngroup_prefix = \"cli-{}\"\n", std::process::id()),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args(["run", "--brokers", &brokers, "-c", config.to_str().unwrap()])
        .arg("--state-dir")
        .arg(state.path().join("state"))
        .args(["--processors", "case-router,exposure-aggregator"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        child.try_wait().unwrap().is_none(),
        "epitrace run exited early"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(state.path().join("state/case-router").exists());
}

/// Runs the binary with extra environment variables.
fn epitrace_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `epitrace clusters` and `epitrace case` on the real broker of
/// `scripts/with-kafka.sh`: the output is the live fold of the versions
/// published (latest per id; MERGED clusters and retracted visits gone),
/// every read appends one record to `audit.log` and the chain verifies, a
/// bad case id is refused before anything is read or audited, and a read
/// whose audit record cannot be written prints nothing.
#[test]
fn clusters_and_case_print_the_live_fold_and_audit_every_read() {
    use std::time::Duration;

    use AuditAction::{ReadCluster, ReadExposures, ReadTimeline};
    use AuditOutcome::Allowed;
    use Role::{Epidemiologist, Investigator};
    use epitrace_model::records::{
        AuditAction, AuditOutcome, ClusterAlert, ClusterStatus, ContactClass, DataCategory,
        Exposure, ExposureStatus, LocationBasis, ObservationSource, Place, Role, TimeWindow, Visit,
    };
    use epitrace_model::topics::{AUDIT, CLUSTERS, EXPOSURES, TIMELINES};
    use epitrace_model::{
        CaseId, Cell, ClusterId, EventTime, ExposureId, LatLng, Probability, SubjectId, Text,
        VisitId, encode_single_object,
    };
    use epitrace_stream::read::read_to_end;
    use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
    use epitrace_tools::audit::{read_audit, verify_chain};
    use serde_json::{Value, json};

    let brokers = std::env::var("EPITRACE_TEST_BROKERS").expect(
        "EPITRACE_TEST_BROKERS is not set: run through `make test` or scripts/with-kafka.sh",
    );
    let (ok, _, stderr) = epitrace(&["topics", "create", "--brokers", &brokers]);
    assert!(ok, "{stderr}");

    // Ids of this run only: the topics are shared with the other tests.
    let tag = format!("cli-q{}", std::process::id());
    let id = |s: &str| format!("{tag}-{s}");
    let (a, b, c, d) = (id("A"), id("B"), id("C"), id("D"));
    let case = |s: &str| CaseId::new(s).unwrap();
    let t = |min: i64| EventTime::from_millis("t", 1_588_377_600_000 + min * 60_000).unwrap();
    let cell = |lat: f64, res: h3o::Resolution| -> Cell {
        LatLng::new(lat, 126.9946).unwrap().to_cell(res)
    };
    let alert = |cid: &str, status: ClusterStatus, cases: &[&String], at: i64| ClusterAlert {
        cluster_id: ClusterId::new(id(cid)).unwrap(),
        status,
        cases: cases.iter().map(|c| case(c)).collect(),
        places: vec![
            Place::new(cell(37.5344, h3o::Resolution::Nine), t(60), t(150))
                .unwrap()
                .with_cases(
                    cases.iter().map(|c| case(c)).collect(),
                    Some(case(cases[0])),
                ),
        ],
        index_case: Some(case(cases[0])),
        source_evidence: Text::new("source_evidence", format!("{} was there first", cases[0]))
            .unwrap(),
        size: u32::try_from(cases.len()).unwrap(),
        merged_into: (status == ClusterStatus::Merged).then(|| ClusterId::new(id("k1")).unwrap()),
        linked_clusters: Vec::new(),
        detected_at: t(at),
    };
    let visit = |vid: &str, of: &String, start: i64, end: i64, retracted: bool| Visit {
        visit_id: VisitId::new(id(vid)).unwrap(),
        case_id: case(of),
        subject: SubjectId::from_bytes([7; 16]),
        cell: cell(37.5300, h3o::Resolution::Ten),
        start: t(start),
        end: t(end),
        dwell_s: u32::try_from((end - start) * 60).unwrap(),
        sources: vec![ObservationSource::Gps, ObservationSource::Card],
        confidence: Probability::new("confidence", 0.8).unwrap(),
        retracted,
    };
    let clusters = [
        alert("k1", ClusterStatus::New, &[&a, &b], 600),
        alert("k2", ClusterStatus::New, &[&a, &d], 610),
        alert("k1", ClusterStatus::Growing, &[&a, &b, &c], 700),
        alert("k2", ClusterStatus::Merged, &[&a, &d], 710),
        alert("k3", ClusterStatus::New, &[&c, &d], 720),
    ];
    let visits = [
        visit("v1", &a, 0, 85, false),
        visit("v2", &a, 100, 110, false),
        visit("v3", &a, 200, 260, false),
        visit("v2", &a, 100, 130, false), // v2 grew
        visit("v3", &a, 200, 260, true),  // v3 retracted
        visit("v4", &b, 0, 30, false),
    ];
    let mut records: Vec<OutputRecord> = clusters
        .iter()
        .map(|x| OutputRecord {
            topic: CLUSTERS.into(),
            key: x.cluster_id.as_str().as_bytes().to_vec(),
            payload: encode_single_object(x).unwrap(),
            timestamp_ms: None,
        })
        .collect();
    records.extend(visits.iter().map(|v| OutputRecord {
        topic: TIMELINES.into(),
        key: v.case_id.as_str().as_bytes().to_vec(),
        payload: encode_single_object(v).unwrap(),
        timestamp_ms: None,
    }));
    // Case A's contacts: one close, one area, one close then retracted.
    let exposure = |contact: u8, class: ContactClass, status: ExposureStatus| Exposure {
        exposure_id: ExposureId::new(id(&format!("e{contact}"))).unwrap(),
        case_id: case(&a),
        contact: SubjectId::from_bytes([contact; 16]),
        first_cell: cell(37.5300, h3o::Resolution::Ten),
        windows: vec![TimeWindow::new(t(0), t(30)).unwrap()],
        cumulative_s: 1800,
        risk: Probability::new("risk", 0.5).unwrap(),
        status,
        detected_at: t(40),
        evidence: vec![DataCategory::Location],
        likelihood: Some(Probability::new("likelihood", 0.5).unwrap()),
        contact_class: Some(class),
        basis: Some(LocationBasis {
            fine_s: 1800,
            near_s: 0,
            wide_s: 0,
            apart_s: 0,
            transit_s: 0,
        }),
    };
    records.extend(
        [
            exposure(31, ContactClass::Close, ExposureStatus::New),
            exposure(32, ContactClass::Area, ExposureStatus::New),
            exposure(33, ContactClass::Close, ExposureStatus::New),
            exposure(33, ContactClass::Close, ExposureStatus::Retracted),
        ]
        .iter()
        .map(|e| OutputRecord {
            topic: EXPOSURES.into(),
            key: e.contact.as_bytes().to_vec(),
            payload: encode_single_object(e).unwrap(),
            timestamp_ms: None,
        }),
    );
    let kafka = KafkaConfig::for_brokers(brokers.clone());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { Publisher::new(&kafka)?.send_all(&records).await })
        .unwrap();
    // Topics just created on a fresh broker: until every partition has a
    // leader, reading them fails (NotLeaderForPartition) and so would the
    // commands below.
    for topic in [CLUSTERS, TIMELINES, EXPOSURES, AUDIT] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Err(e) = read_to_end(&kafka, topic, Duration::from_secs(5)) {
            assert!(std::time::Instant::now() < deadline, "{topic}: {e}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let actor = id("inspector");
    let common = [
        "--brokers",
        brokers.as_str(),
        "--timeout-s",
        "30",
        "--purpose",
        "cli test",
    ];
    let run = |args: &[&str]| -> (bool, String, String) {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(common);
        epitrace_env(&all, &[("EPITRACE_ACTOR", actor.as_str())])
    };

    // `clusters --json --case A`: only k1's latest version (k2 merged).
    let (ok, stdout, stderr) = run(&["clusters", "--json", "--case", &a]);
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let place = cell(37.5344, h3o::Resolution::Nine);
    let centre = place.center();
    assert_eq!(
        doc,
        json!([{
            "cluster_id": id("k1"),
            "status": "GROWING",
            "size": 3,
            "index_case": a,
            "source_evidence": format!("{a} was there first"),
            "cases": [a, b, c],
            "places": [{
                "cell": format!("{:x}", place.raw()),
                "res": 9,
                "lat": centre.lat(),
                "lng": centre.lng(),
                "start": "2020-05-02T01:00:00.000Z",
                "end": "2020-05-02T02:30:00.000Z",
                "source_case": a,
                "cases": [a, b, c],
            }],
            "merged_into": null,
            "detected_at": "2020-05-02T11:40:00.000Z",
            "linked_clusters": [],
        }])
    );

    // `clusters --json`: this run's live clusters, largest first.
    let (ok, stdout, stderr) = run(&["clusters", "--json"]);
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let ours: Vec<(&str, &str, u64)> = doc
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["cluster_id"].as_str().unwrap().starts_with(&tag))
        .map(|x| {
            (
                x["cluster_id"].as_str().unwrap(),
                x["status"].as_str().unwrap(),
                x["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let (k1, k3) = (id("k1"), id("k3"));
    assert_eq!(ours, [(k1.as_str(), "GROWING", 3), (k3.as_str(), "NEW", 2)]);

    // `case A --json`: v1 and the grown v2, not the retracted v3.
    let (ok, stdout, stderr) = run(&["case", &a, "--json", "--role", "epidemiologist"]);
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["case_id"], a.as_str());
    let got: Vec<(&str, &str, &str, u64)> = doc["visits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["visit_id"].as_str().unwrap(),
                v["start"].as_str().unwrap(),
                v["end"].as_str().unwrap(),
                v["dwell_s"].as_u64().unwrap(),
            )
        })
        .collect();
    let (v1, v2) = (id("v1"), id("v2"));
    assert_eq!(
        got,
        [
            (
                v1.as_str(),
                "2020-05-02T00:00:00.000Z",
                "2020-05-02T01:25:00.000Z",
                5100
            ),
            (
                v2.as_str(),
                "2020-05-02T01:40:00.000Z",
                "2020-05-02T02:10:00.000Z",
                1800
            ),
        ]
    );
    let v = &doc["visits"][0];
    let vcell = cell(37.5300, h3o::Resolution::Ten);
    assert_eq!(v["cell"], format!("{:x}", vcell.raw()));
    assert_eq!(v["res"], 10);
    assert_eq!(v["lat"], vcell.center().lat());
    assert_eq!(v["sources"], json!(["GPS", "CARD"]));
    assert_eq!(v["confidence"], 0.8);
    assert_eq!(v["subject"], "07".repeat(16));
    assert_eq!(
        doc["clusters"],
        json!([{"cluster_id": k1, "status": "GROWING", "size": 3, "index_case": a}])
    );
    assert_eq!(
        doc["contacts"],
        json!({"close": 1, "area": 1, "unclassified": 0, "transit": 0}),
        "the retracted contact is not counted"
    );

    // An unknown case: said plainly, exit 0.
    let nobody = id("nobody");
    let (ok, stdout, stderr) = run(&["case", &nobody]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("no visits on record for case {nobody}")),
        "{stdout}"
    );

    // A malformed id is refused before anything is read or audited.
    let (ok, stdout, stderr) = run(&["case", "not a case!"]);
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("case id") && stderr.contains("case_id"),
        "{stderr}"
    );

    // Reading works but the audit record cannot be produced: nothing shown.
    let (ok, stdout, stderr) = run(&[
        "case",
        &a,
        "--set",
        "kafka.producer.bootstrap.servers=127.0.0.1:1",
        "--set",
        "kafka.delivery_timeout_ms=3000",
    ]);
    assert!(!ok, "{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("audit"), "{stderr}");

    // audit.log: one chained record per successful read, in order.
    let (log, bad) = read_audit(&kafka, Duration::from_secs(30)).unwrap();
    assert_eq!(bad, 0);
    verify_chain(&log).unwrap();
    let mine: Vec<_> = log
        .iter()
        .filter(|r| r.actor.as_str() == actor)
        .map(|r| {
            (
                r.role,
                r.action,
                r.resource.as_str(),
                r.case_id.as_ref().map(CaseId::as_str),
                r.purpose.as_str(),
                r.outcome,
            )
        })
        .collect();
    assert_eq!(
        mine,
        [
            (
                Investigator,
                ReadCluster,
                "tracing.clusters",
                Some(a.as_str()),
                "cli test",
                Allowed
            ),
            (
                Investigator,
                ReadCluster,
                "tracing.clusters",
                None,
                "cli test",
                Allowed
            ),
            (
                Epidemiologist,
                ReadTimeline,
                "tracing.timelines",
                Some(a.as_str()),
                "cli test",
                Allowed
            ),
            (
                Epidemiologist,
                ReadExposures,
                "tracing.exposures",
                Some(a.as_str()),
                "cli test",
                Allowed
            ),
            (
                Investigator,
                ReadTimeline,
                "tracing.timelines",
                Some(nobody.as_str()),
                "cli test",
                Allowed
            ),
            (
                Investigator,
                ReadExposures,
                "tracing.exposures",
                Some(nobody.as_str()),
                "cli test",
                Allowed
            ),
        ]
    );
}

/// `epitrace users add|list|disable` on a users file, the password from
/// stdin; bad users refused; no password or hash shown or stored; `[api]`
/// settings validated.
#[test]
fn users_are_added_listed_and_disabled_and_passwords_stay_out() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.toml");
    let set = format!("api.users_file={}", file.display());
    let add = |args: &[&str], password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_epitrace"))
            .args(["users", "add"])
            .args(args)
            .args(["--set", &set])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8(out.stderr).unwrap())
    };
    let password = "a long enough password";
    let (ok, err) = add(
        &["inv-kim", "--role", "investigator", "--region", "seoul"],
        password,
    );
    assert!(ok, "{err}");
    let (ok, err) = add(
        &[
            "police-park",
            "--role",
            "approver",
            "--authority",
            "seoul-police",
            "--category",
            "location",
        ],
        password,
    );
    assert!(ok, "{err}");
    // Refused: a short password, a taken name, an approver without its
    // category, an investigator without a region.
    for (args, pw) in [
        (
            &["inv-lee", "--role", "investigator", "--region", "busan"][..],
            "short",
        ),
        (&["inv-kim", "--role", "auditor"][..], password),
        (
            &["police-lee", "--role", "approver", "--authority", "x"][..],
            password,
        ),
        (&["inv-lee", "--role", "investigator"][..], password),
    ] {
        let (ok, err) = add(args, pw);
        assert!(!ok, "{args:?} accepted");
        assert!(!err.contains(pw) || pw == password, "{err}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(password), "a password at rest");
    let (ok, out, err) = epitrace(&["users", "list", "--json", "--set", &set]);
    assert!(ok, "{err}");
    let listed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["category"], "LOCATION");
    assert!(!out.contains("argon2"), "a hash listed: {out}");
    let (ok, out, err) = epitrace(&["users", "disable", "inv-kim", "--set", &set]);
    assert!(ok, "{err}");
    assert!(out.contains("disabled inv-kim"), "{out}");
    let (ok, out, _) = epitrace(&["users", "list", "--set", &set]);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("inv-kim") && l.contains("disabled")),
        "{out}"
    );
    let (ok, _, err) = epitrace(&["users", "disable", "nobody", "--set", &set]);
    assert!(!ok);
    assert!(err.contains("no user nobody"), "{err}");
    // [api] settings are checked like the others.
    let (ok, _, err) = epitrace(&["config", "check", "--set", "api.tls_cert=a.pem"]);
    assert!(!ok);
    assert!(err.contains("tls_key"), "{err}");
}

/// `epitrace serve` on the real broker of `scripts/with-kafka.sh`: it
/// prints where it listens, answers a login (audited), holds
/// `<state_dir>/api.lock` so that `epitrace purge` refuses, and stops
/// cleanly on SIGTERM. Without users it refuses to start.
#[test]
fn serve_answers_holds_its_lock_and_stops_on_sigterm() {
    use std::io::{BufRead as _, Read as _, Write as _};
    let brokers = std::env::var("EPITRACE_TEST_BROKERS").expect(
        "EPITRACE_TEST_BROKERS is not set: run through `make test` or scripts/with-kafka.sh",
    );
    let (ok, _, stderr) = epitrace(&["topics", "create", "--brokers", &brokers]);
    assert!(ok, "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let state = dir.path().join("state");
    let common = [
        "--brokers".to_owned(),
        brokers.clone(),
        "--state-dir".to_owned(),
        state.display().to_string(),
        "--set".to_owned(),
        format!("api.users_file={}", users.display()),
        "--set".to_owned(),
        "api.listen=127.0.0.1:0".to_owned(),
        "--set".to_owned(),
        "metrics.listen=127.0.0.1:0".to_owned(),
    ];
    let serve = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_epitrace"))
            .arg("serve")
            .args(&common)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = serve(&[]).wait_with_output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("no users") && err.contains("users add"),
        "{err}"
    );

    let mut users_file = epitrace_api::Users::default();
    users_file
        .add(
            epitrace_api::NewUser {
                name: "audit-choi".into(),
                role: epitrace_api::ApiRole::Auditor,
                regions: vec![],
                authority: None,
                category: None,
            },
            "a long enough password",
        )
        .unwrap();
    users_file.save(&users).unwrap();
    let mut child = serve(&[]);
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let body = r#"{"user":"audit-choi","password":"a long enough password"}"#;
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /v1/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-epitrace-audit-seq"),
        "{answer}"
    );
    assert!(answer.contains("\"token\""), "{answer}");

    let key = dir.path().join("authority.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let canaries = dir.path().join("canaries.txt");
    std::fs::write(&canaries, "01055558888\n").unwrap();
    let (ok, _, err) = epitrace(&[
        "purge",
        "--yes",
        "--key",
        key.to_str().unwrap(),
        "--canaries",
        canaries.to_str().unwrap(),
        "--brokers",
        &brokers,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(!ok, "purge ran while serve holds its lock");
    assert!(err.contains("api.lock"), "{err}");
    assert!(key.exists(), "the key survived the refused purge");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
