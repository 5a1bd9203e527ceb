//! Secured Kafka on a real broker of its own: a SASL_SSL listener (SCRAM
//! over TLS, certificates made by this test with openssl) and the ACL
//! authorizer. Providers are principals: a telecom may write its own feed
//! and is refused another provider's; the pipeline, as its own principal
//! with only the ACLs of what it reads and owns, runs end to end; the
//! telecom reads the dead letters of its own records (its
//! `pipeline.deadletter.<id>` topic) and is refused everyone else's. Every
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
use epitrace_stream::read::read_to_end;
use epitrace_stream::{KafkaConfig, Outgoing, Publisher, Secret, SecurityConfig, SecurityProtocol};

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
    // Two providers have their own dead-letter topic.
    const PROVIDERS: &str = r#"["telco-a", "telco-b"]"#;
    run(Command::new(env!("CARGO_BIN_EXE_epitrace"))
        .args(["topics", "create", "--brokers", &plain])
        .env("EPITRACE_TOPOLOGY_DEAD_LETTER_PROVIDERS", PROVIDERS)
        .env("RUST_LOG", "warn,librdkafka=off,rdkafka=off"));
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
    // …and reads its own dead letters, in its own consumer group.
    acl(&[
        "--allow-principal",
        "User:telco-a",
        "--operation",
        "Read",
        "--topic",
        "pipeline.deadletter.telco-a",
    ]);
    acl(&[
        "--allow-principal",
        "User:telco-a",
        "--operation",
        "Read",
        "--group",
        "deadletters.telco-a",
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
    // Records the pipeline will refuse, sent by the telecom's own client:
    // one naming itself, one naming another provider (its bad records then
    // go to the other's topic: the header is the producer's word, but it
    // never lets the producer read another's), one naming nobody.
    let mut telco = KafkaConfig::for_brokers(&secured);
    telco.security = SecurityConfig {
        protocol: SecurityProtocol::SaslSsl,
        sasl_mechanism: "SCRAM-SHA-256".into(),
        username: "telco-a".into(),
        password: Secret::new("telco-a-secret"),
        ca_file: ca.clone(),
        ..SecurityConfig::default()
    };
    let garbage = |header: Option<&str>| -> (i32, i64) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let publisher = Publisher::new(&telco).unwrap();
            let headers: Vec<(&str, &[u8])> = header
                .map(|h| vec![("epitrace.provider", h.as_bytes())])
                .unwrap_or_default();
            let acked = publisher
                .send(&[Outgoing {
                    topic: "feeds.telecom.location",
                    partition: None,
                    key: &[7u8; 16],
                    payload: Some(b"not an avro frame"),
                    timestamp_ms: None,
                    headers: &headers,
                }])
                .await
                .unwrap();
            let (_, partition, offset) = acked[0].clone();
            (partition, offset)
        })
    };
    let own_bad = garbage(Some("telco-a"));
    let named_other = garbage(Some("telco-b"));
    let anonymous = garbage(None);

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
    .env("EPITRACE_TOPOLOGY_DEAD_LETTER_PROVIDERS", PROVIDERS)
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

    // Dead letters: the telecom reads its own, as itself…
    let located = |line: &str| -> (String, i32, i64, String) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        (
            v["topic"].as_str().unwrap().to_owned(),
            i32::try_from(v["partition"].as_i64().unwrap()).unwrap(),
            v["offset"].as_i64().unwrap(),
            v["reason_code"].as_str().unwrap().to_owned(),
        )
    };
    let telecom = |(p, o): (i32, i64)| ("feeds.telecom.location".to_owned(), p, o);
    let dead_letters = |args: &[&str], user: Option<&str>| -> Output {
        let mut all = vec!["dead-letters", "--json", "--timeout-s", "60"];
        all.extend_from_slice(args);
        match user {
            Some(u) => as_user(&all, &secured, u, &ca).output().unwrap(),
            None => Command::new(env!("CARGO_BIN_EXE_epitrace"))
                .args(&all)
                .args(["--brokers", &plain])
                .env("RUST_LOG", "warn,librdkafka=off,rdkafka=off")
                .output()
                .unwrap(),
        }
    };
    let letters = |out: &Output| -> Vec<(String, i32, i64, String)> {
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(located)
            .collect()
    };
    let own = letters(&dead_letters(&["--provider", "telco-a"], Some("telco-a")));
    assert_eq!(own.len(), 1, "{own:?}");
    let (t, p, o, reason) = &own[0];
    assert_eq!((t.clone(), *p, *o), telecom(own_bad));
    assert_eq!(reason, "bad_magic");
    // The lines a person reads: where, why, when, how big — no bytes.
    let text = as_user(
        &["dead-letters", "--provider", "telco-a"],
        &secured,
        "telco-a",
        &ca,
    )
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "feeds.telecom.location/{}@{} bad_magic: ",
            own_bad.0, own_bad.1
        )) && lines[0].ends_with(", 17 bytes)"),
        "{text}"
    );
    assert_eq!(lines[1], "1 dead letters on pipeline.deadletter.telco-a");
    // The providers' own clients read the same, as the telecom: the
    // Python kit (librdkafka properties) and the Java kit (a Java client
    // properties file).
    let kits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/providers");
    let ca_path = ca.to_str().unwrap();
    let python = Command::new(kits.join("python/producer.sh"))
        .args(["dead-letters", "--provider", "telco-a", "--json"])
        .args(["--brokers", &secured, "--timeout-s", "60"])
        .args(["-X", "security.protocol=SASL_SSL"])
        .args(["-X", "sasl.mechanism=SCRAM-SHA-256"])
        .args(["-X", "sasl.username=telco-a"])
        .args(["-X", "sasl.password=telco-a-secret"])
        .args(["-X", &format!("ssl.ca.location={ca_path}")])
        .output()
        .unwrap();
    let properties = dir.path().join("telco-a.properties");
    std::fs::write(
        &properties,
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"telco-a\" password=\"telco-a-secret\";\n\
             ssl.truststore.type=PEM\nssl.truststore.location={ca_path}\n"
        ),
    )
    .unwrap();
    let java = Command::new(kits.join("java/producer.sh"))
        .args(["dead-letters", "--provider", "telco-a", "--json"])
        .args(["--brokers", &secured, "--timeout-s", "60"])
        .args(["--kafka-config", properties.to_str().unwrap()])
        .output()
        .unwrap();
    for kit in [python, java] {
        assert_eq!(letters(&kit), own, "{kit:?}");
    }
    // …and is refused every other's and the operators' topic.
    for refused in [
        dead_letters(&["--provider", "telco-b"], Some("telco-a")),
        dead_letters(&[], Some("telco-a")),
    ] {
        let stderr = String::from_utf8_lossy(&refused.stderr).to_ascii_lowercase();
        assert!(!refused.status.success(), "{refused:?}");
        assert!(
            stderr.contains("authoriz"),
            "not refused by the ACLs: {stderr}"
        );
    }
    // The operators see all three; the other provider the one naming it.
    let other = letters(&dead_letters(&["--provider", "telco-b"], None));
    let other: Vec<_> = other.into_iter().map(|(t, p, o, _)| (t, p, o)).collect();
    assert_eq!(other, [telecom(named_other)]);
    let all: Vec<_> = letters(&dead_letters(&[], None))
        .into_iter()
        .map(|(t, p, o, _)| (t, p, o))
        .collect();
    for sent in [own_bad, named_other, anonymous] {
        assert!(
            all.contains(&telecom(sent)),
            "{sent:?} missing from {all:?}"
        );
    }
}
