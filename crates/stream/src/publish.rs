//! Producing batches and waiting for every acknowledgement.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::KafkaConfig;
use crate::error::StreamError;

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    /// Destination topic.
    pub topic: String,
    /// Record key (decides the partition, murmur2 like the Java client).
    pub key: Vec<u8>,
    /// Encoded value.
    pub payload: Vec<u8>,
    /// Record timestamp (ms since epoch). Processors set it from their input
    /// so that a replay produces identical records; `None` lets the client
    /// stamp the send time.
    pub timestamp_ms: Option<i64>,
}

/// An idempotent producer (`acks=all`) that sends batches and waits for the
/// broker's acknowledgement of every record.
pub struct Publisher {
    producer: FutureProducer,
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
        Ok(Self {
            producer: cfg.producer_config().create()?,
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
                            });
                        }
                    }
                }
            }
            Self::await_all(records, &mut pending).await
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
                    });
                }
                Err(_) => {
                    return Err(StreamError::Delivery {
                        topic: topic(),
                        reason: "producer dropped the delivery report".into(),
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
