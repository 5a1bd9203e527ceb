//! Kafka client settings shared by every processor of one instance.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// What a processor promises about its outputs when it crashes, is moved or
/// loses the brokers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Per batch, the outputs, the changelog writes and the input offsets
    /// commit in one Kafka transaction (`read_committed` consumers see each
    /// output exactly once); an instance that lost its partitions is
    /// fenced. The default.
    #[default]
    ExactlyOnce,
    /// Outputs are acknowledged before state and offsets are written: a
    /// crash replays the unwritten batch and may publish identical
    /// duplicates (same ids), never lose one. Cheaper per batch.
    AtLeastOnce,
}

impl Guarantee {
    /// The name used in configuration and on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::ExactlyOnce => "exactly_once",
            Self::AtLeastOnce => "at_least_once",
        }
    }
}

impl std::fmt::Display for Guarantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Guarantee {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exactly_once" => Ok(Self::ExactlyOnce),
            "at_least_once" => Ok(Self::AtLeastOnce),
            other => Err(format!(
                "unknown processing guarantee {other:?} (exactly_once or at_least_once)"
            )),
        }
    }
}

/// How epitrace talks to Kafka. Defaults suit a local broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated. Default `127.0.0.1:9092`.
    pub brokers: String,
    /// Prefix of every consumer group id: a processor's group is
    /// `<group_prefix>.<processor>`. Default `epitrace`.
    pub group_prefix: String,
    /// Client id reported to the brokers. Default `epitrace`.
    pub client_id: String,
    /// Most input records one batch holds. Default 5000.
    pub batch_max_records: usize,
    /// How long a batch waits for more records after its first one, in ms.
    /// Default 20: latency stays low, batches grow under load.
    pub batch_linger_ms: u64,
    /// How long a produced batch may take to be acknowledged, in ms, before
    /// its outputs are sent again (the task keeps the batch, unwritten,
    /// while the brokers do not answer; see `epitrace_delivery_retries_total`).
    /// Default 60000.
    pub delivery_timeout_ms: u64,
    /// `exactly_once` (default) or `at_least_once`: see [`Guarantee`].
    pub processing_guarantee: Guarantee,
    /// How long a transaction may stay open, in ms (exactly-once only).
    /// It bounds how long a crashed instance's unfinished transaction holds
    /// back the instance that takes its partitions over. Default 15000.
    pub transaction_timeout_ms: u64,
    /// Standby replicas: how many other instances keep a warm copy of each
    /// partition's state by tailing its changelog, so that a partition
    /// moving to one of them restores only the tail it missed (see
    /// `epitrace_stream::standby`). Placement follows the consumer group;
    /// copies cost each instance disk and a changelog reader per
    /// processor. Default 0 (none).
    pub num_standby: usize,
    /// How every Kafka client of the process encrypts and authenticates
    /// (`[kafka.security]`): TLS and SASL/SCRAM. Default: plaintext.
    pub security: SecurityConfig,
    /// The Schema Registry providers' Confluent frames are resolved through
    /// (`[kafka.registry]`, see `epitrace_stream::registry`). Default:
    /// none.
    pub registry: crate::registry::RegistryConfig,
    /// Extra librdkafka consumer properties (override the defaults).
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka producer properties (override the defaults).
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_prefix: "epitrace".into(),
            client_id: "epitrace".into(),
            batch_max_records: 5000,
            batch_linger_ms: 20,
            delivery_timeout_ms: 60_000,
            processing_guarantee: Guarantee::ExactlyOnce,
            transaction_timeout_ms: 15_000,
            num_standby: 0,
            security: SecurityConfig::default(),
            registry: crate::registry::RegistryConfig::default(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Settings for a config pointing at `brokers`, otherwise default.
    #[must_use]
    pub fn for_brokers(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            ..Self::default()
        }
    }

    /// A client configuration with the brokers and the security settings
    /// and nothing else: what admin clients and probes start from.
    #[must_use]
    pub fn base_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        self.security.apply(&mut c);
        c
    }

    /// The librdkafka producer configuration: idempotent, `acks=all`, the
    /// Java client's murmur2 partitioner (so keys land where Java producers
    /// put them: co-partitioning across topics depends on it), lz4.
    #[must_use]
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.base_config();
        c.set("client.id", &self.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("message.timeout.ms", self.delivery_timeout_ms.to_string());
        for (k, v) in &self.producer {
            c.set(k, v);
        }
        c
    }

    /// The producer configuration of one processor's transactional
    /// producer (exactly-once): [`KafkaConfig::producer_config`] plus
    /// `transactional.id` and the transaction timeout (deliveries must then
    /// be acknowledged within the transaction timeout).
    #[must_use]
    pub fn transactional_producer_config(&self, transactional_id: &str) -> ClientConfig {
        let mut c = self.producer_config();
        c.set("transactional.id", transactional_id)
            .set(
                "transaction.timeout.ms",
                self.transaction_timeout_ms.to_string(),
            )
            .set(
                "message.timeout.ms",
                self.delivery_timeout_ms
                    .min(self.transaction_timeout_ms)
                    .to_string(),
            );
        for (k, v) in &self.producer {
            c.set(k, v);
        }
        c
    }

    /// The librdkafka consumer configuration for one processor: its own
    /// group, no auto-commit (offsets live with the state),
    /// `cooperative-sticky` assignment of the processor's first input
    /// (the other inputs follow by partition number: see
    /// [`crate::task`]), `read_committed`, and the earliest offset when
    /// nothing is stored.
    #[must_use]
    pub fn consumer_config(&self, processor: &str) -> ClientConfig {
        let mut c = self.base_config();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("{}.{processor}", self.client_id))
            .set("group.id", format!("{}.{processor}", self.group_prefix))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("topic.metadata.refresh.interval.ms", "5000")
            // Per-partition consumer lag for the metrics.
            .set("statistics.interval.ms", "5000");
        for (k, v) in &self.consumer {
            c.set(k, v);
        }
        c
    }
}

