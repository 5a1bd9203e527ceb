//! Secured Kafka on a real broker of its own: a SASL_SSL listener (SCRAM
//! over TLS, certificates made by this test with openssl) and the ACL
//! authorizer. Providers are principals: a telecom may write its own feed
//! and is refused another provider's; the pipeline, as its own principal
//! with only the ACLs of what it reads and owns, runs end to end. Every
//! client is configured through `kafka.security` (here its `EPITRACE_*`
//! variables).
//!
//! Needs Java, Maven and openssl (as `make test` does); fails loudly
//! without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use epitrace_e2e::{LocalBroker, free_port};
use epitrace_stream::KafkaConfig;
use epitrace_stream::read::read_to_end;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// A CA, and a broker key and certificate for 127.0.0.1 signed by it;
/// returns (the broker's PEM: key then certificate, the CA's PEM).
fn certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let subj = |cn: &str| format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            &subj("epitrace-test-ca"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
            "-subj",
            &subj("127.0.0.1"),
        ],
    );
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "broker.crt",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ],
    );
    let pem = dir.join("broker.pem");
    let mut both = std::fs::read(dir.join("broker.key")).unwrap();
    both.extend(std::fs::read(dir.join("broker.crt")).unwrap());
    std::fs::write(&pem, both).unwrap();
    (pem, dir.join("ca.pem"))
}

