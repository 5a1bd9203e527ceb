//! Idempotent topic creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::error::StreamError;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Topic configuration (`retention.ms`, `cleanup.policy`, …).
    pub config: Vec<(String, String)>,
}

/// What happened to one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOutcome {
    /// Created now.
    Created,
    /// Already there (left as it is).
    Existed,
}

/// Creates the topics that do not exist yet; existing ones are left alone
/// (running it twice is harmless).
///
/// # Errors
/// [`StreamError::Kafka`] when the brokers cannot be reached or refuse a
/// topic for another reason than its existence.
pub async fn create_topics(
    cfg: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<Vec<(String, TopicOutcome)>, StreamError> {
    let admin: AdminClient<DefaultClientContext> = cfg.base_config().create()?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            s.config.iter().fold(
                NewTopic::new(
                    &s.name,
                    s.partitions,
                    TopicReplication::Fixed(s.replication),
                ),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(new.iter(), &opts).await?;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(name) => out.push((name, TopicOutcome::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                out.push((name, TopicOutcome::Existed));
            }
            Err((name, code)) => {
                return Err(StreamError::Admin(format!("creating topic {name}: {code}")));
            }
        }
    }
    Ok(out)
}

/// Deletes every record of `topics` (Kafka's DeleteRecords up to the end of
/// each partition): the personal data is gone, the topics and their offsets
/// stay. Compacted topics refuse DeleteRecords; they are reported and left.
/// Returns, per topic, the records deleted and whether it was refused.
///
/// # Errors
/// [`StreamError::Kafka`] when the brokers cannot be reached,
/// [`StreamError::Admin`] for a topic that does not exist.
pub async fn purge_topics(
    cfg: &KafkaConfig,
    topics: &[&str],
) -> Result<Vec<(String, i64, bool)>, StreamError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let admin: AdminClient<DefaultClientContext> = cfg.base_config().create()?;
    let probe: BaseConsumer = cfg
        .base_config()
        .set("group.id", "epitrace-purge")
        .create()?;
    let timeout = Duration::from_secs(10);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut out = Vec::with_capacity(topics.len());
    for &topic in topics {
        // A topic created a moment ago may still be electing leaders: retry
        // for a while before giving up.
        let mut attempt = 0;
        let partitions: Vec<i32> = loop {
            attempt += 1;
            let found = probe.fetch_metadata(Some(topic), timeout).map(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| {
                        let ready = t
                            .partitions()
                            .iter()
                            .all(|p| p.leader() >= 0 && p.error().is_none());
                        (
                            ready,
                            t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>(),
                        )
                    })
            });
            match found {
                Ok(Some((true, ids))) if !ids.is_empty() => break ids,
                _ if attempt < 40 => tokio::time::sleep(Duration::from_millis(250)).await,
                Ok(_) => {
                    return Err(StreamError::Admin(format!(
                        "topic {topic} not found or has no leaders"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut tpl = TopicPartitionList::new();
        let mut records = 0;
        for p in partitions {
            let mut attempt = 0;
            let (low, high) = loop {
                attempt += 1;
                match probe.fetch_watermarks(topic, p, timeout) {
                    Ok(w) => break w,
                    Err(_) if attempt < 40 => tokio::time::sleep(Duration::from_millis(250)).await,
                    Err(e) => return Err(e.into()),
                }
            };
            records += high - low;
            tpl.add_partition_offset(topic, p, Offset::End)?;
        }
        let result = admin.delete_records(&tpl, &opts).await?;
        let refused = result.elements().iter().any(|e| e.error().is_err());
        out.push((topic.to_owned(), if refused { 0 } else { records }, refused));
    }
    Ok(out)
}

/// The partition count of each of `topics`, `None` for a topic that does
/// not exist; the client's errors are reported to `hooks`. Blocking: call
/// it from `spawn_blocking` in async code.
///
/// # Errors
/// [`StreamError::Kafka`] when the brokers cannot be reached.
pub fn partition_counts(
    cfg: &KafkaConfig,
    topics: &[&str],
    timeout: Duration,
    hooks: crate::link::LinkHooks,
) -> Result<Vec<(String, Option<i32>)>, StreamError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    // Its client errors count on the Kafka link like the tasks' (an outage
    // is summarised, not logged per retry).
    let probe: BaseConsumer<crate::link::LinkContext> = cfg
        .base_config()
        .create_with_context(crate::link::LinkContext::new(hooks))?;
    let metadata = match probe.fetch_metadata(None, timeout) {
        Ok(m) => m,
        Err(e) => {
            // Serve the client's events, so that its errors ("all brokers
            // down") reach the link before it is dropped.
            for _ in 0..4 {
                let _ = probe.poll(Duration::from_millis(50));
            }
            return Err(e.into());
        }
    };
    Ok(topics
        .iter()
        .map(|&name| {
            let count = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none())
                .and_then(|t| i32::try_from(t.partitions().len()).ok())
                .filter(|n| *n > 0);
            (name.to_owned(), count)
        })
        .collect())
}

/// Deletes `topics` (those that exist); returns the names deleted.
///
/// # Errors
/// [`StreamError::Kafka`] when the brokers cannot be reached,
/// [`StreamError::Admin`] when a deletion is refused.
pub async fn delete_topics(cfg: &KafkaConfig, topics: &[&str]) -> Result<Vec<String>, StreamError> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let admin: AdminClient<DefaultClientContext> = cfg.base_config().create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut deleted = Vec::new();
    for r in admin.delete_topics(topics, &opts).await? {
        match r {
            Ok(name) => deleted.push(name),
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => {
                return Err(StreamError::Admin(format!("deleting topic {name}: {code}")));
            }
        }
    }
    Ok(deleted)
}

/// The names of every topic of the cluster.
///
/// # Errors
/// [`StreamError::Kafka`] when the brokers cannot be reached.
pub async fn list_topics(cfg: &KafkaConfig) -> Result<Vec<String>, StreamError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || {
        let probe: BaseConsumer = cfg.base_config().create()?;
        let metadata = probe.fetch_metadata(None, Duration::from_secs(10))?;
        Ok(metadata
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .collect())
    })
    .await
    .map_err(|e| StreamError::Admin(e.to_string()))?
}
