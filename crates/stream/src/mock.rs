//! librdkafka's in-process mock cluster, for the zero-install demo and fast
//! fault-injection tests.
//!
//! It is experimental: group consumers have been seen to stall after ~65k
//! records per partition, and it does not implement the admin API. Keep its
//! volumes small, create topics through [`MockKafka::create_topic`], and
//! never use it as the only proof of correctness or for benchmarks — the
//! end-to-end tests run against a real broker.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::error::StreamError;

/// A running mock cluster; dropped, it stops.
pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for MockKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKafka")
            .field("brokers", &self.brokers())
            .finish()
    }
}

impl MockKafka {
    /// Starts a mock cluster of `brokers` brokers on loopback ports.
    ///
    /// # Errors
    /// [`StreamError::Kafka`] if librdkafka cannot start it.
    pub fn start(brokers: i32) -> Result<Self, StreamError> {
        Ok(Self {
            cluster: MockCluster::new(brokers)?,
        })
    }

    /// The bootstrap servers string to give clients.
    #[must_use]
    pub fn brokers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a topic (the mock has no admin API).
    ///
    /// # Errors
    /// [`StreamError::Kafka`].
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), StreamError> {
        self.cluster.create_topic(name, partitions, 1)?;
        Ok(())
    }
}