/// `epitrace ARGS` as `user` over SASL_SSL.
fn as_user(bin_args: &[&str], brokers: &str, user: &str, ca: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_epitrace"));
    c.args(bin_args)
        .env("EPITRACE_BROKERS", brokers)
        .env("EPITRACE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
        .env("EPITRACE_KAFKA_SECURITY_SASL_MECHANISM", "SCRAM-SHA-256")
        .env("EPITRACE_KAFKA_SECURITY_USERNAME", user)
        .env("EPITRACE_KAFKA_SECURITY_PASSWORD", format!("{user}-secret"))
        .env("EPITRACE_KAFKA_SECURITY_CA_FILE", ca)
        .env("RUST_LOG", "warn,librdkafka=off,rdkafka=off");
    c
}

#[test]
fn providers_are_principals_and_the_pipeline_runs_with_its_own_acls_over_sasl_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, ca) = certificates(dir.path());
    let broker = LocalBroker::start_secured(dir.path(), &pem);
    let plain = broker.brokers();
    let secured = broker.secured_brokers().unwrap();

    // Administration on the PLAINTEXT listener (its anonymous principal is
    // the super user): topics, SCRAM users, ACLs.
    let epitrace = |args: &[&str]| {
        run(Command::new(env!("CARGO_BIN_EXE_epitrace"))
            .args(args)
            .env("RUST_LOG", "warn,librdkafka=off,rdkafka=off"))
    };
    epitrace(&["topics", "create", "--brokers", &plain]);
    let tool = |args: &[&str]| {
        let mut c = broker.command("tool");
        c.args(args);
        run(&mut c);
    };
    for user in ["telco-a", "pipeline"] {
        tool(&[
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            &plain,
            "--alter",
            "--add-config",
            &format!("SCRAM-SHA-256=[password={user}-secret]"),
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ]);
    }
    let acl = |rest: &[&str]| {
        let mut args = vec![
            "org.apache.kafka.tools.AclCommand",
            "--bootstrap-server",
            &plain,
            "--add",
        ];
        args.extend_from_slice(rest);
        tool(&args);
    };
    // The telecom writes its own feed, nothing else.
    acl(&[
        "--allow-principal",
        "User:telco-a",
        "--operation",
        "Write",
        "--topic",
        "feeds.telecom.location",
    ]);
    // The pipeline reads the feeds and the cases, owns its intermediate
    // and output topics, its changelogs, groups and transactional ids.
    acl(&[
        "--allow-principal",
        "User:pipeline",
        "--operation",
        "Read",
        "--resource-pattern-type",
        "prefixed",
        "--topic",
        "feeds.",
    ]);
    for input in ["cases.events", "cases.approvals", "cases.interviews"] {
        acl(&[
            "--allow-principal",
            "User:pipeline",
            "--operation",
            "Read",
            "--topic",
            input,
        ]);
    }
    for owned in [
        "cases.by-subject",
        "presence.",
        "exposure.",
        "tracing.",
        "clusters.",
        "pipeline.",
        "epitrace.",
    ] {
        acl(&[
            "--allow-principal",
            "User:pipeline",
            "--operation",
            "Read",
            "--operation",
            "Write",
            "--operation",
            "Describe",
            "--resource-pattern-type",
            "prefixed",
            "--topic",
            owned,
        ]);
    }
    acl(&[
        "--allow-principal",
        "User:pipeline",
        "--operation",
        "All",
        "--resource-pattern-type",
        "prefixed",
        "--group",
        "epitrace.",
    ]);
    acl(&[
        "--allow-principal",
        "User:pipeline",
        "--operation",
        "All",
        "--resource-pattern-type",
        "prefixed",
        "--transactional-id",
        "epitrace",
    ]);

    // A small city's feed files; the card, check-in and case feeds are
    // published by the test's administrator (plaintext), the telecom feed
    // by the telecom itself below.
    let city = dir.path().join("city");
    epitrace(&[
        "sim",
        "--out",
        city.to_str().unwrap(),
        "--residents",
        "120",
        "--days",
        "2",
        "--seed",
        "5",
    ]);

    let key = city.join("pseudonym.key");
    for (feed, file) in [
        ("card", "card.csv"),
        ("checkin", "checkin.csv"),
        ("cases", "cases.csv"),
        ("approvals", "approvals.csv"),
    ] {
        epitrace(&[
            "produce",
            "--brokers",
            &plain,
            "--feed",
            feed,
            "--input",
            city.join(file).to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--quiet",
        ]);
    }

    // The telecom over SASL_SSL: its own feed is taken…
    let produce = |feed: &str, file: &str| {
        as_user(
            &[
                "produce",
                "--feed",
                feed,
                "--input",
                city.join(file).to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
                "--quiet",
            ],
            &secured,
            "telco-a",
            &ca,
        )
        .output()
        .unwrap()
    };
    let own = produce("telecom", "telecom.csv");
    assert!(own.status.success(), "{own:?}");
    // …another provider's topic is refused.
    let other = produce("card", "card.csv");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "telco-a wrote the card feed");
    assert!(
        stderr.to_ascii_lowercase().contains("authoriz"),
        "not refused by the ACLs: {stderr}"
    );
    // A wrong password is no way in either.
    let mut wrong = as_user(&["topics", "create"], &secured, "telco-a", &ca);
    wrong.env("EPITRACE_KAFKA_SECURITY_PASSWORD", "guess");
    let out = wrong.output().unwrap();
    assert!(!out.status.success(), "a wrong password was accepted");

    // The pipeline as its own principal, end to end.
    let metrics = free_port();
    let state = dir.path().join("state");
    let mut pipeline = as_user(
        &[
            "run",
            "--state-dir",
            state.to_str().unwrap(),
            "--set",
            &format!("metrics.listen=127.0.0.1:{metrics}"),
        ],
        &secured,
        "pipeline",
        &ca,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let waited = Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args([
            "wait",
            "--url",
            &format!("http://127.0.0.1:{metrics}"),
            "--quiet-s",
            "5",
            "--timeout-s",
            "300",
        ])
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &pipeline.id().to_string()])
        .status();
    let started = Instant::now();
    let status = pipeline.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(pipeline.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(waited.status.success(), "{waited:?}\n{log}");
    assert!(status.success(), "{log}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let kafka = KafkaConfig::for_brokers(&plain);
    let timelines = read_to_end(&kafka, "tracing.timelines", Duration::from_secs(60)).unwrap();
    let segments = read_to_end(&kafka, "presence.segments", Duration::from_secs(60)).unwrap();
    assert!(!segments.is_empty(), "no segment came out\n{log}");
    assert!(!timelines.is_empty(), "no timeline came out\n{log}");
}
