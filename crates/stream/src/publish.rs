//! Producing batches and waiting for every acknowledgement.

use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::KafkaConfig;
use crate::error::StreamError;
use crate::link::{LinkContext, LinkHooks};

pub use epitrace_engine::OutputRecord;

/// The highest acknowledged offset of each (topic, partition) a send wrote
/// to.
pub type Acked = Vec<(String, i32, i64)>;

/// One record to send, borrowed: where it goes and what it holds.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'r> {
    /// Destination topic.
    pub topic: &'r str,
    /// Destination partition; `None` for the partition of the key
    /// (murmur2, as Java producers do).
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: &'r [u8],
    /// Value bytes; `None` is a tombstone (a compacted topic's delete).
    pub payload: Option<&'r [u8]>,
    /// Record timestamp (ms); `None` for the producer's clock.
    pub timestamp_ms: Option<i64>,
    /// Record headers (name, value); usually none.
    pub headers: &'r [(&'r str, &'r [u8])],
}

impl<'r> From<&'r OutputRecord> for Outgoing<'r> {
    fn from(r: &'r OutputRecord) -> Self {
        Self {
            topic: &r.topic,
            partition: None,
            key: &r.key,
            payload: Some(&r.payload),
            timestamp_ms: r.timestamp_ms,
            headers: &[],
        }
    }
}

