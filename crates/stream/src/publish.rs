//! Producing batches and waiting for every acknowledgement.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::KafkaConfig;
use crate::error::StreamError;
use crate::link::{LinkContext, LinkHooks};

pub use epitrace_engine::OutputRecord;

/// An idempotent producer (`acks=all`) that sends batches and waits for the
/// broker's acknowledgement of every record.
pub struct Publisher {
    producer: FutureProducer<LinkContext>,
    hooks: LinkHooks,
    timeout: Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Creates the producer.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] for an invalid configuration.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, StreamError> {
        Self::with_hooks(cfg, LinkHooks::detached())
    }

    /// Creates the producer of a pipeline task: its client errors are
    /// counted on the process's Kafka link (see [`crate::link`]) rather
    /// than logged one by one, and acknowledgements mark the link
    /// reachable.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] for an invalid configuration.
    pub fn with_hooks(cfg: &KafkaConfig, hooks: LinkHooks) -> Result<Self, StreamError> {
        Ok(Self {
            producer: cfg
                .producer_config()
                .create_with_context(LinkContext::new(hooks.clone()))?,
            hooks,
            timeout: Duration::from_millis(cfg.delivery_timeout_ms),
        })
    }

    /// Sends every record and returns once all were acknowledged, in order
    /// per partition (idempotence keeps order across retries).
    ///
    /// # Errors
    /// [`StreamError::Delivery`] for the first record the broker did not
    /// take, [`StreamError::Timeout`] when acknowledgements take longer than
    /// the delivery timeout.
    pub async fn send_all(&self, records: &[OutputRecord]) -> Result<(), StreamError> {
        let work = async {
            let mut pending: Vec<(usize, DeliveryFuture)> = Vec::with_capacity(records.len());
            for (i, rec) in records.iter().enumerate() {
                loop {
                    let mut fr = FutureRecord::to(&rec.topic)
                        .key(&rec.key)
                        .payload(&rec.payload);
                    if let Some(ts) = rec.timestamp_ms {
                        fr = fr.timestamp(ts);
                    }
                    match self.producer.send_result(fr) {
                        Ok(fut) => {
                            pending.push((i, fut));
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            // Let the queue drain: wait for what is in flight.
                            Self::await_all(records, &mut pending).await?;
                        }
                        Err((e, _)) => {
                            return Err(StreamError::Delivery {
                                topic: rec.topic.clone(),
                                reason: e.to_string(),
                                transient: transient(&e),
                            });
                        }
                    }
                }
            }
            Self::await_all(records, &mut pending).await?;
            if !records.is_empty() {
                self.hooks.answered();
            }
            Ok(())
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                StreamError::Timeout(format!("{} records not acknowledged", records.len()))
            })?
    }

    async fn await_all(
        records: &[OutputRecord],
        pending: &mut Vec<(usize, DeliveryFuture)>,
    ) -> Result<(), StreamError> {
        for (i, fut) in pending.drain(..) {
            let topic = || records.get(i).map(|r| r.topic.clone()).unwrap_or_default();
            match fut.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(StreamError::Delivery {
                        topic: topic(),
                        reason: e.to_string(),
                        transient: transient(&e),
                    });
                }
                Err(_) => {
                    return Err(StreamError::Delivery {
                        topic: topic(),
                        reason: "producer dropped the delivery report".into(),
                        transient: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Waits until everything queued was delivered.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] when the flush times out.
    pub fn flush(&self) -> Result<(), StreamError> {
        self.producer.flush(self.timeout)?;
        Ok(())
    }
}

/// Whether a produce error may pass once the brokers answer again.
fn transient(e: &KafkaError) -> bool {
    use epitrace_ops::LinkErrorKind as K;
    matches!(
        crate::link::classify(e),
        K::AllBrokersDown | K::Transport | K::Resolve | K::Timeout
    )
}
