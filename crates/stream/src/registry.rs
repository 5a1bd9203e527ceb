//! A Confluent-compatible Schema Registry: the client, the cache of writer
//! schemas by id, and the framing of records on the way in and out.
//!
//! Providers that use a registry's standard Avro serializer write
//! *Confluent frames* — `00`, the schema id (4 bytes, big-endian), the
//! datum — instead of the single-object frames epitrace writes (`C3 01`,
//! the schema's fingerprint, the datum). With `kafka.registry.url` set:
//!
//! - **In:** before a batch reaches the processors, every Confluent frame
//!   is turned into the single-object frame of the same record
//!   ([`Registry::normalize`]): a writer schema this build knows (its
//!   fingerprint is the current or a released one) keeps its datum and
//!   gets the fingerprint as header; another one — a provider's own
//!   compatible schema — is resolved into the current schema and encoded
//!   again. Ids are looked up in the registry once and cached for the life
//!   of the process (a registry id never changes its schema).
//! - **The rule when an id is not cached:** the registry is asked. If it
//!   answers that it has no such id (404), the record is dead-lettered as
//!   `unknown_schema_id`. If it does not answer (down, timeout, 5xx), the
//!   record waits: its partition is processed up to it and read again from
//!   it at the next batch, until the registry answers — records of other
//!   partitions, and earlier records of its own, flow on; nothing is
//!   skipped and nothing dead-lettered for an outage
//!   (`epitrace_registry_waits_total`).
//! - **Out:** with `kafka.registry.output_framing = "confluent"`, the
//!   public outputs ([`PUBLIC_OUTPUTS`]) are written as Confluent frames
//!   under the id the registry gives the current schema in subject
//!   `<topic>-value` (looked up — registered if missing — when a task
//!   starts). Internal topics stay single-object. epitrace's own readers
//!   (`crate::read`) turn Confluent frames back into single-object ones
//!   through the registry, so the CLI and the API read either.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The media type of the Confluent API.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How epitrace frames the records it publishes on its public outputs: the
/// `kafka.registry.output_framing` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Avro single-object encoding (`C3 01`, fingerprint, datum). Default.
    #[default]
    SingleObject,
    /// Confluent Schema Registry framing (`00`, the registry's id of the
    /// current schema under `<topic>-value`, datum); needs
    /// `kafka.registry.url`.
    Confluent,
}

/// The topics whose records `output_framing` applies to: what consumers
/// outside epitrace read. Internal topics (repartitions, changelogs,
/// `clusters.evidence`) and `audit.log` stay single-object.
pub const PUBLIC_OUTPUTS: &[&str] = &[
    epitrace_model::topics::TIMELINES,
    epitrace_model::topics::EXPOSURES,
    epitrace_model::topics::CLUSTERS,
    epitrace_model::topics::DEADLETTER,
];

/// The `[kafka.registry]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Base URL of a Confluent-compatible Schema Registry API, e.g.
    /// `http://127.0.0.1:8081/apis/ccompat/v7` (Apicurio) or
    /// `http://registry:8081` (Confluent). Plain HTTP (a registry inside
    /// the deployment's network, or behind a TLS-terminating proxy on the
    /// same host). Default `""`: none — Confluent frames are dead-lettered
    /// as `unknown_schema_id`.
    pub url: String,
    /// How the public outputs (`tracing.timelines`, `tracing.exposures`,
    /// `tracing.clusters`, `pipeline.deadletter` and the providers' own
    /// `pipeline.deadletter.<provider>`) are framed:
    /// `single_object` (default) or `confluent` (for consumers using a
    /// registry deserializer; needs `url`, and the schemas registered with
    /// `epitrace schemas register`). epitrace's own readers read both.
    pub output_framing: Framing,
    /// How long one registry request may take, in ms. Default 5000.
    pub timeout_ms: u64,
    /// The compatibility level `epitrace schemas register` sets on every
    /// subject. Default `BACKWARD` (a new schema reads all data of the
    /// previous one: epitrace's evolution rule).
    pub compatibility: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            output_framing: Framing::SingleObject,
            timeout_ms: 5_000,
            compatibility: "BACKWARD".into(),
        }
    }
}

