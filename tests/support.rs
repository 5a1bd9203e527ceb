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
    match std::env::var("EPITRACE_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "EPITRACE_TEST_BROKERS is not set: these end-to-end tests need a real Kafka broker. \
             Run them through `make test` or `scripts/with-kafka.sh cargo test -p epitrace-e2e`."
        ),
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
