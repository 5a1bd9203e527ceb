//! # epitrace-ops
//!
//! What operators see of a running epitrace process:
//!
//! - [`Metrics`]: every Prometheus metric the process exports, each defined
//!   once with its help text, in its own registry (no global state), with
//!   bounded labels only (processor, topic, partition, store, reason, kind —
//!   never a subject, case, cell or window);
//! - [`Health`]: liveness and readiness — ready when every processor task
//!   has its partitions assigned, their offsets restored from state, and is
//!   consuming, and the process reaches Kafka;
//! - [`KafkaLink`]: whether any broker answers, fed by every Kafka client
//!   of the process and summarised in one log line per interval;
//! - [`OpsServer`]: the HTTP endpoint serving `/metrics` (Prometheus text
//!   format), `/healthz` and `/readyz`, on [`OpsConfig::listen`]
//!   (default `127.0.0.1:9464`).
//!
//! [`Telemetry`] bundles the metrics and the health state that the pipeline
//! is handed explicitly.

mod config;
mod error;
mod health;
pub mod kafka_link;
mod metrics;
mod server;

use std::sync::Arc;

pub use config::{ApiConfig, OpsConfig};
pub use error::OpsError;
pub use health::{Health, TaskHealth};
pub use kafka_link::{KafkaLink, LinkErrorKind, LinkReport};
pub use metrics::{Metrics, TaskMetrics};
pub use server::{OpsServer, get};

/// The metrics and the health state of one process, shared by its tasks
/// and its HTTP endpoint.
#[derive(Debug, Clone)]
pub struct Telemetry {
    /// Every metric.
    pub metrics: Arc<Metrics>,
    /// Liveness and readiness.
    pub health: Arc<Health>,
    /// Whether the process reaches Kafka (fed by every client; part of
    /// readiness).
    pub kafka: Arc<KafkaLink>,
}

impl Telemetry {
    /// Fresh metrics (registered in a registry of their own) and health.
    ///
    /// # Errors
    /// [`OpsError::Metrics`] if a metric cannot be registered (a bug: names
    /// are fixed).
    pub fn new() -> Result<Self, OpsError> {
        let metrics = Arc::new(Metrics::new()?);
        let kafka = Arc::new(KafkaLink::new(
            metrics.kafka_reachable.clone(),
            metrics.kafka_client_errors.clone(),
        ));
        let health = Arc::new(Health::new(Arc::clone(&metrics), Arc::clone(&kafka)));
        Ok(Self {
            metrics,
            health,
            kafka,
        })
    }
}