impl RegistryConfig {
    /// The registry's URL, when one is configured (`url` not empty).
    #[must_use]
    pub fn url(&self) -> Option<&str> {
        Some(self.url.trim()).filter(|u| !u.is_empty())
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = self.url() {
            if url.starts_with("https://") {
                return Err("kafka.registry.url: https is not supported; reach the registry over plain HTTP inside the deployment's network or through a local TLS-terminating proxy".into());
            }
            if !url.starts_with("http://") {
                return Err(format!(
                    "kafka.registry.url must start with http://, not {url:?}"
                ));
            }
        } else if self.output_framing == Framing::Confluent {
            return Err(
                "kafka.registry.output_framing = \"confluent\" needs kafka.registry.url".into(),
            );
        }
        if self.timeout_ms == 0 {
            return Err("kafka.registry.timeout_ms must be positive".into());
        }
        const LEVELS: &[&str] = &[
            "BACKWARD",
            "BACKWARD_TRANSITIVE",
            "FORWARD",
            "FORWARD_TRANSITIVE",
            "FULL",
            "FULL_TRANSITIVE",
            "NONE",
        ];
        if !LEVELS.contains(&self.compatibility.as_str()) {
            return Err(format!(
                "kafka.registry.compatibility must be one of {}",
                LEVELS.join(", ")
            ));
        }
        Ok(())
    }
}

/// What went wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer (refused, timed out, a 5xx): worth trying again later.
    #[error("schema registry at {url} did not answer: {reason}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The registry has no such id, subject or version (404).
    #[error("not found in the schema registry: {0}")]
    NotFound(String),
    /// The registry refused a schema as incompatible with the subject's
    /// history under its compatibility level (409).
    #[error("the schema registry refused the schema for {subject} as incompatible: {message}")]
    Incompatible {
        /// The subject.
        subject: String,
        /// The registry's message.
        message: String,
    },
    /// Any other refusal or an answer that is not what the API promises.
    #[error("schema registry: {0}")]
    Protocol(String),
}

