//! The audit trail on a real broker of its own (its `audit.log` is this
//! test's alone, so it may forge records in it): concurrent writers —
//! several writers in this process and `epitrace` processes at once — never
//! fork the chain; `epitrace audit verify` passes on it and names the first
//! record of a forged one; `topics purge` keeps audit.log and records
//! itself on it.
//!
//! Needs Java and Maven (as `make test` does); fails loudly without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use epitrace_e2e::LocalBroker;
use epitrace_model::codec::encode_single_object;
use epitrace_model::records::{AuditAction, AuditOutcome, Role};
use epitrace_model::topics::AUDIT;
use epitrace_model::{ActorId, EventTime, Text};
use epitrace_stream::{KafkaConfig, OutputRecord, Publisher};
use epitrace_tools::audit::{AUDIT_KEY, AuditEntry, AuditWriter, next_record, read_audit};

fn epitrace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args(args)
        .env("RUST_LOG", "warn,librdkafka=off,rdkafka=off")
        .output()
        .unwrap()
}

fn entry(actor: &str, n: i64) -> AuditEntry {
    AuditEntry {
        at: EventTime::from_millis("at", 1_795_000_000_000 + n).unwrap(),
        actor: ActorId::new(actor).unwrap(),
        role: Role::Auditor,
        action: AuditAction::ReadCase,
        resource: Text::new("resource", AUDIT).unwrap(),
        case_id: None,
        purpose: Text::new("purpose", "audit test").unwrap(),
        outcome: AuditOutcome::Allowed,
    }
}

#[test]
fn concurrent_writers_never_fork_the_chain_and_verify_names_a_forgery() {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path());
    let brokers = broker.brokers();
    let kafka = KafkaConfig::for_brokers(&brokers);
    let out = epitrace(&["topics", "create", "--brokers", &brokers]);
    assert!(out.status.success(), "{out:?}");

    // Four writers of their own (each fences the others when it starts or
    // retries) and two CLI purges, all at once.
    const WRITERS: usize = 4;
    const EACH: i64 = 25;
    let cli: Vec<_> = (0..2)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_epitrace"))
                .args([
                    "topics",
                    "purge",
                    "--yes",
                    "--brokers",
                    &brokers,
                    "--actor",
                    &format!("purger-{i}"),
                ])
                .env("RUST_LOG", "warn,librdkafka=off,rdkafka=off")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect::<Vec<_>>();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let kafka = kafka.clone();
                tokio::spawn(async move {
                    let mut writer = AuditWriter::new(&kafka, Duration::from_secs(120));
                    for n in 0..EACH {
                        writer
                            .append(entry(&format!("writer-{w}"), n))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    for child in cli {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("recorded the purge on audit.log"),
            "{stdout}"
        );
        assert!(!stdout.contains(&format!("purged   {AUDIT}")), "{stdout}");
    }

    // One chain, every record once, each writer's in its own order.
    let (log, bad) = read_audit(&kafka, Duration::from_secs(60)).unwrap();
    assert_eq!(bad, 0);
    let total = WRITERS * usize::try_from(EACH).unwrap() + 2;
    assert_eq!(log.len(), total, "every append is in the log once");
    let seqs: Vec<i64> = log.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..i64::try_from(total).unwrap()).collect::<Vec<_>>());
    for w in 0..WRITERS {
        let mine: Vec<i64> = log
            .iter()
            .filter(|r| r.actor.as_str() == format!("writer-{w}"))
            .map(|r| r.at.as_millis() - 1_795_000_000_000)
            .collect();
        assert_eq!(mine, (0..EACH).collect::<Vec<_>>());
    }
    let purges = log
        .iter()
        .filter(|r| r.action == AuditAction::Purge && r.role == Role::Operator)
        .count();
    assert_eq!(purges, 2, "each purge recorded itself");

    let out = epitrace(&["audit", "verify", "--brokers", &brokers]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&format!(
            "audit.log: {total} records, seq 0 to {}: the chain is intact",
            total - 1
        )),
        "{stdout}"
    );

    // A forged record — chained to an earlier one, as a writer that
    // ignored the others would — is named by `audit verify`.
    let fork = next_record(Some(&log[5]), entry("forger", 0)).unwrap();
    rt.block_on(async {
        Publisher::new(&kafka)
            .unwrap()
            .send_all(&[OutputRecord {
                topic: AUDIT.to_owned(),
                key: AUDIT_KEY.to_vec(),
                payload: encode_single_object(&fork).unwrap(),
                timestamp_ms: None,
            }])
            .await
            .unwrap();
    });
    let out = epitrace(&["audit", "verify", "--brokers", &brokers]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains("chain broken at seq 6: seq does not follow the previous record"),
        "{stderr}"
    );
}
