//! Shared helpers of the end-to-end tests: the broker under test and
//! reading topics back.

use std::time::Duration;

use epitrace_stream::KafkaConfig;
use epitrace_stream::read::{ConsumedRecord, read_to_end};

/// The broker the end-to-end tests run against: `EPITRACE_TEST_BROKERS`,
/// set by `scripts/with-kafka.sh` (which `make test` and CI use).
///
/// # Panics
/// When the variable is not set: these tests need a real broker and must
/// fail loudly rather than skip.
#[must_use]
#[allow(clippy::panic)]
pub fn brokers() -> String {
    log_if_asked();
    match std::env::var("EPITRACE_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "EPITRACE_TEST_BROKERS is not set: these end-to-end tests need a real Kafka broker. \
             Run them through `make test` or `scripts/with-kafka.sh cargo test -p epitrace-e2e`."
        ),
    }
}

/// With `EPITRACE_TEST_LOG` set (an env-filter such as `info`), the
/// in-process pipeline's logs go to stderr (run with `--nocapture`).
pub fn log_if_asked() {
    if let Ok(filter) = std::env::var("EPITRACE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// A unique suffix so that runs never share consumer groups or state.
#[must_use]
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Every record of `topic` now, read off the blocking pool.
///
/// # Errors
/// Kafka errors and time-outs, as text.
pub async fn read_all(cfg: &KafkaConfig, topic: &str) -> Result<Vec<ConsumedRecord>, String> {
    let cfg = cfg.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_to_end(&cfg, &topic, Duration::from_secs(20)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// One sample of the Prometheus text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`/`_sum`/`_count` for histograms).
    pub name: String,
    /// Label pairs.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the Prometheus text exposition format (version 0.0.4) strictly:
/// `# HELP` / `# TYPE` lines with valid names and types, every sample's
/// family declared by a `# TYPE` line before it, label values quoted with
/// escapes, values as floats.
///
/// # Errors
/// The first offending line, as text.
pub fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: std::collections::BTreeMap<String, String> = Default::default();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (Some(kw), Some(name)) = (parts.next(), parts.next()) else {
                return Err(bad("short comment"));
            };
            if !valid_name(name) {
                return Err(bad("invalid metric name"));
            }
            match kw {
                "HELP" => {}
                "TYPE" => {
                    let t = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(bad("unknown type"));
                    }
                    types.insert(name.to_owned(), t.to_owned());
                }
                _ => return Err(bad("unknown comment keyword")),
            }
            continue;
        }
        let (name_end, rest) = match line.find(['{', ' ']) {
            Some(i) => (i, &line[i..]),
            None => return Err(bad("no value")),
        };
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(bad("invalid sample name"));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(bad("sample without a # TYPE line"));
        }
        let mut labels = std::collections::BTreeMap::new();
        let value_part = if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let close;
            loop {
                // name="value",
                let start = chars
                    .peek()
                    .map(|(i, _)| *i)
                    .ok_or_else(|| bad("open labels"))?;
                if body[start..].starts_with('}') {
                    close = start;
                    break;
                }
                let eq = body[start..]
                    .find('=')
                    .ok_or_else(|| bad("label without ="))?
                    + start;
                let lname = &body[start..eq];
                if !valid_name(lname) {
                    return Err(bad("invalid label name"));
                }
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(bad("unquoted label value"));
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            _ => return Err(bad("bad escape")),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => return Err(bad("unterminated label value")),
                    }
                }
                labels.insert(lname.to_owned(), value);
                if chars.peek().is_some_and(|(_, c)| *c == ',') {
                    chars.next();
                }
            }
            body[close + 1..].trim_start()
        } else {
            rest.trim_start()
        };
        let value_text = value_part.split(' ').next().unwrap_or("");
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse::<f64>().map_err(|_| bad("value is not a float"))?,
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// The sum of `name`'s samples whose labels include every pair of `with`.
#[must_use]
pub fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .map(|s| s.value)
        .sum()
}

