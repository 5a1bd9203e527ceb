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
    assert_eq!(lines.len(), 13);
    let ping = lines
        .iter()
        .find(|l| l["record"] == "LocationPing")
        .unwrap();
    // The fingerprint printed is the one single-object frames carry.
    let frame = epitrace_model::codec::encode_single_object(&sample_ping()).unwrap();
    let fp = u64::from_le_bytes(frame[2..10].try_into().unwrap());
    assert_eq!(ping["fingerprint"], format!("{fp:016x}"));
    assert_eq!(
        u64::from_str_radix(ping["fingerprint"].as_str().unwrap(), 16).unwrap(),
        LocationPing::schema_set().fingerprint()
    );
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
