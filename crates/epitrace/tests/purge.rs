//! The end of a response on a real broker of its own: a city with canary
//! subjects goes through the pipeline, then `epitrace purge` deletes
//! personal data everywhere epitrace keeps it and must leave zero canary
//! hits. The scan covers the state folder and the broker's own segment
//! files, since deleting records is not deleting data. The key is
//! destroyed, nothing comes back when the pipeline restarts on the same
//! folder, and no log line of the run carries a canary's number.
//!
//! Needs Java and Maven (as `make test` does); fails loudly without them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use epitrace_e2e::{LocalBroker, free_port};
use epitrace_model::records::AuditAction;
use epitrace_stream::KafkaConfig;
use epitrace_stream::read::read_to_end;
use epitrace_tools::audit::read_audit;

fn epitrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args(args)
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .output()
        .unwrap()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the pipeline on `state` until it has caught up; returns its log.
fn pipeline_until_idle(brokers: &str, state: &Path) -> String {
    let metrics = free_port();
    let run = Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args([
            "run",
            "--brokers",
            brokers,
            "--state-dir",
            state.to_str().unwrap(),
            "--set",
            &format!("metrics.listen=127.0.0.1:{metrics}"),
        ])
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waited = epitrace(&[
        "wait",
        "--url",
        &format!("http://127.0.0.1:{metrics}"),
        "--quiet-s",
        "5",
        "--timeout-s",
        "300",
    ]);
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let out = run.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(waited.status.success(), "{waited:?}\n{log}");
    assert!(out.status.success(), "{log}");
    log
}

#[test]
fn purge_leaves_no_canary_anywhere_and_nothing_comes_back() {
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1} s: {what}", t0.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path());
    let brokers = broker.brokers();
    let kafka = KafkaConfig::for_brokers(&brokers);
    let state = dir.path().join("state");
    let city = dir.path().join("city");
    ok(epitrace(&["topics", "create", "--brokers", &brokers]));
    ok(epitrace(&[
        "sim",
        "--out",
        city.to_str().unwrap(),
        "--residents",
        "120",
        "--days",
        "2",
        "--seed",
        "9",
    ]));
    let key = city.join("pseudonym.key");
    let mut logs = String::new();
    for feed in ["telecom", "card", "checkin", "cases", "approvals"] {
        let out = ok(epitrace(&[
            "produce",
            "--brokers",
            &brokers,
            "--feed",
            feed,
            "--input",
            city.join(format!("{feed}.csv")).to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ]));
        logs.push_str(&String::from_utf8_lossy(&out.stdout));
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // Canaries: the phones of the first three people of the telecom feed,
    // and of every case (their data is in every output).
    let telecom = std::fs::read_to_string(city.join("telecom.csv")).unwrap();
    let mut raw: Vec<String> = telecom
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    raw.dedup();
    raw.truncate(3);
    let cases = std::fs::read_to_string(city.join("cases.csv")).unwrap();
    let header: Vec<&str> = cases.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "msisdns").unwrap();
    for line in cases.lines().skip(1) {
        for phone in line.split(',').nth(col).unwrap_or("").split(';') {
            if !phone.trim().is_empty() && !raw.contains(&phone.to_owned()) {
                raw.push(phone.to_owned());
            }
        }
    }
    assert!(raw.len() > 3, "the city has cases");
    let canary_file = dir.path().join("canaries.txt");
    std::fs::write(&canary_file, raw.join("\n")).unwrap();

    phase("city produced");
    logs.push_str(&pipeline_until_idle(&brokers, &state));
    phase("pipeline caught up");
    let timelines = read_to_end(&kafka, "tracing.timelines", Duration::from_secs(60)).unwrap();
    assert!(!timelines.is_empty(), "the cases were traced");

    let broker_data = broker.dir.join("data");
    let purge = |extra: &[&str]| {
        let mut args = vec![
            "purge",
            "--brokers",
            &brokers,
            "--state-dir",
            state.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--canaries",
            canary_file.to_str().unwrap(),
            "--scan",
            broker_data.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        epitrace(&args)
    };
    // Before: the scan finds the canaries at rest (so it can find them).
    let before = ok(purge(&["--scan-only"]));
    let before = String::from_utf8_lossy(&before.stdout).into_owned();
    assert!(
        before.contains("canary on line") && !before.contains(": 0 canary hits"),
        "{before}"
    );
    assert!(before.contains("/state/"), "the stores hold them: {before}");
    assert!(
        before.contains("/data/"),
        "the broker's segments hold them: {before}"
    );

    phase("scanned");
    let after = ok(purge(&["--yes", "--actor", "dpo-lee", "--wait-s", "120"]));
    phase("purged");
    let after = String::from_utf8_lossy(&after.stdout).into_owned();
    assert!(after.contains(": 0 canary hits"), "{after}");
    assert!(after.contains("destroyed the pseudonym key"), "{after}");
    assert!(!key.exists(), "the key is gone");
    logs.push_str(&after);

    // The trail: the purge and the key's destruction, chained.
    let (log, bad) = read_audit(&kafka, Duration::from_secs(60)).unwrap();
    assert_eq!(bad, 0);
    let purges: Vec<&str> = log
        .iter()
        .filter(|r| r.action == AuditAction::Purge && r.actor.as_str() == "dpo-lee")
        .map(|r| r.resource.as_str())
        .collect();
    assert_eq!(purges.len(), 2, "{purges:?}");
    ok(epitrace(&["audit", "verify", "--brokers", &brokers]));

    // No resurrection: the pipeline restarted on the same folder has
    // nothing to publish.
    logs.push_str(&pipeline_until_idle(&brokers, &state));
    for topic in [
        "presence.segments",
        "tracing.timelines",
        "tracing.exposures",
    ] {
        let left = read_to_end(&kafka, topic, Duration::from_secs(60)).unwrap();
        assert!(
            left.is_empty(),
            "{topic}: {} records after the purge",
            left.len()
        );
    }

    phase("restarted");
    // Logs carry no personal data: no canary's number, in any form.
    for phone in &raw {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !logs.contains(phone.as_str()) && !logs.contains(&digits),
            "a canary's number is in the logs"
        );
    }
}