/// How clients protect their connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No encryption, no authentication (a local broker). The default.
    #[default]
    Plaintext,
    /// TLS; the client is authenticated by its certificate when one is
    /// given.
    Ssl,
    /// SASL authentication without encryption (never over a network you do
    /// not control).
    SaslPlaintext,
    /// SASL authentication over TLS: what production uses.
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's `security.protocol` value.
    #[must_use]
    pub const fn librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    const fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    const fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// A secret read from configuration: never printed (`Debug` and
/// serialisation show `<redacted>` when it is set).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the client that needs it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

/// `[kafka.security]`: TLS and SASL settings applied to every client of
/// the process (producers, consumers, admin clients, probes). Each key is
/// also an `EPITRACE_KAFKA_SECURITY_*` variable — the way to pass the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: SecurityProtocol,
    /// SASL mechanism: `SCRAM-SHA-256` (default), `SCRAM-SHA-512` or
    /// `PLAIN`.
    pub sasl_mechanism: String,
    /// SASL user name: the principal the brokers' ACLs name
    /// (`User:<username>`).
    pub username: String,
    /// SASL password (set it through `EPITRACE_KAFKA_SECURITY_PASSWORD`
    /// rather than in a file).
    pub password: Secret,
    /// PEM file of the CA certificates that sign the brokers' certificates
    /// (empty, the default: the system's).
    pub ca_file: PathBuf,
    /// PEM file of this client's certificate, for TLS client
    /// authentication (empty: none).
    pub cert_file: PathBuf,
    /// PEM file of this client's private key (empty: none).
    pub key_file: PathBuf,
    /// Whether the broker's certificate must name the host connected to
    /// (default true; turn off only for test certificates).
    pub verify_hostname: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: "SCRAM-SHA-256".into(),
            username: String::new(),
            password: Secret::default(),
            ca_file: PathBuf::new(),
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            verify_hostname: true,
        }
    }
}

impl SecurityConfig {
    /// Sets librdkafka's security properties on `c`.
    pub fn apply(&self, c: &mut ClientConfig) {
        c.set("security.protocol", self.protocol.librdkafka());
        if self.protocol.sasl() {
            c.set("sasl.mechanisms", &self.sasl_mechanism)
                .set("sasl.username", &self.username)
                .set("sasl.password", self.password.expose());
        }
        if self.protocol.tls() {
            for (key, p) in [
                ("ssl.ca.location", &self.ca_file),
                ("ssl.certificate.location", &self.cert_file),
                ("ssl.key.location", &self.key_file),
            ] {
                if !p.as_os_str().is_empty() {
                    c.set(key, p.display().to_string());
                }
            }
            c.set(
                "ssl.endpoint.identification.algorithm",
                if self.verify_hostname {
                    "https"
                } else {
                    "none"
                },
            );
        }
    }

    /// Checks the settings hang together: SASL needs a user name and a
    /// mechanism librdkafka knows; a client certificate needs its key.
    ///
    /// # Errors
    /// A message naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.protocol.sasl() {
            if self.username.is_empty() {
                return Err("kafka.security.username is required with SASL".into());
            }
            if !["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"].contains(&self.sasl_mechanism.as_str())
            {
                return Err(format!(
                    "kafka.security.sasl_mechanism {:?} is not SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
                    self.sasl_mechanism
                ));
            }
        }
        if self.cert_file.as_os_str().is_empty() != self.key_file.as_os_str().is_empty() {
            return Err("kafka.security.cert_file and key_file go together".into());
        }
        for (key, p) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ] {
            if !p.as_os_str().is_empty() && !p.is_file() {
                return Err(format!(
                    "kafka.security.{key}: {} is not a readable file",
                    p.display()
                ));
            }
        }
        Ok(())
    }
}