/// A free TCP port on the loopback interface (for a broker or an
/// operations endpoint of a test's own).
#[must_use]
#[allow(clippy::unwrap_used)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A local broker of a test's own (`scripts/kafka-local.sh` on free ports,
/// its data under `dir`), for tests that stop and restart it; stopped when
/// dropped.
#[derive(Debug)]
pub struct LocalBroker {
    /// Its data folder (`KAFKA_LOCAL_DIR`).
    pub dir: std::path::PathBuf,
    /// Its client port.
    pub port: u16,
    /// Its controller port.
    pub cport: u16,
    /// Its SASL_SSL port and the PEM file of its key and certificates,
    /// when it has one ([`LocalBroker::start_secured`]).
    pub secured: Option<(u16, std::path::PathBuf)>,
}

impl LocalBroker {
    /// A broker started in `dir/kafka`.
    ///
    /// # Panics
    /// When the broker does not start.
    #[must_use]
    pub fn start(dir: &std::path::Path) -> Self {
        log_if_asked();
        let broker = Self {
            dir: dir.join("kafka"),
            port: free_port(),
            cport: free_port(),
            secured: None,
        };
        broker.run("start");
        broker
    }

    /// A broker with a SASL_SSL listener too (SCRAM over TLS, the ACL
    /// authorizer on; the PLAINTEXT listener's anonymous principal is the
    /// super user), its key and certificate chain in `tls_pem`.
    ///
    /// # Panics
    /// When the broker does not start.
    #[must_use]
    pub fn start_secured(dir: &std::path::Path, tls_pem: &std::path::Path) -> Self {
        let broker = Self {
            dir: dir.join("kafka"),
            port: free_port(),
            cport: free_port(),
            secured: Some((free_port(), tls_pem.to_path_buf())),
        };
        broker.run("start");
        broker
    }

    /// Its SASL_SSL bootstrap address, when it has one.
    #[must_use]
    pub fn secured_brokers(&self) -> Option<String> {
        self.secured
            .as_ref()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
    }

    /// Its bootstrap address.
    #[must_use]
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `scripts/kafka-local.sh <what>` for this broker.
    #[must_use]
    pub fn command(&self, what: &str) -> std::process::Command {
        let mut c = std::process::Command::new("bash");
        c.arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka-local.sh"))
            .arg(what)
            .env("KAFKA_LOCAL_DIR", &self.dir)
            .env("KAFKA_LOCAL_PORT", self.port.to_string())
            .env("KAFKA_LOCAL_CONTROLLER_PORT", self.cport.to_string());
        if let Some((port, pem)) = &self.secured {
            c.env("KAFKA_LOCAL_SASL_SSL_PORT", port.to_string())
                .env("KAFKA_LOCAL_TLS_PEM", pem);
        }
        c
    }

    /// Runs `scripts/kafka-local.sh <what>` (`start`, `stop`).
    ///
    /// # Panics
    /// When the script fails.
    #[allow(clippy::unwrap_used, clippy::panic)]
    pub fn run(&self, what: &str) {
        let out = self.command(what).output().unwrap();
        assert!(
            out.status.success(),
            "kafka-local {what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.command("stop").output();
    }
}

/// Waits until `pipeline`'s segmenter has taken at least `feed_records`
/// and no processor has consumed anything for `idle` (checked every
/// `poll`): the pipeline has settled on what was published.
///
/// # Panics
/// When it has not settled within `deadline`.
#[allow(clippy::panic)]
pub async fn settle(
    pipeline: &epitrace_processors::Pipeline,
    feed_records: u64,
    poll: Duration,
    idle: Duration,
    deadline: Duration,
) {
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    let stats = pipeline.stats().clone();
    let total = || -> u64 {
        stats
            .values()
            .map(|s| s.records_in.load(Ordering::Relaxed))
            .sum()
    };
    let segmenter = || {
        stats
            .get(&epitrace_processors::ProcessorKind::Segmenter)
            .map_or(0, |s| s.records_in.load(Ordering::Relaxed))
    };
    let give_up = Instant::now() + deadline;
    let mut last = (total(), Instant::now());
    loop {
        tokio::time::sleep(poll).await;
        let now = total();
        if now != last.0 {
            last = (now, Instant::now());
        } else if segmenter() >= feed_records && last.1.elapsed() >= idle {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "the pipeline did not settle: segmenter {} of {feed_records}",
            segmenter()
        );
    }
}