/// An idempotent producer (`acks=all`) that sends batches and waits for the
/// broker's acknowledgement of every record; optionally transactional
/// ([`Publisher::transactional`]).
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

    /// Creates the transactional producer of one processor instance
    /// (exactly-once): `transactional_id` must be stable across restarts of
    /// the instance (a restart then aborts what the crashed run left open)
    /// and unique among instances. Call [`Publisher::init_transactions`]
    /// before the first transaction.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] for an invalid configuration.
    pub fn transactional(
        cfg: &KafkaConfig,
        hooks: LinkHooks,
        transactional_id: &str,
    ) -> Result<Self, StreamError> {
        Ok(Self {
            producer: cfg
                .transactional_producer_config(transactional_id)
                .create_with_context(LinkContext::new(hooks.clone()))?,
            hooks,
            timeout: Duration::from_millis(cfg.delivery_timeout_ms.min(cfg.transaction_timeout_ms)),
        })
    }

    /// Registers the transactional id with its coordinator, fencing any
    /// older producer with the same id and aborting its open transaction.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] (transient while the brokers are away).
    pub async fn init_transactions(&self) -> Result<(), StreamError> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        blocking(move || producer.init_transactions(timeout)).await
    }

    /// Starts a transaction (local: no request is sent).
    ///
    /// # Errors
    /// [`StreamError::Kafka`] when a transaction is already open or the
    /// producer is fenced.
    pub fn begin(&self) -> Result<(), StreamError> {
        self.producer.begin_transaction()?;
        Ok(())
    }

    /// Adds the consumer's next `offsets` to the open transaction (fenced
    /// when `group` is of an older generation: the partitions moved).
    ///
    /// # Errors
    /// [`StreamError::Kafka`]: a retriable one (timed out while the brokers
    /// are away) means the call may be made again to resume; otherwise the
    /// transaction must be aborted.
    pub async fn send_offsets(
        &self,
        offsets: TopicPartitionList,
        group: ConsumerGroupMetadata,
    ) -> Result<(), StreamError> {
        if offsets.count() == 0 {
            return Ok(());
        }
        let producer = self.producer.clone();
        let timeout = self.timeout;
        blocking(move || producer.send_offsets_to_transaction(&offsets, &group, timeout)).await
    }

    /// Commits the open transaction.
    ///
    /// # Errors
    /// [`StreamError::Kafka`]: a retriable one (the commit timed out while
    /// the brokers are away; its outcome is unknown) means the call must be
    /// made again to resume it — an abort is refused meanwhile; otherwise
    /// the transaction must be aborted.
    pub async fn commit_records(&self) -> Result<(), StreamError> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        blocking(move || producer.commit_transaction(timeout)).await
    }

    /// Aborts the open transaction: nothing it sent becomes visible to
    /// `read_committed` consumers.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] (a fenced or fatally failed producer must be
    /// created again).
    pub async fn abort(&self) -> Result<(), StreamError> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        blocking(move || producer.abort_transaction(timeout)).await
    }

    /// Sends every record and returns once all were acknowledged, in order
    /// per partition (idempotence keeps order across retries).
    ///
    /// # Errors
    /// [`StreamError::Delivery`] for the first record the broker did not
    /// take, [`StreamError::Timeout`] when acknowledgements take longer than
    /// the delivery timeout.
    pub async fn send_all(&self, records: &[OutputRecord]) -> Result<Acked, StreamError> {
        let records: Vec<Outgoing<'_>> = records.iter().map(Outgoing::from).collect();
        self.send(&records).await
    }

    /// The hooks its client errors are reported to.
    #[must_use]
    pub fn hooks(&self) -> &LinkHooks {
        &self.hooks
    }

    /// Sends `records`, each to the partition it names (e.g. a
    /// changelog's) or, for `None`, to the partition of its key, and
    /// returns once all were acknowledged, with the highest offset written
    /// per partition.
    ///
    /// # Errors
    /// As [`Publisher::send_all`].
    pub async fn send(&self, records: &[Outgoing<'_>]) -> Result<Acked, StreamError> {
        let work = async {
            let mut acked: Acked = Vec::new();
            let mut pending: Vec<(usize, DeliveryFuture)> = Vec::with_capacity(records.len());
            for (i, rec) in records.iter().enumerate() {
                loop {
                    let mut fr: FutureRecord<'_, [u8], [u8]> =
                        FutureRecord::to(rec.topic).key(rec.key);
                    if let Some(payload) = rec.payload {
                        fr = fr.payload(payload);
                    }
                    if let Some(ts) = rec.timestamp_ms {
                        fr = fr.timestamp(ts);
                    }
                    if let Some(p) = rec.partition {
                        fr = fr.partition(p);
                    }
                    if !rec.headers.is_empty() {
                        let headers = rec.headers.iter().fold(
                            OwnedHeaders::new_with_capacity(rec.headers.len()),
                            |h, &(key, value)| {
                                h.insert(Header {
                                    key,
                                    value: Some(value),
                                })
                            },
                        );
                        fr = fr.headers(headers);
                    }
                    match self.producer.send_result(fr) {
                        Ok(fut) => {
                            pending.push((i, fut));
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                            // Let the queue drain: wait for what is in flight.
                            Self::await_all(records, &mut pending, &mut acked).await?;
                        }
                        Err((e, _)) => {
                            return Err(StreamError::Delivery {
                                topic: rec.topic.to_owned(),
                                reason: e.to_string(),
                                transient: transient(&e),
                            });
                        }
                    }
                }
            }
            Self::await_all(records, &mut pending, &mut acked).await?;
            if !records.is_empty() {
                self.hooks.answered();
            }
            Ok(acked)
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                StreamError::Timeout(format!("{} records not acknowledged", records.len()))
            })?
    }

    async fn await_all(
        records: &[Outgoing<'_>],
        pending: &mut Vec<(usize, DeliveryFuture)>,
        acked: &mut Acked,
    ) -> Result<(), StreamError> {
        for (i, fut) in pending.drain(..) {
            let topic = || {
                records
                    .get(i)
                    .map(|r| r.topic.to_owned())
                    .unwrap_or_default()
            };
            match fut.await {
                Ok(Ok(delivery)) => {
                    let topic = records.get(i).map_or("", |r| r.topic);
                    match acked
                        .iter_mut()
                        .find(|(t, p, _)| t == topic && *p == delivery.partition)
                    {
                        Some(e) => e.2 = e.2.max(delivery.offset),
                        None => acked.push((topic.to_owned(), delivery.partition, delivery.offset)),
                    }
                }
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

/// Runs a blocking librdkafka call (transactions) off the async workers.
async fn blocking(
    f: impl FnOnce() -> Result<(), KafkaError> + Send + 'static,
) -> Result<(), StreamError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StreamError::Timeout(format!("transaction call did not finish: {e}")))??;
    Ok(())
}

/// Whether a produce error may pass once the brokers answer again.
fn transient(e: &KafkaError) -> bool {
    use epitrace_ops::LinkErrorKind as K;
    matches!(
        crate::link::classify(e),
        K::AllBrokersDown | K::Transport | K::Resolve | K::Timeout
    )
}