impl RegistryError {
    /// Whether trying again later may succeed.
    #[must_use]
    pub const fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// A client of the Confluent Schema Registry API.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    timeout: Duration,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client of the registry at `url` (see [`RegistryConfig::url`]).
    #[must_use]
    pub fn new(url: &str, timeout: Duration) -> Self {
        Self {
            base: url.trim_end_matches('/').to_owned(),
            timeout,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The client a configuration names, if any.
    #[must_use]
    pub fn from_config(cfg: &RegistryConfig) -> Option<Self> {
        cfg.url()
            .map(|u| Self::new(u, Duration::from_millis(cfg.timeout_ms)))
    }

    /// The base URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), RegistryError> {
        let unreachable = |reason: String| RegistryError::Unreachable {
            url: self.base.clone(),
            reason,
        };
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", CONTENT_TYPE)
            .header("accept", CONTENT_TYPE)
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| RegistryError::Protocol(format!("request: {e}")))?;
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, RegistryError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                unreachable(format!("no answer within {} ms", self.timeout.as_millis()))
            })??;
        if status.is_server_error() {
            return Err(unreachable(format!("HTTP {status}")));
        }
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).map_err(|_| {
                RegistryError::Protocol(format!("HTTP {status}: an answer that is not JSON"))
            })?
        };
        Ok((status, value))
    }

    fn message(v: &Value) -> String {
        v.get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned()
    }

    /// The schema registered under `id`, as its text; `None` when the
    /// registry has no such id.
    ///
    /// # Errors
    /// [`RegistryError::Unreachable`]; [`RegistryError::Protocol`] for an
    /// unexpected answer.
    pub async fn schema(&self, id: u32) -> Result<Option<String>, RegistryError> {
        let (status, v) = self
            .call(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => v
                .get("schema")
                .and_then(Value::as_str)
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| {
                    RegistryError::Protocol(format!("schema {id}: no \"schema\" in the answer"))
                }),
            s => Err(RegistryError::Protocol(format!(
                "schema {id}: HTTP {s}: {}",
                Self::message(&v)
            ))),
        }
    }

    /// Registers `schema` under `subject` (idempotent: an identical schema
    /// returns its existing id) and returns its id.
    ///
    /// # Errors
    /// [`RegistryError::Incompatible`] when the subject's compatibility
    /// level refuses it; [`RegistryError::Unreachable`];
    /// [`RegistryError::Protocol`].
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let (status, v) = self
            .call(
                Method::POST,
                &format!("/subjects/{subject}/versions"),
                Some(json!({ "schema": schema })),
            )
            .await?;
        match status {
            StatusCode::CONFLICT => Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                message: Self::message(&v),
            }),
            s if s.is_success() => id_of(&v)
                .ok_or_else(|| RegistryError::Protocol(format!("{subject}: no id in the answer"))),
            s => Err(RegistryError::Protocol(format!(
                "registering under {subject}: HTTP {s}: {}",
                Self::message(&v)
            ))),
        }
    }

    /// The id of `schema` under `subject`, if it is registered there.
    ///
    /// # Errors
    /// [`RegistryError::Unreachable`]; [`RegistryError::Protocol`].
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>, RegistryError> {
        let (status, v) = self
            .call(
                Method::POST,
                &format!("/subjects/{subject}"),
                Some(json!({ "schema": schema })),
            )
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(id_of(&v)),
            s => Err(RegistryError::Protocol(format!(
                "looking up under {subject}: HTTP {s}: {}",
                Self::message(&v)
            ))),
        }
    }

    /// Sets the compatibility level of `subject`.
    ///
    /// # Errors
    /// [`RegistryError::Unreachable`]; [`RegistryError::Protocol`].
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let (status, v) = self
            .call(
                Method::PUT,
                &format!("/config/{subject}"),
                Some(json!({ "compatibility": level })),
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(RegistryError::Protocol(format!(
                "setting {subject} to {level}: HTTP {status}: {}",
                Self::message(&v)
            )))
        }
    }

    /// Whether `schema` may be registered under `subject` now (against its
    /// latest version and compatibility level), with the registry's reason
    /// when not.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for a subject with no version;
    /// [`RegistryError::Unreachable`]; [`RegistryError::Protocol`].
    pub async fn compatible(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<(bool, Option<String>), RegistryError> {
        let (status, v) = self
            .call(
                Method::POST,
                &format!("/compatibility/subjects/{subject}/versions/latest?verbose=true"),
                Some(json!({ "schema": schema })),
            )
            .await?;
        match status {
            StatusCode::NOT_FOUND => Err(RegistryError::NotFound(subject.to_owned())),
            s if s.is_success() => {
                let ok = v
                    .get("is_compatible")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| {
                        RegistryError::Protocol("no is_compatible in the answer".into())
                    })?;
                let reason = v
                    .get("reason")
                    .and_then(Value::as_str)
                    .or_else(|| {
                        v.get("messages")
                            .and_then(|m| m.get(0))
                            .and_then(Value::as_str)
                    })
                    .map(str::to_owned);
                Ok((ok, reason))
            }
            s => Err(RegistryError::Protocol(format!(
                "checking {subject}: HTTP {s}: {}",
                Self::message(&v)
            ))),
        }
    }
}

fn id_of(v: &Value) -> Option<u32> {
    v.get("id")
        .and_then(Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
}

/// A writer schema the registry holds under an id.
#[derive(Debug)]
pub struct Writer {
    /// The schema, parsed.
    pub schema: Schema,
    /// Its single-object fingerprint (Rabin of the Parsing Canonical Form).
    pub fingerprint: u64,
}

/// What to do with one record before the processors see it.
#[derive(Debug, PartialEq, Eq)]
pub enum Normalized {
    /// Not a Confluent frame: as it is.
    Unchanged,
    /// The single-object frame of the same record.
    Reframed(Vec<u8>),
    /// A dead letter: the reason code and a detail without field values.
    Rejected(&'static str, String),
    /// The registry must be asked and does not answer: the record and the
    /// rest of its partition wait.
    Wait,
}

/// The registry of a process: its client (if configured) and the writer
/// schemas fetched so far (ids never change their schema, so they are kept
/// for the life of the process). Shared by the process's tasks.
#[derive(Debug, Default)]
pub struct Registry {
    client: Option<RegistryClient>,
    output_framing: Framing,
    by_id: RwLock<HashMap<u32, Arc<Writer>>>,
    /// Ids the registry answered it does not have (asked again after
    /// [`MISSING_RETRY`]).
    missing: RwLock<HashMap<u32, std::time::Instant>>,
    /// Per public output topic: the current schema's fingerprint and its
    /// registry id (Confluent output framing).
    out_ids: RwLock<HashMap<&'static str, (u64, u32)>>,
}

/// How long an id the registry did not have is taken as missing before it
/// is asked again (a provider may register a schema just after producing).
pub const MISSING_RETRY: Duration = Duration::from_secs(30);

/// The first byte of a Confluent frame.
const CONFLUENT_MAGIC: u8 = 0;

/// The schema id of a Confluent frame.
#[must_use]
pub fn confluent_id(payload: &[u8]) -> Option<u32> {
    match payload {
        [CONFLUENT_MAGIC, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

impl Registry {
    /// The registry a configuration describes (no client without a URL).
    #[must_use]
    pub fn new(cfg: &RegistryConfig) -> Self {
        Self {
            client: RegistryClient::from_config(cfg),
            output_framing: cfg.output_framing,
            ..Self::default()
        }
    }

    /// Looks up (registering it if the subject lacks it) the id of the
    /// current schema of every public output among `topics`, for Confluent
    /// output framing; nothing to do for single-object framing.
    ///
    /// # Errors
    /// [`RegistryError`]: unreachable (the caller retries), or a refusal.
    pub async fn prepare_outputs(&self, topics: &[&str]) -> Result<(), RegistryError> {
        let Some(client) = self
            .client
            .as_ref()
            .filter(|_| self.output_framing == Framing::Confluent)
        else {
            return Ok(());
        };
        for &topic in PUBLIC_OUTPUTS.iter().filter(|t| topics.contains(t)) {
            let Some(file) = epitrace_model::topics::record_of(topic).and_then(|r| {
                epitrace_model::schema::SCHEMA_FILES
                    .iter()
                    .find(|f| f.record == r)
            }) else {
                continue;
            };
            let subject = format!("{topic}-value");
            let id = match client.lookup(&subject, file.current).await? {
                Some(id) => id,
                None => client.register(&subject, file.current).await?,
            };
            let schema = epitrace_model::schema::parse(file.current)
                .map_err(|e| RegistryError::Protocol(e.to_string()))?;
            let fp = epitrace_model::schema::fingerprint(&schema);
            if let Ok(mut m) = self.out_ids.write() {
                m.insert(topic, (fp, id));
            }
        }
        Ok(())
    }

    /// The payload to publish on `topic`: a single-object frame of the
    /// current schema becomes a Confluent frame under its registry id when
    /// the output framing is Confluent and `topic` a public output
    /// ([`Registry::prepare_outputs`] done); `None` leaves it as it is.
    #[must_use]
    pub fn frame_output(&self, topic: &str, payload: &[u8]) -> Option<Vec<u8>> {
        if self.output_framing != Framing::Confluent {
            return None;
        }
        // A provider's dead-letter topic carries pipeline.deadletter's
        // records, under that subject's id.
        let topic = if topic.starts_with(epitrace_model::topics::PROVIDER_DEADLETTER_PREFIX) {
            epitrace_model::topics::DEADLETTER
        } else {
            topic
        };
        let (fp, id) = *self.out_ids.read().ok()?.get(topic)?;
        let header = payload.get(..10)?;
        if header[..2] != [0xC3, 0x01] || header[2..] != fp.to_le_bytes() {
            return None;
        }
        let mut out = Vec::with_capacity(payload.len() - 5);
        out.push(CONFLUENT_MAGIC);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&payload[10..]);
        Some(out)
    }

    /// The client, when a registry is configured.
    #[must_use]
    pub const fn client(&self) -> Option<&RegistryClient> {
        self.client.as_ref()
    }

    fn cached(&self, id: u32) -> Option<Arc<Writer>> {
        self.by_id.read().ok()?.get(&id).cloned()
    }

    fn known_missing(&self, id: u32) -> bool {
        self.missing
            .read()
            .ok()
            .and_then(|m| m.get(&id).copied())
            .is_some_and(|at| at.elapsed() < MISSING_RETRY)
    }

    /// Fetches the writer schemas of `ids` not cached yet. Returns whether
    /// the registry answered for every one of them (`false`: at least one
    /// must wait).
    pub async fn fetch(&self, ids: impl IntoIterator<Item = u32>) -> bool {
        let Some(client) = &self.client else {
            return true;
        };
        let mut answered = true;
        for id in ids {
            if self.cached(id).is_some() || self.known_missing(id) {
                continue;
            }
            match client.schema(id).await {
                Ok(Some(text)) => match epitrace_model::schema::parse(&text) {
                    Ok(schema) => {
                        let fingerprint = epitrace_model::schema::fingerprint(&schema);
                        if let Ok(mut m) = self.by_id.write() {
                            m.insert(
                                id,
                                Arc::new(Writer {
                                    schema,
                                    fingerprint,
                                }),
                            );
                        }
                    }
                    Err(_) => {
                        // Not an Avro schema epitrace can parse: as missing.
                        if let Ok(mut m) = self.missing.write() {
                            m.insert(id, std::time::Instant::now());
                        }
                    }
                },
                Ok(None) => {
                    if let Ok(mut m) = self.missing.write() {
                        m.insert(id, std::time::Instant::now());
                    }
                }
                Err(e) if e.is_transient() => {
                    answered = false;
                }
                Err(_) => {
                    if let Ok(mut m) = self.missing.write() {
                        m.insert(id, std::time::Instant::now());
                    }
                }
            }
        }
        answered
    }

    /// What becomes of one record of `topic` (after [`Registry::fetch`]
    /// for its id).
    #[must_use]
    pub fn normalize(&self, topic: &str, payload: Option<&[u8]>) -> Normalized {
        let Some(payload) = payload else {
            return Normalized::Unchanged;
        };
        let Some(id) = confluent_id(payload) else {
            return Normalized::Unchanged;
        };
        if self.client.is_none() {
            return Normalized::Rejected(
                "unknown_schema_id",
                format!(
                    "a Confluent Schema Registry frame (schema id {id}), but no kafka.registry.url is configured"
                ),
            );
        }
        let Some(writer) = self.cached(id) else {
            if self.known_missing(id) {
                return Normalized::Rejected(
                    "unknown_schema_id",
                    format!("schema id {id} is not in the schema registry"),
                );
            }
            return Normalized::Wait;
        };
        let Some(record) = epitrace_model::topics::record_of(topic) else {
            return Normalized::Rejected(
                "unknown_schema_id",
                format!("{topic} carries no single record type a registry subject stands for"),
            );
        };
        let datum = payload.get(5..).unwrap_or_default();
        match epitrace_model::codec::reframe(record, &writer.schema, writer.fingerprint, datum) {
            Ok(frame) => Normalized::Reframed(frame),
            Err(e) => Normalized::Rejected(
                e.reason_code(),
                format!("schema id {id}: {}", safe_detail(&e)),
            ),
        }
    }
}

/// A model error's text, unless the library's (which can quote values).
fn safe_detail(e: &epitrace_model::ModelError) -> String {
    match e {
        epitrace_model::ModelError::Avro(_) => {
            "the datum does not read as the registered schema resolved into epitrace's".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use epitrace_model::codec::{AvroRecord, encode_confluent};
    use epitrace_model::records::LocationPing;

    use super::*;

    fn ping() -> LocationPing {
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
    fn confluent_ids_are_read_from_the_header_only() {
        assert_eq!(confluent_id(&[0, 0, 0, 1, 2, 9]), Some(258));
        assert_eq!(confluent_id(&[0, 0, 0, 1, 2]), Some(258));
        assert_eq!(confluent_id(&[0, 0, 0]), None);
        assert_eq!(confluent_id(&[0xC3, 0x01, 0, 0, 0, 0]), None);
    }

    #[test]
    fn settings_are_checked() {
        assert!(RegistryConfig::default().validate().is_ok());
        let with = |url: &str| RegistryConfig {
            url: url.into(),
            ..RegistryConfig::default()
        };
        assert!(with("http://127.0.0.1:8081").validate().is_ok());
        assert!(
            with("https://registry")
                .validate()
                .unwrap_err()
                .contains("https")
        );
        assert!(with("registry:8081").validate().is_err());
        let level = RegistryConfig {
            compatibility: "SOMETIMES".into(),
            ..RegistryConfig::default()
        };
        assert!(level.validate().unwrap_err().contains("BACKWARD"));
        let zero = RegistryConfig {
            timeout_ms: 0,
            ..RegistryConfig::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn frames_are_normalized_by_what_the_cache_knows() {
        let frame = encode_confluent(&ping(), 7).unwrap();
        let single = epitrace_model::codec::encode_single_object(&ping()).unwrap();
        // No registry configured: refused, saying so.
        let none = Registry::default();
        match none.normalize(epitrace_model::topics::TELECOM, Some(&frame)) {
            Normalized::Rejected(reason, detail) => {
                assert_eq!(reason, "unknown_schema_id");
                assert!(detail.contains("kafka.registry.url"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            none.normalize(epitrace_model::topics::TELECOM, Some(&single)),
            Normalized::Unchanged
        );
        assert_eq!(
            none.normalize(epitrace_model::topics::TELECOM, None),
            Normalized::Unchanged
        );
        // A registry: an id not fetched waits; a cached one is reframed; one
        // the registry lacks is refused.
        let reg = Registry::new(&RegistryConfig {
            url: "http://127.0.0.1:9".into(),
            ..RegistryConfig::default()
        });
        assert_eq!(
            reg.normalize(epitrace_model::topics::TELECOM, Some(&frame)),
            Normalized::Wait
        );
        let schema = LocationPing::schema().clone();
        let fingerprint = epitrace_model::schema::fingerprint(&schema);
        reg.by_id.write().unwrap().insert(
            7,
            Arc::new(Writer {
                schema,
                fingerprint,
            }),
        );
        assert_eq!(
            reg.normalize(epitrace_model::topics::TELECOM, Some(&frame)),
            Normalized::Reframed(single)
        );
        // The same id on a topic of another record: the datum does not read.
        assert!(matches!(
            reg.normalize(epitrace_model::topics::CASES, Some(&frame)),
            Normalized::Rejected(..)
        ));
        reg.missing
            .write()
            .unwrap()
            .insert(8, std::time::Instant::now());
        let other = encode_confluent(&ping(), 8).unwrap();
        assert!(matches!(
            reg.normalize(epitrace_model::topics::TELECOM, Some(&other)),
            Normalized::Rejected("unknown_schema_id", _)
        ));
    }

    #[test]
    fn outputs_are_framed_only_when_configured_and_prepared() {
        let single = epitrace_model::codec::encode_single_object(&ping()).unwrap();
        let topic = epitrace_model::topics::TIMELINES;
        assert_eq!(Registry::default().frame_output(topic, &single), None);
        let reg = Registry::new(&RegistryConfig {
            url: "http://127.0.0.1:9".into(),
            output_framing: Framing::Confluent,
            ..RegistryConfig::default()
        });
        assert_eq!(reg.frame_output(topic, &single), None, "not prepared");
        let fp = LocationPing::schema_set().fingerprint();
        reg.out_ids.write().unwrap().insert(topic, (fp, 42));
        let framed = reg.frame_output(topic, &single).unwrap();
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 42]);
        assert_eq!(&framed[5..], &single[10..]);
        // Another schema's frame, another topic: left alone.
        reg.out_ids.write().unwrap().insert(topic, (fp ^ 1, 42));
        assert_eq!(reg.frame_output(topic, &single), None);
        assert_eq!(reg.frame_output("other", &single), None);
        let confluent_without_url = RegistryConfig {
            output_framing: Framing::Confluent,
            ..RegistryConfig::default()
        };
        assert!(confluent_without_url.validate().is_err());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n").unwrap(),
            b"hello world"
        );
        assert_eq!(dechunk(b"zz\r\n"), None);
        assert_eq!(dechunk(b"5\r\nhel"), None);
    }

    #[test]
    fn readers_leave_what_they_cannot_turn() {
        let mut none = ReaderFrames::new(&RegistryConfig::default());
        let frame = encode_confluent(&ping(), 7).unwrap();
        assert_eq!(
            none.normalize("feeds.telecom.location", frame.clone()),
            frame
        );
        let mut down = ReaderFrames::new(&RegistryConfig {
            url: "http://127.0.0.1:9/apis/ccompat/v7".into(),
            timeout_ms: 300,
            ..RegistryConfig::default()
        });
        assert_eq!(
            down.normalize("feeds.telecom.location", frame.clone()),
            frame
        );
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_transient() {
        let reg = Registry::new(&RegistryConfig {
            url: "http://127.0.0.1:9".into(),
            timeout_ms: 500,
            ..RegistryConfig::default()
        });
        assert!(!reg.fetch([5]).await, "not answered");
        let err = reg.client().unwrap().schema(5).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
    }
}

/// The blocking side for epitrace's own readers (`crate::read`): Confluent
/// frames read back from a topic become single-object frames, through the
/// registry over a plain blocking HTTP request per new id (readers run on
/// threads of their own, outside the runtime). A frame that cannot be
/// turned (no registry, an unknown id, an unreachable registry) is left as
/// it is: the reader's decode then refuses it and counts it.
#[derive(Debug)]
pub struct ReaderFrames {
    url: Option<String>,
    timeout: Duration,
    cache: HashMap<u32, Option<Arc<Writer>>>,
}

impl ReaderFrames {
    /// The reader side of a configuration.
    #[must_use]
    pub fn new(cfg: &RegistryConfig) -> Self {
        Self {
            url: cfg.url().map(str::to_owned),
            timeout: Duration::from_millis(cfg.timeout_ms),
            cache: HashMap::new(),
        }
    }

    /// `payload` of `topic` as a single-object frame when it is a Confluent
    /// frame this can turn; otherwise unchanged.
    pub fn normalize(&mut self, topic: &str, payload: Vec<u8>) -> Vec<u8> {
        let (Some(id), Some(url)) = (confluent_id(&payload), self.url.as_deref()) else {
            return payload;
        };
        let timeout = self.timeout;
        let writer = self
            .cache
            .entry(id)
            .or_insert_with(|| {
                let text = fetch_schema_blocking(url, id, timeout)?;
                let schema = epitrace_model::schema::parse(&text).ok()?;
                let fingerprint = epitrace_model::schema::fingerprint(&schema);
                Some(Arc::new(Writer {
                    schema,
                    fingerprint,
                }))
            })
            .clone();
        let (Some(writer), Some(record)) = (writer, epitrace_model::topics::record_of(topic))
        else {
            return payload;
        };
        let datum = payload.get(5..).unwrap_or_default();
        epitrace_model::codec::reframe(record, &writer.schema, writer.fingerprint, datum)
            .unwrap_or(payload)
    }
}

/// `GET {url}/schemas/ids/{id}` over a blocking connection (HTTP/1.1,
/// `Connection: close`); the schema text, or `None` on any failure.
fn fetch_schema_blocking(url: &str, id: u32, timeout: Duration) -> Option<String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let rest = url.strip_prefix("http://")?;
    let (authority, base) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let sock = addr.to_socket_addrs().ok()?.next()?;
    let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let path = format!("/{}/schemas/ids/{id}", base.trim_end_matches('/'));
    let path = path.replace("//", "/");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: {CONTENT_TYPE}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..split]).ok()?;
    let mut body = response[split + 4..].to_vec();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    if status != 200 {
        return None;
    }
    if head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    }) {
        body = dechunk(&body)?;
    }
    let v: Value = serde_json::from_slice(&body).ok()?;
    v.get("schema").and_then(Value::as_str).map(str::to_owned)
}

/// The body of a chunked transfer encoding.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}
